//! Ingest API (scope `ingest`): scan runs, batches of observations in any
//! supported format, and one-shot observation pushes. Every POST honours
//! `Idempotency-Key`.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use sha2::Digest;

use super::formats::Format;
use super::idempotency::{self, IdempotencyKey, JsonAnswer};
use super::pipeline::{self, BodySpec, IngestSummary, RunRules};
use super::scans::{self, FinishScanRun, NewScanRun, ScanRun, ScanRunDetail};
use crate::app::AppState;
use crate::auth::{Caller, Client, Ingest, ReadOrIngest, Scope};
use crate::error::{ApiError, ApiResult};
use crate::http::{Path, QueryParams};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/scans", post(create_scan))
        .route("/api/v1/scans/{id}", get(show_scan))
        .route("/api/v1/scans/{id}/observations", post(push_to_scan))
        .route("/api/v1/scans/{id}/finish", post(finish_scan))
        .route("/api/v1/observations", post(push))
        // Ingest bodies are streamed with their own limit (`max_ingest_bytes`).
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// Reads a small JSON body (within `max_body_bytes`) for hashing and parsing.
async fn small_body(state: &AppState, body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, state.settings.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::PayloadTooLarge(format!(
                "request body larger than {} bytes",
                state.settings.max_body_bytes
            ))
        })
}

/// An empty body is an empty object (`finish` needs nothing).
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return crate::http::parse_json(b"{}", crate::http::Shape::Object);
    }
    crate::http::parse_json(bytes, crate::http::Shape::Object)
}

fn path_and_query(req_uri: &axum::http::Uri) -> String {
    req_uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| req_uri.path().to_owned())
}

/// A small JSON POST with `Idempotency-Key`: parses the body, then runs
/// `work` in a transaction unless the key already has an answer, and
/// stores the answer with the work.
async fn idempotent_json<T, F>(
    state: &AppState,
    client: &Client,
    req: Request,
    work: F,
) -> ApiResult<Response>
where
    T: serde::de::DeserializeOwned,
    F: for<'c> AsyncFnOnce(&'c mut sqlx::PgConnection, T) -> ApiResult<JsonAnswer>,
{
    let key =
        IdempotencyKey::from_headers(req.headers(), client.id, "POST", &path_and_query(req.uri()))?;
    let body = small_body(state, req.into_body()).await?;
    let input: T = parse_json(&body)?;
    let hash = key.as_ref().map(|k| {
        let mut h = k.request_hasher();
        h.update(&body);
        h.finalize().to_vec()
    });
    if let (Some(key), Some(hash)) = (&key, &hash) {
        let mut conn = state.pool.acquire().await?;
        if let Some(stored) = idempotency::find(&mut conn, key).await? {
            return stored.replay(hash);
        }
    }
    let mut tx = state.pool.begin().await?;
    let answer = work(&mut tx, input).await?;
    if let (Some(key), Some(hash)) = (&key, &hash) {
        if !idempotency::save(
            &mut tx,
            key,
            hash,
            answer.status,
            &answer.body,
            "application/json",
        )
        .await?
        {
            // A concurrent request with the same key got there first.
            tx.rollback().await?;
            return replay_after_race(state, key, hash).await;
        }
    }
    tx.commit().await?;
    Ok(answer.into_response())
}

async fn replay_after_race(
    state: &AppState,
    key: &IdempotencyKey,
    hash: &[u8],
) -> ApiResult<Response> {
    let mut conn = state.pool.acquire().await?;
    match idempotency::find(&mut conn, key).await? {
        Some(stored) => stored.replay(hash),
        None => Err(ApiError::conflict(
            "Idempotency-Key is being used by another request; retry".to_owned(),
        )),
    }
}

/// Open a scan run.
#[utoipa::path(post, path = "/api/v1/scans", tag = "ingest", request_body = NewScanRun,
    responses((status = 201, body = ScanRun), (status = 422, body = crate::error::Problem)),
    security(("bearer" = ["ingest"])))]
pub async fn create_scan(
    client: Caller<Ingest>,
    State(state): State<AppState>,
    req: Request,
) -> ApiResult<Response> {
    idempotent_json(&state, &client, req, async |conn, new: NewScanRun| {
        let run = scans::create(conn, client.id, new, state.clock.now()).await?;
        JsonAnswer::new(StatusCode::CREATED, &run)
    })
    .await
}

/// A scan run with its counts, and the findings it resolved and kept open
/// by not seeing them.
#[utoipa::path(get, path = "/api/v1/scans/{id}", tag = "ingest", params(("id" = i64, Path)),
    responses((status = 200, body = ScanRunDetail), (status = 404, body = crate::error::Problem)),
    security(("bearer" = ["read", "ingest"])))]
