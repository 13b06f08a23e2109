//! `/organisations`: the registry of organisations for operators — one
//! search box (name, organisation number, IP address or network, domain,
//! contact e-mail), an organisation with its networks (and their history),
//! contacts, domains, open findings, notifications and pending contact
//! proposals; registering and changing organisations, pasting networks,
//! adding, disabling and re-enabling contacts, and deciding contact proposals
//! (`/contact-proposals/{id}/confirm|reject`). Every write goes through the
//! same domain functions as the REST API.

use std::net::IpAddr;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Deserialize;
use sqlx::{Connection, PgConnection, Postgres, QueryBuilder};

use super::operators::Role;
use super::routes::{Act, Analyst, Chrome, oslo_time, require, with_csrf_cookie};
use super::sessions::Signed;
use crate::advisory::store as advisory;
use crate::app::AppState;
use crate::domain::{Actor, DomainError};
use crate::findings::query::{self as findings, FindingStatus, FindingsFilter};
use crate::notifications::model::Notification;
use crate::notifications::store::{self as notifications, NotificationQuery};
use crate::registry::contacts::{self, Contact, ContactPatch, NewContact};
use crate::registry::domains::{self, Domain};
use crate::registry::model::{Cidr, ContactRole, EmailAddress, Language, OrgNumber};
use crate::registry::networks::{self, Network, NewNetwork};
use crate::registry::organisations::{self, NewOrganisation, Organisation, OrganisationPatch};
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, FormFields};
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/organisations", get(search).post(create))
        .route("/organisations/new", get(new_form))
        .route("/organisations/{id}", get(show).post(update))
        .route("/organisations/{id}/edit", get(edit_form))
        .route("/organisations/{id}/networks", post(add_networks))
        .route("/organisations/{id}/contacts", post(add_contact))
        .route(
            "/organisations/{id}/contacts/{cid}/disable",
            post(disable_contact),
        )
        .route(
            "/organisations/{id}/contacts/{cid}/enable",
            post(enable_contact),
        )
        .route("/contact-proposals/{id}/confirm", post(confirm_proposal))
        .route("/contact-proposals/{id}/reject", post(reject_proposal))
}

/// Rows per page of the search, and of each list on an organisation.
const PAGE: i64 = 50;
/// The last page the search goes to (OFFSET paging, capped).
const MAX_PAGE: i64 = 200;
/// Network rows shown on an organisation (current ones first); the API
/// lists them all.
const NETWORKS_SHOWN: usize = 500;

// ---------------------------------------------------------------- search

#[derive(Debug, Default, Deserialize)]
struct SearchQuery {
    q: Option<String>,
    /// 1-based.
    page: Option<i64>,
}

/// What the one search box was given.
#[derive(Debug, Clone, PartialEq)]
enum Needle {
    All,
    /// Organisations with a current network containing the address.
    Address(IpAddr),
    /// Organisations with a current network overlapping it.
    Network(IpNet),
    OrgNumber(String),
    /// Contacts' addresses containing it (it has an `@`).
    Email(String),
    /// A domain (or a subdomain of it), or a name containing it.
    Domain(String),
    /// Name containing it, case-insensitively.
    Name(String),
}

impl Needle {
    fn of(q: &str) -> Self {
        let q = q.trim();
        if q.is_empty() {
            return Needle::All;
        }
        if let Ok(ip) = q.parse::<IpAddr>() {
            return Needle::Address(ip);
        }
        if q.contains('/')
            && let Ok(net) = q.parse::<IpNet>()
        {
            // Host bits are forgiven in a search: 192.0.2.7/24 is 192.0.2.0/24.
            return Needle::Network(net.trunc());
        }
        if let Ok(number) = OrgNumber::parse(q) {
            return Needle::OrgNumber(number.as_str().to_owned());
        }
        if q.contains('@') {
            return Needle::Email(q.to_lowercase());
        }
        if let Ok(domain) = domains::parse_domain(q) {
            return Needle::Domain(domain);
        }
        Needle::Name(q.to_owned())
    }

