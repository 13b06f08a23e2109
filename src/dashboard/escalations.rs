//! `/escalations`: what organisations reported as signs of compromise, as
//! a queue. Everyone sees it; an analyst takes an open one and closes it
//! with a note — through the same domain functions as the API.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::operators::Role;
use super::routes::{Act, Analyst, Chrome, keyset_page, oslo_time, with_csrf_cookie};
use super::sessions::Signed;
use crate::advisory::store::{self, Escalation, EscalationStatus};
use crate::app::AppState;
use crate::domain::DomainError;
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, FormFields};
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/escalations", get(list))
        .route("/escalations/{id}/take", post(take))
        .route("/escalations/{id}/close", post(close))
}

/// Rows per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    /// `open` (the default), `taken`, `closed`; `all` for every one.
    status: Option<String>,
    /// The last id of the previous page.
    after: Option<i64>,
}

struct Row {
    e: Escalation,
    opened: String,
}

#[derive(Template)]
#[template(path = "dashboard/escalations.html")]
struct EscalationsPage<'a> {
    layout: Layout,
    chrome: Chrome,
    status: &'a str,
    rows: Vec<Row>,
    next: Option<i64>,
    can_act: bool,
    /// A close that failed: the escalation and what was wrong.
    failed: Option<(i64, FieldErrors, String)>,
}

impl EscalationsPage<'_> {
    fn error_for(&self, id: &i64, field: &str) -> Option<&str> {
        self.failed
            .as_ref()
            .filter(|(failed, _, _)| failed == id)
            .and_then(|(_, errors, _)| errors.get(field))
    }

    fn note_for(&self, id: &i64) -> &str {
        self.failed
            .as_ref()
            .filter(|(failed, _, _)| failed == id)
            .map_or("", |(_, _, note)| note.as_str())
    }
}

fn status_filter(status: Option<&str>) -> (&'static str, Option<EscalationStatus>) {
    match status {
        Some("taken") => ("taken", Some(EscalationStatus::Taken)),
        Some("closed") => ("closed", Some(EscalationStatus::Closed)),
        Some("all") => ("all", None),
        _ => ("open", Some(EscalationStatus::Open)),
    }
}

async fn render(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    q: &ListQuery,
    failed: Option<(i64, FieldErrors, String)>,
) -> Result<Response, WebError> {
    let (status, filter) = status_filter(q.status.as_deref());
    let mut conn = state.pool.acquire().await?;
    let mut rows = store::escalations(&mut conn, filter, q.after.unwrap_or(0), PAGE).await?;
    let next = keyset_page(&mut rows, PAGE, |r| r.id);
    let page = EscalationsPage {
        layout: Layout::dashboard("Escalations · Varsel"),
        chrome: Chrome::of(state, signed, csrf),
        status,
        rows: rows
            .into_iter()
            .map(|e| Row {
                opened: oslo_time(e.opened_at),
                e,
            })
            .collect(),
        next,
        can_act: signed.operator.role >= Role::Analyst,
        failed,
    };
    Ok(with_csrf_cookie(state, csrf, page::render(&page)?))
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    render(&state, &signed, &csrf, &q, None).await
}

/// Back to the list the action came from.
fn back(form: &FormFields) -> Redirect {
    let (status, _) = status_filter(form.get("status"));
    Redirect::to(&format!("/escalations?status={status}"))
}

async fn take(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, form, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    match store::take_escalation(&mut conn, &signed.operator.actor(), id, state.clock.now()).await {
        // Taken meanwhile by someone else: the list shows by whom.
        Ok(()) | Err(DomainError::Conflict { .. }) => Ok(back(&form).into_response()),
        Err(e) => Err(e.into()),
    }
}

async fn close(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let note = form.get("note").unwrap_or("");
    let mut conn = state.pool.acquire().await?;
    match store::close_escalation(
        &mut conn,
        &signed.operator.actor(),
        id,
        note,
        state.clock.now(),
    )
    .await
    {
        Ok(()) | Err(DomainError::Conflict { .. }) => Ok(back(&form).into_response()),
        Err(DomainError::Invalid { detail, .. }) => {
            drop(conn);
            let mut errors = FieldErrors::default();
            errors.add("note", format!("The note {detail}."));
            let q = ListQuery {
                status: Some(status_filter(form.get("status")).0.to_owned()),
                after: None,
            };
            let page = render(
                &state,
                &signed,
                &csrf,
                &q,
                Some((id, errors, note.to_owned())),
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
