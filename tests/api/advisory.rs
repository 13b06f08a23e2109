//! The advisory page as an organisation uses it: a browser-like client with
//! a cookie jar following the link from its mail, reading the page and
//! sending its forms as a browser sends them — and what each answer
//! changes for analysts and scanners over the API.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};
use crate::notifications::{
    MARCH_5, active_campaign, approve_all, notification_of, organisation, push, send_mail,
    timeline_kinds,
};

/// A browser: a cookie jar, redirects followed.
pub(crate) struct Browser {
    client: reqwest::Client,
    base: String,
}

/// A page as the browser got it.
pub(crate) struct Shown {
    pub status: StatusCode,
    pub url: String,
    pub headers: reqwest::header::HeaderMap,
    pub html: String,
}

impl Shown {
    /// The value of the hidden field `name` in the page's first form.
    pub fn hidden(&self, name: &str) -> String {
        hidden(&self.html, name)
    }
}

/// The value of the first hidden field `name` in `html`.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    regex_lite::Regex::new(&format!(r#"name="{name}" value="([^"]*)""#))
        .unwrap()
        .captures(html)
        .unwrap_or_else(|| panic!("no hidden {name} in {html}"))[1]
        .to_owned()
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    async fn shown(response: reqwest::Response) -> Shown {
        Shown {
            status: response.status(),
            url: response.url().to_string(),
            headers: response.headers().clone(),
            html: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Shown {
        Self::shown(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends a form to `path`, as `application/x-www-form-urlencoded`.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Shown {
        Self::shown(
            self.client
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Sends form `form` of page `page` (its CSRF token and nonce) with
    /// `fields`.
    pub async fn submit(
        &self,
        page: &Shown,
        token: &str,
        form: &str,
        fields: &[(&str, &str)],
    ) -> Shown {
        let csrf = page.hidden("csrf");
        let submission = page.hidden("submission");
        let mut all = vec![
            ("csrf", csrf.as_str()),
            ("submission", submission.as_str()),
            ("form", form),
        ];
        all.extend_from_slice(fields);
        self.post(&format!("/a/{token}"), &all).await
    }
}

/// An organisation advised of its findings: the link from its mail.
pub(crate) struct Advised {
    pub organisation: i64,
    pub notification: i64,
    pub token: String,
}

/// The links in the mails the file transport wrote since `seen` of them.
pub(crate) fn tokens_in_mail(app: &TestApp) -> Vec<(String, String)> {
    let re = regex_lite::Regex::new(r"/a/([0-9a-f]{64})").unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&app.mail_dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&raw[..])
            .unwrap();
        let to = parsed
            .to()
            .unwrap()
            .first()
            .unwrap()
            .address()
            .unwrap()
            .to_owned();
        let text = parsed.body_text(0).unwrap().into_owned();
        if let Some(c) = re.captures(&text) {
            found.push((to, c[1].to_owned()));
        }
    }
    found
}

/// Organisation `reference` on `cidr`, with one English-speaking security
/// contact, advised of `hosts` (vulnerable unless said); the mail is sent
/// and its link returned.
pub(crate) async fn advise(
    app: &TestApp,
    reference: &str,
    cidr: &str,
    hosts: &[(&str, &str)],
) -> Advised {
    let email = format!("sec@{}.no", reference.to_lowercase());
    let organisation = organisation(app, reference, cidr, &[(&email, "security", "en")]).await;
    push(app, hosts, MARCH_5).await;
    let campaign = match sqlx::query_scalar::<_, i64>("SELECT id FROM campaigns LIMIT 1")
        .fetch_optional(&app.pool)
        .await
        .unwrap()
    {
        Some(id) => {
            app.run_jobs().await;
            id
        }
        None => active_campaign(app, json!({})).await,
    };
    approve_all(app, campaign).await;
    send_mail(app).await;
    let notification = notification_of(app, organisation).await["id"]
        .as_i64()
        .unwrap();
    let token = tokens_in_mail(app)
        .into_iter()
        .find(|(to, _)| *to == email)
        .expect("a mail with a link")
        .1;
    Advised {
        organisation,
        notification,
        token,
    }
}

/// A with one vulnerable host: its finding's id, and its page open in a
/// browser.
async fn one_host_open(app: &TestApp) -> (Advised, String, Browser, Shown) {
    let a = advise(app, "A", "192.0.2.0/24", &[("192.0.2.10", "vulnerable")]).await;
    let id = finding_ids(app, a.organisation).await[0].to_string();
    let browser = Browser::new(app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    (a, id, browser, page)
}

/// A with 192.0.2.10 vulnerable and 192.0.2.11 compromised.
pub(crate) async fn vulnerable_and_compromised(app: &TestApp) -> Advised {
    advise(
        app,
        "A",
        "192.0.2.0/24",
        &[("192.0.2.10", "vulnerable"), ("192.0.2.11", "compromised")],
    )
    .await
}

/// A on 192.0.2.0/24 and B on 198.51.100.0/24, one vulnerable host each.
async fn two_organisations(app: &TestApp) -> (Advised, Advised) {
    let a = advise(app, "A", "192.0.2.0/24", &[("192.0.2.10", "vulnerable")]).await;
    let b = advise(
        app,
        "B",
        "198.51.100.0/24",
        &[("198.51.100.7", "vulnerable")],
    )
    .await;
    (a, b)
}

async fn spawn_app() -> TestApp {
    spawn_app_with(|s| s.outbox_workers = 0).await
}

async fn responses(app: &TestApp, notification: i64) -> Vec<Value> {
    let (status, body) = app
        .get(
            &format!("/api/v1/notifications/{notification}/responses"),
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

pub(crate) async fn finding_ids(app: &TestApp, organisation: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM findings WHERE organisation_id = $1 ORDER BY ip")
        .bind(organisation)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

/// The page with the request id taken out, to compare two error pages.
fn without_request_id(html: &str) -> String {
    regex_lite::Regex::new(r"<code>[0-9a-f-]{36}</code>")
        .unwrap()
        .replace_all(html, "<code>ID</code>")
        .into_owned()
}

#[tokio::test]
async fn the_page_shows_the_advisory_and_only_the_organisations_own_findings() {
    let app = spawn_app().await;
    let a = vulnerable_and_compromised(&app).await;
    let b = advise(
        &app,
        "B",
        "198.51.100.0/24",
        &[("198.51.100.7", "vulnerable")],
    )
    .await;
    let browser = Browser::new(&app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    assert_eq!(page.status, StatusCode::OK);
    let header = |name: &str| page.headers[name].to_str().unwrap().to_owned();
    assert!(header("content-type").starts_with("text/html"));
    assert_eq!(header("referrer-policy"), "no-referrer");
    assert_eq!(header("x-robots-tag"), "noindex, nofollow");
    assert_eq!(header("cache-control"), "no-store");
    let csp = header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no scripts at all: {csp}");
    assert!(header("set-cookie").contains("HttpOnly"));
    assert!(header("set-cookie").contains("SameSite=Strict"));

    let html = &page.html;
    // The mail was English, so is the page.
    assert!(html.contains(r#"<html lang="en">"#));
    assert!(html.contains("TLP:AMBER"));
    assert!(html.contains("We will never ask you for passwords"));
    assert!(html.contains("1. Patch") && html.contains("2. Check for compromise"));
    assert!(
        html.contains("Test-ProxyLogon.ps1"),
        "the campaign's own text"
    );
    assert!(html.contains("192.0.2.10") && html.contains("192.0.2.11"));
    assert!(html.contains("CVE-2021-26855"));
    assert!(html.contains("Microsoft Exchange 15.1.2176"));
    assert!(html.contains("A AS"));
    // Compromised first.
    assert!(html.find("192.0.2.11").unwrap() < html.find("192.0.2.10").unwrap());
    // Another organisation's findings are nowhere.
    assert!(!html.contains("198.51.100.7"));
    let other = browser.get(&format!("/a/{}", b.token)).await;
    assert!(other.html.contains("198.51.100.7") && !other.html.contains("192.0.2.10"));
    // No third-party resource: every src and href is this origin's own.
    let re = regex_lite::Regex::new(r#"(?:src|href)="([^"]*)""#).unwrap();
    for link in re.captures_iter(html) {
        assert!(
            link[1].starts_with('/') || link[1].starts_with('#') || link[1].starts_with('?'),
            "{}",
            &link[1]
        );
    }

    // The language switch.
    let nb = browser.get(&format!("/a/{}?lang=nb", a.token)).await;
    assert!(nb.html.contains(r#"<html lang="nb">"#));
    assert!(nb.html.contains("Vi ber dere aldri om passord"));
    assert!(nb.html.contains("Sårbare Microsoft Exchange-servere"));
    assert!(
        nb.html
            .contains(r#"hreflang="nb" lang="nb" aria-current="true""#)
    );

    // The stylesheet is this service's, cached for a year and revalidated.
    let css = regex_lite::Regex::new(r#"href="(/static/varsel\.css\?v=[0-9a-f]+)""#)
        .unwrap()
        .captures(html)
        .unwrap()[1]
        .to_owned();
    let sheet = app
        .http
        .get(format!("{}{css}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sheet.status(), StatusCode::OK);
    assert!(
        sheet.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert_eq!(
        sheet.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = sheet.headers()["etag"].clone();
    let again = app
        .http
        .get(format!("{}{css}", app.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    // Each view is an open; the first goes on the timeline.
    let n = notification_of(&app, a.organisation).await;
    assert_eq!(n["open_count"], 2, "{n}");
    assert!(n["first_opened_at"].is_string());
    assert!(n["first_opened_at"].as_str() <= n["last_opened_at"].as_str());
    let kinds = timeline_kinds(&app, a.notification).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "opened").count(),
        1,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn unknown_expired_and_revoked_links_get_the_same_plain_404() {
    let app = spawn_app().await;
    let (a, b) = two_organisations(&app).await;
    let browser = Browser::new(&app);
    let unknown = browser.get(&format!("/a/{}", "0".repeat(64))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(unknown.html.contains("request id"));
    let malformed = browser.get("/a/not-a-token").await;
    assert_eq!(malformed.status, StatusCode::NOT_FOUND);

    // Revoked: analysts revoke B's links over the API.
    let (status, body) = app
        .post(
            &format!("/api/v1/notifications/{}/links/revoke", b.notification),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["revoked"], 1);
    let revoked = browser.get(&format!("/a/{}", b.token)).await;
    assert_eq!(revoked.status, StatusCode::NOT_FOUND);
    assert!(
        timeline_kinds(&app, b.notification)
            .await
            .contains(&"links_revoked".to_owned())
    );

    // Reissued: a new link, shown once, works; the old one stays dead.
    let (status, issued) = app
        .post(
            &format!("/api/v1/notifications/{}/links", b.notification),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    let url = issued["url"].as_str().unwrap();
    let new_token = url.rsplit('/').next().unwrap();
    assert_eq!(
        browser.get(&format!("/a/{new_token}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        browser.get(&format!("/a/{}", b.token)).await.status,
        StatusCode::NOT_FOUND
    );
    // Only with the admin scope.
    let (status, _) = app
        .post(
            &format!("/api/v1/notifications/{}/links", b.notification),
            &app.read,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Expired: 90 days on, A's link is dead.
    assert_eq!(
        browser.get(&format!("/a/{}", a.token)).await.status,
        StatusCode::OK
    );
    app.state.clock.advance(chrono::Duration::days(91));
    let expired = browser.get(&format!("/a/{}", a.token)).await;
    assert_eq!(expired.status, StatusCode::NOT_FOUND);

    // All three pages are one page.
    let same = without_request_id(&unknown.html);
    assert_eq!(without_request_id(&revoked.html), same);
    assert_eq!(without_request_id(&expired.html), same);
    assert_eq!(without_request_id(&malformed.html), same);
    assert!(!same.contains(&a.token) && !same.contains("expired") && !same.contains("revoked"));
    app.allow_leftover_jobs();
}

#[tokio::test]
async fn acknowledging_stops_reminders_and_a_double_submit_records_one_answer() {
    let app = spawn_app().await;
    let a = advise(&app, "A", "192.0.2.0/24", &[("192.0.2.10", "vulnerable")]).await;
    let browser = Browser::new(&app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    let done = browser.submit(&page, &a.token, "acknowledge", &[]).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.url.contains("done=acknowledged"), "{}", done.url);
    assert!(done.html.contains("Thank you, your answer is recorded"));
    assert!(done.html.contains(r#"id="acknowledged""#));
    // The same form again (a double click, a reload of the POST).
    let again = browser.submit(&page, &a.token, "acknowledge", &[]).await;
    assert_eq!(again.status, StatusCode::OK);
    let answers = responses(&app, a.notification).await;
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0]["kind"], "acknowledged");
    assert_eq!(answers[0]["client_addr"], "127.0.0.1");
    let n = notification_of(&app, a.organisation).await;
    assert_eq!(n["status"], "acknowledged");
    assert!(n["acknowledged_at"].is_string());

    // No reminder after 3 days, or 7.
    app.state.clock.advance(chrono::Duration::days(8));
    app.run_jobs().await;
    let reminders: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE notification_id = $1 AND kind = 'reminder'",
    )
    .bind(a.notification)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(reminders, 0);
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_are_refused_and_record_nothing() {
    let app = spawn_app().await;
    let (a, b) = two_organisations(&app).await;
    let browser = Browser::new(&app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    let submission = page.hidden("submission");

    // No token at all.
    let missing = browser
        .post(
            &format!("/a/{}", a.token),
            &[("submission", &submission), ("form", "acknowledge")],
        )
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.html.contains("The form could not be sent"));
    // A wrong one.
    let wrong = browser
        .post(
            &format!("/a/{}", a.token),
            &[
                ("csrf", &"ab".repeat(32)),
                ("submission", &submission),
                ("form", "acknowledge"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // A's token on B's link.
    let csrf = page.hidden("csrf");
    let crossed = browser
        .post(
            &format!("/a/{}", b.token),
            &[
                ("csrf", &csrf),
                ("submission", &submission),
                ("form", "acknowledge"),
            ],
        )
        .await;
    assert_eq!(crossed.status, StatusCode::FORBIDDEN);
    // The right token from a browser without the cookie (a forged
    // cross-site post carries none).
    let stranger = Browser::new(&app);
    let forged = stranger
        .post(
            &format!("/a/{}", a.token),
            &[
                ("csrf", &csrf),
                ("submission", &submission),
                ("form", "acknowledge"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // Not a form at all.
    let json_post = app
        .http
        .post(format!("{}/a/{}", app.base, a.token))
        .json(&json!({ "form": "acknowledge" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_post.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(json_post.text().await.unwrap().contains("<html"));

    assert!(responses(&app, a.notification).await.is_empty());
    assert!(responses(&app, b.notification).await.is_empty());
    assert_eq!(
        notification_of(&app, a.organisation).await["status"],
        "sent"
    );
}

#[tokio::test]
async fn fixed_requests_a_recheck_that_scanners_list_and_the_rescan_settles() {
    let app = spawn_app().await;
    let a = advise(
        &app,
        "A",
        "192.0.2.0/24",
        &[("192.0.2.10", "vulnerable"), ("192.0.2.11", "vulnerable")],
    )
    .await;
    let ids = finding_ids(&app, a.organisation).await;
    let (ten, eleven) = (ids[0].to_string(), ids[1].to_string());
    let browser = Browser::new(&app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    // Nothing ticked: the form comes back with the field at fault.
    let none = browser
        .submit(&page, &a.token, "findings", &[("answer", "fixed")])
        .await;
    assert_eq!(none.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(none.html.contains(r#"id="finding-error""#));
    assert!(none.html.contains("Select at least one finding."));
    let done = browser
        .submit(
            &page,
            &a.token,
            "findings",
            &[("answer", "fixed"), ("finding", &ten), ("finding", &eleven)],
        )
        .await;
    assert!(done.url.contains("done=fixed"), "{}", done.url);
    assert_eq!(
        done.html
            .matches("Reported fixed: re-check pending")
            .count(),
        2
    );
    let answers = responses(&app, a.notification).await;
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0]["kind"], "fixed");
    assert_eq!(answers[0]["finding_id"], ids[0]);

    // Scanners (scope ingest) list them, readers may not.
    let (status, _) = app.get("/api/v1/rechecks", &app.read).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, list) = app.get("/api/v1/rechecks", &app.ingest).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let targets: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ip"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["192.0.2.10", "192.0.2.11"]);
    assert_eq!(list["items"][0]["check_id"], "exchange-proxylogon");
    assert_eq!(list["items"][0]["port"], 443);

    // The rescan: .10 is fixed, .11 still vulnerable.
    let later = (app.state.clock.now() + chrono::Duration::hours(1)).to_rfc3339();
    push(
        &app,
        &[
            ("192.0.2.10", "not_vulnerable"),
            ("192.0.2.11", "vulnerable"),
        ],
        &later,
    )
    .await;
    app.run_jobs().await;
    let (_, list) = app.get("/api/v1/rechecks", &app.ingest).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    let page = browser.get(&format!("/a/{}", a.token)).await;
    assert!(page.html.contains("Re-check confirms it is fixed"));
    assert!(page.html.contains("Re-check still saw it"));
    assert_eq!(
        notification_of(&app, a.organisation).await["open_findings"],
        1
    );
}

#[tokio::test]
async fn a_false_positive_needs_a_reason_and_keeps_the_finding_out_of_counts_until_it_expires() {
    let app = spawn_app().await;
    let (a, id, browser, page) = one_host_open(&app).await;
    let no_reason = browser
        .submit(
            &page,
            &a.token,
            "findings",
            &[
                ("answer", "false_positive"),
                ("finding", &id),
                ("reason", "  "),
            ],
        )
        .await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(no_reason.html.contains(r#"id="reason-error""#));
    assert!(no_reason.html.contains(r#"aria-invalid="true""#));
    // What was ticked stays ticked.
    assert!(
        no_reason
            .html
            .contains(&format!(r#"value="{id}" id="select-{id}" checked"#))
    );
    assert!(responses(&app, a.notification).await.is_empty());

    let reason = "This is a honeypot <script>alert(1)</script>";
    let done = browser
        .submit(
            &page,
            &a.token,
            "findings",
            &[
                ("answer", "false_positive"),
                ("finding", &id),
                ("reason", reason),
            ],
        )
        .await;
    assert!(done.url.contains("done=false_positive"), "{}", done.url);
    assert!(
        done.html
            .contains("Reported as a false positive; kept out of reminders until")
    );
    app.run_jobs().await;
    let n = notification_of(&app, a.organisation).await;
    assert_eq!(n["open_findings"], 0);
    assert_eq!(n["status"], "resolved", "nothing left that counts");
    let answers = responses(&app, a.notification).await;
    assert_eq!(answers[0]["detail"]["reason"], reason);

    // 90 days on, the flag is gone and the finding counts again.
    app.state.clock.advance(chrono::Duration::days(91));
    app.run_jobs().await;
    let n = notification_of(&app, a.organisation).await;
    assert_eq!(n["open_findings"], 1);
    assert_ne!(n["status"], "resolved");
}

#[tokio::test]
async fn not_ours_puts_the_finding_back_into_triage_for_good() {
    let app = spawn_app().await;
    let a = advise(
        &app,
        "A",
        "192.0.2.0/24",
        &[("192.0.2.10", "vulnerable"), ("192.0.2.11", "vulnerable")],
    )
    .await;
    let ids = finding_ids(&app, a.organisation).await;
    let browser = Browser::new(&app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    let done = browser
        .submit(
            &page,
            &a.token,
            "findings",
            &[("answer", "not_ours"), ("finding", &ids[1].to_string())],
        )
        .await;
    assert!(done.url.contains("done=not_ours"));
    assert!(done.html.contains("Reported as not yours"));
    app.run_jobs().await;
    let (_, triage) = app
        .get("/api/v1/findings?unattributed=true", &app.read)
        .await;
    let triaged: Vec<i64> = triage["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_i64().unwrap())
        .collect();
    assert_eq!(triaged, [ids[1]]);
    // A registry change runs late attribution: it does not hand it back.
    let (status, _) = app
        .post(
            &format!("/api/v1/organisations/{}/networks", a.organisation),
            &app.admin,
            json!({ "cidr": "192.0.2.0/25" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.run_jobs().await;
    let owner: Option<i64> =
        sqlx::query_scalar("SELECT organisation_id FROM findings WHERE id = $1")
            .bind(ids[1])
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(owner, None);
    assert_eq!(
        notification_of(&app, a.organisation).await["open_findings"],
        1
    );
    // Nothing more can be answered about it.
    let page = browser.get(&format!("/a/{}", a.token)).await;
    assert!(!page.html.contains(&format!(r#"id="select-{}""#, ids[1])));
    assert!(page.html.contains(&format!(r#"id="select-{}""#, ids[0])));
}

#[tokio::test]
async fn reporting_compromise_raises_an_escalation_analysts_take_and_close() {
    let app = spawn_app().await;
    let (a, id, browser, page) = one_host_open(&app).await;
    let bad = browser
        .submit(
            &page,
            &a.token,
            "compromise",
            &[
                ("contact_name", "Kari Nordmann"),
                ("phone", "call me"),
                ("observed", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.html.contains(r#"id="phone-error""#));
    assert!(bad.html.contains(r#"id="observed-error""#));
    assert!(
        bad.html.contains(r#"value="Kari Nordmann""#),
        "what was typed stays"
    );
    let (_, open) = app.get("/api/v1/escalations?status=open", &app.read).await;
    assert!(open["items"].as_array().unwrap().is_empty());

    let done = browser
        .submit(
            &page,
            &a.token,
            "compromise",
            &[
                ("contact_name", "Kari Nordmann"),
                ("phone", "+47 22 33 44 55"),
                ("observed", "Unknown .aspx files in the OWA folder"),
                ("finding", &id),
            ],
        )
        .await;
    assert!(done.url.contains("done=compromise"), "{}", done.url);
    let (_, open) = app.get("/api/v1/escalations?status=open", &app.read).await;
    let items = open["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{open}");
    let escalation = &items[0];
    assert_eq!(escalation["notification_id"], a.notification);
    assert_eq!(escalation["phone"], "+47 22 33 44 55");
    assert_eq!(escalation["finding_id"].to_string(), id);
    assert!(
        timeline_kinds(&app, a.notification)
            .await
            .contains(&"compromise_reported".to_owned())
    );
    let eid = escalation["id"].as_i64().unwrap();

    // Closing needs taking first; both need the admin scope.
    let (status, body) = app
        .post(
            &format!("/api/v1/escalations/{eid}/close"),
            &app.admin,
            json!({ "note": "done" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, _) = app
        .post(
            &format!("/api/v1/escalations/{eid}/take"),
            &app.read,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, taken) = app
        .post(
            &format!("/api/v1/escalations/{eid}/take"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{taken}");
    assert_eq!(taken["status"], "taken");
    let (status, body) = app
        .post(
            &format!("/api/v1/escalations/{eid}/close"),
            &app.admin,
            json!({ "note": " " }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "note");
    let (status, closed) = app
        .post(
            &format!("/api/v1/escalations/{eid}/close"),
            &app.admin,
            json!({ "note": "Web shell confirmed; incident response engaged." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["status"], "closed");
    assert_eq!(
        closed["close_note"],
        "Web shell confirmed; incident response engaged."
    );
    let (_, open) = app.get("/api/v1/escalations?status=open", &app.read).await;
    assert!(open["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn comments_and_proposed_contacts_are_recorded_and_analysts_confirm_contacts() {
    let app = spawn_app().await;
    let a = advise(&app, "A", "192.0.2.0/24", &[("192.0.2.10", "vulnerable")]).await;
    let browser = Browser::new(&app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    let done = browser
        .submit(
            &page,
            &a.token,
            "comment",
            &[("comment", "We patched on Saturday & rebooted.")],
        )
        .await;
    assert!(done.url.contains("done=comment"));
    let bad = browser
        .submit(
            &page,
            &a.token,
            "contact",
            &[("email", "not an address"), ("language", "nb")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.html.contains(r#"id="email-error""#));
    let done = browser
        .submit(
            &page,
            &a.token,
            "contact",
            &[
                ("email", "cert@a.no"),
                ("name", "A's CERT"),
                ("language", "nb"),
            ],
        )
        .await;
    assert!(done.url.contains("done=contact_change"), "{}", done.url);
    let answers = responses(&app, a.notification).await;
    let kinds: Vec<&str> = answers
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["comment", "contact_change"]);
    assert_eq!(
        answers[0]["detail"]["text"],
        "We patched on Saturday & rebooted."
    );
    // The page escapes what was said.
    assert!(done.html.contains("Comment"));

    // Not used until an analyst confirms it.
    let contacts = |app: &TestApp| {
        let pool = app.pool.clone();
        let org = a.organisation;
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT email FROM contacts WHERE organisation_id = $1 ORDER BY id",
            )
            .bind(org)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(contacts(&app).await, ["sec@a.no"]);
    let (_, pending) = app
        .get("/api/v1/contact-proposals?status=pending", &app.read)
        .await;
    let proposal = pending["items"][0]["id"].as_i64().unwrap();
    assert_eq!(pending["items"][0]["email"], "cert@a.no");
    let (status, decided) = app
        .post(
            &format!("/api/v1/contact-proposals/{proposal}/confirm"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["proposal"]["status"], "confirmed");
    assert_eq!(decided["contact"]["provenance"], "organisation");
    assert_eq!(contacts(&app).await, ["sec@a.no", "cert@a.no"]);
    let (status, _) = app
        .post(
            &format!("/api/v1/contact-proposals/{proposal}/reject"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn the_findings_download_as_csv_and_json() {
    let app = spawn_app().await;
    let a = vulnerable_and_compromised(&app).await;
    let browser = Browser::new(&app);
    let csv = browser.get(&format!("/a/{}/findings.csv", a.token)).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = csv.headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"VARSEL-"),
        "{disposition}"
    );
    let mut reader = csv::Reader::from_reader(csv.html.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][0], "192.0.2.11");
    assert_eq!(&rows[0][4], "compromised");
    let json = browser.get(&format!("/a/{}/findings.json", a.token)).await;
    let body: Value = serde_json::from_str(&json.html).unwrap();
    assert_eq!(body["findings"].as_array().unwrap().len(), 2);
    assert_eq!(body["findings"][1]["ip"], "192.0.2.10");
    assert_eq!(body["findings"][1]["cves"][0], "CVE-2021-26855");
    let unknown = browser
        .get(&format!("/a/{}/findings.csv", "0".repeat(64)))
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_page_is_rate_limited_per_client_address() {
    let app = spawn_app_with(|s| {
        s.outbox_workers = 0;
        s.page_rate_limit_per_minute = 3;
    })
    .await;
    let browser = Browser::new(&app);
    for _ in 0..3 {
        assert_eq!(
            browser.get(&format!("/a/{}", "0".repeat(64))).await.status,
            StatusCode::NOT_FOUND
        );
    }
    let limited = browser.get(&format!("/a/{}", "0".repeat(64))).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.html.contains("Too many requests"));
    // The API is limited per token, not by this.
    let (status, _) = app.get("/api/v1/escalations", &app.read).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn pages_fail_as_html_and_the_api_as_problem_documents() {
    let app = spawn_app().await;
    let page = app
        .http
        .get(format!("{}/no/such/page", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
    let request_id = page.headers()["x-request-id"].to_str().unwrap().to_owned();
    let page_headers = page.headers().clone();
    let html = page.text().await.unwrap();
    assert_eq!(page_headers["x-robots-tag"], "noindex, nofollow");
    assert!(html.contains("Page not found"));
    assert!(html.contains(&request_id), "the page shows its request id");
    let api = app
        .http
        .get(format!("{}/api/v1/nothing", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
    assert_eq!(api.headers()["content-type"], "application/problem+json");
    let wrong_method = app
        .http
        .delete(format!("{}/a/{}", app.base, "0".repeat(64)))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.text().await.unwrap().contains("<html"));
}

#[tokio::test]
async fn campaign_updates_appear_on_the_page_newest_first() {
    let app = spawn_app().await;
    let a = advise(&app, "A", "192.0.2.0/24", &[("192.0.2.10", "vulnerable")]).await;
    let browser = Browser::new(&app);
    let before = browser.get(&format!("/a/{}", a.token)).await;
    assert!(!before.html.contains(r#"id="campaign-updates""#));
    let campaign = notification_of(&app, a.organisation).await["campaign_id"].clone();
    for (nb, en) in [
        ("Første oppdatering.", "First update."),
        (
            "**Andre:** webshell sett <script>alert(1)</script>",
            "**Second:** web shells seen <script>alert(1)</script>",
        ),
    ] {
        let (status, body) = app
            .post(
                &format!("/api/v1/campaigns/{campaign}/updates"),
                &app.admin,
                json!({ "body_nb": nb, "body_en": en }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        app.state.clock.advance(chrono::Duration::hours(1));
    }
    app.run_jobs().await;
    let page = browser.get(&format!("/a/{}", a.token)).await;
    let html = &page.html;
    assert!(html.contains(r#"id="campaign-updates""#));
    let second = html
        .find("<strong>Second:</strong> web shells seen")
        .expect("rendered Markdown");
    let first = html.find("First update.").expect("the first update");
    assert!(second < first, "newest first");
    assert!(!html.contains("<script>alert(1)</script>"), "sanitised");
}