    fn describe(&self) -> String {
        match self {
            Needle::All => "all organisations".to_owned(),
            Needle::Address(ip) => format!("organisations with a network containing {ip}"),
            Needle::Network(net) => format!("organisations with a network overlapping {net}"),
            Needle::OrgNumber(n) => format!("organisation number {n}"),
            Needle::Email(e) => format!("contacts whose address contains {e:?}"),
            Needle::Domain(d) => format!("domain {d} (or a name containing it)"),
            Needle::Name(n) => format!("names containing {n:?}"),
        }
    }
}

/// `%`, `_` and `\` taken literally in a LIKE pattern.
fn like_escaped(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

#[derive(sqlx::FromRow)]
struct Hit {
    id: i64,
    name: String,
    org_number: Option<String>,
    sector: Option<String>,
    networks: i64,
    open_findings: i64,
}

/// A page of organisations matching `needle`, by name; `PAGE + 1` rows.
async fn find(conn: &mut PgConnection, needle: &Needle, page: i64) -> Result<Vec<Hit>, WebError> {
    let mut q: QueryBuilder<'_, Postgres> = QueryBuilder::new(
        "SELECT o.id, o.name, o.org_number, o.sector,
                (SELECT count(*) FROM networks n WHERE n.organisation_id = o.id AND n.valid_to IS NULL) AS networks,
                (SELECT count(*) FROM findings f WHERE f.organisation_id = o.id AND f.current AND f.status = 'open') AS open_findings
           FROM organisations o WHERE ",
    );
    match needle {
        Needle::All => {
            q.push("true");
        }
        Needle::Address(ip) => {
            q.push("EXISTS (SELECT 1 FROM networks n WHERE n.organisation_id = o.id AND n.valid_to IS NULL AND n.cidr >>= ")
                .push_bind(IpNet::from(*ip))
                .push(")");
        }
        Needle::Network(net) => {
            q.push("EXISTS (SELECT 1 FROM networks n WHERE n.organisation_id = o.id AND n.valid_to IS NULL AND n.cidr && ")
                .push_bind(*net)
                .push(")");
        }
        Needle::OrgNumber(n) => {
            q.push("o.org_number = ").push_bind(n.clone());
        }
        Needle::Email(e) => {
            q.push("EXISTS (SELECT 1 FROM contacts c WHERE c.organisation_id = o.id AND lower(c.email) LIKE ")
                .push_bind(like_escaped(e))
                .push(")");
        }
        Needle::Domain(d) => {
            q.push(
                "(EXISTS (SELECT 1 FROM domains d WHERE d.organisation_id = o.id AND (d.domain = ",
            )
            .push_bind(d.clone())
            .push(" OR d.domain LIKE ")
            .push_bind(format!("%.{}", like_escaped(d).trim_start_matches('%')))
            .push(")) OR o.name ILIKE ")
            .push_bind(like_escaped(d))
            .push(")");
        }
        Needle::Name(n) => {
            q.push("o.name ILIKE ").push_bind(like_escaped(n));
        }
    }
    q.push(" ORDER BY lower(o.name), o.id LIMIT ")
        .push_bind(PAGE + 1)
        .push(" OFFSET ")
        .push_bind((page - 1) * PAGE);
    Ok(q.build_query_as().fetch_all(conn).await?)
}

#[derive(Template)]
#[template(path = "dashboard/organisations.html")]
struct SearchPage {
    layout: Layout,
    chrome: Chrome,
    q: String,
    described: String,
    hits: Vec<Hit>,
    page: i64,
    prev: Option<String>,
    next: Option<String>,
    can_act: bool,
}

fn search_link(q: &str, page: i64) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("q", q)
        .append_pair("page", &page.to_string())
        .finish();
    format!("/organisations?{query}")
}

async fn search(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(sq): Query<SearchQuery>,
) -> Result<Response, WebError> {
    let q = sq.q.unwrap_or_default();
    let page = sq.page.unwrap_or(1).clamp(1, MAX_PAGE);
    let needle = Needle::of(&q);
    let mut conn = state.pool.acquire().await?;
    let mut hits = find(&mut conn, &needle, page).await?;
    let more = hits.len() as i64 > PAGE;
    hits.truncate(PAGE as usize);
    let page_view = SearchPage {
        layout: Layout::dashboard("Organisations · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        described: needle.describe(),
        hits,
        page,
        prev: (page > 1).then(|| search_link(&q, page - 1)),
        next: (more && page < MAX_PAGE).then(|| search_link(&q, page + 1)),
        q,
        can_act: signed.operator.role >= Role::Analyst,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page_view)?))
}

