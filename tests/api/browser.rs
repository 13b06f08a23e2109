//! The advisory page in a real browser: Debian's Chromium, headless,
//! driven over WebDriver by Debian's chromedriver, on a phone-sized
//! window. What only a browser shows: the stylesheet applies under the
//! page's strict CSP, the page fits a phone without sideways scrolling,
//! every field has an accessible label, the keyboard reaches the page
//! from its skip link, and the forms work with the browser's own cookie
//! handling (SameSite=Strict, HttpOnly) — and fail with their field
//! errors shown.
//!
//! The WebDriver client is the few calls these tests make, over reqwest:
//! fantoccini, the maintained client, needs a TLS backend even for a
//! loopback driver, and its rustls one would switch the whole build's
//! rustls to aws-lc (a C build with cmake).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::advisory::{finding_ids, vulnerable_and_compromised};
use crate::dashboard::{PASSWORD, operator};
use crate::helpers::spawn_app_with;
use crate::smtp::free_port;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C WebDriver key for Tab.
const TAB: &str = "\u{E004}";

/// A chromedriver process, stopped on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub(crate) async fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the page tests need Debian's chromium and chromium-driver (.ci/run installs them)"
        );
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        // Ready within seconds; polled, as a process start cannot be awaited.
        for _ in 0..200 {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
            {
                if r.json::<Value>()
                    .await
                    .is_ok_and(|s| s["value"]["ready"] == true)
                {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not become ready");
    }

    /// A headless Chromium the size of a phone.
    async fn session(&self) -> Session {
        self.session_sized(390, 844).await
    }

    /// A headless Chromium with a window of `width` × `height`.
    pub(crate) async fn session_sized(&self, width: u32, height: u32) -> Session {
        let size = format!("--window-size={width},{height}");
        let r: Value = self
            .http
            .post(format!("{}/session", self.url))
            .json(&json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", size]
                }
            }}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_owned();
        Session {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.url),
        }
    }
}

pub(crate) struct Session {
    http: reqwest::Client,
    base: String,
}

