//! `/findings`: findings filtered (the filters in the URL, read through the
//! REST API's own [`FindingQuery::filter`]), paged by id, exported as CSV;
//! one finding with its history and raw evidence, flagged (or unflagged)
//! as a false positive by an analyst; and `/triage`, the queue of findings
//! without an owner (never attributed, or answered "not ours"), where an
//! analyst registers a network for an organisation and gives it the
//! finding in one transaction.

use std::net::IpAddr;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Oslo;
use serde::Deserialize;
use sqlx::{Connection, PgConnection};

use super::operators::Role;
use super::routes::{
    Act, Analyst, Chrome, ListOrder as _, Sorts, keyset_page, list_address, oslo_time, sort_of,
    with_csrf_cookie,
};
use super::sessions::Signed;
use crate::app::AppState;
use crate::domain::{Actor, DomainError, required_text, spreadsheet_safe};
use crate::error::ApiError;
use crate::findings::query::{
    self, Finding, FindingEvent, FindingOrder, FindingStatus, FindingsFilter,
};
use crate::findings::routes::FindingQuery;
use crate::ingest::observation::ObservationState;
use crate::registry::model::Cidr;
use crate::registry::networks::{self, NewNetwork};
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::form::FieldErrors;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/findings", get(list))
        .route("/findings.csv", get(export))
        .route("/findings/{id}", get(show))
        .route("/findings/{id}/false-positive", post(mark_false_positive))
        .route("/findings/{id}/close", post(close))
        .route(
            "/findings/{id}/false-positive/clear",
            post(clear_false_positive),
        )
        .route("/triage", get(triage))
        .route("/triage/{id}/assign", post(assign))
}

/// Rows per page.
const PAGE: usize = 50;
/// Rows a CSV export holds at most.
const CSV_CAP: usize = 100_000;
/// Rows read per query while exporting.
const CSV_CHUNK: usize = 10_000;

/// The list's filters as the GET form sends them: every field text, empty
/// meaning "any".
#[derive(Debug, Default, Clone, Deserialize)]
struct ListQuery {
    #[serde(default)]
    check: String,
    #[serde(default)]
    cve: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    organisation: String,
    #[serde(default)]
    cidr: String,
    #[serde(default)]
    sector: String,
    /// A day (Europe/Oslo): seen on or after it.
    #[serde(default)]
    since: String,
    /// A day (Europe/Oslo): first seen on or before it.
    #[serde(default)]
    until: String,
    /// The order: `id` (the default), `ip`, `first_seen`, `-first_seen`.
    #[serde(default)]
    sort: String,
    /// Where the previous page ended (`FindingOrder::cursor_of`).
    after: Option<String>,
}

