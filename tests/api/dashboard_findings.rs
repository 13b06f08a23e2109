//! Dashboard findings pages, as a browser meets them: the filtered list
//! and its pages, the CSV export with formula-looking cells defused, a
//! false positive flagged (a reason required) and cleared, the triage
//! queue where an analyst registers a network and attributes a finding in
//! one go, and viewers who see no forms and may not post.

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::advisory::hidden;
use crate::dashboard::{Client, PASSWORD, operator};
use crate::helpers::{TestApp, spawn_app};

const NDJSON: &str = "application/x-ndjson";
const AT: &str = "2021-03-05T10:00:00Z";

fn line(ip: &str, check: &str, state: &str) -> String {
    json!({ "ip": ip, "port": 443, "observed_at": AT, "check": check, "state": state,
            "cves": ["CVE-2021-26855"], "severity": "critical" })
    .to_string()
}

async fn push(app: &TestApp, lines: &[String]) {
    let (status, body) = app
        .push("/api/v1/observations", NDJSON, lines.join("\n"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// The REST API's findings for `query`.
async fn findings(app: &TestApp, query: &str) -> Vec<Value> {
    let (status, page) = app
        .get(&format!("/api/v1/findings?{query}"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// An operator of `role` logged in: the client, its cookies, a CSRF token.
async fn logged_in(app: &TestApp, role: &str) -> (Client, String, String) {
    let email = format!("{role}@ncsc.example.no");
    operator(app, &email, role);
    let client = Client::new(app);
    let cookies = client.login(&email, PASSWORD).await;
    let html = page(&client, &cookies, "/findings").await;
    let csrf = hidden(&html, "csrf");
    (client, cookies, csrf)
}

async fn page(client: &Client, cookies: &str, path: &str) -> String {
    let r = client.get(path, cookies).await;
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.text().await.unwrap()
}

#[tokio::test]
async fn filters_pages_and_csv_export() {
    let app = spawn_app().await;
    let org = app.organisation("org-a", &["192.0.2.0/24"]).await;
    let mut lines: Vec<String> = (1..=55)
        .map(|i| line(&format!("192.0.2.{i}"), "exchange-proxylogon", "vulnerable"))
        .collect();
    lines.push(line("192.0.2.200", "rdp-open", "compromised"));
    lines.push(line("203.0.113.5", "=1+2<b>", "vulnerable"));
    push(&app, &lines).await;
    let (client, cookies, _) = logged_in(&app, "viewer").await;

    let html = page(&client, &cookies, "/findings?check=rdp-open").await;
    assert!(html.contains("192.0.2.200:443"), "{html}");
    assert!(!html.contains("192.0.2.1:443") && !html.contains("203.0.113.5"));
    assert!(html.contains(&format!("href=\"/organisations/{org}\"")));
    assert!(!html.contains("next-page"));

    let html = page(&client, &cookies, "/findings?state=compromised").await;
    assert!(html.contains("192.0.2.200:443") && !html.contains("192.0.2.7:443"));

    // The organisation's: 56 rows, on two pages; the unattributed one on neither.
    let first = page(&client, &cookies, &format!("/findings?organisation={org}")).await;
    assert!(!first.contains("203.0.113.5"));
    assert_eq!(first.matches("<tr id=\"finding-").count(), 50);
    let next = regex_lite::Regex::new(r#"href="(/findings\?[^"]*)" rel="next""#)
        .unwrap()
        .captures(&first)
        .expect("a next link")[1]
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    assert!(next.contains(&format!("organisation={org}")), "{next}");
    assert!(next.contains("after="), "{next}");
    let second = page(&client, &cookies, &next).await;
    assert_eq!(second.matches("<tr id=\"finding-").count(), 6, "{next}");
    assert!(second.contains("192.0.2.200:443") && !second.contains("next-page"));

    // Data is escaped.
    let html = page(&client, &cookies, "/findings?cidr=203.0.113.0/24").await;
    assert!(html.contains("=1+2&#60;b&#62;") && !html.contains("=1+2<b>"));

    // A bad filter is shown at its field.
    let r = client.get("/findings?cve=nope", &cookies).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"cve-error\""));

    let r = client.get("/findings.csv?status=open", &cookies).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = r.text().await.unwrap();
    let mut rows = csv.lines();
    assert!(
        rows.next()
            .unwrap()
            .starts_with("id,ip,port,protocol,check,")
    );
    assert_eq!(rows.count(), 57);
    assert!(csv.contains(",'=1+2<b>,"), "{csv}");
    assert!(!csv.contains(",=1+2"));
    app.run_jobs().await;
}

#[tokio::test]
async fn an_analyst_flags_a_false_positive_with_a_reason_and_clears_it() {
    let app = spawn_app().await;
    app.organisation("org-a", &["192.0.2.0/24"]).await;
    push(
        &app,
        &[line("192.0.2.10", "exchange-proxylogon", "vulnerable")],
    )
    .await;
    let id = findings(&app, "").await[0]["id"].as_i64().unwrap();
    let (client, cookies, csrf) = logged_in(&app, "analyst").await;
    let path = format!("/findings/{id}");
    let html = page(&client, &cookies, &path).await;
    assert!(html.contains("id=\"false-positive-form\"") && html.contains("id=\"history\""));
    assert!(html.contains("<pre class=\"wrap raw\">"));

    let r = client
        .post(
            &format!("{path}/false-positive"),
            &cookies,
            &[("csrf", &csrf), ("reason", "  "), ("until", "")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"reason-error\""));
    let flagged: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT false_positive_until FROM findings WHERE id = $1")
            .bind(id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(flagged.is_none());

    let r = client
        .post(
            &format!("{path}/false-positive"),
            &cookies,
            &[
                ("csrf", &csrf),
                ("reason", "a <b>honeypot</b>"),
                ("until", ""),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], path.as_str());
    let html = page(&client, &cookies, &path).await;
    assert!(html.contains("<span class=\"badge\">false positive</span>"));
    assert!(
        html.contains("a &#60;b&#62;honeypot") && !html.contains("<b>honeypot"),
        "{html}"
    );
    let days: i64 = sqlx::query_scalar(
        "SELECT extract(day FROM false_positive_until - $2)::bigint FROM findings WHERE id = $1",
    )
    .bind(id)
    .bind(app.state.clock.now())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    // 90 days (the default) from when it was marked, a moment ago.
    assert!((89..=90).contains(&days), "{days}");

    let r = client
        .post(
            &format!("{path}/false-positive/clear"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = page(&client, &cookies, &path).await;
    assert!(!html.contains("<span class=\"badge\">false positive</span>"));
    app.run_jobs().await;
}

/// The organisation's networks, over REST.
async fn networks(app: &TestApp, org: i64) -> Vec<Value> {
    let path = format!("/api/v1/organisations/{org}/networks");
    let (status, body) = app.get(&path, &app.read).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.get("items")
        .unwrap_or(&body)
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn triage_registers_the_network_and_attributes_the_finding() {
    let app = spawn_app().await;
    let org = app.organisation("org-b", &[]).await;
    push(
        &app,
        &[line("203.0.113.5", "exchange-proxylogon", "vulnerable")],
    )
    .await;
    let id = findings(&app, "unattributed=true").await[0]["id"]
        .as_i64()
        .unwrap();
    let (client, cookies, csrf) = logged_in(&app, "analyst").await;
    let html = page(&client, &cookies, "/triage").await;
    assert!(html.contains(&format!("id=\"triage-{id}\"")));
    assert!(html.contains("value=\"203.0.113.5/32\""), "{html}");

    let org_field = org.to_string();
    let assign = format!("/triage/{id}/assign");
    let r = client
        .post(
            &assign,
            &cookies,
            &[
                ("csrf", &csrf),
                ("organisation", &org_field),
                ("cidr", "198.51.100.0/24"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = r.text().await.unwrap();
    assert!(html.contains(&format!("id=\"cidr-{id}-error\"")));
    assert!(html.contains("does not contain"));
    assert!(networks(&app, org).await.is_empty());

    // Named by an id, a reference or a number no organisation has.
    for (given, told) in [
        ("#999999", "there is no organisation 999999"),
        ("org-x", "no organisation has the reference"),
        ("987654321", "no organisation has the number 987654321"),
        ("", "name the organisation"),
    ] {
        let r = client
            .post(
                &assign,
                &cookies,
                &[
                    ("csrf", &csrf),
                    ("organisation", given),
                    ("cidr", "203.0.113.0/24"),
                ],
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!("id=\"organisation-{id}-error\"")) && html.contains(told),
            "{given:?}: {html}"
        );
    }
    // Two organisations with one number: the reference is asked for.
    for reference in ["dept-1", "dept-2"] {
        let (status, body) = app
            .post(
                "/api/v1/organisations",
                &app.admin,
                serde_json::json!({ "ref": reference, "name": reference, "org_number": "974760673" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let r = client
        .post(
            &assign,
            &cookies,
            &[
                ("csrf", &csrf),
                ("organisation", "974760673"),
                ("cidr", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("2 organisations have the number 974760673 (dept-1, dept-2)")
    );

    let r = client
        .post(
            &assign,
            &cookies,
            &[
                ("csrf", &csrf),
                ("organisation", "org-b"),
                ("cidr", "203.0.113.0/24"),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = page(&client, &cookies, "/triage").await;
    assert!(!html.contains(&format!("id=\"triage-{id}\"")) && html.contains("id=\"no-triage\""));
    let nets = networks(&app, org).await;
    assert_eq!(nets.len(), 1);
    assert_eq!(nets[0]["cidr"], "203.0.113.0/24");
    let (_, finding) = app.get(&format!("/api/v1/findings/{id}"), &app.read).await;
    assert_eq!(finding["organisation_id"], org);
    assert_eq!(finding["network_id"], nets[0]["id"]);
    assert!(
        finding["history"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "attributed")
    );
    app.run_jobs().await;
}

#[tokio::test]
async fn a_viewer_sees_no_forms_and_may_not_post() {
    let app = spawn_app().await;
    let org = app.organisation("org-b", &[]).await;
    push(
        &app,
        &[line("203.0.113.5", "exchange-proxylogon", "vulnerable")],
    )
    .await;
    let id = findings(&app, "").await[0]["id"].as_i64().unwrap();
    let (client, cookies, csrf) = logged_in(&app, "viewer").await;
    let detail = page(&client, &cookies, &format!("/findings/{id}")).await;
    assert!(!detail.contains("false-positive-form") && !detail.contains("close-form"));
    let triage = page(&client, &cookies, "/triage").await;
    assert!(triage.contains(&format!("id=\"triage-{id}\"")) && !triage.contains("assign-form"));

    let org_field = org.to_string();
    for (path, fields) in [
        (
            format!("/findings/{id}/false-positive"),
            vec![("csrf", csrf.as_str()), ("reason", "mine")],
        ),
        (
            format!("/findings/{id}/false-positive/clear"),
            vec![("csrf", csrf.as_str())],
        ),
        (
            format!("/findings/{id}/close"),
            vec![("csrf", csrf.as_str()), ("note", "mine")],
        ),
        (
            format!("/triage/{id}/assign"),
            vec![
                ("csrf", csrf.as_str()),
                ("organisation", org_field.as_str()),
                ("cidr", "203.0.113.5/32"),
            ],
        ),
    ] {
        let r = client.post(&path, &cookies, &fields).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(findings(&app, "unattributed=true").await.len(), 1);
    app.run_jobs().await;
}

#[tokio::test]
async fn the_list_sorts_on_the_server_and_pages_in_that_order() {
    let app = spawn_app().await;
    app.organisation("org-a", &["192.0.2.0/24"]).await;
    // The last five addresses first, so that ids and addresses differ.
    for hosts in [51..=55, 1..=50] {
        let lines: Vec<String> = hosts
            .map(|i| line(&format!("192.0.2.{i}"), "exchange-proxylogon", "vulnerable"))
            .collect();
        push(&app, &lines).await;
    }
    // Seen again later (its last sighting moves, its first does not), and
    // one host found later.
    for ip in ["192.0.2.30", "192.0.2.99"] {
        let later = json!({ "ip": ip, "port": 443, "observed_at": "2021-03-07T10:00:00Z",
                            "check": "exchange-proxylogon", "state": "vulnerable" })
        .to_string();
        push(&app, &[later]).await;
    }
    let (client, cookies, _) = logged_in(&app, "viewer").await;
    let addresses = |html: &str| -> Vec<String> {
        regex_lite::Regex::new(r#"<td>(192\.0\.2\.\d+):443/tcp</td>"#)
            .unwrap()
            .captures_iter(html)
            .map(|c| c[1].to_owned())
            .collect()
    };
    let next_of = |html: &str| {
        regex_lite::Regex::new(r#"href="(/findings\?[^"]*)" rel="next""#)
            .unwrap()
            .captures(html)
            .map(|c| c[1].replace("&#38;", "&").replace("&amp;", "&"))
    };

    // By address (as addresses, not as text), filters kept, on two pages.
    let first = page(
        &client,
        &cookies,
        "/findings?check=exchange-proxylogon&sort=ip",
    )
    .await;
    let shown = addresses(&first);
    assert_eq!(shown.len(), 50);
    assert_eq!(shown[0], "192.0.2.1");
    assert_eq!(shown[1], "192.0.2.2");
    assert_eq!(shown[49], "192.0.2.50");
    assert!(
        first.contains(
            r#"aria-sort="ascending"><a href="/findings?check=exchange-proxylogon&#38;sort=ip""#
        ),
        "{first}"
    );
    let next = next_of(&first).expect("a second page");
    assert!(next.contains("check=exchange-proxylogon") && next.contains("sort=ip"));
    let second = page(&client, &cookies, &next).await;
    assert_eq!(
        addresses(&second),
        [
            "192.0.2.51",
            "192.0.2.52",
            "192.0.2.53",
            "192.0.2.54",
            "192.0.2.55",
            "192.0.2.99"
        ]
    );
    // The default order is the findings' own, oldest first.
    let by_id = page(&client, &cookies, "/findings?check=exchange-proxylogon").await;
    assert_eq!(addresses(&by_id)[..2], ["192.0.2.51", "192.0.2.52"]);
    // Newest first.
    let recent = page(&client, &cookies, "/findings?sort=-first_seen").await;
    assert_eq!(addresses(&recent)[0], "192.0.2.99");
    assert_ne!(addresses(&recent)[1], "192.0.2.30", "by first sighting");
    assert!(recent.contains(r#"aria-sort="descending""#));
    // Its next page starts after the last row's time and id: 56 rows in
    // all, none twice, though 55 share one time.
    let rest = page(&client, &cookies, &next_of(&recent).expect("a second page")).await;
    let mut all = addresses(&recent);
    all.extend(addresses(&rest));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 56);

    for bad in [
        "/findings?sort=severity",
        "/findings?sort=ip&after=nonsense",
    ] {
        let r = client.get(bad, &cookies).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

/// A web shell a rescan no longer sees: the finding page says it is not
/// seen since its last sighting, names the check and the server for
/// people, and an analyst closes it with a note (refused without one),
/// which its history and the scan run's page show.
#[tokio::test]
async fn an_analyst_closes_a_compromise_no_scan_sees_with_a_note() {
    let app = spawn_app().await;
    app.organisation("org-a", &["192.0.2.0/24"]).await;
    let shell = json!({ "ip": "192.0.2.9", "port": 443, "observed_at": AT, "check": "scan_exchange",
                        "state": "compromised", "hostname": "owa.example.no",
                        "evidence": { "servername": "EXCH01", "tag": "exchange;webshell" } });
    push(&app, &[shell.to_string()]).await;
    let (status, run) = app
        .post(
            "/api/v1/scans",
            &app.ingest,
            json!({ "scanner": "rescan", "checks": ["scan_exchange"], "scope": ["192.0.2.0/24"],
                    "started_at": "2021-03-06T00:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let (status, done) = app
        .post(
            &format!("/api/v1/scans/{}/finish", run["id"]),
            &app.ingest,
            json!({ "finished_at": "2021-03-06T01:00:00Z" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let id = findings(&app, "").await[0]["id"].as_i64().unwrap();
    let (client, cookies, csrf) = logged_in(&app, "analyst").await;

    let run_page = page(&client, &cookies, &format!("/scan-runs/{}", run["id"])).await;
    assert!(run_page.contains("id=\"kept-open-list\""), "{run_page}");
    assert!(run_page.contains(&format!("href=\"/findings/{id}\"")));

    let path = format!("/findings/{id}");
    let html = page(&client, &cookies, &path).await;
    assert!(
        html.contains("Web shell found on Microsoft Exchange (Shadowserver)"),
        "{html}"
    );
    assert!(html.contains("id=\"not-seen\""));
    assert!(html.contains("<dd>EXCH01</dd>") && html.contains("<dd>owa.example.no</dd>"));
    let list = page(&client, &cookies, "/findings").await;
    assert!(list.contains("not seen since"));

    let close = format!("{path}/close");
    let r = client
        .post(&close, &cookies, &[("csrf", &csrf), ("note", " ")])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("id=\"note-error\""));
    assert_eq!(findings(&app, "status=open").await.len(), 1);

    let r = client
        .post(
            &close,
            &cookies,
            &[("csrf", &csrf), ("note", "Rebuilt; <b>no</b> traces left.")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = page(&client, &cookies, &path).await;
    assert!(
        html.contains(
            "closed by analyst@ncsc.example.no: Rebuilt; &#60;b&#62;no&#60;/b&#62; traces left."
        ),
        "{html}"
    );
    assert!(!html.contains("id=\"close-form\""));
    assert_eq!(findings(&app, "status=open").await.len(), 0);
    app.run_jobs().await;
}
