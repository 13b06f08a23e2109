//! `/api/v1/notifications`, `/api/v1/campaigns/{id}/approve`,
//! `/api/v1/sectors`: notifications over REST — lists (the no-contact
//! queue is `?status=no_contact`), one with its timeline and deliveries,
//! the exact mail before approval, approving drafts, and naming sector
//! response teams.

use axum::extract::State;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::mailing::{self, Selection};
use super::model::{Notification, TimelineEvent};
use super::sectors::{self, Sector, SectorTeam};
use super::store::{self, NotificationQuery};
use super::texts::MailLanguage;
use crate::app::AppState;
use crate::auth::{Admin, Caller, Read};
use crate::error::{ApiResult, Problem};
use crate::http::{JsonBody, Page, Path, QueryParams, id_cursor, page_limit};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications", get(list_notifications))
        .route("/api/v1/notifications/{id}", get(show_notification))
        .route(
            "/api/v1/notifications/{id}/timeline",
            get(notification_timeline),
        )
        .route(
            "/api/v1/notifications/{id}/deliveries",
            get(notification_deliveries),
        )
        .route(
            "/api/v1/notifications/{id}/preview",
            get(preview_notification),
        )
        .route(
            "/api/v1/campaigns/{id}/approve",
            post(approve_notifications),
        )
        .route("/api/v1/sectors", get(list_sectors))
        .route("/api/v1/sectors/{name}", put(set_sector_team))
}

/// Notifications by id; `?status=no_contact` is the queue of those
/// waiting for a contact.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = Page<Notification>)), security(("bearer" = ["read"])))]
pub async fn list_notifications(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<NotificationQuery>,
) -> ApiResult<Json<Page<Notification>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = store::list(&mut conn, &q, after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |n| n.id.to_string())))
}

/// One notification.
#[utoipa::path(get, path = "/api/v1/notifications/{id}", tag = "notifications",
    params(("id" = i64, Path)), responses((status = 200, body = Notification), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn show_notification(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Notification>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(store::fetch(&mut conn, id).await?))
}

/// The notification's timeline, oldest first: drafted, approved, each mail
/// queued and each delivery's outcome with the server's reply, reminders,
/// updates, re-alerts, resolved.
#[utoipa::path(get, path = "/api/v1/notifications/{id}/timeline", tag = "notifications",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<TimelineEvent>), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn notification_timeline(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<TimelineEvent>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(store::timeline(&mut conn, id).await?))
}

/// The notification's mails in the outbox, with their attempts.
#[utoipa::path(get, path = "/api/v1/notifications/{id}/deliveries", tag = "notifications",
    params(("id" = i64, Path)),
    responses((status = 200, body = Vec<crate::mail::outbox::DeliveryInfo>), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn notification_deliveries(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Vec<crate::mail::outbox::DeliveryInfo>>> {
    let mut conn = state.pool.acquire().await?;
    store::fetch(&mut conn, id).await?;
    Ok(Json(
        crate::mail::outbox::for_notification(&mut conn, id).await?,
    ))
}

#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PreviewLanguage {
    Nb,
    En,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// The language to show; default the first recipient's.
    pub language: Option<PreviewLanguage>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewRecipient {
    pub email: String,
    pub language: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PreviewAttachment {
    pub filename: String,
    pub content_type: String,
    /// The attachment, base64.
    pub content_base64: String,
}

/// The advisory mail exactly as it would go out now, but for the link:
/// each mail gets its own, made when it is written.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Who would get it; empty when the organisation has no usable contact.
    pub recipients: Vec<PreviewRecipient>,
    pub language: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<PreviewAttachment>,
}

/// The advisory mail of a notification, as rendered for its recipients.
#[utoipa::path(get, path = "/api/v1/notifications/{id}/preview", tag = "notifications",
    params(("id" = i64, Path), PreviewQuery),
    responses((status = 200, body = Preview), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn preview_notification(
    _caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    QueryParams(q): QueryParams<PreviewQuery>,
) -> ApiResult<Json<Preview>> {
    let mut conn = state.pool.acquire().await?;
    let n = store::fetch(&mut conn, id).await?;
    let campaign = crate::campaigns::store::fetch(&mut conn, n.campaign_id).await?;
    let language = q.language.map(|l| match l {
        PreviewLanguage::Nb => MailLanguage::Nb,
        PreviewLanguage::En => MailLanguage::En,
    });
    let mailing::InitialPreview {
        language,
        recipients: to,
        mail,
    } = mailing::preview_initial(
        &mut conn,
        &state.settings.public_base_url,
        &n,
        &campaign,
        language,
        state.clock.now(),
    )
    .await?;
    Ok(Json(Preview {
        recipients: to
            .iter()
            .map(|r| PreviewRecipient {
                email: r.email.clone(),
                language: r.language.code().to_owned(),
            })
            .collect(),
        language: language.code().to_owned(),
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        attachments: mail
            .attachments
            .into_iter()
            .map(|a| PreviewAttachment {
                filename: a.filename,
                content_type: a.content_type,
                content_base64: base64::engine::general_purpose::STANDARD.encode(a.content),
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The notifications to approve; absent approves every draft of the
    /// campaign (and retries those waiting for a contact).
    #[schema(min_items = 1, max_items = 10000)]
    pub notification_ids: Option<Vec<i64>>,
}

impl crate::http::BodyShape for Approval {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Approved {
    /// The notifications approved now (those already approved are left).
    pub approved: Vec<i64>,
}

/// Approve drafts of an active campaign: one, several or all.
#[utoipa::path(post, path = "/api/v1/campaigns/{id}/approve", tag = "notifications",
    params(("id" = i64, Path)), request_body = Approval,
    responses((status = 200, body = Approved), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn approve_notifications(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<Approval>,
) -> ApiResult<Json<Approved>> {
    let selection = match body.notification_ids {
        None => Selection::All,
        Some(ids) => Selection::Some(ids),
    };
    let mut conn = state.pool.acquire().await?;
    let approved = mailing::approve(
        &mut conn,
        &caller.actor(),
        id,
        &selection,
        state.clock.now(),
    )
    .await?;
    Ok(Json(Approved { approved }))
}

/// Sectors in use and their response teams.
#[utoipa::path(get, path = "/api/v1/sectors", tag = "notifications",
    responses((status = 200, body = Vec<Sector>)), security(("bearer" = ["read"])))]
pub async fn list_sectors(
    _caller: Caller<Read>,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<Sector>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(sectors::list(&mut conn).await?))
}

/// Name the response team copied on a sector's notifications.
#[utoipa::path(put, path = "/api/v1/sectors/{name}", tag = "notifications",
    params(("name" = String, Path, max_length = 100)), request_body = SectorTeam,
    responses((status = 200, body = Sector), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn set_sector_team(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SectorTeam>,
) -> ApiResult<Json<Sector>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        sectors::set_team(
            &mut conn,
            &caller.actor(),
            &name,
            body.response_team_id,
            state.clock.now(),
        )
        .await?,
    ))
}
