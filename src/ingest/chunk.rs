//! One chunk of a request's parsed items, from admission to stored
//! observations and up-to-date findings, inside the request's transaction:
//! admit (run rules, sanity checks), attribute with the in-memory prefix
//! table, group by finding key, fold into the current findings
//! ([`crate::findings::fold`]), and write findings, their history and the
//! observations.
//!
//! The current findings of a chunk may have been read outside the
//! transaction, on a second connection while the previous chunk was being
//! written (see [`super::pipeline`]). The request holds the findings writer
//! lock ([`crate::findings::store::lock_writers`]) from before the first
//! such read, so no other request creates or changes findings meanwhile;
//! what the read cannot see is what this request wrote itself in earlier
//! chunks. Keys it wrote are therefore read again inside the transaction
//! ([`Touched`]). Should anything else rewrite a finding in between (a
//! writer that does not take the lock), the update, addressed to the row
//! version read, finds nothing, and the chunk is folded again from a read
//! inside the transaction; a second current finding for a key is refused
//! by the unique key, with the same effect.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{PgConnection, Postgres, Transaction};

use super::formats::Item;
use super::observation::{LineError, Observation};
use super::pipeline::{IngestSummary, RunRules};
use super::store::{self, StoredObservation};
use crate::app::AppState;
use crate::attribution::table::{Match, PrefixTable};
use crate::db::ids::{self, IdSeries};
use crate::error::ApiError;
use crate::findings::coverage::Coverage;
use crate::findings::fold::{Input, Owner, Seen};
use crate::findings::store::{self as finding_store, Current, Key};
use crate::findings::writer::{self, Group, Written};

/// A chunk admitted and attributed, its observations grouped by finding key
/// in key order.
pub struct Chunk {
    observations: Vec<Observation>,
    owners: Vec<Owner>,
    groups: Vec<(Key, Vec<usize>)>,
}

impl Chunk {
    /// The chunk's keys in key-index order, so that reads walk the index.
    pub fn keys(&self) -> Vec<&Key> {
        self.groups.iter().map(|(key, _)| key).collect()
    }
}

/// The keys a request has written findings for (inserted or updated), as
/// hashes. A collision only costs a needless read.
#[derive(Default)]
pub struct Touched(HashSet<u64>);

impl Touched {
    fn hash(key: &Key) -> u64 {
        // `DefaultHasher::new()` has fixed keys: stable for the request.
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        hasher.finish()
    }

    fn insert(&mut self, key: &Key) {
        self.0.insert(Self::hash(key));
    }

    fn contains(&self, key: &Key) -> bool {
        self.0.contains(&Self::hash(key))
    }
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
    allow_private: bool,
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
    if !allow_private {
        if let Some(reason) = super::observation::not_on_the_internet(o.ip) {
            return Err(LineError::new(
                line,
                Some("ip"),
                format!(
                    "{} {reason}: it cannot be on the Internet (set VARSEL_ALLOW_PRIVATE_ADDRESSES=true to take such addresses)",
                    o.ip
                ),
            ));
        }
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

/// Admits, attributes and groups a chunk's items; rejected items go to the
/// summary. `None` when nothing was admitted.
pub fn prepare(
    state: &AppState,
    table: &PrefixTable,
    rules: &RunRules,
    items: Vec<Item>,
    summary: &mut IngestSummary,
) -> Option<Chunk> {
    let now = state.clock.now();
    let mut observations: Vec<Observation> = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Observation(o, line) => {
                let settings = &state.settings;
                match admit(
                    &o,
                    rules,
                    line,
                    now,
                    settings.retention_days,
                    settings.allow_private_addresses,
                ) {
                    Ok(()) => {
                        summary.widen_span(o.observed_at);
                        observations.push(o);
                    }
                    Err(e) => summary.reject(e),
                }
            }
            Item::Rejected(e) => summary.reject(e),
            Item::Note(note) => summary.note(note),
        }
    }
    if observations.is_empty() {
        return None;
    }
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
    let mut groups: Vec<(Key, Vec<usize>)> = by_key.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Some(Chunk {
        observations,
        owners,
        groups,
    })
}

