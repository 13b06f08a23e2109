//! The advisory page, `/a/{token}`: the page itself (each view is an
//! open), its forms (one POST endpoint, the form named by a field;
//! errors show the page again with the field at fault, success redirects
//! to the page with a thank-you), and the findings as CSV and JSON.

use std::net::IpAddr;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::access::{self, ClientAddr, Link};
use super::answers::{self, Recorded};
use super::page::{self, PageState};
use super::view::{self, PageFinding};
use crate::app::AppState;
use crate::domain::spreadsheet_safe as cell;
use crate::web::csrf::{self, CsrfCookie};
use crate::web::error::WebError;
use crate::web::form::FormFields;

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/a/{token}", get(show).post(answer))
        .route("/a/{token}/{file}", get(download))
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    /// `nb` or `en`; else the language of the mail.
    lang: Option<String>,
    /// The kind of answer just recorded, for the thank-you.
    done: Option<String>,
}

/// The rate limit, then the link: what every request of the page does
/// first.
async fn open_link(
    state: &AppState,
    client: Option<IpAddr>,
    token: &str,
    now: DateTime<Utc>,
) -> Result<(sqlx::pool::PoolConnection<sqlx::Postgres>, Link), WebError> {
    access::check_rate(state, client)?;
    let mut conn = state.pool.acquire().await?;
    let link = access::resolve(&mut conn, token, now).await?;
    Ok((conn, link))
}

async fn show(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let (mut conn, link) = open_link(&state, client, &token, now).await?;
    view::record_open(&mut conn, &link, now).await?;
    let findings = view::findings(&mut conn, &link).await?;
    let language = link.language(q.lang.as_deref());
    let page_state = PageState {
        done: q.done.as_deref().map(str::to_owned),
        ..PageState::default()
    };
    let response = page::render(
        &state, &mut conn, &link, &token, language, &csrf, &findings, page_state, now,
    )
    .await?;
    Ok(csrf.attach(state.settings.secure_cookies(), response))
}

async fn answer(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path(token): Path<String>,
    Query(q): Query<PageQuery>,
    headers: axum::http::HeaderMap,
    csrf: CsrfCookie,
    form: FormFields,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let (mut conn, link) = open_link(&state, client, &token, now).await?;
    // The page's `no-referrer` makes its forms send `Origin: null`.
    csrf::check_form(
        &csrf,
        &headers,
        &state.settings.link_secret(),
        &link.csrf_scope(),
        &form,
        true,
    )?;
    let submission = form
        .get("submission")
        .filter(|s| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| WebError::BadRequest("the form lacks its submission key".to_owned()))?;
    let language = link.language(form.get("lang").or(q.lang.as_deref()));
    let findings = view::findings(&mut conn, &link).await?;
    let answerable: Vec<i64> = findings
        .iter()
        .filter(|f| f.answerable())
        .map(|f| f.id)
        .collect();
    let words = super::texts::PageWords::of(language);
    match answers::read(&form, words, &answerable) {
        Err(errors) => {
            let page_state = PageState {
                done: None,
                echo: page::Echo::from_form(&form),
                errors,
            };
            let response = page::render(
                &state, &mut conn, &link, &token, language, &csrf, &findings, page_state, now,
            )
            .await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, response).into_response())
        }
        Ok(answer) => {
            drop(conn);
            let key = format!("{submission}:{}", answer.kind());
            let recorded = answers::record(&state, &link, &answer, &key, client, now).await?;
            if recorded == Recorded::Again {
                tracing::info!(notification = link.notification_id, "a form was sent again");
            }
            Ok(Redirect::to(&format!(
                "/a/{token}?lang={}&done={}#answered",
                language.code(),
                answer.kind()
            ))
            .into_response())
        }
    }
}

/// `findings.csv` or `findings.json`: the organisation's findings as the
/// page lists them.
async fn download(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    Path((token, file)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let (mut conn, link) = open_link(&state, client, &token, now).await?;
    let content_type = match file.as_str() {
        "findings.csv" => "text/csv; charset=utf-8",
        "findings.json" => "application/json",
        _ => return Err(WebError::NotFound),
    };
    let ticket = &link.ticket;
    let findings = view::findings(&mut conn, &link).await?;
    let body = if file.ends_with(".csv") {
        findings_csv(&findings).map_err(WebError::Internal)?
    } else {
        serde_json::to_vec_pretty(&serde_json::json!({
            "ticket": ticket,
            "findings": findings,
        }))
        .map_err(|e| WebError::Internal(e.into()))?
    };
    Ok(attachment(content_type, &format!("{ticket}-{file}"), body))
}

fn attachment(content_type: &'static str, filename: &str, body: Vec<u8>) -> Response {
    let disposition = content_disposition_header(filename);
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response()
}

/// Ticket references are ASCII letters, digits and dashes, so the name
/// needs no encoding.
fn content_disposition_header(filename: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

fn findings_csv(findings: &[PageFinding]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "ip",
        "port",
        "protocol",
        "check",
        "state",
        "status",
        "cves",
        "first_seen",
        "last_seen",
        "resolved_at",
        "product",
        "version",
        "recheck_requested_at",
        "false_positive_until",
        "disputed",
        "evidence",
    ])?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for f in findings {
        let ip = f.ip.to_string();
        w.write_record([
            ip.as_str(),
            &f.port.to_string(),
            &f.protocol,
            &cell(&f.check_id),
            &f.state,
            &f.status,
            &f.cves.join(" "),
            &f.first_seen.to_rfc3339(),
            &f.last_seen.to_rfc3339(),
            &time(f.resolved_at),
            &cell(f.product.as_deref().unwrap_or("")),
            &cell(f.version.as_deref().unwrap_or("")),
            &time(f.recheck_requested_at),
            &time(f.false_positive_until),
            if f.disputed { "true" } else { "false" },
            &cell(
                &f.evidence
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            ),
        ])?;
    }
    Ok(w.into_inner()?)
}
