//! The page wrapper: what every page's layout needs (its language, title,
//! the stylesheet's versioned address) and rendering a template into a
//! response without ever unwrapping — a template that fails to render is
//! an error page, logged.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use super::error::WebError;

/// What `templates/web/base.html` reads.
pub struct Layout {
    /// The page's `lang` attribute.
    pub lang: &'static str,
    pub title: String,
    /// The stylesheet, by an address that changes with its content.
    pub css: &'static str,
    /// The page's referrer policy, repeated in a `<meta>` (the surface's
    /// header says the same).
    pub referrer: &'static str,
}

impl Layout {
    pub fn new(lang: &'static str, title: impl Into<String>) -> Self {
        Self {
            lang,
            title: title.into(),
            css: super::assets::url("varsel.css"),
            referrer: "no-referrer",
        }
    }

    /// A dashboard page's: `same-origin`, so that its forms send their
    /// `Origin` (see `web::csrf::same_origin`).
    pub fn dashboard(title: impl Into<String>) -> Self {
        Self {
            referrer: "same-origin",
            ..Self::new("en", title)
        }
    }
}

/// Renders a page.
pub fn render(template: &impl Template) -> Result<Response, WebError> {
    template
        .render()
        .map(|html| Html(html).into_response())
        .map_err(|e| WebError::Internal(anyhow::anyhow!("rendering a page: {e}")))
}
