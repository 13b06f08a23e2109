//! The whole loop, as the centre and an organisation live it in March 2021:
//! the registry imported, a Shadowserver Exchange report pushed (one
//! address with a web shell), the ProxyLogon campaign seeded, activated
//! and approved, the advisory delivered to a real SMTP server on loopback,
//! its link followed; the organisation acknowledges, reports compromise
//! and marks the host fixed; the scanner re-checks it and the rescan
//! resolves the finding and the notification.

use reqwest::StatusCode;
use serde_json::json;

use crate::advisory::Browser;
use crate::helpers::spawn_app_with;
use crate::notifications::{active_campaign, approve_all, notification_of, send_mail};
use crate::smtp::SmtpServer;

/// Shadowserver's scan_exchange report of 10 March 2021, cut to three
/// rows: Drammen's server has a web shell.
const REPORT: &str = r#""timestamp","ip","port","hostname","tag","asn","geo","region","city","naics","sic","sector","version","servername","url"
"2021-03-10 06:42:17","192.0.2.10",443,"owa.fjordnett.example","exchange;cve-2021-26855",64500,"NO","VESTLAND","BERGEN",517311,,"Communications, Service Provider, and Hosting Service","15.2.721","FJN-EXCH2019",
"2021-03-10 06:42:21","198.51.100.23",443,"webmail.drammen.example","exchange;webshell",64501,"NO","VIKEN","DRAMMEN",921190,,"Government, Public Administration, and Defence","15.0.1395","KOMMAIL01",
"2021-03-10 06:42:29","203.0.113.180",443,"mx1.elsewhere.example","exchange;cve-2021-26855",64505,"FI","UUSIMAA","ESPOO",,,,"15.1.2044","MAIL",
"#;

