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
        crate::auth::routes::list,
        crate::auth::routes::create,
        crate::auth::routes::revoke,
        crate::registry::organisations::list,
        crate::registry::organisations::show,
        crate::registry::organisations::create,
        crate::registry::organisations::update,
        crate::registry::organisations::remove,
        crate::registry::contacts::list,
        crate::registry::contacts::create,
        crate::registry::contacts::update,
        crate::registry::contacts::remove,
        crate::registry::networks::list_networks,
        crate::registry::networks::show_network,
        crate::registry::networks::create_network,
        crate::registry::networks::update_network,
        crate::registry::networks::end_network,
        crate::registry::networks::list_asns,
        crate::registry::networks::create_asn,
        crate::registry::networks::end_asn,
        crate::registry::domains::list,
        crate::registry::domains::create,
        crate::registry::domains::remove,
        crate::attribution::routes::lookup_one,
        crate::attribution::routes::lookup_many,
        crate::ingest::routes::create_scan,
        crate::ingest::routes::show_scan,
        crate::ingest::routes::push_to_scan,
        crate::ingest::routes::finish_scan,
        crate::ingest::routes::push,
        crate::findings::routes::list,
        crate::findings::routes::list_for_organisation,
        crate::findings::routes::show,
        crate::findings::routes::summary,
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