// ---------------------------------------------------------------- detail

struct NetworkLine {
    n: Network,
    from: String,
    to: Option<String>,
}

struct ContactLine {
    c: Contact,
    bounced: Option<String>,
}

struct FindingLine {
    f: findings::Finding,
    last_seen: String,
}

struct NotificationLine {
    n: Notification,
    created: String,
}

#[derive(sqlx::FromRow)]
struct PendingProposal {
    id: i64,
    email: String,
    name: Option<String>,
    language: String,
    proposed_at: DateTime<Utc>,
}

struct ProposalLine {
    p: PendingProposal,
    proposed: String,
}

/// What the forms on the organisation page were last given, and what was
/// wrong with it.
#[derive(Default)]
struct Attempt {
    errors: FieldErrors,
    cidrs: String,
    email: String,
    contact_name: String,
    role: String,
    language: String,
}

#[derive(Template)]
#[template(path = "dashboard/organisation.html")]
struct DetailPage {
    layout: Layout,
    chrome: Chrome,
    org: Organisation,
    networks: Vec<NetworkLine>,
    /// Rows past [`NETWORKS_SHOWN`].
    hidden_networks: usize,
    contacts: Vec<ContactLine>,
    domains: Vec<Domain>,
    findings: Vec<FindingLine>,
    more_findings: bool,
    notifications: Vec<NotificationLine>,
    answers: Vec<AnswerLine>,
    proposals: Vec<ProposalLine>,
    can_act: bool,
    roles: &'static [ContactRole],
    languages: &'static [Language],
    attempt: Attempt,
}

impl DetailPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.attempt.errors.get(field)
    }
}

/// The organisation's pending contact proposals, oldest first (the
/// proposals store lists them for every organisation only).
async fn pending_proposals(
    conn: &mut PgConnection,
    organisation_id: i64,
) -> Result<Vec<PendingProposal>, WebError> {
    Ok(sqlx::query_as(
        "SELECT p.id, p.email, p.name, p.language, r.at AS proposed_at
           FROM contact_proposals p JOIN responses r ON r.id = p.response_id
          WHERE p.organisation_id = $1 AND p.status = 'pending'
          ORDER BY p.id LIMIT $2",
    )
    .bind(organisation_id)
    .bind(PAGE)
    .fetch_all(conn)
    .await?)
}

/// The organisation's latest notifications, newest first: the store lists
/// by id upwards, so start it just below the `PAGE`-th newest.
async fn latest_notifications(
    conn: &mut PgConnection,
    organisation_id: i64,
) -> Result<Vec<Notification>, WebError> {
    let after: Option<i64> = sqlx::query_scalar(
        "SELECT min(id) - 1 FROM (SELECT id FROM notifications WHERE organisation_id = $1
                                    ORDER BY id DESC LIMIT $2) latest",
    )
    .bind(organisation_id)
    .bind(PAGE)
    .fetch_one(&mut *conn)
    .await?;
    let Some(after) = after else {
        return Ok(Vec::new());
    };
    let q = NotificationQuery {
        organisation_id: Some(organisation_id),
        ..NotificationQuery::default()
    };
    let mut rows = notifications::list(conn, &q, after, PAGE as usize).await?;
    rows.truncate(PAGE as usize);
    rows.reverse();
    Ok(rows)
}

/// One answer the organisation gave on an advisory page.
#[derive(sqlx::FromRow)]
struct AnswerLine {
    #[sqlx(skip)]
    at_shown: String,
    at: DateTime<Utc>,
    notification_id: i64,
    ticket: String,
    kind: String,
    finding_id: Option<i64>,
    detail: serde_json::Value,
}