#[tokio::test]
async fn from_the_scan_report_to_a_resolved_notification() {
    let server = SmtpServer::start(None).await;
    let url = server.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.link_secret = Some(varsel::config::Secret::new(
            "a link secret of thirty-two bytes!!",
        ));
        s.outbox_workers = 0;
        s.public_base_url = "https://varsel.example.no".to_owned();
    })
    .await;

    // The registry, imported from CSV with the CLI.
    let dir = tempfile::tempdir().unwrap();
    let orgs = dir.path().join("organisations.csv");
    let nets = dir.path().join("networks.csv");
    std::fs::write(
        &orgs,
        "ref,name,email,language\n\
         DRAMMEN,Drammen kommune,security@drammen.example.no,nb\n\
         FJORDNETT,Fjordnett AS,noc@fjordnett.example.no,en\n",
    )
    .unwrap();
    std::fs::write(
        &nets,
        "cidr,organisation_ref\n198.51.100.0/24,DRAMMEN\n192.0.2.0/24,FJORDNETT\n",
    )
    .unwrap();
    let out = app.cli(&[
        "import",
        "csv",
        "--organisations",
        orgs.to_str().unwrap(),
        "--networks",
        nets.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    app.run_jobs().await;

    // The report.
    let (status, summary) = app
        .push(
            "/api/v1/observations?format=shadowserver&report=scan_exchange",
            "text/csv",
            REPORT,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["accepted"], 3, "{summary}");

    // The campaign: seeded, activated, approved; the outbox sends.
    let campaign = active_campaign(&app, json!({})).await;
    let approved = approve_all(&app, campaign).await;
    assert_eq!(approved.len(), 2, "Drammen and Fjordnett");
    assert_eq!(send_mail(&app).await, 2);
    let mails = server.messages();
    let mail = mails
        .iter()
        .find(|m| m.rcpt_tos == ["security@drammen.example.no"])
        .expect("Drammen's advisory");
    let text = mail.text.as_deref().unwrap();
    assert!(text.contains("198.51.100.23"));
    assert!(!text.contains("192.0.2.10"), "not Fjordnett's host");
    let link = regex_lite::Regex::new(r"https://varsel\.example\.no(/a/[0-9a-f]{64})")
        .unwrap()
        .captures(text)
        .expect("the advisory link")[1]
        .to_owned();
    let token = link.trim_start_matches("/a/").to_owned();
    let drammen =
        sqlx::query_scalar::<_, i64>("SELECT id FROM organisations WHERE ref = 'DRAMMEN'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let notification = notification_of(&app, drammen).await["id"].as_i64().unwrap();

    // The organisation follows the link: Norwegian, as its contact reads.
    let browser = Browser::new(&app);
    let page = browser.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.html.contains(r#"<html lang="nb">"#));
    assert!(page.html.contains("198.51.100.23"));
    assert!(page.html.contains("Undersøk om dere er kompromittert"));

    // Acknowledged.
    let page = browser.submit(&page, &token, "acknowledge", &[]).await;
    assert!(page.url.contains("done=acknowledged"), "{}", page.url);
    assert_eq!(
        notification_of(&app, drammen).await["status"],
        "acknowledged"
    );

    // Compromise: the web shell is real.
    let finding =
        sqlx::query_scalar::<_, i64>("SELECT id FROM findings WHERE ip = '198.51.100.23'")
            .fetch_one(&app.pool)
            .await
            .unwrap()
            .to_string();
    let page = browser
        .submit(
            &page,
            &token,
            "compromise",
            &[
                ("contact_name", "Ola Nordmann, IT-sjef"),
                ("phone", "+47 32 04 00 00"),
                (
                    "observed",
                    "Ukjent .aspx-fil i OWA-mappen, opprettet 3. mars.",
                ),
                ("finding", &finding),
            ],
        )
        .await;
    assert!(page.url.contains("done=compromise"), "{}", page.url);
    let (_, open) = app.get("/api/v1/escalations?status=open", &app.read).await;
    assert_eq!(open["items"][0]["notification_id"], notification, "{open}");
    assert_eq!(open["items"][0]["organisation_name"], "Drammen kommune");

    // Fixed (cleaned and patched): the scanner is asked to look again.
    let page = browser
        .submit(
            &page,
            &token,
            "findings",
            &[("answer", "fixed"), ("finding", &finding)],
        )
        .await;
    assert!(page.url.contains("done=fixed"), "{}", page.url);
    assert!(page.html.contains("Meldt rettet: ny sjekk venter"));
    let (_, rechecks) = app.get("/api/v1/rechecks", &app.ingest).await;
    assert_eq!(
        rechecks["items"],
        json!([{
            "finding_id": finding.parse::<i64>().unwrap(),
            "ip": "198.51.100.23",
            "port": 443,
            "protocol": "tcp",
            "check_id": "scan_exchange",
            "requested_at": rechecks["items"][0]["requested_at"],
        }])
    );

    // The rescan sees it patched.
    let seen = (app.state.clock.now() + chrono::Duration::hours(2)).to_rfc3339();
    let rescan = json!({
        "ip": "198.51.100.23", "port": 443, "check": "scan_exchange",
        "state": "not_vulnerable", "observed_at": seen
    });
    let (status, summary) = app
        .push(
            "/api/v1/observations",
            "application/x-ndjson",
            format!("{rescan}\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    app.run_jobs().await;
    let (_, rechecks) = app.get("/api/v1/rechecks", &app.ingest).await;
    assert_eq!(rechecks["items"], json!([]));
    let n = notification_of(&app, drammen).await;
    assert_eq!(n["status"], "resolved", "{n}");
    let page = browser.get(&link).await;
    assert!(page.html.contains("Ny sjekk bekrefter at det er rettet"));

    // The whole story is on the record.
    let (_, answers) = app
        .get(
            &format!("/api/v1/notifications/{notification}/responses"),
            &app.read,
        )
        .await;
    let kinds: Vec<&str> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["acknowledged", "compromise", "fixed"]);
}
