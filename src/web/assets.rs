//! The pages' own static assets, vendored under `static/` and built into
//! the binary (nothing is loaded from elsewhere, and the binary needs no
//! folder beside it). Each is served at `/static/{name}?v={hash}`: the
//! address changes with the content, so the answer may be cached for a
//! year.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::error::WebError;
use crate::app::AppState;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const FILES: &[Asset] = &[Asset {
    name: "varsel.css",
    content_type: "text/css; charset=utf-8",
    bytes: include_bytes!("../../static/varsel.css"),
}];

/// Each asset with its versioned address and its ETag.
struct Served {
    asset: &'static Asset,
    url: &'static str,
    etag: HeaderValue,
}

static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|asset| {
            let hash = hex::encode(&Sha256::digest(asset.bytes)[..8]);
            Served {
                asset,
                url: Box::leak(format!("/static/{}?v={hash}", asset.name).into_boxed_str()),
                etag: HeaderValue::from_str(&format!("\"{hash}\""))
                    .unwrap_or_else(|_| unreachable!("hex digits are a valid header value")),
            }
        })
        .collect()
});

/// The address of asset `name` (a name not in [`FILES`] gets an address
/// that answers 404, and a test catches it).
pub fn url(name: &str) -> &'static str {
    SERVED
        .iter()
        .find(|s| s.asset.name == name)
        .map_or("/static/missing", |s| s.url)
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/static/{name}", get(serve))
}

async fn serve(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, WebError> {
    let served = SERVED
        .iter()
        .find(|s| s.asset.name == name)
        .ok_or(WebError::NotFound)?;
    let cache = [
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        ),
        (header::ETAG, served.etag.clone()),
    ];
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v == served.etag)
    {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        cache,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(served.asset.content_type),
        )],
        served.asset.bytes,
    )
        .into_response())
}
