//! `/api/v1/organisations`: organisations, the owners of networks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::OrgNumber;
use crate::app::AppState;
use crate::audit;
use crate::auth::{Client, Scope};
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, Page, QueryParams, id_cursor, nullable, page_limit};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/organisations", get(list).post(create))
        .route(
            "/api/v1/organisations/{id}",
            get(show).patch(update).delete(remove),
        )
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Organisation {
    pub id: i64,
    /// External key, stable across re-imports (RIPE `ORG-…` handle or CSV `ref`).
    #[serde(rename = "ref")]
    #[sqlx(rename = "ref")]
    pub reference: String,
    pub name: String,
    pub org_number: Option<String>,
    pub sector: Option<String>,
    pub notes: Option<String>,
    /// `api` (entered by hand), `csv` or `ripe` (imported).
    pub channel: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, ref, name, org_number, sector, notes, channel, created_at, updated_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganisation {
    #[serde(rename = "ref")]
    pub reference: String,
    pub name: String,
    #[schema(value_type = Option<String>, example = "974760673")]
    pub org_number: Option<OrgNumber>,
    pub sector: Option<String>,
    pub notes: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub org_number: Option<Option<OrgNumber>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub sector: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub notes: Option<Option<String>>,
}

fn check_text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(v.to_owned())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only the organisation with this `ref`.
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// List organisations, by id, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/organisations", tag = "registry", params(ListQuery),
    responses((status = 200, body = Page<Organisation>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    client: Client,
    QueryParams(q): QueryParams<ListQuery>,
) -> ApiResult<Json<Page<Organisation>>> {
    client.require(Scope::Read)?;
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let rows: Vec<Organisation> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organisations
          WHERE id > $1 AND ($2::text IS NULL OR ref = $2)
          ORDER BY id LIMIT $3"
    ))
    .bind(after)
    .bind(&q.reference)
    .bind(limit as i64 + 1)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(Page::from_rows(rows, limit, |o| o.id.to_string())))
}

pub async fn fetch(pool: &sqlx::PgPool, id: i64) -> ApiResult<Organisation> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM organisations WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("organisation {id}")))
}

/// One organisation.
#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Organisation), (status = 404, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn show(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<Json<Organisation>> {
    client.require(Scope::Read)?;
    Ok(Json(fetch(&state.pool, id).await?))
}

/// Register an organisation.
#[utoipa::path(post, path = "/api/v1/organisations", tag = "registry", request_body = NewOrganisation,
    responses((status = 201, body = Organisation), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    client: Client,
    JsonBody(body): JsonBody<NewOrganisation>,
) -> ApiResult<(StatusCode, Json<Organisation>)> {
    client.require(Scope::Admin)?;
    let reference = check_text("ref", &body.reference, 100)?;
    let name = check_text("name", &body.name, 300)?;
    let mut tx = state.pool.begin().await?;
    let org: Organisation = sqlx::query_as(&format!(
        "INSERT INTO organisations (ref, name, org_number, sector, notes, channel)
         VALUES ($1, $2, $3, $4, $5, 'api') RETURNING {COLUMNS}"
    ))
    .bind(&reference)
    .bind(&name)
    .bind(body.org_number.as_ref().map(OrgNumber::as_str))
    .bind(&body.sector)
    .bind(&body.notes)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        &client.actor(),
        "organisation.create",
        &format!("organisation:{}", org.id),
        serde_json::json!({ "ref": reference }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// Change an organisation's name, number, sector or notes (`ref` is its
/// key and cannot change).
#[utoipa::path(patch, path = "/api/v1/organisations/{id}", tag = "registry", request_body = OrganisationPatch,
    params(("id" = i64, Path)), responses((status = 200, body = Organisation), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<OrganisationPatch>,
) -> ApiResult<Json<Organisation>> {
    client.require(Scope::Admin)?;
    let name = patch
        .name
        .as_deref()
        .map(|n| check_text("name", n, 300))
        .transpose()?;
    let mut tx = state.pool.begin().await?;
    let org: Organisation = sqlx::query_as(&format!(
        "UPDATE organisations SET
            name = coalesce($2, name),
            org_number = CASE WHEN $3 THEN $4 ELSE org_number END,
            sector = CASE WHEN $5 THEN $6 ELSE sector END,
            notes = CASE WHEN $7 THEN $8 ELSE notes END
          WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(&name)
    .bind(patch.org_number.is_some())
    .bind(patch.org_number.flatten().as_ref().map(OrgNumber::as_str))
    .bind(patch.sector.is_some())
    .bind(patch.sector.flatten())
    .bind(patch.notes.is_some())
    .bind(patch.notes.flatten())
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("organisation {id}")))?;
    audit::commit(
        tx,
        &client.actor(),
        "organisation.update",
        &format!("organisation:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(Json(org))
}

/// Delete an organisation that has no networks, ASNs or findings (current
/// or historical); its contacts and domains go with it.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    let deleted = sqlx::query("DELETE FROM organisations WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::BadRequest(m) => ApiError::Conflict(m),
            other => other,
        })?
        .rows_affected();
    if deleted == 0 {
        return Err(ApiError::not_found(format!("organisation {id}")));
    }
    audit::commit(
        tx,
        &client.actor(),
        "organisation.delete",
        &format!("organisation:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