/// The organisation's latest answers over all its notifications, newest
/// first (the timeline has every one).
async fn latest_answers(
    conn: &mut PgConnection,
    organisation_id: i64,
) -> Result<Vec<AnswerLine>, sqlx::Error> {
    let mut rows: Vec<AnswerLine> = sqlx::query_as(
        "SELECT r.at, r.notification_id, n.ticket, r.kind, r.finding_id, r.detail
           FROM responses r JOIN notifications n ON n.id = r.notification_id
          WHERE n.organisation_id = $1
          ORDER BY r.at DESC, r.id DESC LIMIT $2",
    )
    .bind(organisation_id)
    .bind(PAGE)
    .fetch_all(conn)
    .await?;
    for r in &mut rows {
        r.at_shown = oslo_time(r.at);
    }
    Ok(rows)
}

async fn render_detail(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: i64,
    attempt: Attempt,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let org = organisations::fetch(&mut conn, id).await?;
    let mut network_rows = networks::list_networks(&mut conn, id, true).await?;
    // Current ones first, then the ended ones.
    network_rows.sort_by_key(|n| n.valid_to.is_some());
    let hidden_networks = network_rows.len().saturating_sub(NETWORKS_SHOWN);
    network_rows.truncate(NETWORKS_SHOWN);
    let contacts = contacts::list(&mut conn, id).await?;
    let domains = domains::list(&mut conn, id).await?;
    let filter = FindingsFilter {
        status: Some(FindingStatus::Open),
        ..FindingsFilter::default()
    }
    .for_organisation(id);
    let mut finding_rows = findings::list(&mut conn, &filter, 0, PAGE as usize).await?;
    let more_findings = finding_rows.len() > PAGE as usize;
    finding_rows.truncate(PAGE as usize);
    let notifications = latest_notifications(&mut conn, id).await?;
    let proposals = pending_proposals(&mut conn, id).await?;
    let answers = latest_answers(&mut conn, id).await?;
    let page_view = DetailPage {
        layout: Layout::dashboard(format!("{} · Varsel", org.name)),
        chrome: Chrome::of(state, signed, csrf),
        org,
        networks: network_rows
            .into_iter()
            .map(|n| NetworkLine {
                from: n.valid_from.map_or_else(|| "always".to_owned(), oslo_time),
                to: n.valid_to.map(oslo_time),
                n,
            })
            .collect(),
        hidden_networks,
        contacts: contacts
            .into_iter()
            .map(|c| ContactLine {
                bounced: c.last_bounce_at.map(oslo_time),
                c,
            })
            .collect(),
        domains,
        findings: finding_rows
            .into_iter()
            .map(|f| FindingLine {
                last_seen: oslo_time(f.last_seen),
                f,
            })
            .collect(),
        more_findings,
        notifications: notifications
            .into_iter()
            .map(|n| NotificationLine {
                created: oslo_time(n.created_at),
                n,
            })
            .collect(),
        answers,
        proposals: proposals
            .into_iter()
            .map(|p| ProposalLine {
                proposed: oslo_time(p.proposed_at),
                p,
            })
            .collect(),
        can_act: signed.operator.role >= Role::Analyst,
        roles: ContactRole::ALL,
        languages: Language::ALL,
        attempt,
    };
    Ok(with_csrf_cookie(state, csrf, page::render(&page_view)?))
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    render_detail(&state, &signed, &csrf, id, Attempt::default()).await
}

fn back_to(id: i64) -> Response {
    Redirect::to(&format!("/organisations/{id}")).into_response()
}

// ------------------------------------------------------ create and edit

#[derive(Default)]
struct OrgFields {
    reference: String,
    name: String,
    org_number: String,
    sector: String,
    notes: String,
}

impl OrgFields {
    fn of_form(form: &FormFields) -> Self {
        let field = |k: &str| form.get(k).unwrap_or("").to_owned();
        OrgFields {
            reference: field("ref"),
            name: field("name"),
            org_number: field("org_number"),
            sector: field("sector"),
            notes: field("notes"),
        }
    }

