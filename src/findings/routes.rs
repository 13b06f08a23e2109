//! Reading findings back over REST (scope `read`): filtered,
//! cursor-paginated lists as JSON, NDJSON or CSV; one finding with its
//! history and observations; the triage queue (`unattributed=true`);
//! summary counts. Thin over [`super::query`].

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::query::{
    self, Finding, FindingDetail, FindingStatus, FindingsFilter, SummaryRow, parse_cve,
};
use crate::app::AppState;
use crate::auth::{Admin, Caller, Read};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::{JsonBody, Page, Path, QueryParams, id_cursor, page_limit};
use crate::ingest::observation::ObservationState;
use crate::registry::model::Cidr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/findings", get(list_findings))
        .route("/api/v1/findings/summary", get(findings_summary))
        .route("/api/v1/findings/{id}", get(show_finding))
        .route("/api/v1/findings/{id}/close", post(close_finding))
        .route(
            "/api/v1/organisations/{id}/findings",
            get(list_organisation_findings),
        )
}

/// How a list of findings is written.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Representation {
    Json,
    Ndjson,
    Csv,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingQuery {
    /// Only this organisation's findings.
    pub organisation_id: Option<i64>,
    /// The scanner's check id, e.g. `exchange-proxylogon`.
    #[param(pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]{1,128}$")]
    pub check: Option<String>,
    /// A CVE id, e.g. `CVE-2021-26855` (any case).
    #[param(pattern = "^[Cc][Vv][Ee]-[0-9]{4}-[0-9]{4,}$")]
    pub cve: Option<String>,
    pub status: Option<FindingStatus>,
    /// Current state.
    pub state: Option<ObservationState>,
    /// Only addresses inside this CIDR, e.g. `192.0.2.0/24`.
    #[param(value_type = Option<String>, format = "cidr")]
    pub cidr: Option<Cidr>,
    /// Only findings of organisations in this sector (as registered).
    #[param(pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]{1,100}$")]
    pub sector: Option<String>,
    /// Seen at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// First seen at or before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// `true`: only the triage queue (no owner found); `false`: only
    /// attributed findings.
    pub unattributed: Option<bool>,
    /// Include findings superseded by a newer one for the same key.
    #[serde(default)]
    pub include_superseded: bool,
    /// `json` (default), `ndjson` or `csv`; also chosen by `Accept`.
    pub format: Option<Representation>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

impl FindingQuery {
    pub(crate) fn filter(&self) -> ApiResult<FindingsFilter> {
        Ok(FindingsFilter {
            organisation_id: self.organisation_id,
            check: self
                .check
                .as_deref()
                .map(|c| match crate::ingest::scans::check_id_problem(c) {
                    Some(problem) => Err(ApiError::invalid("check", problem)),
                    None => Ok(c.to_owned()),
                })
                .transpose()?,
            cve: self
                .cve
                .as_deref()
                .map(|c| parse_cve("cve", c))
                .transpose()?,
            status: self.status,
            state: self.state,
            cidr: self.cidr.map(|c| c.net()),
            // Strict, unlike a form field: `sector=` names no sector and is
            // refused rather than read as "any sector".
            sector: self
                .sector
                .as_deref()
                .map(|s| crate::domain::required_text("sector", s, 100))
                .transpose()
                .map_err(ApiError::from)?,
            since: self.since,
            until: self.until,
            unattributed: self.unattributed,
            include_superseded: self.include_superseded,
        })
    }

    fn representation(&self, headers: &HeaderMap) -> Representation {
        if let Some(r) = self.format {
            return r;
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("text/csv") {
            Representation::Csv
        } else if accept.contains("application/x-ndjson") {
            Representation::Ndjson
        } else {
            Representation::Json
        }
    }
}

async fn page_of(
    state: &AppState,
    filter: &FindingsFilter,
    q: &FindingQuery,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = query::list(&mut conn, filter, after, limit).await?;
    let page = Page::from_rows(rows, limit, |f| f.id.to_string());
    Ok(match q.representation(headers) {
        Representation::Json => Json(page).into_response(),
        Representation::Ndjson => {
            let mut body = String::new();
            for item in &page.items {
                body.push_str(&serde_json::to_string(item).map_err(anyhow::Error::from)?);
                body.push('\n');
            }
            with_cursor(
                ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response(),
                &page,
            )
        }
        Representation::Csv => with_cursor(
            (
                [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
                to_csv(&page.items)?,
            )
                .into_response(),
            &page,
        ),
    })
}

/// NDJSON and CSV bodies carry the next cursor in a header.
fn with_cursor(mut response: Response, page: &Page<Finding>) -> Response {
    if let Some(cursor) = page
        .next_cursor
        .as_deref()
        .and_then(|c| HeaderValue::from_str(c).ok())
    {
        response.headers_mut().insert("x-next-cursor", cursor);
    }
    response
}

fn to_csv(items: &[Finding]) -> ApiResult<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
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
        "organisation_ref",
        "organisation_name",
        "attribution",
        "network_cidr",
        "asn",
    ];
    w.write_record(header).map_err(anyhow::Error::from)?;
    for f in items {
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
        w.write_record([
            f.id.to_string(),
            f.ip.to_string(),
            f.port.to_string(),
            f.protocol.clone(),
            f.check.clone(),
            f.status.clone(),
            f.state.clone(),
            f.worst_state.clone(),
            f.severity.clone().unwrap_or_default(),
            f.cves.join(" "),
            f.first_seen.to_rfc3339(),
            f.last_seen.to_rfc3339(),
            time(f.resolved_at),
            f.organisation_ref.clone().unwrap_or_default(),
            f.organisation_name.clone().unwrap_or_default(),
            f.attribution.clone(),
            f.network_cidr.map(|c| c.to_string()).unwrap_or_default(),
            f.asn.map(|a| a.to_string()).unwrap_or_default(),
        ])
        .map_err(anyhow::Error::from)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    String::from_utf8(bytes).map_err(|e| ApiError::Internal(e.into()))
}

/// Findings, filtered, cursor-paginated (by id).
#[utoipa::path(get, path = "/api/v1/findings", tag = "findings", params(FindingQuery),
    responses((status = 200, body = Page<Finding>,
        description = "A page of findings; as NDJSON or CSV the next cursor comes in `X-Next-Cursor`")),
    security(("bearer" = ["read"])))]
