//! The durable job queue: work enqueued with the change that causes it,
//! retried with backoff, kept when it fails, claimed again when a worker
//! dies, and run by the background workers when they are on.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

/// A vulnerable observation of `ip`, pushed as canonical NDJSON.
async fn push_finding(app: &crate::helpers::TestApp, ip: &str) {
    let line = json!({
        "ip": ip, "port": 443, "check": "exchange-proxylogon", "state": "vulnerable",
        "observed_at": "2021-03-05T10:00:00Z", "cves": ["CVE-2021-26855"]
    });
    let (status, body) = app
        .push(
            "/api/v1/observations",
            "application/x-ndjson",
            format!("{line}\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn owner_of_finding(app: &crate::helpers::TestApp) -> serde_json::Value {
    let (_, page) = app.get("/api/v1/findings", &app.read).await;
    page["items"][0]["organisation_ref"].clone()
}

async fn job_rows(app: &crate::helpers::TestApp) -> Vec<(String, String, i32)> {
    sqlx::query_as("SELECT kind, status, attempts FROM jobs WHERE dedupe_key NOT LIKE 'periodic:%' ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_registry_change_enqueues_late_attribution_in_its_transaction() {
    let app = spawn_app().await;
    push_finding(&app, "198.51.100.7").await;
    assert_eq!(owner_of_finding(&app).await, serde_json::Value::Null);

    let org = app.organisation("LATE", &[]).await;
    for cidr in ["198.51.100.0/24", "198.51.100.0/25"] {
        let (status, body) = app
            .post(
                &format!("/api/v1/organisations/{org}/networks"),
                &app.admin,
                json!({ "cidr": cidr }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // The request committed the work, not done it: one job for both changes.
    assert_eq!(
        job_rows(&app).await,
        vec![("attribute_triage".to_owned(), "pending".to_owned(), 0)]
    );
    assert_eq!(owner_of_finding(&app).await, serde_json::Value::Null);

    assert_eq!(app.run_jobs().await, 1);
    assert_eq!(owner_of_finding(&app).await, "LATE");
    assert_eq!(
        job_rows(&app).await,
        vec![("attribute_triage".to_owned(), "done".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_failing_job_backs_off_then_fails_and_an_operator_retries_it() {
    let app = spawn_app().await;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, max_attempts, run_at)
         VALUES ('from_the_future', '{\"kind\": \"from_the_future\"}', 2, $1) RETURNING id",
    )
    .bind(app.state.clock.now())
    .fetch_one(&app.pool)
    .await
    .unwrap();

    assert_eq!(app.run_jobs().await, 1);
    let (status, attempts, run_at, error): (String, i32, chrono::DateTime<chrono::Utc>, String) =
        sqlx::query_as("SELECT status, attempts, run_at, last_error FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    assert!(error.contains("unknown job"), "{error}");
    let wait = run_at - app.state.clock.now();
    assert!(
        wait > chrono::Duration::seconds(3) && wait <= chrono::Duration::seconds(5),
        "{wait}"
    );
    // Not due yet: nothing runs.
    assert_eq!(app.run_jobs().await, 0);

    app.state.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(app.run_jobs().await, 1);
    let (status, page) = app.get("/api/v1/jobs?status=failed", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    let failed = page["items"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{page}");
    assert_eq!(failed[0]["id"], id);
    assert_eq!(failed[0]["attempts"], 2);

    let (status, job) = app
        .post(&format!("/api/v1/jobs/{id}/retry"), &app.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["status"], "pending");
    assert_eq!(job["attempts"], 0);
    let (status, problem) = app
        .post(&format!("/api/v1/jobs/{id}/retry"), &app.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, _) = app
        .post("/api/v1/jobs/999999/retry", &app.admin, json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_events WHERE action = 'job.retry'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
    app.allow_leftover_jobs();
}

#[tokio::test]
async fn a_job_whose_worker_died_is_claimed_again_after_its_lease() {
    let app = spawn_app().await;
    push_finding(&app, "198.51.100.7").await;
    app.organisation("LATE", &["198.51.100.0/24"]).await;
    // A second change; a worker claims its job, then dies (never finishes).
    let org = app.organisation("OTHER", &[]).await;
    app.post(
        &format!("/api/v1/organisations/{org}/asns"),
        &app.admin,
        json!({ "asn": 64500 }),
    )
    .await;
    let claimed = varsel::jobs::queue::claim(&app.pool, app.state.clock.now())
        .await
        .unwrap()
        .expect("a due job");
    assert_eq!(claimed.job, Ok(varsel::jobs::Job::AttributeTriage));
    // Leased: nobody else takes it.
    assert_eq!(app.run_jobs().await, 0);

    app.state
        .clock
        .advance(varsel::jobs::queue::LEASE + chrono::Duration::seconds(1));
    assert!(app.run_jobs().await >= 1);
    // The dead worker's late report cannot overwrite the new outcome.
    varsel::jobs::queue::fail(&app.pool, &claimed, app.state.clock.now(), "too late")
        .await
        .unwrap();
    let (status, attempts): (String, i32) =
        sqlx::query_as("SELECT status, attempts FROM jobs WHERE id = $1")
            .bind(claimed.id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("done", 2));
}

#[tokio::test]
async fn background_workers_are_woken_by_the_commit() {
    let app = spawn_app_with(|s| {
        s.job_workers = 1;
        s.job_poll_seconds = 3600;
    })
    .await;
    push_finding(&app, "198.51.100.7").await;
    let org = app.organisation("LATE", &[]).await;
    let (status, _) = app
        .post(
            &format!("/api/v1/organisations/{org}/networks"),
            &app.admin,
            json!({ "cidr": "198.51.100.0/24" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // The worker is another task: wait for it, with a deadline far shorter
    // than its poll interval, so only the notification can have woken it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while owner_of_finding(&app).await != "LATE" {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never ran the job"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The finding changes before the worker marks its job done.
    while sqlx::query_scalar::<_, i64>("SELECT count(*) FROM jobs WHERE status = 'running'")
        .fetch_one(&app.pool)
        .await
        .unwrap()
        > 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never finished the job"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