    fn of_org(org: &Organisation) -> Self {
        OrgFields {
            reference: org.reference.clone(),
            name: org.name.clone(),
            org_number: org.org_number.clone().unwrap_or_default(),
            sector: org.sector.clone().unwrap_or_default(),
            notes: org.notes.clone().unwrap_or_default(),
        }
    }

    /// The organisation number, if one was given; its error otherwise.
    fn org_number(&self, errors: &mut FieldErrors) -> Option<OrgNumber> {
        if self.org_number.trim().is_empty() {
            return None;
        }
        OrgNumber::parse(&self.org_number)
            .map_err(|e| errors.add("org_number", e))
            .ok()
    }
}

fn blank_is_none(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.to_owned())
}

#[derive(Template)]
#[template(path = "dashboard/organisation_form.html")]
struct FormPage {
    layout: Layout,
    chrome: Chrome,
    /// `None`: a new organisation.
    id: Option<i64>,
    fields: OrgFields,
    errors: FieldErrors,
}

fn render_form(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: Option<i64>,
    fields: OrgFields,
    errors: FieldErrors,
) -> Result<Response, WebError> {
    let failed = !errors.is_empty();
    let title = if id.is_some() {
        "Change organisation · Varsel"
    } else {
        "New organisation · Varsel"
    };
    let page_view = FormPage {
        layout: Layout::dashboard(title),
        chrome: Chrome::of(state, signed, csrf),
        id,
        fields,
        errors,
    };
    let response = with_csrf_cookie(state, csrf, page::render(&page_view)?);
    Ok(if failed {
        (StatusCode::UNPROCESSABLE_ENTITY, response).into_response()
    } else {
        response
    })
}

/// A domain error about a field, as the form's message at it; other
/// errors pass through.
fn field_error(
    e: DomainError,
    fields: &[&'static str],
    fallback: &'static str,
    errors: &mut FieldErrors,
) -> Result<(), WebError> {
    let (field, detail) = match e {
        DomainError::Invalid { field, detail } => (Some(field), detail),
        DomainError::Conflict { field, detail } => (field, detail),
        other => return Err(other.into()),
    };
    let at = field
        .and_then(|f| fields.iter().copied().find(|k| *k == f))
        .unwrap_or(fallback);
    errors.add(at, detail);
    Ok(())
}

async fn new_form(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    require(&signed, Role::Analyst)?;
    render_form(
        &state,
        &signed,
        &csrf,
        None,
        OrgFields::default(),
        FieldErrors::default(),
    )
}

async fn create(
    State(state): State<AppState>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let fields = OrgFields::of_form(&form);
    let mut errors = FieldErrors::default();
    let org_number = fields.org_number(&mut errors);
    if errors.is_empty() {
        let new = NewOrganisation {
            reference: fields.reference.clone(),
            name: fields.name.clone(),
            org_number,
            sector: blank_is_none(&fields.sector),
            notes: blank_is_none(&fields.notes),
        };
        let mut conn = state.pool.acquire().await?;
        match organisations::create(&mut conn, &signed.operator.actor(), &new).await {
            Ok(org) => return Ok(back_to(org.id)),
            Err(e) => field_error(
                e,
                &["ref", "name", "org_number", "sector", "notes"],
                "ref",
                &mut errors,
            )?,
        }
    }
    render_form(&state, &signed, &csrf, None, fields, errors)
}

async fn edit_form(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    require(&signed, Role::Analyst)?;
    let mut conn = state.pool.acquire().await?;
    let org = organisations::fetch(&mut conn, id).await?;
    drop(conn);
    render_form(
        &state,
        &signed,
        &csrf,
        Some(id),
        OrgFields::of_org(&org),
        FieldErrors::default(),
    )
}

async fn update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut fields = OrgFields::of_form(&form);
    let mut conn = state.pool.acquire().await?;
    // `ref` cannot change; the form shows the stored one.
    fields.reference = organisations::fetch(&mut conn, id).await?.reference;
    let mut errors = FieldErrors::default();
    let org_number = fields.org_number(&mut errors);
    if errors.is_empty() {
        let patch = OrganisationPatch {
            name: Some(fields.name.clone()),
            org_number: Some(org_number),
            sector: Some(blank_is_none(&fields.sector)),
            notes: Some(blank_is_none(&fields.notes)),
        };
        match organisations::update(&mut conn, &signed.operator.actor(), id, &patch).await {
            Ok(_) => return Ok(back_to(id)),
            Err(e) => field_error(
                e,
                &["name", "org_number", "sector", "notes"],
                "name",
                &mut errors,
            )?,
        }
    }
    drop(conn);
    render_form(&state, &signed, &csrf, Some(id), fields, errors)
}

