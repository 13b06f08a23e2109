//! The e-mail outbox against a real SMTP server (aiosmtpd on loopback):
//! what a message looks like on arrival, that it arrives exactly once, and
//! what happens when the server is down, answers 4xx or 5xx, or a worker
//! dies mid-send. Mail is queued through `varsel::mail::outbox::enqueue` on
//! the test app's pool; most tests drain the outbox with `send_due` (the
//! app's own workers off) and move the app's clock instead of waiting.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use varsel::domain::{Actor, DomainError};
use varsel::mail::outbox::{self, Finished, Outbox};
use varsel::mail::transport::SendOutcome;
use varsel::mail::{Attachment, DeliveryKind, Mailer, OutgoingMail};

use crate::helpers::{TestApp, spawn_app_with, spawn_second_instance_with};
use crate::smtp::{SmtpServer, free_port};

fn mail(to: &str, key: &str) -> OutgoingMail {
    OutgoingMail {
        link_token_id: None,
        notification_id: None,
        contact_id: None,
        kind: DeliveryKind::Initial,
        dedupe_key: key.to_owned(),
        to: to.to_owned(),
        to_name: Some("Sikkerhet Eksempel".to_owned()),
        language: Some("nb".to_owned()),
        subject: format!("Sårbarhet funnet ({key})"),
        text: format!("Hei,\n\nvi har funnet en sårbarhet. Referanse {key}.\n"),
        html: format!("<p>Hei,</p><p>vi har funnet en <b>sårbarhet</b>. Referanse {key}.</p>"),
        attachments: Vec::new(),
    }
}

async fn enqueue(app: &TestApp, mail: &OutgoingMail) -> Option<i64> {
    let mut tx = app.pool.begin().await.unwrap();
    let id = outbox::enqueue(&mut tx, &app.state.mailer, mail, app.state.clock.now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// A test app sending to `server`, with its own workers off: the test
/// drains the outbox with `send_due`.
async fn app_for(server_url: &str) -> TestApp {
    let url = server_url.to_owned();
    spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.smtp_timeout_seconds = 5;
    })
    .await
}

/// An app whose SMTP server never answers (nothing listens on its port),
/// giving up after `max_attempts`.
async fn app_without_a_server(max_attempts: u32) -> TestApp {
    let port = free_port();
    spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(format!(
            "smtp://127.0.0.1:{port}"
        )));
        s.outbox_workers = 0;
        s.mail_max_attempts = max_attempts;
    })
    .await
}

async fn send_due(app: &TestApp) -> usize {
    Outbox::new(&app.state).send_due().await.unwrap()
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    status: String,
    attempts: i32,
    message_id: String,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    last_reply_code: Option<i32>,
    last_reply: Option<String>,
    sent_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
}

