//! Notifications over their whole life, as analysts drive them over the API
//! and the outbox sends them: drafting and grouping, preview and approval,
//! recipients and the no-contact queue, sector copies, auto-approval,
//! follow-ups, reminders (the clock moved, never slept through), updates,
//! re-alerts, resolution — and never the same mail twice.

use reqwest::StatusCode;
use serde_json::{Value, json};
use varsel::domain::Actor;

use crate::helpers::{TestApp, spawn_app_with, spawn_second_instance_with};

/// The app, with mail sent when a test says so (`send_mail`).
pub(crate) async fn spawn_app() -> TestApp {
    spawn_app_with(|s| s.outbox_workers = 0).await
}

/// An organisation with networks and contacts `(email, role, language)`.
pub(crate) async fn organisation(
    app: &TestApp,
    reference: &str,
    cidr: &str,
    contacts: &[(&str, &str, &str)],
) -> i64 {
    let id = app.organisation(reference, &[cidr]).await;
    for (email, role, language) in contacts {
        let (status, body) = app
            .post(
                &format!("/api/v1/organisations/{id}/contacts"),
                &app.admin,
                json!({ "email": email, "role": role, "language": language }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    id
}

pub(crate) fn observation(ip: &str, check: &str, state: &str, at: &str) -> String {
    json!({
        "ip": ip, "port": 443, "check": check, "state": state, "observed_at": at,
        "cves": ["CVE-2021-26855"], "product": "Microsoft Exchange", "version": "15.1.2176"
    })
    .to_string()
}

/// Pushes Exchange observations `(ip, state)` seen at `at`.
pub(crate) async fn push(app: &TestApp, hosts: &[(&str, &str)], at: &str) {
    let body: String = hosts
        .iter()
        .map(|(ip, state)| observation(ip, "exchange-proxylogon", state, at) + "\n")
        .collect();
    let (status, summary) = app
        .push("/api/v1/observations", "application/x-ndjson", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
}

/// The ProxyLogon seed, activated over the API, with its drafting run.
pub(crate) async fn active_campaign(app: &TestApp, settings: Value) -> i64 {
    let mut conn = app.pool.acquire().await.unwrap();
    let id = varsel::campaigns::seed::seed(&mut conn, &Actor::Cli, app.state.clock.now(), false)
        .await
        .unwrap();
    if settings != json!({}) {
        let (status, body) = app
            .patch(&format!("/api/v1/campaigns/{id}"), &app.admin, settings)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = app
        .post(
            &format!("/api/v1/campaigns/{id}/activate"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs().await;
    id
}

pub(crate) async fn notifications(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/v1/notifications?{query}"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

pub(crate) async fn notification_of(app: &TestApp, org: i64) -> Value {
    let found = notifications(app, &format!("organisation_id={org}")).await;
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[derive(Debug, sqlx::FromRow)]
struct Delivery {
    kind: String,
    recipient: String,
    language: Option<String>,
    subject: String,
    text_body: String,
    html_body: String,
}

async fn deliveries(app: &TestApp, notification: i64) -> Vec<Delivery> {
    sqlx::query_as(
        "SELECT kind, recipient, language, subject, text_body, html_body
           FROM deliveries WHERE notification_id = $1 ORDER BY id",
    )
    .bind(notification)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

pub(crate) async fn approve_all(app: &TestApp, campaign: i64) -> Vec<i64> {
    let (status, body) = app
        .post(
            &format!("/api/v1/campaigns/{campaign}/approve"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs().await;
    body["approved"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect()
}

/// Sends what the outbox holds (to `.eml` files, the test default).
pub(crate) async fn send_mail(app: &TestApp) -> usize {
    varsel::mail::outbox::Outbox::new(&app.state)
        .send_due()
        .await
        .unwrap()
}

pub(crate) async fn timeline_kinds(app: &TestApp, notification: i64) -> Vec<String> {
    let (status, events) = app
        .get(
            &format!("/api/v1/notifications/{notification}/timeline"),
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) const MARCH_5: &str = "2021-03-05T10:00:00Z";

#[tokio::test]
async fn activation_drafts_one_notification_per_organisation_grouping_its_findings() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "nb")]).await;
    let b = organisation(&app, "B", "198.51.100.0/24", &[]).await;
    push(
        &app,
        &[
            ("192.0.2.1", "vulnerable"),
            ("192.0.2.2", "compromised"),
            ("192.0.2.3", "vulnerable"),
            ("198.51.100.9", "vulnerable"),
            ("192.0.2.4", "not_vulnerable"),
            ("203.0.113.1", "vulnerable"),
        ],
        MARCH_5,
    )
    .await;
    // An exposure is not covered by default.
    push(&app, &[("192.0.2.5", "unknown")], MARCH_5).await;
    app.run_jobs().await;
    let campaign = active_campaign(&app, json!({})).await;

    let all = notifications(&app, &format!("campaign_id={campaign}")).await;
    assert_eq!(all.len(), 2, "{all:?}");
    let na = notification_of(&app, a).await;
    assert_eq!(na["status"], "draft");
    assert_eq!(
        na["findings"], 3,
        "one notification groups all of A's matching findings"
    );
    let nb = notification_of(&app, b).await;
    assert_eq!(nb["findings"], 1);
    let ticket = na["ticket"].as_str().unwrap();
    let re = regex_lite::Regex::new(r"^VARSEL-\d{4}-\d{6}$").unwrap();
    assert!(re.is_match(ticket), "{ticket}");
    assert_ne!(na["ticket"], nb["ticket"]);
    // Nothing is mailed before approval.
    assert!(
        deliveries(&app, na["id"].as_i64().unwrap())
            .await
            .is_empty()
    );
    assert_eq!(
        timeline_kinds(&app, na["id"].as_i64().unwrap()).await,
        ["drafted"]
    );

    // Running the job again changes nothing.
    let mut conn = app.pool.acquire().await.unwrap();
    varsel::jobs::enqueue(
        &mut conn,
        &varsel::jobs::Job::MatchFindings,
        app.state.clock.now(),
    )
    .await
    .unwrap();
    app.run_jobs().await;
    assert_eq!(
        notifications(&app, &format!("campaign_id={campaign}"))
            .await
            .len(),
        2
    );
    assert_eq!(notification_of(&app, a).await["findings"], 3);
}

#[tokio::test]
async fn approval_mails_each_security_contact_once_in_its_language_with_a_private_link() {
    let app = spawn_app().await;
    let a = organisation(
        &app,
        "A",
        "192.0.2.0/24",
        &[
            ("sec@a.no", "security", "nn"),
            ("soc@a.no", "security", "en"),
            ("it@a.no", "technical", "nb"),
        ],
    )
    .await;
    push(
        &app,
        &[("192.0.2.1", "vulnerable"), ("192.0.2.2", "compromised")],
        MARCH_5,
    )
    .await;
    let campaign = active_campaign(&app, json!({})).await;
    let n = notification_of(&app, a).await;
    let id = n["id"].as_i64().unwrap();
    let ticket = n["ticket"].as_str().unwrap().to_owned();

    let (status, preview) = app
        .get(&format!("/api/v1/notifications/{id}/preview"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(
        preview["recipients"],
        json!([{ "email": "sec@a.no", "language": "nb" }, { "email": "soc@a.no", "language": "en" }]),
        "security contacts first; the technical one only when there is none; Nynorsk reads Bokmål"
    );
    let subject = preview["subject"].as_str().unwrap();
    assert!(subject.starts_with(&format!("[{ticket}] ")), "{subject}");
    assert!(
        subject.contains("Sårbare Microsoft Exchange-servere"),
        "{subject}"
    );
    let text = preview["text"].as_str().unwrap();
    for needle in [
        "TLP:AMBER",
        "192.0.2.1",
        "192.0.2.2",
        "kompromittert",
        "Microsoft Exchange 15.1.2176",
        "aldri om passord",
        "Test-ProxyLogon.ps1",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    let (_, preview_en) = app
        .get(
            &format!("/api/v1/notifications/{id}/preview?language=en"),
            &app.admin,
        )
        .await;
    assert!(
        preview_en["subject"]
            .as_str()
            .unwrap()
            .contains("Vulnerable Microsoft Exchange servers")
    );

    assert_eq!(approve_all(&app, campaign).await, vec![id]);
    // Approving again, and running the jobs again, queues nothing more.
    assert!(approve_all(&app, campaign).await.is_empty());
    let mails = deliveries(&app, id).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let by_lang = |l: &str| {
        mails
            .iter()
            .find(|m| m.language.as_deref() == Some(l))
            .unwrap()
    };
    assert_eq!(by_lang("nb").recipient, "sec@a.no");
    assert_eq!(by_lang("en").recipient, "soc@a.no");
    assert_eq!(by_lang("nb").subject, preview["subject"].as_str().unwrap());
    assert!(
        by_lang("en")
            .text_body
            .contains("Patching is **not enough**")
            || by_lang("en").text_body.contains("Patching is not enough")
    );
    // The stored mail holds a placeholder where the token goes.
    assert!(by_lang("nb").text_body.contains("/a/@@VARSEL-LINK-TOKEN@@"));
    assert_eq!(notification_of(&app, a).await["status"], "approved");

    assert_eq!(send_mail(&app).await, 2);
    let (_, shown) = app
        .get(&format!("/api/v1/campaigns/{campaign}"), &app.admin)
        .await;
    assert_eq!(shown["counts"]["notifications"]["sent"], 1, "{shown}");
    assert_eq!(shown["counts"]["notifications"]["draft"], 0, "{shown}");
    let n = notification_of(&app, a).await;
    assert_eq!(n["status"], "sent");
    assert!(n["sent_at"].is_string());
    let files: Vec<String> = std::fs::read_dir(&app.mail_dir)
        .unwrap()
        .map(|e| {
            let raw = std::fs::read(e.unwrap().path()).unwrap();
            let parsed = mail_parser::MessageParser::default()
                .parse(&raw[..])
                .unwrap();
            parsed.body_text(0).unwrap().into_owned()
        })
        .collect();
    assert_eq!(files.len(), 2);
    // Each mail carries its own link; the database has only their hashes.
    let re = regex_lite::Regex::new(r"/a/([0-9a-f]{64})").unwrap();
    let mut tokens: Vec<String> = files
        .iter()
        .map(|f| re.captures(f).expect("a link in the mail")[1].to_owned())
        .collect();
    tokens.dedup();
    assert_eq!(tokens.len(), 2);
    for token in &tokens {
        let stored: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notification_tokens WHERE token_hash = sha256($1::bytea) AND notification_id = $2",
        )
        .bind(token.as_bytes())
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(stored, 1);
        let leaked: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE text_body LIKE '%' || $1 || '%' OR html_body LIKE '%' || $1 || '%'",
        )
        .bind(token)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(leaked, 0, "the token is never stored");
    }
    let kinds = timeline_kinds(&app, id).await;
    assert_eq!(
        kinds,
        [
            "drafted",
            "approved",
            "mail_queued",
            "delivered",
            "delivered"
        ]
    );
}

#[tokio::test]
async fn without_a_usable_contact_a_notification_waits_in_the_no_contact_queue() {
    let app = spawn_app().await;
    let a = organisation(
        &app,
        "A",
        "192.0.2.0/24",
        &[("mgmt@a.no", "management", "nb")],
    )
    .await;
    push(&app, &[("192.0.2.1", "vulnerable")], MARCH_5).await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;
    let waiting = notifications(&app, "status=no_contact").await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["organisation_id"], a);
    let id = waiting[0]["id"].as_i64().unwrap();
    assert!(deliveries(&app, id).await.is_empty());

    // The registry's abuse contact will do; approving again mails it.
    app.post(
        &format!("/api/v1/organisations/{a}/contacts"),
        &app.admin,
        json!({ "email": "abuse@a.no", "role": "abuse", "language": "en", "provenance": "registry" }),
    )
    .await;
    assert_eq!(approve_all(&app, campaign).await, vec![id]);
    let mails = deliveries(&app, id).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].recipient, "abuse@a.no");
    assert!(notifications(&app, "status=no_contact").await.is_empty());
}

#[tokio::test]
async fn an_address_no_mail_server_takes_is_skipped_and_holds_up_nobody() {
    let app = spawn_app().await;
    // The registry checks an address's shape loosely; these two pass it
    // but are no RFC 5322 address.
    let a = organisation(
        &app,
        "A",
        "192.0.2.0/24",
        &[
            ("post(at)a.no@a.no", "security", "nb"),
            ("sikkerhet@a.no", "security", "nb"),
        ],
    )
    .await;
    let b = organisation(
        &app,
        "B",
        "198.51.100.0/24",
        &[("drift(at)b.no@b.no", "security", "nb")],
    )
    .await;
    push(
        &app,
        &[("192.0.2.1", "vulnerable"), ("198.51.100.1", "vulnerable")],
        MARCH_5,
    )
    .await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;

    let na = notification_of(&app, a).await;
    let id = na["id"].as_i64().unwrap();
    let mails = deliveries(&app, id).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].recipient, "sikkerhet@a.no");
    assert_eq!(na["status"], "approved");
    let kinds = timeline_kinds(&app, id).await;
    assert!(
        kinds.contains(&"recipient_unusable".to_owned()),
        "{kinds:?}"
    );
    // Its link was never issued: one link, for the one mail.
    let links: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notification_tokens WHERE notification_id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(links, 1);

    // B has no address at all that would do: the no-contact queue.
    let nb = notification_of(&app, b).await;
    assert_eq!(nb["status"], "no_contact", "{nb}");
    assert!(
        deliveries(&app, nb["id"].as_i64().unwrap())
            .await
            .is_empty()
    );
}

/// A municipality (returned) in the `municipal` sector, whose response
/// team is KOMMUNE-CSIRT, with one vulnerable host seen on 5 March.
async fn municipality_with_a_response_team() -> (TestApp, i64) {
    let app = spawn_app().await;
    let a = organisation(
        &app,
        "KOMMUNE",
        "192.0.2.0/24",
        &[("sec@kommune.no", "security", "nb")],
    )
    .await;
    let (status, body) = app
        .patch(
            &format!("/api/v1/organisations/{a}"),
            &app.admin,
            json!({ "sector": "municipal" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cert = organisation(
        &app,
        "KOMMUNE-CSIRT",
        "198.51.100.0/28",
        &[("soc@kcsirt.no", "security", "nb")],
    )
    .await;
    let (status, body) = crate::helpers::send(
        app.request(
            reqwest::Method::PUT,
            "/api/v1/sectors/municipal",
            &app.admin,
        )
        .json(&json!({ "response_team_id": cert })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    push(&app, &[("192.0.2.1", "vulnerable")], MARCH_5).await;
    (app, a)
}

#[tokio::test]
async fn a_sector_response_team_gets_a_copy_without_the_link() {
    let (app, a) = municipality_with_a_response_team().await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;
    let id = notification_of(&app, a).await["id"].as_i64().unwrap();
    let mails = deliveries(&app, id).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let copy = mails.iter().find(|m| m.kind == "copy").unwrap();
    assert_eq!(copy.recipient, "soc@kcsirt.no");
    assert!(copy.subject.contains("Kopi: "), "{}", copy.subject);
    assert!(copy.text_body.contains("KOMMUNE AS"));
    assert!(
        !copy.text_body.contains("/a/"),
        "the team gets no link to answer for the organisation"
    );

    // With copies off for a campaign, none is made.
    let (app, a) = municipality_with_a_response_team().await;
    let campaign = active_campaign(&app, json!({ "copy_sector_teams": false })).await;
    approve_all(&app, campaign).await;
    let id = notification_of(&app, a).await["id"].as_i64().unwrap();
    assert_eq!(deliveries(&app, id).await.len(), 1);
}

#[tokio::test]
async fn an_auto_approving_campaign_mails_new_drafts_as_ingest_finds_them() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "nb")]).await;
    let campaign = active_campaign(&app, json!({ "auto_approve": true })).await;
    assert!(
        notifications(&app, &format!("campaign_id={campaign}"))
            .await
            .is_empty()
    );
    push(&app, &[("192.0.2.1", "vulnerable")], MARCH_5).await;
    // The ingest request committed the drafting job; nothing is drafted in it.
    assert!(
        notifications(&app, &format!("campaign_id={campaign}"))
            .await
            .is_empty()
    );
    app.run_jobs().await;
    let n = notification_of(&app, a).await;
    assert_eq!(n["status"], "approved");
    assert_eq!(n["approved_by"], "system");
    assert_eq!(deliveries(&app, n["id"].as_i64().unwrap()).await.len(), 1);
}

#[tokio::test]
async fn new_hosts_after_the_advisory_make_one_follow_up_a_day() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "nb")]).await;
    push(&app, &[("192.0.2.1", "vulnerable")], MARCH_5).await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;
    let id = notification_of(&app, a).await["id"].as_i64().unwrap();
    send_mail(&app).await;

    // A new host an hour later: it joins the notification, and its
    // follow-up waits until a day after the advisory.
    app.state.clock.advance(chrono::Duration::hours(1));
    push(&app, &[("192.0.2.2", "vulnerable")], "2021-03-06T10:00:00Z").await;
    app.run_jobs().await;
    assert_eq!(notification_of(&app, a).await["findings"], 2);
    assert_eq!(
        deliveries(&app, id).await.len(),
        1,
        "no follow-up within the day"
    );
    push(&app, &[("192.0.2.3", "vulnerable")], "2021-03-06T11:00:00Z").await;
    app.run_jobs().await;

    app.state.clock.advance(chrono::Duration::hours(23));
    app.run_jobs().await;
    let mails = deliveries(&app, id).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    let followup = &mails[1];
    assert_eq!(followup.kind, "followup");
    assert!(
        followup.subject.contains("Nye funn: "),
        "{}",
        followup.subject
    );
    assert!(
        followup.text_body.contains("[NY] 192.0.2.2")
            && followup.text_body.contains("[NY] 192.0.2.3"),
        "{}",
        followup.text_body
    );
    assert!(!followup.text_body.contains("[NEW] 192.0.2.1"));
    // Both new hosts in one mail, and no second one for them.
    app.state.clock.advance(chrono::Duration::days(2));
    app.run_jobs().await;
    assert_eq!(
        deliveries(&app, id)
            .await
            .iter()
            .filter(|m| m.kind == "followup")
            .count(),
        1
    );
}

#[tokio::test]
async fn reminders_go_out_after_three_and_seven_days_until_acknowledged() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "en")]).await;
    let b = organisation(
        &app,
        "B",
        "198.51.100.0/24",
        &[("sec@b.no", "security", "nb")],
    )
    .await;
    push(
        &app,
        &[("192.0.2.1", "vulnerable"), ("198.51.100.1", "vulnerable")],
        MARCH_5,
    )
    .await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;
    send_mail(&app).await;
    let na = notification_of(&app, a).await["id"].as_i64().unwrap();
    let nb = notification_of(&app, b).await["id"].as_i64().unwrap();
    let reminders = |app: &TestApp, n: i64| {
        let app_pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM deliveries WHERE notification_id = $1 AND kind = 'reminder'",
            )
            .bind(n)
            .fetch_one(&app_pool)
            .await
            .unwrap()
        }
    };
    app.state.clock.advance(chrono::Duration::days(2));
    app.run_jobs().await;
    assert_eq!(reminders(&app, na).await, 0);

    app.state
        .clock
        .advance(chrono::Duration::days(1) + chrono::Duration::minutes(10));
    app.run_jobs().await;
    app.run_jobs().await;
    assert_eq!(reminders(&app, na).await, 1);
    let mails = deliveries(&app, na).await;
    assert!(
        mails[1].subject.contains("Reminder: "),
        "{}",
        mails[1].subject
    );

    // B acknowledges (the advisory page records that; here, as it would).
    sqlx::query(
        "UPDATE notifications SET status = 'acknowledged', acknowledged_at = now() WHERE id = $1",
    )
    .bind(nb)
    .execute(&app.pool)
    .await
    .unwrap();
    app.state.clock.advance(chrono::Duration::days(4));
    app.run_jobs().await;
    assert_eq!(reminders(&app, na).await, 2);
    assert_eq!(reminders(&app, nb).await, 1, "none after acknowledging");
    app.state.clock.advance(chrono::Duration::days(30));
    app.run_jobs().await;
    assert_eq!(reminders(&app, na).await, 2, "the schedule is 3 and 7 days");
    assert!(
        timeline_kinds(&app, na)
            .await
            .iter()
            .filter(|k| *k == "reminder")
            .count()
            == 2
    );
}

