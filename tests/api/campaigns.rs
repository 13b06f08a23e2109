//! Campaigns over HTTP: drafting, validation naming the field, the
//! draft → active → closed lifecycle with its 409s, updates, listing, the
//! seed campaign from the command line and what it matches of a real
//! Shadowserver Exchange report.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, sample, spawn_app};

fn text(lang: &str) -> Value {
    json!({
        "title": format!("Sårbare servere ({lang})"),
        "summary": "We found **vulnerable** servers.",
        "impact": "An attacker can take over the server.",
        "what_to_do": "1. Patch now.\n2. Check for compromise.",
        "how_to_check": "Run `Test-ProxyLogon.ps1`.",
        "references": "- Microsoft: *Multiple Security Updates Released for Exchange Server*",
    })
}

fn new_campaign(slug: &str) -> Value {
    json!({
        "slug": slug,
        "tlp": "AMBER+STRICT",
        "severity": "critical",
        "nb": text("nb"),
        "en": text("en"),
        "checks": ["exchange-proxylogon"],
        "cves": ["cve-2021-26855", "CVE-2021-26855", "CVE-2021-27065"],
    })
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, campaign) = app.post("/api/v1/campaigns", &app.admin, body).await;
    assert_eq!(status, StatusCode::CREATED, "{campaign}");
    campaign
}

async fn invalid_field(app: &TestApp, body: Value) -> String {
    let (status, problem) = app.post("/api/v1/campaigns", &app.admin, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["type"], "urn:varsel:problem:invalid-field");
    problem["field"].as_str().unwrap_or_default().to_owned()
}

async fn post_action(app: &TestApp, id: &Value, action: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/campaigns/{id}/{action}"),
        &app.admin,
        json!({}),
    )
    .await
}

#[tokio::test]
async fn a_campaign_is_created_and_shown() {
    let app = spawn_app().await;
    let c = create(&app, new_campaign("exchange-2021")).await;
    assert_eq!(c["status"], "draft");
    assert_eq!(c["tlp"], "AMBER+STRICT");
    assert_eq!(c["cves"], json!(["CVE-2021-26855", "CVE-2021-27065"]));
    // Defaults.
    assert_eq!(c["states"], json!(["vulnerable", "compromised"]));
    assert_eq!(c["reminder_days"], json!([3, 7]));
    assert_eq!(c["auto_approve"], false);
    assert_eq!(c["copy_sector_teams"], true);
    assert_eq!(c["closing_mail"], false);
    assert_eq!(c["followup_interval_hours"], 24);
    assert_eq!(c["link_valid_days"], 90);
    assert_eq!(c["activated_at"], Value::Null);
    assert!(
        c["created_by"].as_str().unwrap().starts_with("api-client:"),
        "{c}"
    );

    let (status, shown) = app
        .get(&format!("/api/v1/campaigns/{}", c["id"]), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["slug"], "exchange-2021");
    assert_eq!(shown["nb"]["title"], "Sårbare servere (nb)");
    assert_eq!(
        shown["counts"],
        json!({
            "open_findings": 0,
            "organisations": 0,
            "unattributed_findings": 0,
            "by_check": [],
            "notifications": {
                "draft": 0, "approved": 0, "no_contact": 0, "sent": 0,
                "acknowledged": 0, "resolved": 0, "expired": 0,
            },
        })
    );
    assert_eq!(shown["updates"], json!([]));
    assert!(
        shown["tlp_wording"]["en"]
            .as_str()
            .unwrap()
            .contains("within their organization"),
        "{shown}"
    );
    assert!(
        shown["tlp_wording"]["nb"]
            .as_str()
            .unwrap()
            .contains("egen organisasjon"),
        "{shown}"
    );
    let what_to_do = shown["html"]["en"]["what_to_do"].as_str().unwrap();
    assert!(what_to_do.contains("<ol>"), "{what_to_do}");
    assert!(
        shown["html"]["nb"]["summary"]
            .as_str()
            .unwrap()
            .contains("<strong>vulnerable</strong>"),
        "{shown}"
    );

    // A read token may not; an unknown id is a 404.
    let (status, _) = app
        .get(&format!("/api/v1/campaigns/{}", c["id"]), &app.read)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, problem) = app.get("/api/v1/campaigns/999999", &app.admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
}