async fn delivery(app: &TestApp, id: i64) -> Row {
    sqlx::query_as(
        "SELECT status, attempts, message_id, next_attempt_at, created_at, last_reply_code,
                last_reply, sent_at, failed_at
           FROM deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

/// (attempt, outcome, reply_code, reply) of every attempt, in order.
async fn attempts(
    app: &TestApp,
    id: i64,
) -> Vec<(i32, Option<String>, Option<i32>, Option<String>)> {
    sqlx::query_as(
        "SELECT attempt, outcome, reply_code, reply FROM delivery_attempts
          WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(id)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

async fn statuses(app: &TestApp) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, count(*) FROM deliveries GROUP BY status ORDER BY status")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn outbox_message_has_the_stored_headers_both_parts_and_the_attachment() {
    let server = SmtpServer::start(None).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.mail_from = "CERT Varsel <varsel@cert.example.no>".to_owned();
        s.mail_reply_to = Some("CERT vakt <vakt@cert.example.no>".to_owned());
    })
    .await;
    let mut m = mail("sikkerhet@eksempel.no", "headers");
    let csv = b"ip,port\n192.0.2.1,443\n".to_vec();
    m.attachments.push(Attachment {
        filename: "funn.csv".to_owned(),
        content_type: "text/csv".to_owned(),
        content: csv.clone(),
    });
    let id = enqueue(&app, &m).await.expect("queued");
    assert_eq!(send_due(&app).await, 1);

    let got = server.messages();
    assert_eq!(got.len(), 1);
    let got = &got[0];
    let row = delivery(&app, id).await;
    assert_eq!(row.status, "sent");
    assert!(row.sent_at.is_some());
    assert_eq!(row.last_reply_code, Some(250));
    assert!(
        row.last_reply
            .as_deref()
            .unwrap_or("")
            .contains("queued as"),
        "{:?}",
        row.last_reply
    );
    assert!(
        row.message_id.ends_with("@cert.example.no>"),
        "{}",
        row.message_id
    );
    assert_eq!(got.message_id.as_deref(), Some(row.message_id.as_str()));
    assert_eq!(got.date, Some(row.created_at.timestamp()));
    assert_eq!(
        got.header("Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(got.reply_to.as_deref(), Some("vakt@cert.example.no"));
    assert_eq!(got.from.as_deref(), Some("varsel@cert.example.no"));
    assert_eq!(got.to.as_deref(), Some("sikkerhet@eksempel.no"));
    assert_eq!(got.rcpt_tos, vec!["sikkerhet@eksempel.no".to_owned()]);
    assert_eq!(got.mail_from, "varsel@cert.example.no");
    assert_eq!(got.subject.as_deref(), Some(m.subject.as_str()));
    // Lines travel with CRLF.
    let text = got.text.as_deref().map(|t| t.replace("\r\n", "\n"));
    assert_eq!(text.as_deref().map(str::trim_end), Some(m.text.trim_end()));
    assert_eq!(got.html.as_deref(), Some(m.html.as_str()));
    assert!(
        got.header("Content-Type")
            .unwrap_or_default()
            .starts_with("multipart/mixed"),
        "{:?}",
        got.header("Content-Type")
    );
    assert_eq!(got.attachments.len(), 1);
    assert_eq!(got.attachments[0].filename.as_deref(), Some("funn.csv"));
    assert_eq!(got.attachments[0].content_type, "text/csv");
    assert_eq!(got.attachments[0].content, csv);

    let timeline = attempts(&app, id).await;
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0].1.as_deref(), Some("sent"));
    assert_eq!(timeline[0].2, Some(250));
}

#[tokio::test]
async fn outbox_without_attachments_is_multipart_alternative() {
    let server = SmtpServer::start(None).await;
    let app = app_for(&server.url()).await;
    enqueue(&app, &mail("a@eksempel.no", "plain"))
        .await
        .unwrap();
    send_due(&app).await;
    let got = server.messages();
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .header("Content-Type")
            .unwrap_or_default()
            .starts_with("multipart/alternative"),
        "{:?}",
        got[0].header("Content-Type")
    );
    assert!(got[0].attachments.is_empty());
    assert!(got[0].text.is_some() && got[0].html.is_some());
}

#[tokio::test]
async fn outbox_dedupe_key_queues_the_same_mail_once() {
    let server = SmtpServer::start(None).await;
    let app = app_for(&server.url()).await;
    let m = mail("a@eksempel.no", "notification:1:contact:1:initial");
    let first = enqueue(&app, &m).await;
    assert!(first.is_some());
    assert_eq!(enqueue(&app, &m).await, None);
    // Even after it was sent.
    send_due(&app).await;
    assert_eq!(enqueue(&app, &m).await, None);
    assert_eq!(send_due(&app).await, 0);
    assert_eq!(server.messages().len(), 1);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn outbox_enqueue_in_a_rolled_back_transaction_queues_nothing() {
    let server = SmtpServer::start(None).await;
    let app = app_for(&server.url()).await;
    let mut tx = app.pool.begin().await.unwrap();
    outbox::enqueue(
        &mut tx,
        &app.state.mailer,
        &mail("a@eksempel.no", "rolled-back"),
        app.state.clock.now(),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(send_due(&app).await, 0);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn outbox_enqueue_refuses_a_mail_that_cannot_be_built() {
    let app = app_for("smtp://127.0.0.1:1").await;
    let mut tx = app.pool.begin().await.unwrap();
    let now = app.state.clock.now();
    let err = outbox::enqueue(
        &mut tx,
        &app.state.mailer,
        &mail("not an address", "x"),
        now,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, DomainError::Invalid { field, .. } if field == "to"),
        "{err:?}"
    );
    let mut m = mail("a@eksempel.no", "y");
    m.attachments.push(Attachment {
        filename: "a.bin".to_owned(),
        content_type: "not a type".to_owned(),
        content: vec![1],
    });
    let err = outbox::enqueue(&mut tx, &app.state.mailer, &m, now)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DomainError::Invalid { field, .. } if field == "attachments[0].content_type"),
        "{err:?}"
    );
}