#[tokio::test]
async fn a_campaign_update_goes_to_every_organisation_already_mailed() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "nb")]).await;
    let b = organisation(
        &app,
        "B",
        "198.51.100.0/24",
        &[("sec@b.no", "security", "en")],
    )
    .await;
    push(&app, &[("192.0.2.1", "vulnerable")], MARCH_5).await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;
    // B's finding arrives later and stays a draft.
    push(&app, &[("198.51.100.1", "vulnerable")], MARCH_5).await;
    app.run_jobs().await;
    let (status, body) = app
        .post(
            &format!("/api/v1/campaigns/{campaign}/updates"),
            &app.admin,
            json!({ "body_nb": "**Oppdatering:** Anta at serveren er kompromittert.", "body_en": "**Update:** Assume the server is compromised." }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.run_jobs().await;
    app.run_jobs().await;
    let na = notification_of(&app, a).await["id"].as_i64().unwrap();
    let nb = notification_of(&app, b).await["id"].as_i64().unwrap();
    let updates: Vec<Delivery> = deliveries(&app, na)
        .await
        .into_iter()
        .filter(|m| m.kind == "update")
        .collect();
    assert_eq!(updates.len(), 1);
    assert!(updates[0].subject.contains("Oppdatering: "));
    assert!(
        updates[0]
            .text_body
            .contains("Anta at serveren er kompromittert.")
    );
    assert!(
        updates[0]
            .html_body
            .contains("<strong>Oppdatering:</strong>")
    );
    assert!(
        deliveries(&app, nb).await.is_empty(),
        "a draft gets no update"
    );
}

#[tokio::test]
async fn a_mailed_finding_escalating_to_compromised_re_alerts_at_once() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "en")]).await;
    push(
        &app,
        &[("192.0.2.1", "vulnerable"), ("192.0.2.2", "compromised")],
        MARCH_5,
    )
    .await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;
    let id = notification_of(&app, a).await["id"].as_i64().unwrap();
    // Compromised when first mailed: no re-alert for .2.
    app.run_jobs().await;
    assert_eq!(deliveries(&app, id).await.len(), 1);

    push(
        &app,
        &[("192.0.2.1", "compromised")],
        "2021-03-08T10:00:00Z",
    )
    .await;
    app.run_jobs().await;
    let mails = deliveries(&app, id).await;
    assert_eq!(mails.len(), 2, "{mails:?}");
    assert_eq!(mails[1].kind, "realert");
    assert!(
        mails[1].subject.contains("Signs of compromise: "),
        "{}",
        mails[1].subject
    );
    // Seen compromised again: still one re-alert.
    push(
        &app,
        &[("192.0.2.1", "compromised")],
        "2021-03-09T10:00:00Z",
    )
    .await;
    app.run_jobs().await;
    assert_eq!(deliveries(&app, id).await.len(), 2);
}

