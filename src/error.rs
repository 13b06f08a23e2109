//! The one error type at the HTTP edge. Client errors (4xx) say exactly what
//! was wrong as RFC 9457 `application/problem+json` with a stable `type`;
//! server errors (5xx) say nothing internal and are logged once.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::DomainError;
use crate::ingest::observation::LineError;

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// A field of the request body or query is invalid.
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("this token lacks the `{0}` scope")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(String),
    /// The request contradicts what is stored; `field` is the input at
    /// fault where one is.
    #[error("{detail}")]
    Conflict {
        field: Option<String>,
        detail: String,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The same `Idempotency-Key` came with a different request.
    #[error("Idempotency-Key was already used for a different request")]
    IdempotencyMismatch,
    /// A bulk input with rejected lines, refused as a whole (`atomic=true`,
    /// or every line was rejected).
    #[error("{rejected} line(s) rejected; nothing was stored")]
    Rejected {
        rejected: u64,
        errors: Vec<LineError>,
    },
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The database chose this request as the victim of a deadlock with a
    /// concurrent one (or a serialization failure): nothing was stored and
    /// a retry will succeed.
    #[error("this request collided with a concurrent one and was rolled back; retry it")]
    Contention,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    // The same constructors as the domain's, so the two never disagree.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        DomainError::invalid(field, detail).into()
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        DomainError::not_found(what).into()
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        DomainError::conflict(detail).into()
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Invalid { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "A field is invalid",
            ),
            Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Conflict { .. } => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too many requests",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            IdempotencyMismatch => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "Idempotency-Key reused",
            ),
            Rejected { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected-lines",
                "Input has rejected lines",
            ),
            Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Contention => (
                StatusCode::SERVICE_UNAVAILABLE,
                "contention",
                "Concurrent request conflict",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal server error",
            ),
        }
    }
}

/// The RFC 9457 body.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `urn:varsel:problem:invalid-field`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The field at fault, for `invalid-field` (and a `conflict` a field
    /// caused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Per-line errors of a bulk input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<LineError>>,
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl ApiError {
    /// For layers that need a `Response` without the `IntoResponse` import.
    pub fn into_response_owned(self) -> Response {
        self.into_response()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind, title) = self.parts();
        let detail = match &self {
            ApiError::Internal(e) => {
                // Logged once here, inside the request's span (which carries
                // the request id); the client learns nothing internal.
                tracing::error!(error = ?e, "request failed");
                "The server failed to handle this request; it has been logged.".to_owned()
            }
            ApiError::Unavailable(reason) => {
                tracing::warn!(%reason, "service unavailable");
                "The service is temporarily unavailable; try again shortly.".to_owned()
            }
            other => other.to_string(),
        };
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Contention => Some(1),
            _ => None,
        };
        let (field, errors) = match self {
            ApiError::Invalid { field, .. } => (Some(field), None),
            ApiError::Conflict { field, .. } => (field, None),
            ApiError::Rejected { errors, .. } => (None, Some(errors)),
            _ => (None, None),
        };
        let body = Problem {
            kind: format!("urn:varsel:problem:{kind}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            field,
            errors,
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound(what) => ApiError::NotFound(what),
            DomainError::Invalid { field, detail } => ApiError::Invalid { field, detail },
            DomainError::Conflict { field, detail } => ApiError::Conflict { field, detail },
            DomainError::Database(e) => database_error(e),
            DomainError::Internal(e) => ApiError::Internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        // Named constraints become conflicts naming the field at fault.
        DomainError::from(e).into()
    }
}

fn database_error(e: sqlx::Error) -> ApiError {
    // Every connection busy for the whole acquire timeout, or the database
    // unreachable: a retry later may well succeed.
    if matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) {
        return ApiError::Unavailable(format!("database: {e}"));
    }
    if let Some(db) = e.as_database_error() {
        // deadlock_detected, serialization_failure: the transaction is
        // gone and a retry succeeds.
        if matches!(db.code().as_deref(), Some("40P01") | Some("40001")) {
            tracing::warn!(error = %db, "transaction rolled back by contention");
            return ApiError::Contention;
        }
    }
    ApiError::Internal(e.into())
}
