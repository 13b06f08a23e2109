//! `/account`: an operator's own account — for now, turning the TOTP
//! second factor on (a new secret, confirmed by a first code) and off
//! (with a current code). Every role may do this for themselves.

use askama::Template;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use super::routes::{Act, Chrome, Viewer, with_csrf_cookie};
use super::sessions::Signed;
use super::totp::{self, Setup};
use crate::app::AppState;
use crate::domain::DomainError;
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::form::FieldErrors;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/account", get(show))
        .route("/account/totp/begin", post(begin))
        .route("/account/totp/confirm", post(confirm))
        .route("/account/totp/disable", post(disable))
}

#[derive(Template)]
#[template(path = "dashboard/account.html")]
struct AccountPage {
    layout: Layout,
    chrome: Chrome,
    email: String,
    role: &'static str,
    totp_on: bool,
    /// A setup under way: the secret to enter in the app.
    setup: Option<Setup>,
    errors: FieldErrors,
}

async fn render(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    setup: Option<Setup>,
    errors: FieldErrors,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let page = AccountPage {
        layout: Layout::dashboard("Your account · Varsel"),
        chrome: Chrome::of(state, signed, csrf),
        email: signed.operator.email.clone(),
        role: signed.operator.role.as_str(),
        totp_on: totp::enabled(&mut conn, signed.operator.id).await?,
        setup,
        errors,
    };
    Ok(with_csrf_cookie(
        state,
        csrf,
        (status, page::render(&page)?).into_response(),
    ))
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    render(&state, &signed, &csrf, None, FieldErrors::default()).await
}

async fn begin(
    State(state): State<AppState>,
    Act { signed, csrf, .. }: Act<Viewer>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let setup = totp::begin(
        &mut conn,
        &state.settings.link_secret(),
        signed.operator.id,
        &signed.operator.email,
    )
    .await?;
    drop(conn);
    // Shown once, on this response; never in a URL or a log.
    render(&state, &signed, &csrf, Some(setup), FieldErrors::default()).await
}

async fn confirm(
    State(state): State<AppState>,
    Act {
        signed, csrf, form, ..
    }: Act<Viewer>,
) -> Result<Response, WebError> {
    let key = state.settings.link_secret();
    let mut conn = state.pool.acquire().await?;
    let confirmed = totp::confirm(
        &mut conn,
        &key,
        &signed.operator.actor(),
        signed.operator.id,
        form.get("code").unwrap_or(""),
        state.clock.now(),
    )
    .await;
    match confirmed {
        Ok(()) => Ok(Redirect::to("/account").into_response()),
        Err(DomainError::Invalid { detail, .. }) => {
            let setup =
                totp::pending(&mut conn, &key, signed.operator.id, &signed.operator.email).await?;
            drop(conn);
            let mut errors = FieldErrors::default();
            errors.add("code", format!("The code {detail}."));
            render(&state, &signed, &csrf, setup, errors).await
        }
        Err(DomainError::Conflict { .. }) => Ok(Redirect::to("/account").into_response()),
        Err(e) => Err(e.into()),
    }
}

async fn disable(
    State(state): State<AppState>,
    Act {
        signed, csrf, form, ..
    }: Act<Viewer>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let disabled = totp::disable(
        &mut conn,
        &state.settings.link_secret(),
        &signed.operator.actor(),
        signed.operator.id,
        form.get("code").unwrap_or(""),
        state.clock.now(),
    )
    .await;
    drop(conn);
    match disabled {
        Ok(()) => Ok(Redirect::to("/account").into_response()),
        Err(DomainError::Invalid { detail, .. }) => {
            let mut errors = FieldErrors::default();
            errors.add("disable-code", format!("The code {detail}."));
            render(&state, &signed, &csrf, None, errors).await
        }
        Err(e) => Err(e.into()),
    }
}