/// The start of a day in Oslo.
fn oslo_day(day: NaiveDate) -> Option<DateTime<Utc>> {
    Oslo.from_local_datetime(&day.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn parse_day(input: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(input.trim(), "%Y-%m-%d")
        .map_err(|_| format!("{input:?} is not a day like 2026-12-01"))
}

/// The form's field a REST filter field is shown at.
fn form_field(api_field: &str) -> &'static str {
    match api_field {
        "check" => "check",
        "cve" => "cve",
        "cidr" => "cidr",
        "sector" => "sector",
        "organisation_id" => "organisation",
        _ => "check",
    }
}

impl ListQuery {
    /// The filter, through the REST API's parsing; what is wrong, by field.
    fn filter(&self) -> Result<FindingsFilter, FieldErrors> {
        let mut errors = FieldErrors::default();
        let text = |s: &str| Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned);
        let status = match self.status.trim() {
            "" => None,
            "open" => Some(FindingStatus::Open),
            "resolved" => Some(FindingStatus::Resolved),
            _ => {
                errors.add("status", "choose open or resolved");
                None
            }
        };
        let state = match self.state.trim() {
            "" => None,
            s => ObservationState::parse(s).or_else(|| {
                errors.add("state", "choose a state from the list");
                None
            }),
        };
        let organisation_id = match self.organisation.trim() {
            "" => None,
            s => s.parse::<i64>().ok().or_else(|| {
                errors.add("organisation", "an organisation's number, e.g. 12");
                None
            }),
        };
        let cidr = match self.cidr.trim() {
            "" => None,
            s => Cidr::parse(s).map_err(|e| errors.add("cidr", e)).ok(),
        };
        let since = match self.since.trim() {
            "" => None,
            s => parse_day(s)
                .map_err(|e| errors.add("since", e))
                .ok()
                .and_then(oslo_day),
        };
        let until = match self.until.trim() {
            "" => None,
            s => parse_day(s)
                .map_err(|e| errors.add("until", e))
                .ok()
                .and_then(|d| d.succ_opt())
                .and_then(oslo_day)
                .map(|t| t - Duration::microseconds(1)),
        };
        let rest = FindingQuery {
            organisation_id,
            check: text(&self.check),
            cve: text(&self.cve),
            status,
            state,
            cidr,
            sector: text(&self.sector),
            since,
            until,
            ..FindingQuery::default()
        };
        match rest.filter() {
            Ok(filter) if errors.is_empty() => Ok(filter),
            Ok(_) => Err(errors),
            Err(ApiError::Invalid { field, detail }) => {
                errors.add(form_field(&field), detail);
                Err(errors)
            }
            Err(e) => {
                errors.add("check", e.to_string());
                Err(errors)
            }
        }
    }

    /// The address of `path` with these filters, in `order`, with a
    /// page's cursor.
    fn address(&self, path: &str, order: FindingOrder, after: Option<&str>) -> String {
        list_address(
            path,
            &[
                ("check", &self.check),
                ("cve", &self.cve),
                ("status", &self.status),
                ("state", &self.state),
                ("organisation", &self.organisation),
                ("cidr", &self.cidr),
                ("sector", &self.sector),
                ("since", &self.since),
                ("until", &self.until),
                ("sort", order.param()),
                ("after", after.unwrap_or("")),
            ],
        )
    }
}

/// A finding as a row of a list.
struct Row {
    f: Finding,
    /// As the check catalogue names it.
    what: String,
    first_seen: String,
    last_seen: String,
    /// A compromise a covering scan no longer sees.
    not_seen_since: Option<String>,
}

impl Row {
    fn of(f: Finding) -> Self {
        let state = ObservationState::parse(&f.state).unwrap_or(ObservationState::Unknown);
        Row {
            what: crate::checks::describe(&f.check, state, crate::checks::Lang::En).line(),
            first_seen: oslo_time(f.first_seen),
            last_seen: oslo_time(f.last_seen),
            not_seen_since: f.not_seen_since.map(oslo_time),
            f,
        }
    }

    fn organisation(&self) -> &str {
        self.f.organisation_name.as_deref().unwrap_or("")
    }
}

#[derive(Template)]
#[template(path = "dashboard/findings.html")]
struct FindingsPage {
    layout: Layout,
    chrome: Chrome,
    q: ListQuery,
    errors: FieldErrors,
    rows: Vec<Row>,
    /// The next page's address.
    next: Option<String>,
    /// The CSV export's address.
    csv: String,
    /// The orders the headers offer.
    sorts: Sorts,
}

impl FindingsPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let (filter, errors) = match q.filter() {
        Ok(f) => (Some(f), FieldErrors::default()),
        Err(e) => (None, e),
    };
    let order: FindingOrder = sort_of(&q.sort)?;
    let mut rows = Vec::new();
    let mut next = None;
    if let Some(filter) = &filter {
        let mut conn = state.pool.acquire().await?;
        rows = query::list_in_order(&mut conn, filter, order, q.after.as_deref(), PAGE).await?;
        if rows.len() > PAGE {
            rows.truncate(PAGE);
            next = rows
                .last()
                .map(|f| q.address("/findings", order, Some(&order.cursor_of(f))));
        }
    }
    let failed = filter.is_none();
    let sorts = Sorts::of(order, |o| q.address("/findings", o, None));
    let page = FindingsPage {
        layout: Layout::dashboard("Findings · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        csv: q.address("/findings.csv", FindingOrder::Id, None),
        sorts,
        q,
        errors,
        rows: rows.into_iter().map(Row::of).collect(),
        next,
    };
    let body = with_csrf_cookie(&state, &csrf, page::render(&page)?);
    Ok(if failed {
        (StatusCode::UNPROCESSABLE_ENTITY, body).into_response()
    } else {
        body
    })
}

