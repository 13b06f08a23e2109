//! API clients and their bearer tokens: creating (the token is shown once,
//! only its SHA-256 is stored), listing, revoking, and the request extractor
//! that turns an `Authorization: Bearer …` header into a [`Client`] with
//! scopes, rate-limited per client.

pub mod routes;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::app::AppState;
use crate::domain::{Actor, DomainError, DomainResult, required_text};
use crate::error::ApiError;

/// What a token may do. `admin` includes the other two.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Read,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Scope::Ingest),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A freshly minted token. Shown to its owner once; never logged.
pub struct Token(String);

impl Token {
    const PREFIX: &'static str = "vsl_";

    fn generate() -> Self {
        // 256 random bits from the OS-seeded CSPRNG.
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
}

impl Client {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// Who acts, for the audit log.
    pub fn actor(&self) -> Actor {
        Actor::ApiClient {
            id: self.id,
            name: self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientInfo {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn create_client(
    pool: &PgPool,
    actor: &Actor,
    name: &str,
    scopes: &[Scope],
) -> DomainResult<(ClientInfo, Token)> {
    let name = required_text("name", name, 200)?;
    if scopes.is_empty() {
        return Err(DomainError::invalid("scopes", "give at least one scope"));
    }
    let mut scope_names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    scope_names.sort_unstable();
    scope_names.dedup();
    let token = Token::generate();
    let mut tx = pool.begin().await?;
    let (id, created_at): (i64, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO api_clients (name, scopes, token_hash) VALUES ($1, $2, $3)
         RETURNING id, created_at",
    )
    .bind(&name)
    .bind(&scope_names)
    .bind(hash_token(token.expose()))
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record(
        &mut tx,
        actor,
        "token.create",
        &format!("api-client:{id}"),
        serde_json::json!({ "name": name, "scopes": scope_names }),
    )
    .await?;
    tx.commit().await?;
    let info = ClientInfo {
        id,
        name,
        scopes: scope_names.iter().filter_map(|s| Scope::parse(s)).collect(),
        created_at,
        last_used_at: None,
        revoked_at: None,
    };
    Ok((info, token))
}

type ClientRow = (
    i64,
    String,
    Vec<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn client_info(row: ClientRow) -> ClientInfo {
    let (id, name, scopes, created_at, last_used_at, revoked_at) = row;
    ClientInfo {
        id,
        name,
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        created_at,
        last_used_at,
        revoked_at,
    }
}

pub async fn list_clients(pool: &PgPool) -> DomainResult<Vec<ClientInfo>> {
    let rows: Vec<ClientRow> = sqlx::query_as(
        "SELECT id, name, scopes, created_at, last_used_at, revoked_at
         FROM api_clients ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(client_info).collect())
}

/// Revokes a client's token; revoking twice is not an error. Returns whether
/// the client exists.
pub async fn revoke_client(pool: &PgPool, id: i64, actor: &Actor) -> DomainResult<bool> {
    let mut tx = pool.begin().await?;
    let found = sqlx::query(
        "UPDATE api_clients SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if found {
        crate::audit::record(
            &mut tx,
            actor,
            "token.revoke",
            &format!("api-client:{id}"),
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(found)
}

/// Looks a presented token up. `None` for unknown or revoked tokens.
pub async fn authenticate(pool: &PgPool, token: &str) -> Result<Option<Client>, ApiError> {
    let row: Option<(i64, String, Vec<String>, bool)> = sqlx::query_as(
        "SELECT id, name, scopes, last_used_at IS NULL OR last_used_at < now() - interval '1 minute'
           FROM api_clients WHERE token_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash_token(token))
    .fetch_optional(pool)
    .await?;
    let Some((id, name, scopes, stale)) = row else {
        return Ok(None);
    };
    if stale {
        // At most once a minute per client, so a busy scanner does not
        // write a row version per request.
        sqlx::query("UPDATE api_clients SET last_used_at = now() WHERE id = $1")
            .bind(id)
            .execute(pool)
            .await?;
    }
    Ok(Some(Client {
        id,
        name,
        scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
    }))
}

/// Requests per minute per API client, in this instance.
pub type ClientRateLimiter = crate::rate_limit::KeyedRateLimit<i64>;

/// The scopes a route accepts (any one of them), as a type: `Caller<Admin>`
/// in a handler's arguments is the route's authorisation, visible where it
/// is routed. `admin` includes every scope.
pub trait RequiredScope {
    const ANY_OF: &'static [Scope];
    /// For the 403 answer.
    const NAME: &'static str;
}

/// Scope `read`: the registry, lookups, findings.
pub struct Read;
/// Scope `ingest`: scan runs and observations.
pub struct Ingest;
/// Scope `admin`: registry writes, tokens, everything.
pub struct Admin;
/// Scope `read` or `ingest`: a scan run is read by the scanner that runs it
/// and by readers.
pub struct ReadOrIngest;

impl RequiredScope for Read {
    const ANY_OF: &'static [Scope] = &[Scope::Read];
    const NAME: &'static str = "read";
}
impl RequiredScope for Ingest {
    const ANY_OF: &'static [Scope] = &[Scope::Ingest];
    const NAME: &'static str = "ingest";
}
impl RequiredScope for Admin {
    const ANY_OF: &'static [Scope] = &[Scope::Admin];
    const NAME: &'static str = "admin";
}
impl RequiredScope for ReadOrIngest {
    const ANY_OF: &'static [Scope] = &[Scope::Read, Scope::Ingest];
    const NAME: &'static str = "read` or `ingest";
}

/// The authenticated caller of an API request whose token has scope `S`:
/// 401 without a valid token, 403 without the scope, 429 over its rate.
/// Put it first among a handler's arguments, so nothing else (the body,
/// the path) is looked at for a caller that may not call.
pub struct Caller<S>(pub Client, PhantomData<S>);

impl<S> std::ops::Deref for Caller<S> {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.0
    }
}

impl<S: RequiredScope> FromRequestParts<AppState> for Caller<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let client = authenticate(&state.pool, token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        state
            .rate_limiter
            .check(&client.id)
            .map_err(|retry_after_secs| ApiError::RateLimited { retry_after_secs })?;
        if !S::ANY_OF.iter().any(|&scope| client.has(scope)) {
            return Err(ApiError::Forbidden(S::NAME));
        }
        Ok(Caller(client, PhantomData))
    }
}

pub type SharedRateLimiter = Arc<ClientRateLimiter>;
