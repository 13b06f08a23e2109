//! Dashboard organisations pages, as a browser meets them: the one search
//! box (name, address, network, e-mail), registering and changing an
//! organisation, pasted networks stored all or none, contacts added and
//! disabled, viewers who see no forms and may not post, and names escaped.

use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::json;

use crate::advisory::hidden;
use crate::dashboard::{Client, PASSWORD, operator};
use crate::helpers::{TestApp, spawn_app};

/// An analyst logged in: the client, its cookies and a CSRF token.
async fn analyst(app: &TestApp) -> (Client, String, String) {
    operator(app, "analyst@ncsc.example.no", "analyst");
    let client = Client::new(app);
    let cookies = client.login("analyst@ncsc.example.no", PASSWORD).await;
    let html = client
        .get("/organisations", &cookies)
        .await
        .text()
        .await
        .unwrap();
    let csrf = hidden(&html, "csrf");
    (client, cookies, csrf)
}

/// The search page's text for `q`.
async fn search(client: &Client, cookies: &str, q: &str) -> String {
    let path = format!(
        "/organisations?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("q", q)
            .finish()
    );
    let r = client.get(&path, cookies).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap()
}

/// The organisation's current networks, by the REST API.
async fn networks(app: &TestApp, id: i64) -> Vec<String> {
    let (status, body) = app
        .get(&format!("/api/v1/organisations/{id}/networks"), &app.read)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut cidrs: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["cidr"].as_str().unwrap().to_owned())
        .collect();
    cidrs.sort();
    cidrs
}