#[tokio::test]
async fn outbox_server_down_then_up_delivers_every_mail_once() {
    // Up, with a pooled connection to it, then down.
    let mut first = SmtpServer::start(None).await;
    let port = first.port;
    let app = app_for(&first.url()).await;
    enqueue(&app, &mail("warm@eksempel.no", "warm"))
        .await
        .unwrap();
    assert_eq!(send_due(&app).await, 1);
    assert_eq!(first.messages().len(), 1);
    first.stop().await;

    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            enqueue(
                &app,
                &mail(&format!("m{i}@eksempel.no"), &format!("down-{i}")),
            )
            .await
            .unwrap(),
        );
    }
    let before = app.state.clock.now();
    assert_eq!(send_due(&app).await, 5);
    for &id in &ids {
        let row = delivery(&app, id).await;
        assert_eq!(row.status, "queued");
        assert_eq!(row.attempts, 1);
        assert_eq!(row.last_reply_code, None);
        // The first backoff is the base, 30 s.
        let wait = row.next_attempt_at - before;
        assert!(
            wait >= chrono::Duration::seconds(30) && wait < chrono::Duration::seconds(40),
            "{wait}"
        );
        let timeline = attempts(&app, id).await;
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline[0].1.as_deref(), Some("transient"));
        // Refused, or the pooled connection found dead.
        let reply = timeline[0].3.as_deref().unwrap_or("").to_lowercase();
        assert!(
            reply.contains("refused") || reply.contains("network") || reply.contains("connection"),
            "{reply}"
        );
    }

    let server = SmtpServer::start(Some(port)).await;
    // Not due yet: nothing is tried.
    assert_eq!(send_due(&app).await, 0);
    assert!(server.messages().is_empty());
    app.state.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(send_due(&app).await, 5);
    let got = server.messages();
    assert_eq!(got.len(), 5);
    let mut arrived: Vec<String> = got.iter().filter_map(|m| m.message_id.clone()).collect();
    arrived.sort();
    let mut stored = Vec::new();
    for &id in &ids {
        let row = delivery(&app, id).await;
        assert_eq!(row.status, "sent");
        assert_eq!(row.attempts, 2);
        stored.push(row.message_id);
    }
    stored.sort();
    assert_eq!(arrived, stored);
    assert_eq!(send_due(&app).await, 0);
}

#[tokio::test]
async fn outbox_4xx_is_retried_with_backoff_then_sent() {
    let server = SmtpServer::start(None).await;
    let app = app_for(&server.url()).await;
    let id = enqueue(&app, &mail("tempfail-2-desk@eksempel.no", "tempfail"))
        .await
        .unwrap();

    let t0 = app.state.clock.now();
    assert_eq!(send_due(&app).await, 1);
    let row = delivery(&app, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 1));
    assert_eq!(row.last_reply_code, Some(451));
    let wait = row.next_attempt_at - t0;
    assert!(
        wait >= chrono::Duration::seconds(30) && wait < chrono::Duration::seconds(35),
        "{wait}"
    );

    app.state.clock.advance(chrono::Duration::seconds(31));
    let t1 = app.state.clock.now();
    assert_eq!(send_due(&app).await, 1);
    let row = delivery(&app, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 2));
    // The second backoff is twice the first.
    let wait = row.next_attempt_at - t1;
    assert!(
        wait >= chrono::Duration::seconds(60) && wait < chrono::Duration::seconds(65),
        "{wait}"
    );
    app.state.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(send_due(&app).await, 0, "not due before its backoff");

    app.state.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(send_due(&app).await, 1);
    let row = delivery(&app, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 3));
    assert_eq!(server.messages().len(), 1);

    let timeline = attempts(&app, id).await;
    let summary: Vec<(i32, Option<&str>, Option<i32>)> = timeline
        .iter()
        .map(|(n, o, c, _)| (*n, o.as_deref(), *c))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, Some("transient"), Some(451)),
            (2, Some("transient"), Some(451)),
            (3, Some("sent"), Some(250)),
        ]
    );
    assert_eq!(timeline[0].3.as_deref(), Some("451 4.3.0 try again later"));
}

