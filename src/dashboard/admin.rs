//! Admin pages: the registry imports' and scan runs' history (everyone),
//! API tokens and operators' management (admins only). Each goes through
//! the same domain functions as the REST API and the CLI: imports are read
//! from the audit events [`crate::registry::import::apply`] writes, scan
//! runs with [`crate::ingest::scans`], tokens with [`crate::auth`],
//! operators with [`super::operators`].

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::operators::{self, MIN_PASSWORD_CHARS, Role};
use super::routes::{Act, Admin, Chrome, keyset_page, oslo_time, require, with_csrf_cookie};
use super::sessions::Signed;
use crate::app::AppState;
use crate::auth::{self, ClientInfo, Scope};
use crate::domain::DomainError;
use crate::error::ApiError;
use crate::ingest::scans::{self, ScanRun};
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::form::FieldErrors;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/imports", get(list_imports))
        .route("/imports/{id}", get(show_import))
        .route("/scan-runs", get(list_scan_runs))
        .route("/scan-runs/{id}", get(show_scan_run))
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{id}/revoke", post(revoke_token))
        .route("/operators", post(create_operator))
        .route("/operators/new", get(new_operator))
        .route("/operators/{id}", get(show_operator))
        .route("/operators/{id}/role", post(set_role))
        .route("/operators/{id}/disable", post(disable_operator))
        .route("/operators/{id}/enable", post(enable_operator))
        .route("/operators/{id}/password", post(reset_password))
}

/// Rows per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    /// The last id of the previous page (lists are newest first).
    before: Option<i64>,
}

// ---------------------------------------------------------------- imports

/// The audit action [`crate::registry::import::apply`] records each
/// import under, with its counts.
const IMPORT_ACTION: &str = "registry.import";

#[derive(sqlx::FromRow)]
struct ImportEvent {
    id: i64,
    at: DateTime<Utc>,
    actor: String,
    detail: serde_json::Value,
}

/// One kind's counts of an import.
struct KindCounts {
    kind: &'static str,
    added: i64,
    changed: i64,
    ended: i64,
    unchanged: i64,
}

struct ImportRow {
    id: i64,
    at: String,
    /// `csv` or `ripe`.
    channel: String,
    counts: Vec<KindCounts>,
    rejected: i64,
}

