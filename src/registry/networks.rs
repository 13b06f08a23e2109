//! Networks and ASNs of an organisation, with ownership history: a change
//! ends the current row (`valid_to` = now) and starts a new one; nothing is
//! rewritten. Rows imported by an importer belong to it: people override
//! them with a manual entry, which wins ties, rather than editing them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

use super::model::{Cidr, Source};
use super::organisation_exists;
use crate::app::AppState;
use crate::audit;
use crate::auth::{Client, Scope};
use crate::error::{ApiError, ApiResult};
use crate::http::{JsonBody, QueryParams, nullable};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organisations/{id}/networks",
            get(list_networks).post(create_network),
        )
        .route(
            "/api/v1/networks/{id}",
            get(show_network).patch(update_network).delete(end_network),
        )
        .route(
            "/api/v1/organisations/{id}/asns",
            get(list_asns).post(create_asn),
        )
        .route("/api/v1/asns/{id}", axum::routing::delete(end_asn))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Network {
    pub id: i64,
    pub organisation_id: i64,
    #[schema(value_type = String, example = "198.18.4.0/23")]
    pub cidr: IpNet,
    pub source: String,
    /// `api` (entered by hand), `csv` or `ripe` (imported).
    pub channel: String,
    pub name: Option<String>,
    /// `null`: since the beginning of time.
    pub valid_from: Option<DateTime<Utc>>,
    /// `null`: still valid.
    pub valid_to: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const NETWORK_COLUMNS: &str =
    "id, organisation_id, cidr, source, channel, name, valid_from, valid_to, created_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNetwork {
    #[schema(value_type = String, example = "198.18.4.0/23")]
    pub cidr: Cidr,
    /// Default `manual`.
    pub source: Option<Source>,
    pub name: Option<String>,
    /// When the organisation got the network, if known; default: since the
    /// beginning of time.
    pub valid_from: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkPatch {
    /// Moves the network to another organisation from now on.
    pub organisation_id: Option<i64>,
    pub source: Option<Source>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    /// Include ended rows (ownership history).
    #[serde(default)]
    pub history: bool,
}

/// The organisation's networks (current, or with `history=true` all rows).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/networks", tag = "registry",
    params(("id" = i64, Path), HistoryQuery), responses((status = 200, body = Vec<Network>)), security(("bearer" = [])))]
pub async fn list_networks(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> ApiResult<Json<Vec<Network>>> {
    client.require(Scope::Read)?;
    let mut conn = state.pool.acquire().await?;
    organisation_exists(&mut conn, org).await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {NETWORK_COLUMNS} FROM networks
          WHERE organisation_id = $1 AND ($2 OR valid_to IS NULL)
          ORDER BY cidr, valid_from NULLS FIRST, id"
    ))
    .bind(org)
    .bind(q.history)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(rows))
}

async fn fetch_network(conn: &mut PgConnection, id: i64, lock: bool) -> ApiResult<Network> {
    sqlx::query_as(&format!(
        "SELECT {NETWORK_COLUMNS} FROM networks WHERE id = $1 {}",
        if lock { "FOR UPDATE" } else { "" }
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("network {id}")))
}

/// One network row.
#[utoipa::path(get, path = "/api/v1/networks/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Network)), security(("bearer" = [])))]
pub async fn show_network(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<Json<Network>> {
    client.require(Scope::Read)?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(fetch_network(&mut conn, id, false).await?))
}

async fn insert_network(
    conn: &mut PgConnection,
    org: i64,
    cidr: IpNet,
    source: Source,
    name: Option<&str>,
    valid_from: Option<DateTime<Utc>>,
) -> ApiResult<Network> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO networks (organisation_id, cidr, source, channel, name, valid_from)
         VALUES ($1, $2, $3, 'api', $4, $5) RETURNING {NETWORK_COLUMNS}"
    ))
    .bind(org)
    .bind(cidr)
    .bind(source.as_str())
    .bind(name)
    .bind(valid_from)
    .fetch_one(conn)
    .await?)
}

