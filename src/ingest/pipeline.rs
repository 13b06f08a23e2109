//! The ingest pipeline, from a request body to stored observations and
//! up-to-date findings:
//!
//! 1. a blocking thread reads the (optionally gzip) body as it arrives,
//!    hashes it for `Idempotency-Key`, enforces the size limit, parses it
//!    with the chosen format and hands over chunks through a bounded channel
//!    (so memory stays bounded whatever the body's size);
//! 2. the async side attributes each chunk with the in-memory prefix table,
//!    folds it into findings ([`crate::findings::fold`]) and writes findings,
//!    history and observations (`COPY`), all in one transaction for the whole
//!    request: a batch is stored completely or not at all, also when the
//!    client disconnects mid-body or the server dies.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::sync::Arc;

use axum::body::Body;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::TryStreamExt;
use ipnet::IpNet;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, Postgres, Transaction};
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::formats::{self, Format, InputError, Item};
use super::observation::{LineError, Observation};
use super::store::{self, ID_BLOCK, StoredObservation};
use crate::app::AppState;
use crate::attribution::table::{Match, PrefixTable};
use crate::error::ApiError;
use crate::findings::fold::{self, Folded, Owner, Seen};
use crate::findings::store::{self as finding_store, Key, NewEvent};

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

#[derive(Debug, Default, Clone, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct FindingCounts {
    pub opened: u64,
    pub reopened: u64,
    pub changed: u64,
    pub escalated: u64,
    pub resolved: u64,
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
}

impl IngestSummary {
    fn reject(&mut self, e: LineError) {
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

fn body_reader(spec_body: Body, gzip: bool) -> Box<dyn tokio::io::AsyncRead + Send + Unpin> {
    let stream = spec_body.into_data_stream().map_err(|e| {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("request body interrupted: {e}"),
        )
    });
    let reader = StreamReader::new(stream);
    if gzip {
        let mut decoder = async_compression::tokio::bufread::GzipDecoder::new(reader);
        decoder.multiple_members(true);
        Box::new(decoder)
    } else {
        Box::new(reader)
    }
}

/// Parses the body on the current (blocking) thread, handing chunks of
/// `chunk_rows` items to `sink` (which returns false to stop), and returns
/// the request hash over everything the parser read.
fn parse_body(
    spec: BodySpec,
    hasher: Sha256,
    chunk_rows: usize,
    mut sink: impl FnMut(Msg) -> bool,
) -> Option<Vec<u8>> {
    let hasher = Arc::new(std::sync::Mutex::new(hasher));
    let metered = Metered {
        inner: SyncIoBridge::new(body_reader(spec.body, spec.gzip)),
        read: 0,
        limit: spec.limit,
        hasher: hasher.clone(),
    };
    let input = Box::new(BufReader::with_capacity(256 * 1024, metered));
    let mut chunk = Vec::with_capacity(chunk_rows);
    for item in formats::parse(&spec.format, input) {
        match item {
            Ok(item) => {
                chunk.push(item);
                if chunk.len() >= chunk_rows {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_rows));
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
    let chunk_rows = state.settings.ingest_chunk_rows.min(ID_BLOCK);
    let (sender, mut receiver) = mpsc::channel::<Msg>(2);
    let parser = tokio::task::spawn_blocking(move || {
        parse_body(spec, hasher, chunk_rows, |msg| {
            sender.blocking_send(msg).is_ok()
        })
    });

    // For this transaction only. Every statement of the fold probes rows by
    // key or by row address; with a chunk of 20 000 keys against a table of
    // a few hundred thousand findings, the planner would rather hash-join a
    // scan of the whole table (10x slower, and slower still as the table
    // grows). JIT compilation costs more than these statements run.
    sqlx::query(
        "SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true),
                set_config('jit', 'off', true)",
    )
    .execute(&mut **tx)
    .await?;
    let table = state.attributor.current(&state.pool).await?;
    let mut summary = IngestSummary {
        scan_run_id: rules.scan_run_id,
        ..IngestSummary::default()
    };
    let mut failure = None;
    while let Some(msg) = receiver.recv().await {
        match msg {
            Msg::Chunk(items) => {
                if let Err(e) = process_chunk(state, tx, &table, &rules, items, &mut summary).await
                {
                    failure = Some(e);
                    break;
                }
            }
            Msg::Failed(e) => {
                failure = Some(input_problem(e));
                break;
            }
        }
    }
    // Dropping the receiver stops the parser at its next chunk.
    drop(receiver);
    if let Some(e) = failure {
        return Err(e);
    }
    let hash = parser
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("the parser ended without a request hash"))
        })?;
    if let Some(id) = rules.scan_run_id {
        sqlx::query(
            "UPDATE scan_runs SET observations_accepted = observations_accepted + $2,
                                  observations_rejected = observations_rejected + $3 WHERE id = $1",
        )
        .bind(id)
        .bind(summary.accepted as i64)
        .bind(summary.rejected as i64)
        .execute(&mut **tx)
        .await?;
    }
    state.metrics.observations_accepted.inc_by(summary.accepted);
    state.metrics.observations_rejected.inc_by(summary.rejected);
    Ok((summary, hash))
}