pub async fn show_scan(
    _caller: Caller<ReadOrIngest>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<ScanRunDetail>> {
    let mut conn = state.pool.acquire().await?;
    let run = scans::fetch(&mut conn, id, false).await?;
    Ok(Json(scans::detail(&mut conn, run).await?))
}

fn own_run(client: &Client, run: &ScanRun) -> ApiResult<()> {
    if run.client_id == Some(client.id) || client.has(Scope::Admin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden("admin"))
    }
}

/// Finish a scan run. With a scope, every open finding of its checks inside
/// the scope of which the run stored no observation is resolved, except
/// those with signs of compromise: absence never resolves a compromise, so
/// they stay open, marked not seen since their last sighting. What the run
/// saw it never resolves, whatever the clocks say. The answer lists both.
#[utoipa::path(post, path = "/api/v1/scans/{id}/finish", tag = "ingest", request_body = FinishScanRun,
    params(("id" = i64, Path)),
    responses((status = 200, body = ScanRunDetail), (status = 409, body = crate::error::Problem)),
    security(("bearer" = ["ingest"])))]
pub async fn finish_scan(
    client: Caller<Ingest>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    req: Request,
) -> ApiResult<Response> {
    idempotent_json(&state, &client, req, async |conn, finish: FinishScanRun| {
        let run = scans::fetch(conn, id, true).await?;
        own_run(&client, &run)?;
        let now = state.clock.now();
        let finished_at = finish.finished_at.unwrap_or(now);
        let run = scans::finish(conn, &run, finished_at, now).await?;
        JsonAnswer::new(StatusCode::OK, &run)
    })
    .await
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PushQuery {
    /// `canonical` (JSON array or NDJSON), `csv`, `shadowserver`, `nuclei`,
    /// `nmap`, `masscan` or `intelmq` (IntelMQ events, flat or nested, one
    /// per request or line); default from Content-Type.
    #[param(value_type = Option<FormatName>)]
    pub format: Option<String>,
    /// Shadowserver report type, e.g. `scan_exchange`. With `intelmq`: the
    /// check of every event, instead of the one its feed gives.
    #[param(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    pub report: Option<String>,
    /// The uploaded file's name (Shadowserver report type is read from it);
    /// without it, the `filename` of a `Content-Disposition` header.
    pub filename: Option<String>,
    /// `true`: store nothing if any line is rejected. Default `false`: store
    /// the valid lines and report the rejected ones. Either way, a request
    /// whose every line is rejected stores nothing and answers 422.
    #[serde(default)]
    pub atomic: bool,
}

/// The names `format=` takes (for the document; read as a string by
/// [`Format::from_name`]).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum FormatName {
    Canonical,
    Ndjson,
    Json,
    Csv,
    Shadowserver,
    Nuclei,
    Nmap,
    Masscan,
    Intelmq,
}

fn choose_format(q: &PushQuery, headers: &HeaderMap) -> ApiResult<Format> {
    let report = q.report.clone().or_else(|| {
        q.filename
            .clone()
            .or_else(|| uploaded_file_name(headers))
            .as_deref()
            .and_then(Format::shadowserver_report_from_filename)
    });
    let format = match &q.format {
        Some(name) => Format::from_name(name, report.as_deref()).ok_or_else(|| {
            ApiError::invalid(
                "format",
                format!("unknown format {name:?}; use canonical, ndjson, json, csv, shadowserver, nuclei, nmap, masscan or intelmq"),
            )
        })?,
        None => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if report.is_some() && is_report_file(content_type) {
                Format::Shadowserver { report }
            } else {
                Format::from_content_type(content_type).ok_or_else(|| {
                    ApiError::UnsupportedMediaType(format!(
                        "cannot tell the format from Content-Type {content_type:?}; send application/x-ndjson, \
                         application/json, text/csv or application/xml, or name it with ?format="
                    ))
                })?
            }
        }
    };
    // The report type decides what a row means (an open RDP port, a
    // vulnerable Exchange) and is part of the finding's check id: without
    // it, different reports on one address and port would fold into one
    // finding.
    if matches!(format, Format::Shadowserver { report: None }) {
        return Err(ApiError::invalid(
            "report",
            "a Shadowserver report needs its type: give ?report=scan_exchange, \
             ?filename=2021-03-10-scan_exchange-no.csv, or the file's name in a \
             Content-Disposition: attachment; filename=\"2021-03-10-scan_exchange-no.csv\" header",
        ));
    }
    Ok(format)
}

/// A Content-Type a named Shadowserver report may come with: CSV, or the
/// `.csv.gz`/`.csv.zip` file as downloaded (the body is unpacked by its
/// first bytes).
fn is_report_file(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    [
        "text/csv",
        "application/gzip",
        "application/x-gzip",
        "application/zip",
        "application/x-zip-compressed",
        "application/octet-stream",
    ]
    .iter()
    .any(|m| media.eq_ignore_ascii_case(m))
}

/// The file name a client sent in `Content-Disposition` (RFC 6266), the way
/// HTTP clients name an uploaded file.
fn uploaded_file_name(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    content_disposition::parse_content_disposition(value).filename_full()
}

