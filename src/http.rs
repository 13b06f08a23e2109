//! Small HTTP-edge helpers shared by the resource modules: a JSON body
//! extractor whose rejections are problem documents naming what was wrong,
//! and a query extractor likewise, pagination and PATCH helpers.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` with errors as `application/problem+json`: a body that is not
/// JSON is a 400, JSON of the wrong shape a 422 naming the field (see
/// [`parse_json`]); a body that is not declared JSON is a 415.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == mime::APPLICATION
                    && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(e.body_text())
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", e.body_text()))
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parses a JSON request body. One rule for every JSON body: what is not
/// JSON at all (a syntax error, a cut-off document) is a 400; JSON that
/// does not fit (a missing or mistyped field, a value out of range) is a 422
/// naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            return ApiError::BadRequest(format!("request body is not valid JSON: {inner}"));
        }
        let reason = inner.to_string();
        // serde says "missing field `ip` at line 1 column 2": name the field.
        if let Some((missing, _)) = reason
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
        {
            let field = if path == "." {
                missing.to_owned()
            } else {
                format!("{path}.{missing}")
            };
            return ApiError::invalid(field, "is required");
        }
        let reason = reason
            .rsplit_once(" at line ")
            .map_or(reason.as_str(), |(r, _)| r)
            .to_owned();
        ApiError::invalid(if path == "." { "body".to_owned() } else { path }, reason)
    })?;
    // Anything after the document is a syntax error too.
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    Ok(parsed)
}

/// `Query<T>` with errors as problem documents: a parameter that does not
/// parse as its type (an unknown enum value, a word where a number goes) is
/// a 422 naming it.
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer)
            .map(QueryParams)
            .map_err(|e| {
                let field = e.path().to_string();
                let reason = e.into_inner().to_string();
                match reason
                    .strip_prefix("missing field `")
                    .and_then(|rest| rest.split_once('`'))
                {
                    Some((missing, _)) => ApiError::invalid(missing, "is required"),
                    None if field == "." => ApiError::invalid("query", reason),
                    None => ApiError::invalid(field, reason),
                }
            })
    }
}

/// For PATCH bodies: tells a field that is absent (`None`) from one set to
/// null (`Some(None)`). Use with `#[serde(default, deserialize_with = "…")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A page of a cursor-paginated list.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `items` was fetched with `limit + 1` rows to learn whether more exist.
    pub fn from_rows(mut items: Vec<T>, limit: usize, cursor_of: impl Fn(&T) -> String) -> Self {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor_of)
        } else {
            None
        };
        Self { items, next_cursor }
    }
}

/// `limit` query parameter: default 100, at most 10 000.
pub fn page_limit(limit: Option<u32>) -> Result<usize, crate::error::ApiError> {
    match limit {
        None => Ok(100),
        Some(0) => Err(crate::error::ApiError::invalid(
            "limit",
            "must be at least 1",
        )),
        Some(n) if n > 10_000 => Err(crate::error::ApiError::invalid("limit", "at most 10000")),
        Some(n) => Ok(n as usize),
    }
}

/// An integer cursor (the last id of the previous page).
pub fn id_cursor(cursor: Option<&str>) -> Result<i64, crate::error::ApiError> {
    match cursor {
        None => Ok(0),
        Some(c) => c.parse().map_err(|_| {
            crate::error::ApiError::invalid("cursor", "not a cursor this API gave out")
        }),
    }
}

/// `Path<T>` with errors as problem documents: resources are addressed by
/// numeric id, so a segment that does not parse as one names no resource
/// (404).
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Self(v)),
            Err(e) => Err(ApiError::NotFound(format!(
                "{}: {}",
                parts.uri.path(),
                e.body_text()
            ))),
        }
    }
}