#[tokio::test]
async fn outbox_gives_up_after_max_attempts() {
    let app = app_without_a_server(3).await;
    let id = enqueue(&app, &mail("a@eksempel.no", "give-up"))
        .await
        .unwrap();
    for round in 1..=3 {
        assert_eq!(send_due(&app).await, 1, "round {round}");
        app.state.clock.advance(chrono::Duration::hours(2));
    }
    let row = delivery(&app, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 3));
    assert!(row.failed_at.is_some());
    assert_eq!(send_due(&app).await, 0);
    assert_eq!(attempts(&app, id).await.len(), 3);
}

/// A registered contact; returns (organisation, contact).
async fn contact(app: &TestApp, email: &str) -> (i64, i64) {
    let org = app.organisation("eksempel", &[]).await;
    let (status, contact) = app
        .post(
            &format!("/api/v1/organisations/{org}/contacts"),
            &app.admin,
            json!({ "email": email, "role": "security", "language": "nb" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    (org, contact["id"].as_i64().unwrap())
}

#[tokio::test]
async fn outbox_5xx_fails_at_once_marks_the_contact_and_an_operator_retry_requeues() {
    let server = SmtpServer::start(None).await;
    let app = app_for(&server.url()).await;
    let (org, contact_id) = contact(&app, "bounce-desk@eksempel.no").await;
    let mut m = mail("bounce-desk@eksempel.no", "bounce");
    m.contact_id = Some(contact_id);
    let id = enqueue(&app, &m).await.unwrap();

    assert_eq!(send_due(&app).await, 1);
    let row = delivery(&app, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 1));
    assert_eq!(row.last_reply_code, Some(550));
    assert!(server.messages().is_empty());
    let (bounced, failure): (Option<DateTime<Utc>>, Option<String>) =
        sqlx::query_as("SELECT last_bounce_at, last_failure FROM contacts WHERE id = $1")
            .bind(contact_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(bounced.is_some());
    assert_eq!(failure.as_deref(), Some("550 5.1.1 mailbox unavailable"));
    // The contact's delivery health shows in the API.
    let (status, body) = app
        .get(&format!("/api/v1/organisations/{org}/contacts"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["last_failure"], "550 5.1.1 mailbox unavailable");
    assert!(body[0]["last_bounce_at"].is_string(), "{body}");
    // Failed for good: later rounds leave it alone.
    app.state.clock.advance(chrono::Duration::days(1));
    assert_eq!(send_due(&app).await, 0);

    // An operator finds it among the failed ones, with the server's reply,
    // and retries it: queued, due now, audited.
    let (status, failed) = app
        .get("/api/v1/deliveries?status=failed", &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{failed}");
    assert_eq!(
        failed["items"].as_array().map(Vec::len),
        Some(1),
        "{failed}"
    );
    assert_eq!(failed["items"][0]["id"], id, "{failed}");
    assert_eq!(failed["items"][0]["last_reply_code"], 550, "{failed}");
    assert_eq!(failed["items"][0]["attempt_log"][0]["outcome"], "permanent");
    let (status, _) = app
        .post(
            &format!("/api/v1/deliveries/{id}/retry"),
            &app.read,
            json!({}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "retrying takes the admin scope"
    );
    let (status, retried) = app
        .post(
            &format!("/api/v1/deliveries/{id}/retry"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "queued", "{retried}");
    assert_eq!(retried["failed_at"], Value::Null, "{retried}");
    let row = delivery(&app, id).await;
    assert_eq!(row.status, "queued");
    assert!(row.failed_at.is_none());
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'delivery.retry' AND subject = $1",
    )
    .bind(format!("delivery:{id}"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    // Only a failed one can be retried; an unknown one is not found.
    let (status, problem) = app
        .post(
            &format!("/api/v1/deliveries/{id}/retry"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or("")
            .contains("is queued"),
        "{problem}"
    );
    let (status, _) = app
        .post(
            &format!("/api/v1/deliveries/{}/retry", id + 1000),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, queued) = app
        .get("/api/v1/deliveries?status=queued", &app.admin)
        .await;
    assert_eq!(status, StatusCode::OK, "{queued}");
    assert_eq!(queued["items"][0]["id"], id, "{queued}");

    assert_eq!(send_due(&app).await, 1);
    let row = delivery(&app, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("failed", 2));
    assert_eq!(attempts(&app, id).await.len(), 2);
}

#[tokio::test]
async fn outbox_an_operator_retry_gets_a_new_series_of_attempts() {
    let app = app_without_a_server(2).await;
    let id = enqueue(&app, &mail("a@eksempel.no", "series"))
        .await
        .unwrap();
    send_due(&app).await;
    app.state.clock.advance(chrono::Duration::hours(2));
    send_due(&app).await;
    assert_eq!(delivery(&app, id).await.status, "failed");

    let mut conn = app.pool.acquire().await.unwrap();
    outbox::retry(&mut conn, &Actor::Cli, id, app.state.clock.now())
        .await
        .unwrap();
    drop(conn);
    let t = app.state.clock.now();
    send_due(&app).await;
    let row = delivery(&app, id).await;
    // Attempt 3 is the first of the new series: queued again with the base
    // backoff, not failed at once.
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 3));
    let wait = row.next_attempt_at - t;
    assert!(
        wait >= chrono::Duration::seconds(30) && wait < chrono::Duration::seconds(35),
        "{wait}"
    );
}

#[tokio::test]
async fn outbox_a_dead_workers_claims_are_taken_over_when_the_lease_runs_out() {
    let server = SmtpServer::start(None).await;
    let app = app_for(&server.url()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            enqueue(
                &app,
                &mail(&format!("m{i}@eksempel.no"), &format!("lease-{i}")),
            )
            .await
            .unwrap(),
        );
    }
    // A worker claims two and dies before sending them.
    let now = app.state.clock.now();
    let lease = chrono::Duration::seconds(app.state.settings.mail_lease_seconds as i64);
    let dead = outbox::claim(&app.pool, now, now, lease, 2).await.unwrap();
    assert_eq!(dead.len(), 2);

    // The others go; the two are leased and wait.
    assert_eq!(send_due(&app).await, 3);
    assert_eq!(server.messages().len(), 3);
    app.state
        .clock
        .advance(lease - chrono::Duration::seconds(1));
    assert_eq!(send_due(&app).await, 0, "the lease still holds");

    app.state.clock.advance(chrono::Duration::seconds(2));
    assert_eq!(send_due(&app).await, 2);
    let got = server.messages();
    assert_eq!(got.len(), 5);
    let unique: HashSet<_> = got.iter().map(|m| m.message_id.clone()).collect();
    assert_eq!(unique.len(), 5, "nothing twice");
    for d in &dead {
        let row = delivery(&app, d.id).await;
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 2));
        let timeline = attempts(&app, d.id).await;
        let outcomes: Vec<Option<&str>> = timeline.iter().map(|a| a.1.as_deref()).collect();
        assert_eq!(outcomes, vec![Some("lost"), Some("sent")]);
    }

    // The dead worker wakes up late: its report cannot overwrite the row.
    let late = outbox::finish(
        &app.pool,
        &dead[0],
        &SendOutcome::Transient {
            code: Some(421),
            reply: "421 too late".to_owned(),
        },
        &outbox::RetryPolicy::from_settings(&app.state.settings),
        app.state.clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(late, Finished::LeaseLost);
    assert_eq!(delivery(&app, dead[0].id).await.status, "sent");
}

#[tokio::test]
async fn outbox_worker_killed_mid_send_loses_nothing() {
    let server = SmtpServer::start_with(None, &["--slow", "3"]).await;
    let app = app_for(&server.url()).await;
    let slow = enqueue(&app, &mail("slow-1@eksempel.no", "slow"))
        .await
        .unwrap();
    let quick = enqueue(&app, &mail("quick@eksempel.no", "quick"))
        .await
        .unwrap();

    // A worker sends both; the slow one is still in DATA when it is killed.
    let worker = Outbox::new(&app.state);
    let task = tokio::spawn(async move { worker.send_due().await });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while delivery(&app, quick).await.status != "sent" {
        assert!(
            std::time::Instant::now() < deadline,
            "the quick mail was not sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let _ = task.await;
    assert_eq!(delivery(&app, slow).await.status, "sending");

    // Nothing happens to it before its lease runs out; then it goes.
    assert_eq!(send_due(&app).await, 0);
    app.state.clock.advance(chrono::Duration::seconds(
        app.state.settings.mail_lease_seconds as i64 + 1,
    ));
    assert_eq!(send_due(&app).await, 1);
    let row = delivery(&app, slow).await;
    assert_eq!((row.status.as_str(), row.attempts), ("sent", 2));
    let got = server.messages();
    let to_slow = got
        .iter()
        .filter(|m| m.to.as_deref() == Some("slow-1@eksempel.no"))
        .count();
    // The killed send never finished DATA, so at most the in-flight one
    // could have arrived twice; here it arrived once.
    assert!((1..=2).contains(&to_slow), "{to_slow}");
    assert_eq!(
        got.iter()
            .filter(|m| m.to.as_deref() == Some("quick@eksempel.no"))
            .count(),
        1
    );
}

#[tokio::test]
async fn outbox_two_workers_on_two_instances_send_each_mail_exactly_once() {
    let server = SmtpServer::start(None).await;
    let url = server.url();
    let settings = move |s: &mut varsel::config::Settings| {
        s.smtp_url = Some(varsel::config::Secret::new(url.clone()));
        s.outbox_workers = 2;
        s.mail_concurrency = 3;
    };
    let one = spawn_app_with(settings.clone()).await;
    let two = spawn_second_instance_with(&one, settings).await;

    let total = 200;
    // Queued in a few transactions, while the workers of both instances run.
    for chunk in 0..4 {
        let mut tx = one.pool.begin().await.unwrap();
        for i in 0..total / 4 {
            let n = chunk * (total / 4) + i;
            let m = mail(
                &format!("m{n}@d{}.eksempel.no", n % 7),
                &format!("race-{n}"),
            );
            outbox::enqueue(&mut tx, &one.state.mailer, &m, one.state.clock.now())
                .await
                .unwrap()
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
    // A third contender: the test itself.
    Outbox::new(&two.state).send_due().await.unwrap();

    let got = server.wait_for(total, Duration::from_secs(60)).await;
    // Nothing straggles in later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_again = server.messages();
    assert_eq!(got_again.len(), got.len());
    assert_eq!(got.len(), total, "every mail exactly once");
    let arrived: HashSet<String> = got.iter().filter_map(|m| m.message_id.clone()).collect();
    assert_eq!(arrived.len(), total, "no message-id twice");
    let stored: HashSet<String> = sqlx::query_scalar("SELECT message_id FROM deliveries")
        .fetch_all(&one.pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(arrived, stored);
    assert_eq!(
        statuses(&one).await,
        vec![("sent".to_owned(), total as i64)]
    );
    let extra: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE attempts <> 1")
        .fetch_one(&one.pool)
        .await
        .unwrap();
    assert_eq!(extra, 0, "no delivery was claimed twice");
    drop(two);
}

#[tokio::test]
async fn outbox_workers_wake_on_commit_without_polling() {
    let server = SmtpServer::start(None).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        // A poll far away: only LISTEN/NOTIFY can make this quick.
        s.mail_poll_seconds = 600;
    })
    .await;
    // Let the listener start, then queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    enqueue(&app, &mail("a@eksempel.no", "wake")).await.unwrap();
    let got = server.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
}

#[tokio::test]
async fn outbox_run_stops_claiming_on_cancel_and_finishes_the_send_in_flight() {
    let server = SmtpServer::start_with(None, &["--slow", "2"]).await;
    let app = app_for(&server.url()).await;
    let id = enqueue(&app, &mail("slow-stop@eksempel.no", "stop"))
        .await
        .unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let runner = tokio::spawn(Outbox::new(&app.state).run(cancel.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while delivery(&app, id).await.status != "sending" {
        assert!(std::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    // Queued after the stop: not taken.
    let later = enqueue(&app, &mail("later@eksempel.no", "later"))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(15), runner)
        .await
        .expect("the outbox stopped")
        .unwrap();
    assert_eq!(delivery(&app, id).await.status, "sent");
    assert_eq!(delivery(&app, later).await.status, "queued");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn outbox_domain_rate_limit_defers_without_using_an_attempt() {
    let server = SmtpServer::start(None).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.mail_rate_per_domain_per_minute = 1;
        s.mail_concurrency = 1;
    })
    .await;
    let mut same = Vec::new();
    for i in 0..3 {
        same.push(
            enqueue(
                &app,
                &mail(&format!("m{i}@busy.example.no"), &format!("busy-{i}")),
            )
            .await
            .unwrap(),
        );
    }
    let other = enqueue(&app, &mail("x@quiet.example.no", "quiet"))
        .await
        .unwrap();
    assert_eq!(send_due(&app).await, 2);
    assert_eq!(server.messages().len(), 2);
    assert_eq!(delivery(&app, other).await.status, "sent");
    let mut waiting = 0;
    for &id in &same {
        let row = delivery(&app, id).await;
        match row.status.as_str() {
            "sent" => assert_eq!(row.attempts, 1),
            "queued" => {
                waiting += 1;
                assert_eq!(row.attempts, 0, "a deferral is not an attempt");
                assert!(attempts(&app, id).await.is_empty());
                assert!(row.next_attempt_at > app.state.clock.now());
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(waiting, 2);
}

#[tokio::test]
async fn outbox_global_rate_limit_paces_sending() {
    let server = SmtpServer::start(None).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.mail_rate_per_second = 5;
    })
    .await;
    for i in 0..10 {
        enqueue(
            &app,
            &mail(&format!("m{i}@eksempel.no"), &format!("paced-{i}")),
        )
        .await
        .unwrap();
    }
    let started = std::time::Instant::now();
    assert_eq!(send_due(&app).await, 10);
    // 5 at once (the burst), then 5 more at 5 a second.
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.messages().len(), 10);
}

#[tokio::test]
async fn outbox_file_transport_writes_eml_when_there_is_no_smtp_url() {
    let app = spawn_app_with(|s| s.outbox_workers = 0).await;
    assert!(app.state.settings.smtp_url.is_none());
    let id = enqueue(&app, &mail("a@eksempel.no", "file")).await.unwrap();
    assert_eq!(send_due(&app).await, 1);
    let row = delivery(&app, id).await;
    assert_eq!(row.status, "sent");
    assert!(
        row.last_reply.as_deref().unwrap_or("").contains(".eml"),
        "{:?}",
        row.last_reply
    );
    let files: Vec<_> = std::fs::read_dir(&app.mail_dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        raw.contains(&format!("Message-ID: {}", row.message_id)),
        "{raw}"
    );
    assert!(raw.contains("Auto-Submitted: auto-generated"), "{raw}");
}

fn rsa_key() -> (String, String) {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let private = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
    let public = key.to_public_key().to_public_key_der().unwrap();
    use base64::Engine;
    (
        private,
        base64::engine::general_purpose::STANDARD.encode(public.as_bytes()),
    )
}

const VERIFY_DKIM: &str = r#"
import sys
try:
    import dkim
except ImportError:
    print("python3-dkim is not installed (apt-get install python3-dkim)")
    sys.exit(2)
message = open(sys.argv[1], "rb").read()
record = ("v=DKIM1; k=rsa; p=" + sys.argv[2]).encode()
def dns(name, timeout=5):
    return record if name == b"mail2026._domainkey.cert.example.no." else None
ok = dkim.verify(message, dnsfunc=dns)
print("pass" if ok else "fail")
sys.exit(0 if ok else 1)
"#;

#[tokio::test]
async fn outbox_dkim_signature_is_present_and_verifies() {
    let server = SmtpServer::start(None).await;
    let (private, public) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.pem");
    std::fs::write(&key_file, private).unwrap();
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.mail_from = "CERT <varsel@cert.example.no>".to_owned();
        s.dkim_domain = Some("cert.example.no".to_owned());
        s.dkim_selector = Some("mail2026".to_owned());
        s.dkim_private_key_file = Some(key_file);
    })
    .await;
    let mut m = mail("a@eksempel.no", "dkim");
    m.attachments.push(Attachment {
        filename: "funn.csv".to_owned(),
        content_type: "text/csv".to_owned(),
        content: b"ip\n192.0.2.1\n".to_vec(),
    });
    enqueue(&app, &m).await.unwrap();
    send_due(&app).await;
    let got = server.messages();
    assert_eq!(got.len(), 1);
    let signature = got[0].header("DKIM-Signature").expect("a DKIM-Signature");
    let tags: Vec<String> = signature
        .split(';')
        .map(|t| t.split_whitespace().collect::<String>())
        .collect();
    assert!(
        tags.contains(&"d=cert.example.no".to_owned()),
        "{signature}"
    );
    assert!(tags.contains(&"s=mail2026".to_owned()), "{signature}");

    let eml = dir.path().join("received.eml");
    std::fs::write(&eml, &got[0].raw).unwrap();
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(VERIFY_DKIM)
        .arg(&eml)
        .arg(&public)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dkimpy: {said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said.trim(), "pass");

    // And the verifier is not a rubber stamp: a changed subject fails.
    let raw = String::from_utf8_lossy(&got[0].raw).replace("(dkim)", "(dkIm)");
    std::fs::write(&eml, raw).unwrap();
    let out = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(VERIFY_DKIM)
        .arg(&eml)
        .arg(&public)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "fail");
}

#[tokio::test]
async fn outbox_bad_dkim_configuration_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("dkim.pem");
    std::fs::write(
        &key_file,
        "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let mut settings = varsel::config::Settings {
        dkim_domain: Some("cert.example.no".to_owned()),
        dkim_selector: Some("s".to_owned()),
        dkim_private_key_file: Some(key_file.clone()),
        mail_dir: dir.path().join("mail"),
        ..Default::default()
    };
    let err = Mailer::from_settings(&settings).err().expect("refused");
    assert!(
        err.to_string().contains("VARSEL_DKIM_PRIVATE_KEY_FILE"),
        "{err}"
    );
    settings.dkim_private_key_file = Some(dir.path().join("missing.pem"));
    let err = Mailer::from_settings(&settings).err().expect("refused");
    assert!(err.to_string().contains("cannot read"), "{err}");
    settings.dkim_private_key_file = None;
    let err = Mailer::from_settings(&settings).err().expect("refused");
    assert!(err.to_string().contains("all of"), "{err}");
    settings.dkim_domain = None;
    settings.dkim_selector = None;
    settings.mail_from = "not a mailbox".to_owned();
    let err = Mailer::from_settings(&settings).err().expect("refused");
    assert!(err.to_string().contains("VARSEL_MAIL_FROM"), "{err}");
}

#[tokio::test]
async fn outbox_a_pooled_connection_the_server_closed_is_replaced_and_the_next_mail_arrives_once() {
    // The server says 421 and hangs up 0.1 s after every message, as one
    // does at its idle timeout: the connection the pool kept is dead.
    let server = SmtpServer::start_with(None, &["--hang-up"]).await;
    let app = app_for(&server.url()).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(
            enqueue(
                &app,
                &mail(&format!("m{i}@eksempel.no"), &format!("hang-up-{i}")),
            )
            .await
            .unwrap(),
        );
        assert_eq!(send_due(&app).await, 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let got = server.messages();
    assert_eq!(got.len(), 3, "each mail arrived once");
    for &id in &ids {
        let row = delivery(&app, id).await;
        assert_eq!((row.status.as_str(), row.attempts), ("sent", 1));
        let timeline = attempts(&app, id).await;
        assert_eq!(timeline.len(), 1);
        assert_eq!(timeline[0].1.as_deref(), Some("sent"));
    }
}

#[tokio::test]
async fn outbox_a_server_that_stalls_mid_send_is_a_transient_failure_within_the_timeout() {
    // DATA takes 5 s; the timeout is 1 s. lettre itself would wait.
    let server = SmtpServer::start_with(None, &["--slow", "5"]).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.smtp_timeout_seconds = 1;
    })
    .await;
    let id = enqueue(&app, &mail("slow-stall@eksempel.no", "stall"))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(send_due(&app).await, 1);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "{took:?}");
    let row = delivery(&app, id).await;
    assert_eq!((row.status.as_str(), row.attempts), ("queued", 1));
    assert_eq!(row.last_reply_code, None);
    let reply = row.last_reply.unwrap_or_default();
    assert!(reply.contains("timed out"), "{reply}");
    let timeline = attempts(&app, id).await;
    assert_eq!(timeline[0].1.as_deref(), Some("transient"));

    // A healthy mail right after goes out on a fresh connection.
    let quick = enqueue(&app, &mail("quick@eksempel.no", "after-stall"))
        .await
        .unwrap();
    assert_eq!(send_due(&app).await, 1);
    assert_eq!(delivery(&app, quick).await.status, "sent");
}
