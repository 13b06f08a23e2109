//! The ingest pipeline, from a request body to stored observations and
//! up-to-date findings:
//!
//! 1. a blocking thread reads the (optionally gzip) body as it arrives,
//!    hashes it for `Idempotency-Key`, enforces the size limit, parses it
//!    with the chosen format and hands over chunks through a bounded channel
//!    (so memory stays bounded whatever the body's size);
//! 2. an async stage admits and attributes each chunk with the in-memory
//!    prefix table and reads its current findings ahead on a second
//!    connection;
//! 3. another folds it into findings ([`crate::findings::fold`]) and writes
//!    findings, history and observations (`COPY`) ([`super::chunk`]), all
//!    in one transaction for the whole request, which holds the findings
//!    writer lock: a batch is stored completely or not at all, also when
//!    the client disconnects mid-body or the server dies.

use std::io::{self, BufReader, Read};
use std::sync::Arc;

use axum::body::Body;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::chunk::{self, Chunk, Touched};
use super::formats::{self, Format, InputError, Item};
use super::observation::LineError;
use crate::app::AppState;
use crate::attribution::table::PrefixTable;
use crate::error::ApiError;
use crate::findings::coverage::Coverage;
use crate::findings::store::{self as finding_store, Current};

/// Rejected lines listed in a response; the count covers all of them.
pub const MAX_LISTED_ERRORS: usize = 1000;

/// How the body arrives.
pub struct BodySpec {
    pub body: Body,
    pub gzip: bool,
    pub format: Format,
    pub limit: u64,
}

/// What the run (if any) allows.
#[derive(Clone, Default)]
pub struct RunRules {
    pub scan_run_id: Option<i64>,
    pub checks: Vec<String>,
    pub scope: Vec<IpNet>,
}

/// What a batch did to findings: history events by kind.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FindingCounts {
    pub opened: u64,
    pub reopened: u64,
    pub changed: u64,
    pub escalated: u64,
    pub resolved: u64,
    /// Open compromised findings a scan run did not see (kept open).
    #[serde(default)]
    pub missed: u64,
    /// Findings whose whole history was folded again because an
    /// observation arrived late (older than what they were folded from).
    #[serde(default)]
    pub replayed: u64,
}

impl FindingCounts {
    pub(super) fn add(&mut self, other: &FindingCounts) {
        self.opened += other.opened;
        self.reopened += other.reopened;
        self.changed += other.changed;
        self.escalated += other.escalated;
        self.resolved += other.resolved;
        self.missed += other.missed;
        self.replayed += other.replayed;
    }

    pub(super) fn add_counts(&mut self, c: &crate::findings::writer::EventCounts) {
        self.opened += c.opened;
        self.reopened += c.reopened;
        self.changed += c.changed;
        self.escalated += c.escalated;
        self.resolved += c.resolved + c.closed;
        self.missed += c.missed;
    }
}

#[derive(Debug, Default, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttributionCounts {
    pub network: u64,
    pub asn: u64,
    pub none: u64,
}

/// The answer to an ingest request.
#[derive(Debug, Default, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IngestSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scan_run_id: Option<i64>,
    pub accepted: u64,
    pub rejected: u64,
    /// The first rejected lines (at most 1000), with line, field and reason.
    pub errors: Vec<LineError>,
    /// More lines were rejected than are listed.
    pub errors_truncated: bool,
    pub findings: FindingCounts,
    pub attribution: AttributionCounts,
    /// What the client should know about the input as a whole, e.g. a
    /// report type stored without a mapping. Each note once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The earliest and latest time of the accepted observations.
    #[serde(skip)]
    pub(super) span: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl IngestSummary {
    pub(super) fn widen_span(&mut self, at: DateTime<Utc>) {
        self.span = Some(match self.span {
            Some((from, to)) => (from.min(at), to.max(at)),
            None => (at, at),
        });
    }

    pub(super) fn note(&mut self, note: String) {
        if !self.notes.contains(&note) {
            self.notes.push(note);
        }
    }

    pub(super) fn reject(&mut self, e: LineError) {
        self.rejected += 1;
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(e);
        } else {
            self.errors_truncated = true;
        }
    }
}

/// The body exceeded its limit.
#[derive(Debug)]
struct TooLarge(u64);

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body larger than {} bytes", self.0)
    }
}

impl std::error::Error for TooLarge {}

/// Counts, limits and hashes what the parser reads. The hash is shared
/// because the parser owns (and drops) the reader.
struct Metered<R> {
    inner: R,
    read: u64,
    limit: u64,
    hasher: Arc<std::sync::Mutex<Sha256>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                TooLarge(self.limit),
            ));
        }
        match self.hasher.lock() {
            Ok(mut h) => h.update(&buf[..n]),
            Err(_) => return Err(io::Error::other("request hash poisoned")),
        }
        Ok(n)
    }
}

