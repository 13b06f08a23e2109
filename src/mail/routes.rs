//! `/api/v1/deliveries`: the outbox as operators see it (admin scope):
//! every message by status — `?status=failed` is what needs a look — with
//! each attempt's reply, putting a failed message back in the queue, and
//! sending a message once more.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::outbox::{self, DeliveryInfo};
use crate::app::AppState;
use crate::auth::{Admin, Caller};
use crate::domain::DomainError;
use crate::error::{ApiResult, Problem};
use crate::http::{Page, Path, QueryParams, id_cursor, page_limit};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/deliveries", get(list_deliveries))
        .route("/api/v1/deliveries/{id}/retry", post(retry_delivery))
        .route("/api/v1/deliveries/{id}/resend", post(resend_delivery))
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// Only deliveries in this status.
    pub status: Option<DeliveryStatus>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Deliveries by id, e.g. `?status=failed`.
#[utoipa::path(get, path = "/api/v1/deliveries", tag = "deliveries", params(DeliveryQuery),
    responses((status = 200, body = Page<DeliveryInfo>)), security(("bearer" = ["admin"])))]
pub async fn list_deliveries(
    _caller: Caller<Admin>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<DeliveryQuery>,
) -> ApiResult<Json<Page<DeliveryInfo>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = outbox::list(
        &mut conn,
        q.status.map(DeliveryStatus::as_str),
        after,
        limit,
    )
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |d| d.id.to_string())))
}

/// Put a failed delivery back in the queue, due now, with attempts of its
/// own (after the contact's address was corrected, or the server fixed).
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = i64, Path)),
    responses((status = 200, body = DeliveryInfo), (status = 404, body = Problem),
        (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn retry_delivery(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<DeliveryInfo>> {
    let mut conn = state.pool.acquire().await?;
    outbox::retry(&mut conn, &caller.actor(), id, state.clock.now()).await?;
    Ok(Json(outbox::fetch(&mut conn, id).await?))
}

/// Send a notification's message once more, as a new delivery to the same
/// recipient with the same content and link ("we never got it"). Only a
/// sent or failed delivery, and only while its link still opens.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/resend", tag = "deliveries",
    params(("id" = i64, Path)),
    responses((status = 201, description = "The new delivery", body = DeliveryInfo),
        (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn resend_delivery(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<DeliveryInfo>)> {
    let mut conn = state.pool.acquire().await?;
    let Some(notification) = outbox::fetch(&mut conn, id).await?.notification_id else {
        return Err(DomainError::conflict(format!(
            "delivery {id} belongs to no notification; only an advisory's mail is resent"
        ))
        .into());
    };
    let copy = crate::notifications::mailing::resend(
        &mut conn,
        &caller.actor(),
        notification,
        id,
        state.clock.now(),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(outbox::fetch(&mut conn, copy).await?),
    ))
}
