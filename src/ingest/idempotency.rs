//! `Idempotency-Key` on POST: the first successful answer to a key is stored
//! in the same transaction as the work it describes; the same key with the
//! same request gets that answer again and stores nothing twice; with a
//! different request it is refused (422). Keys are per API client and kept
//! for [`crate::jobs::housekeeping::IDEMPOTENCY_KEY_TTL_HOURS`].

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";

/// The key of a request, with what identifies the request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub client_id: i64,
    pub key: String,
    pub method: String,
    pub path: String,
}

impl IdempotencyKey {
    /// `None` when the request carries no key.
    pub fn from_headers(
        headers: &HeaderMap,
        client_id: i64,
        method: &str,
        path: &str,
    ) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(HEADER) else {
            return Ok(None);
        };
        let key = value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
            .ok_or_else(|| {
                ApiError::invalid(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })?;
        Ok(Some(Self {
            client_id,
            key: key.to_owned(),
            method: method.to_owned(),
            path: path.to_owned(),
        }))
    }

    /// Hash of what makes two requests "the same": method, path with query,
    /// and body.
    pub fn request_hasher(&self) -> Sha256 {
        let mut h = Sha256::new();
        h.update(self.method.as_bytes());
        h.update([0]);
        h.update(self.path.as_bytes());
        h.update([0]);
        h
    }
}

/// A stored answer.
pub struct Stored {
    request_hash: Vec<u8>,
    status: u16,
    body: Vec<u8>,
    content_type: String,
}

impl Stored {
    /// The stored answer if `request_hash` matches, else the mismatch error.
    pub fn replay(self, request_hash: &[u8]) -> Result<Response, ApiError> {
        if self.request_hash != request_hash {
            return Err(ApiError::IdempotencyMismatch);
        }
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        if let Ok(ct) = HeaderValue::from_str(&self.content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
        Ok(response)
    }
}

pub async fn find(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
) -> Result<Option<Stored>, sqlx::Error> {
    type Row = (Vec<u8>, i16, Vec<u8>, String, String, String);
    let row: Option<Row> = sqlx::query_as(
        "SELECT request_hash, status, response, content_type, method, path
           FROM idempotency_keys WHERE client_id = $1 AND key = $2",
    )
    .bind(key.client_id)
    .bind(&key.key)
    .fetch_optional(conn)
    .await?;
    Ok(
        row.map(|(request_hash, status, body, content_type, method, path)| {
            // The same key on another endpoint is another request.
            let request_hash = if method == key.method && path == key.path {
                request_hash
            } else {
                Vec::new()
            };
            Stored {
                request_hash,
                status: status as u16,
                body,
                content_type,
            }
        }),
    )
}

/// Stores the answer. `false` when another request stored one for the key
/// first (the caller rolls back and replays that one).
pub async fn save(
    conn: &mut PgConnection,
    key: &IdempotencyKey,
    request_hash: &[u8],
    status: StatusCode,
    body: &[u8],
    content_type: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (client_id, key, method, path, request_hash, status, response, content_type)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(key.client_id)
    .bind(&key.key)
    .bind(&key.method)
    .bind(&key.path)
    .bind(request_hash)
    .bind(status.as_u16() as i16)
    .bind(body)
    .bind(content_type)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// A JSON response, with the bytes kept for [`save`].
pub struct JsonAnswer {
    pub status: StatusCode,
    pub body: Vec<u8>,
}

impl JsonAnswer {
    pub fn new(status: StatusCode, value: &impl serde::Serialize) -> Result<Self, ApiError> {
        Ok(Self {
            status,
            body: serde_json::to_vec(value).map_err(anyhow::Error::from)?,
        })
    }

    pub fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}
