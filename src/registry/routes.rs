//! `/api/v1/organisations`, `/contacts`, `/networks`, `/asns`, `/domains`:
//! the registry over REST. Thin handlers: each names its scope, parses the
//! request, calls the domain function and answers JSON.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::{Json, Router};

use super::contacts::{self, Contact, ContactPatch, NewContact};
use super::domains::{self, Domain, NewDomain};
use super::networks::{self, Asn, HistoryQuery, Network, NetworkPatch, NewAsn, NewNetwork};
use super::organisations::{
    self, NewOrganisation, Organisation, OrganisationPatch, OrganisationQuery,
};
use crate::app::AppState;
use crate::auth::{Admin, Caller, Read};
use crate::error::{ApiResult, Problem};
use crate::http::{JsonBody, Page, Path, QueryParams, id_cursor, page_limit};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/organisations",
            get(list_organisations).post(create_organisation),
        )
        .route(
            "/api/v1/organisations/{id}",
            get(show_organisation)
                .patch(update_organisation)
                .delete(delete_organisation),
        )
        .route(
            "/api/v1/organisations/{id}/contacts",
            get(list_contacts).post(create_contact),
        )
        .route(
            "/api/v1/contacts/{id}",
            patch(update_contact).delete(delete_contact),
        )
        .route(
            "/api/v1/organisations/{id}/networks",
            get(list_networks).post(create_network),
        )
        .route(
            "/api/v1/networks/{id}",
            get(show_network).patch(update_network).delete(end_network),
        )
        .route(
            "/api/v1/organisations/{id}/asns",
            get(list_asns).post(create_asn),
        )
        .route("/api/v1/asns/{id}", delete(end_asn))
        .route(
            "/api/v1/organisations/{id}/domains",
            get(list_domains).post(create_domain),
        )
        .route("/api/v1/domains/{id}", delete(delete_domain))
}

/// List organisations, by id, cursor-paginated.
#[utoipa::path(get, path = "/api/v1/organisations", tag = "registry", params(OrganisationQuery),
    responses((status = 200, body = Page<Organisation>)), security(("bearer" = ["read"])))]
pub async fn list_organisations(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    QueryParams(q): QueryParams<OrganisationQuery>,
) -> ApiResult<Json<Page<Organisation>>> {
    let limit = page_limit(q.limit)?;
    let after = id_cursor(q.cursor.as_deref())?;
    let mut conn = state.pool.acquire().await?;
    let rows = organisations::list(&mut conn, q.reference.as_deref(), after, limit).await?;
    Ok(Json(Page::from_rows(rows, limit, |o| o.id.to_string())))
}

/// One organisation.
#[utoipa::path(get, path = "/api/v1/organisations/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Organisation), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn show_organisation(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Organisation>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(organisations::fetch(&mut conn, id).await?))
}

/// Register an organisation.
#[utoipa::path(post, path = "/api/v1/organisations", tag = "registry", request_body = NewOrganisation,
    responses((status = 201, body = Organisation), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn create_organisation(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    JsonBody(body): JsonBody<NewOrganisation>,
) -> ApiResult<(StatusCode, Json<Organisation>)> {
    let mut conn = state.pool.acquire().await?;
    let org = organisations::create(&mut conn, &caller.actor(), &body).await?;
    Ok((StatusCode::CREATED, Json(org)))
}

/// Change an organisation's name, number, sector or notes (`ref` is its
/// key and cannot change).
#[utoipa::path(patch, path = "/api/v1/organisations/{id}", tag = "registry", request_body = OrganisationPatch,
    params(("id" = i64, Path)), responses((status = 200, body = Organisation), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn update_organisation(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<OrganisationPatch>,
) -> ApiResult<Json<Organisation>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        organisations::update(&mut conn, &caller.actor(), id, &patch).await?,
    ))
}

/// Delete an organisation that has no networks, ASNs or findings (current
/// or historical); its contacts and domains go with it.
#[utoipa::path(delete, path = "/api/v1/organisations/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn delete_organisation(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    organisations::delete(&mut conn, &caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's contacts.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/contacts", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<Contact>), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list_contacts(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<Contact>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(contacts::list(&mut conn, org).await?))
}

/// Add a contact to the organisation.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/contacts", tag = "registry", request_body = NewContact,
    params(("id" = i64, Path)),
    responses((status = 201, body = Contact), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn create_contact(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let mut conn = state.pool.acquire().await?;
    let contact = contacts::create(&mut conn, &caller.actor(), org, &body).await?;
    Ok((StatusCode::CREATED, Json(contact)))
}

/// Change a contact.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "registry", request_body = ContactPatch,
    params(("id" = i64, Path)),
    responses((status = 200, body = Contact), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn update_contact(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<ContactPatch>,
) -> ApiResult<Json<Contact>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        contacts::update(&mut conn, &caller.actor(), id, &patch).await?,
    ))
}