/// Oldest observation time accepted; older ones are certainly a clock or
/// parsing mistake, and would create partitions nobody wants.
fn earliest_accepted() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(1990, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Run-level rules and sanity checks a parser cannot know about.
fn admit(
    o: &Observation,
    rules: &RunRules,
    line: u64,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<(), LineError> {
    if retention_days > 0 && o.observed_at < now - Duration::days(i64::from(retention_days)) {
        return Err(LineError::new(
            line,
            Some("observed_at"),
            format!(
                "{} is older than the retention period ({retention_days} days)",
                o.observed_at.to_rfc3339()
            ),
        ));
    }
    if o.observed_at > now + Duration::days(1) {
        return Err(LineError::new(
            line,
            Some("observed_at"),
            format!("{} is in the future", o.observed_at.to_rfc3339()),
        ));
    }
    if o.observed_at < earliest_accepted() {
        return Err(LineError::new(
            line,
            Some("observed_at"),
            format!("{} is before 1990", o.observed_at.to_rfc3339()),
        ));
    }
    if !rules.checks.is_empty() && !rules.checks.iter().any(|c| c == &o.check) {
        return Err(LineError::new(
            line,
            Some("check"),
            format!(
                "{:?} is not one of this scan run's checks ({})",
                o.check,
                rules.checks.join(", ")
            ),
        ));
    }
    if !rules.scope.is_empty() && !rules.scope.iter().any(|n| n.contains(&o.ip)) {
        return Err(LineError::new(
            line,
            Some("ip"),
            format!("{} is outside this scan run's scope", o.ip),
        ));
    }
    Ok(())
}

fn owner_of(m: Match<'_>, asn: Option<u32>) -> Owner {
    match m {
        Match::Network(n) => Owner {
            organisation_id: Some(n.organisation_id),
            network_id: Some(n.network_id),
            asn: None,
            attribution: "network",
        },
        Match::Asn(a) => Owner {
            organisation_id: Some(a.organisation_id),
            network_id: None,
            asn: Some(i64::from(a.asn)),
            attribution: "asn",
        },
        Match::None => Owner {
            asn: asn.map(i64::from),
            ..Owner::default()
        },
    }
}

async fn process_chunk(
    state: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    table: &Arc<PrefixTable>,
    rules: &RunRules,
    items: Vec<Item>,
    summary: &mut IngestSummary,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let started = std::time::Instant::now();
    let mut observations: Vec<Observation> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Observation(o, line) => {
                match admit(&o, rules, line, now, state.settings.retention_days) {
                    Ok(()) => observations.push(o),
                    Err(e) => summary.reject(e),
                }
            }
            Item::Rejected(e) => summary.reject(e),
        }
    }
    if observations.is_empty() {
        return Ok(());
    }
    store::ensure_partitions(&state.pool, observations.iter().map(|o| o.observed_at)).await?;
    let first_id = store::reserve_ids(tx).await?;

    let owners: Vec<Owner> = observations
        .iter()
        .map(|o| {
            owner_of(
                table.attribute(o.ip, o.observed_at.timestamp_micros(), o.asn),
                o.asn,
            )
        })
        .collect();
    for owner in &owners {
        match owner.attribution {
            "network" => summary.attribution.network += 1,
            "asn" => summary.attribution.asn += 1,
            _ => summary.attribution.none += 1,
        }
    }

    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, o) in observations.iter().enumerate() {
        by_key
            .entry(Key {
                ip: o.ip,
                port: o.port,
                protocol: o.protocol.clone(),
                check: o.check.clone(),
            })
            .or_default()
            .push(i);
    }
    let prepared = started.elapsed();
    let finding_ids = fold_into_findings(
        tx,
        &observations,
        &owners,
        first_id,
        &by_key,
        rules,
        summary,
    )
    .await?;
    let folded = started.elapsed();

    let rows: Vec<StoredObservation<'_>> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| StoredObservation {
            id: first_id + i as i64,
            scan_run_id: rules.scan_run_id,
            finding_id: finding_ids[i],
            organisation_id: owners[i].organisation_id,
            network_id: owners[i].network_id,
            attribution: owners[i].attribution,
            observation: o,
        })
        .collect();
    store::copy_observations(tx, &rows).await?;
    summary.accepted += observations.len() as u64;
    tracing::debug!(
        rows = observations.len(),
        prepare_ms = prepared.as_millis() as u64,
        fold_ms = (folded - prepared).as_millis() as u64,
        copy_ms = (started.elapsed() - folded).as_millis() as u64,
        "chunk stored"
    );
    Ok(())
}

