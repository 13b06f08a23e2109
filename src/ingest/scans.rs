//! Scan runs: one batch of work by one scanner client, with the checks it
//! ran and the scope it covered. Finishing a run with a scope is an absence
//! for every current finding of its checks in its scope of which the run
//! stored no observation: it resolves the open ones, except those with
//! signs of compromise, which stay open and are marked as not seen. What
//! the run saw it never resolves, whatever the clocks of scanner and server
//! say.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::error::{ApiError, ApiResult};
use crate::findings::coverage::Coverage;
use crate::findings::fold::{Input, absence_reason};
use crate::findings::store::Key;
use crate::findings::writer::{self, Group};
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
    /// Open findings with signs of compromise this run covered without
    /// seeing them: absence never resolves a compromise, so they stay open,
    /// marked "not seen since".
    pub findings_kept_open: i64,
    pub created_at: DateTime<Utc>,
}

pub const COLUMNS: &str = "id, client_id, scanner, checks, scope, started_at, finished_at, \
     observations_accepted, observations_rejected, findings_resolved, findings_kept_open, created_at";

/// A finding a run resolved or kept open by not seeing it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RunFinding {
    pub id: i64,
    #[schema(value_type = String)]
    pub ip: std::net::IpAddr,
    pub port: i32,
    pub protocol: String,
    #[sqlx(rename = "check_id")]
    pub check: String,
    /// The finding's state when the run finished.
    pub state: String,
    pub organisation_id: Option<i64>,
}

/// A scan run with what it resolved, and what it kept open, by absence.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScanRunDetail {
    #[serde(flatten)]
    pub run: ScanRun,
    /// The findings it resolved (at most 1000; `findings_resolved` counts
    /// them all).
    pub resolved: Vec<RunFinding>,
    /// The compromised findings it did not see and left open (at most
    /// 1000; `findings_kept_open` counts them all).
    pub kept_open: Vec<RunFinding>,
}

/// Findings listed per kind in a run's detail.
const LISTED: i64 = 1000;

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
    /// inside the scope of which it stored no observation are resolved
    /// (those with signs of compromise stay open, marked not seen).
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
    now: DateTime<Utc>,
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

/// The run with the findings it resolved and kept open.
pub async fn detail(conn: &mut PgConnection, run: ScanRun) -> ApiResult<ScanRunDetail> {
    let listed = |kind: &'static str| {
        sqlx::query_as::<_, RunFinding>(
            "SELECT f.id, f.ip, f.port, f.protocol, f.check_id, coalesce(e.from_state, f.state) AS state,
                    f.organisation_id
               FROM finding_events e JOIN findings f ON f.id = e.finding_id
              WHERE e.scan_run_id = $1 AND e.observation_id IS NULL AND e.kind = $2
              ORDER BY f.id LIMIT $3",
        )
        .bind(run.id)
        .bind(kind)
        .bind(LISTED)
    };
    let resolved = listed("resolved").fetch_all(&mut *conn).await?;
    let kept_open = listed("missed").fetch_all(&mut *conn).await?;
    Ok(ScanRunDetail {
        run,
        resolved,
        kept_open,
    })
}

/// Widens the run's observed time span to take in a batch's.
pub async fn record_batch(
    conn: &mut PgConnection,
    id: i64,
    accepted: u64,
    rejected: u64,
    span: Option<(DateTime<Utc>, DateTime<Utc>)>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE scan_runs SET observations_accepted = observations_accepted + $2,
                              observations_rejected = observations_rejected + $3,
                              observed_from = least(observed_from, $4),
                              observed_to = greatest(observed_to, $5)
          WHERE id = $1",
    )
    .bind(id)
    .bind(i64::try_from(accepted).unwrap_or(i64::MAX))
    .bind(i64::try_from(rejected).unwrap_or(i64::MAX))
    .bind(span.map(|s| s.0))
    .bind(span.map(|s| s.1))
    .execute(conn)
    .await?;
    Ok(())
}

