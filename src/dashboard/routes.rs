//! The dashboard's router and its own pages: logging in and out, the
//! overview, the operators list (admins only); every other page module is
//! merged here. Every form carries a CSRF token bound to the session (or,
//! at login, to the browser's CSRF cookie) and must come from this site's
//! own origin.
//!
//! Also what every page module shares: [`Act`], the extractor of a form
//! an operator may act on; [`Chrome`] for the layout; the lists' keyset
//! paging, id filters and sortable headers ([`Sorts`]); Oslo times.

use std::marker::PhantomData;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::operators::{self, Lockout, Login, Role};
use super::overview::{self, Overview};
use super::sessions::{self, Signed, safe_next};
use super::stats;
use crate::advisory::access::ClientAddr;
use crate::app::AppState;
use crate::notifications::texts::MailLanguage;
use crate::web::csrf::{self, CsrfCookie};
use crate::web::error::WebError;
use crate::web::form::FormFields;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/", get(show_overview))
        .route("/login", get(show_login).post(login))
        .route("/logout", post(logout))
        .route("/operators", get(list_operators))
        .merge(super::account::pages())
        .merge(super::escalations::pages())
        .merge(super::answers::pages())
        .merge(super::audit::pages())
        .merge(super::organisations::pages())
        .merge(super::timeline::pages())
        .merge(super::findings::pages())
        .merge(super::campaigns::pages())
        .merge(super::notifications::pages())
        .merge(super::admin::pages())
}

/// The CSRF scope of the login form, which no session has yet.
const LOGIN_SCOPE: &str = "dashboard-login";

/// What every dashboard page's layout needs: who is logged in, and the
/// logout form's token.
pub struct Chrome {
    pub operator: String,
    pub role: &'static str,
    pub csrf: String,
}

impl Chrome {
    pub(super) fn of(state: &AppState, signed: &Signed, csrf: &CsrfCookie) -> Self {
        Chrome {
            operator: signed.operator.display_name().to_owned(),
            role: signed.operator.role.as_str(),
            csrf: csrf.token(&state.settings.link_secret(), &signed.session.csrf_scope()),
        }
    }
}

/// Refuses an operator whose role is below `least`.
pub(super) fn require(signed: &Signed, least: Role) -> Result<(), WebError> {
    if signed.operator.role >= least {
        Ok(())
    } else {
        Err(WebError::Forbidden)
    }
}

/// A role an action needs at least, as a type: [`Act<Analyst>`].
pub(super) trait Least {
    const ROLE: Role;
}

/// Any operator signed in (their own account, logging out).
pub(super) enum Viewer {}
/// Analysts and admins: the registry, findings, campaigns, notifications.
pub(super) enum Analyst {}
/// Admins only: operators, API tokens.
pub(super) enum Admin {}

impl Least for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl Least for Analyst {
    const ROLE: Role = Role::Analyst;
}
impl Least for Admin {
    const ROLE: Role = Role::Admin;
}

/// A form an operator may act on: signed in, with a role of at least
/// `R`, posted from this site's origin with the session's CSRF token
/// ([`may_act`]). Every handler that changes anything takes one as its
/// last argument, so none can forget the checks.
pub(super) struct Act<R> {
    pub signed: Signed,
    pub csrf: CsrfCookie,
    pub form: FormFields,
    pub role: PhantomData<R>,
}

impl<R: Least> FromRequest<AppState> for Act<R> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Ok(csrf) = CsrfCookie::from_request_parts(&mut parts, state).await;
        let headers = parts.headers.clone();
        let form = FormFields::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        may_act(state, &signed, &headers, &csrf, &form, R::ROLE)
            .map_err(IntoResponse::into_response)?;
        Ok(Act {
            signed,
            csrf,
            form,
            role: PhantomData,
        })
    }
}

/// The checks every dashboard action makes first: the operator's role is
/// at least `least`, and the form came from this site's origin with the
/// session's CSRF token.
fn may_act(
    state: &AppState,
    signed: &Signed,
    headers: &HeaderMap,
    csrf: &CsrfCookie,
    form: &FormFields,
    least: Role,
) -> Result<(), WebError> {
    require(signed, least)?;
    csrf::check_form(
        csrf,
        headers,
        &state.settings.link_secret(),
        &signed.session.csrf_scope(),
        form,
        false,
    )
}

