//! Framing: how a byte stream is cut into records before any format looks at
//! them. Owns the line reader (with a per-record size cap, so one endless
//! line cannot exhaust memory), byte-order-mark and leading-blank handling,
//! and the JSON framing shared by canonical, nuclei and masscan: newline-
//! delimited objects or one array, told apart by the first non-blank byte.

use std::io::{self, BufRead, Read};

use super::InputError;
use super::json_array::{ArrayElement, JsonArraySplitter};
use crate::ingest::observation::LineError;

/// Largest record (line, array element) accepted. Generous because nuclei
/// lines carry whole HTTP requests and responses; the cap exists so that a
/// stream without newlines cannot make the parser buffer it all.
pub(crate) const MAX_RECORD_BYTES: usize = 8 * 1024 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// `fill_buf`, retrying when a signal interrupted the read (the one I/O
/// error that means "try again", not "the stream broke").
pub(crate) fn fill_buf_retrying<R: BufRead + ?Sized>(reader: &mut R) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
            Ok(_) => break,
        }
    }
    // Returning the slice from inside the loop would keep `reader` borrowed
    // across iterations; the second call just hands back the buffered bytes.
    reader.fill_buf()
}

/// `read`, retrying when interrupted.
pub(crate) fn read_retrying<R: Read + ?Sized>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Drops a UTF-8 byte-order mark, which Windows tools like to prepend and
/// which no format here allows.
pub(crate) fn skip_bom(reader: &mut dyn BufRead) -> io::Result<()> {
    let buf = fill_buf_retrying(reader)?;
    if buf.starts_with(UTF8_BOM) {
        reader.consume(UTF8_BOM.len());
    }
    Ok(())
}

/// Skips a byte-order mark and leading whitespace; returns the first other
/// byte (not consumed), if any, and how many newlines were skipped so line
/// numbers stay right.
pub(crate) fn peek_first_non_blank(reader: &mut dyn BufRead) -> io::Result<(Option<u8>, u64)> {
    skip_bom(reader)?;
    let mut newlines = 0;
    loop {
        let buf = fill_buf_retrying(reader)?;
        if buf.is_empty() {
            return Ok((None, newlines));
        }
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                newlines += count_newlines(&buf[..i]);
                let first = buf[i];
                reader.consume(i);
                return Ok((Some(first), newlines));
            }
            None => {
                let n = buf.len();
                newlines += count_newlines(buf);
                reader.consume(n);
            }
        }
    }
}

pub(crate) fn count_newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// What [`LineReader::next_line`] found. The text itself is read with
/// [`LineReader::current`]; returning it separately (not borrowed in the enum)
/// lets callers skip blank lines in a loop without fighting the borrow checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// A line; its bytes, without `\n` / `\r\n`, are in `current()`.
    Text { line: u64 },
    /// Longer than [`MAX_RECORD_BYTES`]; skipped, `len` is its full length.
    TooLong { line: u64, len: usize },
}

/// Reads lines into one reused buffer.
pub(crate) struct LineReader {
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
    /// Length of the current line's text within `buf`.
    text_len: usize,
    next_line: u64,
}

impl LineReader {
    /// `first_line` is the number of the line the reader is positioned at.
    pub(crate) fn new(reader: Box<dyn BufRead + Send>, first_line: u64) -> Self {
        Self {
            reader,
            buf: Vec::with_capacity(1024),
            text_len: 0,
            next_line: first_line,
        }
    }

    /// The text of the line last returned as [`Line::Text`].
    pub(crate) fn current(&self) -> &[u8] {
        &self.buf[..self.text_len]
    }

    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.buf.clear();
        self.text_len = 0;
        // `take` bounds what read_until may buffer while still using std's
        // fast newline search.
        let limit = MAX_RECORD_BYTES as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        let line = self.next_line;
        self.next_line += 1;
        if self.buf.last() != Some(&b'\n') && self.buf.len() > MAX_RECORD_BYTES {
            let rest = skip_line(&mut self.reader)?;
            return Ok(Some(Line::TooLong {
                line,
                len: n + rest,
            }));
        }
        let mut end = self.buf.len();
        if self.buf[..end].ends_with(b"\n") {
            end -= 1;
        }
        if self.buf[..end].ends_with(b"\r") {
            end -= 1;
        }
        self.text_len = end;
        Ok(Some(Line::Text { line }))
    }
}

/// Consumes up to and including the next newline without buffering; returns
/// how many bytes (excluding the newline) were skipped.
fn skip_line(reader: &mut dyn BufRead) -> io::Result<usize> {
    let mut skipped = 0;
    loop {
        let buf = fill_buf_retrying(reader)?;
        if buf.is_empty() {
            return Ok(skipped);
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(skipped + i);
            }
            None => {
                let n = buf.len();
                skipped += n;
                reader.consume(n);
            }
        }
    }
}

pub(crate) fn too_long(line: u64, len: usize) -> LineError {
    LineError::new(
        line,
        None,
        format!("record is {len} bytes; at most {MAX_RECORD_BYTES} allowed"),
    )
}

/// One JSON record cut out of the stream.
pub(crate) enum JsonRecord<'a> {
    /// `text` is the line (without line ending) or the array element.
    Text { line: u64, text: &'a str },
    /// A record that could not even be looked at (too long, not UTF-8).
    Unreadable(LineError),
}

