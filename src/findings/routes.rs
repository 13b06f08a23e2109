//! Reading findings back (scope `read`): filtered, cursor-paginated lists as
//! JSON, NDJSON or CSV; one finding with its history and observations; the
//! triage queue (`unattributed=true`); summary counts for dashboards.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};

use crate::app::AppState;
use crate::auth::{Client, Scope};
use crate::error::{ApiError, ApiResult};
use crate::http::{Page, QueryParams, id_cursor, page_limit};
use crate::ingest::observation::ObservationState;
use crate::registry::model::Cidr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/findings", get(list))
        .route("/api/v1/findings/summary", get(summary))
        .route("/api/v1/findings/{id}", get(show))
        .route(
            "/api/v1/organisations/{id}/findings",
            get(list_for_organisation),
        )
}

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
    pub escalated_at: Option<DateTime<Utc>>,
    /// False once a newer finding took over this key.
    pub current: bool,
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
     f.severity, f.cves, f.first_seen, f.last_seen, f.resolved_at, f.escalated_at, f.current, \
     f.organisation_id, o.ref AS organisation_ref, o.name AS organisation_name, f.attribution, \
     f.network_id, n.cidr AS network_cidr, f.asn \
     FROM findings f LEFT JOIN organisations o ON o.id = f.organisation_id \
     LEFT JOIN networks n ON n.id = f.network_id";

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct FindingFilter {
    pub organisation_id: Option<i64>,
    pub check: Option<String>,
    /// A CVE id, e.g. `CVE-2021-26855`.
    pub cve: Option<String>,
    /// `open` or `resolved`.
    pub status: Option<String>,
    /// Current state: `vulnerable`, `compromised`, `not_vulnerable`, `unknown`.
    pub state: Option<String>,
    /// Only addresses inside this CIDR.
    pub cidr: Option<String>,
    /// Seen at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// First seen at or before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// `true`: only the triage queue (no owner found).
    pub unattributed: Option<bool>,
    /// Include findings superseded by a newer one for the same key.
    #[serde(default)]
    pub include_superseded: bool,
    /// `json` (default), `ndjson` or `csv`; also chosen by `Accept`.
    pub format: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

fn push_filters(
    q: &mut QueryBuilder<'_, Postgres>,
    f: &FindingFilter,
    after: i64,
) -> ApiResult<()> {
    q.push(" WHERE f.id > ").push_bind(after);
    if !f.include_superseded {
        q.push(" AND f.current");
    }
    if let Some(org) = f.organisation_id {
        q.push(" AND f.organisation_id = ").push_bind(org);
    }
    if let Some(check) = &f.check {
        q.push(" AND f.check_id = ").push_bind(check.clone());
    }
    if let Some(cve) = &f.cve {
        q.push(" AND f.cves @> ARRAY[")
            .push_bind(cve.to_uppercase())
            .push("]::text[]");
    }
    if let Some(status) = &f.status {
        if status != "open" && status != "resolved" {
            return Err(ApiError::invalid(
                "status",
                format!("{status:?} is not open or resolved"),
            ));
        }
        q.push(" AND f.status = ").push_bind(status.clone());
    }
    if let Some(state) = &f.state {
        if ObservationState::parse(state).is_none() {
            return Err(ApiError::invalid(
                "state",
                format!("{state:?} is not vulnerable, compromised, not_vulnerable or unknown"),
            ));
        }
        q.push(" AND f.state = ").push_bind(state.clone());
    }
    if let Some(cidr) = &f.cidr {
        let cidr = Cidr::parse(cidr).map_err(|e| ApiError::invalid("cidr", e))?;
        q.push(" AND f.ip <<= ").push_bind(cidr.net());
    }
    if let Some(since) = f.since {
        q.push(" AND f.last_seen >= ").push_bind(since);
    }
    if let Some(until) = f.until {
        q.push(" AND f.first_seen <= ").push_bind(until);
    }
    match f.unattributed {
        Some(true) => {
            q.push(" AND f.organisation_id IS NULL");
        }
        Some(false) => {
            q.push(" AND f.organisation_id IS NOT NULL");
        }
        None => {}
    }
    Ok(())
}

enum Representation {
    Json,
    Ndjson,
    Csv,
}

fn representation(f: &FindingFilter, headers: &HeaderMap) -> ApiResult<Representation> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match f.format.as_deref() {
        Some("json") => Ok(Representation::Json),
        Some("ndjson") => Ok(Representation::Ndjson),
        Some("csv") => Ok(Representation::Csv),
        Some(other) => Err(ApiError::invalid(
            "format",
            format!("{other:?} is not json, ndjson or csv"),
        )),
        None if accept.contains("text/csv") => Ok(Representation::Csv),
        None if accept.contains("application/x-ndjson") => Ok(Representation::Ndjson),
        None => Ok(Representation::Json),
    }
}

