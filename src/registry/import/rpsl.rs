//! A streaming reader for RPSL text (RIPE database dumps and whois output).
//!
//! This file owns the *syntax* only: splitting a byte stream into objects and
//! attributes. What the objects mean is `ripe.rs`'s business.
//!
//! The rules, after RFC 2622 and what the RIPE split files actually contain:
//! - objects are separated by blank (or whitespace-only) lines;
//! - lines starting with `#` or `%` are comments and are skipped (inside an
//!   object too, where they do not end it);
//! - `name:` then optional spaces then the value; names are case-insensitive
//!   and come out lower-cased;
//! - a line starting with a space, a tab or `+` continues the previous
//!   attribute; the pieces are joined with `\n` (a `+` is dropped), so a
//!   multi-line `descr` keeps its lines;
//! - `#` starts a trailing comment (`source: RIPE # Filtered` is `RIPE`);
//! - values are trimmed.
//!
//! Each line is decoded as UTF-8, or as ISO-8859-1 when it is not valid UTF-8:
//! the `ripe.db.*.gz` dumps are Latin-1, the `*.utf8.gz` ones UTF-8, and
//! operators mix them up.
//!
//! A full `inetnum` dump is ~4 M objects and several GB, so the reader never
//! holds more than one object, reuses its line buffer and (through
//! [`RpslReader::read_into`]) the attribute strings, and can drop unwanted
//! classes and attributes before they cost an allocation. Memory is bounded
//! even for hostile input: over-long lines and over-large objects are cut and
//! reported as [`ReaderIssue`]s instead of growing without limit.

use std::io::{self, BufRead, Read};

/// Lines longer than this are dropped (and reported); no real RPSL line is
/// anywhere near it.
const MAX_LINE_BYTES: u64 = 1 << 20;
/// Attributes of one object beyond this many stored bytes are dropped (and
/// reported). The largest real objects (aut-nums with thousands of
/// import/export lines) are a few MB.
const MAX_OBJECT_BYTES: usize = 64 << 20;
/// Per-attribute bookkeeping counted against [`MAX_OBJECT_BYTES`], so that
/// millions of empty attributes are bounded too.
const ATTRIBUTE_OVERHEAD: usize = 64;
/// Issues kept in detail; beyond this only counted.
const MAX_KEPT_ISSUES: usize = 1000;
/// Recycled attribute slots kept between objects.
const MAX_SPARE_ATTRIBUTES: usize = 4096;

/// One RPSL object: its attributes in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpslObject {
    /// 1-based line number of the first attribute.
    pub line: u64,
    /// `(lower-cased name, trimmed value)`, in file order.
    pub attributes: Vec<(String, String)>,
}

impl RpslObject {
    /// The object class: the name of the first attribute (`inetnum`, `role`…).
    pub fn class(&self) -> &str {
        self.attributes
            .first()
            .map_or("", |(name, _)| name.as_str())
    }

    /// The primary key as written: the value of the first attribute.
    pub fn key(&self) -> &str {
        self.attributes
            .first()
            .map_or("", |(_, value)| value.as_str())
    }

    /// The first value of attribute `name` (lower-case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of attribute `name` (lower-case), in file order.
    pub fn get_all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.attributes
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Something in the input the reader skipped or cut, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderIssue {
    pub line: u64,
    pub reason: &'static str,
}

/// Streaming RPSL object reader. Iterate it for owned objects, or call
/// [`read_into`](Self::read_into) in a loop to reuse one object's allocations.
pub struct RpslReader {
    input: Box<dyn BufRead + Send>,
    /// Lines consumed so far (the number of the current line once read).
    line_no: u64,
    /// The current raw line, reused.
    raw: Vec<u8>,
    /// Lower-cased attribute name scratch, reused.
    name: String,
    /// Keep only these classes (lower-case); `None` = all.
    classes: Option<Vec<String>>,
    /// Keep only these attributes besides the class attribute; `None` = all.
    attributes: Option<Vec<String>>,
    /// Attribute slots from earlier objects, cleared, for reuse.
    spare: Vec<(String, String)>,
    issues: Vec<ReaderIssue>,
    issue_count: u64,
    /// After an I/O error the iterator ends instead of repeating the error.
    failed: bool,
}

impl RpslReader {
    pub fn new(input: Box<dyn BufRead + Send>) -> Self {
        Self {
            input,
            line_no: 0,
            raw: Vec::with_capacity(256),
            name: String::with_capacity(32),
            classes: None,
            attributes: None,
            spare: Vec::new(),
            issues: Vec::new(),
            issue_count: 0,
            failed: false,
        }
    }

