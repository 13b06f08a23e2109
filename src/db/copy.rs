//! Bulk writes with `COPY … FROM STDIN (FORMAT binary)`: the fastest way
//! into PostgreSQL. In binary format the server skips parsing every field
//! from text (timestamps, addresses, arrays), which was an eighth of its
//! ingest time.
//!
//! Values are encoded by sqlx's own `Encode` (the encoding sqlx uses for
//! bind parameters); only the framing is written here, because no
//! maintained crate frames COPY rows for sqlx. The framing is small and
//! fully specified in the PostgreSQL manual ("COPY", "Binary Format"): a
//! signature and two header words, per row a field count and per field a
//! length (-1 for NULL) and the value, and a trailer.
//!
//! Each value's Rust type must be the column's exact type (`i64` for
//! `bigint`, `i32` for `integer`, `&str` for `text` and `json`, …): the
//! server reads binary fields by the column's type, without conversions.

use sqlx::postgres::{PgArgumentBuffer, PgCopyIn};
use sqlx::{Encode, PgConnection, Postgres, encode::IsNull, error::BoxDynError};

/// Bytes buffered before they are sent.
const FLUSH_AT: usize = 1 << 20;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

pub struct CopyIn<'c> {
    copy: PgCopyIn<&'c mut PgConnection>,
    buf: PgArgumentBuffer,
    /// Where the current row's field count goes.
    row_start: usize,
    fields: i16,
    /// The first value that could not be encoded; reported by `end_row`.
    error: Option<BoxDynError>,
}

impl<'c> CopyIn<'c> {
    /// `COPY {table} {columns} FROM STDIN`; `columns` like `(a, b, c)`.
    pub async fn start(
        conn: &'c mut PgConnection,
        table: &str,
        columns: &str,
    ) -> Result<Self, sqlx::Error> {
        let copy = conn
            .copy_in_raw(&format!(
                "COPY {table} {columns} FROM STDIN (FORMAT binary)"
            ))
            .await?;
        let mut buf = PgArgumentBuffer::default();
        buf.reserve(FLUSH_AT + 64 * 1024);
        buf.extend_from_slice(SIGNATURE);
        buf.extend_from_slice(&0_i32.to_be_bytes()); // flags: no OIDs
        buf.extend_from_slice(&0_i32.to_be_bytes()); // no header extension
        let mut copy = Self {
            copy,
            buf,
            row_start: 0,
            fields: 0,
            error: None,
        };
        copy.begin_row();
        Ok(copy)
    }

    fn begin_row(&mut self) {
        self.row_start = self.buf.len();
        self.buf.extend_from_slice(&0_i16.to_be_bytes());
        self.fields = 0;
    }

    /// One field; `None` is NULL.
    pub fn value<T>(&mut self, value: T) -> &mut Self
    where
        T: for<'q> Encode<'q, Postgres>,
    {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        let len = match value.encode(&mut self.buf) {
            Ok(IsNull::No) => i32::try_from(self.buf.len() - at - 4).ok(),
            Ok(IsNull::Yes) => Some(-1),
            Err(e) => {
                self.error.get_or_insert(e);
                Some(-1)
            }
        };
        let len = len.unwrap_or_else(|| {
            self.error
                .get_or_insert_with(|| "a value longer than 2 GiB".into());
            -1
        });
        if len < 0 {
            self.buf.truncate(at + 4);
        }
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
        self.fields += 1;
        self
    }

    /// A `text` (or `json`) field. NUL, which PostgreSQL text cannot hold,
    /// is replaced.
    pub fn text(&mut self, s: &str) -> &mut Self {
        if s.contains('\0') {
            self.value(s.replace('\0', "\u{FFFD}"))
        } else {
            self.value(s)
        }
    }

    pub fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => self.value(None::<&str>),
        }
    }

    /// Ends the row; sends the buffer when it is full.
    pub async fn end_row(&mut self) -> Result<(), sqlx::Error> {
        if let Some(e) = self.error.take() {
            return Err(sqlx::Error::Encode(e));
        }
        let count = self.fields.to_be_bytes();
        self.buf[self.row_start..self.row_start + 2].copy_from_slice(&count);
        if self.buf.len() >= FLUSH_AT {
            self.copy.send(self.buf.as_slice()).await?;
            self.buf.clear();
        }
        self.begin_row();
        Ok(())
    }

    /// Sends the rest and completes the COPY; returns the rows written.
    pub async fn finish(mut self) -> Result<u64, sqlx::Error> {
        // The row begun after the last `end_row` becomes the trailer.
        self.buf.truncate(self.row_start);
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
        self.copy.send(self.buf.as_slice()).await?;
        self.copy.finish().await
    }
}
