//! Incremental splitter for one top-level JSON array: yields each element's
//! bytes and the line it starts on, holding one element in memory at a time.
//!
//! It only finds element boundaries (string/escape state and bracket depth);
//! whether an element is valid JSON is for the format parser to decide, so a
//! bad element is a per-record rejection, not a failure of the whole input.
//! Tolerated, because real scanners write them: a trailing comma before `]`
//! (old masscan), elements separated by `,` on their own lines, and several
//! arrays one after another (concatenated result files). Anything else
//! between elements, or an array that is never closed, is
//! [`InputError::Malformed`].

use std::io::BufRead;

use super::InputError;
use super::input::{MAX_RECORD_BYTES, fill_buf_retrying};

/// One element found by [`JsonArraySplitter::next_element`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ArrayElement<'a> {
    Bytes {
        line: u64,
        bytes: &'a [u8],
    },
    /// Longer than [`MAX_RECORD_BYTES`]; skipped.
    TooLong {
        line: u64,
        len: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Outside any array: expecting `[` (or the end of the input).
    BetweenArrays,
    /// After `[` or `,`: expecting an element or `]`.
    BeforeElement { after_comma: bool },
    /// Inside an element.
    InElement,
    /// After an element: expecting `,` or `]`.
    AfterElement,
}

/// Scanner state inside one element.
#[derive(Debug, Default)]
struct ElementScan {
    /// Bracket depth; 0 with `scalar` set means a bare number/literal/string.
    depth: u32,
    in_string: bool,
    escaped: bool,
    scalar: bool,
    /// A scalar string: ends at its closing quote.
    scalar_string: bool,
    len: usize,
}

pub(crate) struct JsonArraySplitter<R> {
    reader: R,
    core: Splitter,
}

/// Everything but the reader, so that scanning a buffer borrowed from the
/// reader can mutate it.
struct Splitter {
    /// Line the scan is at (1-based).
    line: u64,
    state: State,
    element: Vec<u8>,
    element_line: u64,
    scan: ElementScan,
    seen_array: bool,
}

impl<R: BufRead> JsonArraySplitter<R> {
    /// `line` is the line number the reader is positioned at.
    pub(crate) fn new(reader: R, line: u64) -> Self {
        Self {
            reader,
            core: Splitter {
                line,
                state: State::BetweenArrays,
                element: Vec::new(),
                element_line: line,
                scan: ElementScan::default(),
                seen_array: false,
            },
        }
    }

    /// The next element, `None` after the last array closed.
    pub(crate) fn next_element(&mut self) -> Result<Option<ArrayElement<'_>>, InputError> {
        let core = &mut self.core;
        loop {
            let buf = fill_buf_retrying(&mut self.reader)?;
            if buf.is_empty() {
                return match core.state {
                    State::BetweenArrays if core.seen_array => Ok(None),
                    State::BetweenArrays => Err(InputError::malformed(
                        core.line,
                        "expected a JSON array, found nothing",
                    )),
                    _ => Err(InputError::malformed(
                        core.line,
                        "JSON array is never closed (missing `]`)",
                    )),
                };
            }
            let (consumed, done) = core.step(buf)?;
            self.reader.consume(consumed);
            if done {
                let line = core.element_line;
                let len = core.scan.len;
                return Ok(Some(if len > MAX_RECORD_BYTES {
                    ArrayElement::TooLong { line, len }
                } else {
                    ArrayElement::Bytes {
                        line,
                        bytes: &core.element,
                    }
                }));
            }
        }
    }
}

