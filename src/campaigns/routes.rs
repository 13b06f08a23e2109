//! `/api/v1/campaigns`: campaigns over REST, for admin tokens. Thin
//! handlers: each names its scope, parses the request, calls the domain
//! function in [`super::store`] and answers JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};

use super::model::{
    Campaign, CampaignDetail, CampaignPatch, CampaignQuery, CampaignUpdate, NewCampaign, NewUpdate,
};
use super::store;
use crate::app::AppState;
use crate::auth::{Admin, Caller};
use crate::error::{ApiResult, Problem};
use crate::http::{JsonBody, Page, Path, QueryParams, id_cursor, page_limit};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/campaigns",
            get(list_campaigns).post(create_campaign),
        )
        .route(
            "/api/v1/campaigns/{id}",
            get(show_campaign).patch(update_campaign),
        )
        .route("/api/v1/campaigns/{id}/activate", post(activate_campaign))
        .route("/api/v1/campaigns/{id}/updates", post(post_campaign_update))
        .route("/api/v1/campaigns/{id}/close", post(close_campaign))
}

/// List campaigns, by id, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/campaigns", tag = "campaigns", params(CampaignQuery),
    responses((status = 200, body = Page<Campaign>)), security(("bearer" = ["admin"])))]
pub async fn list_campaigns(
    _caller: Caller<Admin>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<CampaignQuery>,
) -> ApiResult<Json<Page<Campaign>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::list(&mut conn, q.status, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |c| c.id.to_string())))
}

/// Create a draft campaign.
#[utoipa::path(post, path = "/api/v1/campaigns", tag = "campaigns", request_body = NewCampaign,
    responses((status = 201, body = Campaign), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn create_campaign(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewCampaign>,
) -> ApiResult<(StatusCode, Json<Campaign>)> {
    let mut conn = state.pool.acquire().await?;
    let campaign = store::create(&mut conn, &caller.actor(), &body).await?;
    Ok((StatusCode::CREATED, Json(campaign)))
}

/// One campaign with what it matches now (open findings, organisations),
/// its updates (newest first), its TLP label's meaning and its texts as
/// sanitised HTML.
#[utoipa::path(get, path = "/api/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = i64, Path)), responses((status = 200, body = CampaignDetail), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn show_campaign(
    _caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<CampaignDetail>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(store::show(&mut conn, id).await?))
}

/// Change a draft campaign (409 once it is active or closed).
#[utoipa::path(patch, path = "/api/v1/campaigns/{id}", tag = "campaigns", request_body = CampaignPatch,
    params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn update_campaign(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<CampaignPatch>,
) -> ApiResult<Json<Campaign>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        store::update(&mut conn, &caller.actor(), id, &patch).await?,
    ))
}

/// Activate a draft campaign: its findings are notified from now on (409
/// unless it is a draft).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/activate", tag = "campaigns",
    params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn activate_campaign(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Campaign>> {
    let mut conn = state.pool.acquire().await?;
    let now = state.clock.now();
    Ok(Json(
        store::activate(&mut conn, &caller.actor(), id, now).await?,
    ))
}

/// Post a dated update to an active campaign (409 otherwise).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/updates", tag = "campaigns", request_body = NewUpdate,
    params(("id" = i64, Path)),
    responses((status = 201, body = CampaignUpdate), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn post_campaign_update(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<NewUpdate>,
) -> ApiResult<(StatusCode, Json<CampaignUpdate>)> {
    let mut conn = state.pool.acquire().await?;
    let now = state.clock.now();
    let update = store::post_update(&mut conn, &caller.actor(), id, &body, now).await?;
    Ok((StatusCode::CREATED, Json(update)))
}

/// Close an active campaign (409 otherwise).
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/close", tag = "campaigns",
    params(("id" = i64, Path)),
    responses((status = 200, body = Campaign), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn close_campaign(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Campaign>> {
    let mut conn = state.pool.acquire().await?;
    let now = state.clock.now();
    Ok(Json(
        store::close(&mut conn, &caller.actor(), id, now).await?,
    ))
}
