//! The dashboard's main flow in a real browser (Debian's headless
//! Chromium over chromedriver, at desktop size), as an analyst lives it:
//! log in, register an organisation with its network and contact, let the
//! scanner push findings over the API, write a campaign with its preview,
//! activate and approve it, see the delivery sent (a real SMTP server on
//! loopback), open the advisory link as the organisation and report a
//! compromise, take and close the escalation. Then a viewer, who sees the
//! same pages with nothing to press, and a form whose CSRF token was
//! tampered with. A screenshot of each main page is saved under
//! `target/screenshots/` as a test artefact.

use crate::browser::{Driver, Session};
use crate::dashboard::{PASSWORD, operator};
use crate::helpers::{TestApp, spawn_app_with};
use crate::notifications::{push, send_mail};
use crate::smtp::SmtpServer;

const PUBLIC: &str = "https://varsel.example.no";

async fn log_in(app: &TestApp, browser: &Session, email: &str) {
    browser.goto(&format!("{}/login", app.base)).await;
    browser
        .type_into(&browser.find("#email").await, email)
        .await;
    browser
        .type_into(&browser.find("#password").await, PASSWORD)
        .await;
    browser
        .click_to_load(&browser.find("#login-form button").await)
        .await;
    browser.wait_for("#open-findings").await;
}

/// Fills the field with `id`, as pasting into it would.
async fn fill(browser: &Session, id: &str, text: &str) {
    let set = browser
        .eval(&format!(
            "const e = document.getElementById({}); if (!e) return false; e.value = {}; return true",
            serde_json::to_string(id).unwrap(),
            serde_json::to_string(text).unwrap()
        ))
        .await;
    assert_eq!(set, true, "no #{id} on {}", browser.url().await);
}

async fn heading(browser: &Session) -> String {
    browser.text(&browser.wait_for("main h1").await).await
}

