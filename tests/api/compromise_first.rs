//! Compromise first: a campaign defined only by the ProxyLogon CVEs reaches
//! the web shells Shadowserver reports (they name no CVE), shows so before
//! it is activated, and the first mail to an organisation with a web shell
//! says so in its subject and first lines, lists that host first and once
//! (with every check that saw it, named for people, with the host and
//! server name the scanner saw), read off a real SMTP conversation; its
//! page leads with it too.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::advisory::Browser;
use crate::helpers::{TestApp, sample, spawn_app_with};
use crate::notifications::{approve_all, notification_of, organisation, send_mail};

const PROXYLOGON: [&str; 4] = [
    "CVE-2021-26855",
    "CVE-2021-26857",
    "CVE-2021-26858",
    "CVE-2021-27065",
];

/// Shadowserver's report of 10 March 2021 (a web shell on 198.51.100.23
/// among others), and nuclei's ProxyLogon template on the same host.
async fn reports(app: &TestApp) {
    let report = std::fs::read(sample("shadowserver/scan_exchange.csv")).unwrap();
    let (status, pushed) = app
        .push(
            "/api/v1/observations?filename=2021-03-10-scan_exchange-no.csv",
            "text/csv",
            report,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pushed}");
    let nuclei = json!({
        "ip": "198.51.100.23", "port": 443, "check": "CVE-2021-26855", "state": "vulnerable",
        "observed_at": "2021-03-10T08:00:00Z", "cves": ["CVE-2021-26855"]
    });
    let (status, pushed) = app
        .push(
            "/api/v1/observations",
            "application/x-ndjson",
            nuclei.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pushed}");
}

/// A draft campaign about the four CVEs and nothing else.
async fn cve_campaign(app: &TestApp) -> (i64, Value) {
    let text = |lang: &str| {
        json!({ "title": format!("ProxyLogon ({lang})"), "summary": "Patch now.",
                "impact": "Remote code execution.", "what_to_do": "Patch.",
                "how_to_check": "Run Test-ProxyLogon.ps1.", "references": "Microsoft, 2 March 2021." })
    };
    let (status, created) = app
        .post(
            "/api/v1/campaigns",
            &app.admin,
            json!({ "slug": "proxylogon-cves", "tlp": "AMBER", "severity": "critical",
                    "cves": PROXYLOGON, "nb": text("nb"), "en": text("en") }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (_, shown) = app
        .get(&format!("/api/v1/campaigns/{id}"), &app.admin)
        .await;
    (id, shown)
}

#[tokio::test]
async fn the_first_mail_to_an_organisation_with_a_web_shell_leads_with_it() {
    let server = crate::smtp::SmtpServer::start(None).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.outbox_workers = 0;
        s.public_base_url = "https://varsel.example.no".to_owned();
    })
    .await;
    let org = organisation(
        &app,
        "FJORD",
        "198.51.100.0/24",
        &[("sec@fjord.example", "security", "en")],
    )
    .await;
    reports(&app).await;

    // Before activation: what it reaches, by check and state, the web
    // shells first although the campaign names only CVEs.
    let (id, draft) = cve_campaign(&app).await;
    assert_eq!(draft["status"], "draft");
    let by_check = draft["counts"]["by_check"].as_array().unwrap();
    assert_eq!(by_check[0]["check"], "scan_exchange", "{draft}");
    assert_eq!(by_check[0]["state"], "compromised");
    assert_eq!(by_check[0]["findings"], 2);
    assert!(
        by_check
            .iter()
            .any(|c| c["check"] == "CVE-2021-26855" && c["state"] == "vulnerable"),
        "{by_check:?}"
    );

    let (status, body) = app
        .post(
            &format!("/api/v1/campaigns/{id}/activate"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.run_jobs().await;
    approve_all(&app, id).await;
    assert!(send_mail(&app).await >= 1);

    let n = notification_of(&app, org).await;
    let ticket = n["ticket"].as_str().unwrap();
    let received = server.messages();
    let mail = received
        .iter()
        .find(|m| m.rcpt_tos == ["sec@fjord.example"])
        .expect("the organisation's mail");
    assert_eq!(
        mail.subject.as_deref(),
        Some(format!("[{ticket}] Signs of compromise: ProxyLogon (en)").as_str())
    );
    let text = mail.text.as_deref().unwrap();
    let greeting = text.find("Hello,").unwrap();
    let after = &text[greeting + "Hello,".len()..];
    assert!(
        after
            .trim_start()
            .starts_with("IMPORTANT: We see signs of compromise"),
        "{text}"
    );

    // The host with the web shell: first, once, with both checks.
    let hosts = &text[text.find("Affected addresses").unwrap()..];
    let first = hosts.lines().find(|l| l.starts_with("- ")).unwrap();
    assert_eq!(first, "- 198.51.100.23 443/tcp: compromised (!)");
    assert_eq!(hosts.matches("- 198.51.100.23 443/tcp").count(), 1);
    assert!(hosts.contains("  Web shell found on Microsoft Exchange (Shadowserver): compromised"));
    assert!(hosts.contains("  Microsoft Exchange vulnerable to ProxyLogon (nuclei): vulnerable"));
    assert!(hosts.contains("  Server name: "), "{hosts}");
    assert!(hosts.contains("  A web shell is a file an attacker placed"));
    assert!(!text.contains("scan_exchange"), "{text}");
    let html = mail.html.as_deref().unwrap();
    assert!(html.contains("Web shell found on Microsoft Exchange (Shadowserver)"));
    let alert = html.find("IMPORTANT: We see signs of compromise").unwrap();
    assert!(alert < html.find("We have found vulnerable services").unwrap());

    // Its page leads with the compromise and lists the host once.
    let re = regex_lite::Regex::new(r"https://varsel\.example\.no(/a/[0-9a-f]{64})").unwrap();
    let path = re.captures(text).expect("the advisory link")[1].to_owned();
    let browser = Browser::new(&app);
    let page = browser.get(&path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains(r#"id="compromise-alert""#));
    assert_eq!(page.html.matches("<h3>198.51.100.23 443/tcp").count(), 1);
    let shell = page
        .html
        .find("Web shell found on Microsoft Exchange")
        .unwrap();
    let first_host = page.html.find(r#"<li class="host"#).unwrap();
    assert!(first_host < shell);
    assert!(page.html.contains(r#"class="host compromised""#));
    app.run_jobs().await;
}