// -------------------------------------------------------------- networks

/// The networks in a pasted text: one per line, or several on a line
/// separated by spaces or commas; empty lines are skipped. Every bad one
/// is named with its line.
fn parse_pasted(text: &str) -> Result<Vec<Cidr>, Vec<String>> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for token in line
            .split(|c: char| c == ',' || c == ';' || c.is_whitespace())
            .filter(|t| !t.is_empty())
        {
            match Cidr::parse(token) {
                Ok(cidr) => good.push(cidr),
                Err(e) => bad.push(format!("line {}: {e}", n + 1)),
            }
        }
    }
    if !bad.is_empty() {
        return Err(bad);
    }
    if good.is_empty() {
        return Err(vec![
            "paste at least one network, e.g. 192.0.2.0/24".to_owned(),
        ]);
    }
    good.sort();
    good.dedup();
    Ok(good)
}

/// Registers every network for the organisation in one transaction: all
/// or none.
async fn create_networks(
    conn: &mut PgConnection,
    actor: &Actor,
    organisation_id: i64,
    cidrs: &[Cidr],
) -> Result<(), (Option<Cidr>, DomainError)> {
    let fail = |e: sqlx::Error| (None, DomainError::from(e));
    let mut tx = conn.begin().await.map_err(fail)?;
    for cidr in cidrs {
        let new = NewNetwork {
            cidr: *cidr,
            source: None,
            name: None,
            valid_from: None,
        };
        networks::create_network(&mut tx, actor, organisation_id, &new)
            .await
            .map_err(|e| (Some(*cidr), e))?;
    }
    tx.commit().await.map_err(fail)?;
    Ok(())
}

async fn add_networks(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let text = form.get("cidrs").unwrap_or("");
    let mut errors = FieldErrors::default();
    match parse_pasted(text) {
        Err(bad) => errors.add("cidrs", bad.join("; ")),
        Ok(cidrs) => {
            let mut conn = state.pool.acquire().await?;
            match create_networks(&mut conn, &signed.operator.actor(), id, &cidrs).await {
                Ok(()) => return Ok(back_to(id)),
                Err((_, DomainError::NotFound(_))) => return Err(WebError::NotFound),
                Err((cidr, e)) => {
                    let mut one = FieldErrors::default();
                    field_error(e, &[], "cidrs", &mut one)?;
                    let detail = one.get("cidrs").unwrap_or_default();
                    let at = cidr.map(|c| format!("{c}: ")).unwrap_or_default();
                    errors.add("cidrs", format!("{at}{detail}; nothing was added"));
                }
            }
        }
    }
    let attempt = Attempt {
        errors,
        cidrs: text.to_owned(),
        ..Attempt::default()
    };
    let page_view = render_detail(&state, &signed, &csrf, id, attempt).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page_view).into_response())
}

// -------------------------------------------------------------- contacts

async fn add_contact(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let attempt_of = |errors| Attempt {
        errors,
        email: form.get("email").unwrap_or("").to_owned(),
        contact_name: form.get("name").unwrap_or("").to_owned(),
        role: form.get("role").unwrap_or("").to_owned(),
        language: form.get("language").unwrap_or("").to_owned(),
        ..Attempt::default()
    };
    let mut errors = FieldErrors::default();
    let email = EmailAddress::parse(form.get("email").unwrap_or(""))
        .map_err(|e| errors.add("email", e))
        .ok();
    let role = ContactRole::parse(form.get("role").unwrap_or(""))
        .map_err(|e| errors.add("role", e))
        .ok();
    let language = Language::parse(form.get("language").unwrap_or(""))
        .map_err(|e| errors.add("language", e))
        .ok();
    if let (Some(email), Some(role), Some(language)) = (email, role, language) {
        let new = NewContact {
            email,
            name: form.get("name").and_then(blank_is_none),
            role,
            language,
            enabled: true,
            provenance: None,
        };
        let mut conn = state.pool.acquire().await?;
        match contacts::create(&mut conn, &signed.operator.actor(), id, &new).await {
            Ok(_) => return Ok(back_to(id)),
            Err(e) => field_error(e, &["email", "name"], "email", &mut errors)?,
        }
    }
    let page_view = render_detail(&state, &signed, &csrf, id, attempt_of(errors)).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page_view).into_response())
}

