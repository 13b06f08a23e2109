//! The REST side of the organisations' answers: `/api/v1/notifications/{id}/responses`,
//! `/api/v1/escalations` (read; take and close, admin), `/api/v1/rechecks`
//! (scope `ingest`: what scanners should look at first),
//! `/api/v1/contact-proposals` (read; confirm or reject, admin) and the
//! advisory links of a notification (revoke, reissue; admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::store::{
    self, ContactProposal, Escalation, EscalationStatus, IssuedLink, ProposalStatus, RecheckTarget,
    Response,
};
use crate::app::AppState;
use crate::auth::{Admin, Caller, Ingest, Read};
use crate::error::{ApiResult, Problem};
use crate::http::{JsonBody, Page, Path, QueryParams, id_cursor, page_limit};
use crate::registry::contacts::Contact;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications/{id}/responses", get(list_responses))
        .route(
            "/api/v1/notifications/{id}/links/revoke",
            post(revoke_links),
        )
        .route("/api/v1/notifications/{id}/links", post(reissue_link))
        .route("/api/v1/escalations", get(list_escalations))
        .route("/api/v1/escalations/{id}", get(show_escalation))
        .route("/api/v1/escalations/{id}/take", post(take_escalation))
        .route("/api/v1/escalations/{id}/close", post(close_escalation))
        .route("/api/v1/rechecks", get(list_rechecks))
        .route("/api/v1/contact-proposals", get(list_proposals))
        .route(
            "/api/v1/contact-proposals/{id}/confirm",
            post(confirm_proposal),
        )
        .route(
            "/api/v1/contact-proposals/{id}/reject",
            post(reject_proposal),
        )
}

/// Everything the organisation answered on its page, oldest first, each
/// with its time, finding and client address.
#[utoipa::path(get, path = "/api/v1/notifications/{id}/responses", tag = "responses",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<Response>), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list_responses(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<Response>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(store::responses(&mut conn, id).await?))
}

/// Revoke every live advisory link of the notification (a link leaked);
/// its page answers 404 from now on.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/links/revoke", tag = "responses",
    params(("id" = i64, Path)),
    responses((status = 200, body = RevokedLinks), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn revoke_links(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<RevokedLinks>> {
    let mut conn = state.pool.acquire().await?;
    let revoked = store::revoke_links(&mut conn, &caller.actor(), id, state.clock.now()).await?;
    Ok(Json(RevokedLinks { revoked }))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RevokedLinks {
    pub revoked: u64,
}

/// Reissue the notification's advisory link: every live link is revoked
/// and a new one made, valid for the campaign's link validity; its address
/// is in this answer only.
#[utoipa::path(post, path = "/api/v1/notifications/{id}/links", tag = "responses",
    params(("id" = i64, Path)),
    responses((status = 201, body = IssuedLink), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn reissue_link(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<(StatusCode, Json<IssuedLink>)> {
    let mut conn = state.pool.acquire().await?;
    let link = store::reissue_link(
        &mut conn,
        &caller.actor(),
        &state.settings.link_secret(),
        &state.settings.public_base_url,
        id,
        state.clock.now(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(link)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EscalationQuery {
    /// Only escalations in this status (`open` is what needs an analyst).
    pub status: Option<EscalationStatus>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Reported compromises by id, e.g. `?status=open`.
#[utoipa::path(get, path = "/api/v1/escalations", tag = "responses", params(EscalationQuery),
    responses((status = 200, body = Page<Escalation>)), security(("bearer" = ["read"])))]
pub async fn list_escalations(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<EscalationQuery>,
) -> ApiResult<Json<Page<Escalation>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::escalations(&mut conn, q.status, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |e| e.id.to_string())))
}

/// One escalation.
#[utoipa::path(get, path = "/api/v1/escalations/{id}", tag = "responses",
    params(("id" = i64, Path)), responses((status = 200, body = Escalation), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn show_escalation(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Escalation>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(store::escalation(&mut conn, id).await?))
}

/// Take an open escalation: the caller now owns it.
#[utoipa::path(post, path = "/api/v1/escalations/{id}/take", tag = "responses",
    params(("id" = i64, Path)),
    responses((status = 200, body = Escalation), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn take_escalation(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Escalation>> {
    let mut conn = state.pool.acquire().await?;
    store::take_escalation(&mut conn, &caller.actor(), id, state.clock.now()).await?;
    Ok(Json(store::escalation(&mut conn, id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseEscalation {
    /// What was found and done.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub note: String,
}

impl crate::http::BodyShape for CloseEscalation {}

/// Close a taken escalation with a note.
#[utoipa::path(post, path = "/api/v1/escalations/{id}/close", tag = "responses",
    params(("id" = i64, Path)), request_body = CloseEscalation,
    responses((status = 200, body = Escalation), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn close_escalation(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<CloseEscalation>,
) -> ApiResult<Json<Escalation>> {
    let mut conn = state.pool.acquire().await?;
    store::close_escalation(
        &mut conn,
        &caller.actor(),
        id,
        &body.note,
        state.clock.now(),
    )
    .await?;
    Ok(Json(store::escalation(&mut conn, id).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Targets organisations reported fixed and no scan has looked at since,
/// by finding id: rescan these first. The results arrive as ordinary
/// observations and resolve or keep the findings.
#[utoipa::path(get, path = "/api/v1/rechecks", tag = "responses", params(PageQuery),
    responses((status = 200, body = Page<RecheckTarget>)), security(("bearer" = ["ingest"])))]
pub async fn list_rechecks(
    _caller: Caller<Ingest>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<PageQuery>,
) -> ApiResult<Json<Page<RecheckTarget>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::rechecks(&mut conn, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |r| {
        r.finding_id.to_string()
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProposalQuery {
    /// Only proposals in this status (`pending` awaits an analyst).
    pub status: Option<ProposalStatus>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// Contact addresses organisations proposed, by id.
#[utoipa::path(get, path = "/api/v1/contact-proposals", tag = "responses", params(ProposalQuery),
    responses((status = 200, body = Page<ContactProposal>)), security(("bearer" = ["read"])))]
pub async fn list_proposals(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<ProposalQuery>,
) -> ApiResult<Json<Page<ContactProposal>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::proposals(&mut conn, q.status, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |p| p.id.to_string())))
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct DecidedProposal {
    pub proposal: ContactProposal,
    /// The contact it became, when confirmed.
    pub contact: Option<Contact>,
}

/// Confirm a pending proposal: the address becomes a security contact of
/// the organisation (provenance `organisation`).
#[utoipa::path(post, path = "/api/v1/contact-proposals/{id}/confirm", tag = "responses",
    params(("id" = i64, Path)),
    responses((status = 200, body = DecidedProposal), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn confirm_proposal(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<DecidedProposal>> {
    decide(caller, state, id, true).await
}

/// Reject a pending proposal.
#[utoipa::path(post, path = "/api/v1/contact-proposals/{id}/reject", tag = "responses",
    params(("id" = i64, Path)),
    responses((status = 200, body = DecidedProposal), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn reject_proposal(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<DecidedProposal>> {
    decide(caller, state, id, false).await
}

async fn decide(
    caller: Caller<Admin>,
    state: AppState,
    id: i64,
    confirm: bool,
) -> ApiResult<Json<DecidedProposal>> {
    let mut conn = state.pool.acquire().await?;
    let contact =
        store::decide_proposal(&mut conn, &caller.actor(), id, confirm, state.clock.now()).await?;
    Ok(Json(DecidedProposal {
        proposal: store::proposal(&mut conn, id).await?,
        contact,
    }))
}
