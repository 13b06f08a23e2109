//! `/audit`: the audit log — who did what to which subject, when, with its
//! detail — newest first, filtered by actor, action and subject (the
//! filters live in the URL, so a view can be passed to a colleague), a
//! page at a time. For analysts and admins.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::operators::Role;
use super::routes::{Chrome, list_address, oslo_time, require, with_csrf_cookie};
use super::sessions::Signed;
use crate::app::AppState;
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new().route("/audit", get(show))
}

/// Rows per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    /// Part of the actor, e.g. `operator:3` or an e-mail address.
    actor: Option<String>,
    /// An action or the start of one, e.g. `escalation.` or `operator.login_failed`.
    action: Option<String>,
    /// A subject, e.g. `organisation:12`, or the start of one.
    subject: Option<String>,
    /// The last id of the previous page.
    before: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Event {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    action: String,
    subject: String,
    detail: serde_json::Value,
}

struct Line {
    at: String,
    actor: String,
    action: String,
    subject: String,
    /// `field: before → after`, one per changed field.
    changes: Vec<(String, String, String)>,
    /// The rest of the detail.
    detail: String,
}

/// Splits an event's detail into the fields it changed (`before` and
/// `after`, see [`crate::audit::changes`]) and whatever else it says.
pub(super) fn explain(mut detail: serde_json::Value) -> (Vec<(String, String, String)>, String) {
    let shown = |v: Option<&serde_json::Value>| match v {
        None => "—".to_owned(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let mut changes = Vec::new();
    if let Some(map) = detail.as_object_mut() {
        let before = map.remove("before");
        let after = map.remove("after");
        let empty = serde_json::Map::new();
        let old = before
            .as_ref()
            .and_then(|b| b.as_object())
            .unwrap_or(&empty);
        let new = after.as_ref().and_then(|a| a.as_object()).unwrap_or(&empty);
        let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            changes.push((key.clone(), shown(old.get(key)), shown(new.get(key))));
        }
    }
    let rest = if detail == serde_json::json!({}) {
        String::new()
    } else {
        detail.to_string()
    };
    (changes, rest)
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
struct AuditPage {
    layout: Layout,
    chrome: Chrome,
    actor: String,
    action: String,
    subject: String,
    lines: Vec<Line>,
    /// The next page's address, filters kept.
    next: Option<String>,
}

/// A filter as typed: trimmed, empty is none, `%` and `_` taken literally.
fn filter(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(|v| {
        v.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    })
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    require(&signed, Role::Analyst)?;
    let mut conn = state.pool.acquire().await?;
    let mut events: Vec<Event> = sqlx::query_as(
        "SELECT id, at, actor, action, subject, detail FROM audit_events
          WHERE id < $1
            AND ($2::text IS NULL OR actor ILIKE '%' || $2 || '%')
            AND ($3::text IS NULL OR action LIKE $3 || '%')
            AND ($4::text IS NULL OR subject LIKE $4 || '%')
          ORDER BY id DESC LIMIT $5",
    )
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(filter(q.actor.as_deref()))
    .bind(filter(q.action.as_deref()))
    .bind(filter(q.subject.as_deref()))
    .bind(PAGE as i64 + 1)
    .fetch_all(&mut *conn)
    .await?;
    let more = events.len() > PAGE;
    events.truncate(PAGE);
    let text = |v: &Option<String>| v.as_deref().unwrap_or("").trim().to_owned();
    let next = events.last().filter(|_| more).map(|last| {
        list_address(
            "/audit",
            &[
                ("actor", q.actor.as_deref().unwrap_or("")),
                ("action", q.action.as_deref().unwrap_or("")),
                ("subject", q.subject.as_deref().unwrap_or("")),
                ("before", &last.id.to_string()),
            ],
        )
    });
    let page = AuditPage {
        layout: Layout::dashboard("Audit log · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        actor: text(&q.actor),
        action: text(&q.action),
        subject: text(&q.subject),
        lines: events
            .into_iter()
            .map(|e| {
                let (changes, detail) = explain(e.detail);
                Line {
                    at: oslo_time(e.at),
                    actor: e.actor,
                    action: e.action,
                    subject: e.subject,
                    changes,
                    detail,
                }
            })
            .collect(),
        next,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}
