use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn token_cli_prints_the_token_last_and_it_works_until_revoked() {
    let app = spawn_app().await;
    let out = app.cli(&["token", "create", "--name", "scanner-1", "--scope", "read"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().trim().to_owned();
    assert!(token.starts_with("vsl_") && token.len() > 40, "{stdout}");

    // Only the hash is stored.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM api_clients WHERE token_hash = $1")
        .bind(varsel::auth::hash_token(&token))
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
    let plain: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_clients WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'",
    )
    .bind(&token)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(plain, 0);

    let (status, _) = app.get("/api/v1/organisations", &token).await;
    assert_eq!(status, StatusCode::OK);

    let list = app.cli(&["token", "list"]);
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(
        listing.contains("scanner-1") && !listing.contains(&token),
        "{listing}"
    );
    let id = listing
        .lines()
        .find(|l| l.contains("scanner-1"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_owned();

    let out = app.cli(&["token", "revoke", &id]);
    assert!(out.status.success());
    let (status, body) = app.get("/api/v1/organisations", &token).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked token refused: {body}"
    );
}

#[tokio::test]
async fn missing_wrong_and_insufficient_tokens() {
    let app = spawn_app().await;
    let r = app
        .http
        .get(format!("{}/api/v1/organisations", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    let (status, _) = app
        .get("/api/v1/organisations", "vsl_not-a-real-token")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // ingest cannot read the registry; read cannot write it.
    let (status, body) = app.get("/api/v1/organisations", &app.ingest).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["type"], "urn:varsel:problem:forbidden");
    let (status, _) = app
        .post(
            "/api/v1/organisations",
            &app.read,
            json!({ "ref": "X", "name": "X" }),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // read cannot ingest.
    let (status, _) = app
        .post("/api/v1/scans", &app.read, json!({ "scanner": "s" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn tokens_over_the_api() {
    let app = spawn_app().await;
    let (status, created) = app
        .post(
            "/api/v1/tokens",
            &app.admin,
            json!({ "name": "via-api", "scopes": ["ingest"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = created["token"].as_str().unwrap().to_owned();
    let (status, list) = app.get("/api/v1/tokens", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!list.to_string().contains(&token));
    let id = created["id"].as_i64().unwrap();
    let (status, _) = app
        .delete(&format!("/api/v1/tokens/{id}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .post("/api/v1/scans", &token, json!({ "scanner": "s" }))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = crate::helpers::spawn_app_with(|s| s.rate_limit_per_minute = 3).await;
    let mut last = None;
    for _ in 0..5 {
        let r = app
            .request(reqwest::Method::GET, "/api/v1/organisations", &app.read)
            .send()
            .await
            .unwrap();
        last = Some((r.status(), r.headers().get("retry-after").cloned()));
    }
    let (status, retry_after) = last.unwrap();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
}
