//! The HTML edge, built once for every page surface (the organisations'
//! advisory pages and the analysts' dashboard), beside the API's:
//!
//! - [`router`] merges the surfaces' page routes and the static assets
//!   under the headers pages need: a strict CSP (nothing but this origin's
//!   own stylesheet; no scripts, no frames, forms only to itself),
//!   `Referrer-Policy: no-referrer` (an advisory link must never leak in a
//!   Referer; the dashboard's is `same-origin`), `X-Robots-Tag: noindex`,
//!   no caching of pages;
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

/// The headers every page (and page error) carries. Each surface sets its
/// own referrer policy: `no-referrer` where the address itself is a
/// credential (the advisory pages, and by default), `same-origin` on the
/// dashboard, whose form posts then carry a real `Origin` to check (with
/// `no-referrer` a browser sends `Origin: null`).
const PAGE_HEADERS: [(HeaderName, &str); 3] = [
    (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
    (HeaderName::from_static("x-robots-tag"), "noindex, nofollow"),
    (
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=()",
    ),
];

pub fn router() -> Router<AppState> {
    let referrer = |policy: &'static str| {
        SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static(policy),
        )
    };
    let pages = Router::new()
        .merge(crate::advisory::routes::pages().layer(referrer("no-referrer")))
        .merge(crate::dashboard::routes::pages().layer(referrer("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    let mut router = Router::new()
        .merge(pages)
        .merge(assets::routes())
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(error::error_pages))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ));
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
    let referrer = (header::REFERRER_POLICY, "no-referrer");
    for (name, value) in PAGE_HEADERS.into_iter().chain([referrer]) {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_static(value));
    }
    response
}