/// Stores a prepared chunk: findings first (the observations point at
/// them), then the observations. `read` is what a read outside the
/// transaction found for the chunk's keys, if one was made.
#[allow(clippy::too_many_arguments)]
pub async fn store(
    state: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    rules: &RunRules,
    coverage: &Coverage,
    chunk: Chunk,
    read: Option<Current>,
    touched: &mut Touched,
    summary: &mut IngestSummary,
) -> Result<(), ApiError> {
    let started = Instant::now();
    store::ensure_partitions(
        &state.pool,
        chunk.observations.iter().map(|o| o.observed_at),
    )
    .await?;
    let first_id = ids::reserve(tx, IdSeries::Observations, chunk.observations.len()).await?;
    let finding_ids = fold_into_findings(
        state, tx, &chunk, first_id, read, touched, rules, coverage, summary,
    )
    .await?;
    let folded = started.elapsed();

    let rows: Vec<StoredObservation<'_>> = chunk
        .observations
        .iter()
        .zip(&chunk.owners)
        .enumerate()
        .map(|(i, (o, owner))| StoredObservation {
            id: first_id + i as i64,
            scan_run_id: rules.scan_run_id,
            finding_id: finding_ids[i],
            organisation_id: owner.organisation_id,
            network_id: owner.network_id,
            attribution: owner.attribution,
            observation: o,
        })
        .collect();
    store::copy_observations(tx, &rows).await?;
    summary.accepted += chunk.observations.len() as u64;
    tracing::debug!(
        rows = chunk.observations.len(),
        findings_ms = folded.as_millis() as u64,
        copy_ms = (started.elapsed() - folded).as_millis() as u64,
        "chunk stored"
    );
    Ok(())
}

/// Folds the chunk into findings inside a savepoint; when a concurrent
/// request created or rewrote one of the same findings first, the savepoint
/// is rolled back and the fold runs again, reading inside the transaction.
#[allow(clippy::too_many_arguments)]
async fn fold_into_findings(
    state: &AppState,
    tx: &mut Transaction<'static, Postgres>,
    chunk: &Chunk,
    first_id: i64,
    mut read: Option<Current>,
    touched: &mut Touched,
    rules: &RunRules,
    coverage: &Coverage,
    summary: &mut IngestSummary,
) -> Result<Vec<Option<i64>>, ApiError> {
    // Each failed attempt saw a competing transaction's committed change,
    // so attempts are bounded by the progress of others, not by a clock.
    const ATTEMPTS: usize = 20;
    for attempt in 1..=ATTEMPTS {
        let mut savepoint = sqlx::Connection::begin(&mut **tx).await?;
        let folded = fold_once(
            &mut savepoint,
            chunk,
            first_id,
            read.take(),
            touched,
            rules,
            coverage,
        )
        .await?;
        match folded {
            Some((observation_finding, written)) => {
                savepoint.commit().await?;
                summary.findings.add_counts(&written.counts);
                for key in written.written {
                    touched.insert(key);
                }
                summary.findings.replayed += written.replayed as u64;
                state
                    .metrics
                    .findings_replays
                    .inc_by(written.replayed as u64);
                return Ok(observation_finding);
            }
            None => {
                savepoint.rollback().await?;
                state.metrics.findings_refolds.inc();
                tracing::debug!(attempt, "findings changed concurrently; folding again");
            }
        }
    }
    Err(ApiError::Unavailable(
        "findings kept changing under this batch; retry it".to_owned(),
    ))
}

/// `None` when a concurrent request created or rewrote one of the same
/// findings first (fold again).
async fn fold_once<'c>(
    conn: &mut PgConnection,
    chunk: &'c Chunk,
    first_id: i64,
    read: Option<Current>,
    touched: &Touched,
    rules: &RunRules,
    coverage: &Coverage,
) -> Result<Option<(Vec<Option<i64>>, Written<'c>)>, ApiError> {
    let keys = chunk.keys();
    let current = match read {
        Some(mut read) => {
            let own: Vec<&Key> = keys
                .iter()
                .copied()
                .filter(|k| touched.contains(k))
                .collect();
            let fresh = finding_store::read_current(conn, &own).await?;
            read.replace(&own, fresh);
            read
        }
        None => finding_store::read_current(conn, &keys).await?,
    };
    let observations = &chunk.observations;
    let owners = &chunk.owners;
    // In key order (the chunk's order): new findings are written, and get
    // their ids, in the same order by every batch, so two batches creating
    // the same findings wait for each other instead of deadlocking.
    let groups: Vec<Group<'c>> = chunk
        .groups
        .iter()
        .map(|(key, indices)| Group {
            key,
            inputs: indices
                .iter()
                .map(|&i| {
                    Input::Observation(Seen {
                        observation_id: first_id + i as i64,
                        scan_run_id: rules.scan_run_id,
                        observed_at: observations[i].observed_at,
                        state: observations[i].state,
                        severity: observations[i].severity,
                        cves: &observations[i].cves,
                        owner: owners[i],
                    })
                })
                .collect(),
        })
        .collect();
    let t0 = Instant::now();
    let Some(written) = writer::write(conn, &groups, current, coverage).await? else {
        return Ok(None);
    };
    let mut observation_finding = vec![None; observations.len()];
    for ((_, indices), ids) in chunk.groups.iter().zip(&written.input_finding) {
        for (&i, id) in indices.iter().zip(ids) {
            observation_finding[i] = *id;
        }
    }
    tracing::debug!(
        keys = keys.len(),
        replayed = written.replayed,
        ms = t0.elapsed().as_millis() as u64,
        "findings folded"
    );
    Ok(Some((observation_finding, written)))
}
