//! Reading and writing findings and their history in bulk, inside the
//! caller's transaction: read the current findings of a set of keys, insert
//! new ones and append events (COPY), update changed ones (arrays through
//! `unnest`). A chunk of tens of thousands of observations costs a handful
//! of round trips.
//!
//! Writers of findings take turns ([`lock_writers`]). Reading takes no row
//! locks, and may happen outside the writing transaction; an update is
//! addressed to the row version that was read (its `ctid`), so it misses a
//! row anyone rewrote in between, and the caller folds again. Locking every
//! row read would cost a write per observation, most of them for findings a
//! rescan leaves unchanged.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::fold::{Event, FindingState, Owner, SortKey, Status};
use crate::db::copy::CopyIn;
use crate::ingest::observation::{ObservationState, Severity};

/// (ip, port, protocol, check): what makes a finding. Ordered like the
/// database's key index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub ip: IpAddr,
    pub port: u16,
    pub protocol: String,
    pub check: String,
}

fn attribution_name(s: &str) -> &'static str {
    match s {
        "network" => "network",
        "asn" => "asn",
        _ => "none",
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct Row {
    version: String,
    id: i64,
    ip: IpAddr,
    port: i32,
    protocol: String,
    check_id: String,
    status: String,
    state: String,
    worst_state: String,
    severity: Option<String>,
    cves: Vec<String>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    resolved_at: Option<DateTime<Utc>>,
    escalated_at: Option<DateTime<Utc>>,
    organisation_id: Option<i64>,
    network_id: Option<i64>,
    asn: Option<i64>,
    attribution: String,
    last_observation_id: Option<i64>,
    current: bool,
    folded_at: DateTime<Utc>,
    folded_rank: i16,
    changed_at: DateTime<Utc>,
    changed_rank: i16,
    missed_at: Option<DateTime<Utc>>,
    previous_id: Option<i64>,
}

pub(super) const SELECT_COLUMNS: &str = "f.id, f.ip, f.port, f.protocol, f.check_id, f.status, f.state, f.worst_state, \
     f.severity, f.cves, f.first_seen, f.last_seen, f.resolved_at, f.escalated_at, f.organisation_id, \
     f.network_id, f.asn, f.attribution, f.last_observation_id, f.current, f.folded_at, f.folded_rank, \
     f.changed_at, f.changed_rank, f.missed_at, f.previous_id";

/// A stored finding as read: its key, its state, the row version it was
/// read at, and the finding it took the key over from.
pub(super) struct StoredFinding {
    pub key: Key,
    pub state: FindingState,
    pub version: String,
    pub previous_id: Option<i64>,
}

pub(super) fn from_row(r: Row) -> Option<StoredFinding> {
    let key = Key {
        ip: r.ip,
        port: u16::try_from(r.port).ok()?,
        protocol: r.protocol,
        check: r.check_id,
    };
    let state = FindingState {
        id: Some(r.id),
        current: r.current,
        status: Status::parse(&r.status)?,
        state: ObservationState::parse(&r.state)?,
        worst_state: ObservationState::parse(&r.worst_state)?,
        severity: r.severity.as_deref().and_then(Severity::parse),
        cves: r.cves,
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        resolved_at: r.resolved_at,
        escalated_at: r.escalated_at,
        missed_at: r.missed_at,
        owner: Owner {
            organisation_id: r.organisation_id,
            network_id: r.network_id,
            asn: r.asn,
            attribution: attribution_name(&r.attribution),
        },
        last_observation_id: r.last_observation_id,
        folded: SortKey {
            at: r.folded_at,
            rank: r.folded_rank,
        },
        changed: SortKey {
            at: r.changed_at,
            rank: r.changed_rank,
        },
        dirty: false,
    };
    Some(StoredFinding {
        key,
        state,
        version: r.version,
        previous_id: r.previous_id,
    })
}

pub(super) fn key_arrays<'a>(
    keys: impl Iterator<Item = &'a Key>,
) -> (Vec<IpAddr>, Vec<i32>, Vec<&'a str>, Vec<&'a str>) {
    let mut ips = Vec::new();
    let mut ports = Vec::new();
    let mut protocols = Vec::new();
    let mut checks = Vec::new();
    for k in keys {
        ips.push(k.ip);
        ports.push(i32::from(k.port));
        protocols.push(k.protocol.as_str());
        checks.push(k.check.as_str());
    }
    (ips, ports, protocols, checks)
}

