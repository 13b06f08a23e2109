//! Bulk writes with `COPY … FROM STDIN` in text format: the fastest way
//! into PostgreSQL. Written by hand over sqlx's raw COPY because no
//! maintained crate encodes rows for it; the format is small (tab-separated
//! fields, `\N` for NULL, backslash escapes) and fully specified in the
//! PostgreSQL manual ("COPY", "Text Format").

use std::fmt::{Display, Write as _};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::postgres::PgCopyIn;

/// Bytes buffered before they are sent.
const FLUSH_AT: usize = 1 << 20;

pub struct CopyIn<'c> {
    copy: PgCopyIn<&'c mut PgConnection>,
    buf: String,
    row_start: bool,
}

impl<'c> CopyIn<'c> {
    /// `COPY {table} {columns} FROM STDIN`; `columns` like `(a, b, c)`.
    pub async fn start(
        conn: &'c mut PgConnection,
        table: &str,
        columns: &str,
    ) -> Result<Self, sqlx::Error> {
        let copy = conn
            .copy_in_raw(&format!("COPY {table} {columns} FROM STDIN"))
            .await?;
        Ok(Self {
            copy,
            buf: String::with_capacity(FLUSH_AT + 64 * 1024),
            row_start: true,
        })
    }

    fn field(&mut self) -> &mut String {
        if !self.row_start {
            self.buf.push('\t');
        }
        self.row_start = false;
        &mut self.buf
    }

    pub fn text(&mut self, s: &str) -> &mut Self {
        let buf = self.field();
        escape_into(buf, s);
        self
    }

    pub fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.null(),
        }
    }

    /// A value whose `Display` needs no escaping (numbers, addresses).
    pub fn plain(&mut self, v: impl Display) -> &mut Self {
        let buf = self.field();
        let _ = write!(buf, "{v}");
        self
    }

    pub fn opt_plain(&mut self, v: Option<impl Display>) -> &mut Self {
        match v {
            Some(v) => self.plain(v),
            None => self.null(),
        }
    }

    pub fn time(&mut self, t: DateTime<Utc>) -> &mut Self {
        self.plain(t.format("%Y-%m-%d %H:%M:%S%.6f+00"))
    }

    pub fn opt_time(&mut self, t: Option<DateTime<Utc>>) -> &mut Self {
        match t {
            Some(t) => self.time(t),
            None => self.null(),
        }
    }

    pub fn bool(&mut self, b: bool) -> &mut Self {
        self.plain(if b { "t" } else { "f" })
    }

    /// A `text[]` value.
    pub fn text_array(&mut self, items: &[String]) -> &mut Self {
        let mut literal = String::from("{");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                literal.push(',');
            }
            literal.push('"');
            for c in item.chars() {
                if c == '"' || c == '\\' {
                    literal.push('\\');
                }
                literal.push(c);
            }
            literal.push('"');
        }
        literal.push('}');
        self.text(&literal)
    }

    pub fn null(&mut self) -> &mut Self {
        self.field().push_str("\\N");
        self
    }

    /// Ends the row; sends the buffer when it is full.
    pub async fn end_row(&mut self) -> Result<(), sqlx::Error> {
        self.buf.push('\n');
        self.row_start = true;
        if self.buf.len() >= FLUSH_AT {
            self.copy.send(self.buf.as_bytes()).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Sends the rest and completes the COPY; returns the rows written.
    pub async fn finish(mut self) -> Result<u64, sqlx::Error> {
        if !self.buf.is_empty() {
            self.copy.send(self.buf.as_bytes()).await?;
        }
        self.copy.finish().await
    }
}

/// Backslash, tab, newline and carriage return escaped; NUL, which
/// PostgreSQL text cannot hold, replaced.
fn escape_into(buf: &mut String, s: &str) {
    if !s.contains(['\\', '\t', '\n', '\r', '\0']) {
        buf.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '\\' => buf.push_str("\\\\"),
            '\t' => buf.push_str("\\t"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\0' => buf.push('\u{FFFD}'),
            c => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_text_escapes() {
        let mut b = String::new();
        super::escape_into(&mut b, "a\tb\\c\nd\re\0");
        assert_eq!(b, "a\\tb\\\\c\\nd\\re\u{FFFD}");
    }
}
