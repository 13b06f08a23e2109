//! Real scanner output through the real service: what each format makes of
//! the files public repositories hold (nmap `vulners`, masscan `-oX`), and
//! how a canonical line that is not one is refused.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, sample, spawn_app, spawn_app_with};

const NDJSON: &str = "application/x-ndjson";

async fn findings(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/v1/findings?{query}"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

async fn push_file(
    app: &TestApp,
    file: &str,
    content_type: &str,
    query: &str,
) -> (StatusCode, Value) {
    let body = std::fs::read(sample(file)).unwrap();
    app.push(&format!("/api/v1/observations?{query}"), content_type, body)
        .await
}

/// nmap's `vulners` lists two CVSS 5.0 CVEs for OpenSSH 7.4: a vulnerable
/// finding of medium severity naming them and the product, which a campaign
/// on either CVE finds.
#[tokio::test]
async fn nmap_vulners_cves_open_a_vulnerable_finding_with_the_product() {
    // The real sample scanned a private network (192.168.0.1).
    let app = spawn_app_with(|s| s.allow_private_addresses = true).await;
    let (status, r) = push_file(
        &app,
        "nmap/nmap_sample.xml",
        "application/xml",
        "format=nmap",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(r["accepted"], 2, "{r}");

    let vulners = findings(&app, "check=vulners").await;
    assert_eq!(vulners.len(), 1, "{vulners:?}");
    let f = &vulners[0];
    assert_eq!(
        (f["ip"].as_str(), f["port"].as_i64()),
        (Some("192.168.0.1"), Some(5022))
    );
    assert_eq!(f["status"], "open");
    assert_eq!(f["state"], "vulnerable");
    assert_eq!(f["severity"], "medium");
    assert_eq!(f["cves"], json!(["CVE-2017-15906", "CVE-2018-15919"]));
    assert_eq!(
        findings(&app, "cve=CVE-2017-15906&state=vulnerable")
            .await
            .len(),
        1
    );

    let (_, detail) = app
        .get(&format!("/api/v1/findings/{}", f["id"]), &app.read)
        .await;
    let o = &detail["observations"][0];
    assert_eq!(o["product"], "OpenSSH");
    assert_eq!(o["version"], "7.4");
    assert_eq!(
        o["evidence"]["vulners"][0],
        json!({"id": "CVE-2018-15919", "cvss": 5.0})
    );
}

/// masscan `-oX` as masscan writes it (CRLF, one `<host>` a port) is read
/// with `format=masscan` whatever the Content-Type; nmap's XML sent so is
/// refused, naming the format that reads it.
#[tokio::test]
async fn masscan_xml_is_read_as_masscan() {
    let app = spawn_app().await;
    let (status, r) = push_file(
        &app,
        "masscan/masscan_sample.xml",
        "application/xml",
        "format=masscan",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(8), Some(0)),
        "{r}"
    );
    let open: Vec<(i64, String)> = findings(&app, "check=open-port")
        .await
        .iter()
        .map(|f| {
            assert_eq!(f["ip"], "93.184.216.34");
            (
                f["port"].as_i64().unwrap(),
                f["protocol"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut open = open;
    open.sort();
    assert_eq!(
        open,
        [
            (0, "icmp".to_owned()),
            (80, "tcp".to_owned()),
            (443, "tcp".to_owned())
        ]
    );

    let (status, problem) =
        push_file(&app, "nmap/nmap_sample.xml", "text/plain", "format=masscan").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("line 5") && detail.contains("?format=nmap"),
        "{problem}"
    );
}

/// A typo'd key rejects its line naming the key instead of dropping what it
/// carried; another tool's output is told to use its own format.
#[tokio::test]
async fn canonical_lines_with_unknown_keys_are_rejected_naming_them() {
    let app = spawn_app().await;
    let good = json!({ "ip": "192.0.2.1", "port": 443, "observed_at": "2021-03-05T10:00:00Z",
                       "check": "exchange-proxylogon", "cves": ["CVE-2021-26855"] });
    let typo = json!({ "ip": "192.0.2.2", "port": 443, "observed_at": "2021-03-05T10:00:00Z",
                       "check": "exchange-proxylogon", "cve": ["CVE-2021-26855"] });
    let nuclei = std::fs::read_to_string(sample("nuclei/nuclei_sample_v3.jsonl")).unwrap();
    let nuclei = nuclei.lines().next().unwrap();
    let intelmq = json!({ "feed.name": "Scan", "source.ip": "192.0.2.3", "source.port": 443,
                          "time.source": "2021-03-05T10:00:00+00:00", "classification.type": "vulnerable-system" });
    let body = format!("{good}\n{typo}\n{nuclei}\n{intelmq}\n");
    let (status, r) = app.push("/api/v1/observations", NDJSON, body).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    assert_eq!(
        (r["accepted"].as_u64(), r["rejected"].as_u64()),
        (Some(1), Some(3)),
        "{r}"
    );
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[0]["field"], "cve");
    let reason = errors[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(r#"unknown field "cve""#)
            && reason.contains("expected one of ip, port,"),
        "{reason}"
    );
    assert_eq!(errors[1]["line"], 3);
    assert!(
        errors[1]["reason"]
            .as_str()
            .unwrap()
            .ends_with("?format=nuclei"),
        "{r}"
    );
    assert_eq!(errors[2]["line"], 4);
    assert!(
        errors[2]["reason"]
            .as_str()
            .unwrap()
            .ends_with("?format=intelmq"),
        "{r}"
    );
    assert_eq!(findings(&app, "").await.len(), 1, "only the good line");

    // masscan -oJ sent as canonical: nothing stored, each record says why.
    let (status, r) = push_file(&app, "masscan/masscan_sample.json", "application/json", "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 8, "{r}");
    assert!(
        errors.iter().all(|e| e["reason"]
            .as_str()
            .unwrap()
            .ends_with("send it with ?format=masscan")),
        "{r}"
    );
}
