//! Dashboard admin pages, as a browser meets them: the registry imports
//! and scan runs every role sees, API tokens shown once and working
//! against the REST API until revoked, operators added, disabled and
//! re-roled by admins — never by themselves, nor by analysts or viewers.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, LOCATION};
use serde_json::json;

use crate::advisory::hidden;
use crate::dashboard::{Client, PASSWORD, operator};
use crate::helpers::{TestApp, sample, spawn_app};

/// An operator with `role` logged in: the client, its cookies and a CSRF
/// token.
async fn logged_in(app: &TestApp, email: &str, role: &str) -> (Client, String, String) {
    operator(app, email, role);
    let client = Client::new(app);
    let cookies = client.login(email, PASSWORD).await;
    let html = client.get("/imports", &cookies).await.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    (client, cookies, csrf)
}

async fn page(client: &Client, cookies: &str, path: &str) -> String {
    let r = client.get(path, cookies).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.unwrap()
}

/// The token a freshly created one's page shows.
fn shown_token(html: &str) -> String {
    regex_lite::Regex::new(r#"id="token" value="(vsl_[0-9a-f]+)""#)
        .unwrap()
        .captures(html)
        .unwrap_or_else(|| panic!("no token in {html}"))[1]
        .to_owned()
}

#[tokio::test]
async fn imports_and_scan_runs_are_listed_with_their_counts_for_every_role() {
    let app = spawn_app().await;
    let (client, cookies, _) = logged_in(&app, "viewer@ncsc.example.no", "viewer").await;
    let html = page(&client, &cookies, "/imports").await;
    assert!(html.contains("No registry import yet."));

    let file = sample("ripe/ripe_constructed_no.txt");
    let out = app.cli(&[
        "import",
        "ripe",
        "--country",
        "NO",
        file.to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = page(&client, &cookies, "/imports").await;
    let id: i64 = regex_lite::Regex::new(r#"<a href="/imports/(\d+)">"#)
        .unwrap()
        .captures(&html)
        .unwrap_or_else(|| panic!("no import in {html}"))[1]
        .parse()
        .unwrap();
    assert!(html.contains("<td>ripe</td>"), "{html}");
    assert!(
        html.contains("+3 ~0 −0"),
        "three organisations added: {html}"
    );
    let detail = page(&client, &cookies, &format!("/imports/{id}")).await;
    assert!(
        detail.contains("<th scope=\"row\">networks</th><td>6</td>"),
        "{detail}"
    );
    assert_eq!(
        client.get("/imports/999999", &cookies).await.status(),
        StatusCode::NOT_FOUND
    );

    // A scan pushed over the REST API, one observation out of its scope.
    let (status, run) = app
        .post(
            "/api/v1/scans",
            &app.ingest,
            json!({ "scanner": "<b>rescan</b>", "checks": ["exchange-proxylogon"], "scope": ["192.0.2.0/24"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let run = run["id"].as_i64().unwrap();
    let line = |ip: &str| {
        json!({ "ip": ip, "port": 443, "observed_at": "2021-03-08T01:00:00Z", "check": "exchange-proxylogon",
                "state": "vulnerable" })
        .to_string()
    };
    let (status, r) = app
        .push(
            &format!("/api/v1/scans/{run}/observations"),
            "application/x-ndjson",
            [line("192.0.2.1"), line("203.0.113.1")].join("\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let html = page(&client, &cookies, "/scan-runs").await;
    assert!(
        html.contains(&format!("<a href=\"/scan-runs/{run}\">")),
        "{html}"
    );
    assert!(html.contains("&#60;b&#62;rescan&#60;/b&#62;") && !html.contains("<b>rescan"));
    assert!(html.contains("running"));
    let detail = page(&client, &cookies, &format!("/scan-runs/{run}")).await;
    assert!(detail.contains(r#"<dd id="accepted">1</dd>"#), "{detail}");
    assert!(detail.contains(r#"<dd id="rejected">1</dd>"#), "{detail}");
    assert!(detail.contains("192.0.2.0/24"));
    app.run_jobs().await;
    assert_eq!(
        client.get("/scan-runs/999999", &cookies).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn an_admin_creates_a_token_seen_once_that_works_until_revoked() {
    let app = spawn_app().await;
    let (client, cookies, csrf) = logged_in(&app, "admin@ncsc.example.no", "admin").await;
    let html = page(&client, &cookies, "/tokens").await;
    for scope in ["read", "ingest", "admin"] {
        assert!(
            html.contains(&format!(r#"name="scope" value="{scope}""#)),
            "{scope}"
        );
    }

    // Refused as a whole: no name, then no scope.
    let r = client
        .post(
            "/tokens",
            &cookies,
            &[("csrf", &csrf), ("name", " "), ("scope", "read")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("The name must not be empty.")
    );
    let r = client
        .post(
            "/tokens",
            &cookies,
            &[("csrf", &csrf), ("name", "<b>scanner</b>")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("Choose at least one scope."));
    assert!(
        html.contains(r#"value="&#60;b&#62;scanner&#60;/b&#62;""#),
        "the name stays, escaped"
    );
    let (_, before) = app.get("/api/v1/tokens", &app.admin).await;

    let r = client
        .post(
            "/tokens",
            &cookies,
            &[
                ("csrf", &csrf),
                ("name", "<b>scanner</b>"),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
    let html = r.text().await.unwrap();
    assert!(html.contains("it will not be shown again"));
    let token = shown_token(&html);
    let (_, after) = app.get("/api/v1/tokens", &app.admin).await;
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + 1
    );

    let (status, _) = app.get("/api/v1/organisations", &token).await;
    assert_eq!(status, StatusCode::OK, "the new token reads");
    let (status, _) = app.get("/api/v1/tokens", &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "with the read scope only");

    let list = page(&client, &cookies, "/tokens").await;
    assert!(!list.contains(&token), "never shown again");
    assert!(list.contains("&#60;b&#62;scanner&#60;/b&#62;") && !list.contains("<b>scanner"));
    let id = after
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "<b>scanner</b>")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let r = client
        .post(
            &format!("/tokens/{id}/revoke"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/tokens");
    let (status, _) = app.get("/api/v1/organisations", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");
    let list = page(&client, &cookies, "/tokens").await;
    assert!(
        !list.contains(&format!("/tokens/{id}/revoke")),
        "no revoke button any more"
    );
    let r = client
        .post("/tokens/999999/revoke", &cookies, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn analysts_may_not_see_or_make_tokens_nor_manage_operators() {
    let app = spawn_app().await;
    let (client, cookies, csrf) = logged_in(&app, "analyst@ncsc.example.no", "analyst").await;
    assert_eq!(
        client.get("/tokens", &cookies).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = client
        .post(
            "/tokens",
            &cookies,
            &[("csrf", &csrf), ("name", "mine"), ("scope", "admin")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, tokens) = app.get("/api/v1/tokens", &app.admin).await;
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["name"] != "mine")
    );
    assert_eq!(
        client.get("/operators/new", &cookies).await.status(),
        StatusCode::FORBIDDEN
    );
    let r = client
        .post(
            "/operators",
            &cookies,
            &[
                ("csrf", &csrf),
                ("email", "x@ncsc.example.no"),
                ("role", "admin"),
                ("password", PASSWORD),
                ("password_again", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client
        .post(
            "/operators/1/role",
            &cookies,
            &[("csrf", &csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let html = page(&client, &cookies, "/scan-runs").await;
    assert!(!html.contains("/tokens\""), "no link to the tokens");
}

#[tokio::test]
async fn an_admin_adds_an_operator_who_logs_in_and_can_be_disabled_but_not_themselves() {
    let app = spawn_app().await;
    let (client, cookies, csrf) = logged_in(&app, "admin@ncsc.example.no", "admin").await;
    assert!(
        page(&client, &cookies, "/operators/new")
            .await
            .contains("at least 12 characters")
    );
    let add = |email: &'static str, password: &'static str, again: &'static str| {
        let (client, cookies, csrf) = (&client, &cookies, &csrf);
        async move {
            client
                .post(
                    "/operators",
                    cookies,
                    &[
                        ("csrf", csrf),
                        ("email", email),
                        ("name", "<b>Ola</b>"),
                        ("role", "analyst"),
                        ("password", password),
                        ("password_again", again),
                    ],
                )
                .await
        }
    };
    let r = add("ola@ncsc.example.no", PASSWORD, "something else entirely").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains("The two passwords differ."));
    assert!(html.contains(r#"value="&#60;b&#62;Ola&#60;/b&#62;""#) && !html.contains(PASSWORD));
    let r = add("ola@ncsc.example.no", "short", "short").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("at least 12 characters"));
    let r = add("admin@ncsc.example.no", PASSWORD, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("exists already"));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM operators")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "nothing stored");

    let r = add("Ola@ncsc.example.no", PASSWORD, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let id: i64 = at.trim_start_matches("/operators/").parse().unwrap();
    let html = page(&client, &cookies, &at).await;
    assert!(html.contains("&#60;b&#62;Ola&#60;/b&#62;") && !html.contains("<b>Ola"));
    let ola = Client::new(&app);
    let ola_cookies = ola.login("ola@ncsc.example.no", PASSWORD).await;
    assert_eq!(
        ola.get("/escalations", &ola_cookies).await.status(),
        StatusCode::OK
    );

    // Made a viewer, then disabled: the session ends with it.
    let r = client
        .post(
            &format!("/operators/{id}/role"),
            &cookies,
            &[("csrf", &csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = client
        .post(
            &format!("/operators/{id}/disable"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = page(&client, &cookies, &at).await;
    assert!(html.contains(r#"<dd id="role-now">viewer</dd>"#) && html.contains("disabled since"));
    assert_eq!(
        ola.get("/escalations", &ola_cookies).await.status(),
        StatusCode::SEE_OTHER
    );
    let audit: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE subject = $1 ORDER BY id")
            .bind(format!("operator:{id}"))
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        audit,
        ["operator.create", "operator.role", "operator.disable"]
    );
    let r = client
        .post(
            &format!("/operators/{id}/enable"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    ola.login("ola@ncsc.example.no", PASSWORD).await;

    // Never themselves.
    let me: i64 =
        sqlx::query_scalar("SELECT id FROM operators WHERE email = 'admin@ncsc.example.no'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let r = client
        .post(
            &format!("/operators/{me}/disable"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("You cannot disable yourself")
    );
    let r = client
        .post(
            &format!("/operators/{me}/role"),
            &cookies,
            &[("csrf", &csrf), ("role", "analyst")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("You cannot take the admin role from yourself")
    );
    let (disabled, role): (bool, String) =
        sqlx::query_as("SELECT disabled_at IS NOT NULL, role FROM operators WHERE id = $1")
            .bind(me)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(!disabled && role == "admin");
    assert_eq!(
        client.get("/operators", &cookies).await.status(),
        StatusCode::OK
    );
}