/// Finishes the run: an absence at `finished_at` for every current finding
/// of its checks in its scope of which it stored no observation. Returns
/// the updated run with what it resolved and kept open.
///
/// Findings folded only from inputs sorting before the absence (nearly all:
/// the run finished after it scanned) take it in one statement; the rest
/// (something later was folded already, e.g. an observation from a scanner
/// whose clock runs ahead) go through the findings writer, which replays
/// them if it must.
pub async fn finish(
    conn: &mut PgConnection,
    run: &ScanRun,
    finished_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ApiResult<ScanRunDetail> {
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
    let (mut resolved, mut kept_open) = (0, 0);
    if !run.scope.is_empty() && !run.checks.is_empty() {
        crate::findings::store::lock_writers(conn).await?;
        let span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
            sqlx::query_as("SELECT observed_from, observed_to FROM scan_runs WHERE id = $1")
                .bind(run.id)
                .fetch_one(&mut *conn)
                .await?;
        // Those that cannot take it in place first: afterwards they have
        // folded it, and the statement for the rest leaves them alone.
        (resolved, kept_open) = absent_by_writer(conn, run, finished_at, span).await?;
        let (more_resolved, more_kept) = absent_in_place(conn, run, finished_at, span).await?;
        resolved += more_resolved;
        kept_open += more_kept;
    }
    if resolved + kept_open > 0 {
        // Committed with the resolutions: notifications may be resolved.
        crate::notifications::drafting::enqueue_if_active(conn, now).await?;
    }
    let run: ScanRun = sqlx::query_as(&format!(
        "UPDATE scan_runs SET finished_at = $2, findings_resolved = $3, findings_kept_open = $4
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(run.id)
    .bind(finished_at)
    .bind(resolved)
    .bind(kept_open)
    .fetch_one(&mut *conn)
    .await?;
    detail(conn, run).await
}

/// The current findings a finished run covered and stored no observation
/// of, as a condition on `f` (binds: $1 run, $2 checks, $3 scope, $4 and
/// $5 the run's observed span, which prunes the partitions probed).
const COVERED_UNSEEN: &str = "f.current AND f.check_id = ANY($2) AND f.ip <<= ANY($3)
       AND ($4::timestamptz IS NULL OR NOT EXISTS (
            SELECT 1 FROM observations o
             WHERE o.finding_id = f.id AND o.scan_run_id = $1
               AND o.observed_at >= $4 AND o.observed_at <= $5))";

/// The absence, folded in place into findings folded only from inputs
/// sorting before it: open ones resolve, or (compromised) stay open,
/// marked missed; resolved ones only move on. The same as the fold
/// (`findings::fold`) does, reasons included. Returns (resolved, kept open).
async fn absent_in_place(
    conn: &mut PgConnection,
    run: &ScanRun,
    at: DateTime<Utc>,
    span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> ApiResult<(i64, i64)> {
    let (resolved, kept_open): (i64, i64) = sqlx::query_as(&format!(
        "WITH candidates AS (
            SELECT f.id, f.status, f.state,
                   (f.escalated_at IS NOT NULL OR f.state = 'compromised') AS compromised
              FROM findings f
             WHERE {COVERED_UNSEEN} AND (f.folded_at, f.folded_rank) < ($6, 0)
         ), absent AS (
            UPDATE findings f SET
                status = CASE WHEN c.status = 'open' AND NOT c.compromised THEN 'resolved' ELSE f.status END,
                resolved_at = CASE WHEN c.status = 'open' AND NOT c.compromised THEN $6 ELSE f.resolved_at END,
                missed_at = CASE WHEN c.status = 'open' AND c.compromised
                                 THEN greatest(f.missed_at, $6) ELSE f.missed_at END,
                changed_at = CASE WHEN c.status = 'open' THEN $6 ELSE f.changed_at END,
                changed_rank = CASE WHEN c.status = 'open' THEN 0 ELSE f.changed_rank END,
                folded_at = $6, folded_rank = 0, updated_at = now()
              FROM candidates c
             WHERE f.id = c.id
         RETURNING f.id, c.status = 'open' AS was_open, c.compromised, c.state
         ), events AS (
            INSERT INTO finding_events (finding_id, at, kind, reason, scan_run_id, from_state)
            SELECT id, $6, CASE WHEN compromised THEN 'missed' ELSE 'resolved' END,
                   CASE WHEN compromised THEN $7 ELSE $8 END, $1, state
              FROM absent WHERE was_open
         )
         SELECT count(*) FILTER (WHERE was_open AND NOT compromised),
                count(*) FILTER (WHERE was_open AND compromised)
           FROM absent"
    ))
    .bind(run.id)
    .bind(&run.checks)
    .bind(&run.scope)
    .bind(span.0)
    .bind(span.1)
    .bind(at)
    .bind(absence_reason(run.id, true))
    .bind(absence_reason(run.id, false))
    .fetch_one(&mut *conn)
    .await?;
    Ok((resolved, kept_open))
}

/// The absence for findings that folded something sorting after it: each
/// through the findings writer. Returns (resolved, kept open).
async fn absent_by_writer(
    conn: &mut PgConnection,
    run: &ScanRun,
    at: DateTime<Utc>,
    span: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
) -> ApiResult<(i64, i64)> {
    let rows: Vec<(std::net::IpAddr, i32, String, String)> = sqlx::query_as(&format!(
        "SELECT f.ip, f.port, f.protocol, f.check_id FROM findings f
          WHERE {COVERED_UNSEEN} AND (f.folded_at, f.folded_rank) >= ($6, 0)
          ORDER BY f.ip, f.port, f.protocol, f.check_id"
    ))
    .bind(run.id)
    .bind(&run.checks)
    .bind(&run.scope)
    .bind(span.0)
    .bind(span.1)
    .bind(at)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok((0, 0));
    }
    let keys: Vec<Key> = rows
        .into_iter()
        .filter_map(|(ip, port, protocol, check)| {
            Some(Key {
                ip,
                port: u16::try_from(port).ok()?,
                protocol,
                check,
            })
        })
        .collect();
    let key_refs: Vec<&Key> = keys.iter().collect();
    let current = crate::findings::store::read_current(conn, &key_refs).await?;
    // The run stored no observation of these: from its coverage they are
    // absences, which the writer's replay reads back as such once the run
    // is finished; folded in place, the absence is this input.
    let groups: Vec<Group<'_>> = keys
        .iter()
        .map(|key| Group {
            key,
            inputs: vec![Input::Absence {
                scan_run_id: run.id,
                at,
            }],
        })
        .collect();
    let coverage = Coverage::load(conn).await?;
    match writer::write(conn, &groups, current, &coverage).await? {
        Some(written) => Ok((
            written.resolved.len() as i64,
            written.kept_open.len() as i64,
        )),
        // Nothing else writes findings while this holds the writer lock.
        None => Err(ApiError::Contention),
    }
}
