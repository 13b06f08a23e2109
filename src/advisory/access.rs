//! Who may see an advisory page: the holder of a live link. A token is
//! looked up by its SHA-256 in one query whose answer is the same "no"
//! for an unknown, an expired and a revoked link (and for a malformed
//! one, which is hashed and looked up like any other), so neither the
//! page nor its timing tells them apart. Requests are rate-limited per
//! client address first.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::app::AppState;
use crate::notifications::texts::MailLanguage;
use crate::notifications::tokens;
use crate::web::error::WebError;

/// A live link and the notification it opens, with what the page heads
/// with (read in the same query: every request of the page needs them).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Link {
    pub link_id: i64,
    pub notification_id: i64,
    pub organisation_id: i64,
    pub campaign_id: i64,
    pub expires_at: DateTime<Utc>,
    /// The language of the mail that carried the link.
    pub mail_language: Option<String>,
    pub ticket: String,
    pub organisation_name: String,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When the campaign was last changed, and its latest update: what the
    /// page's rendering of the campaign is valid for.
    pub campaign_changed_at: DateTime<Utc>,
    pub campaign_update_id: i64,
}

impl Link {
    /// The page's language: `?lang=` if it names one, else the mail's.
    pub fn language(&self, requested: Option<&str>) -> MailLanguage {
        match requested {
            Some("nb") => MailLanguage::Nb,
            Some("en") => MailLanguage::En,
            _ => self
                .mail_language
                .as_deref()
                .map_or(MailLanguage::Nb, MailLanguage::parse),
        }
    }

    /// The scope of the link's forms' CSRF tokens.
    pub fn csrf_scope(&self) -> String {
        format!("advisory-link:{}", self.link_id)
    }
}

/// The client's address, for the rate limit and the record of answers:
/// the peer of the connection (none when the router is served without
/// connection info).
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientAddr(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_canonical()),
        ))
    }
}

/// Refuses a client over its rate.
pub fn check_rate(state: &AppState, client: Option<IpAddr>) -> Result<(), WebError> {
    state
        .page_rate_limiter
        .check_client(client)
        .map_err(|retry_after_secs| WebError::RateLimited { retry_after_secs })
}

/// The live link `token` names, or 404.
pub async fn resolve(
    conn: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Link, WebError> {
    sqlx::query_as(
        "SELECT t.id AS link_id, t.notification_id, n.organisation_id, n.campaign_id, t.expires_at,
                (SELECT d.language FROM deliveries d WHERE d.link_token_id = t.id LIMIT 1) AS mail_language,
                n.ticket, o.name AS organisation_name, n.acknowledged_at,
                c.updated_at AS campaign_changed_at,
                (SELECT coalesce(max(u.id), 0) FROM campaign_updates u
                  WHERE u.campaign_id = n.campaign_id) AS campaign_update_id
           FROM notification_tokens t
           JOIN notifications n ON n.id = t.notification_id
           JOIN organisations o ON o.id = n.organisation_id
           JOIN campaigns c ON c.id = n.campaign_id
          WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND t.expires_at > $2",
    )
    .bind(tokens::hash(token))
    .bind(now)
    .fetch_optional(conn)
    .await?
    .ok_or(WebError::NotFound)
}
