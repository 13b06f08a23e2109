//! Reading notifications — a campaign's, the no-contact queue, one with its
//! findings and timeline — and appending to a timeline.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;

use super::model::{Notification, NotificationStatus, TimelineEvent};
use super::render::Host;
use crate::domain::{Actor, DomainError, DomainResult};

/// What of a notification's findings counts — for reminders, the open
/// count, resolution: open, still the organisation's (not reported "not
/// ours", not given to another owner since), and not flagged a false
/// positive. Over `notification_findings nf`, `findings f` and
/// `notifications n`.
pub const COUNTS: &str = "(f.status = 'open' AND f.organisation_id = n.organisation_id \
                           AND f.false_positive_until IS NULL)";

const COLUMNS: &str = "n.id, n.campaign_id, n.organisation_id, o.ref AS organisation_ref, \
     o.name AS organisation_name, n.ticket, n.status, \
     (SELECT count(*) FROM notification_findings nf JOIN findings f ON f.id = nf.finding_id
       WHERE nf.notification_id = n.id AND f.status = 'open' AND f.organisation_id = n.organisation_id
         AND f.false_positive_until IS NULL) AS open_findings, \
     (SELECT count(*) FROM notification_findings nf WHERE nf.notification_id = n.id) AS findings, \
     n.created_at, n.approved_at, n.approved_by, n.mailed_at, n.sent_at, n.acknowledged_at, \
     n.resolved_at, n.link_expires_at, n.reminders_sent, n.followups_sent, \
     n.first_opened_at, n.last_opened_at, n.open_count";

/// Which notifications to list.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// Only notifications in this status (`no_contact` is the queue of
    /// those waiting for a contact).
    pub status: Option<NotificationStatus>,
    /// Only this campaign's.
    pub campaign_id: Option<i64>,
    /// Only this organisation's.
    pub organisation_id: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// A page by id after `after`; `limit + 1` rows, so the caller learns
/// whether more exist.
pub async fn list(
    conn: &mut PgConnection,
    q: &NotificationQuery,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<Notification>> {
    list_in_order(
        conn,
        q,
        NotificationOrder::Id,
        Some(&after.to_string()),
        limit,
    )
    .await
}

/// The order of a notifications list; ties go by id, so a page starts
/// after the last row's (value, id) and never shifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotificationOrder {
    /// Drafted first.
    #[default]
    Id,
    /// By the organisation's name.
    Organisation,
    /// By status, so that those still drafts, or waiting for a contact,
    /// stand together.
    Status,
}

impl NotificationOrder {
    pub const ALL: [NotificationOrder; 3] = [
        NotificationOrder::Id,
        NotificationOrder::Organisation,
        NotificationOrder::Status,
    ];

    /// As a URL names it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationOrder::Id => "id",
            NotificationOrder::Organisation => "organisation",
            NotificationOrder::Status => "status",
        }
    }

    /// Where the page after `n` starts: `id`, or `value_id` (the id is
    /// after the last `_`, whatever the value holds).
    pub fn cursor_of(self, n: &Notification) -> String {
        match self {
            NotificationOrder::Id => n.id.to_string(),
            NotificationOrder::Organisation => format!("{}_{}", n.organisation_name, n.id),
            NotificationOrder::Status => format!("{}_{}", n.status.as_str(), n.id),
        }
    }

    /// The sort value's SQL, of `notifications n JOIN organisations o`.
    fn column(self) -> &'static str {
        match self {
            NotificationOrder::Id => "n.id",
            NotificationOrder::Organisation => "o.name",
            NotificationOrder::Status => "n.status",
        }
    }
}

