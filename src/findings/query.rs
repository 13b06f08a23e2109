//! Reading findings, for every surface: one typed [`FindingsFilter`] that
//! builds the query in one place (the advisory page forces its organisation
//! into it, the dashboard and the API pass what people asked for), one
//! finding with its history and observations, and summary counts.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Postgres, QueryBuilder};

use crate::domain::{DomainError, DomainResult};
use crate::ingest::observation::ObservationState;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Finding {
    pub id: i64,
    #[schema(value_type = String)]
    pub ip: IpAddr,
    pub port: i32,
    pub protocol: String,
    #[sqlx(rename = "check_id")]
    pub check: String,
    /// `open` or `resolved`.
    pub status: String,
    pub state: String,
    pub worst_state: String,
    pub severity: Option<String>,
    pub cves: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    /// When signs of compromise were first seen since the finding last
    /// opened (cleared when it is resolved).
    pub escalated_at: Option<DateTime<Utc>>,
    /// Set on an open finding with signs of compromise that a scan run
    /// covering it has not seen since: its last sighting. Absence never
    /// resolves a compromise; it stays open until an observation shows it
    /// gone or an analyst closes it.
    pub not_seen_since: Option<DateTime<Utc>>,
    /// False once a newer finding took over this key.
    pub current: bool,
    /// Set when a late observation joined this finding to another (it fell
    /// within 90 days of that one's resolution): that one, which now holds
    /// its history and observations.
    pub merged_into: Option<i64>,
    /// Owner at detection; `null` while unattributed (the triage queue).
    pub organisation_id: Option<i64>,
    pub organisation_ref: Option<String>,
    pub organisation_name: Option<String>,
    /// How the owner was found: `network`, `asn` or `none`.
    pub attribution: String,
    pub network_id: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub network_cidr: Option<IpNet>,
    pub asn: Option<i64>,
}

const SELECT: &str = "SELECT f.id, f.ip, f.port, f.protocol, f.check_id, f.status, f.state, f.worst_state, \
     f.severity, f.cves, f.first_seen, f.last_seen, f.resolved_at, f.escalated_at, \
     CASE WHEN f.status = 'open' AND f.missed_at > f.last_seen THEN f.last_seen END AS not_seen_since, f.current, \
     f.merged_into, \
     f.organisation_id, o.ref AS organisation_ref, o.name AS organisation_name, f.attribution, \
     f.network_id, n.cidr AS network_cidr, f.asn \
     FROM findings f LEFT JOIN organisations o ON o.id = f.organisation_id \
     LEFT JOIN networks n ON n.id = f.network_id";

/// `open` or `resolved`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    Open,
    Resolved,
}

impl FindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
        }
    }
}

/// Which findings to read. Every field narrows; the default is every
/// current finding.
#[derive(Debug, Default, Clone)]
pub struct FindingsFilter {
    pub organisation_id: Option<i64>,
    pub check: Option<String>,
    /// Upper case, e.g. `CVE-2021-26855`.
    pub cve: Option<String>,
    pub status: Option<FindingStatus>,
    pub state: Option<ObservationState>,
    /// Only addresses inside this network.
    pub cidr: Option<IpNet>,
    /// Only findings of organisations in this sector.
    pub sector: Option<String>,
    /// Seen at or after.
    pub since: Option<DateTime<Utc>>,
    /// First seen at or before.
    pub until: Option<DateTime<Utc>>,
    /// `Some(true)`: only the triage queue; `Some(false)`: only attributed.
    pub unattributed: Option<bool>,
    /// Also findings superseded by a newer one for the same key.
    pub include_superseded: bool,
}

impl FindingsFilter {
    /// Only this organisation's findings, whatever else the filter says.
    pub fn for_organisation(mut self, organisation_id: i64) -> Self {
        self.organisation_id = Some(organisation_id);
        self
    }

    fn push_where(&self, q: &mut QueryBuilder<'_, Postgres>) {
        // A finding joined to another by a late observation is only a
        // pointer to it.
        q.push(" WHERE f.merged_into IS NULL");
        if !self.include_superseded {
            q.push(" AND f.current");
        }
        if let Some(org) = self.organisation_id {
            q.push(" AND f.organisation_id = ").push_bind(org);
        }
        if let Some(sector) = &self.sector {
            q.push(" AND f.organisation_id IN (SELECT id FROM organisations WHERE sector = ")
                .push_bind(sector.clone())
                .push(")");
        }
        if let Some(check) = &self.check {
            q.push(" AND f.check_id = ").push_bind(check.clone());
        }
        if let Some(cve) = &self.cve {
            q.push(" AND f.cves @> ARRAY[")
                .push_bind(cve.clone())
                .push("]::text[]");
        }
        if let Some(status) = self.status {
            q.push(" AND f.status = ").push_bind(status.as_str());
        }
        if let Some(state) = self.state {
            q.push(" AND f.state = ").push_bind(state.as_str());
        }
        if let Some(cidr) = self.cidr {
            q.push(" AND f.ip <<= ").push_bind(cidr);
        }
        if let Some(since) = self.since {
            q.push(" AND f.last_seen >= ").push_bind(since);
        }
        if let Some(until) = self.until {
            q.push(" AND f.first_seen <= ").push_bind(until);
        }
        match self.unattributed {
            Some(true) => {
                q.push(" AND f.organisation_id IS NULL");
            }
            Some(false) => {
                q.push(" AND f.organisation_id IS NOT NULL");
            }
            None => {}
        }
    }
}

