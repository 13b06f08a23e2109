//! `/api/v1/tokens`: API clients managed over the API (admin scope).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Client, ClientInfo, Scope};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::JsonBody;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list).post(create))
        .route("/api/v1/tokens/{id}", delete(revoke))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewToken {
    pub name: String,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub client: ClientInfo,
    /// Shown once; only its hash is stored.
    pub token: String,
}

/// List API clients (never their tokens).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ClientInfo>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    client: Client,
) -> ApiResult<Json<Vec<ClientInfo>>> {
    client.require(Scope::Admin)?;
    Ok(Json(super::list_clients(&state.pool).await?))
}

/// Create an API client; the response carries its token, once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    client: Client,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    client.require(Scope::Admin)?;
    let (info, token) = super::create_client(&state.pool, &body.name, &body.scopes).await?;
    tracing::info!(client_id = info.id, by = client.id, "API client created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            client: info,
            token: token.expose().to_owned(),
        }),
    ))
}

/// Revoke an API client's token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens",
    params(("id" = i64, Path)), responses((status = 204)), security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    client.require(Scope::Admin)?;
    if super::revoke_client(&state.pool, id, &client.actor()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API client {id}")))
    }
}