    /// Yield only objects of these classes; the others are skipped without
    /// decoding their lines.
    pub fn only_classes(mut self, classes: &[&str]) -> Self {
        self.classes = Some(classes.iter().map(|c| c.to_ascii_lowercase()).collect());
        self
    }

    /// Store only these attributes (plus the class attribute, always first);
    /// the rest are skipped without being copied.
    pub fn only_attributes(mut self, attributes: &[&str]) -> Self {
        self.attributes = Some(attributes.iter().map(|a| a.to_ascii_lowercase()).collect());
        self
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    /// Lines or attributes skipped because they were malformed or too large
    /// (at most the first 1000; see [`issue_count`](Self::issue_count)).
    pub fn issues(&self) -> &[ReaderIssue] {
        &self.issues
    }

    /// How many issues occurred in total, including those not kept.
    pub fn issue_count(&self) -> u64 {
        self.issue_count
    }

    fn issue(&mut self, line: u64, reason: &'static str) {
        self.issue_count += 1;
        if self.issues.len() < MAX_KEPT_ISSUES {
            self.issues.push(ReaderIssue { line, reason });
        }
    }

    /// Read the next line into `self.raw` without its line ending. An
    /// over-long line is consumed to its end and reported as `TooLong`, so a
    /// file without newlines cannot make the buffer grow without bound.
    fn next_line(&mut self) -> io::Result<LineRead> {
        self.raw.clear();
        let n = (&mut self.input)
            .take(MAX_LINE_BYTES)
            .read_until(b'\n', &mut self.raw)?;
        if n == 0 {
            return Ok(LineRead::Eof);
        }
        self.line_no += 1;
        if self.raw.last() == Some(&b'\n') {
            self.raw.pop();
        } else if n as u64 == MAX_LINE_BYTES {
            // Cut off by the limit: throw the rest of the line away.
            self.input.skip_until(b'\n')?;
            return Ok(LineRead::TooLong);
        }
        if self.raw.last() == Some(&b'\r') {
            self.raw.pop();
        }
        Ok(LineRead::Line)
    }

    /// Read the next object into `obj`, reusing its allocations. Returns
    /// `Ok(false)` at end of input (then `obj` is empty).
    pub fn read_into(&mut self, obj: &mut RpslObject) -> io::Result<bool> {
        // Recycle the previous object's strings.
        for (mut name, mut value) in obj.attributes.drain(..) {
            if self.spare.len() < MAX_SPARE_ATTRIBUTES {
                name.clear();
                value.clear();
                self.spare.push((name, value));
            }
        }
        obj.line = 0;

        let mut in_object = false;
        // Skipping an object of an unwanted class up to the next blank line.
        let mut skipping = false;
        // Whether the last attribute line was stored (continuations follow it).
        let mut last_stored = false;
        let mut object_bytes = 0usize;
        let mut object_cut = false;

        loop {
            match self.next_line()? {
                LineRead::Eof => break,
                LineRead::TooLong => {
                    let line = self.line_no;
                    self.issue(line, "line longer than 1 MiB skipped");
                    last_stored = false;
                    continue;
                }
                LineRead::Line => {}
            }
            let line = self.raw.as_slice();

            if line.iter().all(u8::is_ascii_whitespace) {
                if in_object {
                    break;
                }
                skipping = false;
                continue;
            }
            if skipping {
                continue;
            }
            // Not empty: an empty line counted as blank above.
            let Some(&first) = line.first() else {
                continue;
            };
            if first == b'#' || first == b'%' {
                continue;
            }

            if first == b' ' || first == b'\t' || first == b'+' {
                if !in_object {
                    let n = self.line_no;
                    self.issue(n, "continuation line outside an object skipped");
                    continue;
                }
                if !last_stored {
                    continue;
                }
                let piece = clean_value(&line[1..]);
                object_bytes += piece.len() + 1;
                if object_bytes > MAX_OBJECT_BYTES {
                    last_stored = false;
                    if !object_cut {
                        object_cut = true;
                        let n = self.line_no;
                        self.issue(n, "object larger than 64 MiB cut short");
                    }
                    continue;
                }
                if let Some((_, value)) = obj.attributes.last_mut() {
                    if !value.is_empty() {
                        value.push('\n');
                    }
                    push_decoded(value, piece);
                }
                continue;
            }

            // An attribute line: `name:value`.
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                let n = self.line_no;
                self.issue(n, "line is neither attribute, continuation nor comment");
                last_stored = false;
                continue;
            };
            let raw_name = &line[..colon];
            if !valid_name(raw_name) {
                let n = self.line_no;
                self.issue(n, "invalid attribute name");
                last_stored = false;
                continue;
            }
            self.name.clear();
            // Valid names are ASCII, so this is a plain byte copy.
            self.name
                .extend(raw_name.iter().map(|b| char::from(b.to_ascii_lowercase())));

            if !in_object {
                if let Some(classes) = &self.classes {
                    if !classes.contains(&self.name) {
                        skipping = true;
                        continue;
                    }
                }
                in_object = true;
                obj.line = self.line_no;
            } else if let Some(wanted) = &self.attributes {
                if !wanted.contains(&self.name) {
                    last_stored = false;
                    continue;
                }
            }

            let piece = clean_value(&line[colon + 1..]);
            object_bytes += self.name.len() + piece.len() + ATTRIBUTE_OVERHEAD;
            if object_bytes > MAX_OBJECT_BYTES && !obj.attributes.is_empty() {
                last_stored = false;
                if !object_cut {
                    object_cut = true;
                    let n = self.line_no;
                    self.issue(n, "object larger than 64 MiB cut short");
                }
                continue;
            }
            let (mut name, mut value) = self.spare.pop().unwrap_or_default();
            name.push_str(&self.name);
            push_decoded(&mut value, piece);
            obj.attributes.push((name, value));
            last_stored = true;
        }

        // An empty `+` continuation at the end leaves a trailing newline.
        for (_, value) in &mut obj.attributes {
            let keep = value.trim_end().len();
            value.truncate(keep);
        }
        Ok(in_object)
    }
}

enum LineRead {
    Line,
    TooLong,
    Eof,
}

impl Iterator for RpslReader {
    type Item = io::Result<RpslObject>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut obj = RpslObject::default();
        match self.read_into(&mut obj) {
            Ok(true) => Some(Ok(obj)),
            Ok(false) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// RPSL attribute names: a letter, then letters, digits, `-` or `_`.
fn valid_name(name: &[u8]) -> bool {
    match name.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphabetic()
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
        }
        None => false,
    }
}

/// Drop a trailing `# comment` and surrounding whitespace. Works on bytes:
/// `#` (0x23) never occurs inside a UTF-8 multi-byte sequence, nor is it a
/// different character in Latin-1.
fn clean_value(bytes: &[u8]) -> &[u8] {
    let bytes = match bytes.iter().position(|&b| b == b'#') {
        Some(hash) => &bytes[..hash],
        None => bytes,
    };
    bytes.trim_ascii()
}

/// Append `bytes` as UTF-8, or as ISO-8859-1 when they are not valid UTF-8
/// (every Latin-1 byte is the code point of the same value).
fn push_decoded(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.extend(bytes.iter().map(|&b| char::from(b))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn reader(text: &[u8]) -> RpslReader {
        RpslReader::new(Box::new(Cursor::new(text.to_vec())))
    }

    fn read_all(text: &[u8]) -> Vec<RpslObject> {
        reader(text).collect::<io::Result<Vec<_>>>().unwrap()
    }

    #[test]
    fn objects_attributes_comments_and_continuations() {
        let text = b"# header\n%  more header\n#\n\n\
            inetnum:        198.18.4.0 - 198.18.6.255\n\
            NetName:        EKSEMPEL-KOMMUNE-NET\n\
            descr:          Eksempel kommune,\n\
            +               IT-avdelingen\n\
            \x20               (continuation line without plus)\n\
            source:         RIPE # Filtered\n\
            \n\n\
            role:           Fjordnett NOC\n\
            nic-hdl:FJNO1-RIPE\n\
            remarks:\n\
            +\n\
            \tsecond line\n";
        let objs = read_all(text);
        assert_eq!(objs.len(), 2);
        let a = &objs[0];
        assert_eq!(a.line, 5);
        assert_eq!(a.class(), "inetnum");
        assert_eq!(a.key(), "198.18.4.0 - 198.18.6.255");
        assert_eq!(a.get("netname"), Some("EKSEMPEL-KOMMUNE-NET"));
        assert_eq!(
            a.get("descr"),
            Some("Eksempel kommune,\nIT-avdelingen\n(continuation line without plus)")
        );
        assert_eq!(a.get("source"), Some("RIPE"));
        assert_eq!(a.get("missing"), None);
        let b = &objs[1];
        assert_eq!(b.line, 13);
        assert_eq!(b.class(), "role");
        assert_eq!(b.get("nic-hdl"), Some("FJNO1-RIPE"));
        assert_eq!(b.get("remarks"), Some("second line"));
    }

    #[test]
    fn get_all_in_order() {
        let objs = read_all(b"inetnum: x\ncountry: NO\ndescr: a\ncountry: SE\n");
        let all: Vec<&str> = objs[0].get_all("country").collect();
        assert_eq!(all, ["NO", "SE"]);
    }

    #[test]
    fn latin1_and_utf8_lines() {
        let mut text = b"organisation: ORG-X\norg-name: B\xe6rum kommune\n".to_vec();
        text.extend_from_slice("descr: Tromsø\n".as_bytes());
        let objs = read_all(&text);
        assert_eq!(objs[0].get("org-name"), Some("Bærum kommune"));
        assert_eq!(objs[0].get("descr"), Some("Tromsø"));
    }

    #[test]
    fn crlf_whitespace_separators_and_no_final_newline() {
        let objs = read_all(b"role: A\r\nnic-hdl: A1\r\n  \t \r\nrole: B\r\nnic-hdl: B1");
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].get("nic-hdl"), Some("A1"));
        assert_eq!(objs[1].get("nic-hdl"), Some("B1"));
        assert_eq!(objs[1].line, 4);
    }

