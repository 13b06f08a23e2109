//! The dashboard's access edge, as a browser meets it (cookies handled by
//! hand here, so that each Set-Cookie and redirect can be checked):
//! operators added with the CLI, logging in and out, wrong passwords and
//! the lockout, session fixation, idle and absolute expiry, the `?next=`
//! after login, roles, CSRF and origin checks, and the login rate limit.

use std::io::Write;
use std::process::Stdio;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::advisory::hidden;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// `varsel user add`, the password on standard input.
fn add_user(app: &TestApp, email: &str, role: &str, password: &str) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_varsel"))
        .args(["user", "add", email, "--role", role])
        .env("DATABASE_URL", &app.database_url)
        .env("VARSEL_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run varsel");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    child.wait_with_output().unwrap()
}

/// An operator with [`PASSWORD`], added as an admin would add one.
pub(crate) fn operator(app: &TestApp, email: &str, role: &str) {
    let added = add_user(app, email, role, PASSWORD);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
}

/// A browser whose cookies the test passes by hand; redirects not followed.
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    base: String,
}

/// The value `name` gets in a response's Set-Cookie headers.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.strip_prefix(&format!("{name}="))?
                .split(';')
                .next()
                .map(str::to_owned)
        })
}

impl Client {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
        }
    }

    pub(crate) async fn get(&self, path: &str, cookies: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, cookies)
            .send()
            .await
            .unwrap()
    }

    /// The login form: its CSRF cookie and token.
    async fn login_form(&self) -> (String, String) {
        let r = self.get("/login", "").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["referrer-policy"], "same-origin");
        let cookie = set_cookie(&r, "varsel_csrf").expect("a CSRF cookie");
        let html = r.text().await.unwrap();
        (format!("varsel_csrf={cookie}"), hidden(&html, "csrf"))
    }

    async fn login_with(
        &self,
        email: &str,
        password: &str,
        next: &str,
        extra_cookie: &str,
    ) -> reqwest::Response {
        self.login_posting(
            &[("email", email), ("password", password), ("next", next)],
            extra_cookie,
        )
        .await
    }

    /// The login form posted with `fields` (and its CSRF token).
    async fn login_posting(
        &self,
        fields: &[(&str, &str)],
        extra_cookie: &str,
    ) -> reqwest::Response {
        let (cookie, csrf) = self.login_form().await;
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.http
            .post(format!("{}/login", self.base))
            .header(COOKIE, format!("{cookie}{extra_cookie}"))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// A form post with the given cookies.
    pub(crate) async fn post(
        &self,
        path: &str,
        cookies: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, cookies)
            .header("origin", &self.base)
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// Logs in; returns the cookies a browser would then send.
    pub(crate) async fn login(&self, email: &str, password: &str) -> String {
        let r = self.login_with(email, password, "/", "").await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{:?}", r.text().await);
        let session = set_cookie(&r, "varsel_session").expect("a session cookie");
        let (csrf_cookie, _) = self.login_form().await;
        format!("{csrf_cookie}; varsel_session={session}")
    }
}

