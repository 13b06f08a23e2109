//! Shadowserver reports of every family pushed as a CERT would push them:
//! the downloaded file, named by `?filename=` or `Content-Disposition`,
//! plain, `.csv.gz` or `.csv.zip`; and what the findings then say.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, sample, send, spawn_app};

/// Pushes a fixture under a file name, in the query or in the
/// Content-Disposition header.
async fn push_named(
    app: &TestApp,
    fixture: &str,
    file_name: &str,
    content_type: &str,
    by_header: bool,
) -> (StatusCode, Value) {
    let body = std::fs::read(sample(fixture)).unwrap();
    let path = if by_header {
        "/api/v1/observations".to_owned()
    } else {
        format!("/api/v1/observations?filename={file_name}")
    };
    let mut request = app
        .request(Method::POST, &path, &app.ingest)
        .header("content-type", content_type)
        .body(body);
    if by_header {
        request = request.header(
            "content-disposition",
            format!("attachment; filename=\"{file_name}\""),
        );
    }
    send(request).await
}

/// The findings of a check: (ip, state, severity), by ip.
async fn findings_of(app: &TestApp, check: &str) -> Vec<(String, String, Value)> {
    let (status, page) = app
        .get(
            &format!("/api/v1/findings?check={check}&limit=100"),
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut found: Vec<(String, String, Value)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["ip"].as_str().unwrap().to_owned(),
                f["state"].as_str().unwrap().to_owned(),
                f["severity"].clone(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn states(found: &[(String, String, Value)]) -> Vec<(&str, &str)> {
    found
        .iter()
        .map(|(ip, state, _)| (ip.as_str(), state.as_str()))
        .collect()
}

#[tokio::test]
async fn every_family_is_read_from_its_file_name() {
    let app = spawn_app().await;
    type Case = (
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    let cases: [Case; 7] = [
        (
            "scan_http_vulnerable.csv",
            "2024-02-08-scan_http_vulnerable-no.csv",
            &[
                ("192.0.2.44", "vulnerable"),
                ("198.51.100.61", "vulnerable"),
                ("2001:db8:10::25", "vulnerable"),
            ],
        ),
        (
            "compromised_website.csv",
            "2021-03-10-compromised_website-no.csv",
            &[
                ("2001:db8:20::80", "compromised"),
                ("203.0.113.14", "compromised"),
                ("203.0.113.15", "compromised"),
            ],
        ),
        (
            "compromised_iot.csv",
            "2024-09-25-compromised_iot-no.csv",
            &[
                ("198.51.100.140", "compromised"),
                ("198.51.100.141", "compromised"),
            ],
        ),
        (
            "special.csv",
            "2024-06-14-special-no.csv",
            &[
                ("192.0.2.71", "vulnerable"),
                ("192.0.2.72", "compromised"),
                ("2001:db8:30::1", "vulnerable"),
            ],
        ),
        (
            "event4_sinkhole_http.csv",
            "2024-06-14-event4_sinkhole_http-no.csv",
            &[
                ("198.51.100.23", "compromised"),
                ("198.51.100.24", "compromised"),
                ("2001:db8:40::9", "compromised"),
            ],
        ),
        (
            "event4_honeypot_brute_force.csv",
            "2024-06-14-event4_honeypot_brute_force-no.csv",
            &[
                ("198.51.100.90", "compromised"),
                ("198.51.100.91", "compromised"),
            ],
        ),
        (
            "scan_ssl_poodle.csv",
            "2024-06-14-scan_ssl_poodle-no.csv",
            &[("192.0.2.130", "vulnerable"), ("192.0.2.131", "vulnerable")],
        ),
    ];
    for (i, (fixture, file_name, expected)) in cases.into_iter().enumerate() {
        // Half by query, half by header: both name the report.
        let by_header = i % 2 == 1;
        let (status, r) = push_named(
            &app,
            &format!("shadowserver/{fixture}"),
            file_name,
            "text/csv",
            by_header,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{fixture}: {r}");
        assert_eq!(r["accepted"], expected.len(), "{fixture}: {r}");
        assert_eq!(r["rejected"], 0, "{fixture}: {r}");
        assert!(r.get("notes").is_none(), "{fixture} is mapped: {r}");
        let check = file_name.split('-').nth(3).unwrap();
        let found = findings_of(&app, check).await;
        assert_eq!(states(&found), expected, "{fixture}");
    }
    // Each row's own severity, or the report's default.
    let special = findings_of(&app, "special").await;
    let severity: Vec<&Value> = special.iter().map(|(_, _, s)| s).collect();
    assert_eq!(severity, ["critical", "critical", "high"]);
    let poodle = findings_of(&app, "scan_ssl_poodle").await;
    assert!(poodle.iter().all(|(_, _, s)| s == "low"), "{poodle:?}");
}

#[tokio::test]
async fn a_gzip_file_is_read_by_its_name_without_content_encoding() {
    let app = spawn_app().await;
    let (status, r) = push_named(
        &app,
        "shadowserver/event4_sinkhole_http.csv.gz",
        "2024-06-14-event4_sinkhole_http-no.csv.gz",
        "application/gzip",
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 3, "{r}");
    let found = findings_of(&app, "event4_sinkhole_http").await;
    assert_eq!(
        states(&found),
        [
            ("198.51.100.23", "compromised"),
            ("198.51.100.24", "compromised"),
            ("2001:db8:40::9", "compromised"),
        ]
    );
}

#[tokio::test]
async fn a_zip_file_is_read_from_its_one_member() {
    let app = spawn_app().await;
    let (status, r) = push_named(
        &app,
        "shadowserver/compromised_iot.csv.zip",
        "2024-09-25-compromised_iot-no.csv.zip",
        "application/zip",
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 2, "{r}");
    let found = findings_of(&app, "compromised_iot").await;
    assert_eq!(
        states(&found),
        [
            ("198.51.100.140", "compromised"),
            ("198.51.100.141", "compromised"),
        ]
    );

    // Written by a streaming zip writer (sizes after the data), named by
    // `report=`, sent as bytes.
    let body = std::fs::read(sample("shadowserver/special_streamed.csv.zip")).unwrap();
    let (status, r) = app
        .push(
            "/api/v1/observations?format=shadowserver&report=special",
            "application/octet-stream",
            body,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 3, "{r}");
    let found = findings_of(&app, "special").await;
    assert_eq!(found[1].0, "192.0.2.72");
    assert_eq!(found[1].1, "compromised");
}

#[tokio::test]
async fn an_unmapped_report_type_is_stored_with_a_note() {
    let app = spawn_app().await;
    let (status, r) = push_named(
        &app,
        "shadowserver/scan_http.csv",
        "2026-01-05-scan_quantum_teleport-no.csv",
        "text/csv",
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 2, "{r}");
    let notes = r["notes"].as_array().unwrap();
    assert_eq!(notes.len(), 1, "{r}");
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .contains("scan_quantum_teleport is not mapped"),
        "{r}"
    );
    let found = findings_of(&app, "scan_quantum_teleport").await;
    assert_eq!(found.len(), 2);
    assert!(
        found.iter().all(|(_, state, _)| state == "unknown"),
        "{found:?}"
    );
}

#[tokio::test]
async fn a_shadowserver_csv_sent_without_its_name_says_how_to_name_it() {
    let app = spawn_app().await;
    let body = std::fs::read(sample("shadowserver/scan_exchange.csv")).unwrap();
    let (status, problem) = app.push("/api/v1/observations", "text/csv", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("looks like a Shadowserver report"),
        "{detail}"
    );
    assert!(
        detail.contains("?format=shadowserver&report=scan_exchange"),
        "{detail}"
    );
    assert!(
        detail.contains("?filename=2021-03-10-scan_exchange-no.csv"),
        "{detail}"
    );
    assert!(detail.contains("Content-Disposition"), "{detail}");
    assert!(findings_of(&app, "scan_exchange").await.is_empty());
}

#[tokio::test]
async fn an_event_report_named_by_report_needs_src_ip_or_ip() {
    let app = spawn_app().await;
    let (status, problem) = app
        .push(
            "/api/v1/observations?format=shadowserver&report=event4_sinkhole",
            "text/csv",
            "timestamp,dst_ip,infection\n2024-06-14 00:00:00,203.0.113.1,x\n",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("\"ip\"") && detail.contains("\"src_ip\""),
        "{detail}"
    );
}
