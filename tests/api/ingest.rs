use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, sample, spawn_app, spawn_app_with};

const NDJSON: &str = "application/x-ndjson";

fn line(ip: &str, at: &str, state: &str) -> String {
    json!({ "ip": ip, "port": 443, "observed_at": at, "check": "exchange-proxylogon", "state": state,
            "cves": ["CVE-2021-26855"], "severity": "critical" })
    .to_string()
}

async fn push_lines(app: &TestApp, lines: &[String]) -> Value {
    let (status, body) = app
        .push("/api/v1/observations", NDJSON, lines.join("\n"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn findings(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/v1/findings?{query}"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn history(app: &TestApp, id: &Value) -> Vec<String> {
    let (_, detail) = app.get(&format!("/api/v1/findings/{id}"), &app.read).await;
    detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn count(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_fixture_format_is_ingested() {
    // Real samples: some scanned private networks (nmap 192.168.0.1,
    // Shadowserver's SMB report 10.20.30.41).
    let app = spawn_app_with(|s| s.allow_private_addresses = true).await;
    // 192.0.2.10 is in it; 192.0.2.200, same ASN, is not.
    app.organisation("NO-EXCHANGE", &["192.0.2.0/25"]).await;
    let cases: [(&str, &str, &str, u64); 9] = [
        (
            "shadowserver/scan_exchange.csv",
            "text/csv",
            "format=shadowserver&filename=2021-03-10-scan_exchange-no.csv",
            7,
        ),
        (
            "shadowserver/scan_http.csv",
            "text/csv",
            "format=shadowserver&report=scan_http",
            2,
        ),
        (
            "shadowserver/scan_smb.csv",
            "text/csv",
            "format=shadowserver&report=scan_smb",
            3,
        ),
        (
            "nuclei/nuclei_sample_legacy_v2.jsonl",
            NDJSON,
            "format=nuclei",
            0,
        ),
        ("nuclei/nuclei_sample_v3.jsonl", NDJSON, "format=nuclei", 2),
        ("nmap/nmap_sample.xml", "application/xml", "format=nmap", 0),
        (
            "masscan/masscan_sample.json",
            "application/json",
            "format=masscan",
            0,
        ),
        (
            "masscan/masscan_sample.list",
            "text/plain",
            "format=masscan",
            0,
        ),
        (
            "shadowserver/scan_exchange.csv",
            "text/csv",
            "format=shadowserver&report=scan_exchange",
            7,
        ),
    ];
    for (file, content_type, query, expected) in cases {
        let body = std::fs::read(sample(file)).unwrap();
        let (status, r) = app
            .push(&format!("/api/v1/observations?{query}"), content_type, body)
            .await;
        assert_eq!(status, StatusCode::OK, "{file}: {r}");
        let accepted = r["accepted"].as_u64().unwrap();
        if expected > 0 {
            assert_eq!(accepted, expected, "{file}: {r}");
        } else {
            assert!(accepted > 0, "{file}: {r}");
        }
    }
    // The Exchange report: web shells are compromises; attribution at work.
    let exchange = findings(&app, "check=scan_exchange&limit=100").await;
    assert_eq!(
        exchange.len(),
        7,
        "a second push of the same report adds no findings"
    );
    let compromised = exchange
        .iter()
        .filter(|f| f["state"] == "compromised")
        .count();
    assert_eq!(compromised, 2);
    let attributed: Vec<&Value> = exchange
        .iter()
        .filter(|f| f["organisation_ref"] == "NO-EXCHANGE")
        .collect();
    assert_eq!(attributed.len(), 1);
    assert_eq!(attributed[0]["ip"], "192.0.2.10");
    assert_eq!(attributed[0]["cves"], json!(["CVE-2021-26855"]));
}

#[tokio::test]
async fn bad_lines_are_reported_with_line_field_and_reason() {
    let app = spawn_app().await;
    let big = "x".repeat(20_000);
    let body = [
        line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable"),
        line("999.1.1.1", "2021-03-05T10:00:00Z", "vulnerable"),
        line("192.0.2.3", "2021-03-05T10:00:00", "vulnerable"),
        line("192.0.2.4", "2021-03-05T10:00:00Z", "broken"),
        json!({ "ip": "192.0.2.5", "observed_at": "2021-03-05T10:00:00Z", "check": "c", "evidence": { "blob": big } }).to_string(),
        "{not json".to_owned(),
        line("192.0.2.7", "2030-03-05T10:00:00Z", "vulnerable"),
    ];
    let (status, atomic) = app
        .push("/api/v1/observations?atomic=true", NDJSON, body.join("\n"))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{atomic}");
    assert_eq!(atomic["errors"].as_array().unwrap().len(), 6);
    assert_eq!(
        count(&app, "observations").await,
        0,
        "atomic: nothing stored"
    );

    let r = push_lines(&app, &body).await;
    assert_eq!(r["accepted"], 1);
    assert_eq!(r["rejected"], 6);
    let errors = r["errors"].as_array().unwrap();
    let by_line = |n: u64| {
        errors
            .iter()
            .find(|e| e["line"] == n)
            .unwrap_or_else(|| panic!("no error for line {n}: {r}"))
    };
    assert_eq!(by_line(2)["field"], "ip");
    assert_eq!(by_line(3)["field"], "observed_at");
    assert!(
        by_line(3)["reason"].as_str().unwrap().contains("zone"),
        "{r}"
    );
    assert_eq!(by_line(4)["field"], "state");
    assert_eq!(by_line(5)["field"], "evidence");
    assert!(by_line(6)["reason"].as_str().is_some());
    assert_eq!(by_line(7)["field"], "observed_at");
    assert_eq!(count(&app, "observations").await, 1);
}

#[tokio::test]
async fn an_observation_is_stored_raw_and_normalised_as_sent() {
    let app = spawn_app().await;
    let raw = json!({
        "ip": "2001:db8::1", "port": 8443, "protocol": "tcp", "observed_at": "2021-03-05T10:00:00.123456Z",
        "check": "exchange-proxylogon", "state": "compromised", "severity": "critical",
        "cves": ["CVE-2021-26855", "CVE-2021-27065"], "hostname": "mail\u{0}.eksempel.no",
        "product": "Microsoft Exchange – Øst", "version": "15.2.792.3", "asn": 4_200_000_000_u32,
        "evidence": { "path": "/owa/auth/x.js", "tab\there": "line\nbreak \\ \"quoted\"" }
    })
    .to_string();
    push_lines(&app, std::slice::from_ref(&raw)).await;

    let f = findings(&app, "").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["ip"], "2001:db8::1");
    assert_eq!(f[0]["port"], 8443);
    assert_eq!(f[0]["asn"], 4_200_000_000_u32);
    assert_eq!(f[0]["cves"], json!(["CVE-2021-26855", "CVE-2021-27065"]));
    let (_, detail) = app
        .get(&format!("/api/v1/findings/{}", f[0]["id"]), &app.read)
        .await;
    let o = &detail["observations"][0];
    assert_eq!(o["raw"], raw.as_str(), "the line exactly as sent");
    assert_eq!(o["observed_at"], "2021-03-05T10:00:00.123456Z");
    assert_eq!(o["state"], "compromised");
    assert_eq!(o["cves"], json!(["CVE-2021-26855", "CVE-2021-27065"]));
    // PostgreSQL text cannot hold NUL; it is replaced, not refused.
    assert_eq!(o["hostname"], "mail\u{FFFD}.eksempel.no");
    assert_eq!(o["product"], "Microsoft Exchange – Øst");
    assert_eq!(
        o["evidence"],
        json!({ "path": "/owa/auth/x.js", "tab\there": "line\nbreak \\ \"quoted\"" })
    );
}

#[tokio::test]
async fn a_retried_request_changes_nothing() {
    let app = spawn_app().await;
    let body = [
        line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable"),
        line("192.0.2.2", "2021-03-05T10:00:00Z", "vulnerable"),
    ]
    .join("\n");
    let send = |body: String| {
        app.request(reqwest::Method::POST, "/api/v1/observations", &app.ingest)
            .header("content-type", NDJSON)
            .header("idempotency-key", "batch-0001")
            .body(body)
            .send()
    };
    let first = send(body.clone()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    let again = send(body.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first, again);
    assert_eq!(count(&app, "observations").await, 2);
    assert_eq!(count(&app, "findings").await, 2);

    let other = send(line("192.0.2.9", "2021-03-05T10:00:00Z", "vulnerable"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(count(&app, "observations").await, 2);

    // Same for opening a scan run.
    let open = |key: &'static str| {
        app.request(reqwest::Method::POST, "/api/v1/scans", &app.ingest)
            .header("idempotency-key", key)
            .json(&json!({ "scanner": "s1", "checks": ["exchange-proxylogon"] }))
            .send()
    };
    let a: Value = open("run-1").await.unwrap().json().await.unwrap();
    let b: Value = open("run-1").await.unwrap().json().await.unwrap();
    assert_eq!(a["id"], b["id"]);
    assert_eq!(count(&app, "scan_runs").await, 1);
}

#[tokio::test]
async fn a_body_cut_off_mid_stream_stores_nothing() {
    let app = spawn_app().await;
    let good: String = (0..3000)
        .map(|i| {
            line(
                &format!("10.{}.{}.1", i / 250, i % 250),
                "2021-03-05T10:00:00Z",
                "vulnerable",
            ) + "\n"
        })
        .collect();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = vec![
        Ok(good.into_bytes()),
        Ok(b"{\"ip\": \"10.99.0.1\", \"observed_at\": \"2021-03-05T1".to_vec()),
        Err(std::io::Error::other("client went away")),
    ];
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let result = app
        .request(reqwest::Method::POST, "/api/v1/observations", &app.ingest)
        .header("content-type", NDJSON)
        .body(body)
        .send()
        .await;
    if let Ok(response) = result {
        assert!(
            !response.status().is_success(),
            "a broken body must not succeed"
        );
    }
    // The server notices the broken body and rolls back: no transaction of
    // the request stays open (a hanging request fails here; counting rows
    // alone would pass while the transaction is still open).
    wait_for_backends(&app, IN_A_TRANSACTION, 0).await;
    assert_eq!(count(&app, "observations").await, 0);
    assert_eq!(count(&app, "findings").await, 0);
}

#[tokio::test]
async fn gzip_bodies_and_size_limits() {
    use std::io::Write;
    let app = spawn_app_with(|s| s.max_ingest_bytes = 10_000).await;
    let body = line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(body.as_bytes()).unwrap();
    let gz = enc.finish().unwrap();
    let r = app
        .request(reqwest::Method::POST, "/api/v1/observations", &app.ingest)
        .header("content-type", NDJSON)
        .header("content-encoding", "gzip")
        .body(gz)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["accepted"], 1);

    let big: String = (0..200).map(|_| body.clone() + "\n").collect();
    let (status, problem) = app.push("/api/v1/observations", NDJSON, big.clone()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{problem}");
    // Also when the size only shows after decompression.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(big.as_bytes()).unwrap();
    let r = app
        .request(reqwest::Method::POST, "/api/v1/observations", &app.ingest)
        .header("content-type", NDJSON)
        .header("content-encoding", "gzip")
        .body(enc.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(count(&app, "observations").await, 1);

    let (status, problem) = app
        .push("/api/v1/observations", "application/pdf", "x")
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{problem}");
}

#[tokio::test]
async fn lifecycle_resolve_reopen_new_late_escalate() {
    let app = spawn_app().await;
    let ip = "192.0.2.10";
    push_lines(&app, &[line(ip, "2021-03-05T10:00:00Z", "vulnerable")]).await;
    let f = findings(&app, "").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["status"], "open");
    let id = f[0]["id"].clone();

    // Escalation: signs of compromise.
    let r = push_lines(&app, &[line(ip, "2021-03-06T10:00:00Z", "compromised")]).await;
    assert_eq!(r["findings"]["escalated"], 1, "{r}");
    // Resolved by a not_vulnerable observation.
    push_lines(&app, &[line(ip, "2021-03-07T10:00:00Z", "not_vulnerable")]).await;
    let f = findings(&app, "").await;
    assert_eq!(f[0]["status"], "resolved");
    assert_eq!(f[0]["worst_state"], "compromised");
    // A late vulnerable observation (older than last_seen) does not reopen.
    push_lines(&app, &[line(ip, "2021-03-05T12:00:00Z", "vulnerable")]).await;
    assert_eq!(findings(&app, "").await[0]["status"], "resolved");
    // Seen again within 90 days: reopened, same finding.
    push_lines(&app, &[line(ip, "2021-04-01T10:00:00Z", "vulnerable")]).await;
    let f = findings(&app, "").await;
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["id"], id);
    assert_eq!(f[0]["status"], "open");
    push_lines(&app, &[line(ip, "2021-04-02T10:00:00Z", "not_vulnerable")]).await;
    // Seen again after more than 90 days: a new finding.
    push_lines(&app, &[line(ip, "2021-08-01T10:00:00Z", "vulnerable")]).await;
    let f = findings(&app, "").await;
    assert_eq!(f.len(), 1, "only the current finding by default");
    assert_ne!(f[0]["id"], id);
    assert_eq!(findings(&app, "include_superseded=true").await.len(), 2);

    assert_eq!(
        history(&app, &id).await,
        ["opened", "escalated", "resolved", "reopened", "resolved"]
    );
    let (_, detail) = app.get(&format!("/api/v1/findings/{id}"), &app.read).await;
    assert_eq!(detail["observations"].as_array().unwrap().len(), 6);
    assert!(
        detail["observations"][0]["raw"]
            .as_str()
            .unwrap()
            .contains(ip)
    );
}

#[tokio::test]
async fn a_finished_scoped_run_resolves_what_it_did_not_see() {
    let app = spawn_app().await;
    push_lines(
        &app,
        &[
            line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable"),
            line("192.0.2.2", "2021-03-05T10:00:00Z", "vulnerable"),
            line("198.51.100.1", "2021-03-05T10:00:00Z", "vulnerable"),
        ],
    )
    .await;
    let (status, run) = app
        .post(
            "/api/v1/scans",
            &app.ingest,
            json!({ "scanner": "rescan", "checks": ["exchange-proxylogon"], "scope": ["192.0.2.0/24"], "started_at": "2021-03-08T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let id = run["id"].as_i64().unwrap();
    let (status, r) = app
        .push(&format!("/api/v1/scans/{id}/observations"), NDJSON, [
            line("192.0.2.1", "2021-03-08T01:00:00Z", "vulnerable"),
            line("203.0.113.1", "2021-03-08T01:00:00Z", "vulnerable"),
            json!({ "ip": "192.0.2.1", "observed_at": "2021-03-08T01:00:00Z", "check": "other-check" }).to_string(),
        ].join("\n"))
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 1, "{r}");
    let fields: Vec<&str> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["ip", "check"], "{r}");

    let (status, finished) = app
        .post(
            &format!("/api/v1/scans/{id}/finish"),
            &app.ingest,
            json!({ "finished_at": "2021-03-08T02:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{finished}");
    assert_eq!(finished["findings_resolved"], 1);
    let (status, _) = app
        .post(
            &format!("/api/v1/scans/{id}/finish"),
            &app.ingest,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .push(
            &format!("/api/v1/scans/{id}/observations"),
            NDJSON,
            line("192.0.2.1", "2021-03-08T01:00:00Z", "vulnerable"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let open: Vec<String> = findings(&app, "status=open")
        .await
        .iter()
        .map(|f| f["ip"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        open,
        ["192.0.2.1", "198.51.100.1"],
        "outside the scope stays open"
    );
    let resolved = findings(&app, "status=resolved").await;
    assert_eq!(resolved[0]["ip"], "192.0.2.2");
    let (_, detail) = app
        .get(
            &format!("/api/v1/findings/{}", resolved[0]["id"]),
            &app.read,
        )
        .await;
    assert!(
        detail["history"][1]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("scan run {id}"))
    );

    let (_, scan) = app.get(&format!("/api/v1/scans/{id}"), &app.read).await;
    assert_eq!(scan["observations_accepted"], 1);
    assert_eq!(scan["observations_rejected"], 2);
}

#[tokio::test]
async fn attribution_is_at_observation_time_and_the_triage_queue_empties() {
    let app = spawn_app().await;
    let a = app.organisation("A", &["192.0.2.0/24"]).await;
    let b = app.organisation("B", &[]).await;
    let (_, nets) = app
        .get(&format!("/api/v1/organisations/{a}/networks"), &app.read)
        .await;
    app.patch(
        &format!("/api/v1/networks/{}", nets[0]["id"]),
        &app.admin,
        json!({ "organisation_id": b }),
    )
    .await;
    // Just after the change (which the registry timed to the microsecond).
    let now = (chrono::Utc::now() + chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    push_lines(
        &app,
        &[
            line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable"),
            line("192.0.2.2", &now, "vulnerable"),
            line("203.0.113.5", "2021-03-05T10:00:00Z", "vulnerable"),
        ],
    )
    .await;
    let old = findings(&app, "cidr=192.0.2.1/32").await;
    assert_eq!(
        old[0]["organisation_ref"], "A",
        "owner when it was observed"
    );
    let new = findings(&app, "cidr=192.0.2.2/32").await;
    assert_eq!(new[0]["organisation_ref"], "B");
    assert_eq!(
        findings(&app, &format!("organisation_id={b}")).await.len(),
        1
    );
    let (status, org_findings) = app
        .get(&format!("/api/v1/organisations/{a}/findings"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(org_findings["items"].as_array().unwrap().len(), 1);

    let triage = findings(&app, "unattributed=true").await;
    assert_eq!(triage.len(), 1);
    assert_eq!(triage[0]["ip"], "203.0.113.5");
    assert_eq!(triage[0]["attribution"], "none");

    app.organisation("LATE", &["203.0.113.0/24"]).await;
    assert!(findings(&app, "unattributed=true").await.is_empty());
    let f = findings(&app, "cidr=203.0.113.0/24").await;
    assert_eq!(f[0]["organisation_ref"], "LATE");
    assert_eq!(history(&app, &f[0]["id"]).await, ["opened", "attributed"]);
}

#[tokio::test]
async fn findings_read_api_filters_pages_and_formats() {
    let app = spawn_app().await;
    let lines: Vec<String> = (1..=5)
        .map(|i| {
            line(
                &format!("192.0.2.{i}"),
                "2021-03-05T10:00:00Z",
                "vulnerable",
            )
        })
        .collect();
    push_lines(&app, &lines).await;
    push_lines(&app, &[json!({ "ip": "192.0.2.9", "port": 3389, "observed_at": "2021-03-05T10:00:00Z", "check": "rdp-open" }).to_string()]).await;

    let (_, page1) = app
        .get(
            "/api/v1/findings?check=exchange-proxylogon&limit=2",
            &app.read,
        )
        .await;
    assert_eq!(page1["items"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap().to_owned();
    let (_, page2) = app
        .get(
            &format!("/api/v1/findings?check=exchange-proxylogon&limit=2&cursor={cursor}"),
            &app.read,
        )
        .await;
    assert_ne!(page1["items"][0]["id"], page2["items"][0]["id"]);
    let (_, last) = app
        .get(
            "/api/v1/findings?check=exchange-proxylogon&limit=5",
            &app.read,
        )
        .await;
    assert!(last.get("next_cursor").is_none());

    assert_eq!(findings(&app, "cve=cve-2021-26855").await.len(), 5);
    assert_eq!(findings(&app, "cidr=192.0.2.8/29").await.len(), 1);
    assert_eq!(findings(&app, "since=2021-03-06T00:00:00Z").await.len(), 0);
    let (status, problem) = app.get("/api/v1/findings?status=maybe", &app.read).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem["field"], "status");
    // An empty filter names nothing: refused, not read as "any".
    let (status, problem) = app.get("/api/v1/findings?sector=", &app.read).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "sector");

    let csv = app
        .request(
            reqwest::Method::GET,
            "/api/v1/findings?format=csv",
            &app.read,
        )
        .send()
        .await
        .unwrap();
    assert!(
        csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = csv.text().await.unwrap();
    assert!(
        text.starts_with("id,ip,port,protocol,check,status"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 7);
    let nd = app
        .request(reqwest::Method::GET, "/api/v1/findings", &app.read)
        .header("accept", "application/x-ndjson")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(nd.lines().count(), 6);
    assert!(nd.lines().all(|l| serde_json::from_str::<Value>(l).is_ok()));

    let (_, summary) = app.get("/api/v1/findings/summary", &app.read).await;
    let rows = summary.as_array().unwrap();
    assert!(rows.iter().any(|r| r["check"] == "exchange-proxylogon"
        && r["status"] == "open"
        && r["findings"] == 5));
    let (status, _) = app.get("/api/v1/findings", &app.ingest).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Two streaming batches that lock the same findings in opposite orders:
/// PostgreSQL breaks the deadlock, the victim answers 503 with Retry-After
/// and stores nothing, the other batch is stored whole.
#[tokio::test]
async fn one_request_folds_a_finding_across_its_chunks() {
    // One line per chunk: each chunk's findings are read ahead, outside the
    // transaction, while the previous chunk is written inside it.
    let app = spawn_app_with(|s| s.ingest_chunk_rows = 1).await;
    let (a, b) = ("192.0.2.1", "192.0.2.2");
    let r = push_lines(
        &app,
        &[
            line(a, "2021-03-05T10:00:00Z", "vulnerable"),
            line(b, "2021-03-05T10:00:00Z", "vulnerable"),
            line(a, "2021-03-05T11:00:00Z", "compromised"),
            line(a, "2021-03-05T12:00:00Z", "not_vulnerable"),
            line(b, "2021-03-05T09:00:00Z", "not_vulnerable"),
            line(a, "2021-03-05T13:00:00Z", "vulnerable"),
        ],
    )
    .await;
    assert_eq!(r["accepted"], 6, "{r}");
    assert_eq!(r["findings"]["opened"], 2, "{r}");
    let f = findings(&app, "").await;
    assert_eq!(f.len(), 2);
    let of = |ip: &str| f.iter().find(|x| x["ip"] == ip).unwrap().clone();
    assert_eq!(of(a)["status"], "open");
    assert_eq!(of(a)["worst_state"], "compromised");
    assert_eq!(of(a)["last_seen"], "2021-03-05T13:00:00Z");
    assert_eq!(
        history(&app, &of(a)["id"]).await,
        ["opened", "escalated", "resolved", "reopened"]
    );
    // The late negative observation of b does not resolve it.
    assert_eq!(of(b)["status"], "open");
    assert_eq!(history(&app, &of(b)["id"]).await, ["opened"]);
    assert_eq!(count(&app, "findings").await, 2);
    // Alone, a request never trips over its own writes: what it wrote is
    // read inside its transaction, not ahead of it.
    assert_eq!(refolds(&app).await, 0);
}

/// How often chunks were folded again after a concurrent change.
async fn refolds(app: &TestApp) -> u64 {
    let metrics = app.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("varsel_findings_refolds_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no refold counter in {metrics}"))
}

type Chunks = tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>;

/// A one-shot NDJSON push whose body the test writes as it goes; the body
/// ends when the sender is dropped.
fn streaming_push(
    app: &TestApp,
) -> (
    Chunks,
    tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }));
    let request = app
        .request(reqwest::Method::POST, "/api/v1/observations", &app.ingest)
        .header("content-type", NDJSON)
        .body(body)
        .send();
    (tx, tokio::spawn(request))
}

/// A request that has stored a chunk and waits for more of its body.
const HOLDING_A_BATCH_OPEN: &str =
    "state = 'idle in transaction' AND query LIKE 'COPY observations%'";
/// A request waiting for another to finish writing findings.
const WAITING_FOR_THE_WRITERS_LOCK: &str =
    "wait_event_type = 'Lock' AND query LIKE '%pg_advisory_xact_lock%'";
/// A request whose update waits for another transaction's row lock.
const WAITING_TO_UPDATE_A_FINDING: &str =
    "wait_event_type = 'Lock' AND query LIKE '%UPDATE findings%'";

/// Any backend in a transaction, other than the one asking.
const IN_A_TRANSACTION: &str = "xact_start IS NOT NULL AND pid <> pg_backend_pid()";

/// Waits until `want` backends of the app's database match `condition`.
async fn wait_for_backends(app: &TestApp, condition: &str, want: i64) {
    let mut seen = 0;
    for _ in 0..400 {
        seen = sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND {condition}"
        ))
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if seen == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("{seen} backends, not {want}, match {condition}");
}

/// A transaction of the test's own, holding the row of the finding of `ip`.
async fn hold_finding(app: &TestApp, ip: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut holder = app.pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM findings WHERE ip = $1::inet FOR UPDATE")
        .bind(ip)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder
}

/// The response of a pushed request, which must come within 30 s.
async fn answer(
    request: tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>,
    what: &str,
) -> reqwest::Response {
    tokio::time::timeout(std::time::Duration::from_secs(30), request)
        .await
        .expect(what)
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_finding_rewritten_meanwhile_is_folded_again() {
    let app = spawn_app_with(|s| s.ingest_chunk_rows = 1).await;
    let f = "192.0.2.1";
    push_lines(&app, &[line(f, "2021-03-05T10:00:00Z", "vulnerable")]).await;

    // A reads `f` ahead (its transaction gets the chunk only after that
    // read), then waits to rewrite it: the test holds the row.
    let mut holder = hold_finding(&app, f).await;
    let (a_tx, a) = streaming_push(&app);
    let sighting = line(f, "2021-03-05T11:00:00Z", "vulnerable");
    a_tx.send(Ok(sighting.into_bytes())).await.unwrap();
    drop(a_tx);
    wait_for_backends(&app, WAITING_TO_UPDATE_A_FINDING, 1).await;
    // Meanwhile another writer (one that does not take the writers' lock:
    // an operator with psql, say) records a later compromise of `f`, as
    // ingest would: the observation, and the finding folded from it.
    sqlx::query(
        "INSERT INTO observations (id, observed_at, finding_id, ip, port, protocol, check_id, state,
                                   raw, attribution)
         SELECT 1000, '2021-03-05T12:00:00Z', id, ip, port, protocol, check_id, 'compromised', '{}', 'none'
           FROM findings WHERE ip = $1::inet",
    )
    .bind(f)
    .execute(&mut *holder)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE findings SET state = 'compromised', worst_state = 'compromised',
                escalated_at = '2021-03-05T12:00:00Z', last_seen = '2021-03-05T12:00:00Z',
                last_observation_id = 1000,
                folded_at = '2021-03-05T12:00:00Z', folded_rank = 4,
                changed_at = '2021-03-05T12:00:00Z', changed_rank = 4
          WHERE ip = $1::inet",
    )
    .bind(f)
    .execute(&mut *holder)
    .await
    .unwrap();
    holder.commit().await.unwrap();

    let response = answer(a, "the request answers").await;
    assert_eq!(response.status(), StatusCode::OK);
    // A's sighting is older than the rewrite: folded into the finding as it
    // now is, it changes nothing; folded into what A had read, it would
    // have undone the compromise.
    let found = findings(&app, &format!("cidr={f}/32")).await;
    assert_eq!(found[0]["state"], "compromised", "{}", found[0]);
    assert_eq!(found[0]["last_seen"], "2021-03-05T12:00:00Z");
    assert!(refolds(&app).await >= 1, "A noticed and folded again");
}

/// An address that cannot be on the Internet is refused by line, with
/// the reason; the documentation ranges are not.
#[tokio::test]
async fn addresses_that_cannot_be_on_the_internet_are_refused_by_line() {
    let app = spawn_app().await;
    let at = "2021-03-05T10:00:00Z";
    let lines = [
        line("10.20.30.41", at, "vulnerable"),
        line("192.0.2.1", at, "vulnerable"),
        line("fe80::1", at, "vulnerable"),
        line("::ffff:127.0.0.1", at, "vulnerable"),
        line("2001:db8::7", at, "vulnerable"),
    ];
    let r = push_lines(&app, &lines).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(2), Some(3)),
        "{r}"
    );
    let reasons: Vec<(u64, String)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons[0].0, 1);
    assert!(
        reasons[0].1.contains("private address (RFC 1918"),
        "{reasons:?}"
    );
    assert!(reasons[1].1.contains("link-local"), "{reasons:?}");
    assert!(reasons[2].1.contains("loopback"), "{reasons:?}");
    assert!(
        r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["field"] == "ip")
    );

    let lab = spawn_app_with(|s| s.allow_private_addresses = true).await;
    let r = push_lines(&lab, &lines).await;
    assert_eq!(r["accepted"], 5, "{r}");
    app.run_jobs().await;
    lab.run_jobs().await;
}

/// A network registered while a batch is being ingested: the batch was
/// attributed with the registry as it was, and the late attribution the
/// registration enqueued waits for the batch to commit, then gives its
/// findings their owner.
#[tokio::test]
async fn a_network_registered_during_a_batch_still_owns_its_findings() {
    let app = spawn_app_with(|s| s.ingest_chunk_rows = 1).await;
    let ip = "203.0.113.9";
    let (chunks, request) = streaming_push(&app);
    chunks
        .send(Ok(format!(
            "{}\n",
            line(ip, "2021-03-05T10:00:00Z", "vulnerable")
        )
        .into_bytes()))
        .await
        .unwrap();
    wait_for_backends(&app, HOLDING_A_BATCH_OPEN, 1).await;

    let (status, org) = app
        .post(
            "/api/v1/organisations",
            &app.admin,
            json!({ "ref": "ORG-LATE", "name": "Sent Registrert AS" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let (status, network) = app
        .post(
            &format!("/api/v1/organisations/{}/networks", org["id"]),
            &app.admin,
            json!({ "cidr": "203.0.113.0/24" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{network}");
    // A worker runs the late attribution the registration enqueued while
    // the batch is still open: it waits for the batch.
    let state = app.state.clone();
    let worker = tokio::spawn(async move { varsel::jobs::run_pending(&state).await });
    wait_for_backends(&app, WAITING_FOR_THE_WRITERS_LOCK, 1).await;
    drop(chunks);
    let response = answer(request, "the batch commits").await;
    assert_eq!(response.status(), StatusCode::OK);
    worker.await.unwrap().unwrap();

    let found = findings(&app, &format!("cidr={ip}/32")).await;
    assert_eq!(found[0]["organisation_id"], org["id"], "{}", found[0]);
    assert_eq!(found[0]["attribution"], "network");
}

#[tokio::test]
async fn a_deadlock_victim_answers_at_once_and_stores_nothing() {
    let app = spawn_app_with(|s| s.ingest_chunk_rows = 1).await;
    let (x, y) = ("192.0.2.1", "192.0.2.2");
    push_lines(
        &app,
        &[
            line(x, "2021-03-05T10:00:00Z", "vulnerable"),
            line(y, "2021-03-05T10:00:00Z", "vulnerable"),
        ],
    )
    .await;
    let before = count(&app, "observations").await;

    // The test holds x; A rewrites y, then waits for x, with more lines
    // queued behind; the test then waits for y: a deadlock, and A, waiting
    // longest, is the one PostgreSQL breaks.
    let mut holder = hold_finding(&app, x).await;
    let (a_tx, a) = streaming_push(&app);
    let mut lines = vec![
        line(y, "2021-03-05T11:00:00Z", "vulnerable"),
        line(x, "2021-03-05T11:00:00Z", "vulnerable"),
    ];
    lines.extend((0..8).map(|i| {
        line(
            "192.0.2.30",
            &format!("2021-03-05T0{i}:00:00Z"),
            "vulnerable",
        )
    }));
    a_tx.send(Ok(lines.join("\n").into_bytes())).await.unwrap();
    drop(a_tx);
    wait_for_backends(&app, WAITING_TO_UPDATE_A_FINDING, 1).await;
    sqlx::query("UPDATE findings SET updated_at = now() WHERE ip = $1::inet")
        .bind(y)
        .execute(&mut *holder)
        .await
        .unwrap();
    holder.commit().await.unwrap();

    let response = answer(a, "the victim answers").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().get("retry-after").is_some());
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["type"], "urn:varsel:problem:contention");
    assert_eq!(count(&app, "observations").await, before, "nothing of A");
}

#[tokio::test]
async fn concurrent_batches_over_the_same_findings_take_turns() {
    let app = spawn_app_with(|s| s.ingest_chunk_rows = 1).await;
    let k1 = line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable");
    let k2 = line("192.0.2.2", "2021-03-05T10:00:00Z", "vulnerable");
    push_lines(&app, &[k1.clone(), k2.clone()]).await;
    let before = count(&app, "observations").await;

    // A stores its first line and waits for more body; B, crossing it,
    // waits for A. (Without turns, their chunks would lock the two findings
    // in opposite orders and deadlock.)
    let later = |s: &str| s.replace("10:00:00", "11:00:00");
    let (a_tx, a) = streaming_push(&app);
    a_tx.send(Ok(format!("{}\n", later(&k1)).into_bytes()))
        .await
        .unwrap();
    wait_for_backends(&app, HOLDING_A_BATCH_OPEN, 1).await;
    let (b_tx, b) = streaming_push(&app);
    b_tx.send(Ok(format!("{}\n", later(&k2)).into_bytes()))
        .await
        .unwrap();
    wait_for_backends(&app, WAITING_FOR_THE_WRITERS_LOCK, 1).await;
    a_tx.send(Ok(format!("{}\n", later(&k2)).into_bytes()))
        .await
        .unwrap();
    b_tx.send(Ok(format!("{}\n", later(&k1)).into_bytes()))
        .await
        .unwrap();
    for (tx, ip) in [(&a_tx, "192.0.2.10"), (&b_tx, "192.0.2.20")] {
        let rest: String = (0..8)
            .map(|i| {
                format!(
                    "{}\n",
                    line(ip, &format!("2021-03-05T0{i}:00:00Z"), "vulnerable")
                )
            })
            .collect();
        tx.send(Ok(rest.into_bytes())).await.unwrap();
    }
    drop(a_tx);
    drop(b_tx);

    for handle in [a, b] {
        let response = answer(handle, "both requests answer").await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(count(&app, "observations").await, before + 20);
    assert_eq!(count(&app, "findings").await, 4);
    // B read after A committed: nothing to fold again.
    assert_eq!(refolds(&app).await, 0);
}

#[tokio::test]
async fn retention_drops_whole_expired_months() {
    let app = spawn_app().await;
    let recent = (chrono::Utc::now() - chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    push_lines(
        &app,
        &[
            line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable"),
            line("192.0.2.1", &recent, "vulnerable"),
        ],
    )
    .await;
    let dropped = varsel::ingest::store::drop_expired_partitions(&app.pool, 365)
        .await
        .unwrap();
    assert_eq!(dropped, ["observations_y2021m03"]);
    assert_eq!(
        count(&app, "observations").await,
        1,
        "the recent month stays"
    );
    // The finding and its history outlive the raw observations.
    assert_eq!(findings(&app, "").await.len(), 1);
    // Ingest into the dropped month still works: the partition comes back.
    push_lines(
        &app,
        &[line("192.0.2.9", "2021-03-06T10:00:00Z", "vulnerable")],
    )
    .await;
    assert_eq!(count(&app, "observations").await, 2);
}

#[tokio::test]
async fn observations_older_than_the_retention_period_are_refused() {
    let app = spawn_app_with(|s| s.retention_days = 30).await;
    let (status, r) = app
        .push(
            "/api/v1/observations",
            NDJSON,
            line("192.0.2.1", "2021-03-05T10:00:00Z", "vulnerable"),
        )
        .await;
    // Nothing stored: not a success.
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["type"], "urn:varsel:problem:rejected-lines");
    assert_eq!(r["errors"][0]["field"], "observed_at");
    assert!(
        r["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("retention"),
        "{r}"
    );
}

/// People read finding and observation ids in URLs and mails: each request
/// takes exactly the ids it writes, so they stay 1, 2, 3, … across requests.
#[tokio::test]
async fn ids_stay_dense_across_requests() {
    let app = spawn_app().await;
    let at = "2021-03-05T10:00:00Z";
    push_lines(
        &app,
        &[
            line("192.0.2.1", at, "vulnerable"),
            line("192.0.2.2", at, "vulnerable"),
        ],
    )
    .await;
    push_lines(
        &app,
        &[
            line("192.0.2.3", at, "vulnerable"),
            line("192.0.2.1", at, "vulnerable"),
        ],
    )
    .await;
    let mut finding_ids: Vec<i64> = findings(&app, "limit=100")
        .await
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    finding_ids.sort_unstable();
    assert_eq!(finding_ids, vec![1, 2, 3]);
    let observation_ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM observations ORDER BY id")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(observation_ids, vec![1, 2, 3, 4]);
}

/// A Shadowserver report's type comes from `report=`, `filename=` or, as
/// HTTP clients name an uploaded file, `Content-Disposition`; without one
/// the request is refused, so reports on one address and port never fold
/// into one finding.
#[tokio::test]
async fn shadowserver_report_type_from_content_disposition() {
    let app = spawn_app().await;
    let csv = "\"timestamp\",\"ip\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\"\n\
               \"2021-03-10 06:00:00\",\"192.0.2.10\",443,\"mail.example\",\"exchange;cve-2021-26855\",64500,\"NO\"\n";
    let upload = |disposition: Option<&str>| {
        let mut request = app
            .request(
                reqwest::Method::POST,
                "/api/v1/observations?format=shadowserver",
                &app.ingest,
            )
            .header("content-type", "text/csv")
            .body(csv);
        if let Some(d) = disposition {
            request = request.header("content-disposition", d);
        }
        crate::helpers::send(request)
    };

    let (status, problem) = upload(None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "report");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Content-Disposition"),
        "{problem}"
    );
    let (status, problem) = upload(Some("attachment; filename=\"notes.csv\"")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(count(&app, "observations").await, 0);

    for name in [
        "2021-03-10-scan_exchange-no.csv",
        "2021-03-10-scan_rdp-no.csv",
    ] {
        let (status, body) = upload(Some(&format!("attachment; filename=\"{name}\""))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], 1, "{body}");
    }
    // Without a format parameter, a CSV named like a report is one.
    let (status, body) = crate::helpers::send(
        app.request(reqwest::Method::POST, "/api/v1/observations", &app.ingest)
            .header("content-type", "text/csv")
            .header(
                "content-disposition",
                "attachment; filename*=UTF-8''2021-03-11-scan_smb-no.csv",
            )
            .body(csv),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut checks: Vec<String> = findings(&app, "limit=100")
        .await
        .iter()
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect();
    checks.sort();
    assert_eq!(checks, ["scan_exchange", "scan_rdp", "scan_smb"]);
}