/// An id from a list's filter; empty (the form's "any") is none.
pub(super) fn query_id(field: &str, s: Option<&str>) -> Result<Option<i64>, WebError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| WebError::BadRequest(format!("{field}: {s:?} is not an id"))),
    }
}

/// A list's orders as its `sort` parameter names them; the default is
/// the list's own (by id), named by no parameter at all.
pub(super) trait ListOrder: Copy + PartialEq + Default + 'static {
    const ALL: &'static [Self];

    /// The name in the URL, `-` in front when the order runs downwards.
    fn name(self) -> &'static str;

    /// The `sort` parameter's value: empty for the default order.
    fn param(self) -> &'static str {
        if self == Self::default() {
            ""
        } else {
            self.name()
        }
    }
}

impl ListOrder for crate::findings::query::FindingOrder {
    const ALL: &'static [Self] = &Self::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

impl ListOrder for crate::notifications::store::NotificationOrder {
    const ALL: &'static [Self] = &Self::ALL;

    fn name(self) -> &'static str {
        self.as_str()
    }
}

/// A list's `sort` parameter: empty is the default order; one that is
/// none of the list's is refused with their names.
pub(super) fn sort_of<O: ListOrder>(given: &str) -> Result<O, WebError> {
    match given.trim() {
        "" => Ok(O::default()),
        s => O::ALL
            .iter()
            .copied()
            .find(|o| o.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = O::ALL.iter().map(|o| o.name()).collect();
                WebError::BadRequest(format!("sort: {given:?} is none of {}", names.join(", ")))
            }),
    }
}

/// A list's address: `path` with those of `pairs` that say something
/// (trimmed, not empty), so that a shared view carries its filters, its
/// order and its page, and nothing else.
pub(super) fn list_address(path: &str, pairs: &[(&str, &str)]) -> String {
    let mut url = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        let value = value.trim();
        if !value.is_empty() {
            url.append_pair(name, value);
        }
    }
    let query = url.finish();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// The orders a list's headers offer: each order's name (a `-` in front