/// Register a network for the organisation.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/networks", tag = "registry", request_body = NewNetwork,
    params(("id" = i64, Path)),
    responses((status = 201, body = Network), (status = 409, body = crate::error::Problem), (status = 422, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_network(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewNetwork>,
) -> ApiResult<(StatusCode, Json<Network>)> {
    client.require(Scope::Admin)?;
    if body.valid_from.is_some_and(|t| t > Utc::now()) {
        return Err(ApiError::invalid("valid_from", "must not be in the future"));
    }
    let mut tx = state.pool.begin().await?;
    organisation_exists(&mut tx, org).await?;
    let network = insert_network(
        &mut tx,
        org,
        body.cidr.net(),
        body.source.unwrap_or(Source::Manual),
        body.name.as_deref(),
        body.valid_from,
    )
    .await?;
    audit::commit(
        tx,
        &client.actor(),
        "network.create",
        &format!("network:{}", network.id),
        serde_json::json!({ "organisation_id": org, "cidr": network.cidr.to_string() }),
    )
    .await?;
    crate::findings::attribution::after_registry_change(&state).await;
    Ok((StatusCode::CREATED, Json(network)))
}

fn check_changeable(network: &Network) -> ApiResult<()> {
    if network.valid_to.is_some() {
        return Err(ApiError::Conflict(format!(
            "network {} ended at {}; history is not rewritten",
            network.id,
            network.valid_to.map(|t| t.to_rfc3339()).unwrap_or_default()
        )));
    }
    if network.channel != "api" {
        return Err(ApiError::Conflict(format!(
            "network {} was imported ({}); the next import would undo a change. \
             Register a manual network for {} instead: it takes precedence",
            network.id, network.channel, network.cidr
        )));
    }
    Ok(())
}

/// Change a network. A new owner or source ends this row now and starts a
/// new one (the response is the new row); a new name changes it in place.
#[utoipa::path(patch, path = "/api/v1/networks/{id}", tag = "registry", request_body = NetworkPatch,
    params(("id" = i64, Path)), responses((status = 200, body = Network), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn update_network(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<NetworkPatch>,
) -> ApiResult<Json<Network>> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    let current = fetch_network(&mut tx, id, true).await?;
    check_changeable(&current)?;
    let new_org = patch.organisation_id.unwrap_or(current.organisation_id);
    let current_source = Source::parse(&current.source).map_err(anyhow::Error::msg)?;
    let new_source = patch.source.unwrap_or(current_source);
    let name = match &patch.name {
        Some(n) => n.clone(),
        None => current.name.clone(),
    };
    let network = if new_org != current.organisation_id || new_source != current_source {
        if new_org != current.organisation_id {
            organisation_exists(&mut tx, new_org).await.map_err(|_| {
                ApiError::invalid("organisation_id", format!("no organisation {new_org}"))
            })?;
        }
        // Both rows get the same instant: the transaction's start time.
        sqlx::query("UPDATE networks SET valid_to = now() WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let now: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut *tx)
            .await?;
        insert_network(
            &mut tx,
            new_org,
            current.cidr,
            new_source,
            name.as_deref(),
            Some(now),
        )
        .await?
    } else {
        sqlx::query_as(&format!(
            "UPDATE networks SET name = $2 WHERE id = $1 RETURNING {NETWORK_COLUMNS}"
        ))
        .bind(id)
        .bind(&name)
        .fetch_one(&mut *tx)
        .await?
    };
    audit::commit(
        tx,
        &client.actor(),
        "network.update",
        &format!("network:{id}"),
        serde_json::json!({ "new_row": network.id, "organisation_id": new_org }),
    )
    .await?;
    crate::findings::attribution::after_registry_change(&state).await;
    Ok(Json(network))
}

/// End a network's validity now (history is kept).
#[utoipa::path(delete, path = "/api/v1/networks/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn end_network(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    let current = fetch_network(&mut tx, id, true).await?;
    check_changeable(&current)?;
    sqlx::query("UPDATE networks SET valid_to = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::commit(
        tx,
        &client.actor(),
        "network.end",
        &format!("network:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Asn {
    pub id: i64,
    pub organisation_id: i64,
    pub asn: i64,
    pub source: String,
    pub channel: String,
    pub name: Option<String>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const ASN_COLUMNS: &str =
    "id, organisation_id, asn, source, channel, name, valid_from, valid_to, created_at";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAsn {
    pub asn: u32,
    pub source: Option<Source>,
    pub name: Option<String>,
}

/// The organisation's ASNs (current, or with `history=true` all rows).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/asns", tag = "registry",
    params(("id" = i64, Path), HistoryQuery), responses((status = 200, body = Vec<Asn>)), security(("bearer" = [])))]
pub async fn list_asns(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> ApiResult<Json<Vec<Asn>>> {
    client.require(Scope::Read)?;
    let mut conn = state.pool.acquire().await?;
    organisation_exists(&mut conn, org).await?;
    let rows = sqlx::query_as(&format!(
        "SELECT {ASN_COLUMNS} FROM asns WHERE organisation_id = $1 AND ($2 OR valid_to IS NULL) ORDER BY asn, id"
    ))
    .bind(org)
    .bind(q.history)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Json(rows))
}

/// Register an ASN for the organisation (the fallback owner of addresses
/// no registered network contains).
#[utoipa::path(post, path = "/api/v1/organisations/{id}/asns", tag = "registry", request_body = NewAsn,
    params(("id" = i64, Path)), responses((status = 201, body = Asn), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn create_asn(
    State(state): State<AppState>,
    client: Client,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewAsn>,
) -> ApiResult<(StatusCode, Json<Asn>)> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    organisation_exists(&mut tx, org).await?;
    let asn: Asn = sqlx::query_as(&format!(
        "INSERT INTO asns (organisation_id, asn, source, channel, name)
         VALUES ($1, $2, $3, 'api', $4) RETURNING {ASN_COLUMNS}"
    ))
    .bind(org)
    .bind(i64::from(body.asn))
    .bind(body.source.unwrap_or(Source::Manual).as_str())
    .bind(&body.name)
    .fetch_one(&mut *tx)
    .await?;
    audit::commit(
        tx,
        &client.actor(),
        "asn.create",
        &format!("asn:{}", asn.id),
        serde_json::json!({ "organisation_id": org, "asn": body.asn }),
    )
    .await?;
    crate::findings::attribution::after_registry_change(&state).await;
    Ok((StatusCode::CREATED, Json(asn)))
}

/// End an ASN registration now.
#[utoipa::path(delete, path = "/api/v1/asns/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 409, body = crate::error::Problem)),
    security(("bearer" = [])))]
pub async fn end_asn(
    State(state): State<AppState>,
    client: Client,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    client.require(Scope::Admin)?;
    let mut tx = state.pool.begin().await?;
    let row: Option<(Option<DateTime<Utc>>, String)> =
        sqlx::query_as("SELECT valid_to, channel FROM asns WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    match row {
        None => return Err(ApiError::not_found(format!("ASN registration {id}"))),
        Some((Some(_), _)) => {
            return Err(ApiError::Conflict(format!(
                "ASN registration {id} has already ended"
            )));
        }
        Some((None, channel)) if channel != "api" => {
            return Err(ApiError::Conflict(format!(
                "ASN registration {id} was imported ({channel}); the next import would undo this"
            )));
        }
        Some(_) => {}
    }
    sqlx::query("UPDATE asns SET valid_to = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    audit::commit(
        tx,
        &client.actor(),
        "asn.end",
        &format!("asn:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