// ------------------------------------------------------------------ CSV

fn to_csv(rows: &[Finding]) -> anyhow::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "ip",
        "port",
        "protocol",
        "check",
        "status",
        "state",
        "worst_state",
        "severity",
        "cves",
        "first_seen",
        "last_seen",
        "resolved_at",
        "organisation_id",
        "organisation_ref",
        "organisation_name",
        "attribution",
        "network_cidr",
        "asn",
    ])?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    let opt = |s: &Option<String>| spreadsheet_safe(s.as_deref().unwrap_or("")).into_owned();
    for f in rows {
        w.write_record([
            f.id.to_string(),
            f.ip.to_string(),
            f.port.to_string(),
            spreadsheet_safe(&f.protocol).into_owned(),
            spreadsheet_safe(&f.check).into_owned(),
            f.status.clone(),
            f.state.clone(),
            f.worst_state.clone(),
            opt(&f.severity),
            spreadsheet_safe(&f.cves.join(" ")).into_owned(),
            f.first_seen.to_rfc3339(),
            f.last_seen.to_rfc3339(),
            time(f.resolved_at),
            f.organisation_id.map(|o| o.to_string()).unwrap_or_default(),
            opt(&f.organisation_ref),
            opt(&f.organisation_name),
            f.attribution.clone(),
            f.network_cidr.map(|c| c.to_string()).unwrap_or_default(),
            f.asn.map(|a| a.to_string()).unwrap_or_default(),
        ])?;
    }
    Ok(w.into_inner()?)
}