/// The page of `q` in `order` after the one that ended at `after`
/// ([`NotificationOrder::cursor_of`]): `limit + 1` rows, so the caller
/// learns whether more exist.
pub async fn list_in_order(
    conn: &mut PgConnection,
    q: &NotificationQuery,
    order: NotificationOrder,
    after: Option<&str>,
    limit: usize,
) -> DomainResult<Vec<Notification>> {
    let (value, id) = match after.map(|c| (c, crate::domain::page_cursor(c))) {
        None => (None, 0),
        Some((cursor, cut)) => match (order, cut?) {
            (NotificationOrder::Id, (None, id)) => (None, id),
            (NotificationOrder::Id, _) | (_, (None, _)) => {
                return Err(crate::domain::not_a_page(cursor));
            }
            (_, (Some(value), id)) => (Some(value), id),
        },
    };
    let after_clause = match order {
        // $6 (the value) is always none here, but the statement takes it.
        NotificationOrder::Id => "n.id > $1 AND $6::text IS NULL".to_owned(),
        o => format!("($6::text IS NULL OR ({}, n.id) > ($6, $1))", o.column()),
    };
    let order_by = match order {
        NotificationOrder::Id => "n.id".to_owned(),
        o => format!("{}, n.id", o.column()),
    };
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications n JOIN organisations o ON o.id = n.organisation_id
          WHERE {after_clause} AND ($2::text IS NULL OR n.status = $2)
            AND ($3::bigint IS NULL OR n.campaign_id = $3)
            AND ($4::bigint IS NULL OR n.organisation_id = $4)
          ORDER BY {order_by} LIMIT $5"
    ))
    .bind(id)
    .bind(q.status.map(NotificationStatus::as_str))
    .bind(q.campaign_id)
    .bind(q.organisation_id)
    .bind(limit as i64 + 1)
    .bind(value)
    .fetch_all(conn)
    .await?)
}

pub async fn fetch(conn: &mut PgConnection, id: i64) -> DomainResult<Notification> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM notifications n JOIN organisations o ON o.id = n.organisation_id
          WHERE n.id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| DomainError::not_found(format!("notification {id}")))
}

/// The notification's findings as mails list them: those that count (see
/// [`COUNTS`]), or with `all` every one still the organisation's (the
/// closing mail).
pub async fn hosts(conn: &mut PgConnection, id: i64, all: bool) -> DomainResult<Vec<Host>> {
    Ok(sqlx::query_as(&format!(
        "SELECT f.id AS finding_id, host(f.ip) AS ip, f.port, f.protocol, f.check_id, f.state,
                f.first_seen, f.last_seen, o.product, o.version, o.hostname, o.evidence::jsonb AS evidence,
                CASE WHEN f.status = 'open' AND f.missed_at > f.last_seen THEN f.last_seen END
                    AS not_seen_since,
                nf.mailed_at IS NULL AS new
           FROM notification_findings nf
           JOIN notifications n ON n.id = nf.notification_id
           JOIN findings f ON f.id = nf.finding_id
           LEFT JOIN LATERAL (
                SELECT product, version, hostname, evidence FROM observations
                 WHERE finding_id = f.id AND id = f.last_observation_id LIMIT 1) o ON true
          WHERE nf.notification_id = $1
            AND (($2 AND f.organisation_id = n.organisation_id) OR {COUNTS})
          ORDER BY f.ip, f.port, f.check_id"
    ))
    .bind(id)
    .bind(all)
    .fetch_all(conn)
    .await?)
}

/// The timeline, oldest first.
pub async fn timeline(conn: &mut PgConnection, id: i64) -> DomainResult<Vec<TimelineEvent>> {
    fetch(&mut *conn, id).await?;
    Ok(sqlx::query_as(
        "SELECT id, at, kind, actor, detail FROM notification_events
          WHERE notification_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(conn)
    .await?)
}

/// Appends to the timelines of `ids`, in the caller's transaction.
pub async fn record(
    conn: &mut PgConnection,
    ids: &[i64],
    at: DateTime<Utc>,
    kind: &str,
    actor: &Actor,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notification_events (notification_id, at, kind, actor, detail)
         SELECT id, $2, $3, $4, $5 FROM unnest($1::bigint[]) AS id",
    )
    .bind(ids)
    .bind(at)
    .bind(kind)
    .bind(actor.to_string())
    .bind(detail)
    .execute(conn)
    .await?;
    Ok(())
}
