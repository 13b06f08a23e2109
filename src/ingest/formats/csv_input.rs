//! CSV reading shared by canonical CSV and Shadowserver: the `csv` reader
//! set up for messy input (rows of any length), the header row, and correct
//! line numbers.
//!
//! Line numbers are computed here rather than taken from `csv`'s record
//! positions, which point at the end of the previous record: with CRLF line
//! endings or blank lines between rows they name the wrong line. Instead the
//! bytes `csv` reads are watched for line breaks, and a record's line is that
//! of its first byte.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

use super::InputError;
use super::fields::push_json_string;
use super::input::{read_retrying, skip_bom};

/// Line breaks remembered behind the read position. `csv` reads ahead at
/// most its buffer (set below), so this covers every record start it can
/// still report, unless one record alone has more line breaks than this.
const TRACKED_BREAKS: usize = 1 << 17;
const CSV_BUFFER: usize = 64 * 1024;

/// A `\r` or `\n` seen in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    /// `\n`: ends a line.
    Lf,
    /// A lone `\r` (old Mac line ending): ends a line.
    Cr,
    /// The `\r` of `\r\n`: its `\n` ends the line.
    CrOfCrlf,
    /// A `\r` whose next byte has not been read yet.
    PendingCr,
}

impl Break {
    fn ends_line(self) -> bool {
        matches!(self, Break::Lf | Break::Cr)
    }
}

/// Reads from the input and notes where each `\r` and `\n` is.
struct LineTracking {
    inner: Box<dyn BufRead + Send>,
    read: u64,
    /// Line endings read so far (a pending `\r` not yet counted).
    line_ends: u64,
    /// Recent breaks, oldest first.
    breaks: VecDeque<(u64, Break)>,
}

impl LineTracking {
    /// The line of the first byte at or after `offset` that is not a line
    /// break: where a record that `csv` says starts at `offset` really starts.
    fn record_line(&self, offset: u64) -> u64 {
        let mut first = self.breaks.partition_point(|&(o, _)| o < offset);
        let mut start = offset;
        while let Some(&(o, _)) = self.breaks.get(first) {
            if o != start {
                break;
            }
            start += 1;
            first += 1;
        }
        let ends_after = self
            .breaks
            .range(first..)
            .filter(|(_, b)| b.ends_line())
            .count() as u64;
        1 + self.line_ends - ends_after
    }

    fn push(&mut self, at: u64, b: Break) {
        if self.breaks.len() == TRACKED_BREAKS {
            self.breaks.pop_front();
        }
        self.breaks.push_back((at, b));
    }
}

impl Read for LineTracking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = read_retrying(&mut self.inner, buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            let at = self.read + i as u64;
            if let Some((_, last @ Break::PendingCr)) = self.breaks.back_mut() {
                if b == b'\n' {
                    *last = Break::CrOfCrlf;
                } else {
                    *last = Break::Cr;
                    self.line_ends += 1;
                }
            }
            match b {
                b'\n' => {
                    self.push(at, Break::Lf);
                    self.line_ends += 1;
                }
                b'\r' => self.push(at, Break::PendingCr),
                _ => {}
            }
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Rows of one CSV input, after its header.
pub(crate) struct CsvRows {
    reader: csv::Reader<LineTracking>,
    record: csv::ByteRecord,
}

/// csv errors: I/O stays I/O (the caller treats a broken stream differently
/// from a bad file); anything else is the input's fault.
fn csv_error(e: csv::Error, line: u64) -> InputError {
    match e.into_kind() {
        csv::ErrorKind::Io(io) => InputError::Io(io),
        other => InputError::malformed(line, format!("unreadable CSV: {other:?}")),
    }
}

impl CsvRows {
    /// Reads the header row; `None` for an empty input. `configure` adds
    /// format-specific parsing options.
    pub(crate) fn open(
        mut input: Box<dyn BufRead + Send>,
        configure: impl FnOnce(&mut csv::ReaderBuilder),
    ) -> Result<Option<(Self, csv::ByteRecord, u64)>, InputError> {
        skip_bom(&mut input)?;
        let mut builder = csv::ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(CSV_BUFFER);
        configure(&mut builder);
        let mut rows = Self {
            reader: builder.from_reader(LineTracking {
                inner: input,
                read: 0,
                line_ends: 0,
                breaks: VecDeque::new(),
            }),
            record: csv::ByteRecord::new(),
        };
        match rows.next_row()? {
            None => Ok(None),
            Some((line, header)) => {
                let header = header.clone();
                Ok(Some((rows, header, line)))
            }
        }
    }

    /// The next row and the line it starts on.
    pub(crate) fn next_row(&mut self) -> Result<Option<(u64, &csv::ByteRecord)>, InputError> {
        let start = self.reader.position().byte();
        let read = self.reader.read_byte_record(&mut self.record);
        // Only now have the bytes at `start` surely been read (and their
        // line breaks noted): before, a CRLF's `\n` may still be unread.
        let line = self.reader.get_ref().record_line(start);
        match read {
            Ok(true) => Ok(Some((line, &self.record))),
            Ok(false) => Ok(None),
            Err(e) => Err(csv_error(e, line)),
        }
    }
}

/// The row as a JSON object of header name → cell, for `raw`. Cells past the
/// header are named `columnN`.
pub(crate) fn row_as_json(names: &[String], record: &csv::ByteRecord) -> String {
    let mut raw = String::with_capacity(record.as_slice().len() + names.len() * 12);
    raw.push('{');
    for (i, cell) in record.iter().enumerate() {
        if i > 0 {
            raw.push(',');
        }
        match names.get(i) {
            Some(n) => push_json_string(&mut raw, n),
            None => push_json_string(&mut raw, &format!("column{}", i + 1)),
        }
        raw.push(':');
        push_json_string(&mut raw, &String::from_utf8_lossy(cell));
    }
    raw.push('}');
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str) -> Vec<(u64, String)> {
        let reader = Box::new(io::BufReader::with_capacity(
            2,
            io::Cursor::new(input.as_bytes().to_vec()),
        ));
        let (mut rows, header, line) = CsvRows::open(reader, |_| {}).unwrap().unwrap();
        let mut out = vec![(line, String::from_utf8_lossy(&header[0]).into_owned())];
        while let Some((line, rec)) = rows.next_row().unwrap() {
            out.push((line, String::from_utf8_lossy(&rec[0]).into_owned()));
        }
        out
    }

    #[test]
    fn line_numbers_with_lf_crlf_blank_lines_and_multiline_cells() {
        let expect = vec![(1, "h".into()), (2, "a".into()), (3, "b".into())];
        assert_eq!(lines("h\na\nb\n"), expect);
        assert_eq!(lines("h\r\na\r\nb\r\n"), expect);
        assert_eq!(lines("h\ra\rb"), expect);
        assert_eq!(
            lines("\n\nh\r\n\r\na\n\n\nb"),
            vec![(3, "h".into()), (5, "a".into()), (8, "b".into())]
        );
        assert_eq!(
            lines("h\n\"x\r\ny\"\nb\n"),
            vec![(1, "h".into()), (2, "x\r\ny".into()), (4, "b".into())]
        );
    }

    #[test]
    fn raw_row_json() {
        let mut rec = csv::ByteRecord::new();
        rec.push_field(b"1");
        rec.push_field(b"a\"b");
        rec.push_field(b"extra");
        let names = vec!["ip".to_owned(), "tag".to_owned()];
        assert_eq!(
            row_as_json(&names, &rec),
            r#"{"ip":"1","tag":"a\"b","column3":"extra"}"#
        );
    }
}