#[tokio::test]
async fn invalid_campaigns_name_the_field() {
    let app = spawn_app().await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = new_campaign("x");
        change(&mut body);
        body
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|b| {
                b["en"].as_object_mut().unwrap().remove("title");
            }),
            "en.title",
        ),
        (with(&|b| b["nb"]["summary"] = json!("   ")), "nb.summary"),
        (
            with(&|b| b["en"]["title"] = json!("x".repeat(201))),
            "en.title",
        ),
        (
            with(&|b| b["nb"]["title"] = json!("two\nlines")),
            "nb.title",
        ),
        (
            with(&|b| b["en"]["impact"] = json!("x".repeat(20_001))),
            "en.impact",
        ),
        (
            with(&|b| b["cves"] = json!(["CVE-2021-26855", "CVE-21-1"])),
            "cves[1]",
        ),
        (with(&|b| b["tlp"] = json!("AMBER STRICT")), "tlp"),
        (with(&|b| b["severity"] = json!("info")), "severity"),
        (
            with(&|b| b["reminder_days"] = json!([7, 3])),
            "reminder_days",
        ),
        (
            with(&|b| b["reminder_days"] = json!([3, 400])),
            "reminder_days[1]",
        ),
        (with(&|b| b["states"] = json!([])), "states"),
        (with(&|b| b["states"] = json!(["resolved"])), "states[0]"),
        (
            with(&|b| b["followup_interval_hours"] = json!(721)),
            "followup_interval_hours",
        ),
        (
            with(&|b| b["link_valid_days"] = json!(0)),
            "link_valid_days",
        ),
        (with(&|b| b["slug"] = json!("Exchange 2021")), "slug"),
        (
            with(&|b| b["checks"] = json!(["exchange proxylogon"])),
            "checks[0]",
        ),
        (
            with(&|b| {
                b["checks"] = json!([]);
                b["cves"] = json!([]);
            }),
            "checks",
        ),
        (
            with(&|b| b["en"]["how_to_check"] = Value::Null),
            "en.how_to_check",
        ),
        (
            with(&|b| {
                b["nb"].as_object_mut().unwrap().remove("references");
            }),
            "nb.references",
        ),
    ];
    for (body, field) in cases {
        assert_eq!(invalid_field(&app, body.clone()).await, field, "{body}");
    }
    // An unknown field is refused, naming it.
    let (status, problem) = app
        .post(
            "/api/v1/campaigns",
            &app.admin,
            with(&|b| b["colour"] = json!("red")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem}"
    );
    let (status, problem) = app
        .post(
            "/api/v1/campaigns",
            &app.admin,
            with(&|b| b["nb"]["colour"] = json!("red")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("colour"),
        "{problem}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM campaigns")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing invalid was stored");

    // The slug is unique.
    create(&app, new_campaign("taken")).await;
    let (status, problem) = app
        .post("/api/v1/campaigns", &app.admin, new_campaign("taken"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["field"], "slug");
}

#[tokio::test]
async fn drafts_change_active_campaigns_take_updates_then_close() {
    let app = spawn_app().await;
    let c = create(&app, new_campaign("lifecycle")).await;
    let id = &c["id"];
    let path = format!("/api/v1/campaigns/{id}");

    // A draft changes; the rules hold on the result.
    let (status, edited) = app
        .patch(
            &path,
            &app.admin,
            json!({ "nb": { "title": "Ny tittel" }, "checks": [], "reminder_days": [1, 2, 30] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["nb"]["title"], "Ny tittel");
    assert_eq!(edited["en"]["title"], "Sårbare servere (en)");
    assert_eq!(edited["checks"], json!([]));
    assert_eq!(edited["reminder_days"], json!([1, 2, 30]));
    let (status, problem) = app.patch(&path, &app.admin, json!({ "cves": [] })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "checks");
    let (status, problem) = app
        .patch(
            &path,
            &app.admin,
            json!({ "nb": { "how_to_check": " \n " } }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "nb.how_to_check");
    let (status, _) = app
        .patch(
            "/api/v1/campaigns/999999",
            &app.admin,
            json!({ "tlp": "RED" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Updates go to active campaigns only.
    let update = json!({ "body_nb": "**Oppdatering:** mer.", "body_en": "**Update:** more." });
    let (status, problem) = app
        .post(&format!("{path}/updates"), &app.admin, update.clone())
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("draft"),
        "{problem}"
    );
    // Closing a draft is no way to activate it either.
    let (status, _) = post_action(&app, id, "close").await;
    assert_eq!(status, StatusCode::CONFLICT);

    let before = chrono::Utc::now();
    let (status, active) = post_action(&app, id, "activate").await;
    assert_eq!(status, StatusCode::OK, "{active}");
    assert_eq!(active["status"], "active");
    let activated_at: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(active["activated_at"].clone()).unwrap();
    assert!(activated_at >= before - chrono::Duration::seconds(1));
    let (status, problem) = post_action(&app, id, "activate").await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("is active"),
        "{problem}"
    );
    // Sent as it is: no more edits.
    let (status, problem) = app.patch(&path, &app.admin, json!({ "tlp": "RED" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("is active"),
        "{problem}"
    );
    // Invalid input is still a 422, whatever the status.
    let (status, problem) = app
        .patch(&path, &app.admin, json!({ "slug": "Not A Slug" }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    let (status, first) = app
        .post(&format!("{path}/updates"), &app.admin, update)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        first["body_html_en"],
        "<p><strong>Update:</strong> more.</p>\n"
    );
    let (status, problem) = app
        .post(
            &format!("{path}/updates"),
            &app.admin,
            json!({ "body_nb": "Bare norsk" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "body_en");
    let (status, second) = app
        .post(
            &format!("{path}/updates"),
            &app.admin,
            json!({ "body_nb": "Andre", "body_en": "Second" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (_, shown) = app.get(&path, &app.admin).await;
    let ids: Vec<&Value> = shown["updates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| &u["id"])
        .collect();
    assert_eq!(ids, [&second["id"], &first["id"]], "newest first");

    let (status, closed) = post_action(&app, id, "close").await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert!(closed["closed_at"].is_string());
    for action in ["close", "activate"] {
        let (status, problem) = post_action(&app, id, action).await;
        assert_eq!(status, StatusCode::CONFLICT, "{action}: {problem}");
    }
    let (status, _) = app
        .post(
            &format!("{path}/updates"),
            &app.admin,
            json!({ "body_nb": "x", "body_en": "x" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for action in ["activate", "close"] {
        let (status, _) = post_action(&app, &json!(999999), action).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    // Every change is in the audit log, by the client that made it.
    let events: Vec<(String, String)> =
        sqlx::query_as("SELECT action, actor FROM audit_events WHERE subject = $1 ORDER BY id")
            .bind(format!("campaign:{id}"))
            .fetch_all(&app.pool)
            .await
            .unwrap();
    let actions: Vec<&str> = events.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        actions,
        [
            "campaign.create",
            "campaign.update",
            "campaign.activate",
            "campaign.post_update",
            "campaign.post_update",
            "campaign.close"
        ]
    );
    assert!(
        events
            .iter()
            .all(|(_, actor)| actor.starts_with("api-client:1:test-admin")),
        "{events:?}"
    );
    // Activation and updates enqueued their mailing work.
    app.run_jobs().await;
}

#[tokio::test]
async fn campaigns_are_listed_by_status_a_page_at_a_time() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for slug in ["one", "two", "three"] {
        ids.push(create(&app, new_campaign(slug)).await["id"].clone());
    }
    let (status, _) = post_action(&app, &ids[1], "activate").await;
    assert_eq!(status, StatusCode::OK);

    let slugs = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["slug"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, page) = app.get("/api/v1/campaigns", &app.admin).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(slugs(&page), ["one", "two", "three"]);
    assert!(page.get("next_cursor").is_none(), "{page}");
    let (_, page) = app.get("/api/v1/campaigns?status=draft", &app.admin).await;
    assert_eq!(slugs(&page), ["one", "three"]);
    let (_, page) = app.get("/api/v1/campaigns?status=active", &app.admin).await;
    assert_eq!(slugs(&page), ["two"]);
    let (_, page) = app.get("/api/v1/campaigns?status=closed", &app.admin).await;
    assert_eq!(slugs(&page), Vec::<String>::new());

    let (_, first) = app.get("/api/v1/campaigns?limit=2", &app.admin).await;
    assert_eq!(slugs(&first), ["one", "two"]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(
            &format!("/api/v1/campaigns?limit=2&cursor={cursor}"),
            &app.admin,
        )
        .await;
    assert_eq!(slugs(&rest), ["three"]);
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    for bad in ["status=open", "limit=0", "cursor=x"] {
        let (status, problem) = app
            .get(&format!("/api/v1/campaigns?{bad}"), &app.admin)
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {problem}");
    }
    // Activation and updates enqueued their mailing work.
    app.run_jobs().await;
}

#[tokio::test]
async fn html_in_campaign_text_is_escaped_or_stripped() {
    let app = spawn_app().await;
    let mut body = new_campaign("xss");
    body["nb"]["title"] = json!("<script>alert(1)</script> Exchange");
    body["en"]["summary"] = json!(
        "Hi <script>alert(2)</script><b onclick=\"x()\">there</b> [click](javascript:alert(3))"
    );
    let c = create(&app, body).await;
    // Stored as written: it is the rendering that makes it safe.
    assert_eq!(c["nb"]["title"], "<script>alert(1)</script> Exchange");
    let (_, shown) = app
        .get(&format!("/api/v1/campaigns/{}", c["id"]), &app.admin)
        .await;
    assert_eq!(
        shown["html"]["nb"]["title"],
        "&lt;script&gt;alert(1)&lt;/script&gt; Exchange"
    );
    let summary = shown["html"]["en"]["summary"].as_str().unwrap();
    assert!(!summary.contains("<script"), "{summary}");
    assert!(!summary.contains("alert"), "{summary}");
    assert!(!summary.contains("onclick"), "{summary}");
    // Raw HTML beyond what Markdown makes is not kept; its text is.
    assert!(summary.contains("there"), "{summary}");
    assert!(!summary.contains("<b"), "{summary}");
    assert!(summary.contains(">click</a>"), "{summary}");
}

fn seed(app: &TestApp, args: &[&str]) -> i64 {
    let mut all = vec!["campaign", "seed", "proxylogon"];
    all.extend_from_slice(args);
    let out = app.cli(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not an id: {stdout:?}"))
}

#[tokio::test]
async fn the_seed_campaign_is_stored_once_from_the_command_line() {
    let app = spawn_app().await;
    let id = seed(&app, &[]);
    assert_eq!(seed(&app, &[]), id, "seeding again gives the same campaign");
    assert_eq!(
        seed(&app, &["--with-update"]),
        id,
        "an existing seed is not changed"
    );
    let (status, c) = app
        .get(&format!("/api/v1/campaigns/{id}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["slug"], "exchange-proxylogon-2021-03");
    assert_eq!(c["status"], "draft");
    assert_eq!(c["tlp"], "AMBER");
    assert_eq!(c["severity"], "critical");
    assert_eq!(c["reminder_days"], json!([3, 7]));
    assert_eq!(c["states"], json!(["vulnerable", "compromised"]));
    assert_eq!(
        c["cves"],
        json!([
            "CVE-2021-26855",
            "CVE-2021-26857",
            "CVE-2021-26858",
            "CVE-2021-27065"
        ])
    );
    assert_eq!(
        c["nb"]["title"],
        "Sårbare Microsoft Exchange-servere hos dere (ProxyLogon)"
    );
    assert_eq!(
        c["en"]["title"],
        "Vulnerable Microsoft Exchange servers in your network (ProxyLogon)"
    );
    let html = c["html"]["nb"]["what_to_do"].as_str().unwrap();
    assert!(html.contains("<ol>"), "{html}");
    assert!(html.contains("<strong>ikke nok</strong>"), "{html}");
    assert_eq!(c["updates"], json!([]));
    let created: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'campaign.create' AND actor = 'cli'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(created, 1);

    // With its update: activated, the update of 8 March 2021 posted.
    let other = spawn_app().await;
    let id = seed(&other, &["--with-update"]);
    let (_, c) = other
        .get(&format!("/api/v1/campaigns/{id}"), &other.admin)
        .await;
    assert_eq!(c["status"], "active");
    let updates = c["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 1, "{c}");
    assert_eq!(updates[0]["posted_at"], "2021-03-08T20:30:00Z");
    assert!(
        updates[0]["body_nb"]
            .as_str()
            .unwrap()
            .starts_with("**Oppdatering 08.03.2021:**")
    );
    assert_eq!(seed(&other, &["--with-update"]), id);
    let (_, again) = other
        .get(&format!("/api/v1/campaigns/{id}"), &other.admin)
        .await;
    assert_eq!(again["updates"].as_array().unwrap().len(), 1);
    // The activation enqueued its drafting.
    other.run_jobs().await;
}

const NDJSON: &str = "application/x-ndjson";

/// The seed's checks are the check ids Varsel gives the scanners' ProxyLogon
/// results: the Shadowserver Exchange sample's vulnerable and compromised
/// servers (a web shell names no CVE) are all covered, and so is another
/// scanner's finding that names one of the CVEs; exposures and other checks
/// are not.
#[tokio::test]
async fn the_seed_matches_a_shadowserver_exchange_report() {
    let app = spawn_app().await;
    app.organisation("NO-EXCHANGE", &["192.0.2.0/25"]).await;
    let mut conn = app.pool.acquire().await.unwrap();
    let id = varsel::campaigns::seed::seed(
        &mut conn,
        &varsel::domain::Actor::Cli,
        chrono::Utc::now(),
        false,
    )
    .await
    .unwrap();
    drop(conn);

    let report = std::fs::read(sample("shadowserver/scan_exchange.csv")).unwrap();
    let (status, r) = app
        .push(
            "/api/v1/observations?format=shadowserver&filename=2021-03-10-scan_exchange-no.csv",
            "text/csv",
            report,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 7, "{r}");
    // Not covered: an HTTP report, an exposure, a patched server.
    let http = std::fs::read(sample("shadowserver/scan_http.csv")).unwrap();
    let (status, r) = app
        .push(
            "/api/v1/observations?format=shadowserver&report=scan_http",
            "text/csv",
            http,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let line = |ip: &str, check: &str, state: &str, cves: &[&str]| {
        json!({ "ip": ip, "port": 443, "observed_at": "2021-03-10T08:00:00Z", "check": check,
                "state": state, "cves": cves })
        .to_string()
    };
    let lines = [
        line(
            "192.0.2.50",
            "other-scanner",
            "vulnerable",
            &["CVE-2021-27065"],
        ),
        line("192.0.2.51", "exchange-proxylogon", "unknown", &[]),
        line("192.0.2.52", "exchange-proxylogon", "not_vulnerable", &[]),
    ];
    let (status, r) = app
        .push("/api/v1/observations", NDJSON, lines.join("\n"))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");

    let (status, c) = app
        .get(&format!("/api/v1/campaigns/{id}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    // 5 vulnerable and 2 compromised Exchange servers, plus the CVE match.
    assert_eq!(c["counts"]["open_findings"], 8, "{c}");
    // 192.0.2.10 and 192.0.2.50 are NO-EXCHANGE's; the others nobody's.
    assert_eq!(c["counts"]["organisations"], 1, "{c}");
    assert_eq!(c["counts"]["unattributed_findings"], 6, "{c}");
}
