//! Small HTTP-edge helpers shared by the resource modules: a JSON body
//! extractor whose rejections are problem documents naming what was wrong,
//! and a query extractor likewise, pagination and PATCH helpers.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// `Json<T>` with errors as `application/problem+json`.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // serde_path_to_error gives "field: reason"; keep both parts.
            let text = e.body_text();
            let detail = text
                .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                .unwrap_or(&text)
                .to_owned();
            if let Some(field) = detail
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, _)| field)
            {
                return ApiError::invalid(field, "is required");
            }
            match detail.split_once(": ") {
                Some((path, reason)) if !path.contains(' ') => ApiError::invalid(path, reason),
                _ => ApiError::BadRequest(detail),
            }
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::BadRequest(format!(
            "request body is not valid JSON: {}",
            e.body_text()
                .trim_start_matches("Failed to parse the request body as JSON: ")
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
            "send the body as JSON with Content-Type: application/json".to_owned(),
        ),
        JsonRejection::BytesRejection(e) => {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(e.body_text())
            } else {
                ApiError::BadRequest(format!("cannot read the request body: {}", e.body_text()))
            }
        }
        other => ApiError::BadRequest(other.body_text()),
    }
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
