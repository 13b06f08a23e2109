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
    T: DeserializeOwned + BodyShape,
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
        parse_json(&bytes, T::SHAPE).map(JsonBody)
    }
}

/// What a JSON body is at its top level. Serde reads a struct from an array
/// too (`[null, null]` as a patch); a request body is an object unless the
/// operation takes a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Object,
    Array,
}

/// The top-level shape of a request body type.
pub trait BodyShape {
    const SHAPE: Shape = Shape::Object;
}

impl<T> BodyShape for Vec<T> {
    const SHAPE: Shape = Shape::Array;
}

/// Parses a JSON request body. One rule for every JSON body: what is not
/// JSON at all (a syntax error, a cut-off document) is a 400; JSON that
/// does not fit (a missing or mistyped field, a value out of range) is a 422
/// naming the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], shape: Shape) -> Result<T, ApiError> {
    let (open, name) = match shape {
        Shape::Object => (b'{', "a JSON object"),
        Shape::Array => (b'[', "a JSON array"),
    };
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(&first) if first == open => {}
        // A scalar is a type error and anything else a syntax error, below.
        Some(b'{' | b'[') => {
            return Err(ApiError::invalid("body", format!("must be {name}")));
        }
        _ => {}
    }
    // The fast path reads the type straight from the bytes (a bulk lookup
    // is 100 000 elements); only a body that could hold U+0000, or that
    // does not fit its type as it stands, goes through a `Value` first.
    let may_hold_nul = bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && &w[2..] == b"0000");
    if !may_hold_nul {
        match serde_json::from_slice(bytes) {
            Ok(v) => return Ok(v),
            Err(e) if e.is_syntax() || e.is_eof() || e.is_io() => {
                return Err(ApiError::BadRequest(format!(
                    "request body is not valid JSON: {e}"
                )));
            }
            Err(_) => {}
        }
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))?;
    normalise(&mut value, &mut String::new())?;
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.into_inner().to_string();
        // serde says "missing field `ip`": name the field.
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
        ApiError::invalid(if path == "." { "body".to_owned() } else { path }, reason)
    })
}

/// What JSON allows and the store does not, settled before the body is
/// read as its type: PostgreSQL text cannot hold U+0000, so a string with
/// one is refused naming its field; and `42.0` is the integer 42 (as JSON
/// Schema counts it), not a type error.
fn normalise(value: &mut serde_json::Value, path: &mut String) -> Result<(), ApiError> {
    use serde_json::Value;
    let nul = |path: &str| {
        ApiError::invalid(
            if path.is_empty() { "body" } else { path },
            "must not contain the character U+0000",
        )
    };
    match value {
        Value::String(s) if s.contains('\0') => return Err(nul(path)),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                if f >= i64::MIN as f64 && f < i64::MAX as f64 {
                    *value = Value::from(f as i64);
                } else if f >= 0.0 && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                normalise(item, path)?;
                path.truncate(len);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                if key.contains('\0') {
                    return Err(nul(path));
                }
                normalise(item, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::{Shape, parse_json};
    use crate::error::ApiError;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        asn: Option<u32>,
    }

    fn field(e: ApiError) -> String {
        match e {
            ApiError::Invalid { field, .. } => field,
            other => panic!("not a 422: {other:?}"),
        }
    }

    #[test]
    fn json_bodies_one_rule() {
        let ok: Body = parse_json(br#"{"name": "a", "asn": 64500.0}"#, Shape::Object).unwrap();
        assert_eq!(ok.asn, Some(64500), "an integral float is an integer");
        // Not JSON: 400.
        for bad in [&b"{"[..], b"{\"name\": }", b"nope", b"{\"name\": \"a\"} x"] {
            let e = parse_json::<Body>(bad, Shape::Object).unwrap_err();
            assert!(matches!(e, ApiError::BadRequest(_)), "{e:?}");
        }
        // JSON of the wrong shape: 422 naming the field.
        let e = parse_json::<Body>(b"{}", Shape::Object).unwrap_err();
        assert_eq!(field(e), "name");
        let e = parse_json::<Body>(br#"{"name": 5}"#, Shape::Object).unwrap_err();
        assert_eq!(field(e), "name");
        let e = parse_json::<Body>(br#"{"name": "a", "asn": 1.5}"#, Shape::Object).unwrap_err();
        assert_eq!(field(e), "asn");
        let e = parse_json::<Body>(br#"["a", 1]"#, Shape::Object).unwrap_err();
        assert_eq!(field(e), "body");
        let e = parse_json::<Vec<Body>>(br#"{"name": "a"}"#, Shape::Array).unwrap_err();
        assert_eq!(field(e), "body");
        // PostgreSQL text cannot hold U+0000.
        let e = parse_json::<Body>(br#"{"name": "a\u0000b"}"#, Shape::Object).unwrap_err();
        assert_eq!(field(e), "name");
        let e = parse_json::<Vec<Body>>(br#"[{"name": "a"}, {"name": "\u0000"}]"#, Shape::Array)
            .unwrap_err();
        assert_eq!(field(e), "[1].name");
        // An escaped backslash before "u0000" is no NUL.
        let ok: Body = parse_json(br#"{"name": "a\\u0000"}"#, Shape::Object).unwrap();
        assert_eq!(ok.name, "a\\u0000");
    }
}
