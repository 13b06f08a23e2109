//! The job table's SQL: claiming a due job with a lease, finishing it,
//! failing it with a backoff computed in SQL, and what operators see and
//! do (list, retry). Every time is the service clock's, passed in.
//!
//! A claim commits at once and holds no lock; the lease says how long the
//! claimer may take. A job whose lease expired (its worker died) is due
//! again. Finishing is addressed to the claim (`attempts` as claimed), so a
//! worker that outlived its lease cannot overwrite a newer claim's outcome.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};

use super::Job;
use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult};

/// How long a claimed job may run before others may take it over.
pub const LEASE: Duration = Duration::minutes(10);

/// A claimed job. `job` is an error when the payload is not a job this
/// version knows (written by a newer one, or by hand).
pub struct Claimed {
    pub id: i64,
    pub attempts: i32,
    pub job: Result<Job, String>,
}

pub async fn claim(pool: &PgPool, now: DateTime<Utc>) -> Result<Option<Claimed>, sqlx::Error> {
    let row: Option<(i64, i32, serde_json::Value)> = sqlx::query_as(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_until = $1 + $2
          WHERE id = (SELECT id FROM jobs
                       WHERE (status = 'pending' AND run_at <= $1)
                          OR (status = 'running' AND lease_until < $1)
                       ORDER BY run_at, id
                       LIMIT 1
                       FOR UPDATE SKIP LOCKED)
         RETURNING id, attempts, payload",
    )
    .bind(now)
    .bind(LEASE)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, attempts, payload)| Claimed {
        id,
        attempts,
        job: serde_json::from_value(payload).map_err(|e| format!("unknown job: {e}")),
    }))
}

pub async fn complete(
    pool: &PgPool,
    claimed: &Claimed,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs SET status = 'done', finished_at = $3, lease_until = NULL
          WHERE id = $1 AND attempts = $2 AND status = 'running'",
    )
    .bind(claimed.id)
    .bind(claimed.attempts)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records a failed attempt: due again after 5 s, 10 s, 20 s, … (at most an
/// hour), or `failed` for good once its attempts are spent. A failed job
/// whose twin is already pending again is superseded by it (`done`, with
/// its error kept).
pub async fn fail(
    pool: &PgPool,
    claimed: &Claimed,
    now: DateTime<Utc>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE jobs j SET
                status = CASE
                    WHEN j.attempts >= j.max_attempts THEN 'failed'
                    WHEN EXISTS (SELECT 1 FROM jobs t WHERE t.dedupe_key = j.dedupe_key
                                    AND t.status = 'pending' AND t.id <> j.id) THEN 'done'
                    ELSE 'pending' END,
                run_at = $3 + least(interval '1 hour', interval '5 seconds' * power(2, j.attempts - 1)),
                finished_at = CASE WHEN j.attempts >= j.max_attempts THEN $3 END,
                lease_until = NULL,
                last_error = $4
          WHERE j.id = $1 AND j.attempts = $2 AND j.status = 'running'",
    )
    .bind(claimed.id)
    .bind(claimed.attempts)
    .bind(now)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

/// A job as operators see it.
#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct JobInfo {
    pub id: i64,
    pub kind: String,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// `pending`, `running`, `done` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// A page of jobs by id, after `after`, optionally of one status; `limit +
/// 1` rows, so the caller learns whether more exist.
pub async fn list(
    conn: &mut PgConnection,
    status: Option<&str>,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<JobInfo>> {
    Ok(sqlx::query_as(
        "SELECT id, kind, payload, status, attempts, max_attempts, run_at, last_error, created_at, finished_at
           FROM jobs
          WHERE ($1::text IS NULL OR status = $1) AND id > $2
          ORDER BY id LIMIT $3",
    )
    .bind(status)
    .bind(after)
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?)
}

/// An operator gives a failed job a new set of attempts, due now.
pub async fn retry(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    now: DateTime<Utc>,
) -> DomainResult<JobInfo> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let status: Option<String> =
        sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    match status.as_deref() {
        None => return Err(DomainError::not_found(format!("job {id}"))),
        Some("failed") => {}
        Some(other) => {
            return Err(DomainError::conflict(format!(
                "job {id} is {other}; only failed jobs can be retried"
            )));
        }
    }
    let job: JobInfo = sqlx::query_as(
        "UPDATE jobs SET status = 'pending', attempts = 0, run_at = $2, finished_at = NULL
          WHERE id = $1
         RETURNING id, kind, payload, status, attempts, max_attempts, run_at, last_error, created_at, finished_at",
    )
    .bind(id)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "job.retry",
        &format!("job:{id}"),
        serde_json::json!({ "kind": job.kind }),
    )
    .await?;
    Ok(job)
}