/// when it runs downwards), the list's address in it (filters kept, from
/// the first page), and whether it is the order shown.
pub(super) struct Sorts(Vec<(&'static str, String, bool)>);

impl Sorts {
    /// Every order of the list, `shown` marked; `address` makes the list's
    /// first page in an order.
    pub fn of<O: ListOrder>(shown: O, address: impl Fn(O) -> String) -> Self {
        Sorts(
            O::ALL
                .iter()
                .map(|&o| (o.name(), address(o), o == shown))
                .collect(),
        )
    }

    /// The address of the list in `order`.
    pub fn link(&self, order: &str) -> &str {
        self.0
            .iter()
            .find(|(name, _, _)| *name == order)
            .map_or("", |(_, address, _)| address.as_str())
    }

    /// `aria-sort` of the column sorted by `order`.
    pub fn aria(&self, order: &str) -> &'static str {
        match self.0.iter().find(|(name, _, _)| *name == order) {
            Some((name, _, true)) if name.starts_with('-') => "descending",
            Some((_, _, true)) => "ascending",
            _ => "none",
        }
    }
}

/// Keyset paging: `rows` were read with one more than a `page`; keeps one
/// page and returns the key the next page starts after, if there is one.
pub(super) fn keyset_page<T>(
    rows: &mut Vec<T>,
    page: usize,
    key: impl Fn(&T) -> i64,
) -> Option<i64> {
    let next = (rows.len() > page).then(|| key(&rows[page - 1]));
    rows.truncate(page);
    next
}

/// A page with the CSRF cookie set when the browser had none.
pub(super) fn with_csrf_cookie(
    state: &AppState,
    csrf: &CsrfCookie,
    response: Response,
) -> Response {
    csrf.attach(state.settings.secure_cookies(), response)
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage<'a> {
    layout: Layout,
    csrf: String,
    next: &'a str,
    email: &'a str,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn show_login(
    State(state): State<AppState>,
    Query(q): Query<LoginQuery>,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    let page = LoginPage {
        layout: Layout::dashboard("Log in · Varsel"),
        csrf: csrf.token(&state.settings.link_secret(), LOGIN_SCOPE),
        next: safe_next(q.next.as_deref()),
        email: "",
        error: None,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

async fn login(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    csrf: CsrfCookie,
    form: FormFields,
) -> Result<Response, WebError> {
    state
        .login_rate_limiter
        .check_client(client)
        .map_err(|retry_after_secs| WebError::RateLimited { retry_after_secs })?;
    let secret = state.settings.link_secret();
    csrf::check_form(&csrf, &headers, &secret, LOGIN_SCOPE, &form, false)?;
    let email = form.get("email").unwrap_or("").trim();
    let password = form.get("password").unwrap_or("");
    let code = form.get("code").unwrap_or("");
    let next = safe_next(form.get("next"));
    let now = state.clock.now();
    let lockout = Lockout {
        max_failures: state.settings.login_max_failures,
        lock_for: Duration::minutes(i64::from(state.settings.login_lock_minutes)),
    };
    let mut conn = state.pool.acquire().await?;
    let refused = |error: String| -> Result<Response, WebError> {
        let page = LoginPage {
            layout: Layout::dashboard("Log in · Varsel"),
            csrf: csrf.token(&secret, LOGIN_SCOPE),
            next,
            email,
            error: Some(error),
        };
        Ok((StatusCode::UNAUTHORIZED, page::render(&page)?).into_response())
    };
    match operators::check_login(&mut conn, &secret, email, password, code, &lockout, now).await? {
        Login::Refused => {
            refused("Wrong e-mail address, password or authentication code.".to_owned())
        }
        Login::Locked { until } => refused(format!(
            "Too many wrong passwords: this account is locked until {}. Try again then, or ask an admin.",
            oslo_time(until)
        )),
        Login::Accepted(operator) => {
            let max_age = Duration::hours(i64::from(state.settings.session_max_hours));
            // A new session at every login: an id the browser brought is
            // never adopted.
            let session = sessions::start(&mut conn, operator.id, now, max_age).await?;
            let mut response = Redirect::to(next).into_response();
            if let Some(cookie) = session.cookie(state.settings.secure_cookies()) {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
    }
}

pub(super) fn oslo_time(at: DateTime<Utc>) -> String {
    MailLanguage::En.datetime(at)
}

async fn logout(
    State(state): State<AppState>,
    Act { signed, .. }: Act<Viewer>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    sessions::end(&mut conn, &signed.session).await?;
    let mut response = Redirect::to("/login").into_response();
    if let Some(cookie) = sessions::clearing_cookie(state.settings.secure_cookies()) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    layout: Layout,
    chrome: Chrome,
    overview: Overview,
    charts: stats::Charts,
    /// The notification funnel, from the live counts.
    funnel: stats::Bars,
    refreshed: String,
}

async fn show_overview(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let overview = overview::read(&mut conn).await?;
    let charts = stats::read(&mut conn).await?;
    let page = OverviewPage {
        layout: Layout::dashboard("Overview · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        funnel: overview.funnel.bars(),
        refreshed: charts.refreshed_at.map(oslo_time).unwrap_or_default(),
        charts,
        overview,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

#[derive(Template)]
#[template(path = "dashboard/operators.html")]
struct OperatorsPage {
    layout: Layout,
    chrome: Chrome,
    operators: Vec<OperatorLine>,
}

#[derive(sqlx::FromRow)]
struct OperatorLine {
    id: i64,
    email: String,
    name: Option<String>,
    role: String,
    last_login_at: Option<DateTime<Utc>>,
    disabled_at: Option<DateTime<Utc>>,
}

impl OperatorLine {
    fn last_login(&self) -> String {
        self.last_login_at.map(oslo_time).unwrap_or_default()
    }
}

async fn list_operators(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    require(&signed, Role::Admin)?;
    let mut conn = state.pool.acquire().await?;
    let operators = sqlx::query_as(
        "SELECT id, email, name, role, last_login_at, disabled_at FROM operators ORDER BY email LIMIT 1000",
    )
    .fetch_all(&mut *conn)
    .await?;
    let page = OperatorsPage {
        layout: Layout::dashboard("Operators · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        operators,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}
