//! `?format=intelmq` over HTTP, the way IntelMQ's REST API output bot posts:
//! one event per request, `application/json`, and only the status read.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, sample, spawn_app};

/// The output bot's Content-Type.
const JSON: &str = "application/json; charset=utf-8";
const PATH: &str = "/api/v1/observations?format=intelmq";

async fn exchange_findings(app: &TestApp) -> Vec<(String, String)> {
    let (status, page) = app
        .get("/api/v1/findings?check=scan_exchange&limit=100", &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut found: Vec<(String, String)> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            assert_eq!(
                (f["port"].as_i64(), f["protocol"].as_str()),
                (Some(443), Some("tcp"))
            );
            (
                f["ip"].as_str().unwrap().to_owned(),
                f["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn intelmq_events_and_the_shadowserver_report_make_the_same_findings() {
    let app = spawn_app().await;
    // IntelMQ's Shadowserver parser's events for scan_exchange.csv.
    let events = std::fs::read_to_string(sample("intelmq/scan_exchange_flat.jsonl")).unwrap();
    for event in events.lines() {
        let (status, body) = app.push(PATH, JSON, event.to_owned()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["accepted"], 1, "{body}");
    }
    let from_intelmq = exchange_findings(&app).await;
    let states = |s: &str| from_intelmq.iter().filter(|(_, st)| st == s).count();
    assert_eq!(
        (states("compromised"), states("vulnerable")),
        (2, 5),
        "{from_intelmq:?}"
    );

    // The same report uploaded as CSV folds into the same findings.
    let csv = std::fs::read(sample("shadowserver/scan_exchange.csv")).unwrap();
    let (status, body) = app
        .push(
            "/api/v1/observations?format=shadowserver&report=scan_exchange",
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(exchange_findings(&app).await, from_intelmq);
}

#[tokio::test]
async fn a_refused_event_is_a_422_naming_the_field_never_a_200() {
    let app = spawn_app().await;
    let events = std::fs::read_to_string(sample("intelmq/scan_exchange_nested.jsonl")).unwrap();
    let mut event: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    event["source"].as_object_mut().unwrap().remove("ip");
    let (status, body) = app.push(PATH, JSON, event.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["field"], "source.ip", "{body}");
    assert_eq!(body["errors"][0]["line"], 1, "{body}");
    assert!(exchange_findings(&app).await.is_empty());

    // What the bot sends with use_json: false.
    let (status, body) = app
        .push(
            PATH,
            "application/x-www-form-urlencoded",
            "source.ip=192.0.2.1&time.source=2021-03-10T06%3A42%3A17%2B00%3A00",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let reason = body["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("use_json: true"), "{reason}");
}