impl Splitter {
    /// Processes bytes of `buf`; returns how many were consumed and whether an
    /// element is complete.
    fn step(&mut self, buf: &[u8]) -> Result<(usize, bool), InputError> {
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                State::InElement => {
                    let (used, done) = self.scan_element(&buf[i..]);
                    i += used;
                    if done {
                        self.state = State::AfterElement;
                        return Ok((i, true));
                    }
                }
                _ => {
                    let b = buf[i];
                    if b.is_ascii_whitespace() {
                        if b == b'\n' {
                            self.line += 1;
                        }
                        i += 1;
                        continue;
                    }
                    self.structural(b)?;
                    if self.state != State::InElement {
                        i += 1;
                    }
                    // When an element starts, its first byte is left for
                    // `scan_element` so that all element bytes go one way.
                }
            }
        }
        Ok((i, false))
    }

    /// A non-blank byte outside elements.
    fn structural(&mut self, b: u8) -> Result<(), InputError> {
        match (self.state, b) {
            (State::BetweenArrays, b'[') => {
                self.seen_array = true;
                self.state = State::BeforeElement { after_comma: false };
            }
            (State::BetweenArrays, _) => {
                return Err(InputError::malformed(
                    self.line,
                    format!("unexpected {} after the JSON array", describe(b)),
                ));
            }
            // `]` right after `[` is an empty array; right after `,` it is
            // the trailing comma old masscan writes.
            (State::BeforeElement { .. }, b']') => self.state = State::BetweenArrays,
            (State::BeforeElement { after_comma }, b',') => {
                let what = if after_comma {
                    "two commas in a row in the JSON array"
                } else {
                    "a comma before the first element of the JSON array"
                };
                return Err(InputError::malformed(self.line, what));
            }
            (State::BeforeElement { .. }, _) => {
                self.element.clear();
                self.element_line = self.line;
                self.scan = ElementScan {
                    scalar: b != b'{' && b != b'[',
                    scalar_string: b == b'"',
                    ..ElementScan::default()
                };
                self.state = State::InElement;
            }
            (State::AfterElement, b',') => {
                self.state = State::BeforeElement { after_comma: true };
            }
            (State::AfterElement, b']') => self.state = State::BetweenArrays,
            (State::AfterElement, _) => {
                return Err(InputError::malformed(
                    self.line,
                    format!(
                        "expected `,` or `]` after an array element, found {}",
                        describe(b)
                    ),
                ));
            }
            (State::InElement, _) => {}
        }
        Ok(())
    }

    /// Scans element bytes; returns bytes used and whether the element ended.
    fn scan_element(&mut self, buf: &[u8]) -> (usize, bool) {
        let s = &mut self.scan;
        let mut end = None;
        for (i, &b) in buf.iter().enumerate() {
            if s.in_string {
                if s.escaped {
                    s.escaped = false;
                } else if b == b'\\' {
                    s.escaped = true;
                } else if b == b'"' {
                    s.in_string = false;
                    if s.scalar_string {
                        end = Some(i + 1);
                        break;
                    }
                } else if b == b'\n' {
                    // Invalid inside a JSON string, but counted so that later
                    // line numbers stay right; the parser will reject it.
                    self.line += 1;
                }
                continue;
            }
            match b {
                // For a scalar string this is its opening quote (byte 0).
                b'"' => s.in_string = true,
                b'{' | b'[' => s.depth += 1,
                b'}' | b']' if s.depth > 0 => {
                    s.depth -= 1;
                    if s.depth == 0 {
                        end = Some(i + 1);
                        break;
                    }
                }
                // A bare number or literal ends at the first delimiter, which
                // belongs to the array, not the element.
                b',' | b']' | b' ' | b'\t' | b'\r' | b'\n' if s.scalar && s.depth == 0 => {
                    end = Some(i);
                    break;
                }
                b'\n' => self.line += 1,
                _ => {}
            }
        }
        let used = end.unwrap_or(buf.len());
        let room = MAX_RECORD_BYTES.saturating_sub(self.element.len());
        if room > 0 {
            let take = used.min(room + 1);
            self.element.extend_from_slice(&buf[..take]);
        }
        s.len += used;
        (used, end.is_some())
    }
}

fn describe(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("`{}`", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn split(input: &str) -> Result<Vec<(u64, String)>, InputError> {
        // A tiny buffer makes every state transition cross a buffer boundary.
        let reader = std::io::BufReader::with_capacity(3, Cursor::new(input.as_bytes().to_vec()));
        let mut s = JsonArraySplitter::new(reader, 1);
        let mut out = Vec::new();
        while let Some(e) = s.next_element()? {
            match e {
                ArrayElement::Bytes { line, bytes } => {
                    out.push((line, String::from_utf8(bytes.to_vec()).unwrap()))
                }
                ArrayElement::TooLong { .. } => panic!("too long"),
            }
        }
        Ok(out)
    }

    #[test]
    fn splits_objects_with_lines() {
        let got = split("[\n{\"a\": \"x]}\\\"\"},\n {\"b\":[1,{\"c\":2}]}\n]\n").unwrap();
        assert_eq!(
            got,
            vec![
                (2, r#"{"a": "x]}\""}"#.to_owned()),
                (3, r#"{"b":[1,{"c":2}]}"#.to_owned())
            ]
        );
    }

    #[test]
    fn scalars_are_elements() {
        let got = split("[1, \"a,]\" ,true,\nnull]").unwrap();
        let texts: Vec<_> = got.iter().map(|(l, t)| (*l, t.as_str())).collect();
        assert_eq!(
            texts,
            vec![(1, "1"), (1, "\"a,]\""), (1, "true"), (2, "null")]
        );
    }

    #[test]
    fn tolerates_trailing_comma_and_comma_lines() {
        let got = split("[\n{\"a\":1}\n,\n{\"a\":2}\n,\n]").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].0, 4);
    }

    #[test]
    fn empty_array_and_concatenated_arrays() {
        assert!(split("[]").unwrap().is_empty());
        assert_eq!(split("[{}]\n[{},{}]").unwrap().len(), 3);
    }

    #[test]
    fn unterminated_array_is_malformed() {
        for input in ["[{\"a\":1}", "[{\"a\":1},", "[{\"a\":", "[1", "["] {
            match split(input) {
                Err(InputError::Malformed { reason, .. }) => {
                    assert!(reason.contains("never closed"), "{input}: {reason}")
                }
                other => panic!("{input}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_between_elements_is_malformed_with_line() {
        match split("[\n{\"a\":1}\nxyz\n]") {
            Err(InputError::Malformed { line, reason }) => {
                assert_eq!(line, 3);
                assert!(reason.contains("`x`"), "{reason}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
        assert!(matches!(
            split("[{},,{}]"),
            Err(InputError::Malformed { .. })
        ));
        assert!(matches!(split("[{}] x"), Err(InputError::Malformed { .. })));
    }

    #[test]
    fn oversized_element_is_reported_and_skipped() {
        let big = format!("[\"{}\", 1]", "x".repeat(MAX_RECORD_BYTES + 5));
        let mut s = JsonArraySplitter::new(Cursor::new(big.into_bytes()), 1);
        assert!(matches!(
            s.next_element().unwrap(),
            Some(ArrayElement::TooLong { line: 1, len }) if len == MAX_RECORD_BYTES + 7
        ));
        assert_eq!(
            s.next_element().unwrap(),
            Some(ArrayElement::Bytes {
                line: 1,
                bytes: b"1"
            })
        );
        assert_eq!(s.next_element().unwrap(), None);
    }
}
