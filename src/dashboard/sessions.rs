//! Dashboard sessions, in PostgreSQL. The browser holds a random 256-bit
//! id in an `HttpOnly`, `SameSite=Lax` cookie (`Secure` over HTTPS); the
//! database holds only its SHA-256, so a copy of the database opens no
//! session. A session is made new at every login (an id planted before
//! login is never adopted), ends after `session_idle_minutes` without a
//! request and `session_max_hours` after login, and ends at logout.
//!
//! Written here rather than with tower-sessions: its PostgreSQL store keeps
//! session ids as they are, and a session id is a credential.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, Utc};
use cookie::{Cookie, SameSite};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::operators::{Operator, Role};
use crate::app::AppState;
use crate::web::error::WebError;

pub const COOKIE: &str = "varsel_session";

/// A session id in the clear, as the cookie carries it.
pub struct SessionId(String);

impl SessionId {
    fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }

    fn hash(&self) -> Vec<u8> {
        Sha256::digest(self.0.as_bytes()).to_vec()
    }

    /// What the session's forms' CSRF tokens are bound to: the id's hash,
    /// never the id.
    pub fn csrf_scope(&self) -> String {
        format!("dashboard-session:{}", hex::encode(self.hash()))
    }

    /// The cookie that carries it.
    pub fn cookie(&self, secure: bool) -> Option<HeaderValue> {
        let cookie = Cookie::build((COOKIE, self.0.as_str()))
            .path("/")
            .http_only(true)
            .secure(secure)
            .same_site(SameSite::Lax)
            .build();
        HeaderValue::from_str(&cookie.to_string()).ok()
    }

    /// The cookie from the request's `Cookie` headers, if it has one.
    fn from_parts(parts: &Parts) -> Option<Self> {
        parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(SessionId)
    }
}

/// The cookie that ends a session in the browser.
pub fn clearing_cookie(secure: bool) -> Option<HeaderValue> {
    let cookie = Cookie::build((COOKIE, ""))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    HeaderValue::from_str(&cookie.to_string()).ok()
}

/// Starts a session for `operator_id`.
pub async fn start(
    conn: &mut PgConnection,
    operator_id: i64,
    now: DateTime<Utc>,
    max_age: Duration,
) -> Result<SessionId, sqlx::Error> {
    let id = SessionId::generate();
    sqlx::query(
        "INSERT INTO operator_sessions (id_hash, operator_id, created_at, last_seen_at, expires_at)
         VALUES ($1, $2, $3, $3, $4)",
    )
    .bind(id.hash())
    .bind(operator_id)
    .bind(now)
    .bind(now + max_age)
    .execute(conn)
    .await?;
    Ok(id)
}

/// Ends a session.
pub async fn end(conn: &mut PgConnection, id: &SessionId) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM operator_sessions WHERE id_hash = $1")
        .bind(id.hash())
        .execute(conn)
        .await?;
    Ok(())
}

/// The operator of a live session, which this request keeps alive.
async fn resume(
    conn: &mut PgConnection,
    id: &SessionId,
    now: DateTime<Utc>,
    idle: Duration,
) -> Result<Option<Operator>, sqlx::Error> {
    // One statement; committed without waiting for the disk (a crash may
    // forget that a session was used a moment ago, nothing more).
    let row: Option<(i64, String, Option<String>, String)> = sqlx::query_as(
        "WITH async AS (SELECT set_config('synchronous_commit', 'off', true)),
         live AS (
            UPDATE operator_sessions s SET last_seen_at = $2 FROM async
             WHERE s.id_hash = $1 AND s.expires_at > $2 AND s.last_seen_at > $2 - $3::interval
            RETURNING s.operator_id)
         SELECT o.id, o.email, o.name, o.role FROM live JOIN operators o ON o.id = live.operator_id
          WHERE o.disabled_at IS NULL",
    )
    .bind(id.hash())
    .bind(now)
    .bind(format!("{} seconds", idle.num_seconds()))
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|(id, email, name, role)| {
        Role::parse(&role).map(|role| Operator {
            id,
            email,
            name,
            role,
        })
    }))
}

/// The logged-in operator of a dashboard request, with the session they
/// are in. A request without a live session is sent to the login page,
/// to come back here after.
pub struct Signed {
    pub operator: Operator,
    pub session: SessionId,
}

/// Why a request has no operator.
pub enum NotSigned {
    /// To the login page, then back to this path.
    Login {
        next: String,
    },
    Failed(WebError),
}

impl IntoResponse for NotSigned {
    fn into_response(self) -> Response {
        match self {
            NotSigned::Login { next } => {
                let query = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", &next)
                    .finish();
                Redirect::to(&format!("/login?{query}")).into_response()
            }
            NotSigned::Failed(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = NotSigned;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NotSigned> {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let Some(session) = SessionId::from_parts(parts) else {
            return Err(NotSigned::Login { next });
        };
        let mut conn = state
            .pool
            .acquire()
            .await
            .map_err(|e| NotSigned::Failed(e.into()))?;
        let idle = Duration::minutes(i64::from(state.settings.session_idle_minutes));
        match resume(&mut conn, &session, state.clock.now(), idle).await {
            Ok(Some(operator)) => Ok(Signed { operator, session }),
            Ok(None) => Err(NotSigned::Login { next }),
            Err(e) => Err(NotSigned::Failed(e.into())),
        }
    }
}

/// A `?next=` that may be followed after login: a path of the dashboard
/// itself, never another site (`//host`, `/\host`, a scheme) nor another
/// surface.
pub fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.starts_with("/\\")
                && !n.contains("://")
                && !n.chars().any(|c| c.is_control())
                && !n.starts_with("/a/")
                && !n.starts_with("/api/")
                && !n.starts_with("/login")
                && !n.starts_with("/logout") =>
        {
            n
        }
        _ => "/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_only_ever_leads_inside_the_dashboard() {
        assert_eq!(
            safe_next(Some("/campaigns/3?tab=progress")),
            "/campaigns/3?tab=progress"
        );
        for bad in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example/",
            "evil.example",
            "/a/0123",
            "/api/v1/tokens",
            "/login?next=//x",
            "/ok\r\nSet-Cookie: x=1",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_database_never_holds_the_id() {
        let id = SessionId::generate();
        assert_eq!(id.0.len(), 64);
        assert_ne!(hex::encode(id.hash()), id.0);
        assert!(!id.csrf_scope().contains(&id.0));
    }
}