/// The current findings of some keys, as read, and the row version each was
/// read at (by finding id), to address the update to; for keys without a
/// finding, the latest `not_vulnerable` observation stored for them.
#[derive(Default)]
pub struct Current {
    pub findings: HashMap<Key, FindingState>,
    pub versions: HashMap<i64, String>,
    /// Keys without a finding that have `not_vulnerable` observations, and
    /// the latest of them: a positive observation older than that, arriving
    /// now, must be folded with them (the key is replayed).
    pub unowned: HashMap<Key, DateTime<Utc>>,
}

impl Current {
    /// Replaces what was read of `keys` with `fresh`, a newer read of them.
    pub fn replace(&mut self, keys: &[&Key], fresh: Current) {
        for key in keys {
            if let Some(id) = self.findings.remove(*key).and_then(|f| f.id) {
                self.versions.remove(&id);
            }
            self.unowned.remove(*key);
        }
        self.findings.extend(fresh.findings);
        self.versions.extend(fresh.versions);
        self.unowned.extend(fresh.unowned);
    }
}

/// The current findings of `keys` (sorted, so the probes walk the key index
/// in order), and for those without one, their unowned observations.
///
/// One index probe per key, whatever the planner thinks of the table: the
/// `LATERAL … LIMIT 1` cannot be turned into a join that scans every
/// finding, which the planner otherwise picks for a large batch against a
/// table it considers small.
pub async fn read_current(conn: &mut PgConnection, keys: &[&Key]) -> Result<Current, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Current::default());
    }
    let (ips, ports, protocols, checks) = key_arrays(keys.iter().copied());
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT l.*
           FROM unnest($1::inet[], $2::int[], $3::text[], $4::text[]) AS k(ip, port, protocol, check_id)
          CROSS JOIN LATERAL (
                SELECT f.ctid::text AS version, {SELECT_COLUMNS}
                  FROM findings f
                 WHERE f.ip = k.ip AND f.port = k.port AND f.protocol = k.protocol
                   AND f.check_id = k.check_id AND f.current
                 LIMIT 1) l"
    ))
    .bind(&ips)
    .bind(&ports)
    .bind(&protocols)
    .bind(&checks)
    .fetch_all(&mut *conn)
    .await?;
    let mut current = Current::default();
    for stored in rows.into_iter().filter_map(from_row) {
        if let Some(id) = stored.state.id {
            current.versions.insert(id, stored.version);
        }
        current.findings.insert(stored.key, stored.state);
    }
    let without: Vec<&Key> = keys
        .iter()
        .copied()
        .filter(|k| !current.findings.contains_key(*k))
        .collect();
    current.unowned = read_unowned(conn, &without).await?;
    Ok(current)
}

/// The latest unowned (`not_vulnerable`, no finding) observation of each
/// of `keys` that has one.
async fn read_unowned(
    conn: &mut PgConnection,
    keys: &[&Key],
) -> Result<HashMap<Key, DateTime<Utc>>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (ips, ports, protocols, checks) = key_arrays(keys.iter().copied());
    let rows: Vec<(i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT k.i, m.at
           FROM unnest($1::inet[], $2::int[], $3::text[], $4::text[]) WITH ORDINALITY
                AS k(ip, port, protocol, check_id, i)
          CROSS JOIN LATERAL (
                SELECT max(o.observed_at) AS at FROM observations o
                 WHERE o.finding_id IS NULL AND o.ip = k.ip AND o.check_id = k.check_id
                   AND o.port = k.port AND o.protocol = k.protocol) m
          WHERE m.at IS NOT NULL",
    )
    .bind(&ips)
    .bind(&ports)
    .bind(&protocols)
    .bind(&checks)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(i, at)| {
            let key = keys.get(usize::try_from(i).ok()?.checked_sub(1)?)?;
            Some(((*key).clone(), at))
        })
        .collect())
}