    #[test]
    fn malformed_lines_are_reported_not_fatal() {
        let mut r = reader(b"  stray continuation\nrole: A\nthis is junk\n-bad: x\nnic-hdl: A1\n");
        let objs: Vec<_> = r.by_ref().collect::<io::Result<_>>().unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].attributes.len(), 2);
        let lines: Vec<u64> = r.issues().iter().map(|i| i.line).collect();
        assert_eq!(lines, [1, 3, 4]);
        assert_eq!(r.issue_count(), 3);
    }

    #[test]
    fn empty_and_comment_only_inputs() {
        assert!(read_all(b"").is_empty());
        assert!(read_all(b"\n\n% nothing\n# here\n\n").is_empty());
    }

    #[test]
    fn class_and_attribute_filters() {
        let text = b"person: P\nnic-hdl: P1\n  more\n\nrole: R\naddress: x\n  y\nnic-hdl: R1\n\nrole: S\nnic-hdl: S1\n";
        let objs: Vec<_> = reader(text)
            .only_classes(&["ROLE"])
            .only_attributes(&["nic-hdl"])
            .collect::<io::Result<_>>()
            .unwrap();
        assert_eq!(objs.len(), 2);
        assert_eq!(
            objs[0].attributes,
            vec![
                ("role".to_owned(), "R".to_owned()),
                ("nic-hdl".to_owned(), "R1".to_owned())
            ]
        );
        assert_eq!(objs[0].line, 5);
        assert_eq!(objs[1].key(), "S");
    }

    #[test]
    fn read_into_reuses_and_resets() {
        let mut r = reader(b"role: A\nnic-hdl: A1\nremarks: r\n\nrole: B\n");
        let mut obj = RpslObject::default();
        assert!(r.read_into(&mut obj).unwrap());
        assert_eq!(obj.attributes.len(), 3);
        assert!(r.read_into(&mut obj).unwrap());
        assert_eq!(obj.attributes, vec![("role".to_owned(), "B".to_owned())]);
        assert_eq!(obj.line, 5);
        assert!(!r.read_into(&mut obj).unwrap());
        assert!(obj.attributes.is_empty());
    }

    #[test]
    fn over_long_line_is_skipped() {
        let mut text = b"role: A\nremarks: ".to_vec();
        text.extend(std::iter::repeat_n(b'x', (MAX_LINE_BYTES as usize) + 10));
        text.extend_from_slice(b"\nnic-hdl: A1\n");
        let mut r = reader(&text);
        let objs: Vec<_> = r.by_ref().collect::<io::Result<_>>().unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].get("nic-hdl"), Some("A1"));
        assert_eq!(objs[0].get("remarks"), None);
        assert_eq!(r.issues()[0].line, 2);
        assert_eq!(r.lines_read(), 3);
    }

    #[test]
    fn io_error_ends_iteration() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let mut r = RpslReader::new(Box::new(io::BufReader::new(Broken)));
        assert!(r.next().unwrap().is_err());
        assert!(r.next().is_none());
    }

    /// Throughput on a synthetic 200 000-object file shaped like the RIPE
    /// inetnum dump. `cargo test --release -- --ignored --nocapture rpsl_speed`
    #[test]
    #[ignore]
    fn rpsl_speed() {
        use std::fmt::Write as _;
        let mut text = String::from("# RIPE dump header\n\n");
        for i in 0..200_000u32 {
            let a = (i >> 8) & 0xff;
            let b = i & 0xff;
            writeln!(text, "inetnum:        10.{a}.{b}.0 - 10.{a}.{b}.255").unwrap();
            writeln!(text, "netname:        NET-{i}").unwrap();
            writeln!(text, "descr:          Customer {i}").unwrap();
            writeln!(text, "+               second descr line").unwrap();
            writeln!(text, "country:        NO").unwrap();
            writeln!(text, "org:            ORG-N{i}-RIPE").unwrap();
            writeln!(text, "admin-c:        DUMY-RIPE").unwrap();
            writeln!(text, "tech-c:         DUMY-RIPE").unwrap();
            writeln!(text, "abuse-c:        AR{i}-RIPE").unwrap();
            writeln!(text, "status:         ASSIGNED PA").unwrap();
            writeln!(text, "mnt-by:         EXAMPLE-MNT").unwrap();
            writeln!(text, "created:        2020-01-01T00:00:00Z").unwrap();
            writeln!(text, "last-modified:  2020-01-01T00:00:00Z").unwrap();
            writeln!(text, "source:         RIPE # Filtered\n").unwrap();
        }
        let bytes = text.into_bytes();
        let mb = bytes.len() as f64 / 1e6;

        let start = std::time::Instant::now();
        let mut count = 0;
        for obj in reader(&bytes) {
            obj.unwrap();
            count += 1;
        }
        let owned = start.elapsed();
        assert_eq!(count, 200_000);

        let start = std::time::Instant::now();
        let mut r = reader(&bytes);
        let mut obj = RpslObject::default();
        let mut n = 0;
        while r.read_into(&mut obj).unwrap() {
            n += 1;
        }
        let reused = start.elapsed();
        assert_eq!(n, 200_000);

        let start = std::time::Instant::now();
        let mut r = reader(&bytes)
            .only_classes(&["inetnum"])
            .only_attributes(&["netname", "country", "org", "abuse-c"]);
        let mut n = 0;
        while r.read_into(&mut obj).unwrap() {
            n += 1;
        }
        let filtered = start.elapsed();
        assert_eq!(n, 200_000);

        for (label, t) in [
            ("iterator", owned),
            ("read_into", reused),
            ("read_into+filters", filtered),
        ] {
            println!(
                "rpsl {label}: 200000 objects ({mb:.1} MB) in {:.3} s = {:.0} objects/s, {:.0} MB/s",
                t.as_secs_f64(),
                200_000.0 / t.as_secs_f64(),
                mb / t.as_secs_f64()
            );
        }
    }
}