enum Msg {
    Chunk(Vec<Item>),
    Failed(InputError),
}

/// The body as a blocking reader, gunzipped when it came gzipped (every
/// member of a concatenated gzip stream), and unpacked when it is itself a
/// gzip or zip file ([`super::unpack`]). Read on the parser's thread.
fn body_reader(spec_body: Body, gzip: bool) -> Box<dyn Read + Send> {
    let stream = spec_body.into_data_stream().map_err(|e| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("request body interrupted: {e}"),
        )
    });
    let reader = SyncIoBridge::new(StreamReader::new(stream));
    let decoded: Box<dyn Read + Send> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    // A `.csv.gz` or `.csv.zip` sent as the file it is, without
    // Content-Encoding (its first bytes tell).
    Box::new(super::unpack::Unpacked::new(decoded))
}

/// Parses the body on the current (blocking) thread, handing chunks of up
/// to `chunk_rows` items to `sink` (which returns false to stop), and
/// returns the request hash over everything the parser read.
///
/// The first chunks are smaller (an eighth, a quarter, a half of
/// `chunk_rows`): the database starts on a request as soon as its first
/// chunk is parsed, attributed and read ahead, and small first chunks keep
/// that wait short.
fn parse_body(
    spec: BodySpec,
    hasher: Sha256,
    chunk_rows: usize,
    mut sink: impl FnMut(Msg) -> bool,
) -> Option<Vec<u8>> {
    let hasher = Arc::new(std::sync::Mutex::new(hasher));
    let metered = Metered {
        inner: body_reader(spec.body, spec.gzip),
        read: 0,
        limit: spec.limit,
        hasher: hasher.clone(),
    };
    let input = Box::new(BufReader::with_capacity(256 * 1024, metered));
    let mut size = (chunk_rows / 8).max(1);
    let mut chunk = Vec::with_capacity(size);
    for item in formats::parse(&spec.format, input) {
        match item {
            Ok(item) => {
                chunk.push(item);
                if chunk.len() >= size {
                    size = (size * 2).min(chunk_rows);
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(size));
                    if !sink(Msg::Chunk(full)) {
                        return None;
                    }
                }
            }
            Err(e) => {
                sink(Msg::Failed(e));
                return None;
            }
        }
    }
    if !chunk.is_empty() && !sink(Msg::Chunk(chunk)) {
        return None;
    }
    // Everything the parser read, which is everything it answered for.
    hasher.lock().ok().map(|h| h.clone().finalize().to_vec())
}

/// The request hash of a body, read exactly as [`ingest`] would read it
/// (for replaying an idempotent request), storing nothing.
pub async fn hash_only(spec: BodySpec, hasher: Sha256) -> Result<Vec<u8>, ApiError> {
    let mut failure = None;
    let hash = tokio::task::spawn_blocking(move || {
        let hash = parse_body(spec, hasher, 4096, |msg| match msg {
            Msg::Chunk(_) => true,
            Msg::Failed(e) => {
                failure = Some(input_problem(e));
                false
            }
        });
        (hash, failure)
    })
    .await
    .map_err(|e| ApiError::Internal(e.into()))?;
    match hash {
        (Some(hash), _) => Ok(hash),
        (None, Some(e)) => Err(e),
        (None, None) => Err(ApiError::Internal(anyhow::anyhow!("no request hash"))),
    }
}

fn io_problem(e: io::Error) -> ApiError {
    if let Some(too_large) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TooLarge>())
    {
        return ApiError::PayloadTooLarge(too_large.to_string());
    }
    ApiError::BadRequest(format!("the request body could not be read: {e}"))
}

fn input_problem(e: InputError) -> ApiError {
    match e {
        InputError::Io(e) => io_problem(e),
        InputError::Malformed { line, reason } => {
            ApiError::BadRequest(format!("input is unreadable at line {line}: {reason}"))
        }
    }
}

