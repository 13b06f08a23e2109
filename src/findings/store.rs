//! Reading and writing findings and their history in bulk, inside the
//! caller's transaction: lock the current findings of a set of keys, insert
//! new ones, update changed ones, append events. Set-based (arrays through
//! `unnest`), so a chunk of tens of thousands of observations costs a
//! handful of round trips.

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::fold::{Event, FindingState, Owner, Status};
use crate::ingest::observation::{ObservationState, Severity};

/// (ip, port, protocol, check): what makes a finding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
struct Row {
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
}

const SELECT_COLUMNS: &str = "f.id, f.ip, f.port, f.protocol, f.check_id, f.status, f.state, f.worst_state, \
     f.severity, f.cves, f.first_seen, f.last_seen, f.resolved_at, f.escalated_at, f.organisation_id, \
     f.network_id, f.asn, f.attribution, f.last_observation_id";

fn from_row(r: Row) -> Option<(Key, FindingState)> {
    let key = Key {
        ip: r.ip,
        port: u16::try_from(r.port).ok()?,
        protocol: r.protocol,
        check: r.check_id,
    };
    let state = FindingState {
        id: Some(r.id),
        current: true,
        status: Status::parse(&r.status)?,
        state: ObservationState::parse(&r.state)?,
        worst_state: ObservationState::parse(&r.worst_state)?,
        severity: r.severity.as_deref().and_then(Severity::parse),
        cves: r.cves,
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        resolved_at: r.resolved_at,
        escalated_at: r.escalated_at,
        owner: Owner {
            organisation_id: r.organisation_id,
            network_id: r.network_id,
            asn: r.asn,
            attribution: attribution_name(&r.attribution),
        },
        last_observation_id: r.last_observation_id,
        dirty: false,
    };
    Some((key, state))
}

fn key_arrays<'a>(
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

/// The current findings of `keys`, locked until the transaction ends (in id
/// order, so concurrent batches cannot deadlock on them).
pub async fn lock_current(
    conn: &mut PgConnection,
    keys: &[&Key],
) -> Result<HashMap<Key, FindingState>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (ips, ports, protocols, checks) = key_arrays(keys.iter().copied());
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {SELECT_COLUMNS}
           FROM findings f
           JOIN unnest($1::inet[], $2::int[], $3::text[], $4::text[]) AS k(ip, port, protocol, check_id)
             ON f.ip = k.ip AND f.port = k.port AND f.protocol = k.protocol AND f.check_id = k.check_id
          WHERE f.current
          ORDER BY f.id
          FOR UPDATE OF f"
    ))
    .bind(&ips)
    .bind(&ports)
    .bind(&protocols)
    .bind(&checks)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter_map(from_row).collect())
}

/// Column arrays for `unnest`, one entry per finding.
#[derive(Default)]
struct Columns {
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
    organisation_id: Vec<Option<i64>>,
    network_id: Vec<Option<i64>>,
    asn: Vec<Option<i64>>,
    attribution: Vec<&'static str>,
    last_observation_id: Vec<Option<i64>>,
}

impl Columns {
    fn push(&mut self, f: &FindingState) {
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
        self.organisation_id.push(f.owner.organisation_id);
        self.network_id.push(f.owner.network_id);
        self.asn.push(f.owner.asn);
        self.attribution.push(f.owner.attribution);
        self.last_observation_id.push(f.last_observation_id);
    }
}

