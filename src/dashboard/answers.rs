//! `/answers`: what organisations answered on their advisory pages, over
//! every notification — newest first, filtered in the URL by the kind of
//! answer, the campaign and the organisation, a page at a time. The
//! chase-list of the response: who fixed, who says "not ours", who has
//! not looked. Everyone sees it; answers are the organisations' own and
//! are not changed here (a "not ours" goes to triage, a compromise to the
//! escalations).

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::routes::{Chrome, keyset_page, list_address, oslo_time, query_id, with_csrf_cookie};
use super::sessions::Signed;
use crate::app::AppState;
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new().route("/answers", get(list))
}

/// Rows per page.
const PAGE: usize = 50;

/// The kinds of answer an advisory page takes (`responses.kind`).
const KINDS: [&str; 7] = [
    "acknowledged",
    "fixed",
    "false_positive",
    "not_ours",
    "compromise",
    "comment",
    "contact_change",
];

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    kind: Option<String>,
    campaign: Option<String>,
    organisation: Option<String>,
    /// The last id of the previous page.
    before: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct Answer {
    id: i64,
    at: DateTime<Utc>,
    kind: String,
    finding_id: Option<i64>,
    detail: serde_json::Value,
    notification_id: i64,
    ticket: String,
    organisation_id: i64,
    organisation_name: String,
}

#[derive(Template)]
#[template(path = "dashboard/answers.html")]
struct AnswersPage {
    layout: Layout,
    chrome: Chrome,
    kinds: &'static [&'static str],
    kind: String,
    campaign: String,
    organisation: String,
    rows: Vec<(Answer, String)>,
    next: Option<String>,
}

impl AnswersPage {
    fn is_kind(&self, k: &str) -> bool {
        self.kind == k
    }
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let kind = match q.kind.as_deref().map(str::trim).filter(|k| !k.is_empty()) {
        None => None,
        Some(k) if KINDS.contains(&k) => Some(k.to_owned()),
        Some(k) => {
            return Err(WebError::BadRequest(format!(
                "kind: {k:?} is none of {}",
                KINDS.join(", ")
            )));
        }
    };
    let campaign = query_id("campaign", q.campaign.as_deref())?;
    let organisation = query_id("organisation", q.organisation.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let mut rows: Vec<Answer> = sqlx::query_as(
        "SELECT r.id, r.at, r.kind, r.finding_id, r.detail, r.notification_id, n.ticket,
                n.organisation_id, o.name AS organisation_name
           FROM responses r
           JOIN notifications n ON n.id = r.notification_id
           JOIN organisations o ON o.id = n.organisation_id
          WHERE r.id < $1
            AND ($2::text IS NULL OR r.kind = $2)
            AND ($3::bigint IS NULL OR n.campaign_id = $3)
            AND ($4::bigint IS NULL OR n.organisation_id = $4)
          ORDER BY r.id DESC LIMIT $5",
    )
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(&kind)
    .bind(campaign)
    .bind(organisation)
    .bind(PAGE as i64 + 1)
    .fetch_all(&mut *conn)
    .await?;
    let kind = kind.unwrap_or_default();
    let campaign = campaign.map_or(String::new(), |c| c.to_string());
    let organisation = organisation.map_or(String::new(), |o| o.to_string());
    let next = keyset_page(&mut rows, PAGE, |r| r.id).map(|before| {
        list_address(
            "/answers",
            &[
                ("kind", &kind),
                ("campaign", &campaign),
                ("organisation", &organisation),
                ("before", &before.to_string()),
            ],
        )
    });
    let page = AnswersPage {
        layout: Layout::dashboard("Answers · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        kinds: &KINDS,
        kind,
        campaign,
        organisation,
        rows: rows
            .into_iter()
            .map(|a| {
                let at = oslo_time(a.at);
                (a, at)
            })
            .collect(),
        next,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}