#[tokio::test]
async fn an_analyst_runs_a_campaign_from_the_dashboard_in_chromium() {
    let smtp = SmtpServer::start(None).await;
    let url = smtp.url();
    let app = spawn_app_with(move |s| {
        s.smtp_url = Some(varsel::config::Secret::new(url));
        s.link_secret = Some(varsel::config::Secret::new(
            "a link secret of thirty-two bytes!!",
        ));
        s.outbox_workers = 0;
        s.public_base_url = PUBLIC.to_owned();
    })
    .await;
    operator(&app, "kari@ncsc.example.no", "analyst");
    operator(&app, "ola@ncsc.example.no", "viewer");
    let driver = Driver::start().await;
    let browser = driver.session_sized(1280, 1000).await;
    log_in(&app, &browser, "kari@ncsc.example.no").await;
    browser.screenshot("overview").await;

    // The organisation, its network and its security contact.
    browser
        .goto(&format!("{}/organisations/new", app.base))
        .await;
    fill(&browser, "ref", "FJORD").await;
    fill(&browser, "name", "Fjordnett <AS>").await;
    browser
        .click_to_load(
            &browser
                .find(r#"form[action="/organisations"] button[type="submit"]"#)
                .await,
        )
        .await;
    assert_eq!(heading(&browser).await, "Fjordnett <AS>");
    let org_url = browser.url().await;
    fill(&browser, "cidrs", "192.0.2.0/24\n2001:db8:1::/48").await;
    browser
        .click_to_load(&browser.find("#add-networks button").await)
        .await;
    browser.wait_for("#add-contact").await;
    fill(&browser, "email", "cert@fjordnett.example.no").await;
    browser
        .click_to_load(&browser.find("#add-contact button").await)
        .await;
    browser.wait_for("#add-contact").await;
    let page = browser.text(&browser.find("main").await).await;
    assert!(
        page.contains("192.0.2.0/24") && page.contains("2001:db8:1::/48"),
        "{page}"
    );
    assert!(page.contains("cert@fjordnett.example.no"), "{page}");
    browser.screenshot("organisation").await;

    // The scanner finds a vulnerable Exchange server there.
    push(
        &app,
        &[("192.0.2.10", "vulnerable")],
        "2021-03-10T06:42:17Z",
    )
    .await;
    app.run_jobs().await;
    browser
        .goto(&format!("{}/findings?check=exchange-proxylogon", app.base))
        .await;
    let findings = browser.text(&browser.wait_for("main").await).await;
    assert!(
        findings.contains("192.0.2.10") && findings.contains("Fjordnett <AS>"),
        "{findings}"
    );
    browser.screenshot("findings").await;

    // The campaign: both languages side by side, previewed, then saved.
    browser.goto(&format!("{}/campaigns/new", app.base)).await;
    fill(&browser, "slug", "proxylogon-2021").await;
    fill(&browser, "checks", "exchange-proxylogon").await;
    for (lang, words) in [
        ("nb", "Kritisk sårbarhet i Exchange"),
        ("en", "Critical Exchange vulnerability"),
    ] {
        fill(&browser, &format!("{lang}_title"), words).await;
        fill(
            &browser,
            &format!("{lang}_summary"),
            &format!("{words}: **patch now** <script>x()</script>"),
        )
        .await;
        fill(
            &browser,
            &format!("{lang}_impact"),
            "Remote code execution.",
        )
        .await;
        fill(
            &browser,
            &format!("{lang}_what_to_do"),
            "Install the March update.",
        )
        .await;
        fill(
            &browser,
            &format!("{lang}_how_to_check"),
            "Run the Microsoft script.",
        )
        .await;
        fill(
            &browser,
            &format!("{lang}_references"),
            "- https://msrc.microsoft.com/",
        )
        .await;
    }
    browser
        .click_to_load(&browser.find(r#"button[value="preview"]"#).await)
        .await;
    let preview = browser.wait_for("main strong").await;
    assert_eq!(
        browser.text(&preview).await,
        "patch now",
        "Markdown rendered"
    );
    assert!(
        !browser.has("main script").await,
        "the campaign's <script> is text, not a script"
    );
    browser.screenshot("campaign-preview").await;
    browser
        .click_to_load(&browser.find(r#"button[value="save"]"#).await)
        .await;
    browser.wait_for("main h1").await;
    let saved = browser.text(&browser.find("main").await).await;
    assert!(browser.has("#campaign-status").await, "saved: {saved}");
    let campaign_url = browser.url().await;
    browser
        .click_to_load(&browser.find("#activate-form button").await)
        .await;
    browser.wait_for("#campaign-status").await;
    app.run_jobs().await;
    browser.goto(&campaign_url).await;
    browser
        .click_to_load(&browser.wait_for("#approve-all-form button").await)
        .await;
    browser.wait_for("#campaign-status").await;
    app.run_jobs().await;
    assert_eq!(send_mail(&app).await, 1);
    browser.goto(&campaign_url).await;
    let progress = browser.text(&browser.wait_for("main").await).await;
    assert!(progress.contains("Fjordnett <AS>"), "{progress}");
    browser.screenshot("campaign-progress").await;

    // The delivery, as the notification's page shows it.
    browser.goto(&format!("{}/notifications", app.base)).await;
    browser
        .click_to_load(&browser.wait_for(r#"main a[href^="/notifications/"]"#).await)
        .await;
    let notification = browser.text(&browser.wait_for("main").await).await;
    assert!(
        notification.contains("cert@fjordnett.example.no"),
        "{notification}"
    );
    assert!(notification.contains("sent"), "{notification}");
    browser.screenshot("notification").await;
    // The exact message that went out, from its delivery.
    browser
        .click_to_load(&browser.find(r#"main a[href*="/deliveries/"]"#).await)
        .await;
    let message = browser.text(&browser.wait_for("#message-text").await).await;
    assert!(
        message.contains("[token: put in as the mail is sent"),
        "{message}"
    );
    browser.screenshot("delivery-message").await;

    // The organisation opens its link and reports a compromise.
    let mails = smtp.messages();
    let text = mails[0].text.as_deref().unwrap();
    let link = regex_lite::Regex::new(r"https://varsel\.example\.no(/a/[0-9a-f]{64})")
        .unwrap()
        .captures(text)
        .expect("the advisory link")[1]
        .to_owned();
    browser.goto(&format!("{}{link}", app.base)).await;
    browser.wait_for("#compromise-form").await;
    fill(&browser, "contact_name", "Per Hansen").await;
    fill(&browser, "phone", "+47 55 00 00 00").await;
    fill(&browser, "observed", "A web shell <aspx> in the OWA folder").await;
    browser
        .click_to_load(&browser.find("#compromise-form button[type=submit]").await)
        .await;
    browser.wait_for_url("done=").await;
    browser.screenshot("advisory").await;

    // The analyst takes the escalation and closes it.
    browser.goto(&format!("{}/escalations", app.base)).await;
    let queue = browser.text(&browser.wait_for("main").await).await;
    assert!(
        queue.contains("A web shell <aspx> in the OWA folder"),
        "{queue}"
    );
    browser
        .click_to_load(&browser.find(".take-form button").await)
        .await;
    browser
        .goto(&format!("{}/escalations?status=taken", app.base))
        .await;
    let note = browser.wait_for(".close-form textarea").await;
    browser.screenshot("escalations").await;
    browser
        .type_into(&note, "Called Per; they rebuilt the server.")
        .await;
    browser
        .click_to_load(&browser.find(".close-form button").await)
        .await;
    browser.wait_for_url("/escalations").await;
    browser
        .goto(&format!("{}/escalations?status=closed", app.base))
        .await;
    let closed = browser.text(&browser.wait_for("main").await).await;
    assert!(
        closed.contains("Called Per; they rebuilt the server."),
        "{closed}"
    );

    // The other main pages, for the record; the organisation's timeline
    // has the compromise it reported.
    let org_path = org_url.trim_start_matches(&app.base).to_owned();
    let timeline_path = format!("{org_path}/timeline");
    for (path, name) in [
        ("/triage", "triage"),
        ("/campaigns", "campaigns"),
        ("/organisations?q=fjord", "organisations"),
        ("/audit", "audit"),
        (org_path.as_str(), "organisation-after"),
        (timeline_path.as_str(), "organisation-timeline"),
    ] {
        browser.goto(&format!("{}{path}", app.base)).await;
        browser.wait_for("main h1").await;
        browser.screenshot(name).await;
    }
    let timeline = browser.text(&browser.find("#timeline").await).await;
    assert!(timeline.contains("answered compromise"), "{timeline}");

    // A form whose CSRF token was tampered with is refused, and nothing
    // changes.
    browser.goto(&format!("{org_url}/edit")).await;
    fill(&browser, "name", "Hijacked").await;
    browser
        .eval("document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'forged')")
        .await;
    browser
        .click_to_load(&browser.find(r#"main form button[type="submit"]"#).await)
        .await;
    assert_eq!(heading(&browser).await, "Skjemaet kunne ikke sendes");
    assert!(
        browser
            .text(&browser.find("main").await)
            .await
            .contains("The form could not be sent")
    );
    browser.goto(&org_url).await;
    assert_eq!(heading(&browser).await, "Fjordnett <AS>");
    browser.close().await;

    // A viewer sees the same pages with nothing to press.
    let viewer = driver.session_sized(1280, 1000).await;
    log_in(&app, &viewer, "ola@ncsc.example.no").await;
    for path in [campaign_url.as_str(), org_url.as_str()] {
        viewer.goto(path).await;
        viewer.wait_for("main h1").await;
        let forms = viewer.find_all("main form[method=post]").await;
        assert!(forms.is_empty(), "a viewer gets no forms on {path}");
    }
    viewer
        .goto(&format!("{}/escalations?status=all", app.base))
        .await;
    viewer.wait_for("main h1").await;
    assert!(!viewer.has(".take-form, .close-form").await);
    viewer.screenshot("viewer-campaign").await;
    viewer.close().await;
}