/// Inserts new current findings. Returns the new id for each input row, or
/// `None` where a concurrent batch created the same key first (the caller
/// locks that one and folds again).
pub async fn insert_new(
    conn: &mut PgConnection,
    rows: &[(&Key, &FindingState)],
) -> Result<Vec<Option<i64>>, sqlx::Error> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let (ips, ports, protocols, checks) = key_arrays(rows.iter().map(|(k, _)| *k));
    let mut c = Columns::default();
    for (_, f) in rows {
        c.push(f);
    }
    let ordinals: Vec<i32> = (0..rows.len() as i32).collect();
    let inserted: Vec<(i32, i64)> = sqlx::query_as(
        "WITH input AS (
            SELECT * FROM unnest($1::int[], $2::inet[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
                                 $8::text[], $9::text[], $10::text[], $11::timestamptz[], $12::timestamptz[],
                                 $13::timestamptz[], $14::timestamptz[], $15::bigint[], $16::bigint[], $17::bigint[],
                                 $18::text[], $19::bigint[])
              AS u(ord, ip, port, protocol, check_id, status, state, worst_state, severity, cves, first_seen,
                   last_seen, resolved_at, escalated_at, organisation_id, network_id, asn, attribution,
                   last_observation_id)
         ), ins AS (
            INSERT INTO findings (ip, port, protocol, check_id, status, state, worst_state, severity, cves,
                                  first_seen, last_seen, resolved_at, escalated_at, organisation_id, network_id,
                                  asn, attribution, last_observation_id)
            SELECT ip, port, protocol, check_id, status, state, worst_state, severity,
                   coalesce(string_to_array(nullif(cves, ''), ','), '{}'), first_seen, last_seen, resolved_at, escalated_at,
                   organisation_id, network_id, asn, attribution, last_observation_id
              FROM input ORDER BY ord
            ON CONFLICT (ip, port, protocol, check_id) WHERE current DO NOTHING
            RETURNING id, ip, port, protocol, check_id, first_seen
         )
         SELECT input.ord, ins.id FROM ins JOIN input USING (ip, port, protocol, check_id, first_seen)",
    )
    .bind(&ordinals)
    .bind(&ips)
    .bind(&ports)
    .bind(&protocols)
    .bind(&checks)
    .bind(&c.status)
    .bind(&c.state)
    .bind(&c.worst)
    .bind(&c.severity)
    .bind(&c.cves)
    .bind(&c.first_seen)
    .bind(&c.last_seen)
    .bind(&c.resolved_at)
    .bind(&c.escalated_at)
    .bind(&c.organisation_id)
    .bind(&c.network_id)
    .bind(&c.asn)
    .bind(&c.attribution)
    .bind(&c.last_observation_id)
    .fetch_all(conn)
    .await?;
    let mut ids = vec![None; rows.len()];
    for (ord, id) in inserted {
        if let Some(slot) = ids.get_mut(ord as usize) {
            *slot = Some(id);
        }
    }
    Ok(ids)
}

/// Writes back findings that have an id.
pub async fn update_existing(
    conn: &mut PgConnection,
    rows: &[&FindingState],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut c = Columns::default();
    for f in rows {
        c.push(f);
    }
    sqlx::query(
        "UPDATE findings f SET
            current = u.current, status = u.status, state = u.state, worst_state = u.worst_state,
            severity = u.severity, cves = coalesce(string_to_array(nullif(u.cves, ''), ','), '{}'),
            first_seen = u.first_seen, last_seen = u.last_seen, resolved_at = u.resolved_at,
            escalated_at = u.escalated_at, last_observation_id = u.last_observation_id, updated_at = now()
           FROM unnest($1::bigint[], $2::bool[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::bigint[])
             AS u(id, current, status, state, worst_state, severity, cves, first_seen, last_seen, resolved_at,
                  escalated_at, last_observation_id)
          WHERE f.id = u.id",
    )
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
    .bind(&c.last_observation_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// One history event ready to store.
pub struct NewEvent<'a> {
    pub finding_id: i64,
    pub scan_run_id: Option<i64>,
    pub event: &'a Event,
}

pub async fn insert_events(
    conn: &mut PgConnection,
    events: &[NewEvent<'_>],
) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let mut finding = Vec::with_capacity(events.len());
    let mut at = Vec::with_capacity(events.len());
    let mut kind = Vec::with_capacity(events.len());
    let mut reason = Vec::with_capacity(events.len());
    let mut observation = Vec::with_capacity(events.len());
    let mut run = Vec::with_capacity(events.len());
    let mut from = Vec::with_capacity(events.len());
    let mut to = Vec::with_capacity(events.len());
    for e in events {
        finding.push(e.finding_id);
        at.push(e.event.at);
        kind.push(e.event.kind.as_str());
        reason.push(e.event.reason.as_str());
        observation.push(e.event.observation_id);
        run.push(e.scan_run_id);
        from.push(e.event.from_state.map(ObservationState::as_str));
        to.push(e.event.to_state.map(ObservationState::as_str));
    }
    sqlx::query(
        "INSERT INTO finding_events (finding_id, at, kind, reason, observation_id, scan_run_id, from_state, to_state)
         SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::bigint[], $6::bigint[],
                              $7::text[], $8::text[])",
    )
    .bind(&finding)
    .bind(&at)
    .bind(&kind)
    .bind(&reason)
    .bind(&observation)
    .bind(&run)
    .bind(&from)
    .bind(&to)
    .execute(conn)
    .await?;
    Ok(())
}
