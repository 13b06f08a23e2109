//! The OpenAPI 3.1 document at `/api/v1/openapi.json`, generated from the
//! handlers' annotations and the request/response types, then completed by
//! [`complete`] with what every operation of a kind can answer (401, 403,
//! 429 and 503 behind a token; 400, 413, 415 and 422 with a body; …), so the
//! rules live in one place instead of on every annotation. The API contract
//! check in `.ci/run` holds the service to it.

use std::sync::OnceLock;

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::app::AppState;
use crate::error::PROBLEM_JSON;

#[derive(OpenApi)]
#[openapi(
    info(title = "Varsel", description = "National vulnerability notification service: scan ingestion, attribution, findings, campaigns."),
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
        crate::findings::routes::close_finding,
        crate::findings::routes::findings_summary,
        crate::jobs::routes::list_jobs,
        crate::jobs::routes::retry_job,
        crate::mail::routes::list_deliveries,
        crate::mail::routes::retry_delivery,
        crate::mail::routes::resend_delivery,
        crate::campaigns::routes::list_campaigns,
        crate::campaigns::routes::create_campaign,
        crate::campaigns::routes::show_campaign,
        crate::campaigns::routes::update_campaign,
        crate::campaigns::routes::activate_campaign,
        crate::campaigns::routes::post_campaign_update,
        crate::campaigns::routes::close_campaign,
        crate::notifications::routes::list_notifications,
        crate::notifications::routes::show_notification,
        crate::notifications::routes::notification_timeline,
        crate::notifications::routes::notification_deliveries,
        crate::notifications::routes::preview_notification,
        crate::notifications::routes::approve_notifications,
        crate::notifications::routes::list_sectors,
        crate::notifications::routes::set_sector_team,
        crate::advisory::api::list_responses,
        crate::advisory::api::revoke_links,
        crate::advisory::api::reissue_link,
        crate::advisory::api::list_escalations,
        crate::advisory::api::show_escalation,
        crate::advisory::api::take_escalation,
        crate::advisory::api::close_escalation,
        crate::advisory::api::list_rechecks,
        crate::advisory::api::list_proposals,
        crate::advisory::api::confirm_proposal,
        crate::advisory::api::reject_proposal,
    ),
    components(schemas(
        crate::error::Problem,
        crate::ingest::observation::LineError,
        crate::ingest::scans::CheckId,
        crate::ingest::scans::CidrString,
        crate::findings::query::FindingStatus,
        crate::findings::routes::Representation,
        crate::ingest::observation::ObservationState,
        crate::ingest::routes::FormatName,
        crate::jobs::routes::JobStatus,
        crate::mail::routes::DeliveryStatus,
        crate::campaigns::model::Tlp,
        crate::campaigns::model::CampaignSeverity,
        crate::campaigns::model::CampaignStatus,
        crate::campaigns::model::MatchState,
        crate::campaigns::model::CampaignCheck,
        crate::campaigns::model::CveId,
        crate::campaigns::model::ReminderDay,
        crate::notifications::model::NotificationStatus,
        crate::notifications::routes::PreviewLanguage,
        crate::advisory::store::EscalationStatus,
        crate::advisory::store::ProposalStatus,
    )),
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

/// Operations that also answer NDJSON and CSV (`format=` or `Accept`).
const FINDING_LISTS: &[&str] = &["list_findings", "list_organisation_findings"];

/// Operations whose body is scan output streamed as it comes.
const RAW_BODY_OPERATIONS: &[&str] = &["push_to_scan", "push"];

/// Operations that honour `Idempotency-Key`.
const IDEMPOTENT_OPERATIONS: &[&str] = &["create_scan", "push_to_scan", "finish_scan", "push"];

/// The complete document, as served.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        complete(&mut doc);
        crate::campaigns::model::complete_schema(&mut doc);
        doc
    })
}

fn problem(description: &str) -> Value {
    json!({
        "description": description,
        "content": { PROBLEM_JSON: { "schema": { "$ref": "#/components/schemas/Problem" } } }
    })
}

/// Adds the answers every operation of a kind can give, and documents
/// problem documents as `application/problem+json`.
fn complete(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in item.iter_mut() {
            if !["get", "put", "post", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                continue;
            }
            let has_body = op.get("requestBody").is_some();
            let has_query = op["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let has_path = path.contains('{');
            let behind_token = op.get("security").is_some();
            let idempotent = op["operationId"]
                .as_str()
                .is_some_and(|id| IDEMPOTENT_OPERATIONS.contains(&id));
            if idempotent {
                let parameters = op
                    .as_object_mut()
                    .map(|o| o.entry("parameters").or_insert_with(|| json!([])));
                if let Some(Value::Array(ps)) = parameters {
                    ps.push(json!({
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": false,
                        "description": "Makes a retry safe: the same key and body within 24 hours answer \
                                        the first answer and change nothing; a different body is a 422.",
                        "schema": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 255,
                            "pattern": "^[!-~]{1,255}$"
                        }
                    }));
                }
            }
            // Scan results are bytes in the format the client names (NDJSON,
            // CSV, XML…), streamed, not a JSON string.
            // A body without a record stores nothing and is refused (422).
            if RAW_BODY_OPERATIONS.contains(&op["operationId"].as_str().unwrap_or_default()) {
                op["requestBody"]["required"] = json!(true);
                if let Some(content) = op["requestBody"]["content"].as_object_mut() {
                    for media in content.values_mut() {
                        media["schema"] =
                            json!({ "type": "string", "format": "binary", "minLength": 1 });
                    }
                }
            }
            if FINDING_LISTS.contains(&op["operationId"].as_str().unwrap_or_default()) {
                if let Some(content) = op["responses"]["200"]["content"].as_object_mut() {
                    for media in ["application/x-ndjson", "text/csv"] {
                        content.insert(media.to_owned(), json!({ "schema": { "type": "string" } }));
                    }
                }
            }
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for response in responses.values_mut() {
                let Some(content) = response.get_mut("content").and_then(Value::as_object_mut)
                else {
                    continue;
                };
                let is_problem = content
                    .get("application/json")
                    .is_some_and(|c| c["schema"]["$ref"] == "#/components/schemas/Problem");
                if is_problem {
                    if let Some(c) = content.remove("application/json") {
                        content.insert(PROBLEM_JSON.to_owned(), c);
                    }
                }
            }
            let mut add = |status: &str, description: &str| {
                responses
                    .entry(status)
                    .or_insert_with(|| problem(description));
            };
            if behind_token {
                add("401", "No valid bearer token");
                add("403", "The token lacks the scope this operation needs");
                add("429", "Over the token's rate limit; see `Retry-After`");
                add(
                    "503",
                    "The database is busy or unreachable, or the request lost a deadlock; retry (see `Retry-After`)",
                );
            }
            if has_body {
                add("400", "The body is not JSON (or not readable)");
                add("413", "The body is too large");
                add("415", "The body is not of a supported media type");
                add("422", "A field of the body is invalid (`field` names it)");
            }
            if has_query {
                add("422", "A query parameter is invalid (`field` names it)");
            }
            if has_path {
                add("404", "No such resource");
            }
            if idempotent {
                add(
                    "409",
                    "The Idempotency-Key is in use by a request still running",
                );
                add(
                    "422",
                    "The Idempotency-Key was used for a different request",
                );
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(|| async { Json(document()) }))
}
