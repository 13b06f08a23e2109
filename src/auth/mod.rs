//! API clients and their bearer tokens: creating (the token is shown once,
//! only its SHA-256 is stored), listing, revoking, and the request extractor
//! that turns an `Authorization: Bearer …` header into a [`Client`] with
//! scopes, rate-limited per client.

pub mod routes;

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::app::AppState;
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

    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }

    /// For the audit log.
    pub fn actor(&self) -> String {
        format!("api-client:{}:{}", self.id, self.name)
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
    name: &str,
    scopes: &[Scope],
) -> Result<(ClientInfo, Token), ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid("scopes", "give at least one scope"));
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
    .bind(name)
    .bind(&scope_names)
    .bind(hash_token(token.expose()))
    .fetch_one(&mut *tx)
    .await?;
    crate::audit::record(
        &mut tx,
        "cli",
        "token.create",
        &format!("api-client:{id}"),
        serde_json::json!({ "name": name, "scopes": scope_names }),
    )
    .await?;
    tx.commit().await?;
    let info = ClientInfo {
        id,
        name: name.to_owned(),
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

pub async fn list_clients(pool: &PgPool) -> Result<Vec<ClientInfo>, ApiError> {
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
pub async fn revoke_client(pool: &PgPool, id: i64, actor: &str) -> Result<bool, ApiError> {
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

/// Requests per minute per client, in this instance.
pub struct ClientRateLimiter(Option<DefaultKeyedRateLimiter<i64>>);

impl ClientRateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self(NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))))
    }

    fn check(&self, client_id: i64) -> Result<(), ApiError> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        limiter.check_key(&client_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            ApiError::RateLimited {
                retry_after_secs: wait.as_secs() + 1,
            }
        })
    }
}

impl FromRequestParts<AppState> for Client {
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
        state.rate_limiter.check(client.id)?;
        Ok(client)
    }
}

pub type SharedRateLimiter = Arc<ClientRateLimiter>;