fn body_spec(state: &AppState, q: &PushQuery, req: Request) -> ApiResult<BodySpec> {
    let headers = req.headers();
    let format = choose_format(q, headers)?;
    let gzip = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(other) => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Encoding {other:?} is not supported; use gzip or none"
            )));
        }
    };
    let limit = state.settings.max_ingest_bytes;
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if length > limit {
            return Err(ApiError::PayloadTooLarge(format!(
                "request body larger than {limit} bytes"
            )));
        }
    }
    Ok(BodySpec {
        body: req.into_body(),
        gzip,
        format,
        limit,
    })
}

async fn push_observations(
    state: AppState,
    client: Client,
    run: Option<ScanRun>,
    q: PushQuery,
    req: Request,
) -> ApiResult<Response> {
    let key =
        IdempotencyKey::from_headers(req.headers(), client.id, "POST", &path_and_query(req.uri()))?;
    let spec = body_spec(&state, &q, req)?;
    let hasher = key
        .as_ref()
        .map(IdempotencyKey::request_hasher)
        .unwrap_or_default();
    if let Some(key) = &key {
        let stored = {
            let mut conn = state.pool.acquire().await?;
            idempotency::find(&mut conn, key).await?
        };
        if let Some(stored) = stored {
            let hash = pipeline::hash_only(spec, hasher).await?;
            return stored.replay(&hash);
        }
    }
    let rules = match &run {
        Some(run) => RunRules {
            scan_run_id: Some(run.id),
            checks: run.checks.clone(),
            scope: run.scope.clone(),
        },
        None => RunRules::default(),
    };
    let mut tx = state.pool.begin().await?;
    if let Some(run) = &run {
        // Holds off a concurrent finish until this batch is in.
        let locked = scans::fetch(&mut tx, run.id, true).await?;
        if locked.finished_at.is_some() {
            return Err(ApiError::conflict(format!(
                "scan run {} is finished",
                run.id
            )));
        }
    }
    let (summary, hash) = pipeline::ingest(&state, &mut tx, spec, rules, hasher).await?;
    // A request that stores nothing is never a success: generic clients
    // (IntelMQ's REST output bot among them) look at the status only, and
    // would drop what they sent.
    if summary.accepted == 0 && summary.rejected == 0 {
        tx.rollback().await?;
        return Err(ApiError::invalid(
            "body",
            "the body holds no observations; nothing was stored",
        ));
    }
    if summary.rejected > 0 && (q.atomic || summary.accepted == 0) {
        tx.rollback().await?;
        return Err(ApiError::Rejected {
            rejected: summary.rejected,
            errors: summary.errors,
        });
    }
    let answer = JsonAnswer::new(StatusCode::OK, &summary)?;
    if let Some(key) = &key {
        if !idempotency::save(
            &mut tx,
            key,
            &hash,
            answer.status,
            &answer.body,
            "application/json",
        )
        .await?
        {
            tx.rollback().await?;
            return replay_after_race(&state, key, &hash).await;
        }
    }
    tx.commit().await?;
    tracing::info!(
        accepted = summary.accepted,
        rejected = summary.rejected,
        scan_run = ?summary.scan_run_id,
        "observations ingested"
    );
    Ok(answer.into_response())
}

/// Add a batch of observations to a scan run. The body is streamed (any
/// size up to the configured limit, gzip allowed) and stored in one
/// transaction: completely, or not at all.
#[utoipa::path(post, path = "/api/v1/scans/{id}/observations", tag = "ingest",
    params(("id" = i64, Path), PushQuery),
    request_body(content = String, description = "Observations in the chosen format", content_type = "application/x-ndjson"),
    responses((status = 200, body = IngestSummary), (status = 413, body = crate::error::Problem),
              (status = 415, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = ["ingest"])))]
pub async fn push_to_scan(
    client: Caller<Ingest>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    QueryParams(q): QueryParams<PushQuery>,
    req: Request,
) -> ApiResult<Response> {
    let run = {
        let mut conn = state.pool.acquire().await?;
        scans::fetch(&mut conn, id, false).await?
    };
    own_run(&client, &run)?;
    if run.finished_at.is_some() {
        return Err(ApiError::conflict(format!("scan run {id} is finished")));
    }
    push_observations(state, client.0, Some(run), q, req).await
}

/// Push observations without managing a scan run.
#[utoipa::path(post, path = "/api/v1/observations", tag = "ingest",
    params(PushQuery),
    request_body(content = String, description = "Observations in the chosen format", content_type = "application/x-ndjson"),
    responses((status = 200, body = IngestSummary), (status = 413, body = crate::error::Problem),
              (status = 415, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = ["ingest"])))]
pub async fn push(
    client: Caller<Ingest>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PushQuery>,
    req: Request,
) -> ApiResult<Response> {
    push_observations(state, client.0, None, q, req).await
}
