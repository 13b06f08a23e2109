//! Domains an organisation holds (for matching scanner hostnames and for
//! people reading the registry).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::organisation_exists;
use crate::app::AppState;
use crate::audit;
use crate::auth::{Client, Scope};
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/organisations/{id}/domains", get(list).post(create))
        .route("/api/v1/domains/{id}", delete(remove))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Domain {
    pub id: i64,
    pub organisation_id: i64,
    pub domain: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub domain: String,
}

/// Lower-cased, without a trailing dot; labels of letters, digits and `-`.
pub fn parse_domain(input: &str) -> Result<String, String> {
    let d = input.trim().trim_end_matches('.').to_lowercase();
    let ok = d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if ok {
        Ok(d)
    } else {
        Err(format!("{input:?} is not a domain name"))
    }
}

/// The organisation's domains.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/domains", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<Domain>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<Domain>>> {
    client.require(Scope::Read)?;
    let mut conn = state.pool.acquire().await?;
    organisation_exists(&mut conn, org).await?;
    let rows = sqlx::query_as(
        "SELECT id, organisation_id, domain, created_at FROM domains WHERE organisation_id = $1 ORDER BY domain",
    )
    .bind(org)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(rows))
}

/// Add a domain to the organisation.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/domains", tag = "registry", request_body = NewDomain,
    params(("id" = i64, Path)), responses((status = 201, body = Domain), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewDomain>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    client.require(Scope::Admin)?;
    let domain = parse_domain(&body.domain).map_err(|e| ApiError::invalid("domain", e))?;
    let mut tx = state.pool.begin().await?;
    organisation_exists(&mut tx, org).await?;
    let row: Domain = sqlx::query_as(
        "INSERT INTO domains (organisation_id, domain) VALUES ($1, $2)
         RETURNING id, organisation_id, domain, created_at",
    )
    .bind(org)
    .bind(&domain)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        &client.actor(),
        "domain.create",
        &format!("domain:{}", row.id),
        serde_json::json!({ "organisation_id": org, "domain": domain }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(row)))
}

/// Remove a domain.
#[utoipa::path(delete, path = "/api/v1/domains/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    let n = sqlx::query("DELETE FROM domains WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Err(ApiError::not_found(format!("domain {id}")));
    }
    audit::commit(
        tx,
        &client.actor(),
        "domain.delete",
        &format!("domain:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #[test]
    fn domains() {
        assert_eq!(super::parse_domain("Example.NO.").unwrap(), "example.no");
        assert!(super::parse_domain("nodot").is_err());
        assert!(super::parse_domain("-a.no").is_err());
    }
}