/// NDJSON lines or the elements of one top-level JSON array.
pub(crate) enum JsonFraming {
    Lines(LineReader),
    Array(JsonArraySplitter<Box<dyn BufRead + Send>>),
    /// Detection has not run yet (it needs to read, which `new` avoids);
    /// the number is the line the reader is positioned at.
    Undetected(Option<Box<dyn BufRead + Send>>, u64),
}

impl JsonFraming {
    pub(crate) fn new(reader: Box<dyn BufRead + Send>) -> Self {
        Self::starting_at(reader, 1)
    }

    /// For a reader whose first `first_line - 1` lines were already consumed.
    pub(crate) fn starting_at(reader: Box<dyn BufRead + Send>, first_line: u64) -> Self {
        JsonFraming::Undetected(Some(reader), first_line)
    }

    /// The next non-blank record, or `None` at the end of the input.
    pub(crate) fn next_record(&mut self) -> Result<Option<JsonRecord<'_>>, InputError> {
        if let JsonFraming::Undetected(reader, first_line) = self {
            let Some(mut reader) = reader.take() else {
                return Ok(None);
            };
            let (first, newlines) = peek_first_non_blank(&mut reader)?;
            let line = *first_line + newlines;
            *self = if first == Some(b'[') {
                JsonFraming::Array(JsonArraySplitter::new(reader, line))
            } else {
                JsonFraming::Lines(LineReader::new(reader, line))
            };
        }
        match self {
            JsonFraming::Undetected(..) => Ok(None),
            JsonFraming::Lines(lines) => loop {
                match lines.next_line()? {
                    None => return Ok(None),
                    Some(Line::TooLong { line, len }) => {
                        return Ok(Some(JsonRecord::Unreadable(too_long(line, len))));
                    }
                    Some(Line::Text { line }) => {
                        if lines.current().iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        return Ok(Some(text_record(line, lines.current())));
                    }
                }
            },
            JsonFraming::Array(splitter) => match splitter.next_element()? {
                None => Ok(None),
                Some(ArrayElement::TooLong { line, len }) => {
                    Ok(Some(JsonRecord::Unreadable(too_long(line, len))))
                }
                Some(ArrayElement::Bytes { line, bytes }) => Ok(Some(text_record(line, bytes))),
            },
        }
    }
}

fn text_record(line: u64, bytes: &[u8]) -> JsonRecord<'_> {
    match std::str::from_utf8(bytes) {
        Ok(text) => JsonRecord::Text { line, text },
        Err(e) => JsonRecord::Unreadable(LineError::new(
            line,
            None,
            format!(
                "record is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )),
    }
}

/// A [`Source`](super::Source) of one JSON object per record (NDJSON lines
/// or array elements), each turned into an item by `parse`.
pub(crate) struct JsonRecordSource {
    framing: JsonFraming,
    parse: fn(u64, &str) -> super::Item,
}

impl JsonRecordSource {
    pub(crate) fn new(input: Box<dyn BufRead + Send>, parse: fn(u64, &str) -> super::Item) -> Self {
        Self {
            framing: JsonFraming::new(input),
            parse,
        }
    }
}

impl super::Source for JsonRecordSource {
    fn fill(
        &mut self,
        out: &mut std::collections::VecDeque<super::Item>,
    ) -> Result<bool, super::InputError> {
        match self.framing.next_record()? {
            None => Ok(false),
            Some(JsonRecord::Unreadable(e)) => {
                out.push_back(super::Item::Rejected(e));
                Ok(true)
            }
            Some(JsonRecord::Text { line, text }) => {
                out.push_back((self.parse)(line, text));
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(s: &str) -> Box<dyn BufRead + Send> {
        Box::new(Cursor::new(s.as_bytes().to_vec()))
    }

    #[test]
    fn lines_strip_crlf_and_count() {
        let mut r = LineReader::new(boxed("a\r\nb\n\nc"), 1);
        let mut seen = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            if let Line::Text { line } = l {
                seen.push((line, String::from_utf8(r.current().to_vec()).unwrap()));
            }
        }
        assert_eq!(
            seen,
            vec![
                (1, "a".into()),
                (2, "b".into()),
                (3, "".into()),
                (4, "c".into())
            ]
        );
    }

    #[test]
    fn overlong_line_is_skipped_not_buffered() {
        let long = "x".repeat(MAX_RECORD_BYTES + 10);
        let input = format!("{long}\nok\n");
        let mut r = LineReader::new(boxed(&input), 1);
        match r.next_line().unwrap() {
            Some(Line::TooLong { line: 1, len }) => assert_eq!(len, MAX_RECORD_BYTES + 10),
            _ => panic!("expected TooLong"),
        }
        assert_eq!(r.next_line().unwrap(), Some(Line::Text { line: 2 }));
        assert_eq!(r.current(), b"ok");
    }

    #[test]
    fn peek_skips_bom_and_blank_lines() {
        let mut r = boxed("\u{feff}\n \n  [1]");
        let (first, newlines) = peek_first_non_blank(&mut r).unwrap();
        assert_eq!(first, Some(b'['));
        assert_eq!(newlines, 2);
    }
}
