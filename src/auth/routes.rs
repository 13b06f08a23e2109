//! `/api/v1/tokens`: API clients managed over the API (admin scope).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Admin, Caller, ClientInfo, Scope};
use crate::app::AppState;
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, Path};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
        example = "exchange-scanner"
    )]
    pub name: String,
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
}

impl crate::http::BodyShape for NewToken {}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub client: ClientInfo,
    /// Shown once; only its hash is stored.
    pub token: String,
}

/// List API clients (never their tokens).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<ClientInfo>)), security(("bearer" = ["admin"])))]
pub async fn list_tokens(
    _caller: Caller<Admin>,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<ClientInfo>>> {
    Ok(Json(super::list_clients(&state.pool).await?))
}

/// Create an API client; the response carries its token, once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = NewToken,
    responses((status = 201, body = CreatedToken)), security(("bearer" = ["admin"])))]
pub async fn create_token(
    client: Caller<Admin>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let (info, token) =
        super::create_client(&state.pool, &client.actor(), &body.name, &body.scopes).await?;
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
    params(("id" = i64, Path)), responses((status = 204)), security(("bearer" = ["admin"])))]
pub async fn revoke_token(
    client: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    if super::revoke_client(&state.pool, id, &client.actor()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("API client {id}")))
    }
}