/// Folds the chunk into findings inside a savepoint; when a concurrent
/// request created or rewrote one of the same findings first, the savepoint
/// is rolled back and the fold runs again against what that request stored.
async fn fold_into_findings(
    tx: &mut Transaction<'static, Postgres>,
    observations: &[Observation],
    owners: &[Owner],
    first_id: i64,
    by_key: &HashMap<Key, Vec<usize>>,
    rules: &RunRules,
    summary: &mut IngestSummary,
) -> Result<Vec<Option<i64>>, ApiError> {
    // Each failed attempt waited for the competing transaction to finish, so
    // attempts are bounded by the progress of others, not by a clock.
    const ATTEMPTS: usize = 20;
    for attempt in 1..=ATTEMPTS {
        let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
        match fold_once(
            &mut savepoint,
            observations,
            owners,
            first_id,
            by_key,
            rules,
        )
        .await?
        {
            Some((ids, counts)) => {
                savepoint.commit().await?;
                let f = &mut summary.findings;
                f.opened += counts.opened;
                f.reopened += counts.reopened;
                f.changed += counts.changed;
                f.escalated += counts.escalated;
                f.resolved += counts.resolved;
                return Ok(ids);
            }
            None => {
                savepoint.rollback().await?;
                tracing::debug!(attempt, "concurrent finding creation; folding again");
            }
        }
    }
    Err(ApiError::Unavailable(
        "findings kept changing under this batch; retry it".to_owned(),
    ))
}