impl ImportRow {
    fn of(e: ImportEvent) -> Self {
        let number =
            |v: &serde_json::Value, name: &str| v.get(name).and_then(|n| n.as_i64()).unwrap_or(0);
        let counts = ["organisations", "contacts", "networks", "asns"]
            .into_iter()
            .map(|kind| {
                let c = e.detail.get(kind).cloned().unwrap_or_default();
                KindCounts {
                    kind,
                    added: number(&c, "added"),
                    changed: number(&c, "changed"),
                    ended: number(&c, "ended"),
                    unchanged: number(&c, "unchanged"),
                }
            })
            .collect();
        ImportRow {
            id: e.id,
            at: oslo_time(e.at),
            channel: e
                .actor
                .strip_prefix("import:")
                .unwrap_or(&e.actor)
                .to_owned(),
            rejected: number(&e.detail, "rejected"),
            counts,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/imports.html")]
struct ImportsPage {
    layout: Layout,
    chrome: Chrome,
    rows: Vec<ImportRow>,
    next: Option<i64>,
}

#[derive(Template)]
#[template(path = "dashboard/imports_detail.html")]
struct ImportPage {
    layout: Layout,
    chrome: Chrome,
    row: ImportRow,
}

async fn list_imports(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let mut events: Vec<ImportEvent> = sqlx::query_as(
        "SELECT id, at, actor, detail FROM audit_events
          WHERE action = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    )
    .bind(IMPORT_ACTION)
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(PAGE as i64 + 1)
    .fetch_all(&mut *conn)
    .await?;
    let next = keyset_page(&mut events, PAGE, |r| r.id);
    let page = ImportsPage {
        layout: Layout::dashboard("Registry imports · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        rows: events.into_iter().map(ImportRow::of).collect(),
        next,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

async fn show_import(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let event: ImportEvent = sqlx::query_as(
        "SELECT id, at, actor, detail FROM audit_events WHERE action = $1 AND id = $2",
    )
    .bind(IMPORT_ACTION)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(WebError::NotFound)?;
    let page = ImportPage {
        layout: Layout::dashboard(format!("Registry import {id} · Varsel")),
        chrome: Chrome::of(&state, &signed, &csrf),
        row: ImportRow::of(event),
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

// -------------------------------------------------------------- scan runs

struct ScanRow {
    run: ScanRun,
    started: String,
    finished: Option<String>,
}

impl ScanRow {
    fn of(run: ScanRun) -> Self {
        ScanRow {
            started: oslo_time(run.started_at),
            finished: run.finished_at.map(oslo_time),
            run,
        }
    }

    fn checks(&self) -> String {
        self.run.checks.join(", ")
    }

    fn scope(&self) -> String {
        self.run
            .scope
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Template)]
#[template(path = "dashboard/scan_runs.html")]
struct ScanRunsPage {
    layout: Layout,
    chrome: Chrome,
    rows: Vec<ScanRow>,
    next: Option<i64>,
}

#[derive(Template)]
#[template(path = "dashboard/scan_run.html")]
struct ScanRunPage {
    layout: Layout,
    chrome: Chrome,
    row: ScanRow,
    /// The API client that ran it, if it still exists.
    client: Option<String>,
    /// What it resolved, and what it kept open, by not seeing them.
    resolved: Vec<scans::RunFinding>,
    kept_open: Vec<scans::RunFinding>,
}

async fn list_scan_runs(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let mut runs: Vec<ScanRun> = sqlx::query_as(&format!(
        "SELECT {} FROM scan_runs WHERE id < $1 ORDER BY id DESC LIMIT $2",
        scans::COLUMNS
    ))
    .bind(q.before.unwrap_or(i64::MAX))
    .bind(PAGE as i64 + 1)
    .fetch_all(&mut *conn)
    .await?;
    let next = keyset_page(&mut runs, PAGE, |r| r.id);
    let page = ScanRunsPage {
        layout: Layout::dashboard("Scan runs · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        rows: runs.into_iter().map(ScanRow::of).collect(),
        next,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

async fn show_scan_run(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let run = match scans::fetch(&mut conn, id, false).await {
        Ok(run) => run,
        Err(ApiError::NotFound(_)) => return Err(WebError::NotFound),
        Err(e) => return Err(WebError::Internal(e.into())),
    };
    let client: Option<String> = match run.client_id {
        Some(client_id) => {
            sqlx::query_scalar("SELECT name FROM api_clients WHERE id = $1")
                .bind(client_id)
                .fetch_optional(&mut *conn)
                .await?
        }
        None => None,
    };
    let detail = scans::detail(&mut conn, run)
        .await
        .map_err(|e| WebError::Internal(e.into()))?;
    let page = ScanRunPage {
        layout: Layout::dashboard(format!("Scan run {id} · Varsel")),
        chrome: Chrome::of(&state, &signed, &csrf),
        row: ScanRow::of(detail.run),
        client,
        resolved: detail.resolved,
        kept_open: detail.kept_open,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

// ----------------------------------------------------------------- tokens

/// Every scope the REST API knows, in the order the form offers them.
const SCOPES: [Scope; 3] = [Scope::Read, Scope::Ingest, Scope::Admin];

struct TokenRow {
    c: ClientInfo,
    scopes: String,
    created: String,
    last_used: String,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/tokens.html")]
struct TokensPage {
    layout: Layout,
    chrome: Chrome,
    rows: Vec<TokenRow>,
    next: Option<i64>,
    /// The new-token form as sent, when it was refused.
    name: String,
    chosen: Vec<&'static str>,
    errors: FieldErrors,
    /// A token just created: shown this once.
    created: Option<(String, String)>,
}

impl TokensPage {
    fn scopes(&self) -> Vec<&'static str> {
        SCOPES.iter().map(|s| s.as_str()).collect()
    }

    fn checked(&self, scope: &str) -> bool {
        self.chosen.contains(&scope)
    }
}

async fn tokens_page(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    before: Option<i64>,
    form: (String, Vec<&'static str>, FieldErrors),
    created: Option<(String, String)>,
) -> Result<Response, WebError> {
    // The REST API's own list; newest first, a page at a time.
    let before = before.unwrap_or(i64::MAX);
    let mut clients: Vec<ClientInfo> = auth::list_clients(&state.pool)
        .await?
        .into_iter()
        .rev()
        .filter(|c| c.id < before)
        .take(PAGE + 1)
        .collect();
    let next = keyset_page(&mut clients, PAGE, |r| r.id);
    let (name, chosen, errors) = form;
    let page = TokensPage {
        layout: Layout::dashboard("API tokens · Varsel"),
        chrome: Chrome::of(state, signed, csrf),
        rows: clients
            .into_iter()
            .map(|c| TokenRow {
                scopes: c
                    .scopes
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                created: oslo_time(c.created_at),
                last_used: c.last_used_at.map(oslo_time).unwrap_or_default(),
                revoked: c.revoked_at.map(oslo_time),
                c,
            })
            .collect(),
        next,
        name,
        chosen,
        errors,
        created,
    };
    let mut response = page::render(&page)?;
    // The page may carry a token: never kept by a cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(with_csrf_cookie(state, csrf, response))
}

async fn list_tokens(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    require(&signed, Role::Admin)?;
    let form = (
        String::new(),
        vec![Scope::Read.as_str()],
        FieldErrors::default(),
    );
    tokens_page(&state, &signed, &csrf, q.before, form, None).await
}

async fn create_token(
    State(state): State<AppState>,
    Act {
        signed, csrf, form, ..
    }: Act<Admin>,
) -> Result<Response, WebError> {
    let name = form.get("name").unwrap_or("").trim().to_owned();
    let mut errors = FieldErrors::default();
    let mut scopes = Vec::new();
    for given in form.all("scope") {
        match SCOPES.iter().find(|s| s.as_str() == given) {
            Some(s) => scopes.push(*s),
            None => errors.add("scope", format!("There is no scope {given:?}.")),
        }
    }
    let chosen: Vec<&'static str> = scopes.iter().map(|s| s.as_str()).collect();
    if errors.is_empty() {
        match auth::create_client(&state.pool, &signed.operator.actor(), &name, &scopes).await {
            Ok((info, token)) => {
                tracing::info!(
                    client_id = info.id,
                    by = signed.operator.id,
                    "API client created"
                );
                let created = Some((info.name, token.expose().to_owned()));
                let blank = (
                    String::new(),
                    vec![Scope::Read.as_str()],
                    FieldErrors::default(),
                );
                let page = tokens_page(&state, &signed, &csrf, None, blank, created).await?;
                return Ok((StatusCode::CREATED, page).into_response());
            }
            Err(DomainError::Invalid { field, detail }) => {
                if field == "scopes" {
                    errors.add("scope", "Choose at least one scope.");
                } else {
                    errors.add("name", format!("The name {detail}."));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let page = tokens_page(&state, &signed, &csrf, None, (name, chosen, errors), None).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Admin>,
) -> Result<Response, WebError> {
    if !auth::revoke_client(&state.pool, id, &signed.operator.actor()).await? {
        return Err(WebError::NotFound);
    }
    tracing::info!(
        client_id = id,
        by = signed.operator.id,
        "API client revoked"
    );
    Ok(Redirect::to("/tokens").into_response())
}

// -------------------------------------------------------------- operators

/// The roles the forms offer, highest first.
const ROLES: [Role; 3] = [Role::Admin, Role::Analyst, Role::Viewer];

#[derive(Template)]
#[template(path = "dashboard/operator_new.html")]
struct NewOperatorPage<'a> {
    layout: Layout,
    chrome: Chrome,
    email: &'a str,
    name: &'a str,
    role: &'a str,
    min_password: usize,
    errors: FieldErrors,
}

impl NewOperatorPage<'_> {
    fn roles(&self) -> Vec<&'static str> {
        ROLES.iter().map(|r| r.as_str()).collect()
    }
}

async fn new_operator(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    require(&signed, Role::Admin)?;
    let page = NewOperatorPage {
        layout: Layout::dashboard("New operator · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        email: "",
        name: "",
        role: Role::Viewer.as_str(),
        min_password: MIN_PASSWORD_CHARS,
        errors: FieldErrors::default(),
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

async fn create_operator(
    State(state): State<AppState>,
    Act {
        signed, csrf, form, ..
    }: Act<Admin>,
) -> Result<Response, WebError> {
    let email = form.get("email").unwrap_or("").trim();
    let name = form.get("name").unwrap_or("").trim();
    let role_given = form.get("role").unwrap_or("");
    let password = form.get("password").unwrap_or("");
    let again = form.get("password_again").unwrap_or("");
    let mut errors = FieldErrors::default();
    let role = Role::parse(role_given);
    if role.is_none() {
        errors.add("role", "Choose a role.");
    }
    if password != again {
        errors.add("password_again", "The two passwords differ.");
    }
    if let (Some(role), true) = (role, errors.is_empty()) {
        let mut conn = state.pool.acquire().await?;
        let name = (!name.is_empty()).then_some(name);
        match operators::create(
            &mut conn,
            &signed.operator.actor(),
            email,
            name,
            role,
            password,
        )
        .await
        {
            Ok(id) => return Ok(Redirect::to(&format!("/operators/{id}")).into_response()),
            Err(DomainError::Invalid { field, detail }) => match field.as_str() {
                "email" => errors.add("email", format!("The e-mail address: {detail}.")),
                "name" => errors.add("name", format!("The name {detail}.")),
                _ => errors.add("password", format!("The password must have {detail}.")),
            },
            Err(DomainError::Conflict { .. }) => errors.add(
                "email",
                "An operator with this e-mail address exists already.",
            ),
            Err(e) => return Err(e.into()),
        }
    }
    let page = NewOperatorPage {
        layout: Layout::dashboard("New operator · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        email,
        name,
        role: role.map_or("", Role::as_str),
        min_password: MIN_PASSWORD_CHARS,
        errors,
    };
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page::render(&page)?).into_response())
}

#[derive(sqlx::FromRow)]
struct OperatorRow {
    id: i64,
    email: String,
    name: Option<String>,
    role: String,
    disabled_at: Option<DateTime<Utc>>,
    locked_until: Option<DateTime<Utc>>,
    last_login_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

#[derive(Template)]
#[template(path = "dashboard/operator_detail.html")]
struct OperatorPage {
    layout: Layout,
    chrome: Chrome,
    o: OperatorRow,
    /// The operator is the admin looking at the page.
    is_self: bool,
    created: String,
    last_login: String,
    disabled: Option<String>,
    locked: Option<String>,
    min_password: usize,
    errors: FieldErrors,
}

impl OperatorPage {
    fn roles(&self) -> Vec<&'static str> {
        ROLES.iter().map(|r| r.as_str()).collect()
    }
}

async fn operator_page(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: i64,
    errors: FieldErrors,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let o: OperatorRow = sqlx::query_as(
        "SELECT id, email, name, role, disabled_at, locked_until, last_login_at, created_at
           FROM operators WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(WebError::NotFound)?;
    let now = state.clock.now();
    let page = OperatorPage {
        layout: Layout::dashboard(format!("{} · Varsel", o.email)),
        chrome: Chrome::of(state, signed, csrf),
        is_self: o.id == signed.operator.id,
        created: oslo_time(o.created_at),
        last_login: o.last_login_at.map(oslo_time).unwrap_or_default(),
        disabled: o.disabled_at.map(oslo_time),
        locked: o.locked_until.filter(|u| *u > now).map(oslo_time),
        min_password: MIN_PASSWORD_CHARS,
        errors,
        o,
    };
    Ok(with_csrf_cookie(state, csrf, page::render(&page)?))
}

async fn show_operator(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    require(&signed, Role::Admin)?;
    operator_page(&state, &signed, &csrf, id, FieldErrors::default()).await
}

/// The operator's page again, with `message` at `field`, as a 422.
async fn refused(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: i64,
    field: &'static str,
    message: impl Into<String>,
) -> Result<Response, WebError> {
    let mut errors = FieldErrors::default();
    errors.add(field, message);
    let page = operator_page(state, signed, csrf, id, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

fn back_to(id: i64) -> Response {
    Redirect::to(&format!("/operators/{id}")).into_response()
}

async fn set_role(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Admin>,
) -> Result<Response, WebError> {
    let Some(role) = form.get("role").and_then(Role::parse) else {
        return refused(&state, &signed, &csrf, id, "role", "Choose a role.").await;
    };
    if id == signed.operator.id && role != Role::Admin {
        return refused(
            &state,
            &signed,
            &csrf,
            id,
            "role",
            "You cannot take the admin role from yourself: ask another admin.",
        )
        .await;
    }
    let mut conn = state.pool.acquire().await?;
    operators::set_role(&mut conn, &signed.operator.actor(), id, role).await?;
    Ok(back_to(id))
}

async fn disable_operator(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, csrf, .. }: Act<Admin>,
) -> Result<Response, WebError> {
    if id == signed.operator.id {
        return refused(
            &state,
            &signed,
            &csrf,
            id,
            "disabled",
            "You cannot disable yourself: ask another admin.",
        )
        .await;
    }
    let mut conn = state.pool.acquire().await?;
    operators::set_disabled(
        &mut conn,
        &signed.operator.actor(),
        id,
        true,
        state.clock.now(),
    )
    .await?;
    Ok(back_to(id))
}

async fn enable_operator(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Admin>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    operators::set_disabled(
        &mut conn,
        &signed.operator.actor(),
        id,
        false,
        state.clock.now(),
    )
    .await?;
    Ok(back_to(id))
}

async fn reset_password(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Admin>,
) -> Result<Response, WebError> {
    if id == signed.operator.id {
        return refused(
            &state,
            &signed,
            &csrf,
            id,
            "disabled",
            "You cannot reset your own password here: ask another admin.",
        )
        .await;
    }
    let password = form.get("password").unwrap_or("");
    if password != form.get("password_again").unwrap_or("") {
        return refused(
            &state,
            &signed,
            &csrf,
            id,
            "password_again",
            "The two passwords differ.",
        )
        .await;
    }
    let mut conn = state.pool.acquire().await?;
    match operators::reset_password(&mut conn, &signed.operator.actor(), id, password).await {
        Ok(()) => Ok(back_to(id)),
        Err(DomainError::Invalid { detail, .. }) => {
            drop(conn);
            refused(
                &state,
                &signed,
                &csrf,
                id,
                "password",
                format!("The password must have {detail}."),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
