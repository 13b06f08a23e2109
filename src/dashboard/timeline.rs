//! `/organisations/{id}/timeline`: everything that happened to one
//! organisation, newest first, a page at a time — its notifications'
//! events (drafted, mailed, delivered, reminded, …), its answers, and the
//! audit log of its registry entry, contacts, networks, domains and
//! proposed contacts (who changed what, before → after). One query over
//! the three tables; paged by its sort key, so a page never shifts.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgConnection;

use super::audit::explain;
use super::routes::{Chrome, oslo_time, with_csrf_cookie};
use super::sessions::Signed;
use crate::app::AppState;
use crate::registry::organisations;
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new().route("/organisations/{id}/timeline", get(show))
}

/// Entries per page.
const PAGE: usize = 50;

/// Where an entry comes from; also its place among entries of the same
/// instant.
#[derive(Debug, Clone, Copy)]
enum Source {
    Notification = 1,
    Answer = 2,
    Registry = 3,
}

#[derive(sqlx::FromRow)]
struct Entry {
    at: DateTime<Utc>,
    source: i32,
    id: i64,
    what: String,
    actor: String,
    /// The ticket, or the audit event's subject.
    about: String,
    notification_id: Option<i64>,
    detail: serde_json::Value,
}

/// The page's sort key, `at source id` as the URL carries it.
#[derive(Debug, Default, Deserialize)]
struct TimelineQuery {
    before_at: Option<DateTime<Utc>>,
    before_source: Option<i32>,
    before_id: Option<i64>,
}

/// A page of the organisation's entries older than `before`, and one more.
async fn entries(
    conn: &mut PgConnection,
    organisation_id: i64,
    before: Option<(DateTime<Utc>, i32, i64)>,
) -> Result<Vec<Entry>, sqlx::Error> {
    let (at, source, id) = before.map_or((None, 0, 0), |(a, s, i)| (Some(a), s, i));
    sqlx::query_as(
        "SELECT * FROM (
            SELECT e.at, $2 AS source, e.id, e.kind AS what, e.actor, n.ticket AS about,
                   n.id AS notification_id, e.detail
              FROM notification_events e JOIN notifications n ON n.id = e.notification_id
             WHERE n.organisation_id = $1
            UNION ALL
            SELECT r.at, $3, r.id, 'answered ' || r.kind, 'the organisation', n.ticket,
                   n.id, r.detail
              FROM responses r JOIN notifications n ON n.id = r.notification_id
             WHERE n.organisation_id = $1
            UNION ALL
            SELECT a.at, $4, a.id, a.action, a.actor, a.subject, NULL, a.detail
              FROM audit_events a
             WHERE a.subject = 'organisation:' || $1
                OR a.subject IN (SELECT 'contact:' || id FROM contacts WHERE organisation_id = $1
                                 UNION ALL
                                 SELECT 'network:' || id FROM networks WHERE organisation_id = $1
                                 UNION ALL
                                 SELECT 'domain:' || id FROM domains WHERE organisation_id = $1
                                 UNION ALL
                                 SELECT 'contact_proposal:' || id FROM contact_proposals
                                  WHERE organisation_id = $1)
         ) t
         WHERE $5::timestamptz IS NULL OR (t.at, t.source, t.id) < ($5, $6, $7)
         ORDER BY t.at DESC, t.source DESC, t.id DESC
         LIMIT $8",
    )
    .bind(organisation_id)
    .bind(Source::Notification as i32)
    .bind(Source::Answer as i32)
    .bind(Source::Registry as i32)
    .bind(at)
    .bind(source)
    .bind(id)
    .bind(PAGE as i64 + 1)
    .fetch_all(conn)
    .await
}

struct Line {
    at: String,
    what: String,
    actor: String,
    about: String,
    /// The notification the entry belongs to, for a link.
    notification_id: Option<i64>,
    changes: Vec<(String, String, String)>,
    detail: String,
}

#[derive(Template)]
#[template(path = "dashboard/timeline.html")]
struct TimelinePage {
    layout: Layout,
    chrome: Chrome,
    organisation_id: i64,
    organisation_name: String,
    lines: Vec<Line>,
    next: Option<String>,
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
    Query(q): Query<TimelineQuery>,
) -> Result<Response, WebError> {
    let before = match (q.before_at, q.before_source, q.before_id) {
        (Some(at), Some(source), Some(id)) => Some((at, source, id)),
        (None, None, None) => None,
        _ => {
            return Err(WebError::BadRequest(
                "before_at, before_source and before_id go together".to_owned(),
            ));
        }
    };
    let mut conn = state.pool.acquire().await?;
    let org = organisations::fetch(&mut conn, id).await?;
    let mut rows = entries(&mut conn, id, before).await?;
    let more = rows.len() > PAGE;
    rows.truncate(PAGE);
    let next = rows.last().filter(|_| more).map(|last| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        url.append_pair("before_at", &last.at.to_rfc3339())
            .append_pair("before_source", &last.source.to_string())
            .append_pair("before_id", &last.id.to_string());
        format!("/organisations/{id}/timeline?{}", url.finish())
    });
    let lines = rows
        .into_iter()
        .map(|e| {
            let (changes, detail) = explain(e.detail);
            Line {
                at: oslo_time(e.at),
                what: e.what,
                actor: e.actor,
                about: e.about,
                notification_id: e.notification_id,
                changes,
                detail,
            }
        })
        .collect();
    let page = TimelinePage {
        layout: Layout::dashboard(format!("Timeline · {} · Varsel", org.name)),
        chrome: Chrome::of(&state, &signed, &csrf),
        organisation_id: id,
        organisation_name: org.name,
        lines,
        next,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}
