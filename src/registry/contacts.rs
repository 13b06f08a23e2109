//! Contacts of an organisation: who gets the advisories, in which language.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{ContactRole, EmailAddress, Language, Source};
use super::organisation_exists;
use crate::app::AppState;
use crate::audit;
use crate::auth::{Client, Scope};
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, nullable};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organisations/{id}/contacts",
            get(list).post(create),
        )
        .route("/api/v1/contacts/{id}", patch(update).delete(remove))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Contact {
    pub id: i64,
    pub organisation_id: i64,
    pub email: String,
    pub name: Option<String>,
    pub role: String,
    pub language: String,
    pub enabled: bool,
    /// `manual`, `registry` (imported) or `organisation` (reported by it).
    pub provenance: String,
    pub channel: String,
    pub last_bounce_at: Option<DateTime<Utc>>,
    pub last_failure: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, organisation_id, email, name, role, language, enabled, provenance, channel, \
                       last_bounce_at, last_failure, created_at, updated_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    #[schema(value_type = String, example = "security@example.no")]
    pub email: EmailAddress,
    pub name: Option<String>,
    pub role: ContactRole,
    pub language: Language,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Default `manual`.
    pub provenance: Option<Source>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatch {
    #[schema(value_type = Option<String>)]
    pub email: Option<EmailAddress>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    pub role: Option<ContactRole>,
    pub language: Option<Language>,
    pub enabled: Option<bool>,
}

/// The organisation's contacts.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/contacts", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<Contact>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<Contact>>> {
    client.require(Scope::Read)?;
    let mut conn = state.pool.acquire().await?;
    organisation_exists(&mut conn, org).await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM contacts WHERE organisation_id = $1 ORDER BY id"
    ))
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(rows))
}

/// Add a contact to the organisation.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/contacts", tag = "registry", request_body = NewContact,
    params(("id" = i64, Path)), responses((status = 201, body = Contact), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    organisation_exists(&mut tx, org).await?;
    let contact: Contact = sqlx::query_as(&format!(
        "INSERT INTO contacts (organisation_id, email, name, role, language, enabled, provenance, channel)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'api') RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(body.email.as_str())
    .bind(body.name.as_deref().map(str::trim))
    .bind(body.role.as_str())
    .bind(body.language.as_str())
    .bind(body.enabled)
    .bind(body.provenance.unwrap_or(Source::Manual).as_str())
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        &client.actor(),
        "contact.create",
        &format!("contact:{}", contact.id),
        serde_json::json!({ "organisation_id": org }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

/// Change a contact.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "registry", request_body = ContactPatch,
    params(("id" = i64, Path)), responses((status = 200, body = Contact)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<ContactPatch>,
) -> ApiResult<Json<Contact>> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    let contact: Contact = sqlx::query_as(&format!(
        "UPDATE contacts SET
            email = coalesce($2, email),
            name = CASE WHEN $3 THEN $4 ELSE name END,
            role = coalesce($5, role),
            language = coalesce($6, language),
            enabled = coalesce($7, enabled)
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(patch.email.as_ref().map(EmailAddress::as_str))
    .bind(patch.name.is_some())
    .bind(patch.name.flatten())
    .bind(patch.role.map(ContactRole::as_str))
    .bind(patch.language.map(Language::as_str))
    .bind(patch.enabled)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("contact {id}")))?;
    audit::commit(
        tx,
        &client.actor(),
        "contact.update",
        &format!("contact:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(Json(contact))
}

/// Remove a contact.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    let n = sqlx::query("DELETE FROM contacts WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found(format!("contact {id}")));
    }
    audit::commit(
        tx,
        &client.actor(),
        "contact.delete",
        &format!("contact:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