/// Remove a contact.
#[utoipa::path(delete, path = "/api/v1/contacts/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn delete_contact(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    contacts::delete(&mut conn, &caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's networks (current, or with `history=true` all rows).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/networks", tag = "registry",
    params(("id" = i64, Path), HistoryQuery),
    responses((status = 200, body = Vec<Network>), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list_networks(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> ApiResult<Json<Vec<Network>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(
        networks::list_networks(&mut conn, org, q.history).await?,
    ))
}

/// One network row.
#[utoipa::path(get, path = "/api/v1/networks/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Network), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn show_network(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<Json<Network>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(networks::fetch_network(&mut conn, id).await?))
}

/// Register a network for the organisation.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/networks", tag = "registry", request_body = NewNetwork,
    params(("id" = i64, Path)),
    responses((status = 201, body = Network), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn create_network(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewNetwork>,
) -> ApiResult<(StatusCode, Json<Network>)> {
    let mut conn = state.pool.acquire().await?;
    let network = networks::create_network(&mut conn, &caller.actor(), org, &body).await?;
    Ok((StatusCode::CREATED, Json(network)))
}

/// Change a network. A new owner or source ends this row now and starts a
/// new one (the response is the new row); a new name changes it in place.
#[utoipa::path(patch, path = "/api/v1/networks/{id}", tag = "registry", request_body = NetworkPatch,
    params(("id" = i64, Path)),
    responses((status = 200, body = Network), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn update_network(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
    JsonBody(patch): JsonBody<NetworkPatch>,
) -> ApiResult<Json<Network>> {
    let mut conn = state.pool.acquire().await?;
    let network = networks::update_network(&mut conn, &caller.actor(), id, &patch).await?;
    Ok(Json(network))
}

/// End a network's validity now (history is kept).
#[utoipa::path(delete, path = "/api/v1/networks/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn end_network(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    networks::end_network(&mut conn, &caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's ASNs (current, or with `history=true` all rows).
#[utoipa::path(get, path = "/api/v1/organisations/{id}/asns", tag = "registry",
    params(("id" = i64, Path), HistoryQuery),
    responses((status = 200, body = Vec<Asn>), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list_asns(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
    QueryParams(q): QueryParams<HistoryQuery>,
) -> ApiResult<Json<Vec<Asn>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(networks::list_asns(&mut conn, org, q.history).await?))
}

/// Register an ASN for the organisation (the fallback owner of addresses
/// no registered network contains).
#[utoipa::path(post, path = "/api/v1/organisations/{id}/asns", tag = "registry", request_body = NewAsn,
    params(("id" = i64, Path)),
    responses((status = 201, body = Asn), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn create_asn(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewAsn>,
) -> ApiResult<(StatusCode, Json<Asn>)> {
    let mut conn = state.pool.acquire().await?;
    let asn = networks::create_asn(&mut conn, &caller.actor(), org, &body).await?;
    Ok((StatusCode::CREATED, Json(asn)))
}

/// End an ASN registration now.
#[utoipa::path(delete, path = "/api/v1/asns/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn end_asn(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    networks::end_asn(&mut conn, &caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The organisation's domains.
#[utoipa::path(get, path = "/api/v1/organisations/{id}/domains", tag = "registry",
    params(("id" = i64, Path)), responses((status = 200, body = Vec<Domain>), (status = 404, body = Problem)),
    security(("bearer" = ["read"])))]
pub async fn list_domains(
    _caller: Caller<Read>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
) -> ApiResult<Json<Vec<Domain>>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(domains::list(&mut conn, org).await?))
}

/// Add a domain to the organisation.
#[utoipa::path(post, path = "/api/v1/organisations/{id}/domains", tag = "registry", request_body = NewDomain,
    params(("id" = i64, Path)),
    responses((status = 201, body = Domain), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn create_domain(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(org): Path<i64>,
    JsonBody(body): JsonBody<NewDomain>,
) -> ApiResult<(StatusCode, Json<Domain>)> {
    let mut conn = state.pool.acquire().await?;
    let domain = domains::create(&mut conn, &caller.actor(), org, &body).await?;
    Ok((StatusCode::CREATED, Json(domain)))
}

/// Remove a domain.
#[utoipa::path(delete, path = "/api/v1/domains/{id}", tag = "registry",
    params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = ["admin"])))]
pub async fn delete_domain(
    caller: Caller<Admin>,
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    let mut conn = state.pool.acquire().await?;
    domains::delete(&mut conn, &caller.actor(), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