/// Runs the pipeline inside `tx`. Returns the summary and the request hash
/// (for idempotency); the caller commits (or not).
pub async fn ingest(
    state: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    spec: BodySpec,
    rules: RunRules,
    hasher: Sha256,
) -> Result<(IngestSummary, Vec<u8>), ApiError> {
    let chunk_rows = state.settings.ingest_chunk_rows;
    let (sender, mut receiver) = mpsc::channel::<Msg>(2);
    let parser = tokio::task::spawn_blocking(move || {
        parse_body(spec, hasher, chunk_rows, |msg| {
            sender.blocking_send(msg).is_ok()
        })
    });

    // Before anything is read: then nothing but this request can create a
    // finding until it commits, and what it reads ahead stays true but for
    // its own writes (see `chunk`).
    finding_store::lock_writers(tx).await?;
    // For this transaction only. Every statement of the fold probes rows by
    // key or by row address; with a chunk of 20 000 keys against a table of
    // a few hundred thousand findings, the planner would rather hash-join a
    // scan of the whole table (10x slower, and slower still as the table
    // grows).
    sqlx::query(
        "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)",
    )
    .execute(&mut **tx)
    .await?;
    let table = state.attributor.current(&state.pool).await?;
    // Which finished runs covered which keys; none can finish while this
    // batch holds the writer lock.
    let coverage = Coverage::load(tx).await?;
    let mut summary = IngestSummary {
        scan_run_id: rules.scan_run_id,
        ..IngestSummary::default()
    };
    let stored = store_chunks(
        state,
        tx,
        &table,
        &rules,
        &coverage,
        &mut receiver,
        &mut summary,
    )
    .await;
    // Dropping the receiver stops the parser at its next chunk.
    drop(receiver);
    stored?;
    let hash = parser
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("the parser ended without a request hash"))
        })?;
    if let Some(id) = rules.scan_run_id {
        super::scans::record_batch(tx, id, summary.accepted, summary.rejected, summary.span)
            .await?;
    }
    let f = &summary.findings;
    if f.opened + f.reopened + f.changed + f.escalated + f.resolved + f.missed + f.replayed > 0 {
        // Committed with the findings: drafting notifications for them.
        crate::notifications::drafting::enqueue_if_active(tx, state.clock.now()).await?;
    }
    state.metrics.observations_accepted.inc_by(summary.accepted);
    state.metrics.observations_rejected.inc_by(summary.rejected);
    Ok((summary, hash))
}

/// Stores the chunks as they arrive, in two stages that run at once: one
/// admits and attributes each chunk and reads its current findings on a
/// second connection (when the pool has one to spare), the other folds and
/// writes them in the transaction. Two database backends then work for the
/// request; see [`chunk`] for why reading outside the transaction is safe.
async fn store_chunks(
    state: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    table: &PrefixTable,
    rules: &RunRules,
    coverage: &Coverage,
    receiver: &mut mpsc::Receiver<Msg>,
    summary: &mut IngestSummary,
) -> Result<(), ApiError> {
    let mut reader = spare_connection(&state.pool).await;
    // One chunk read ahead waits here while the transaction writes another.
    let (ready, mut next) = mpsc::channel::<(Chunk, Option<Current>)>(1);
    let admitted = &mut *summary;
    let prepare = async move {
        while let Some(msg) = receiver.recv().await {
            let items = match msg {
                Msg::Chunk(items) => items,
                Msg::Failed(e) => return Err(input_problem(e)),
            };
            let Some(chunk) = chunk::prepare(state, table, rules, items, admitted) else {
                continue;
            };
            let read = match reader.as_mut() {
                Some(conn) => {
                    let found = finding_store::read_current(conn, &chunk.keys()).await;
                    read_ahead(found, &mut reader)
                }
                None => None,
            };
            if ready.send((chunk, read)).await.is_err() {
                break; // the transaction failed; its error is the answer
            }
        }
        Ok(())
    };
    let mut stored = IngestSummary::default();
    let written = &mut stored;
    // Owns the receiving end: when the transaction fails, the channel
    // closes and the first stage stops instead of waiting to hand over.
    let write = async move {
        let mut touched = Touched::default();
        while let Some((chunk, read)) = next.recv().await {
            chunk::store(
                state,
                tx,
                rules,
                coverage,
                chunk,
                read,
                &mut touched,
                written,
            )
            .await?;
        }
        Ok::<_, ApiError>(())
    };
    let (prepared, written) = tokio::join!(prepare, write);
    written?;
    prepared?;
    summary.accepted += stored.accepted;
    summary.findings.add(&stored.findings);
    Ok(())
}

/// The result of a read ahead; after a failure the request reads in its
/// transaction from then on.
fn read_ahead(
    found: Result<Current, sqlx::Error>,
    reader: &mut Option<PoolConnection<Postgres>>,
) -> Option<Current> {
    found
        .inspect_err(|e| {
            tracing::warn!(error = %e, "reading ahead failed; reading in the transaction");
            *reader = None;
        })
        .ok()
}

/// A connection to read ahead on, while a quarter of the pool stays free
/// for other requests: an idle one, or a new one while the pool has room.
/// Never more than a moment in the pool's queue; without one the request
/// reads in its transaction.
async fn spare_connection(pool: &PgPool) -> Option<PoolConnection<Postgres>> {
    let max = pool.options().get_max_connections();
    let available = u32::try_from(pool.num_idle())
        .unwrap_or(u32::MAX)
        .saturating_add(max.saturating_sub(pool.size()));
    if available <= max / 4 {
        return None;
    }
    if let Some(conn) = pool.try_acquire() {
        return Some(conn);
    }
    tokio::time::timeout(std::time::Duration::from_millis(200), pool.acquire())
        .await
        .ok()?
        .ok()
}
