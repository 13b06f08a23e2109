//! Who may call what: the route × scope matrix, read from the OpenAPI
//! document (each operation's `security` names the scope its handler's
//! `Caller<…>` demands) and tried against the running service with a token
//! of every scope.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{send, spawn_app};

/// The scopes an operation accepts, as its `security` says.
fn accepted_scopes(operation: &Value) -> Option<Vec<String>> {
    let requirements = operation.get("security")?.as_array()?;
    let scopes = requirements
        .iter()
        .filter_map(|r| r.get("bearer")?.as_array().cloned())
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    Some(scopes)
}

#[tokio::test]
async fn every_operation_demands_the_scope_it_documents() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/api/v1/openapi.json", "").await;
    assert_eq!(status, StatusCode::OK);
    let mut checked = 0;
    let mut public = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        // No such row: an allowed call answers 404 and changes nothing.
        let url = path.replace("{id}", "999999");
        for (method, operation) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let Some(scopes) = accepted_scopes(operation) else {
                public.push(format!("{method} {path}"));
                continue;
            };
            assert!(
                !scopes.is_empty(),
                "{method} {path} documents bearer auth without naming its scope"
            );
            let allowed = |token_scope: &str| {
                token_scope == "admin" || scopes.iter().any(|s| s == token_scope)
            };
            let call = |token: Option<&str>| {
                let mut request = app
                    .http
                    .request(method.clone(), format!("{}{url}", app.base));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                if method == Method::POST || method == Method::PATCH {
                    request = request.json(&serde_json::json!({}));
                }
                send(request)
            };
            let (status, body) = call(None).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token: {body}"
            );
            for (scope, token) in [
                ("admin", &app.admin),
                ("read", &app.read),
                ("ingest", &app.ingest),
            ] {
                let (status, body) = call(Some(token)).await;
                if allowed(scope) {
                    assert!(
                        status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                        "{method} {path} refused a {scope} token: {status} {body}"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{method} {path} let a {scope} token through: {body}"
                    );
                }
            }
            checked += 1;
        }
    }
    public.sort();
    assert_eq!(
        public,
        ["GET /healthz", "GET /readyz"],
        "only health is public"
    );
    assert!(checked >= 34, "only {checked} operations checked");
}

/// A token made over the API is recorded as made by the client that made
/// it, not by the command line.
#[tokio::test]
async fn tokens_made_over_the_api_are_audited_as_their_maker() {
    let app = spawn_app().await;
    let (status, created) = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            serde_json::json!({ "name": "scanner-2", "scopes": ["ingest"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let actor: String = sqlx::query_scalar(
        "SELECT actor FROM audit_events WHERE action = 'token.create' AND subject = $1",
    )
    .bind(format!("api-client:{}", created["id"]))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert!(actor.starts_with("api-client:1:test-admin"), "{actor}");
}