/// `None` when a concurrent request created or rewrote one of the same
/// findings first (fold again).
async fn fold_once(
    conn: &mut PgConnection,
    observations: &[Observation],
    owners: &[Owner],
    first_id: i64,
    by_key: &HashMap<Key, Vec<usize>>,
    rules: &RunRules,
) -> Result<Option<(Vec<Option<i64>>, FindingCounts)>, ApiError> {
    let mut keys: Vec<&Key> = by_key.keys().collect();
    // In index order, so the lookups walk the index instead of jumping.
    keys.sort_unstable();
    let t0 = std::time::Instant::now();
    let finding_store::Current {
        findings: mut existing,
        versions,
    } = finding_store::read_current(conn, &keys).await?;
    let t_read = t0.elapsed();
    let mut folds: Vec<(&Key, &Vec<usize>, Folded)> = Vec::with_capacity(by_key.len());
    for (key, indices) in by_key {
        let seen: Vec<Seen<'_>> = indices
            .iter()
            .map(|&i| Seen {
                observation_id: first_id + i as i64,
                observed_at: observations[i].observed_at,
                state: observations[i].state,
                severity: observations[i].severity,
                cves: &observations[i].cves,
                owner: owners[i],
            })
            .collect();
        let folded = fold::fold(existing.remove(key), &seen);
        folds.push((key, indices, folded));
    }

    // Key order: new findings are written (and get their ids) in the same
    // order by every batch, so two batches creating the same findings wait
    // for each other instead of deadlocking.
    folds.sort_unstable_by(|a, b| a.0.cmp(b.0));

    // Updates first: a finding superseded here must stop being current
    // before its successor is inserted.
    let mut updates: Vec<&fold::FindingState> = folds
        .iter()
        .flat_map(|(_, _, f)| f.findings.iter())
        .filter(|s| s.id.is_some() && s.dirty)
        .collect();
    // In id order, like every other batch: concurrent updates of the same
    // findings then queue behind each other instead of deadlocking.
    updates.sort_unstable_by_key(|s| s.id);
    if !finding_store::update_existing(conn, &updates, &versions).await? {
        return Ok(None);
    }
    let t_update = t0.elapsed();

    let new_rows: Vec<(&Key, &fold::FindingState)> = folds
        .iter()
        .flat_map(|(k, _, f)| {
            f.findings
                .iter()
                .filter(|s| s.id.is_none())
                .map(move |s| (*k, s))
        })
        .collect();
    let first_new = if new_rows.is_empty() {
        0
    } else {
        finding_store::reserve_ids(conn).await?
    };
    let numbered: Vec<(i64, &Key, &fold::FindingState)> = new_rows
        .iter()
        .enumerate()
        .map(|(i, (k, f))| (first_new + i as i64, *k, *f))
        .collect();
    let (updates_len, inserts_len) = (updates.len(), numbered.len());
    if !finding_store::copy_new(conn, &numbered).await? {
        return Ok(None);
    }
    let mut new_ids = numbered.iter().map(|(id, _, _)| *id);

    let mut counts = FindingCounts::default();
    let mut observation_finding = vec![None; observations.len()];
    let mut events = Vec::new();
    for (_, indices, folded) in &folds {
        let ids: Vec<Option<i64>> = folded
            .findings
            .iter()
            .map(|s| s.id.or_else(|| new_ids.next()))
            .collect();
        for (pos, slot) in folded.observation_finding.iter().enumerate() {
            observation_finding[indices[pos]] = slot.and_then(|s| ids[s]);
        }
        for event in &folded.events {
            if let Some(finding_id) = ids[event.finding] {
                match event.kind {
                    fold::EventKind::Opened => counts.opened += 1,
                    fold::EventKind::Reopened => counts.reopened += 1,
                    fold::EventKind::Changed => counts.changed += 1,
                    fold::EventKind::Escalated => counts.escalated += 1,
                    fold::EventKind::Resolved => counts.resolved += 1,
                }
                events.push(NewEvent {
                    finding_id,
                    scan_run_id: rules.scan_run_id,
                    event,
                });
            }
        }
    }
    let t_write = t0.elapsed();
    finding_store::insert_events(conn, &events).await?;
    tracing::debug!(
        keys = keys.len(),
        read_ms = t_read.as_millis() as u64,
        updates = updates_len,
        fold_and_update_ms = (t_update - t_read).as_millis() as u64,
        inserts = inserts_len,
        insert_ms = (t_write - t_update).as_millis() as u64,
        events = events.len(),
        events_ms = (t0.elapsed() - t_write).as_millis() as u64,
        "findings folded"
    );
    Ok(Some((observation_finding, counts)))
}
