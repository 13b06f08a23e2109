//! The OpenAPI 3.1 document at `/api/v1/openapi.json`, generated from the
//! handlers' annotations and the request/response types.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "Varsel", description = "National vulnerability notification service: scan ingestion, attribution, findings."),
    paths(
        crate::health::healthz,
        crate::health::readyz,
        crate::auth::routes::list_tokens,
        crate::auth::routes::create_token,
        crate::auth::routes::revoke_token,
        crate::registry::routes::list_organisations,
        crate::registry::routes::show_organisation,
        crate::registry::routes::create_organisation,
        crate::registry::routes::update_organisation,
        crate::registry::routes::delete_organisation,
        crate::registry::routes::list_contacts,
        crate::registry::routes::create_contact,
        crate::registry::routes::update_contact,
        crate::registry::routes::delete_contact,
        crate::registry::routes::list_networks,
        crate::registry::routes::show_network,
        crate::registry::routes::create_network,
        crate::registry::routes::update_network,
        crate::registry::routes::end_network,
        crate::registry::routes::list_asns,
        crate::registry::routes::create_asn,
        crate::registry::routes::end_asn,
        crate::registry::routes::list_domains,
        crate::registry::routes::create_domain,
        crate::registry::routes::delete_domain,
        crate::attribution::routes::lookup_one,
        crate::attribution::routes::lookup_many,
        crate::ingest::routes::create_scan,
        crate::ingest::routes::show_scan,
        crate::ingest::routes::push_to_scan,
        crate::ingest::routes::finish_scan,
        crate::ingest::routes::push,
        crate::findings::routes::list_findings,
        crate::findings::routes::list_organisation_findings,
        crate::findings::routes::show_finding,
        crate::findings::routes::findings_summary,
    ),
    components(schemas(crate::error::Problem, crate::ingest::observation::LineError)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
