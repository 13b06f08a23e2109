//! What an advisory page shows, read for one live link: the notification,
//! its campaign, and the organisation's own findings of it — only those
//! the organisation still owns (a finding the registry later gave to
//! someone else is not shown any more), and those it said were not its
//! own, without their details — with the outcome of every re-check; what
//! the organisation answered so far; and the page view, which is the open.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;

use super::access::Link;

/// A finding as the page and the downloads show it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PageFinding {
    pub id: i64,
    pub ip: IpAddr,
    pub port: i32,
    pub protocol: String,
    pub check_id: String,
    /// `vulnerable`, `compromised`, …
    pub state: String,
    /// `open` or `resolved`.
    pub status: String,
    pub cves: Vec<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub product: Option<String>,
    pub version: Option<String>,
    /// The host name the scanner reported.
    pub hostname: Option<String>,
    /// What the scanner saw, as it reported it.
    pub evidence: Option<serde_json::Value>,
    /// A compromise a covering scan no longer sees: its last sighting.
    pub not_seen_since: Option<DateTime<Utc>>,
    /// When the organisation reported it fixed.
    pub recheck_requested_at: Option<DateTime<Utc>>,
    pub false_positive_until: Option<DateTime<Utc>>,
    pub false_positive_reason: Option<String>,
    /// The organisation said the address is not its own.
    pub disputed: bool,
}

/// Where a re-check the organisation asked for stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    Pending,
    /// Seen fixed (resolved) since.
    Confirmed,
    /// Seen vulnerable again since.
    StillSeen,
}

impl PageFinding {
    pub fn recheck(&self) -> Option<Recheck> {
        let asked = self.recheck_requested_at?;
        Some(match (self.status.as_str(), self.resolved_at) {
            ("resolved", Some(at)) if at >= asked => Recheck::Confirmed,
            ("open", _) if self.last_seen >= asked => Recheck::StillSeen,
            ("open", _) => Recheck::Pending,
            _ => return None,
        })
    }

    /// Flagged a false positive, as of `now`.
    pub fn false_positive(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.false_positive_until.filter(|until| *until > now)
    }

    /// What the organisation can still answer about.
    pub fn answerable(&self) -> bool {
        self.status == "open" && !self.disputed
    }
}

/// The organisation's findings of the notification: open ones first,
/// compromised ones first among them, then by address. (Sorted here: in
/// the query, the sort of these wide rows costs more than the rest of it.)
pub async fn findings(
    conn: &mut PgConnection,
    link: &Link,
) -> Result<Vec<PageFinding>, sqlx::Error> {
    let mut rows: Vec<PageFinding> = sqlx::query_as(
        "SELECT f.id, f.ip, f.port, f.protocol, f.check_id, f.state, f.status, f.cves,
                f.first_seen, f.last_seen, f.resolved_at,
                o.product, o.version, o.hostname, o.evidence,
                CASE WHEN f.status = 'open' AND f.missed_at > f.last_seen THEN f.last_seen END
                    AS not_seen_since,
                f.recheck_requested_at, f.false_positive_until, f.false_positive_reason,
                f.organisation_id IS NULL AS disputed
           FROM notification_findings nf
           JOIN findings f ON f.id = nf.finding_id
           LEFT JOIN LATERAL (
                SELECT product, version, hostname, evidence FROM observations
                 WHERE finding_id = f.id AND id = f.last_observation_id LIMIT 1) o ON true
          WHERE nf.notification_id = $1
            AND (f.organisation_id = $2 OR (f.organisation_id IS NULL AND f.disputed_by = $2))",
    )
    .bind(link.notification_id)
    .bind(link.organisation_id)
    .fetch_all(conn)
    .await?;
    rows.sort_by(|a, b| {
        let key = |f: &PageFinding| (f.status != "open", f.state != "compromised");
        key(a)
            .cmp(&key(b))
            .then_with(|| a.ip.cmp(&b.ip))
            .then_with(|| a.port.cmp(&b.port))
            .then_with(|| a.check_id.cmp(&b.check_id))
    });
    Ok(rows)
}

/// One thing the organisation said, as its history lists it.
#[derive(Debug, sqlx::FromRow)]
pub struct PastAnswer {
    pub at: DateTime<Utc>,
    pub kind: String,
    /// The finding's address and port, for answers about one.
    pub target: Option<String>,
}

/// The latest answers, newest first.
pub async fn history(conn: &mut PgConnection, link: &Link) -> Result<Vec<PastAnswer>, sqlx::Error> {
    sqlx::query_as(
        "SELECT r.at, r.kind, host(f.ip) || ' ' || f.port || '/' || f.protocol AS target
           FROM responses r LEFT JOIN findings f ON f.id = r.finding_id
          WHERE r.notification_id = $1 ORDER BY r.id DESC LIMIT 50",
    )
    .bind(link.notification_id)
    .fetch_all(conn)
    .await
}

/// Counts a view of the page as an open: first and last opened, how
/// often; the first goes on the notification's timeline. One statement,
/// committed without waiting for the disk (`set_config(…, true)` holds for
/// the statement's own transaction): a crash may forget the last views,
/// and the views of a notification do not queue behind each other's
/// flushes.
pub async fn record_open(
    conn: &mut PgConnection,
    link: &Link,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)),
         opened AS (
            UPDATE notifications SET first_opened_at = coalesce(first_opened_at, $2),
                   last_opened_at = $2, open_count = open_count + 1
              FROM async WHERE id = $1 RETURNING id, open_count)
         INSERT INTO notification_events (notification_id, at, kind, actor, detail)
         SELECT id, $2, 'opened', $3, jsonb_build_object('link_id', $4::bigint)
           FROM opened WHERE open_count = 1",
    )
    .bind(link.notification_id)
    .bind(now)
    .bind(
        crate::domain::Actor::Organisation {
            id: link.organisation_id,
        }
        .to_string(),
    )
    .bind(link.link_id)
    .execute(conn)
    .await?;
    Ok(())
}
