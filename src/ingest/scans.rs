//! Scan runs: one batch of work by one scanner client, with the checks it
//! ran and the scope it covered. Finishing a run with a scope resolves the
//! open findings it covered and did not see.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::error::{ApiError, ApiResult};
use crate::registry::model::Cidr;

pub const MAX_CHECK_LEN: usize = 128;

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ScanRun {
    pub id: i64,
    pub client_id: Option<i64>,
    pub scanner: String,
    pub checks: Vec<String>,
    #[schema(value_type = Vec<String>)]
    pub scope: Vec<IpNet>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub observations_accepted: i64,
    pub observations_rejected: i64,
    /// Findings this run resolved by covering them without seeing them.
    pub findings_resolved: i64,
    pub created_at: DateTime<Utc>,
}

pub const COLUMNS: &str = "id, client_id, scanner, checks, scope, started_at, finished_at, \
     observations_accepted, observations_rejected, findings_resolved, created_at";

/// A scanner's check id, as the document states it (the handlers take
/// strings and check them with [`check_id_problem`]).
#[derive(utoipa::ToSchema)]
#[schema(
    example = "exchange-proxylogon",
    pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]{1,128}$"
)]
pub struct CheckId(pub String);

/// A CIDR with no host bits set, as the document states it.
#[derive(utoipa::ToSchema)]
#[schema(example = "192.0.2.0/24", format = "cidr")]
pub struct CidrString(pub String);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewScanRun {
    /// The scanner's name, e.g. `ncsc-exchange-scanner`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
        example = "ncsc-exchange-scanner"
    )]
    pub scanner: String,
    /// The check ids this run runs (1 to 128 characters, no white space or
    /// control characters); observations of other checks are refused.
    #[serde(default)]
    #[schema(value_type = Vec<CheckId>)]
    pub checks: Vec<String>,
    /// CIDRs this run covers. When it finishes, open findings of its checks
    /// inside the scope that it did not see are resolved.
    #[serde(default)]
    #[schema(value_type = Vec<CidrString>)]
    pub scope: Vec<Cidr>,
    /// Default now.
    pub started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishScanRun {
    /// Default now.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A check id: 1 to 128 characters, no white space or control characters.
pub fn check_id_problem(check: &str) -> Option<String> {
    if check.is_empty() {
        return Some("must not be empty".to_owned());
    }
    if check.chars().count() > MAX_CHECK_LEN {
        return Some(format!("at most {MAX_CHECK_LEN} characters"));
    }
    if check.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(format!(
            "{check:?} contains white space or control characters"
        ));
    }
    None
}

pub async fn create(
    conn: &mut PgConnection,
    client_id: i64,
    new: NewScanRun,
) -> ApiResult<ScanRun> {
    // Characters, not bytes, as the document's maxLength counts them.
    let scanner = crate::domain::required_text("scanner", &new.scanner, 200)?;
    for (i, check) in new.checks.iter().enumerate() {
        if let Some(problem) = check_id_problem(check) {
            return Err(ApiError::invalid(format!("checks[{i}]"), problem));
        }
    }
    if !new.scope.is_empty() && new.checks.is_empty() {
        return Err(ApiError::invalid(
            "checks",
            "a run with a scope must name its checks: finishing it resolves findings of those checks only",
        ));
    }
    let now = Utc::now();
    let started_at = new.started_at.unwrap_or(now);
    if started_at > now + chrono::Duration::minutes(5) {
        return Err(ApiError::invalid("started_at", "is in the future"));
    }
    let mut checks = new.checks.clone();
    checks.sort();
    checks.dedup();
    let scope: Vec<IpNet> = new.scope.iter().map(Cidr::net).collect();
    Ok(sqlx::query_as(&format!(
        "INSERT INTO scan_runs (client_id, scanner, checks, scope, started_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    ))
    .bind(client_id)
    .bind(&scanner)
    .bind(&checks)
    .bind(&scope)
    .bind(started_at)
    .fetch_one(conn)
    .await?)
}

pub async fn fetch(conn: &mut PgConnection, id: i64, lock: bool) -> ApiResult<ScanRun> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM scan_runs WHERE id = $1 {}",
        if lock { "FOR UPDATE" } else { "" }
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("scan run {id}")))
}

/// Finishes the run and resolves what its scope covered and it did not see
/// (`last_seen` before the run started). Returns the updated run.
pub async fn finish(
    conn: &mut PgConnection,
    run: &ScanRun,
    finished_at: DateTime<Utc>,
) -> ApiResult<ScanRun> {
    if run.finished_at.is_some() {
        return Err(ApiError::conflict(format!(
            "scan run {} is already finished",
            run.id
        )));
    }
    // A conflict with the stored run, not a malformed field.
    if finished_at < run.started_at {
        return Err(ApiError::Conflict {
            field: Some("finished_at".to_owned()),
            detail: format!(
                "finished_at is before the run started ({})",
                run.started_at.to_rfc3339()
            ),
        });
    }
    let resolved: i64 = if run.scope.is_empty() || run.checks.is_empty() {
        0
    } else {
        crate::findings::store::lock_writers(conn).await?;
        sqlx::query_scalar(
            "WITH resolved AS (
                UPDATE findings f
                   SET status = 'resolved', resolved_at = $2, updated_at = now()
                 WHERE f.current AND f.status = 'open'
                   AND f.check_id = ANY($3) AND f.ip <<= ANY($4) AND f.last_seen < $5
                RETURNING f.id, f.state
             ), events AS (
                INSERT INTO finding_events (finding_id, at, kind, reason, scan_run_id, from_state)
                SELECT id, $2, 'resolved', 'not seen by scan run ' || $1 || ', whose scope covered it', $1, state
                  FROM resolved
             )
             SELECT count(*) FROM resolved",
        )
        .bind(run.id)
        .bind(finished_at)
        .bind(&run.checks)
        .bind(&run.scope)
        .bind(run.started_at)
        .fetch_one(&mut *conn)
        .await?
    };
    if resolved > 0 {
        // Committed with the resolutions: notifications may be resolved.
        crate::notifications::drafting::enqueue_if_active(conn, chrono::Utc::now()).await?;
    }
    Ok(sqlx::query_as(&format!(
        "UPDATE scan_runs SET finished_at = $2, findings_resolved = $3 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(run.id)
    .bind(finished_at)
    .bind(resolved)
    .fetch_one(conn)
    .await?)
}
