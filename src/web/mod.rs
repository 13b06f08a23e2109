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
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::AppState;

/// A form is a few kilobytes; this is plenty.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Pages load this origin's stylesheet and nothing else.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                        form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router() -> Router<AppState> {
    let pages = Router::new().merge(crate::advisory::routes::pages()).layer(
        SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ),
    );
    Router::new()
        .merge(pages)
        .merge(assets::routes())
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(error::error_pages))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-robots-tag"),
            HeaderValue::from_static("noindex, nofollow"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("permissions-policy"),
            HeaderValue::from_static(
                "camera=(), microphone=(), geolocation=(), interest-cohort=()",
            ),
        ))
}