/// The filtered list as CSV, at most [`CSV_CAP`] rows.
async fn export(
    State(state): State<AppState>,
    _signed: Signed,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let filter = q.filter().map_err(|_| {
        WebError::BadRequest("the filters are not valid; correct them on /findings".to_owned())
    })?;
    let mut conn = state.pool.acquire().await?;
    let mut rows: Vec<Finding> = Vec::new();
    let mut after = 0;
    while rows.len() < CSV_CAP {
        let chunk = CSV_CHUNK.min(CSV_CAP - rows.len());
        let mut page = query::list(&mut conn, &filter, after, chunk).await?;
        let more = page.len() > chunk;
        page.truncate(chunk);
        let Some(last) = page.last() else { break };
        after = last.id;
        rows.extend(page);
        if !more {
            break;
        }
    }
    let body = to_csv(&rows)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"findings.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

// --------------------------------------------------------------- detail

/// What the advisory answers set on a finding, beside [`Finding`].
#[derive(sqlx::FromRow)]
struct Flags {
    false_positive_until: Option<DateTime<Utc>>,
    false_positive_reason: Option<String>,
    disputed_by: Option<i64>,
    disputed_by_name: Option<String>,
}

async fn flags(conn: &mut PgConnection, ids: &[i64]) -> Result<Vec<(i64, Flags)>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Line {
        id: i64,
        #[sqlx(flatten)]
        flags: Flags,
    }
    let lines: Vec<Line> = sqlx::query_as(
        "SELECT f.id, f.false_positive_until, f.false_positive_reason, f.disputed_by,
                o.name AS disputed_by_name
           FROM findings f LEFT JOIN organisations o ON o.id = f.disputed_by
          WHERE f.id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    Ok(lines.into_iter().map(|l| (l.id, l.flags)).collect())
}

struct Event {
    e: FindingEvent,
    at: String,
}

struct Observation {
    at: String,
    state: String,
    product: String,
    evidence: String,
    raw: String,
}

#[derive(Template)]
#[template(path = "dashboard/finding.html")]
struct FindingPage {
    layout: Layout,
    chrome: Chrome,
    row: Row,
    history: Vec<Event>,
    observations: Vec<Observation>,
    false_positive_until: Option<String>,
    false_positive_reason: String,
    disputed_by: Option<(i64, String)>,
    can_act: bool,
    errors: FieldErrors,
    /// What the false-positive form was sent with (or its defaults).
    reason: String,
    until: String,
    /// What the closing form was sent with.
    note: String,
    /// Host name, server name, path: what the latest observation saw.
    details: Vec<(&'static str, String)>,
}

impl FindingPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

async fn render_detail(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: i64,
    errors: FieldErrors,
    sent: Option<(String, String)>,
    note: String,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let detail = query::detail(&mut conn, id, None).await?;
    let details = detail
        .observations
        .iter()
        .find(|o| o.state != "not_vulnerable")
        .map(|o| {
            crate::checks::details(
                o.hostname.as_deref(),
                o.evidence.as_ref(),
                crate::checks::Lang::En,
            )
        })
        .unwrap_or_default();
    let flags = flags(&mut conn, &[id])
        .await?
        .into_iter()
        .next()
        .map(|(_, f)| f);
    let default_until = (state.clock.now()
        + Duration::days(i64::from(state.settings.false_positive_days)))
    .with_timezone(&Oslo)
    .format("%Y-%m-%d")
    .to_string();
    let (reason, until) = sent.unwrap_or((String::new(), default_until));
    let page = FindingPage {
        layout: Layout::dashboard(format!("Finding {id} · Varsel")),
        chrome: Chrome::of(state, signed, csrf),
        row: Row::of(detail.finding),
        history: detail
            .history
            .into_iter()
            .map(|e| Event {
                at: oslo_time(e.at),
                e,
            })
            .collect(),
        observations: detail
            .observations
            .into_iter()
            .map(|o| Observation {
                at: oslo_time(o.observed_at),
                state: o.state,
                product: [o.product, o.version]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
                evidence: o
                    .evidence
                    .as_ref()
                    .and_then(|e| serde_json::to_string_pretty(e).ok())
                    .unwrap_or_default(),
                raw: o.raw,
            })
            .collect(),
        false_positive_until: flags
            .as_ref()
            .and_then(|f| f.false_positive_until)
            .map(oslo_time),
        false_positive_reason: flags
            .as_ref()
            .and_then(|f| f.false_positive_reason.clone())
            .unwrap_or_default(),
        disputed_by: flags.as_ref().and_then(|f| {
            f.disputed_by
                .map(|o| (o, f.disputed_by_name.clone().unwrap_or_default()))
        }),
        can_act: signed.operator.role >= Role::Analyst,
        errors,
        reason,
        until,
        note,
        details,
    };
    Ok(with_csrf_cookie(state, csrf, page::render(&page)?))
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    render_detail(
        &state,
        &signed,
        &csrf,
        id,
        FieldErrors::default(),
        None,
        String::new(),
    )
    .await
}

/// An analyst closes an open finding with a note (the way a compromise a
/// scan no longer sees is closed).
async fn close(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let note = form.get("note").unwrap_or("").to_owned();
    let mut conn = state.pool.acquire().await?;
    let closed = crate::findings::closing::close(
        &mut conn,
        &signed.operator.actor(),
        id,
        &note,
        state.clock.now(),
    )
    .await;
    drop(conn);
    let mut errors = FieldErrors::default();
    match closed {
        Ok(()) => return Ok(Redirect::to(&format!("/findings/{id}#history")).into_response()),
        Err(DomainError::Invalid { detail, .. }) => {
            errors.add("note", format!("The note {detail}."))
        }
        Err(DomainError::Conflict { detail, .. }) => errors.add("note", detail),
        Err(other) => return Err(other.into()),
    }
    let page = render_detail(&state, &signed, &csrf, id, errors, None, note).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

/// Sets (or, with `None`, clears) the false-positive flag, with an entry in
/// the finding's history and the audit log, in one transaction.
async fn set_false_positive(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    flag: Option<(DateTime<Utc>, &str)>,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let mut tx = conn.begin().await?;
    let changed: Option<i64> = sqlx::query_scalar(
        "UPDATE findings SET false_positive_until = $2, false_positive_reason = $3, updated_at = now()
          WHERE id = $1 RETURNING id",
    )
    .bind(id)
    .bind(flag.map(|(until, _)| until))
    .bind(flag.map(|(_, reason)| reason))
    .fetch_optional(&mut *tx)
    .await?;
    if changed.is_none() {
        return Err(DomainError::not_found(format!("finding {id}")));
    }
    let why = match flag {
        Some((until, reason)) => format!(
            "an analyst marked it a false positive until {}: {reason}",
            oslo_time(until)
        ),
        None => "an analyst cleared the false-positive flag".to_owned(),
    };
    sqlx::query(
        "INSERT INTO finding_events (finding_id, at, kind, reason) VALUES ($1, $2, 'false_positive', $3)",
    )
    .bind(id)
    .bind(now)
    .bind(&why)
    .execute(&mut *tx)
    .await?;
    crate::audit::commit(
        tx,
        actor,
        if flag.is_some() {
            "finding.false_positive"
        } else {
            "finding.false_positive_clear"
        },
        &format!("finding:{id}"),
        serde_json::json!({
            "until": flag.map(|(until, _)| until.to_rfc3339()),
            "reason": flag.map(|(_, reason)| reason),
        }),
    )
    .await?;
    Ok(())
}

async fn mark_false_positive(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let sent_reason = form.get("reason").unwrap_or("");
    let sent_until = form.get("until").unwrap_or("");
    let mut errors = FieldErrors::default();
    let reason = required_text("reason", sent_reason, 2000)
        .map_err(|e| match e {
            DomainError::Invalid { detail, .. } => {
                errors.add("reason", format!("The reason {detail}."))
            }
            other => errors.add("reason", other.to_string()),
        })
        .ok();
    let until = match sent_until.trim() {
        "" => Some(now + Duration::days(i64::from(state.settings.false_positive_days))),
        s => match parse_day(s) {
            Err(e) => {
                errors.add("until", e);
                None
            }
            // Until the end of that day.
            Ok(day) => match day.succ_opt().and_then(oslo_day) {
                Some(t) if t > now => Some(t),
                _ => {
                    errors.add("until", "must be a day after today");
                    None
                }
            },
        },
    };
    if let (Some(reason), Some(until), true) = (reason, until, errors.is_empty()) {
        let mut conn = state.pool.acquire().await?;
        set_false_positive(
            &mut conn,
            &signed.operator.actor(),
            id,
            Some((until, &reason)),
            now,
        )
        .await?;
        return Ok(Redirect::to(&format!("/findings/{id}")).into_response());
    }
    let sent = (sent_reason.to_owned(), sent_until.to_owned());
    let page = render_detail(
        &state,
        &signed,
        &csrf,
        id,
        errors,
        Some(sent),
        String::new(),
    )
    .await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

async fn clear_false_positive(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    set_false_positive(
        &mut conn,
        &signed.operator.actor(),
        id,
        None,
        state.clock.now(),
    )
    .await?;
    Ok(Redirect::to(&format!("/findings/{id}")).into_response())
}

// --------------------------------------------------------------- triage

#[derive(Debug, Default, Deserialize)]
struct TriageQuery {
    after: Option<i64>,
}

struct TriageRow {
    row: Row,
    /// The organisation that said "not ours".
    disputed_by: Option<(i64, String)>,
    /// The network proposed: the address alone.
    cidr: String,
}

#[derive(Template)]
#[template(path = "dashboard/triage.html")]
struct TriagePage {
    layout: Layout,
    chrome: Chrome,
    rows: Vec<TriageRow>,
    next: Option<i64>,
    after: Option<i64>,
    can_act: bool,
    /// An assignment that failed: the finding, what was wrong, what was sent.
    failed: Option<(i64, FieldErrors, String, String)>,
}

impl TriagePage {
    fn error_for(&self, id: &i64, field: &str) -> Option<&str> {
        self.failed
            .as_ref()
            .filter(|(failed, ..)| failed == id)
            .and_then(|(_, errors, ..)| errors.get(field))
    }

    fn organisation_for(&self, id: &i64) -> &str {
        self.failed
            .as_ref()
            .filter(|(failed, ..)| failed == id)
            .map_or("", |(_, _, org, _)| org.as_str())
    }

    fn cidr_for<'a>(&'a self, r: &'a TriageRow) -> &'a str {
        self.failed
            .as_ref()
            .filter(|(failed, ..)| *failed == r.row.f.id)
            .map_or(r.cidr.as_str(), |(_, _, _, cidr)| cidr.as_str())
    }
}

/// The address alone as a network: /32 or /128.
fn host_cidr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => format!("{ip}/32"),
        IpAddr::V6(_) => format!("{ip}/128"),
    }
}

async fn render_triage(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    after: Option<i64>,
    failed: Option<(i64, FieldErrors, String, String)>,
) -> Result<Response, WebError> {
    let filter = FindingsFilter {
        unattributed: Some(true),
        ..FindingsFilter::default()
    };
    let mut conn = state.pool.acquire().await?;
    let mut rows = query::list(&mut conn, &filter, after.unwrap_or(0), PAGE).await?;
    let next = keyset_page(&mut rows, PAGE, |r| r.id);
    let ids: Vec<i64> = rows.iter().map(|f| f.id).collect();
    let mut flags = flags(&mut conn, &ids).await?;
    let rows = rows
        .into_iter()
        .map(|f| {
            let disputed_by = flags
                .iter_mut()
                .find(|(id, _)| *id == f.id)
                .and_then(|(_, fl)| {
                    fl.disputed_by
                        .map(|o| (o, fl.disputed_by_name.take().unwrap_or_default()))
                });
            TriageRow {
                cidr: host_cidr(f.ip),
                disputed_by,
                row: Row::of(f),
            }
        })
        .collect();
    let page = TriagePage {
        layout: Layout::dashboard("Triage · Varsel"),
        chrome: Chrome::of(state, signed, csrf),
        rows,
        next,
        after,
        can_act: signed.operator.role >= Role::Analyst,
        failed,
    };
    Ok(with_csrf_cookie(state, csrf, page::render(&page)?))
}

async fn triage(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<TriageQuery>,
) -> Result<Response, WebError> {
    render_triage(&state, &signed, &csrf, q.after, None).await
}

/// The organisation an analyst named in the triage form: by its
/// reference (exactly), its nine-digit organisation number (when only one
/// organisation has it), or `#id`. A digit string is tried as a reference
/// first, then as an id. The error says what was not found, or which
/// organisations share a number.
async fn resolve_organisation(
    conn: &mut PgConnection,
    given: &str,
) -> Result<Result<i64, String>, sqlx::Error> {
    if given.is_empty() {
        return Ok(Err(
            "name the organisation: its reference, organisation number or #id".to_owned(),
        ));
    }
    let id_of = |s: &str| s.parse::<i64>().ok().filter(|id| *id > 0);
    if let Some(id) = given.strip_prefix('#') {
        return Ok(id_of(id).ok_or_else(|| format!("{given:?} is not an organisation's #id")));
    }
    let by_ref: Option<i64> = sqlx::query_scalar("SELECT id FROM organisations WHERE ref = $1")
        .bind(given)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(id) = by_ref {
        return Ok(Ok(id));
    }
    if given.len() == 9 && given.bytes().all(|b| b.is_ascii_digit()) {
        let holders: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, ref FROM organisations WHERE org_number = $1 ORDER BY id LIMIT 6",
        )
        .bind(given)
        .fetch_all(&mut *conn)
        .await?;
        return Ok(match holders.as_slice() {
            [] => Err(format!("no organisation has the number {given}")),
            [(id, _)] => Ok(*id),
            many => Err(format!(
                "{} organisations have the number {given} ({}): give the reference",
                if many.len() > 5 {
                    "More than five".to_owned()
                } else {
                    many.len().to_string()
                },
                many.iter()
                    .take(5)
                    .map(|(_, r)| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        });
    }
    Ok(id_of(given).ok_or_else(|| format!("no organisation has the reference {given:?}")))
}

/// Why an assignment was refused: the field at fault and the message.
type Refusal = (&'static str, String);

/// Registers `cidr` for the organisation and gives it the finding, in one
/// transaction: both or neither.
async fn assign_finding(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    organisation_id: i64,
    cidr: Cidr,
    now: DateTime<Utc>,
) -> Result<Result<(), Refusal>, DomainError> {
    let mut tx = conn.begin().await?;
    let ip: Option<IpAddr> = sqlx::query_scalar(
        "SELECT ip FROM findings WHERE id = $1 AND organisation_id IS NULL AND current FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(ip) = ip else {
        return Err(DomainError::conflict(format!(
            "finding {id} is no longer in the triage queue"
        )));
    };
    if !cidr.net().contains(&ip) {
        return Ok(Err((
            "cidr",
            format!("{cidr} does not contain the finding's address {ip}"),
        )));
    }
    let new = NewNetwork {
        cidr,
        source: None,
        name: None,
        valid_from: None,
    };
    let network = match networks::create_network(&mut tx, actor, organisation_id, &new).await {
        Ok(n) => n,
        Err(DomainError::NotFound(_)) => {
            return Ok(Err((
                "organisation",
                format!("there is no organisation {organisation_id}"),
            )));
        }
        Err(DomainError::Invalid { detail, .. } | DomainError::Conflict { detail, .. }) => {
            return Ok(Err(("cidr", detail)));
        }
        Err(e) => return Err(e),
    };
    let organisation_ref: String =
        sqlx::query_scalar("SELECT ref FROM organisations WHERE id = $1")
            .bind(organisation_id)
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "UPDATE findings SET organisation_id = $2, network_id = $3, attribution = 'network', updated_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(organisation_id)
    .bind(network.id)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO finding_events (finding_id, at, kind, reason) VALUES ($1, $2, 'attributed', $3)",
    )
    .bind(id)
    .bind(now)
    .bind(format!(
        "an analyst registered {cidr} for {organisation_ref} and gave it this finding"
    ))
    .execute(&mut *tx)
    .await?;
    // A newly owned finding may belong in an organisation's notification.
    crate::notifications::drafting::enqueue_if_active(&mut tx, now).await?;
    crate::audit::commit(
        tx,
        actor,
        "finding.assign",
        &format!("finding:{id}"),
        serde_json::json!({
            "organisation_id": organisation_id,
            "network_id": network.id,
            "cidr": cidr.to_string(),
        }),
    )
    .await?;
    Ok(Ok(()))
}

async fn assign(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let sent_org = form.get("organisation").unwrap_or("").trim();
    let sent_cidr = form.get("cidr").unwrap_or("").trim();
    let mut errors = FieldErrors::default();
    let mut conn = state.pool.acquire().await?;
    let org = resolve_organisation(&mut conn, sent_org)
        .await?
        .map_err(|e| errors.add("organisation", e))
        .ok();
    let cidr = Cidr::parse(sent_cidr)
        .map_err(|e| errors.add("cidr", e))
        .ok();
    if let (Some(org), Some(cidr)) = (org, cidr) {
        let now = state.clock.now();
        match assign_finding(&mut conn, &signed.operator.actor(), id, org, cidr, now).await {
            Ok(Ok(())) => return Ok(Redirect::to("/triage").into_response()),
            Ok(Err((field, message))) => errors.add(field, message),
            // Assigned meanwhile by someone else, or gone: the queue shows.
            Err(DomainError::Conflict { .. }) => {
                return Ok(Redirect::to("/triage").into_response());
            }
            Err(e) => return Err(e.into()),
        }
    }
    drop(conn);
    let failed = Some((id, errors, sent_org.to_owned(), sent_cidr.to_owned()));
    let after = form.get("after").and_then(|a| a.parse().ok());
    let page = render_triage(&state, &signed, &csrf, after, failed).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}
