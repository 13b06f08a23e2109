use std::collections::HashMap;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{small_dataset, spawn_app, spawn_second_instance};

#[tokio::test]
async fn owner_at_a_time_before_and_after_a_change_of_owner() {
    let app = spawn_app().await;
    let a = app.organisation("OLD-OWNER", &["198.51.100.0/24"]).await;
    let b = app.organisation("NEW-OWNER", &[]).await;
    let (_, nets) = app
        .get(&format!("/api/v1/organisations/{a}/networks"), &app.read)
        .await;
    let (status, moved) = app
        .patch(
            &format!("/api/v1/networks/{}", nets[0]["id"]),
            &app.admin,
            json!({ "organisation_id": b }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let change: chrono::DateTime<chrono::Utc> =
        moved["valid_from"].as_str().unwrap().parse().unwrap();
    let before =
        (change - chrono::Duration::seconds(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);

    let (status, old) = app
        .get(
            &format!("/api/v1/lookup?ip=198.51.100.7&at={}", urlencode(&before)),
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{old}");
    assert_eq!(old["organisation"]["ref"], "OLD-OWNER");
    assert_eq!(old["matched_by"], "network");
    assert_eq!(old["network"]["cidr"], "198.51.100.0/24");
    assert!(old["reason"].as_str().unwrap().contains("198.51.100.0/24"));

    let (_, new) = app.get("/api/v1/lookup?ip=198.51.100.7", &app.read).await;
    assert_eq!(new["organisation"]["ref"], "NEW-OWNER");
    assert_eq!(new["network"]["id"], moved["id"]);
    // The registry changes enqueued late attribution.
    app.run_jobs().await;
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn longest_prefix_then_asn_then_unattributed() {
    let app = spawn_app().await;
    app.organisation("ISP", &["198.18.0.0/15", "2001:db8::/32"])
        .await;
    let customer = app
        .organisation("CUSTOMER", &["198.18.4.0/23", "2001:db8:4000:1200::/56"])
        .await;
    let (status, _) = app
        .post(
            &format!("/api/v1/organisations/{customer}/asns"),
            &app.admin,
            json!({ "asn": 64500 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (_, r) = app.get("/api/v1/lookup?ip=198.18.5.9", &app.read).await;
    assert_eq!(r["organisation"]["ref"], "CUSTOMER");
    let (_, r) = app.get("/api/v1/lookup?ip=198.18.9.9", &app.read).await;
    assert_eq!(r["organisation"]["ref"], "ISP");
    let (_, r) = app
        .get("/api/v1/lookup?ip=2001:db8:4000:12ff::1", &app.read)
        .await;
    assert_eq!(r["organisation"]["ref"], "CUSTOMER");
    let (_, r) = app.get("/api/v1/lookup?ip=2001:db8:1::1", &app.read).await;
    assert_eq!(r["organisation"]["ref"], "ISP");

    let (_, r) = app
        .get("/api/v1/lookup?ip=203.0.113.9&asn=64500", &app.read)
        .await;
    assert_eq!(r["matched_by"], "asn");
    assert_eq!(r["organisation"]["ref"], "CUSTOMER");
    assert_eq!(r["asn"]["asn"], 64500);

    let (_, r) = app.get("/api/v1/lookup?ip=203.0.113.9", &app.read).await;
    assert_eq!(r["matched_by"], "none");
    assert_eq!(r["organisation"], Value::Null);

    let (status, r) = app.get("/api/v1/lookup?ip=999.1.1.1", &app.read).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r["field"], "ip");
    let (status, r) = app
        .get(
            "/api/v1/lookup?ip=1.1.1.1&at=2021-03-05T10:00:00",
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r["field"], "at");
    // The registry changes enqueued late attribution.
    app.run_jobs().await;
}

#[tokio::test]
async fn at_equal_length_a_manual_entry_beats_an_import() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("orgs.csv"),
        "ref,name,org_number,sector,email,language\nREG,Registry Owner,,,,\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("nets.csv"),
        "cidr,organisation_ref,source\n203.0.113.0/24,REG,registry\n",
    )
    .unwrap();
    let out = app.cli(&[
        "import",
        "csv",
        "--organisations",
        dir.path().join("orgs.csv").to_str().unwrap(),
        "--networks",
        dir.path().join("nets.csv").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, r) = app.get("/api/v1/lookup?ip=203.0.113.5", &app.read).await;
    assert_eq!(r["organisation"]["ref"], "REG");

    app.organisation("ANALYST-SAYS", &["203.0.113.0/24"]).await;
    let (_, r) = app.get("/api/v1/lookup?ip=203.0.113.5", &app.read).await;
    assert_eq!(r["organisation"]["ref"], "ANALYST-SAYS");
    assert_eq!(r["network"]["source"], "manual");
}

#[tokio::test]
async fn bulk_lookup_keeps_order_and_names_bad_items() {
    let app = spawn_app().await;
    app.organisation("A", &["192.0.2.0/24"]).await;
    let (status, r) = app
        .post(
            "/api/v1/lookup",
            &app.read,
            json!(["192.0.2.1", {"ip": "203.0.113.1"}, {"ip": "192.0.2.200", "at": "2021-03-05T00:00:00Z"}]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let refs: Vec<Value> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["organisation"]["ref"].clone())
        .collect();
    assert_eq!(refs, vec![json!("A"), Value::Null, json!("A")]);
    assert_eq!(r[2]["at"], "2021-03-05T00:00:00Z");

    let (status, r) = app
        .post("/api/v1/lookup", &app.read, json!(["192.0.2.1", "bogus"]))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r["field"], "[1]");
}

#[tokio::test]
async fn every_address_of_a_generated_data_set_gets_its_true_owner() {
    let app = spawn_app().await;
    let ds = small_dataset();
    let out = app.cli(&[
        "import",
        "csv",
        "--organisations",
        ds.join("organisations.csv").to_str().unwrap(),
        "--networks",
        ds.join("networks.csv").to_str().unwrap(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["rejected"].as_array().unwrap().len(),
        0,
        "{summary}"
    );

    let truth = std::fs::read_to_string(ds.join("truth.csv")).unwrap();
    let expected: Vec<(String, String)> = truth
        .lines()
        .skip(1)
        .map(|l| {
            let (ip, owner) = l.split_once(',').unwrap();
            (ip.to_owned(), owner.to_owned())
        })
        .collect();
    assert!(expected.len() > 1000);
    let ips: Vec<&str> = expected.iter().map(|(ip, _)| ip.as_str()).collect();
    let (status, answers) = app.post("/api/v1/lookup", &app.read, json!(ips)).await;
    assert_eq!(status, StatusCode::OK);
    let answers = answers.as_array().unwrap();
    let mut mismatches: HashMap<&str, (String, String)> = HashMap::new();
    for ((ip, owner), answer) in expected.iter().zip(answers) {
        let got = answer["organisation"]["ref"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        if &got != owner {
            mismatches.insert(ip, (owner.clone(), got));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, e.g. {:?}",
        mismatches.len(),
        mismatches.iter().take(5).collect::<Vec<_>>()
    );
    // The registry changes enqueued late attribution.
    app.run_jobs().await;
}

#[tokio::test]
async fn a_registry_change_on_one_instance_is_seen_by_the_next_lookup_on_another() {
    let one = spawn_app().await;
    let two = spawn_second_instance(&one).await;
    let (_, r) = two.get("/api/v1/lookup?ip=192.0.2.10", &two.read).await;
    assert_eq!(r["matched_by"], "none");
    one.organisation("NEW", &["192.0.2.0/24"]).await;
    let (_, r) = two.get("/api/v1/lookup?ip=192.0.2.10", &two.read).await;
    assert_eq!(r["organisation"]["ref"], "NEW");
}