/// Column arrays for `unnest` in [`update_existing`], one entry per
/// finding: the columns a fold may change (the owner at detection never
/// changes).
#[derive(Default)]
struct Columns<'a> {
    version: Vec<Option<&'a str>>,
    id: Vec<Option<i64>>,
    current: Vec<bool>,
    status: Vec<&'static str>,
    state: Vec<&'static str>,
    worst: Vec<&'static str>,
    severity: Vec<Option<&'static str>>,
    cves: Vec<String>,
    first_seen: Vec<DateTime<Utc>>,
    last_seen: Vec<DateTime<Utc>>,
    resolved_at: Vec<Option<DateTime<Utc>>>,
    escalated_at: Vec<Option<DateTime<Utc>>>,
    missed_at: Vec<Option<DateTime<Utc>>>,
    last_observation_id: Vec<Option<i64>>,
    folded_at: Vec<DateTime<Utc>>,
    folded_rank: Vec<i16>,
    changed_at: Vec<DateTime<Utc>>,
    changed_rank: Vec<i16>,
    set_previous: Vec<bool>,
    previous_id: Vec<Option<i64>>,
    merged_into: Vec<Option<i64>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, u: &Update<'_>, version: Option<&'a str>) {
        let (f, previous_id) = (u.state, u.previous_id);
        self.merged_into.push(u.merged_into);
        self.version.push(version);
        self.id.push(f.id);
        self.current.push(f.current);
        self.status.push(f.status.as_str());
        self.state.push(f.state.as_str());
        self.worst.push(f.worst_state.as_str());
        self.severity.push(f.severity.map(Severity::as_str));
        // A text[] inside unnest would flatten; pass CVEs joined.
        self.cves.push(f.cves.join(","));
        self.first_seen.push(f.first_seen);
        self.last_seen.push(f.last_seen);
        self.resolved_at.push(f.resolved_at);
        self.escalated_at.push(f.escalated_at);
        self.missed_at.push(f.missed_at);
        self.last_observation_id.push(f.last_observation_id);
        self.folded_at.push(f.folded.at);
        self.folded_rank.push(f.folded.rank);
        self.changed_at.push(f.changed.at);
        self.changed_rank.push(f.changed.rank);
        self.set_previous.push(previous_id.is_some());
        self.previous_id.push(previous_id.flatten());
    }
}

/// Key of the transaction-level advisory lock held by whoever creates
/// findings or changes their lifecycle (ingest, finishing a scan run).
const WRITER_LOCK: i64 = 0x7661_7273_656c_0001; // "varsel", 1

/// Waits until no other transaction writes findings, then holds that right
/// until this transaction ends.
///
/// Why one writer at a time: an ingest request is one transaction that
/// writes its findings chunk after chunk, so two requests over the same
/// hosts take row and key locks in different orders across their chunks
/// and deadlock. Measured with two requests in flight, the benchmark scan
/// fell from 65 000 to 19 000 observations/s, nearly every request a
/// deadlock victim answered with 503. In turn, each runs at full speed.
pub async fn lock_writers(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITER_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

/// A new finding ready to store: its id, key, state, and the finding it
/// takes the key over from.
pub struct NewFinding<'a> {
    pub id: i64,
    pub key: &'a Key,
    pub state: &'a FindingState,
    pub previous_id: Option<i64>,
}

