//! Helpers for the format tests: sample locations, readers, collecting items.

use std::io::{self, BufRead, Cursor, Read};
use std::path::PathBuf;

use super::{Format, InputError, Item, parse};
use crate::ingest::observation::{LineError, Observation};

/// The format samples, in the repository (`tests/fixtures/formats`; where
/// each came from is in `tests/fixtures/SOURCES.md`).
pub(crate) fn formats_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/formats"
    ))
}

pub(crate) fn sample(rel: &str) -> Box<dyn BufRead + Send> {
    let path = formats_dir().join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Box::new(Cursor::new(bytes))
}

pub(crate) fn text(s: &str) -> Box<dyn BufRead + Send> {
    Box::new(Cursor::new(s.as_bytes().to_vec()))
}

/// All items; panics on an InputError.
pub(crate) fn items(format: &Format, input: Box<dyn BufRead + Send>) -> Vec<Item> {
    parse(format, input)
        .map(|r| r.unwrap_or_else(|e| panic!("unexpected InputError: {e}")))
        .collect()
}

/// Items up to the first InputError, and that error.
pub(crate) fn items_until_error(
    format: &Format,
    input: Box<dyn BufRead + Send>,
) -> (Vec<Item>, Option<InputError>) {
    let mut out = Vec::new();
    let mut it = parse(format, input);
    for r in it.by_ref() {
        match r {
            Ok(i) => out.push(i),
            Err(e) => {
                assert!(it.next().is_none(), "iterator must end after an error");
                return (out, Some(e));
            }
        }
    }
    (out, None)
}

pub(crate) fn observations(items: &[Item]) -> Vec<&Observation> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Observation(o, _) => Some(o),
            Item::Rejected(_) | Item::Note(_) => None,
        })
        .collect()
}

pub(crate) fn rejections(items: &[Item]) -> Vec<&LineError> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Rejected(e) => Some(e),
            Item::Observation(..) | Item::Note(_) => None,
        })
        .collect()
}

/// Serves `data`, then fails with an I/O error after `fail_after` bytes, the
/// way a dropped connection looks to the parser.
pub(crate) struct FailingReader {
    data: Cursor<Vec<u8>>,
    remaining: usize,
}

impl FailingReader {
    pub(crate) fn boxed(data: &str, fail_after: usize) -> Box<dyn BufRead + Send> {
        Box::new(io::BufReader::with_capacity(
            64,
            FailingReader {
                data: Cursor::new(data.as_bytes().to_vec()),
                remaining: fail_after,
            },
        ))
    }
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "client went away",
            ));
        }
        let n = buf.len().min(self.remaining);
        let got = self.data.read(&mut buf[..n])?;
        self.remaining -= got;
        Ok(got)
    }
}