async fn query_page(
    state: &AppState,
    f: &FindingFilter,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let limit = page_limit(f.limit)?;
    let after = id_cursor(f.cursor.as_deref())?;
    let repr = representation(f, headers)?;
    let mut q = QueryBuilder::new(SELECT);
    push_filters(&mut q, f, after)?;
    q.push(" ORDER BY f.id LIMIT ").push_bind(limit as i64 + 1);
    let rows: Vec<Finding> = q.build_query_as().fetch_all(&state.pool).await?;
    let page = Page::from_rows(rows, limit, |f| f.id.to_string());
    Ok(match repr {
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
#[utoipa::path(get, path = "/api/v1/findings", tag = "findings", params(FindingFilter),
    responses((status = 200, body = Page<Finding>), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    QueryParams(f): QueryParams<FindingFilter>,
) -> ApiResult<Response> {
    client.require(Scope::Read)?;
    query_page(&state, &f, &headers).await
}

/// One organisation's findings (same filters).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/findings", tag = "findings",
    params(("id" = i64, Path), FindingFilter),
    responses((status = 200, body = Page<Finding>)), security(("bearer" = [])))]
pub async fn list_for_organisation(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
    headers: HeaderMap,
    QueryParams(mut f): QueryParams<FindingFilter>,
) -> ApiResult<Response> {
    client.require(Scope::Read)?;
    {
        let mut conn = state.pool.acquire().await?;
        crate::registry::organisation_exists(&mut conn, org).await?;
    }
    f.organisation_id = Some(org);
    query_page(&state, &f, &headers).await
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

/// One finding with its history and observations.
#[utoipa::path(get, path = "/api/v1/findings/{id}", tag = "findings", params(("id" = i64, Path)),
    responses((status = 200, body = FindingDetail), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<Json<FindingDetail>> {
    client.require(Scope::Read)?;
    let finding: Finding = sqlx::query_as(&format!("{SELECT} WHERE f.id = $1"))
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("finding {id}")))?;
    let history = sqlx::query_as(
        "SELECT id, at, kind, reason, observation_id, scan_run_id, from_state, to_state
           FROM finding_events WHERE finding_id = $1 ORDER BY at, id",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    let observations = sqlx::query_as(
        "SELECT id, observed_at, received_at, scan_run_id, state, severity, cves, hostname, product, version,
                evidence, raw, organisation_id, network_id, attribution
           FROM observations WHERE finding_id = $1 ORDER BY observed_at DESC, id DESC LIMIT 100",
    )
    .bind(id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(FindingDetail {
        finding,
        history,
        observations,
    }))
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
#[utoipa::path(get, path = "/api/v1/findings/summary", tag = "findings",
    responses((status = 200, body = Vec<SummaryRow>)), security(("bearer" = [])))]
pub async fn summary(
    State(state): State<AppState>,
    client: Client,
) -> ApiResult<Json<Vec<SummaryRow>>> {
    client.require(Scope::Read)?;
    let rows = sqlx::query_as(
        "SELECT check_id, status, count(*) AS findings,
                count(*) FILTER (WHERE worst_state = 'compromised') AS compromised,
                count(*) FILTER (WHERE organisation_id IS NULL) AS unattributed,
                count(DISTINCT organisation_id) AS organisations
           FROM findings WHERE current GROUP BY check_id, status ORDER BY check_id, status",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(rows))
}