pub async fn list_findings(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FindingQuery>,
) -> ApiResult<Response> {
    let filter = q.filter()?;
    page_of(&state, &filter, &q, &headers).await
}

/// One organisation's findings (same filters).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/findings", tag = "findings",
    params(("id" = i64, Path), FindingQuery),
    responses((status = 200, body = Page<Finding>,
        description = "A page of the organisation's findings; as NDJSON or CSV the next cursor comes in `X-Next-Cursor`"),
        (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list_organisation_findings(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<FindingQuery>,
) -> ApiResult<Response> {
    let filter = q.filter()?.for_organisation(org);
    {
        let mut conn = state.pool.acquire().await?;
        crate::registry::organisations::ensure_exists(&mut conn, org).await?;
    }
    page_of(&state, &filter, &q, &headers).await
}

/// One finding with its history and observations.
#[utoipa::path(get, path = "/api/v1/findings/{id}", tag = "findings", params(("id" = i64, Path)),
    responses((status = 200, body = FindingDetail), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn show_finding(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<FindingDetail>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(query::detail(&mut conn, id, None).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseFinding {
    /// Why it is closed: what was checked, found and done.
    #[schema(
        min_length = 1,
        max_length = 2000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub note: String,
}

impl crate::http::BodyShape for CloseFinding {}

/// Close an open finding with a note (audited). The way to close a
/// compromise that no scan can show gone: a scan run that does not see a
/// compromised finding leaves it open.
#[utoipa::path(post, path = "/api/v1/findings/{id}/close", tag = "findings",
    params(("id" = i64, Path)), request_body = CloseFinding,
    responses((status = 200, body = FindingDetail), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn close_finding(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<CloseFinding>,
) -> ApiResult<Json<FindingDetail>> {
    let mut conn = state.pool.acquire().await?;
    super::closing::close(
        &mut conn,
        &caller.actor(),
        id,
        &body.note,
        state.clock.now(),
    )
    .await?;
    Ok(Json(query::detail(&mut conn, id, None).await?))
}

/// Counts of current findings per check and status.
#[utoipa::path(get, path = "/api/v1/findings/summary", tag = "findings",
    responses((status = 200, body = Vec<SummaryRow>)), security(("bearer" = ["read"])))]
pub async fn findings_summary(
    _caller: Caller<Read>,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<SummaryRow>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(query::summary(&mut conn).await?))
}