#[tokio::test]
async fn one_search_box_finds_by_name_address_network_and_email() {
    let app = spawn_app().await;
    let alpha = app.organisation("alpha", &["192.0.2.0/24"]).await;
    let beta = app
        .organisation("beta", &["198.51.100.0/24", "2001:db8::/32"])
        .await;
    let (status, body) = app
        .post(
            &format!("/api/v1/organisations/{beta}/contacts"),
            &app.admin,
            json!({ "email": "CERT@beta.example.no", "role": "security", "language": "nb" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (client, cookies, _) = analyst(&app).await;
    let alpha_row = format!("id=\"organisation-{alpha}\"");
    let beta_row = format!("id=\"organisation-{beta}\"");

    let all = search(&client, &cookies, "").await;
    assert!(all.contains(&alpha_row) && all.contains(&beta_row));
    for (q, finds_alpha, finds_beta) in [
        ("ALPHA", true, false),
        ("ta a", false, true),
        ("192.0.2.77", true, false),
        ("198.51.100.7", false, true),
        ("2001:db8::1", false, true),
        ("198.51.0.0/16", false, true),
        ("192.0.2.128/25", true, false),
        ("10.0.0.1", false, false),
        ("cert@beta", false, true),
    ] {
        let html = search(&client, &cookies, q).await;
        assert_eq!(html.contains(&alpha_row), finds_alpha, "{q}: {html}");
        assert_eq!(html.contains(&beta_row), finds_beta, "{q}: {html}");
    }

    // An ended network is history: no longer found, shown as ended.
    let (_, rows) = app
        .get(
            &format!("/api/v1/organisations/{alpha}/networks"),
            &app.read,
        )
        .await;
    let network = rows[0]["id"].as_i64().unwrap();
    let (status, _) = app
        .delete(&format!("/api/v1/networks/{network}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let html = search(&client, &cookies, "192.0.2.77").await;
    assert!(html.contains("id=\"no-organisations\""), "{html}");
    let detail = client
        .get(&format!("/organisations/{alpha}"), &cookies)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        detail.contains("192.0.2.0/24") && detail.contains("ended "),
        "{detail}"
    );
    app.run_jobs().await;
}

#[tokio::test]
async fn an_analyst_registers_and_changes_an_organisation_its_name_escaped() {
    let app = spawn_app().await;
    let (client, cookies, csrf) = analyst(&app).await;
    let form = client.get("/organisations/new", &cookies).await;
    assert_eq!(form.status(), StatusCode::OK);

    let mut fields = vec![
        ("csrf", csrf.as_str()),
        ("ref", "ORG-BOLD1-RIPE"),
        ("name", "<b>Bold</b> kommune"),
        ("org_number", "974760674"),
        ("sector", "municipality"),
        ("notes", ""),
    ];
    let refused = client.post("/organisations", &cookies, &fields).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(html.contains("id=\"org_number-error\"") && html.contains("mod-11"));
    assert!(
        html.contains("&#60;b&#62;Bold") && !html.contains("<b>Bold"),
        "the typed name comes back, escaped"
    );
    let (_, page) = app.get("/api/v1/organisations", &app.read).await;
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");

    fields[3] = ("org_number", "974 760 673");
    let created = client.post("/organisations", &cookies, &fields).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let location = created.headers()[LOCATION].to_str().unwrap().to_owned();
    let id: i64 = location
        .strip_prefix("/organisations/")
        .unwrap()
        .parse()
        .unwrap();
    let twice = client.post("/organisations", &cookies, &fields).await;
    assert_eq!(twice.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(twice.text().await.unwrap().contains("id=\"ref-error\""));
    let detail = client.get(&location, &cookies).await.text().await.unwrap();
    assert!(detail.contains("&#60;b&#62;Bold&#60;/b&#62; kommune"));
    assert!(!detail.contains("<b>Bold"));
    assert!(detail.contains("974760673"));
    let listed = search(&client, &cookies, "bold").await;
    assert!(listed.contains(&format!("id=\"organisation-{id}\"")));
    assert!(!listed.contains("<b>Bold"));
    let by_number = search(&client, &cookies, "974760673").await;
    assert!(by_number.contains(&format!("id=\"organisation-{id}\"")));

    let edit = client
        .get(&format!("/organisations/{id}/edit"), &cookies)
        .await;
    assert_eq!(edit.status(), StatusCode::OK);
    assert!(edit.text().await.unwrap().contains("ORG-BOLD1-RIPE"));
    let changed = client
        .post(
            &format!("/organisations/{id}"),
            &cookies,
            &[
                ("csrf", &csrf),
                ("name", "Bold kommune"),
                ("org_number", ""),
                ("sector", "health"),
                ("notes", "Moved to the new IT centre."),
            ],
        )
        .await;
    assert_eq!(changed.status(), StatusCode::SEE_OTHER);
    let (_, org) = app
        .get(&format!("/api/v1/organisations/{id}"), &app.read)
        .await;
    assert_eq!(org["name"], "Bold kommune");
    assert_eq!(org["sector"], "health");
    assert_eq!(org["ref"], "ORG-BOLD1-RIPE");
    assert!(org["org_number"].is_null(), "{org}");

    let empty_name = client
        .post(
            &format!("/organisations/{id}"),
            &cookies,
            &[("csrf", &csrf), ("name", "  ")],
        )
        .await;
    assert_eq!(empty_name.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        empty_name
            .text()
            .await
            .unwrap()
            .contains("id=\"name-error\"")
    );
}

#[tokio::test]
async fn pasted_networks_are_added_all_or_none() {
    let app = spawn_app().await;
    let id = app.organisation("gamma", &[]).await;
    let (client, cookies, csrf) = analyst(&app).await;
    let path = format!("/organisations/{id}/networks");

    let added = client
        .post(
            &path,
            &cookies,
            &[
                ("csrf", csrf.as_str()),
                (
                    "cidrs",
                    "192.0.2.0/24\r\n\r\n198.51.100.0/24, 2001:db8::/32 203.0.113.0/25",
                ),
            ],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let four = vec![
        "192.0.2.0/24",
        "198.51.100.0/24",
        "2001:db8::/32",
        "203.0.113.0/25",
    ];
    assert_eq!(networks(&app, id).await, four);

    // A bad line: nothing stored, every bad line named.
    let refused = client
        .post(
            &path,
            &cookies,
            &[
                ("csrf", &csrf),
                ("cidrs", "10.0.0.0/8\nnot-a-network\n10.1.0.1/16"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(html.contains("id=\"cidrs-error\""), "{html}");
    assert!(
        html.contains("line 2:") && html.contains("line 3:"),
        "{html}"
    );
    assert!(html.contains("host bits"), "{html}");
    assert!(html.contains("not-a-network"), "the paste is shown again");
    assert_eq!(networks(&app, id).await, four);

    // One the database refuses (already registered): the ones before it
    // are rolled back too.
    let refused = client
        .post(
            &path,
            &cookies,
            &[("csrf", &csrf), ("cidrs", "10.0.0.0/8 192.0.2.0/24")],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains("192.0.2.0/24: this CIDR is already registered"),
        "{html}"
    );
    assert_eq!(networks(&app, id).await, four);
    app.run_jobs().await;
}

#[tokio::test]
async fn contacts_are_added_and_disabled() {
    let app = spawn_app().await;
    let id = app.organisation("delta", &["192.0.2.0/24"]).await;
    let (client, cookies, csrf) = analyst(&app).await;
    let path = format!("/organisations/{id}/contacts");

    let refused = client
        .post(
            &path,
            &cookies,
            &[
                ("csrf", &csrf),
                ("email", "no-at-sign"),
                ("name", "Kari"),
                ("role", "security"),
                ("language", "nb"),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text().await.unwrap().contains("id=\"email-error\""));

    let added = client
        .post(
            &path,
            &cookies,
            &[
                ("csrf", &csrf),
                ("email", "cert@delta.example.no"),
                ("name", "Kari <i>N</i>"),
                ("role", "security"),
                ("language", "nn"),
            ],
        )
        .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    let (_, contacts) = app
        .get(&format!("/api/v1/organisations/{id}/contacts"), &app.read)
        .await;
    let contact = &contacts[0];
    assert_eq!(contact["email"], "cert@delta.example.no");
    assert_eq!(contact["language"], "nn");
    assert_eq!(contact["enabled"], true);
    let cid = contact["id"].as_i64().unwrap();

    let detail = client
        .get(&format!("/organisations/{id}"), &cookies)
        .await
        .text()
        .await
        .unwrap();
    assert!(detail.contains("Kari &#60;i&#62;N") && !detail.contains("<i>N"));
    assert!(detail.contains(&format!("/contacts/{cid}/disable")));

    let disabled = client
        .post(
            &format!("{path}/{cid}/disable"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(disabled.status(), StatusCode::SEE_OTHER);
    let (_, contacts) = app
        .get(&format!("/api/v1/organisations/{id}/contacts"), &app.read)
        .await;
    assert_eq!(contacts[0]["enabled"], false);
    let enabled = client
        .post(
            &format!("{path}/{cid}/enable"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(enabled.status(), StatusCode::SEE_OTHER);
    let (_, contacts) = app
        .get(&format!("/api/v1/organisations/{id}/contacts"), &app.read)
        .await;
    assert_eq!(contacts[0]["enabled"], true);

    // Not this organisation's contact: not found.
    let other = app.organisation("epsilon", &[]).await;
    let wrong = client
        .post(
            &format!("/organisations/{other}/contacts/{cid}/disable"),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn viewers_see_no_forms_and_may_not_post() {
    let app = spawn_app().await;
    let id = app.organisation("zeta", &["192.0.2.0/24"]).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/organisations/{id}/contacts"),
            &app.admin,
            json!({ "email": "cert@zeta.example.no", "role": "security", "language": "nb" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let cid = body["id"].as_i64().unwrap();
    operator(&app, "viewer@ncsc.example.no", "viewer");
    let client = Client::new(&app);
    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;

    let list = client
        .get("/organisations", &viewer)
        .await
        .text()
        .await
        .unwrap();
    assert!(list.contains("zeta AS") && !list.contains("/organisations/new"));
    let detail = client.get(&format!("/organisations/{id}"), &viewer).await;
    assert_eq!(detail.status(), StatusCode::OK);
    let html = detail.text().await.unwrap();
    assert!(html.contains("192.0.2.0/24") && html.contains("cert@zeta.example.no"));
    for form in [
        "add-networks",
        "add-contact",
        "disable-contact",
        "edit-organisation",
    ] {
        assert!(!html.contains(form), "a viewer gets no {form}");
    }
    assert_eq!(
        client.get("/organisations/new", &viewer).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        client
            .get(&format!("/organisations/{id}/edit"), &viewer)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    let csrf = hidden(&html, "csrf");
    for (path, fields) in [
        (
            "/organisations".to_owned(),
            vec![("ref", "X"), ("name", "X")],
        ),
        (format!("/organisations/{id}"), vec![("name", "Renamed")]),
        (
            format!("/organisations/{id}/networks"),
            vec![("cidrs", "198.51.100.0/24")],
        ),
        (
            format!("/organisations/{id}/contacts"),
            vec![
                ("email", "x@zeta.example.no"),
                ("role", "abuse"),
                ("language", "en"),
            ],
        ),
        (
            format!("/organisations/{id}/contacts/{cid}/disable"),
            vec![],
        ),
        ("/contact-proposals/1/confirm".to_owned(), vec![]),
        ("/contact-proposals/1/reject".to_owned(), vec![]),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let r = client.post(&path, &viewer, &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(networks(&app, id).await, vec!["192.0.2.0/24"]);
    let (_, org) = app
        .get(&format!("/api/v1/organisations/{id}"), &app.read)
        .await;
    assert_eq!(org["name"], "zeta AS");
    let (_, contacts) = app
        .get(&format!("/api/v1/organisations/{id}/contacts"), &app.read)
        .await;
    assert_eq!(contacts.as_array().unwrap().len(), 1);
    assert_eq!(contacts[0]["enabled"], true);
}

/// An organisation advised of a finding proposes two contacts on its page.
async fn advised_with_proposals(app: &TestApp) -> crate::advisory::Advised {
    let a =
        crate::advisory::advise(app, "A", "192.0.2.0/24", &[("192.0.2.10", "vulnerable")]).await;
    let browser = crate::advisory::Browser::new(app);
    for email in ["cert@a.no", "noc@a.no"] {
        let page = browser.get(&format!("/a/{}", a.token)).await;
        let done = browser
            .submit(
                &page,
                &a.token,
                "contact",
                &[
                    ("email", email),
                    ("name", "A <i>CERT</i>"),
                    ("language", "nb"),
                ],
            )
            .await;
        assert!(done.url.contains("done=contact_change"), "{}", done.url);
    }
    a
}

#[tokio::test]
async fn the_organisation_shows_its_findings_notifications_and_proposals_analysts_decide() {
    let app = crate::helpers::spawn_app_with(|s| s.outbox_workers = 0).await;
    let a = advised_with_proposals(&app).await;
    operator(&app, "viewer@ncsc.example.no", "viewer");
    let (client, cookies, csrf) = analyst(&app).await;
    let path = format!("/organisations/{}", a.organisation);

    let viewer = client.login("viewer@ncsc.example.no", PASSWORD).await;
    let html = client.get(&path, &viewer).await.text().await.unwrap();
    assert!(html.contains("192.0.2.10"), "the open finding: {html}");
    assert!(html.contains(&format!("/findings?organisation={}", a.organisation)));
    assert!(html.contains(&format!("/notifications/{}", a.notification)));
    assert!(html.contains("cert@a.no") && html.contains("A &#60;i&#62;CERT"));
    assert!(!html.contains("<i>CERT"));
    assert!(
        !html.contains("/contact-proposals/"),
        "a viewer gets no buttons"
    );

    let html = client.get(&path, &cookies).await.text().await.unwrap();
    let re = regex_lite::Regex::new(r#"/contact-proposals/(\d+)/confirm"#).unwrap();
    let ids: Vec<i64> = re
        .captures_iter(&html)
        .map(|c| c[1].parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{html}");
    let confirmed = client
        .post(
            &format!("/contact-proposals/{}/confirm", ids[0]),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(confirmed.status(), StatusCode::SEE_OTHER);
    assert_eq!(confirmed.headers()[LOCATION], path.as_str());
    let (_, contacts) = app
        .get(
            &format!("/api/v1/organisations/{}/contacts", a.organisation),
            &app.read,
        )
        .await;
    let emails: Vec<&str> = contacts
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap())
        .collect();
    assert!(emails.contains(&"cert@a.no"), "{emails:?}");
    assert!(!emails.contains(&"noc@a.no"), "{emails:?}");
    for id in &ids[1..] {
        let rejected = client
            .post(
                &format!("/contact-proposals/{id}/reject"),
                &cookies,
                &[("csrf", &csrf)],
            )
            .await;
        assert_eq!(rejected.status(), StatusCode::SEE_OTHER);
    }
    let (_, pending) = app
        .get("/api/v1/contact-proposals?status=pending", &app.read)
        .await;
    assert!(pending["items"].as_array().unwrap().is_empty(), "{pending}");
    let html = client.get(&path, &cookies).await.text().await.unwrap();
    assert!(!html.contains("/contact-proposals/"));
    // Decided already: back to the page, nothing changes.
    let again = client
        .post(
            &format!("/contact-proposals/{}/reject", ids[0]),
            &cookies,
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);

    // The answers on the page; on the timeline, newest first, the
    // decisions, the answers and the notification's own events.
    let html = client.get(&path, &viewer).await.text().await.unwrap();
    let answers = &html[html.find(r#"id="answers""#).expect("the answers")..];
    assert_eq!(answers.matches("<td>contact_change</td>").count(), 2);
    assert!(answers.contains("A &#60;i&#62;CERT") && !answers.contains("<i>CERT"));
    assert!(html.contains(&format!(r#"href="{path}/timeline""#)));
    let r = client.get(&format!("{path}/timeline"), &viewer).await;
    assert_eq!(r.status(), StatusCode::OK);
    let timeline = r.text().await.unwrap();
    let at = |what: &str| {
        timeline
            .find(what)
            .unwrap_or_else(|| panic!("{what} on the timeline: {timeline}"))
    };
    assert!(at("contact_proposal.reject") < at("contact_proposal.confirm"));
    assert!(at("contact_proposal.confirm") < at("answered contact_change"));
    assert!(at("answered contact_change") < at(r#">drafted<"#));
    assert!(timeline.contains(&format!("contact_proposal:{}", ids[0])));
    assert!(!timeline.contains("<i>CERT"), "escaped");
    let other = client.get("/organisations/999999/timeline", &viewer).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);

    // Over every notification: the answers of a kind, filtered in the URL.
    let list = |query: &'static str| {
        let client = &client;
        let viewer = &viewer;
        async move {
            let r = client.get(&format!("/answers?{query}"), viewer).await;
            (r.status(), r.text().await.unwrap())
        }
    };
    let (status, html) = list("kind=contact_change").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        html.matches(r#"<td class="kind">contact_change</td>"#)
            .count(),
        2
    );
    assert!(html.contains(&format!(r#"href="/organisations/{}""#, a.organisation)));
    assert!(!html.contains("<i>CERT"), "escaped");
    let (_, html) = list("kind=fixed").await;
    assert!(html.contains(r#"id="no-answers""#), "{html}");
    let (_, html) = list("organisation=999999").await;
    assert!(html.contains(r#"id="no-answers""#));
    let (status, html) = list("kind=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("is none of acknowledged"), "{html}");
}

#[tokio::test]
async fn the_timeline_pages_by_its_sort_key_showing_each_change_before_and_after() {
    let app = spawn_app().await;
    let org = app.organisation("org-t", &["192.0.2.0/24"]).await;
    for i in 1..=55 {
        let (status, body) = app
            .patch(
                &format!("/api/v1/organisations/{org}"),
                &app.admin,
                json!({ "notes": format!("note {i}") }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (client, cookies, _) = analyst(&app).await;
    let first = client
        .get(&format!("/organisations/{org}/timeline"), &cookies)
        .await
        .text()
        .await
        .unwrap();
    let rows = |html: &str| html.matches("<tr><td>").count();
    assert_eq!(rows(&first), 50);
    // Newest first, each change shown as before → after.
    assert!(
        first.contains("<del>note 54</del> → <ins>note 55</ins>"),
        "{first}"
    );
    let next = regex_lite::Regex::new(r#"href="([^"]+)" rel="next""#)
        .unwrap()
        .captures(&first)
        .expect("a next page")[1]
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    let second = client.get(&next, &cookies).await.text().await.unwrap();
    // 55 changes, the creation and the network: seven more, none twice.
    assert_eq!(rows(&second), 7, "{second}");
    assert!(second.contains("<ins>note 1</ins>") && !second.contains("<ins>note 6</ins>"));
    assert!(!second.contains("rel=\"next\""));
    let half = client
        .get(
            &format!("/organisations/{org}/timeline?before_id=3"),
            &cookies,
        )
        .await;
    assert_eq!(half.status(), StatusCode::BAD_REQUEST);
}