#[tokio::test]
async fn an_operator_added_on_the_command_line_logs_in_and_out() {
    let app = spawn_app().await;
    let short = add_user(&app, "kari@ncsc.example.no", "admin", "short");
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 12 characters"));
    let added = add_user(&app, "Kari@NCSC.example.no", "admin", PASSWORD);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(!String::from_utf8_lossy(&added.stdout).contains(PASSWORD));
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM operators")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(PASSWORD));
    let again = add_user(&app, "kari@ncsc.example.no", "viewer", PASSWORD);
    assert!(!again.status.success(), "one operator per address");

    let client = Client::new(&app);
    // Not logged in: to the login page, to come back after.
    let r = client.get("/", "").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/login?next=%2F");

    let wrong = client
        .login_with("kari@ncsc.example.no", "not the password", "/", "")
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "varsel_session").is_none());
    let html = wrong.text().await.unwrap();
    assert!(html.contains("Wrong e-mail address, password or authentication code."));
    assert!(
        html.contains(r#"value="kari@ncsc.example.no""#),
        "the address stays in the form"
    );
    let unknown = client
        .login_with("nobody@ncsc.example.no", PASSWORD, "/", "")
        .await;
    assert_eq!(unknown.status(), StatusCode::UNAUTHORIZED);
    assert!(
        unknown
            .text()
            .await
            .unwrap()
            .contains("Wrong e-mail address, password or authentication code.")
    );

    let cookies = client.login("kari@ncsc.example.no", PASSWORD).await;
    let overview = client.get("/", &cookies).await;
    assert_eq!(overview.status(), StatusCode::OK);
    let html = overview.text().await.unwrap();
    assert!(html.contains("<h1>Overview</h1>"));
    assert!(html.contains("kari@ncsc.example.no (admin)"));

    // Logging out is a POST with the session's CSRF token.
    let csrf = hidden(&html, "csrf");
    let out = client
        .http
        .post(format!("{}/logout", app.base))
        .header(COOKIE, &cookies)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(out.headers()[LOCATION], "/login");
    assert_eq!(set_cookie(&out, "varsel_session").as_deref(), Some(""));
    // The old cookie opens nothing any more.
    assert_eq!(
        client.get("/", &cookies).await.status(),
        StatusCode::SEE_OTHER
    );
    let logout_by_get = client.get("/logout", &cookies).await;
    assert_eq!(logout_by_get.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_session_id_planted_before_login_is_never_adopted() {
    let app = spawn_app().await;
    operator(&app, "kari@ncsc.example.no", "analyst");
    let client = Client::new(&app);
    let planted = "ab".repeat(32);
    let r = client
        .login_with(
            "kari@ncsc.example.no",
            PASSWORD,
            "/",
            &format!("; varsel_session={planted}"),
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let issued = set_cookie(&r, "varsel_session").unwrap();
    assert_ne!(issued, planted);
    let planted_cookie = format!("varsel_session={planted}");
    assert_eq!(
        client.get("/", &planted_cookie).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        client
            .get("/", &format!("varsel_session={issued}"))
            .await
            .status(),
        StatusCode::OK
    );
    // The database holds the id's hash, not the id.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM operator_sessions WHERE id_hash = sha256($1::bytea)",
    )
    .bind(issued.as_bytes())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_for_a_while() {
    let app = spawn_app().await;
    operator(&app, "kari@ncsc.example.no", "analyst");
    let client = Client::new(&app);
    for _ in 0..5 {
        let r = client
            .login_with("kari@ncsc.example.no", "guess guess guess", "/", "")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Now even the right password is refused, with a clear message.
    let r = client
        .login_with("kari@ncsc.example.no", PASSWORD, "/", "")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let html = r.text().await.unwrap();
    assert!(html.contains("this account is locked until"), "{html}");
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_events WHERE action = 'operator.login_failed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(failed, 5);
    app.state.clock.advance(chrono::Duration::minutes(16));
    client.login("kari@ncsc.example.no", PASSWORD).await;
}

#[tokio::test]
async fn sessions_end_when_idle_and_after_their_hours() {
    let app = spawn_app().await;
    operator(&app, "kari@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    let cookies = client.login("kari@ncsc.example.no", PASSWORD).await;
    app.state.clock.advance(chrono::Duration::minutes(29));
    assert_eq!(client.get("/", &cookies).await.status(), StatusCode::OK);
    app.state.clock.advance(chrono::Duration::minutes(31));
    let idle = client.get("/", &cookies).await;
    assert_eq!(idle.status(), StatusCode::SEE_OTHER, "idle for 31 minutes");

    // Active every 20 minutes, it still ends 12 hours after login.
    let cookies = client.login("kari@ncsc.example.no", PASSWORD).await;
    for _ in 0..35 {
        app.state.clock.advance(chrono::Duration::minutes(20));
        assert_eq!(client.get("/", &cookies).await.status(), StatusCode::OK);
    }
    app.state.clock.advance(chrono::Duration::minutes(20));
    assert_eq!(
        client.get("/", &cookies).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn after_login_next_only_ever_leads_inside_the_dashboard() {
    let app = spawn_app().await;
    operator(&app, "kari@ncsc.example.no", "admin");
    let client = Client::new(&app);
    for (next, lands) in [
        ("/operators", "/operators"),
        ("//evil.example/phish", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a/0000", "/"),
    ] {
        let r = client
            .login_with("kari@ncsc.example.no", PASSWORD, next, "")
            .await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()[LOCATION], lands, "next={next}");
    }
}

#[tokio::test]
async fn a_viewer_sees_the_overview_but_not_what_only_admins_may() {
    let app = spawn_app().await;
    operator(&app, "viewer@ncsc.example.no", "viewer");
    operator(&app, "admin@ncsc.example.no", "admin");
    let client = Client::new(&app);
    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;
    assert_eq!(client.get("/", &viewer).await.status(), StatusCode::OK);
    let refused = client.get("/operators", &viewer).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("Your role does not allow this.")
    );
    let admin = client.login("admin@ncsc.example.no", PASSWORD).await;
    let list = client.get("/operators", &admin).await;
    assert_eq!(list.status(), StatusCode::OK);
    let html = list.text().await.unwrap();
    assert!(html.contains("viewer@ncsc.example.no") && html.contains("admin@ncsc.example.no"));
}

#[tokio::test]
async fn a_login_without_its_csrf_token_or_from_another_site_is_refused() {
    let app = spawn_app().await;
    operator(&app, "kari@ncsc.example.no", "admin");
    let client = Client::new(&app);
    let (cookie, csrf) = client.login_form().await;
    let post = |fields: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut request = client
            .http
            .post(format!("{}/login", app.base))
            .header(COOKIE, cookie.clone())
            .form(&fields);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let credentials = |csrf: Option<&str>| {
        let mut fields = vec![
            ("email", "kari@ncsc.example.no".to_owned()),
            ("password", PASSWORD.to_owned()),
        ];
        if let Some(csrf) = csrf {
            fields.push(("csrf", csrf.to_owned()));
        }
        fields
    };
    let missing = post(credentials(None), None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&missing, "varsel_session").is_none());
    let elsewhere = post(credentials(Some(&csrf)), Some("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN);
    // The dashboard's referrer policy lets its own forms send their origin,
    // so an opaque one is refused too.
    let opaque = post(credentials(Some(&csrf)), Some("null")).await.unwrap();
    assert_eq!(opaque.status(), StatusCode::FORBIDDEN);
    let host = app.base.trim_start_matches("http://").to_owned();
    let own = client
        .http
        .post(format!("{}/login", app.base))
        .header(COOKIE, cookie.clone())
        .header("origin", format!("http://{host}"))
        .form(&credentials(Some(&csrf)))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_attempts_are_rate_limited_per_client_address() {
    let app = spawn_app_with(|s| s.login_rate_limit_per_minute = 3).await;
    let client = Client::new(&app);
    for _ in 0..3 {
        let r = client
            .login_with("nobody@ncsc.example.no", PASSWORD, "/", "")
            .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = client
        .login_with("nobody@ncsc.example.no", PASSWORD, "/", "")
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("Too many requests"));
}

/// An escalation, reported as an organisation reports one.
async fn reported_compromise(app: &TestApp) -> i64 {
    let a =
        crate::advisory::advise(app, "A", "192.0.2.0/24", &[("192.0.2.10", "vulnerable")]).await;
    let browser = crate::advisory::Browser::new(app);
    let page = browser.get(&format!("/a/{}", a.token)).await;
    let done = browser
        .submit(
            &page,
            &a.token,
            "compromise",
            &[
                ("contact_name", "Kari Nordmann"),
                ("phone", "+47 22 33 44 55"),
                ("observed", "A web shell <b>in OWA</b>"),
            ],
        )
        .await;
    assert!(done.url.contains("done=compromise"));
    sqlx::query_scalar("SELECT id FROM escalations")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn analysts_take_and_close_escalations_and_viewers_only_see_them() {
    let app = spawn_app_with(|s| s.outbox_workers = 0).await;
    let id = reported_compromise(&app).await;
    operator(&app, "viewer@ncsc.example.no", "viewer");
    operator(&app, "analyst@ncsc.example.no", "analyst");
    let client = Client::new(&app);

    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;
    let list = client.get("/escalations", &viewer).await;
    assert_eq!(list.status(), StatusCode::OK);
    let html = list.text().await.unwrap();
    assert!(html.contains("A AS") && html.contains("+47 22 33 44 55"));
    assert!(
        html.contains("A web shell &#60;b&#62;in OWA"),
        "escaped: {html}"
    );
    assert!(!html.contains("<b>in OWA"));
    assert!(!html.contains("Take it"), "a viewer gets no buttons");
    let csrf = hidden(&html, "csrf");
    let post = |cookies: String, path: String, fields: Vec<(&'static str, String)>| {
        client
            .http
            .post(format!("{}{path}", app.base))
            .header(COOKIE, cookies)
            .form(&fields)
            .send()
    };
    let refused = post(
        viewer.clone(),
        format!("/escalations/{id}/take"),
        vec![("csrf", csrf.clone())],
    )
    .await
    .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let analyst = client.login("analyst@ncsc.example.no", PASSWORD).await;
    let html = client
        .get("/escalations", &analyst)
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    let no_token = post(analyst.clone(), format!("/escalations/{id}/take"), vec![])
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let taken = post(
        analyst.clone(),
        format!("/escalations/{id}/take"),
        vec![("csrf", csrf.clone()), ("status", "open".to_owned())],
    )
    .await
    .unwrap();
    assert_eq!(taken.status(), StatusCode::SEE_OTHER);
    let html = client
        .get("/escalations?status=taken", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(html.contains("operator:") && html.contains("analyst@ncsc.example.no"));
    // A close without a note comes back with the field at fault.
    let empty = post(
        analyst.clone(),
        format!("/escalations/{id}/close"),
        vec![
            ("csrf", csrf.clone()),
            ("status", "taken".to_owned()),
            ("note", "  ".to_owned()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty
            .text()
            .await
            .unwrap()
            .contains(&format!(r#"id="note-{id}-error""#))
    );
    let closed = post(
        analyst.clone(),
        format!("/escalations/{id}/close"),
        vec![
            ("csrf", csrf),
            ("status", "taken".to_owned()),
            (
                "note",
                "Called Kari; web shell removed, IR firm engaged.".to_owned(),
            ),
        ],
    )
    .await
    .unwrap();
    assert_eq!(closed.status(), StatusCode::SEE_OTHER);
    let (_, shown) = app
        .get(&format!("/api/v1/escalations/{id}"), &app.read)
        .await;
    assert_eq!(shown["status"], "closed");
    assert_eq!(
        shown["close_note"],
        "Called Kari; web shell removed, IR firm engaged."
    );
    assert!(
        shown["closed_by"]
            .as_str()
            .unwrap()
            .contains("analyst@ncsc.example.no")
    );
    let open = client
        .get("/escalations", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(open.contains(r#"id="no-escalations""#));
}

#[tokio::test]
async fn the_audit_log_is_filtered_in_the_url_and_paged() {
    let app = spawn_app().await;
    operator(&app, "kari@ncsc.example.no", "analyst");
    operator(&app, "viewer@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    for _ in 0..3 {
        client
            .login_with("viewer@ncsc.example.no", "wrong wrong wrong", "/", "")
            .await;
    }
    // 60 registry changes: more than a page.
    for i in 0..60 {
        let (status, _) = app
            .post(
                "/api/v1/organisations",
                &app.admin,
                serde_json::json!({ "ref": format!("ORG-{i}"), "name": format!("Org {i}") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;
    assert_eq!(
        client.get("/audit", &viewer).await.status(),
        StatusCode::FORBIDDEN
    );

    let analyst = client.login("kari@ncsc.example.no", PASSWORD).await;
    let failed = client
        .get("/audit?action=operator.login_failed", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        failed
            .matches(r#"<td class="action">operator.login_failed</td>"#)
            .count(),
        3
    );
    assert!(!failed.contains("operator.create"));
    assert!(
        failed.contains(r#"value="operator.login_failed""#),
        "the filter stays in the form"
    );
    // A `%` is a character, not a wildcard.
    let literal = client
        .get("/audit?action=%25", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert!(literal.contains(r#"id="no-events""#));

    let first = client
        .get("/audit?action=organisation.", &analyst)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        first
            .matches(r#"<td class="action">organisation.create</td>"#)
            .count(),
        50
    );
    let next = regex_lite::Regex::new(r#"href="([^"]+)" rel="next""#)
        .unwrap()
        .captures(&first)
        .expect("a next page")[1]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(next.contains("action=organisation."), "{next}");
    let second = client.get(&next, &analyst).await.text().await.unwrap();
    assert_eq!(
        second
            .matches(r#"<td class="action">organisation.create</td>"#)
            .count(),
        10
    );
    assert!(!second.contains(r#"rel="next""#));

    // A change shows what each field was and became.
    let org: i64 = sqlx::query_scalar("SELECT id FROM organisations WHERE ref = 'ORG-7'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let (status, _) = app
        .patch(
            &format!("/api/v1/organisations/{org}"),
            &app.admin,
            serde_json::json!({ "name": "Org <7>", "sector": "energy" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let changed = client
        .get(
            &format!("/audit?subject=organisation:{org}&action=organisation.update"),
            &analyst,
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(
        changed.contains("<code>name</code>: <del>Org 7</del> → <ins>Org &#60;7&#62;</ins>"),
        "{changed}"
    );
    assert!(changed.contains("<code>sector</code>: <del>null</del> → <ins>energy</ins>"));
    assert!(!changed.contains("<code>ref</code>"), "only what changed");
}

/// The text of the element with `id` (no nested tags), unescaped of `&amp;`.
fn text_of(html: &str, id: &str) -> String {
    let start = html
        .find(&format!(r#"id="{id}""#))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].replace("&amp;", "&")
}

#[tokio::test]
async fn a_second_factor_is_set_up_with_a_first_code_and_then_asked_for_at_every_login() {
    let app = spawn_app().await;
    operator(&app, "kari@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    let cookies = client.login("kari@ncsc.example.no", PASSWORD).await;
    let account = client.get("/account", &cookies).await.text().await.unwrap();
    assert_eq!(text_of(&account, "totp-status"), "off");
    let csrf = hidden(&account, "csrf");

    let begun = client
        .post("/account/totp/begin", &cookies, &[("csrf", &csrf)])
        .await;
    assert_eq!(begun.status(), StatusCode::OK);
    let setup = begun.text().await.unwrap();
    let secret = text_of(&setup, "totp-secret");
    assert!(
        text_of(&setup, "totp-url").starts_with("otpauth://totp/Varsel:kari%40ncsc.example.no?")
    );
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT totp_pending_secret FROM operators")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!sealed.is_empty(), "pending until confirmed");

    let now = app.state.clock.now();
    let code = |at| varsel::dashboard::totp::code_at(&secret, at).unwrap();
    let wrong = client
        .post(
            "/account/totp/confirm",
            &cookies,
            &[("csrf", &csrf), ("code", "000000")],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = wrong.text().await.unwrap();
    assert!(
        html.contains("The code is not the app&#39;s current six-digit code.")
            || html.contains("The code is not the app&#x27;s current six-digit code."),
        "{html}"
    );
    assert_eq!(
        text_of(&html, "totp-secret"),
        secret,
        "the same setup again"
    );
    let confirmed = client
        .post(
            "/account/totp/confirm",
            &cookies,
            &[("csrf", &csrf), ("code", &code(now))],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    let account = client.get("/account", &cookies).await.text().await.unwrap();
    assert_eq!(text_of(&account, "totp-status"), "on");
    assert!(!account.contains(&secret), "the key is shown only at setup");

    // The password alone no longer logs in; nor does a spent code.
    let client = &client;
    let login = |code: String| async move {
        client
            .login_posting(
                &[
                    ("email", "kari@ncsc.example.no"),
                    ("password", PASSWORD),
                    ("code", &code),
                    ("next", "/"),
                ],
                "",
            )
            .await
            .status()
    };
    assert_eq!(login(String::new()).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(code(now)).await,
        StatusCode::UNAUTHORIZED,
        "each code is good once"
    );
    app.state.clock.advance(chrono::Duration::seconds(30));
    let later = app.state.clock.now();
    assert_eq!(
        login(code(later - chrono::Duration::seconds(600))).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(code(later)).await, StatusCode::SEE_OTHER);
    let failures: i32 = sqlx::query_scalar("SELECT failed_logins FROM operators")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failures, 0, "a good login clears the wrong codes before it");
    let audit: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE action LIKE 'operator.%' ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        audit.contains(&"operator.totp_enabled".to_owned()),
        "{audit:?}"
    );
    assert_eq!(
        audit
            .iter()
            .filter(|a| *a == "operator.login_failed")
            .count(),
        3
    );
}

#[tokio::test]
async fn the_overview_draws_each_campaigns_curve_the_funnel_and_the_sectors() {
    use crate::notifications::{active_campaign, organisation, push};
    let app = crate::notifications::spawn_app().await;
    let org = organisation(
        &app,
        "ORG-1",
        "192.0.2.0/24",
        &[("cert@a.example.no", "security", "nb")],
    )
    .await;
    let (status, body) = app
        .patch(
            &format!("/api/v1/organisations/{org}"),
            &app.admin,
            serde_json::json!({ "sector": "energy <b>grid</b>" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let two_days_ago = (app.state.clock.now() - chrono::Duration::days(2)).to_rfc3339();
    push(
        &app,
        &[("192.0.2.10", "vulnerable"), ("192.0.2.11", "vulnerable")],
        &two_days_ago,
    )
    .await;
    let campaign = active_campaign(&app, serde_json::json!({})).await;
    operator(&app, "viewer@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    let cookies = client.login("viewer@ncsc.example.no", PASSWORD).await;

    let before = client.get("/", &cookies).await.text().await.unwrap();
    assert!(before.contains(r#"id="no-curves""#), "nothing gathered yet");

    let mut conn = app.pool.acquire().await.unwrap();
    varsel::dashboard::stats::refresh(&mut conn, app.state.clock.now())
        .await
        .unwrap();
    let html = client.get("/", &cookies).await.text().await.unwrap();
    let curve = &html[html
        .find(&format!(r#"id="curve-{campaign}""#))
        .expect("a curve")..];
    assert!(
        curve.contains(r#"<strong class="curve-now">2</strong> open"#),
        "{curve}"
    );
    // Three days: the day the hosts were first seen, yesterday, today.
    let points = curve
        .split(r#"points=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(points.split(' ').count(), 3, "{points}");
    assert!(
        html.contains("energy &#60;b&#62;grid&#60;/b&#62;"),
        "sector names escaped"
    );
    assert!(!html.contains("<b>grid"));
    assert!(html.contains(r#"id="charts-refreshed""#));
    assert!(
        html.contains(r#"<dd id="open-findings">2</dd>"#),
        "totals as gathered"
    );
    assert!(
        before.contains(r#"<dd id="open-findings">0</dd>"#),
        "nothing counted yet"
    );
    let progress = client
        .get(&format!("/campaigns/{campaign}"), &cookies)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        progress.contains(r#"<dd id="organisations">1</dd>"#),
        "{progress}"
    );
    // The campaign's own curve and funnel on its progress page.
    assert!(
        progress.contains(&format!(r#"id="curve-{campaign}""#)),
        "{progress}"
    );
    assert!(progress.contains(r#"<strong class="curve-now">2</strong> open"#));
    let funnel = &progress[progress.find(r#"id="funnel-heading""#).unwrap()..];
    assert!(funnel.contains(">Notified</text>"), "{funnel}");
    // The findings list filters by the owner's sector, as the chart groups.
    let in_sector = client
        .get("/findings?sector=energy%20%3Cb%3Egrid%3C%2Fb%3E", &cookies)
        .await
        .text()
        .await
        .unwrap();
    assert!(in_sector.contains("192.0.2.10") && in_sector.contains("192.0.2.11"));
    let elsewhere = client
        .get("/findings?sector=health", &cookies)
        .await
        .text()
        .await
        .unwrap();
    assert!(!elsewhere.contains("192.0.2.10"), "{elsewhere}");
    // The REST API filters the same way.
    let (status, page) = app
        .get(
            "/api/v1/findings?sector=energy%20%3Cb%3Egrid%3C%2Fb%3E",
            &app.read,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(2), "{page}");
    let (_, page) = app.get("/api/v1/findings?sector=health", &app.read).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(0), "{page}");
    assert!(html.contains(r#"id="funnel-heading""#));
}
