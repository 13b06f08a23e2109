//! Durable background work, in PostgreSQL: every job is a row, enqueued in
//! the same transaction as the change that causes it, so a crash can lose
//! neither the change nor the work it calls for. Workers on any number of
//! instances claim due jobs with a lease ([`queue`]), run them with no lock
//! held, and end each one `done`, or `failed` after its retries (kept,
//! visible over the API, retryable). [`runner`] owns the workers: woken by
//! LISTEN/NOTIFY, stopped by cancellation. Periodic work (housekeeping) is
//! a job that schedules its next run.
//!
//! Jobs are idempotent: a worker killed mid-job leaves its lease to expire,
//! and the job runs again elsewhere.

pub mod housekeeping;
pub mod queue;
pub mod routes;
pub mod runner;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use crate::app::AppState;

/// Every kind of background work, with what it needs to know. Serialised
/// whole into the job's `payload`; its tag is the job's `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    /// Give an owner to findings in the triage queue that the registry now
    /// covers. Enqueued by the database itself on every change of networks
    /// or ASNs (see the jobs migration).
    AttributeTriage,
    /// Forget expired idempotency keys and drop expired observation
    /// partitions. Periodic.
    Housekeeping,
    /// Bring every active campaign's notifications in step with the
    /// findings: drafts, new findings, re-alerts, resolution. Enqueued by
    /// activation, ingest and late attribution.
    MatchFindings,
    /// Write the advisories of a campaign's approved notifications.
    MailApproved { campaign_id: i64 },
    /// Tell an already mailed organisation of new hosts (batched).
    SendFollowup { notification_id: i64 },
    /// Send a posted campaign update to every organisation mailed.
    SendUpdate { update_id: i64 },
    /// Reminders that came due, links that expired, and a catch-up run of
    /// drafting (for findings committed while a campaign was being
    /// activated, which neither enqueued). Periodic.
    Sweep,
    /// Aggregate what the dashboard's charts draw. Periodic.
    DashboardStats,
}

impl Job {
    /// The `kind` column: the serde tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::AttributeTriage => "attribute_triage",
            Job::Housekeeping => "housekeeping",
            Job::MatchFindings => "match_findings",
            Job::MailApproved { .. } => "mail_approved",
            Job::SendFollowup { .. } => "send_followup",
            Job::SendUpdate { .. } => "send_update",
            Job::Sweep => "sweep",
            Job::DashboardStats => "dashboard_stats",
        }
    }

    pub fn is_periodic(&self) -> bool {
        matches!(self, Job::Housekeeping | Job::Sweep | Job::DashboardStats)
    }

    /// Pending jobs with the same key are one job.
    fn dedupe_key(&self) -> Option<String> {
        match self {
            Job::AttributeTriage => Some("attribute_triage".to_owned()),
            Job::Housekeeping | Job::Sweep | Job::DashboardStats => {
                Some(format!("{PERIODIC_PREFIX}{}", self.kind()))
            }
            Job::MatchFindings => Some("match_findings".to_owned()),
            Job::MailApproved { campaign_id } => Some(format!("mail_approved:{campaign_id}")),
            Job::SendFollowup { notification_id } => {
                Some(format!("send_followup:{notification_id}"))
            }
            Job::SendUpdate { update_id } => Some(format!("send_update:{update_id}")),
        }
    }

    async fn run(self, state: &AppState) -> anyhow::Result<()> {
        match self {
            Job::AttributeTriage => {
                let n = crate::findings::attribution::attribute_unattributed(
                    &state.pool,
                    &state.attributor,
                    state.clock.now(),
                )
                .await?;
                if n > 0 {
                    tracing::info!(findings = n, "unattributed findings got an owner");
                }
                Ok(())
            }
            Job::Housekeeping => housekeeping::run(state).await,
            Job::MatchFindings => crate::notifications::drafting::run(state).await,
            Job::MailApproved { campaign_id } => {
                crate::notifications::mailing::mail_approved(state, campaign_id).await
            }
            Job::SendFollowup { notification_id } => {
                crate::notifications::mailing::send_followup(state, notification_id).await
            }
            Job::SendUpdate { update_id } => {
                crate::notifications::mailing::send_update(state, update_id).await
            }
            Job::Sweep => {
                crate::advisory::answers::expire_false_positives(state).await?;
                crate::notifications::drafting::run(state).await?;
                crate::notifications::mailing::send_reminders(state).await
            }
            Job::DashboardStats => {
                let mut conn = state.pool.acquire().await?;
                Ok(crate::dashboard::stats::refresh(&mut conn, state.clock.now()).await?)
            }
        }
    }
}

/// Dedupe keys of periodic jobs start with this; they are always scheduled
/// ahead, so a test's check for left-over work ignores them.
pub const PERIODIC_PREFIX: &str = "periodic:";

/// Periodic jobs and how often each runs.
fn periodic() -> [(Job, Duration); 3] {
    [
        (Job::Housekeeping, Duration::hours(1)),
        (Job::Sweep, Duration::minutes(5)),
        (Job::DashboardStats, Duration::minutes(5)),
    ]
}

/// Enqueues `job` to run at `run_at`, in the caller's transaction (it
/// becomes visible, and wakes the workers, when that commits). Returns the
/// job's id, or `None` when the same job is already pending.
pub async fn enqueue(
    conn: &mut PgConnection,
    job: &Job,
    run_at: DateTime<Utc>,
) -> Result<Option<i64>, sqlx::Error> {
    let payload = serde_json::to_value(job).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, dedupe_key, run_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (dedupe_key) WHERE status = 'pending' DO NOTHING
         RETURNING id",
    )
    .bind(job.kind())
    .bind(payload)
    .bind(job.dedupe_key())
    .bind(run_at)
    .fetch_optional(conn)
    .await
}

/// Makes sure every periodic job has its next run scheduled: at the next
/// multiple of its interval (so instances agree on the time).
pub async fn schedule_periodic(state: &AppState) -> Result<(), sqlx::Error> {
    let now = state.clock.now();
    let mut conn = state.pool.acquire().await?;
    for (job, every) in periodic() {
        let step = every.num_seconds().max(1);
        let next = now.timestamp().div_euclid(step) * step + step;
        let run_at = DateTime::from_timestamp(next, 0).unwrap_or(now);
        enqueue(&mut conn, &job, run_at).await?;
    }
    Ok(())
}

/// Runs every due job, one after another in this task, until none is left
/// (jobs that enqueue jobs included); returns how many ran. For tests and
/// the command line; a serving instance has [`runner`].
pub async fn run_pending(state: &AppState) -> anyhow::Result<usize> {
    schedule_periodic(state).await?;
    let mut ran = 0;
    while runner::run_one(state).await? {
        ran += 1;
    }
    Ok(ran)
}