/// Writes new findings (ids already assigned) with COPY. `false` when a
/// concurrent batch created one of the same current findings first: the
/// caller rolls back to its savepoint, locks that one and folds again.
pub async fn copy_new(
    conn: &mut PgConnection,
    rows: &[NewFinding<'_>],
) -> Result<bool, sqlx::Error> {
    if rows.is_empty() {
        return Ok(true);
    }
    let mut copy = CopyIn::start(
        conn,
        "findings",
        "(id, ip, port, protocol, check_id, current, status, state, worst_state, severity, cves, first_seen, \
          last_seen, resolved_at, escalated_at, missed_at, organisation_id, network_id, asn, attribution, \
          last_observation_id, folded_at, folded_rank, changed_at, changed_rank, previous_id)",
    )
    .await?;
    for NewFinding {
        id,
        key: k,
        state: f,
        previous_id,
    } in rows
    {
        copy.value(*id)
            .value(k.ip)
            .value(i32::from(k.port))
            .text(&k.protocol)
            .text(&k.check)
            .value(f.current)
            .value(f.status.as_str())
            .value(f.state.as_str())
            .value(f.worst_state.as_str())
            .value(f.severity.map(Severity::as_str))
            .value(&f.cves)
            .value(f.first_seen)
            .value(f.last_seen)
            .value(f.resolved_at)
            .value(f.escalated_at)
            .value(f.missed_at)
            .value(f.owner.organisation_id)
            .value(f.owner.network_id)
            .value(f.owner.asn)
            .value(f.owner.attribution)
            .value(f.last_observation_id)
            .value(f.folded.at)
            .value(f.folded.rank)
            .value(f.changed.at)
            .value(f.changed.rank)
            .value(*previous_id);
        copy.end_row().await?;
    }
    match copy.finish().await {
        Ok(_) => Ok(true),
        Err(e)
            if e.as_database_error()
                .is_some_and(|d| d.constraint() == Some("findings_current_key")) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// A stored finding to write back: its new state, and (when a replay
/// changed it) the finding it took the key over from.
pub struct Update<'a> {
    pub state: &'a FindingState,
    pub previous_id: Option<Option<i64>>,
    /// For a finding a late observation joined to another: that one.
    pub merged_into: Option<i64>,
}

/// Writes back findings that have an id, each to the row version it was
/// read at. `false` when another transaction rewrote one of them since:
/// the caller rolls back to its savepoint and folds again.
///
/// Findings that stop being current are written first, in a statement of
/// their own: a replay can hand the key back to an older finding, and
/// the key's one current finding is checked row by row.
///
/// The ingest transaction turns hash and merge joins off (see
/// `ingest::pipeline`), so this is one TID fetch per finding rather than a
/// scan of the whole table.
pub async fn update_existing(
    conn: &mut PgConnection,
    rows: &[Update<'_>],
    versions: &HashMap<i64, String>,
) -> Result<bool, sqlx::Error> {
    let (retiring, staying): (Vec<&Update<'_>>, Vec<&Update<'_>>) =
        rows.iter().partition(|u| !u.state.current);
    for part in [retiring, staying] {
        if !update_rows(conn, &part, versions).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

async fn update_rows(
    conn: &mut PgConnection,
    rows: &[&Update<'_>],
    versions: &HashMap<i64, String>,
) -> Result<bool, sqlx::Error> {
    if rows.is_empty() {
        return Ok(true);
    }
    let mut c = Columns::default();
    for u in rows {
        let version = u
            .state
            .id
            .and_then(|id| versions.get(&id))
            .map(String::as_str);
        c.push(u, version);
    }
    let updated = sqlx::query(
        "UPDATE findings f SET
            current = u.current, status = u.status, state = u.state, worst_state = u.worst_state,
            severity = u.severity, cves = coalesce(string_to_array(nullif(u.cves, ''), ','), '{}'),
            first_seen = u.first_seen, last_seen = u.last_seen, resolved_at = u.resolved_at,
            escalated_at = u.escalated_at, missed_at = u.missed_at,
            last_observation_id = u.last_observation_id, folded_at = u.folded_at,
            folded_rank = u.folded_rank, changed_at = u.changed_at, changed_rank = u.changed_rank,
            previous_id = CASE WHEN u.set_previous THEN u.previous_id ELSE f.previous_id END,
            merged_into = coalesce(u.merged_into, f.merged_into), updated_at = now()
           FROM unnest($1::text[]::tid[], $2::bigint[], $3::bool[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[],
                       $12::timestamptz[], $13::timestamptz[], $14::bigint[], $15::timestamptz[],
                       $16::smallint[], $17::timestamptz[], $18::smallint[], $19::bool[], $20::bigint[],
                       $21::bigint[])
             AS u(version, id, current, status, state, worst_state, severity, cves, first_seen, last_seen,
                  resolved_at, escalated_at, missed_at, last_observation_id, folded_at, folded_rank,
                  changed_at, changed_rank, set_previous, previous_id, merged_into)
          WHERE f.ctid = u.version AND f.id = u.id",
    )
    .bind(&c.version)
    .bind(&c.id)
    .bind(&c.current)
    .bind(&c.status)
    .bind(&c.state)
    .bind(&c.worst)
    .bind(&c.severity)
    .bind(&c.cves)
    .bind(&c.first_seen)
    .bind(&c.last_seen)
    .bind(&c.resolved_at)
    .bind(&c.escalated_at)
    .bind(&c.missed_at)
    .bind(&c.last_observation_id)
    .bind(&c.folded_at)
    .bind(&c.folded_rank)
    .bind(&c.changed_at)
    .bind(&c.changed_rank)
    .bind(&c.set_previous)
    .bind(&c.previous_id)
    .bind(&c.merged_into)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == rows.len() as u64)
}

/// One history event ready to store.
pub struct NewEvent<'a> {
    pub finding_id: i64,
    pub event: &'a Event,
}

pub async fn insert_events(
    conn: &mut PgConnection,
    events: &[NewEvent<'_>],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut copy = CopyIn::start(
        conn,
        "finding_events",
        "(finding_id, at, kind, reason, observation_id, scan_run_id, from_state, to_state)",
    )
    .await?;
    for e in events {
        copy.value(e.finding_id)
            .value(e.event.at)
            .value(e.event.kind.as_str())
            .text(&e.event.reason)
            .value(e.event.observation_id)
            .value(e.event.scan_run_id)
            .value(e.event.from_state.map(ObservationState::as_str))
            .value(e.event.to_state.map(ObservationState::as_str));
        copy.end_row().await?;
    }
    copy.finish().await?;
    Ok(())
}

/// Moves stored observations to the finding a replay gave them (`None`:
/// to no finding). An observation is found by its finding (or, unowned,
/// by its key) and its time, which prunes the partitions.
pub async fn move_observations(
    conn: &mut PgConnection,
    moves: &[(&super::replay::Move, &Key, Option<i64>)],
) -> Result<(), sqlx::Error> {
    let (owned, unowned): (Vec<_>, Vec<_>) = moves.iter().partition(|(m, _, _)| m.from.is_some());
    if !owned.is_empty() {
        let ids: Vec<i64> = owned.iter().map(|(m, _, _)| m.observation_id).collect();
        let ats: Vec<DateTime<Utc>> = owned.iter().map(|(m, _, _)| m.observed_at).collect();
        let from: Vec<Option<i64>> = owned.iter().map(|(m, _, _)| m.from).collect();
        let to: Vec<Option<i64>> = owned.iter().map(|(_, _, to)| *to).collect();
        sqlx::query(
            "UPDATE observations o SET finding_id = u.finding
               FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::bigint[]) AS u(id, at, was, finding)
              WHERE o.finding_id = u.was AND o.id = u.id AND o.observed_at = u.at",
        )
        .bind(&ids)
        .bind(&ats)
        .bind(&from)
        .bind(&to)
        .execute(&mut *conn)
        .await?;
    }
    if !unowned.is_empty() {
        let ids: Vec<i64> = unowned.iter().map(|(m, _, _)| m.observation_id).collect();
        let ats: Vec<DateTime<Utc>> = unowned.iter().map(|(m, _, _)| m.observed_at).collect();
        let to: Vec<Option<i64>> = unowned.iter().map(|(_, _, to)| *to).collect();
        let (ips, ports, protocols, checks) = key_arrays(unowned.iter().map(|(_, k, _)| *k));
        sqlx::query(
            "UPDATE observations o SET finding_id = u.finding
               FROM unnest($1::bigint[], $2::timestamptz[], $3::bigint[], $4::inet[], $5::int[],
                           $6::text[], $7::text[]) AS u(id, at, finding, ip, port, protocol, check_id)
              WHERE o.finding_id IS NULL AND o.ip = u.ip AND o.check_id = u.check_id
                AND o.port = u.port AND o.id = u.id AND o.observed_at = u.at",
        )
        .bind(&ids)
        .bind(&ats)
        .bind(&to)
        .bind(&ips)
        .bind(&ports)
        .bind(&protocols)
        .bind(&checks)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Deletes the fold's history of these findings, which a replay writes
/// anew (what analysts and organisations added to it stays).
pub async fn delete_history(
    conn: &mut PgConnection,
    finding_ids: &[i64],
) -> Result<(), sqlx::Error> {
    if finding_ids.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = super::fold::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    sqlx::query("DELETE FROM finding_events WHERE finding_id = ANY($1) AND kind = ANY($2)")
        .bind(finding_ids)
        .bind(&kinds)
        .execute(conn)
        .await?;
    Ok(())
}

/// Says in their history that findings were joined to another by a late
/// observation: (finding, the finding it joined).
pub async fn insert_merged(
    conn: &mut PgConnection,
    merged: &[(i64, i64)],
) -> Result<(), sqlx::Error> {
    if merged.is_empty() {
        return Ok(());
    }
    let (ids, into): (Vec<i64>, Vec<i64>) = merged.iter().copied().unzip();
    sqlx::query(
        "INSERT INTO finding_events (finding_id, at, kind, reason)
         SELECT u.id, now(), 'merged', 'a late observation joined it to finding ' || u.into_id
           FROM unnest($1::bigint[], $2::bigint[]) AS u(id, into_id)",
    )
    .bind(&ids)
    .bind(&into)
    .execute(conn)
    .await?;
    Ok(())
}
