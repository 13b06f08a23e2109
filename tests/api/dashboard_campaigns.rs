//! Dashboard campaigns pages, as a browser meets them: a campaign written
//! in both languages and previewed (its text escaped), refused at its
//! field, activated, its drafts approved and mailed, its progress counted,
//! a notification's delivery and link revoked, a delivery's message shown
//! as sent and resent over SMTP — and viewers only looking.

use reqwest::StatusCode;
use reqwest::header::LOCATION;

use crate::advisory::hidden;
use crate::dashboard::{Client, PASSWORD, operator};
use crate::notifications::{
    MARCH_5, active_campaign, approve_all, notification_of, organisation, push, send_mail,
    spawn_app,
};
use crate::smtp::SmtpServer;

fn texts(title_nb: &str, summary_nb: &str) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("tlp", "AMBER".to_owned()),
        ("severity", "high".to_owned()),
        ("checks", "exchange-proxylogon".to_owned()),
        ("cves", "CVE-2021-26855".to_owned()),
        ("nb_title", title_nb.to_owned()),
        ("nb_summary", summary_nb.to_owned()),
        ("en_title", "Exchange servers exposed".to_owned()),
        (
            "en_summary",
            "Your *Exchange* server is vulnerable.".to_owned(),
        ),
    ];
    for lang in ["nb", "en"] {
        for name in ["impact", "what_to_do", "how_to_check", "references"] {
            let key: &'static str = Box::leak(format!("{lang}_{name}").into_boxed_str());
            fields.push((key, format!("{name} ({lang})")));
        }
    }
    fields
}