/// A CVE id as people and scanners write it, upper-cased: `CVE-2021-26855`.
pub fn parse_cve(field: &str, input: &str) -> DomainResult<String> {
    let cve = input.trim().to_ascii_uppercase();
    let well_formed = cve
        .strip_prefix("CVE-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(year, number)| {
            year.len() == 4
                && number.len() >= 4
                && year
                    .chars()
                    .chain(number.chars())
                    .all(|c| c.is_ascii_digit())
        });
    if well_formed {
        Ok(cve)
    } else {
        Err(DomainError::invalid(
            field,
            format!("{input:?} is not a CVE id like CVE-2021-26855"),
        ))
    }
}

/// Findings matching `filter` with an id above `after`, by id: `limit + 1`
/// rows, so the caller learns whether more exist.
pub async fn list(
    conn: &mut PgConnection,
    filter: &FindingsFilter,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<Finding>> {
    list_in_order(
        conn,
        filter,
        FindingOrder::Id,
        Some(&after.to_string()),
        limit,
    )
    .await
}

/// The order of a findings list. Each breaks ties by id, so a page starts
/// after the last row's (value, id) and never shifts while rows come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FindingOrder {
    /// Oldest finding first.
    #[default]
    Id,
    /// By address.
    Address,
    /// Longest exposed first.
    FirstSeen,
    /// Newest first. (Not by last seen: every rescan moves that, and an
    /// index on it would cost ingest its in-place updates.)
    FirstSeenNewest,
}

impl FindingOrder {
    pub const ALL: [FindingOrder; 4] = [
        FindingOrder::Id,
        FindingOrder::Address,
        FindingOrder::FirstSeen,
        FindingOrder::FirstSeenNewest,
    ];

    /// As a URL names it: `id`, `ip`, `first_seen`, `-first_seen`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingOrder::Id => "id",
            FindingOrder::Address => "ip",
            FindingOrder::FirstSeen => "first_seen",
            FindingOrder::FirstSeenNewest => "-first_seen",
        }
    }

    fn column(self) -> &'static str {
        match self {
            FindingOrder::Id => "f.id",
            FindingOrder::Address => "f.ip",
            FindingOrder::FirstSeen => "f.first_seen",
            FindingOrder::FirstSeenNewest => "f.first_seen",
        }
    }

    fn descending(self) -> bool {
        self == FindingOrder::FirstSeenNewest
    }

    /// Where the page after `f` starts: `id`, or `value_id` (neither an
    /// address nor an RFC 3339 time holds a `_`).
    pub fn cursor_of(self, f: &Finding) -> String {
        match self {
            FindingOrder::Id => f.id.to_string(),
            FindingOrder::Address => format!("{}_{}", f.ip, f.id),
            FindingOrder::FirstSeen | FindingOrder::FirstSeenNewest => {
                format!("{}_{}", f.first_seen.to_rfc3339(), f.id)
            }
        }
    }

    /// Narrows `q` to the rows after `cursor` (see [`Self::cursor_of`]).
    fn push_after(self, q: &mut QueryBuilder<'_, Postgres>, cursor: &str) -> DomainResult<()> {
        let bad = || crate::domain::not_a_page(cursor);
        let (value, id) = crate::domain::page_cursor(cursor)?;
        let op = if self.descending() { " < " } else { " > " };
        match (self, value) {
            (FindingOrder::Id, None) => {
                q.push(" AND f.id").push(op).push_bind(id);
            }
            (FindingOrder::Address, Some(v)) => {
                let ip: IpAddr = v.parse().map_err(|_| bad())?;
                q.push(" AND (f.ip, f.id)")
                    .push(op)
                    .push("(")
                    .push_bind(ip)
                    .push(", ")
                    .push_bind(id)
                    .push(")");
            }
            (FindingOrder::FirstSeen | FindingOrder::FirstSeenNewest, Some(v)) => {
                let at = DateTime::parse_from_rfc3339(v).map_err(|_| bad())?;
                q.push(" AND (")
                    .push(self.column())
                    .push(", f.id)")
                    .push(op)
                    .push("(")
                    .push_bind(at.with_timezone(&Utc))
                    .push(", ")
                    .push_bind(id)
                    .push(")");
            }
            _ => return Err(bad()),
        }
        Ok(())
    }
}

