//! Framing for the XML formats (nmap `-oX`, masscan `-oX`): a buffered
//! reader that knows the line of any byte position quick-xml reports, the
//! attribute reading both parsers share, and how a quick-xml error becomes an
//! [`InputError`] naming its line.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};

use quick_xml::Reader;
use quick_xml::events::BytesStart;

use super::InputError;
use super::input::read_retrying;

/// A buffered reader that remembers where newlines were, so a byte position
/// from quick-xml can be turned into a line number. Only recent newlines are
/// kept (the positions asked about are always close to the read position).
pub(crate) struct LineCounting<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    consumed: u64,
    newlines: u64,
    recent: VecDeque<u64>,
}

const RECENT_NEWLINES: usize = 4096;

impl<R: Read> LineCounting<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self::starting_at(inner, 1)
    }

    /// For a reader whose first byte is on line `first_line` (a blank prefix
    /// was already consumed while telling formats apart).
    pub(crate) fn starting_at(inner: R, first_line: u64) -> Self {
        Self {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            filled: 0,
            consumed: 0,
            newlines: first_line.saturating_sub(1),
            recent: VecDeque::with_capacity(RECENT_NEWLINES),
        }
    }

    /// 1-based line of byte offset `at`.
    pub(crate) fn line_at(&self, at: u64) -> u64 {
        let after = self.recent.iter().rev().take_while(|&&nl| nl >= at).count() as u64;
        1 + self.newlines - after
    }

    pub(crate) fn current_line(&self) -> u64 {
        1 + self.newlines
    }
}

impl<R: Read> Read for LineCounting<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for LineCounting<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.filled {
            self.filled = read_retrying(&mut self.inner, &mut self.buf)?;
            self.pos = 0;
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amt: usize) {
        let end = (self.pos + amt).min(self.filled);
        for (i, &b) in self.buf[self.pos..end].iter().enumerate() {
            if b == b'\n' {
                self.newlines += 1;
                if self.recent.len() == RECENT_NEWLINES {
                    self.recent.pop_front();
                }
                self.recent.push_back(self.consumed + i as u64);
            }
        }
        self.consumed += (end - self.pos) as u64;
        self.pos = end;
    }
}

/// A quick-xml error as an [`InputError`]: I/O stays I/O (the stream broke),
/// anything else is the document, named with the line it happened on.
pub(crate) fn xml_error<R: Read>(
    reader: &Reader<LineCounting<R>>,
    e: quick_xml::Error,
) -> InputError {
    match e {
        quick_xml::Error::Io(io) => InputError::Io(
            std::sync::Arc::try_unwrap(io)
                .unwrap_or_else(|shared| io::Error::new(shared.kind(), shared.to_string())),
        ),
        other => {
            let line = reader.get_ref().line_at(reader.error_position());
            InputError::malformed(line, format!("XML is not well formed: {other}"))
        }
    }
}

/// An attribute's value, unescaped (`&#xa;` in script output); text with an
/// unknown entity is kept as written rather than failing the document.
pub(crate) fn attribute(e: &BytesStart<'_>, key: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|err| format!("XML is not well formed: {err}"))?;
        if a.key.as_ref() == key {
            return Ok(Some(match a.unescape_value() {
                Ok(v) => v.into_owned(),
                Err(_) => String::from_utf8_lossy(&a.value).into_owned(),
            }));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counter_maps_positions() {
        let mut lc = LineCounting::new(io::Cursor::new(b"ab\ncd\nef".to_vec()));
        let n = lc.fill_buf().unwrap().len();
        lc.consume(n);
        assert_eq!(lc.line_at(0), 1);
        assert_eq!(lc.line_at(2), 1);
        assert_eq!(lc.line_at(3), 2);
        assert_eq!(lc.line_at(7), 3);
    }

    #[test]
    fn line_counter_starting_after_a_blank_prefix() {
        let mut lc = LineCounting::starting_at(io::Cursor::new(b"ab\ncd".to_vec()), 4);
        assert_eq!(lc.current_line(), 4);
        let n = lc.fill_buf().unwrap().len();
        lc.consume(n);
        assert_eq!(lc.line_at(0), 4);
        assert_eq!(lc.line_at(3), 5);
    }
}
