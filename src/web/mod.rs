//! The HTML edge, built once for every page surface (the organisations'
//! advisory pages now, the analysts' dashboard next), beside the API's:
//!
//! - [`router`] merges the surfaces' page routes and the static assets
//!   under the headers pages need: a strict CSP (nothing but this origin's
//!   own stylesheet; no scripts, no frames, forms only to itself),
//!   `Referrer-Policy: no-referrer` (an advisory link must never leak in a
//!   Referer), `X-Robots-Tag: noindex`, no caching of pages;
//! - [`error`]: HTML error pages with the request id and nothing internal;
//! - [`page`]: the layout every page extends, rendered without unwrapping;
//! - [`csrf`]: tokens for every form; [`form`]: form bodies and the field
//!   errors a form is shown again with;
//! - [`assets`]: vendored static files with long-lived cache headers.

pub mod assets;
pub mod csrf;
pub mod error;
pub mod form;
pub mod page;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::Response;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;

/// A form is a few kilobytes; this is plenty.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Pages load this origin's stylesheet and nothing else.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                        form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The headers every page (and page error) carries.
const PAGE_HEADERS: [(HeaderName, &str); 4] = [
    (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
    (header::REFERRER_POLICY, "no-referrer"),
    (HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
    (
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    ),
];

pub fn router() -> Router<AppState> {
    let pages = Router::new().merge(crate::advisory::routes::pages()).layer(
        SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ),
    );
    let mut router = Router::new()
        .merge(pages)
        .merge(assets::routes())
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(error::error_pages));
    for (name, value) in PAGE_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}

/// The page for an address no surface has (the service's fallback for
/// everything outside the API), with the pages' headers.
pub fn not_found(headers: &HeaderMap) -> Response {
    let mut response = error::page(StatusCode::NOT_FOUND, None, headers);
    for (name, value) in PAGE_HEADERS {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}