async fn disable_contact(
    State(state): State<AppState>,
    Path((id, cid)): Path<(i64, i64)>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    set_enabled(&state, &signed, (id, cid), false).await
}

async fn enable_contact(
    State(state): State<AppState>,
    Path((id, cid)): Path<(i64, i64)>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    set_enabled(&state, &signed, (id, cid), true).await
}

/// Turns a contact of organisation `id` off (it gets no mail, and is kept
/// with its history) or on again.
async fn set_enabled(
    state: &AppState,
    signed: &Signed,
    (id, cid): (i64, i64),
    enabled: bool,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    // Only a contact of this organisation, so that the page it returns to
    // shows the change.
    let belongs = contacts::list(&mut conn, id)
        .await?
        .iter()
        .any(|c| c.id == cid);
    if !belongs {
        return Err(WebError::NotFound);
    }
    let patch = ContactPatch {
        email: None,
        name: None,
        role: None,
        language: None,
        enabled: Some(enabled),
    };
    contacts::update(&mut conn, &signed.operator.actor(), cid, &patch).await?;
    Ok(back_to(id))
}

// ----------------------------------------------------- contact proposals

async fn decide(
    state: &AppState,
    signed: &Signed,
    id: i64,
    confirm: bool,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let proposal = advisory::proposal(&mut conn, id).await?;
    match advisory::decide_proposal(
        &mut conn,
        &signed.operator.actor(),
        id,
        confirm,
        state.clock.now(),
    )
    .await
    {
        // Decided meanwhile by someone else: the page shows it gone.
        Ok(_) | Err(DomainError::Conflict { .. }) => Ok(back_to(proposal.organisation_id)),
        Err(e) => Err(e.into()),
    }
}

async fn confirm_proposal(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    decide(&state, &signed, id, true).await
}

async fn reject_proposal(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    decide(&state, &signed, id, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_search_box_tells_what_it_was_given() {
        assert!(matches!(Needle::of("192.0.2.7"), Needle::Address(_)));
        assert_eq!(
            Needle::of("192.0.2.7/24"),
            Needle::Network("192.0.2.0/24".parse().unwrap())
        );
        assert!(matches!(Needle::of("2001:db8::/32"), Needle::Network(_)));
        assert_eq!(
            Needle::of("974 760 673"),
            Needle::OrgNumber("974760673".to_owned())
        );
        assert_eq!(
            Needle::of("Abuse@X.no"),
            Needle::Email("abuse@x.no".to_owned())
        );
        assert_eq!(
            Needle::of("Kommune.no"),
            Needle::Domain("kommune.no".to_owned())
        );
        assert_eq!(
            Needle::of(" Eksempel kommune "),
            Needle::Name("Eksempel kommune".to_owned())
        );
        assert_eq!(Needle::of("  "), Needle::All);
    }

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_escaped("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn pasted_networks_name_their_bad_lines() {
        let ok =
            parse_pasted("192.0.2.0/24\n\n198.51.100.0/24, 2001:db8::/32 192.0.2.0/24").unwrap();
        assert_eq!(ok.len(), 3);
        let bad = parse_pasted("192.0.2.0/24\nnonsense\n10.0.0.1/8").unwrap_err();
        assert_eq!(bad.len(), 2);
        assert!(bad[0].starts_with("line 2:"), "{bad:?}");
        assert!(
            bad[1].starts_with("line 3:") && bad[1].contains("host bits"),
            "{bad:?}"
        );
        assert!(parse_pasted(" \n").is_err());
    }
}
