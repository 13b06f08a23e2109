//! Findings under real timing, through the API: a scan run resolves exactly
//! what it stored no observation of, whatever the scanner's and the
//! server's clocks say; absence never resolves a compromise (an analyst
//! closes it, with a note); late reports go into the history at their own
//! time and never reopen what a later observation resolved; and one set of
//! observations gives the same findings however it is ordered and cut into
//! requests.

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, sample, spawn_app};

const NDJSON: &str = "application/x-ndjson";
const CHECK: &str = "exchange-proxylogon";

fn line(ip: &str, at: &str, state: &str) -> String {
    json!({ "ip": ip, "port": 443, "observed_at": at, "check": CHECK, "state": state,
            "cves": ["CVE-2021-26855"] })
    .to_string()
}

async fn push(app: &TestApp, path: &str, lines: &[String]) -> Value {
    let (status, body) = app.push(path, NDJSON, lines.join("\n")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn finding(app: &TestApp, ip: &str, check: &str) -> Value {
    let (status, page) = app
        .get(
            &format!("/api/v1/findings?cidr={ip}/32&check={check}"),
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    items[0].clone()
}

/// The finding's history as (kind, at) pairs, in the order the API lists it.
async fn history(app: &TestApp, id: &Value) -> Vec<(String, String)> {
    let (status, detail) = app.get(&format!("/api/v1/findings/{id}"), &app.read).await;
    assert_eq!(status, StatusCode::OK, "{detail}");
    detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["at"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Opens a run of `CHECK` (or `check`) over 192.0.2.0/24.
async fn open_run(app: &TestApp, check: &str, started_at: Option<&str>) -> i64 {
    let mut body = json!({ "scanner": "rescan", "checks": [check], "scope": ["192.0.2.0/24"] });
    if let Some(at) = started_at {
        body["started_at"] = json!(at);
    }
    let (status, run) = app.post("/api/v1/scans", &app.ingest, body).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    run["id"].as_i64().unwrap()
}

async fn finish(app: &TestApp, run: i64, finished_at: Option<&str>) -> Value {
    let body = match finished_at {
        Some(at) => json!({ "finished_at": at }),
        None => json!({}),
    };
    let (status, done) = app
        .post(&format!("/api/v1/scans/{run}/finish"), &app.ingest, body)
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    done
}

fn listed(run: &Value, list: &str) -> Vec<String> {
    let mut ips: Vec<String> = run[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["ip"].as_str().unwrap().to_owned())
        .collect();
    ips.sort();
    ips
}

/// Three hosts seen before a rescan: .1 vulnerable and .3 compromised
/// (the rescan will not see them), .2 vulnerable (it will).
async fn before_the_rescan(app: &TestApp, at: &str) {
    push(
        app,
        "/api/v1/observations",
        &[
            line("192.0.2.1", at, "vulnerable"),
            line("192.0.2.2", at, "vulnerable"),
            line("192.0.2.3", at, "compromised"),
        ],
    )
    .await;
}

/// What every rescan below must end in: .1 resolved by the run, .2 open
/// (the run saw it), .3 open and not seen since (a compromise).
async fn after_the_rescan(app: &TestApp, run: i64, done: &Value, first_seen: &str) {
    assert_eq!(listed(done, "resolved"), ["192.0.2.1"], "{done}");
    assert_eq!(listed(done, "kept_open"), ["192.0.2.3"], "{done}");
    assert_eq!(done["findings_resolved"], 1);
    assert_eq!(done["findings_kept_open"], 1);
    let (_, shown) = app.get(&format!("/api/v1/scans/{run}"), &app.read).await;
    assert_eq!(listed(&shown, "resolved"), ["192.0.2.1"], "{shown}");
    assert_eq!(listed(&shown, "kept_open"), ["192.0.2.3"], "{shown}");

    assert_eq!(finding(app, "192.0.2.1", CHECK).await["status"], "resolved");
    let seen = finding(app, "192.0.2.2", CHECK).await;
    assert_eq!(seen["status"], "open", "{seen}");
    assert_eq!(seen["not_seen_since"], Value::Null);
    let compromised = finding(app, "192.0.2.3", CHECK).await;
    assert_eq!(compromised["status"], "open", "{compromised}");
    assert_eq!(compromised["not_seen_since"], first_seen);
    app.run_jobs().await;
}

#[tokio::test]
async fn a_run_opened_after_scanning_resolves_nothing_it_saw() {
    let app = spawn_app().await;
    before_the_rescan(&app, "2021-03-05T08:00:00Z").await;
    // The scanner scanned at 09:00 and opened its run at 10:00, when it
    // began to upload.
    let run = open_run(&app, CHECK, Some("2021-03-05T10:00:00Z")).await;
    push(
        &app,
        &format!("/api/v1/scans/{run}/observations"),
        &[line("192.0.2.2", "2021-03-05T09:00:00Z", "vulnerable")],
    )
    .await;
    let done = finish(&app, run, Some("2021-03-05T11:00:00Z")).await;
    after_the_rescan(&app, run, &done, "2021-03-05T08:00:00Z").await;
}

#[tokio::test]
async fn a_scanner_clock_behind_the_servers_resolves_nothing_it_saw() {
    let app = spawn_app().await;
    let now = app.state.clock.now();
    let earlier = (now - Duration::hours(1)).to_rfc3339();
    before_the_rescan(&app, &earlier).await;
    // The server opens the run now; the scanner's clock is 10 s behind.
    let run = open_run(&app, CHECK, None).await;
    let behind = (app.state.clock.now() - Duration::seconds(10)).to_rfc3339();
    push(
        &app,
        &format!("/api/v1/scans/{run}/observations"),
        &[line("192.0.2.2", &behind, "vulnerable")],
    )
    .await;
    let done = finish(&app, run, None).await;
    let first_seen = finding(&app, "192.0.2.3", CHECK).await["first_seen"].clone();
    after_the_rescan(&app, run, &done, first_seen.as_str().unwrap()).await;
}

#[tokio::test]
async fn a_report_whose_rows_carry_their_scan_times_resolves_nothing_it_saw() {
    let app = spawn_app().await;
    // Shadowserver's report of 10 March 2021: seven Exchange servers, two
    // with a web shell (198.51.100.23 and .77), uploaded into a run opened
    // today whose scope is the report's addresses.
    let (status, run) = app
        .post(
            "/api/v1/scans",
            &app.ingest,
            json!({ "scanner": "shadowserver", "checks": ["scan_exchange"],
                    "scope": ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let run = run["id"].as_i64().unwrap();
    let report = std::fs::read(sample("shadowserver/scan_exchange.csv")).unwrap();
    let (status, pushed) = app
        .push(
            &format!("/api/v1/scans/{run}/observations?filename=2021-03-10-scan_exchange-no.csv"),
            "text/csv",
            report,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pushed}");
    assert_eq!(pushed["accepted"], 7);
    let done = finish(&app, run, None).await;
    assert_eq!(done["findings_resolved"], 0, "{done}");
    assert_eq!(done["findings_kept_open"], 0, "{done}");
    let (_, page) = app
        .get(
            "/api/v1/findings?check=scan_exchange&status=open",
            &app.read,
        )
        .await;
    let open = page["items"].as_array().unwrap();
    assert_eq!(open.len(), 7, "{page}");
    let compromised = open.iter().filter(|f| f["state"] == "compromised").count();
    assert_eq!(compromised, 2);
    app.run_jobs().await;
}

#[tokio::test]
async fn absence_never_resolves_a_compromise_an_analyst_closes_it_with_a_note() {
    let app = spawn_app().await;
    before_the_rescan(&app, "2021-03-05T08:00:00Z").await;
    for day in ["06", "07"] {
        let run = open_run(&app, CHECK, Some(&format!("2021-03-{day}T00:00:00Z"))).await;
        push(
            &app,
            &format!("/api/v1/scans/{run}/observations"),
            &[line(
                "192.0.2.2",
                &format!("2021-03-{day}T01:00:00Z"),
                "vulnerable",
            )],
        )
        .await;
        finish(&app, run, Some(&format!("2021-03-{day}T02:00:00Z"))).await;
    }
    // Two runs missed it: still open, not seen since its one sighting.
    let shell = finding(&app, "192.0.2.3", CHECK).await;
    assert_eq!(shell["status"], "open");
    assert_eq!(shell["not_seen_since"], "2021-03-05T08:00:00Z");
    let kinds: Vec<String> = history(&app, &shell["id"])
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["opened", "missed", "missed"]);

    let close = format!("/api/v1/findings/{}/close", shell["id"]);
    let (status, refused) = app.post(&close, &app.admin, json!({ "note": " " })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["field"], "note");
    let (status, _) = app.post(&close, &app.read, json!({ "note": "x" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, closed) = app
        .post(
            &close,
            &app.admin,
            json!({ "note": "Server rebuilt; the owner's forensics found the shell's dropper only." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "resolved");
    let last = closed["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["kind"], "closed");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .ends_with("Server rebuilt; the owner's forensics found the shell's dropper only."),
        "{last}"
    );
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'finding.close' AND subject = $1",
    )
    .bind(format!("finding:{}", shell["id"]))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(audited, 1);
    let (status, again) = app
        .post(&close, &app.admin, json!({ "note": "twice" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    // The shell seen again after it was closed: reopened, as any finding
    // is. (A report of a sighting from before the closure would not.)
    push(
        &app,
        "/api/v1/observations",
        &[line("192.0.2.3", "2021-03-20T08:00:00Z", "compromised")],
    )
    .await;
    assert_eq!(
        finding(&app, "192.0.2.3", CHECK).await["status"],
        "resolved"
    );
    let later = (app.state.clock.now() + Duration::minutes(5)).to_rfc3339();
    push(
        &app,
        "/api/v1/observations",
        &[line("192.0.2.3", &later, "compromised")],
    )
    .await;
    assert_eq!(finding(&app, "192.0.2.3", CHECK).await["status"], "open");
    app.run_jobs().await;
}

#[tokio::test]
async fn a_late_report_older_than_a_resolution_does_not_reopen_it() {
    let app = spawn_app().await;
    push(
        &app,
        "/api/v1/observations",
        &[line("192.0.2.1", "2021-03-10T00:00:00Z", "vulnerable")],
    )
    .await;
    // The 06:00 rescan did not see it.
    let run = open_run(&app, CHECK, Some("2021-03-10T05:00:00Z")).await;
    finish(&app, run, Some("2021-03-10T06:00:00Z")).await;
    // Then a report of what was seen at 02:00 arrives.
    push(
        &app,
        "/api/v1/observations",
        &[line("192.0.2.1", "2021-03-10T02:00:00Z", "vulnerable")],
    )
    .await;
    let f = finding(&app, "192.0.2.1", CHECK).await;
    assert_eq!(f["status"], "resolved", "{f}");
    assert_eq!(f["resolved_at"], "2021-03-10T06:00:00Z");
    assert_eq!(f["last_seen"], "2021-03-10T02:00:00Z");
    assert_eq!(
        history(&app, &f["id"]).await,
        [
            ("opened".to_owned(), "2021-03-10T00:00:00Z".to_owned()),
            ("resolved".to_owned(), "2021-03-10T06:00:00Z".to_owned())
        ]
    );
    let (_, detail) = app
        .get(&format!("/api/v1/findings/{}", f["id"]), &app.read)
        .await;
    assert_eq!(detail["observations"].as_array().unwrap().len(), 2);

    // A web shell seen at 03:00, reported late: absence at 06:00 could not
    // have resolved that, so the finding is open again, as if it had come
    // in time, and was not seen since.
    push(
        &app,
        "/api/v1/observations",
        &[line("192.0.2.1", "2021-03-10T03:00:00Z", "compromised")],
    )
    .await;
    let f = finding(&app, "192.0.2.1", CHECK).await;
    assert_eq!(f["status"], "open", "{f}");
    assert_eq!(f["not_seen_since"], "2021-03-10T03:00:00Z");
    assert_eq!(
        history(&app, &f["id"]).await,
        [
            ("opened".to_owned(), "2021-03-10T00:00:00Z".to_owned()),
            ("escalated".to_owned(), "2021-03-10T03:00:00Z".to_owned()),
            ("missed".to_owned(), "2021-03-10T06:00:00Z".to_owned())
        ]
    );
    app.run_jobs().await;
}

#[tokio::test]
async fn a_not_vulnerable_that_arrives_before_an_older_sighting_is_not_forgotten() {
    let app = spawn_app().await;
    push(
        &app,
        "/api/v1/observations",
        &[line("192.0.2.1", "2021-03-10T06:00:00Z", "not_vulnerable")],
    )
    .await;
    push(
        &app,
        "/api/v1/observations",
        &[line("192.0.2.1", "2021-03-10T02:00:00Z", "vulnerable")],
    )
    .await;
    let f = finding(&app, "192.0.2.1", CHECK).await;
    assert_eq!(f["status"], "resolved", "{f}");
    assert_eq!(f["first_seen"], "2021-03-10T02:00:00Z");
    assert_eq!(f["resolved_at"], "2021-03-10T06:00:00Z");
    let (_, detail) = app
        .get(&format!("/api/v1/findings/{}", f["id"]), &app.read)
        .await;
    assert_eq!(detail["observations"].as_array().unwrap().len(), 2);
    app.run_jobs().await;
}

// ------------------------------------------------- any order, any chunks

/// What of a finding must not depend on arrival: everything but ids (and
/// which of two observations at one instant is the one shown).
fn comparable(f: &Value, history: &Value) -> Value {
    let mut events: Vec<Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            json!([
                e["at"],
                e["kind"],
                e["reason"],
                e["from_state"],
                e["to_state"],
                e["scan_run_id"]
            ])
        })
        .collect();
    events.sort_by_key(|e| e.to_string());
    json!({
        "key": [f["ip"], f["port"], f["check"]],
        "status": f["status"], "state": f["state"], "worst_state": f["worst_state"],
        "severity": f["severity"], "cves": f["cves"], "first_seen": f["first_seen"],
        "last_seen": f["last_seen"], "resolved_at": f["resolved_at"],
        "escalated_at": f["escalated_at"], "not_seen_since": f["not_seen_since"],
        "current": f["current"], "history": events,
    })
}

async fn every_finding(app: &TestApp) -> Vec<Value> {
    let (status, page) = app
        .get(
            "/api/v1/findings?include_superseded=true&limit=1000",
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut out = Vec::new();
    for f in page["items"].as_array().unwrap() {
        let (_, detail) = app
            .get(&format!("/api/v1/findings/{}", f["id"]), &app.read)
            .await;
        out.push(comparable(f, &detail["history"]));
    }
    out.sort_by_key(|f| f.to_string());
    out
}

/// Pushes `lines` in the order `order`, cut after the positions in `cuts`,
/// into a fresh app; returns its findings.
async fn pushed(lines: &[String], order: &[usize], cuts: &[bool]) -> Vec<Value> {
    let app = spawn_app().await;
    let mut request = Vec::new();
    for (n, &i) in order.iter().enumerate() {
        request.push(lines[i].clone());
        if n + 1 == order.len() || cuts[n] {
            push(&app, "/api/v1/observations", &request).await;
            request.clear();
        }
    }
    app.run_jobs().await;
    every_finding(&app).await
}

fn at(hours: i64) -> String {
    let start: DateTime<Utc> = "2021-03-05T00:00:00Z".parse().unwrap();
    (start + Duration::hours(hours)).to_rfc3339()
}

fn observation() -> impl Strategy<Value = String> {
    (
        0..3_usize,
        prop_oneof![0..10_i64, (0..3_i64).prop_map(|m| m * 24 * 100)],
        prop_oneof![
            Just("not_vulnerable"),
            Just("unknown"),
            Just("vulnerable"),
            Just("compromised")
        ],
        proptest::option::of(prop_oneof![Just("CVE-2021-26855"), Just("CVE-2021-27065")]),
    )
        .prop_map(|(host, hour, state, cve)| {
            json!({ "ip": format!("192.0.2.{}", host + 1), "port": 443, "observed_at": at(hour),
                    "check": CHECK, "state": state, "cves": cve.into_iter().collect::<Vec<_>>() })
            .to_string()
        })
}

fn permutation(len: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    let mut s = seed;
    for i in (1..len).rev() {
        s = s
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    order
}

proptest! {
    // Each case starts three apps on fresh databases: few cases, many
    // observations each. The fold's own property test covers many more
    // orders in memory (src/findings/fold.rs).
    #![proptest_config(ProptestConfig { cases: 6, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn one_set_of_observations_in_any_order_and_chunks_gives_the_same_findings(
        lines in proptest::collection::vec(observation(), 10..40),
        seeds in proptest::array::uniform2(any::<u64>()),
        cuts in proptest::collection::vec(proptest::bool::weighted(0.3), 40),
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let in_order: Vec<usize> = (0..lines.len()).collect();
        let whole = runtime.block_on(pushed(&lines, &in_order, &[false; 40]));
        for seed in seeds {
            let order = permutation(lines.len(), seed);
            let chunked = runtime.block_on(pushed(&lines, &order, &cuts));
            prop_assert_eq!(&chunked, &whole);
        }
    }
}