/// Findings matching `filter` in `order`, after the page that ended at
/// `after` ([`FindingOrder::cursor_of`]): `limit + 1` rows, so the caller
/// learns whether more exist.
pub async fn list_in_order(
    conn: &mut PgConnection,
    filter: &FindingsFilter,
    order: FindingOrder,
    after: Option<&str>,
    limit: usize,
) -> DomainResult<Vec<Finding>> {
    let mut q = QueryBuilder::new(SELECT);
    filter.push_where(&mut q);
    if let Some(after) = after {
        order.push_after(&mut q, after)?;
    }
    let direction = if order.descending() { " DESC" } else { "" };
    q.push(" ORDER BY ").push(order.column()).push(direction);
    if order != FindingOrder::Id {
        q.push(", f.id").push(direction);
    }
    q.push(" LIMIT ").push_bind(limit as i64 + 1);
    Ok(q.build_query_as().fetch_all(conn).await?)
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct FindingEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// opened, changed, escalated, resolved, reopened, attributed.
    pub kind: String,
    pub reason: String,
    pub observation_id: Option<i64>,
    pub scan_run_id: Option<i64>,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StoredObservation {
    pub id: i64,
    pub observed_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub scan_run_id: Option<i64>,
    pub state: String,
    pub severity: Option<String>,
    pub cves: Vec<String>,
    pub hostname: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub evidence: Option<serde_json::Value>,
    /// The record as the scanner sent it.
    pub raw: String,
    pub organisation_id: Option<i64>,
    pub network_id: Option<i64>,
    /// How this observation was attributed when it arrived.
    pub attribution: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FindingDetail {
    #[serde(flatten)]
    pub finding: Finding,
    pub history: Vec<FindingEvent>,
    /// The latest 100 observations behind the finding, newest first.
    pub observations: Vec<StoredObservation>,
}

/// One finding with its history and its latest observations; with
/// `organisation_id`, only if it is that organisation's.
pub async fn detail(
    conn: &mut PgConnection,
    id: i64,
    organisation_id: Option<i64>,
) -> DomainResult<FindingDetail> {
    let finding: Finding = sqlx::query_as(&format!(
        "{SELECT} WHERE f.id = $1 AND ($2::bigint IS NULL OR f.organisation_id = $2)"
    ))
    .bind(id)
    .bind(organisation_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| DomainError::not_found(format!("finding {id}")))?;
    let history = sqlx::query_as(
        "SELECT id, at, kind, reason, observation_id, scan_run_id, from_state, to_state
           FROM finding_events WHERE finding_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let observations = sqlx::query_as(
        "SELECT id, observed_at, received_at, scan_run_id, state, severity, cves, hostname, product, version,
                evidence, raw, organisation_id, network_id, attribution
           FROM observations WHERE finding_id = $1 ORDER BY observed_at DESC, id DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(FindingDetail {
        finding,
        history,
        observations,
    })
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SummaryRow {
    #[sqlx(rename = "check_id")]
    pub check: String,
    pub status: String,
    pub findings: i64,
    pub compromised: i64,
    pub unattributed: i64,
    pub organisations: i64,
}

/// Counts of current findings per check and status.
pub async fn summary(conn: &mut PgConnection) -> DomainResult<Vec<SummaryRow>> {
    Ok(sqlx::query_as(
        "SELECT check_id, status, count(*) AS findings,
                count(*) FILTER (WHERE worst_state = 'compromised') AS compromised,
                count(*) FILTER (WHERE organisation_id IS NULL) AS unattributed,
                count(DISTINCT organisation_id) AS organisations
           FROM findings WHERE current GROUP BY check_id, status ORDER BY check_id, status",
    )
    .fetch_all(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::parse_cve;

    #[test]
    fn cve_ids() {
        assert_eq!(
            parse_cve("cve", " cve-2021-26855 ").unwrap(),
            "CVE-2021-26855"
        );
        assert_eq!(
            parse_cve("cve", "CVE-2021-1234567").unwrap(),
            "CVE-2021-1234567"
        );
        for bad in [
            "CVE-2021-123",
            "CVE-21-26855",
            "2021-26855",
            "CVE-2021-2685x",
            "",
        ] {
            assert!(parse_cve("cve", bad).is_err(), "{bad}");
        }
    }
}
