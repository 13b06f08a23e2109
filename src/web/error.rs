//! HTML error pages. A handler fails with a [`WebError`]; the pages'
//! middleware ([`error_pages`]) turns it, and any other error response
//! of the page surface (a rejection, a 405, a body over the limit), into a
//! page in both languages that shows the status and the request id and
//! nothing internal. 5xx causes are logged once, in the request's span.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use askama::Template;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Also every unknown, expired or revoked advisory link: one page for
    /// all, so that it reveals nothing.
    #[error("not found")]
    NotFound,
    /// A form without a valid CSRF token (its page is too old, or cookies
    /// are off).
    #[error("the form's security token is missing or wrong")]
    Csrf,
    /// The operator's role does not allow this.
    #[error("not allowed")]
    Forbidden,
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("{0}")]
    BadRequest(String),
    /// What the request asks cannot be done in the state things are in
    /// (a delivery already on its way, a link revoked).
    #[error("{0}")]
    Conflict(String),
    #[error("send the form as application/x-www-form-urlencoded")]
    UnsupportedMediaType,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sqlx::Error> for WebError {
    fn from(e: sqlx::Error) -> Self {
        WebError::Internal(e.into())
    }
}

impl From<crate::domain::DomainError> for WebError {
    fn from(e: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError;
        match e {
            DomainError::NotFound(_) => WebError::NotFound,
            DomainError::Invalid { field, detail } => {
                WebError::BadRequest(format!("{field}: {detail}"))
            }
            DomainError::Conflict { detail, .. } => WebError::Conflict(detail),
            other => WebError::Internal(other.into()),
        }
    }
}

/// What the middleware renders: set on the response by
/// [`WebError::into_response`].
#[derive(Debug, Clone)]
struct ErrorPage {
    /// Shown for 4xx only.
    detail: Option<String>,
    /// A form refused for its CSRF token (a 403 of its own words).
    csrf: bool,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = match &self {
            WebError::NotFound => StatusCode::NOT_FOUND,
            WebError::Csrf | WebError::Forbidden => StatusCode::FORBIDDEN,
            WebError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebError::Internal(e) => {
                tracing::error!(error = ?e, "page request failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let detail = match &self {
            WebError::BadRequest(d) | WebError::Conflict(d) => Some(d.clone()),
            WebError::UnsupportedMediaType => Some(self.to_string()),
            _ => None,
        };
        let csrf = matches!(self, WebError::Csrf);
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorPage { detail, csrf });
        if let WebError::RateLimited { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

#[derive(Template)]
#[template(path = "web/error.html")]
struct ErrorTemplate<'a> {
    layout: super::page::Layout,
    status: u16,
    nb: (&'static str, &'static str),
    en: (&'static str, &'static str),
    detail: Option<&'a str>,
    request_id: &'a str,
}

/// Headings and explanations, in Bokmål and English.
fn words(
    status: StatusCode,
    csrf: bool,
) -> ((&'static str, &'static str), (&'static str, &'static str)) {
    match status.as_u16() {
        403 if !csrf => (
            ("Ingen tilgang", "Rollen din gir ikke lov til dette."),
            ("Not allowed", "Your role does not allow this."),
        ),
        404 => (
            (
                "Siden finnes ikke",
                "Lenken er ukjent eller ikke lenger gyldig.",
            ),
            ("Page not found", "The link is unknown or no longer valid."),
        ),
        403 => (
            (
                "Skjemaet kunne ikke sendes",
                "Skjemaet er for gammelt, eller nettleseren godtar ikke informasjonskapsler. Last inn siden på nytt og send igjen.",
            ),
            (
                "The form could not be sent",
                "The form is too old, or your browser does not accept cookies. Reload the page and send it again.",
            ),
        ),
        429 => (
            ("For mange forespørsler", "Vent litt og prøv igjen."),
            ("Too many requests", "Wait a moment and try again."),
        ),
        400..=499 => (
            (
                "Forespørselen kunne ikke behandles",
                "Kontroller det du sendte.",
            ),
            ("The request could not be handled", "Check what you sent."),
        ),
        _ => (
            (
                "Noe gikk galt hos oss",
                "Feilen er logget. Prøv igjen om litt; oppgi forespørsels-ID-en hvis du kontakter oss.",
            ),
            (
                "Something went wrong on our side",
                "The error has been logged. Try again shortly; quote the request id if you contact us.",
            ),
        ),
    }
}

/// The error page for `status`, with the request id from `headers`.
pub fn page(status: StatusCode, detail: Option<&str>, headers: &HeaderMap) -> Response {
    page_of(status, detail, true, headers)
}

fn page_of(status: StatusCode, detail: Option<&str>, csrf: bool, headers: &HeaderMap) -> Response {
    let request_id = headers
        .get(crate::app::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let (nb, en) = words(status, csrf);
    let template = ErrorTemplate {
        layout: super::page::Layout::new("nb", format!("{} · {}", nb.0, en.0)),
        status: status.as_u16(),
        nb,
        en,
        detail: detail.filter(|_| status.is_client_error()),
        request_id,
    };
    let body = match template.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering an error page");
            (
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                format!("{status}\nrequest id: {request_id}\n"),
            )
                .into_response()
        }
    };
    (status, body).into_response()
}

/// Middleware of the page surface: every error response becomes an error
/// page (what a handler rendered itself, an HTML form with its field
/// errors, is left alone).
pub async fn error_pages(req: Request, next: Next) -> Response {
    let headers = req.headers().clone();
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let error_page = response.extensions().get::<ErrorPage>().cloned();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if error_page.is_none() && is_html {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    let csrf = error_page.as_ref().is_none_or(|p| p.csrf);
    let detail = error_page.and_then(|p| p.detail);
    let mut page = page_of(status, detail.as_deref(), csrf, &headers);
    if let Some(v) = retry_after {
        page.headers_mut().insert(header::RETRY_AFTER, v);
    }
    page
}