#[tokio::test]
async fn a_rescan_that_resolves_every_finding_resolves_the_notification() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "nb")]).await;
    push(
        &app,
        &[("192.0.2.1", "vulnerable"), ("192.0.2.2", "vulnerable")],
        MARCH_5,
    )
    .await;
    let campaign = active_campaign(&app, json!({ "closing_mail": true })).await;
    approve_all(&app, campaign).await;
    send_mail(&app).await;
    let id = notification_of(&app, a).await["id"].as_i64().unwrap();

    // The rescan sees .1 patched and does not see .2: both resolved.
    let (status, run) = app
        .post(
            "/api/v1/scans",
            &app.ingest,
            json!({ "scanner": "rescan", "started_at": "2021-03-10T09:00:00Z",
                    "checks": ["exchange-proxylogon"], "scope": ["192.0.2.0/24"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let run_id = run["id"].as_i64().unwrap();
    let (status, body) = app
        .push(
            &format!("/api/v1/scans/{run_id}/observations"),
            "application/x-ndjson",
            observation(
                "192.0.2.1",
                "exchange-proxylogon",
                "not_vulnerable",
                "2021-03-10T10:00:00Z",
            ) + "\n",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs().await;
    assert_eq!(
        notification_of(&app, a).await["status"],
        "sent",
        "one finding still open"
    );
    let (status, body) = app
        .post(
            &format!("/api/v1/scans/{run_id}/finish"),
            &app.ingest,
            json!({ "finished_at": "2021-03-10T11:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs().await;
    let n = notification_of(&app, a).await;
    assert_eq!(n["status"], "resolved");
    assert_eq!(n["open_findings"], 0);
    let mails = deliveries(&app, id).await;
    assert_eq!(mails.iter().filter(|m| m.kind == "closing").count(), 1);
    assert!(
        timeline_kinds(&app, id)
            .await
            .contains(&"resolved".to_owned())
    );
}

#[tokio::test]
async fn jobs_run_twice_and_on_two_instances_mail_no_one_twice() {
    let app = spawn_app().await;
    let mut orgs = Vec::new();
    for i in 0..20 {
        let cidr = format!("198.18.{i}.0/24");
        let email = format!("sec@org{i}.no");
        orgs.push(
            organisation(
                &app,
                &format!("ORG{i}"),
                &cidr,
                &[(&email, "security", "nb")],
            )
            .await,
        );
    }
    let hosts: Vec<(String, &str)> = (0..20)
        .map(|i| (format!("198.18.{i}.1"), "vulnerable"))
        .collect();
    let hosts: Vec<(&str, &str)> = hosts.iter().map(|(ip, s)| (ip.as_str(), *s)).collect();
    push(&app, &hosts, MARCH_5).await;
    let campaign = active_campaign(&app, json!({})).await;
    let second = spawn_second_instance_with(&app, |s| s.outbox_workers = 0).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/campaigns/{campaign}/approve"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // The same mailing job, run by both instances at once, and again.
    use varsel::notifications::mailing::mail_approved;
    let (x, y) = tokio::join!(
        mail_approved(&app.state, campaign),
        mail_approved(&second.state, campaign)
    );
    x.unwrap();
    y.unwrap();
    mail_approved(&app.state, campaign).await.unwrap();
    app.run_jobs().await;
    let per_recipient: Vec<(String, i64)> = sqlx::query_as(
        "SELECT recipient, count(*) FROM deliveries GROUP BY recipient ORDER BY recipient",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(per_recipient.len(), 20);
    assert!(
        per_recipient.iter().all(|(_, n)| *n == 1),
        "{per_recipient:?}"
    );
}

#[tokio::test]
async fn the_advisory_arrives_over_smtp_with_many_hosts_attached_and_a_working_link() {
    let server = crate::smtp::SmtpServer::start(None).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.public_base_url = "https://varsel.example.no".to_owned();
    })
    .await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "en")]).await;
    let hosts: Vec<String> = (1..=25).map(|i| format!("192.0.2.{i}")).collect();
    let hosts: Vec<(&str, &str)> = hosts.iter().map(|ip| (ip.as_str(), "vulnerable")).collect();
    push(&app, &hosts, MARCH_5).await;
    let campaign = active_campaign(&app, json!({})).await;
    approve_all(&app, campaign).await;
    assert_eq!(send_mail(&app).await, 1);

    let received = server.messages();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    let n = notification_of(&app, a).await;
    let ticket = n["ticket"].as_str().unwrap();
    assert_eq!(mail.rcpt_tos, ["sec@a.no"]);
    assert!(
        mail.subject
            .as_deref()
            .unwrap()
            .starts_with(&format!("[{ticket}] Vulnerable Microsoft Exchange"))
    );
    assert_eq!(
        mail.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    let text = mail.text.as_deref().unwrap();
    let html = mail.html.as_deref().unwrap();
    assert!(text.starts_with("TLP:AMBER"), "{text}");
    assert!(text.contains("We never ask for passwords"));
    assert!(text.contains("Affected addresses (25)"));
    assert!(html.contains("Microsoft Exchange vulnerable to ProxyLogon (the centre"));
    // 20 in the body, all 25 in the attachment; each named as the check
    // catalogue names it, not by its id.
    assert_eq!(
        text.matches("Microsoft Exchange vulnerable to ProxyLogon (the centre's scan): vulnerable")
            .count(),
        20
    );
    assert!(!text.contains("exchange-proxylogon"), "{text}");
    assert_eq!(mail.attachments.len(), 1);
    let csv = String::from_utf8(mail.attachments[0].content.clone()).unwrap();
    assert_eq!(csv.lines().count(), 26, "{csv}");
    assert!(mail.attachments[0].content_type.starts_with("text/csv"));

    // The link works: its token's hash is the notification's.
    let re = regex_lite::Regex::new(r"https://varsel\.example\.no/a/([0-9a-f]{64})").unwrap();
    let token = re.captures(text).expect("the advisory link")[1].to_owned();
    assert!(html.contains(&token));
    let owner: Option<i64> = sqlx::query_scalar(
        "SELECT notification_id FROM notification_tokens WHERE token_hash = sha256($1::bytea)",
    )
    .bind(token.as_bytes())
    .fetch_optional(&app.pool)
    .await
    .unwrap();
    assert_eq!(owner, n["id"].as_i64());
    // The message id the server got is the one the timeline's delivery has.
    let (_, list) = app
        .get(
            &format!("/api/v1/notifications/{}/deliveries", n["id"]),
            &app.read,
        )
        .await;
    assert_eq!(list[0]["message_id"].as_str(), mail.message_id.as_deref());
    assert_eq!(list[0]["status"], "sent");
    assert_eq!(list[0]["attempt_log"][0]["reply_code"], 250);
}

#[tokio::test]
async fn a_notification_whose_links_ran_out_is_expired_and_gets_no_more_reminders() {
    let app = spawn_app().await;
    let a = organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "nb")]).await;
    push(&app, &[("192.0.2.1", "vulnerable")], MARCH_5).await;
    let campaign =
        active_campaign(&app, json!({ "link_valid_days": 2, "reminder_days": [3] })).await;
    approve_all(&app, campaign).await;
    send_mail(&app).await;
    let n = notification_of(&app, a).await;
    let id = n["id"].as_i64().unwrap();
    let expires: chrono::DateTime<chrono::Utc> =
        n["link_expires_at"].as_str().unwrap().parse().unwrap();
    let valid = expires - app.state.clock.now();
    assert!(
        valid > chrono::Duration::days(2) - chrono::Duration::minutes(1)
            && valid <= chrono::Duration::days(2)
    );

    app.state
        .clock
        .advance(chrono::Duration::days(3) + chrono::Duration::minutes(10));
    app.run_jobs().await;
    assert_eq!(notification_of(&app, a).await["status"], "expired");
    assert!(
        deliveries(&app, id)
            .await
            .iter()
            .all(|m| m.kind != "reminder")
    );
    assert!(
        timeline_kinds(&app, id)
            .await
            .contains(&"expired".to_owned())
    );
}

#[tokio::test]
async fn approving_needs_an_active_campaign_and_its_own_notifications() {
    let app = spawn_app().await;
    organisation(&app, "A", "192.0.2.0/24", &[("sec@a.no", "security", "nb")]).await;
    push(&app, &[("192.0.2.1", "vulnerable")], MARCH_5).await;
    let mut conn = app.pool.acquire().await.unwrap();
    let draft = varsel::campaigns::seed::seed(&mut conn, &Actor::Cli, app.state.clock.now(), false)
        .await
        .unwrap();
    let (status, problem) = app
        .post(
            &format!("/api/v1/campaigns/{draft}/approve"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, _) = app
        .post("/api/v1/campaigns/999999/approve", &app.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.post(
        &format!("/api/v1/campaigns/{draft}/activate"),
        &app.admin,
        json!({}),
    )
    .await;
    app.run_jobs().await;
    let (status, problem) = app
        .post(
            &format!("/api/v1/campaigns/{draft}/approve"),
            &app.admin,
            json!({ "notification_ids": [424242] }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(problem["field"], "notification_ids");
    let (status, _) = app
        .post(
            &format!("/api/v1/campaigns/{draft}/approve"),
            &app.read,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
