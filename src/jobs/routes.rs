//! `/api/v1/jobs`: background work as operators see it (admin scope): what
//! is pending, what failed and why, and retrying a failed job.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::queue::{self, JobInfo};
use crate::app::AppState;
use crate::auth::{Admin, Caller};
use crate::error::{ApiResult, Problem};
use crate::http::{Page, Path, QueryParams, id_cursor, page_limit};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}/retry", post(retry_job))
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobStatus {
    fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Done => "done",
            JobStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct JobQuery {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Background jobs by id, e.g. `?status=failed`.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, body = Page<JobInfo>)), security(("bearer" = ["admin"])))]
pub async fn list_jobs(
    _caller: Caller<Admin>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<JobQuery>,
) -> ApiResult<Json<Page<JobInfo>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = queue::list(&mut conn, q.status.map(JobStatus::as_str), after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |j| j.id.to_string())))
}

/// Give a failed job new attempts, due now.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs", params(("id" = i64, Path)),
    responses((status = 200, body = JobInfo), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn retry_job(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<JobInfo>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        queue::retry(&mut conn, &caller.actor(), id, state.clock.now()).await?,
    ))
}