fn with(
    mut fields: Vec<(&'static str, String)>,
    more: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    fields.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
    fields
}

fn refs<'a>(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn an_analyst_writes_previews_and_saves_a_campaign_in_both_languages() {
    let app = spawn_app().await;
    operator(&app, "analyst@ncsc.example.no", "analyst");
    let client = Client::new(&app);
    let analyst = client.login("analyst@ncsc.example.no", PASSWORD).await;

    let form = client.get("/campaigns/new", &analyst).await;
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(html.contains(r#"name="nb_summary""#) && html.contains(r#"name="en_summary""#));
    let csrf = hidden(&html, "csrf");

    let fields = texts(
        "Sårbare <script>alert(1)</script> servere",
        "Serveren er **sårbar**. <script>alert(2)</script>",
    );
    let preview = with(
        fields.clone(),
        &[
            ("csrf", &csrf),
            ("slug", "proxylogon"),
            ("action", "preview"),
        ],
    );
    let r = client.post("/campaigns", &analyst, &refs(&preview)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="preview-nb""#), "{html}");
    assert!(html.contains("<strong>sårbar</strong>"), "rendered: {html}");
    assert!(html.contains("<em>Exchange</em>"));
    assert!(html.contains("&#60;script&#62;alert(1)"), "escaped title");
    assert!(!html.contains("<script>alert"), "no script: {html}");
    let r = client.get("/campaigns", &analyst).await;
    assert!(
        r.text().await.unwrap().contains("no-campaigns"),
        "a preview stores nothing"
    );

    let bad = with(
        fields.clone(),
        &[("csrf", &csrf), ("slug", "Not A Slug"), ("action", "save")],
    );
    let r = client.post("/campaigns", &analyst, &refs(&bad)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"id="slug-error""#), "{html}");
    assert!(html.contains(r#"value="Not A Slug""#), "the input kept");

    let good = with(
        fields,
        &[("csrf", &csrf), ("slug", "proxylogon"), ("action", "save")],
    );
    let r = client.post("/campaigns", &analyst, &refs(&good)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = r.headers()[LOCATION].to_str().unwrap().to_owned();
    let id: i64 = at.trim_start_matches("/campaigns/").parse().unwrap();
    let (status, body) = app
        .get(&format!("/api/v1/campaigns/{id}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "draft");
    assert_eq!(
        body["nb"]["title"],
        "Sårbare <script>alert(1)</script> servere"
    );
    assert_eq!(
        body["en"]["summary"],
        "Your *Exchange* server is vulnerable."
    );

    let list = client
        .get("/campaigns", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("Exchange servers exposed") && list.contains("proxylogon"));
    let edit = client.get(&format!("/campaigns/{id}/edit"), &analyst).await;
    assert_eq!(edit.status(), StatusCode::OK);
    let html = edit.text().await.unwrap();
    assert!(
        html.contains("Serveren er **sårbar**."),
        "the markdown to edit"
    );
}

#[tokio::test]
async fn a_campaign_is_activated_approved_and_mailed_from_the_dashboard() {
    let app = spawn_app().await;
    let org = organisation(
        &app,
        "org-a",
        "192.0.2.0/24",
        &[("security@a.example.no", "security", "nb")],
    )
    .await;
    push(&app, &[("192.0.2.10", "vulnerable")], MARCH_5).await;
    operator(&app, "analyst@ncsc.example.no", "analyst");
    operator(&app, "viewer@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    let analyst = client.login("analyst@ncsc.example.no", PASSWORD).await;
    let html = client
        .get("/campaigns/new", &analyst)
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let good = with(
        texts("Sårbare servere", "Serveren er sårbar."),
        &[("csrf", &csrf), ("slug", "proxylogon"), ("action", "save")],
    );
    let r = client.post("/campaigns", &analyst, &refs(&good)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let page = r.headers()[LOCATION].to_str().unwrap().to_owned();

    let r = client
        .post(&format!("{page}/activate"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.run_jobs().await;
    let html = client.get(&page, &analyst).await.text().await.unwrap();
    assert!(html.contains(r#"id="campaign-status">active"#), "{html}");
    assert!(
        html.contains("org-a") || html.contains("approve-"),
        "{html}"
    );
    let draft = regex_lite::Regex::new(r#"name="notification" value="(\d+)""#)
        .unwrap()
        .captures(&html)
        .expect("a draft to approve")[1]
        .to_owned();

    // The viewer sees the progress but no form, and may not act.
    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;
    let seen = client.get(&page, &viewer).await;
    assert_eq!(seen.status(), StatusCode::OK);
    let seen = seen.text().await.unwrap();
    assert!(seen.contains(r#"id="status-draft""#));
    for form in [
        "approve-all-form",
        "approve-form",
        "update-form",
        "close-form",
    ] {
        assert!(!seen.contains(form), "no {form} for a viewer");
    }
    let viewer_csrf = hidden(
        &client
            .get("/campaigns", &viewer)
            .await
            .text()
            .await
            .unwrap(),
        "csrf",
    );
    let refused = client
        .post(
            &format!("{page}/approve"),
            &viewer,
            &[("csrf", &viewer_csrf), ("all", "1")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused = client
        .post(
            "/campaigns",
            &viewer,
            &refs(&with(
                texts("a", "b"),
                &[("csrf", &viewer_csrf), ("slug", "x")],
            )),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // The mail that organisation would get, and its page's text.
    let r = client
        .get(&format!("{page}/preview/{org}?lang=nb"), &analyst)
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let preview = r.text().await.unwrap();
    assert!(preview.contains("security@a.example.no"), "{preview}");
    assert!(preview.contains(r#"id="mail-text""#) && preview.contains("Sårbare servere"));
    let r = client
        .get(&format!("{page}/preview/{org}?lang=en"), &analyst)
        .await;
    assert!(r.text().await.unwrap().contains("Exchange servers exposed"));

    // Nothing chosen: told at the field.
    let r = client
        .post(&format!("{page}/approve"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = client
        .post(
            &format!("{page}/approve"),
            &analyst,
            &[("csrf", &csrf), ("notification", &draft)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.run_jobs().await;
    assert!(send_mail(&app).await >= 1);

    let html = client.get(&page, &analyst).await.text().await.unwrap();
    let count = |status: &str| {
        regex_lite::Regex::new(&format!(
            r#"id="status-{status}"><td>{status}</td><td class="count">(\d+)"#
        ))
        .unwrap()
        .captures(&html)
        .map(|c| c[1].to_owned())
    };
    assert_eq!(count("draft").as_deref(), Some("0"), "{html}");
    assert_ne!(
        count("sent").as_deref().or(count("approved").as_deref()),
        Some("0")
    );

    let list = client
        .get(&format!("/notifications?organisation={org}"), &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains(&format!("/notifications/{draft}")), "{list}");
    let n = format!("/notifications/{draft}");
    let html = client.get(&n, &analyst).await.text().await.unwrap();
    assert!(
        html.contains("security@a.example.no"),
        "the delivery: {html}"
    );
    assert!(html.contains("delivery-status"));

    let r = client
        .post(&format!("{n}/reissue"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let shown = r.text().await.unwrap();
    assert!(shown.contains(r#"id="new-link""#));
    let again = client.get(&n, &analyst).await.text().await.unwrap();
    assert!(!again.contains(r#"id="new-link""#), "shown once");

    // An update, told at its field when empty, then posted and shown escaped.
    let r = client
        .post(
            &format!("{page}/updates"),
            &analyst,
            &[
                ("csrf", &csrf),
                ("body_nb", ""),
                ("body_en", "Patch <b>now</b>."),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("field-error"));
    let r = client
        .post(
            &format!("{page}/updates"),
            &analyst,
            &[
                ("csrf", &csrf),
                ("body_nb", "Oppdater nå."),
                ("body_en", "Patch <b>now</b>."),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The update goes out to those already mailed.
    app.run_jobs().await;
    let html = client.get(&page, &analyst).await.text().await.unwrap();
    assert!(
        html.contains("Oppdater nå.") && html.contains("Patch &#60;b&#62;now"),
        "{html}"
    );

    let r = client
        .post(&format!("{n}/revoke"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let refused = client
        .post(&format!("{n}/revoke"), &viewer, &[("csrf", &viewer_csrf)])
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let viewed = client.get(&n, &viewer).await.text().await.unwrap();
    assert!(!viewed.contains("revoke-form"));

    let r = client
        .post(&format!("{page}/close"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = client.get(&page, &analyst).await.text().await.unwrap();
    assert!(html.contains(r#"id="campaign-status">closed"#));
}

#[tokio::test]
async fn a_delivery_shows_the_message_as_sent_and_is_resent_with_the_same_link() {
    let server = SmtpServer::start(None).await;
    let url = server.url();
    let app = crate::helpers::spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.public_base_url = "https://varsel.example.no".to_owned();
    })
    .await;
    let org = organisation(
        &app,
        "org-a",
        "192.0.2.0/24",
        &[("security@a.example.no", "security", "en")],
    )
    .await;
    // More hosts than the body lists: the mail has them attached.
    let hosts: Vec<String> = (1..=25).map(|i| format!("192.0.2.{i}")).collect();
    let hosts: Vec<(&str, &str)> = hosts.iter().map(|ip| (ip.as_str(), "vulnerable")).collect();
    push(&app, &hosts, MARCH_5).await;
    let campaign = active_campaign(&app, serde_json::json!({})).await;
    approve_all(&app, campaign).await;
    assert_eq!(send_mail(&app).await, 1);
    let first = server.messages().remove(0);
    let text = first.text.clone().unwrap();
    let token = regex_lite::Regex::new(r"https://varsel\.example\.no/a/([0-9a-f]{64})")
        .unwrap()
        .captures(&text)
        .expect("the advisory link")[1]
        .to_owned();
    let id = notification_of(&app, org).await["id"].as_i64().unwrap();
    let n = format!("/notifications/{id}");
    let delivery: i64 = sqlx::query_scalar("SELECT id FROM deliveries WHERE notification_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();

    operator(&app, "analyst@ncsc.example.no", "analyst");
    operator(&app, "viewer@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    let analyst = client.login("analyst@ncsc.example.no", PASSWORD).await;
    let html = client.get(&n, &analyst).await.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    let message = format!("{n}/deliveries/{delivery}");
    assert!(html.contains(&format!(r#"href="{message}""#)), "{html}");
    assert!(html.contains("resend-form"));

    // The message as stored: the text part the server got, the link's
    // token shown as a placeholder, the attachment with its size.
    let page = client.get(&message, &analyst).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(!page.contains(&token), "the token is kept nowhere");
    assert!(page.contains("https://varsel.example.no/a/[token: put in as the mail is sent"));
    let before_link = text.split(&token).next().unwrap();
    let first_line = before_link.lines().next().unwrap();
    assert!(page.contains(first_line), "{first_line:?} in {page}");
    let message_id = first.message_id.clone().unwrap();
    assert!(
        page.contains(&message_id.replace('<', "&#60;").replace('>', "&#62;")),
        "{page}"
    );
    let attachment = &first.attachments[0];
    let row = format!("<tr><td>{}</td>", attachment.filename.as_deref().unwrap());
    let row = &page[page.find(&row).expect("the attachment listed")..];
    assert!(
        row.contains(&format!("<td>{}</td></tr>", attachment.content.len())),
        "its size in bytes: {row}"
    );
    // Only under its own notification.
    let wrong = client
        .get(
            &format!("/notifications/{}/deliveries/{delivery}", id + 1),
            &analyst,
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);

    // A viewer reads the message but may not resend it.
    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;
    let seen = client.get(&n, &viewer).await.text().await.unwrap();
    assert!(!seen.contains("resend-form"));
    let viewer_csrf = hidden(&seen, "csrf");
    let refused = client
        .post(
            &format!("{message}/resend"),
            &viewer,
            &[("csrf", &viewer_csrf)],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // Resent: the same message and link under a new Message-ID.
    let r = client
        .post(&format!("{message}/resend"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let copy: i64 = sqlx::query_scalar("SELECT max(id) FROM deliveries WHERE notification_id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_ne!(copy, delivery);
    // Still on its way: not resent twice, over the REST API either.
    let (status, problem) = app
        .post(
            &format!("/api/v1/deliveries/{copy}/resend"),
            &app.admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("queued"),
        "{problem}"
    );
    assert_eq!(send_mail(&app).await, 1);
    let received = server.messages();
    assert_eq!(received.len(), 2);
    let second = &received[1];
    assert_eq!(second.rcpt_tos, ["security@a.example.no"]);
    assert_ne!(second.message_id, first.message_id);
    assert_eq!(second.text, first.text, "the same message, the same link");
    // On the timeline as a mail queued for the resend, naming the copy (the
    // initial mail's `mail_queued` is there too, so the occasion tells).
    let (status, events) = app
        .get(&format!("/api/v1/notifications/{id}/timeline"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let resent = events
        .as_array()
        .or_else(|| events["items"].as_array())
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "mail_queued" && e["detail"]["occasion"] == "resend")
        .cloned()
        .unwrap_or_else(|| panic!("a resend on the timeline: {events}"));
    assert_eq!(resent["detail"]["resends"], delivery);
    assert_eq!(resent["detail"]["deliveries"][0], copy);
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'delivery.resend' AND subject = $1",
    )
    .bind(format!("delivery:{delivery}"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);

    // The REST API resends too; unknown deliveries are not found.
    let (status, body) = app
        .post(
            &format!("/api/v1/deliveries/{delivery}/resend"),
            &app.admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "queued");
    assert_eq!(body["recipient"], "security@a.example.no");
    let (status, _) = app
        .post(
            "/api/v1/deliveries/999999/resend",
            &app.admin,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A revoked link is not mailed again: reissue it instead.
    let r = client
        .post(&format!("{n}/revoke"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = client
        .post(&format!("{message}/resend"), &analyst, &[("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("reissue the link"));
}

#[tokio::test]
async fn the_progress_page_sorts_its_organisations_and_pages_in_that_order() {
    let app = spawn_app().await;
    // Registered from the last name to the first, so ids and names differ;
    // the names hold `_`, which the page's cursor must survive.
    for i in (1..=52).rev() {
        app.organisation(&format!("org_{i:02}"), &[&format!("192.0.2.{i}/32")])
            .await;
    }
    let hosts: Vec<String> = (1..=52).map(|i| format!("192.0.2.{i}")).collect();
    let hosts: Vec<(&str, &str)> = hosts.iter().map(|ip| (ip.as_str(), "vulnerable")).collect();
    push(&app, &hosts, MARCH_5).await;
    let campaign = active_campaign(&app, serde_json::json!({})).await;
    app.run_jobs().await;
    operator(&app, "viewer@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;
    let names = |html: &str| -> Vec<String> {
        regex_lite::Regex::new(r"<td>(org_\d\d) AS</td>")
            .unwrap()
            .captures_iter(html)
            .map(|c| c[1].to_owned())
            .collect()
    };
    let get = |path: String| {
        let client = &client;
        let viewer = &viewer;
        async move {
            let r = client.get(&path, viewer).await;
            (r.status(), r.text().await.unwrap())
        }
    };
    let page = format!("/campaigns/{campaign}");

    let (_, by_id) = get(page.clone()).await;
    assert_eq!(
        names(&by_id)[0],
        "org_52",
        "drafted in the order registered"
    );
    let (status, first) = get(format!("{page}?sort=organisation")).await;
    assert_eq!(status, StatusCode::OK);
    let shown = names(&first);
    assert_eq!(shown.len(), 50);
    assert_eq!(shown[..3], ["org_01", "org_02", "org_03"]);
    assert!(first.contains(r#"aria-sort="ascending"><a href="/campaigns/"#));
    let next = regex_lite::Regex::new(r#"href="([^"]+)" rel="next""#)
        .unwrap()
        .captures(&first)
        .expect("a second page")[1]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(next.contains("sort=organisation"), "{next}");
    let (_, second) = get(next).await;
    assert_eq!(names(&second), ["org_51", "org_52"]);

    // The notifications list sorts the same way, its filters kept.
    let (status, list) = get(format!("/notifications?campaign={campaign}&sort=status")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        list.contains(r#"aria-sort="ascending"><a href="/notifications?campaign="#),
        "{list}"
    );
    let (_, list) = get(format!(
        "/notifications?campaign={campaign}&sort=organisation"
    ))
    .await;
    let next = regex_lite::Regex::new(r#"href="([^"]+)" rel="next""#)
        .unwrap()
        .captures(&list)
        .expect("a second page")[1]
        .replace("&#38;", "&");
    assert!(
        next.contains(&format!("campaign={campaign}")) && next.contains("after=org_50"),
        "{next}"
    );

    let (status, _) = get(format!("{page}?sort=size")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = get(format!("{page}?sort=organisation&after=no-id")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