/// An element, by its WebDriver reference.
#[derive(Clone)]
pub(crate) struct Element(String);

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(r["value"]["error"].is_null(), "WebDriver {path}: {r}");
        r["value"].clone()
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub(crate) async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap().to_owned()
    }

    /// Waits for the navigation a click started to reach a page whose
    /// address contains `part` (a click returns before the next page has
    /// loaded). Polled: the browser offers nothing to await.
    pub(crate) async fn wait_for_url(&self, part: &str) {
        for _ in 0..200 {
            if self.url().await.contains(part) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the browser never got to a page with {part:?}: at {}",
            self.url().await
        );
    }

    /// The element matching `css`, once the page has one.
    pub(crate) async fn wait_for(&self, css: &str) -> Element {
        for _ in 0..200 {
            let found = self
                .post(
                    "/elements",
                    json!({ "using": "css selector", "value": css }),
                )
                .await;
            if let Some(e) = found.as_array().and_then(|a| a.first()) {
                return Element(element_id(e));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {css} appeared");
    }

    pub(crate) async fn find(&self, css: &str) -> Element {
        let v = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        Element(element_id(&v))
    }

    pub(crate) async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(element_id(e)))
            .collect()
    }

    pub(crate) async fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await;
    }

    pub(crate) async fn type_into(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }))
            .await;
    }

    pub(crate) async fn text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn attribute(&self, e: &Element, name: &str) -> Option<String> {
        self.get(&format!("/element/{}/attribute/{name}", e.0))
            .await
            .as_str()
            .map(str::to_owned)
    }

    async fn css(&self, e: &Element, property: &str) -> String {
        self.get(&format!("/element/{}/css/{property}", e.0))
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The accessible name the browser computes (what a screen reader says).
    async fn label(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/computedlabel", e.0))
            .await
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    async fn active(&self) -> Element {
        Element(element_id(&self.get("/element/active").await))
    }

    async fn press(&self, key: &str) {
        self.post(
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": [
                { "type": "keyDown", "value": key }, { "type": "keyUp", "value": key }
            ]}]}),
        )
        .await;
    }

    /// What a script in the page computes (WebDriver's own, which the
    /// page's CSP does not govern; the page itself has none).
    pub(crate) async fn eval(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Saves what the window shows as `target/screenshots/<name>.png`,
    /// a test artefact CI keeps.
    pub(crate) async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.get("/screenshot").await.as_str().unwrap())
            .unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Clicks `e` and waits until the page it leads to has loaded (a click
    /// returns before the next page is there; the old page is marked, and
    /// the new one is the page without the mark). Polled, as the browser
    /// offers nothing to await.
    pub(crate) async fn click_to_load(&self, e: &Element) {
        self.eval("window.varselBefore = true").await;
        self.click(e).await;
        for _ in 0..200 {
            let r: Value = self
                .http
                .post(format!("{}/execute/sync", self.base))
                .json(&json!({ "script": "return window.varselBefore === undefined && document.readyState === 'complete'", "args": [] }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if r["value"] == true {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no new page loaded: still at {}", self.url().await);
    }

    /// Whether the page shows an element matching `css` now.
    pub(crate) async fn has(&self, css: &str) -> bool {
        !self.find_all(css).await.is_empty()
    }

    pub(crate) async fn close(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

fn element_id(v: &Value) -> String {
    v["element-6066-11e4-a52e-4f735466cecf"]
        .as_str()
        .unwrap_or_else(|| panic!("not an element: {v}"))
        .to_owned()
}

#[tokio::test]
async fn the_advisory_page_works_in_chromium_on_a_phone() {
    let app = spawn_app_with(|s| s.outbox_workers = 0).await;
    let a = vulnerable_and_compromised(&app).await;
    let driver = Driver::start().await;
    let browser = driver.session().await;
    let page = format!("{}/a/{}", app.base, a.token);
    browser.goto(&page).await;

    // The stylesheet applied, under the CSP: the TLP banner is black.
    let tlp = browser.find(".tlp").await;
    assert_eq!(
        browser.css(&tlp, "background-color").await,
        "rgba(0, 0, 0, 1)"
    );
    assert!(browser.text(&tlp).await.contains("TLP:AMBER"));
    // A phone's width, nothing to scroll sideways.
    let fits = browser
        .eval("return document.documentElement.scrollWidth <= window.innerWidth")
        .await;
    assert_eq!(fits, json!(true));
    // Every field has a name a screen reader can say.
    for field in browser
        .find_all("input:not([type=hidden]), textarea, select")
        .await
    {
        let label = browser.label(&field).await;
        assert!(!label.trim().is_empty(), "a field without a label");
    }
    // The keyboard starts at the skip link, which leads to the content.
    browser.press(TAB).await;
    let first = browser.active().await;
    assert_eq!(
        browser.attribute(&first, "href").await.as_deref(),
        Some("#main")
    );

    // The language switch.
    browser
        .click(&browser.find(r#"a[hreflang="nb"]"#).await)
        .await;
    let html = browser.find("html").await;
    assert_eq!(
        browser.attribute(&html, "lang").await.as_deref(),
        Some("nb")
    );

    // A form with errors comes back with them, next to their fields.
    browser
        .type_into(&browser.find("#contact_name").await, "Kari Nordmann")
        .await;
    browser
        .click(&browser.find("#compromise-form button").await)
        .await;
    let error = browser.wait_for("#phone-error").await;
    assert_eq!(browser.text(&error).await, "Må fylles ut.");
    let phone = browser.find("#phone").await;
    assert_eq!(
        browser.attribute(&phone, "aria-invalid").await.as_deref(),
        Some("true")
    );
    let name = browser.find("#contact_name").await;
    assert_eq!(
        browser.attribute(&name, "value").await.as_deref(),
        Some("Kari Nordmann")
    );

    // The forms work with the browser's cookies: acknowledge, then mark
    // one finding fixed.
    browser
        .click(&browser.find("#acknowledge-form button").await)
        .await;
    browser.wait_for_url("done=acknowledged").await;
    assert!(
        browser
            .text(&browser.find("#answered").await)
            .await
            .contains("Mottatt bekreftet")
    );
    let ids = finding_ids(&app, a.organisation).await;
    browser
        .click(&browser.find(&format!("#select-{}", ids[0])).await)
        .await;
    browser
        .click(
            &browser
                .find(r#"#findings-form button[value="fixed"]"#)
                .await,
        )
        .await;
    browser.wait_for_url("done=fixed").await;
    let note = browser
        .find(&format!("#finding-{} .finding-note", ids[0]))
        .await;
    assert_eq!(browser.text(&note).await, "Meldt rettet: ny sjekk venter");
    let kinds: Vec<String> =
        sqlx::query_scalar("SELECT kind FROM responses WHERE notification_id = $1 ORDER BY id")
            .bind(a.notification)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["acknowledged", "fixed"]);
    browser.close().await;
}

#[tokio::test]
async fn a_dead_link_shows_chromium_the_plain_not_found_page() {
    let app = spawn_app_with(|s| s.outbox_workers = 0).await;
    let driver = Driver::start().await;
    let browser = driver.session().await;
    browser
        .goto(&format!("{}/a/{}", app.base, "0".repeat(64)))
        .await;
    let heading = browser.find("h1").await;
    assert_eq!(browser.text(&heading).await, "Siden finnes ikke");
    // Styled like every page, the stylesheet allowed by the CSP.
    let body = browser.find("body").await;
    assert_eq!(browser.css(&body, "margin-top").await, "0px");
    browser.close().await;
}

#[tokio::test]
async fn an_operator_logs_in_and_out_of_the_dashboard_in_chromium() {
    let app = spawn_app_with(|s| s.outbox_workers = 0).await;
    operator(&app, "kari@ncsc.example.no", "analyst");
    let driver = Driver::start().await;
    let browser = driver.session().await;
    // The dashboard sends a browser that is not logged in to the login page.
    browser.goto(&format!("{}/", app.base)).await;
    browser.wait_for_url("/login?next=%2F").await;
    browser
        .type_into(&browser.find("#email").await, "kari@ncsc.example.no")
        .await;
    browser
        .type_into(&browser.find("#password").await, PASSWORD)
        .await;
    browser
        .click(&browser.find("#login-form button").await)
        .await;
    // The overview's own figures, not the login page's heading.
    browser.wait_for("#open-findings").await;
    let heading = browser.find("main h1").await;
    assert_eq!(browser.text(&heading).await, "Overview");
    assert!(!browser.url().await.contains("login"));
    // Logging out is the header's form; the session is gone after.
    browser
        .click(&browser.find(r#"form[action="/logout"] button"#).await)
        .await;
    browser.wait_for_url("/login").await;
    browser.goto(&format!("{}/", app.base)).await;
    browser.wait_for_url("/login?next=%2F").await;
    browser.close().await;
}
