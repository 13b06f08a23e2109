use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn organisation_crud_with_validation() {
    let app = spawn_app().await;
    let (status, org) = app
        .post(
            "/api/v1/organisations",
            &app.admin,
            json!({ "ref": "ORG-1", "name": "Eksempel Kommune", "org_number": "974760673", "sector": "municipality" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{org}");
    let id = org["id"].as_i64().unwrap();
    assert_eq!(org["org_number"], "974760673");

    // A bad check digit names the field and the reason.
    let (status, body) = app
        .post(
            "/api/v1/organisations",
            &app.admin,
            json!({ "ref": "ORG-2", "name": "X", "org_number": "974760674" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "org_number");
    assert!(
        body["detail"].as_str().unwrap().contains("mod-11"),
        "{body}"
    );

    let (status, body) = app
        .post(
            "/api/v1/organisations",
            &app.admin,
            json!({ "name": "no ref" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "ref");

    let (status, body) = app
        .post(
            "/api/v1/organisations",
            &app.admin,
            json!({ "ref": "ORG-1", "name": "Again" }),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let (status, body) = app
        .patch(
            &format!("/api/v1/organisations/{id}"),
            &app.admin,
            json!({ "notes": "runs Exchange", "sector": null }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["notes"], "runs Exchange");
    assert_eq!(body["sector"], serde_json::Value::Null);
    assert_eq!(body["name"], "Eksempel Kommune");

    let (status, page) = app.get("/api/v1/organisations?ref=ORG-1", &app.read).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    let (status, _) = app.get("/api/v1/organisations/999999", &app.read).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn contacts_domains_with_validation() {
    let app = spawn_app().await;
    let org = app.organisation("ORG-C", &[]).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/organisations/{org}/contacts"),
            &app.admin,
            json!({ "email": "not-an-address", "role": "security", "language": "nb" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "email");

    let (status, body) = app
        .post(
            &format!("/api/v1/organisations/{org}/contacts"),
            &app.admin,
            json!({ "email": "sikkerhet@eksempel.no", "role": "security", "language": "xx" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "language");

    let (status, contact) = app
        .post(
            &format!("/api/v1/organisations/{org}/contacts"),
            &app.admin,
            json!({ "email": "Sikkerhet@Eksempel.NO", "name": "SOC", "role": "security", "language": "nb" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    assert_eq!(contact["email"], "Sikkerhet@eksempel.no");
    assert_eq!(contact["provenance"], "manual");
    let cid = contact["id"].as_i64().unwrap();
    let (status, contact) = app
        .patch(
            &format!("/api/v1/contacts/{cid}"),
            &app.admin,
            json!({ "enabled": false }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(contact["enabled"], false);
    let (status, _) = app
        .delete(&format!("/api/v1/contacts/{cid}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, body) = app
        .post(
            &format!("/api/v1/organisations/{org}/domains"),
            &app.admin,
            json!({ "domain": "not a domain" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["field"], "domain");
    let (status, _) = app
        .post(
            &format!("/api/v1/organisations/{org}/domains"),
            &app.admin,
            json!({ "domain": "Eksempel.no." }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, list) = app
        .get(&format!("/api/v1/organisations/{org}/domains"), &app.read)
        .await;
    assert_eq!(list[0]["domain"], "eksempel.no");
}

#[tokio::test]
async fn networks_keep_history_and_reject_host_bits() {
    let app = spawn_app().await;
    let a = app.organisation("A", &[]).await;
    let b = app.organisation("B", &[]).await;

    let (status, body) = app
        .post(
            &format!("/api/v1/organisations/{a}/networks"),
            &app.admin,
            json!({ "cidr": "192.0.2.1/24" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "cidr");
    assert!(
        body["detail"].as_str().unwrap().contains("host bits"),
        "{body}"
    );

    let (status, net) = app
        .post(
            &format!("/api/v1/organisations/{a}/networks"),
            &app.admin,
            json!({ "cidr": "192.0.2.0/24" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(net["source"], "manual");
    assert_eq!(net["valid_from"], serde_json::Value::Null);
    let (status, _) = app
        .post(
            &format!("/api/v1/organisations/{b}/networks"),
            &app.admin,
            json!({ "cidr": "192.0.2.0/24" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one hand-entered owner per CIDR at a time"
    );

    // Move it to B: the old row ends, a new row starts; nothing is rewritten.
    let (status, moved) = app
        .patch(
            &format!("/api/v1/networks/{}", net["id"]),
            &app.admin,
            json!({ "organisation_id": b }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_ne!(moved["id"], net["id"]);
    assert_eq!(moved["organisation_id"], b);
    let (_, history) = app
        .get(
            &format!("/api/v1/organisations/{a}/networks?history=true"),
            &app.read,
        )
        .await;
    assert_eq!(history.as_array().unwrap().len(), 1);
    assert_eq!(history[0]["valid_to"], moved["valid_from"]);
    let (_, current) = app
        .get(&format!("/api/v1/organisations/{a}/networks"), &app.read)
        .await;
    assert!(current.as_array().unwrap().is_empty());

    let (status, body) = app
        .patch(
            &format!("/api/v1/networks/{}", net["id"]),
            &app.admin,
            json!({ "name": "x" }),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "ended rows are history: {body}"
    );

    // An organisation with networks (even historical) cannot be deleted.
    let (status, _) = app
        .delete(&format!("/api/v1/organisations/{a}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let empty = app.organisation("EMPTY", &[]).await;
    let (status, _) = app
        .delete(&format!("/api/v1/organisations/{empty}"), &app.admin)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // ASNs.
    let (status, asn) = app
        .post(
            &format!("/api/v1/organisations/{b}/asns"),
            &app.admin,
            json!({ "asn": 64500 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{asn}");
    let (status, _) = app
        .delete(&format!("/api/v1/asns/{}", asn["id"]), &app.admin)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .delete(&format!("/api/v1/asns/{}", asn["id"]), &app.admin)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The registry changes enqueued late attribution.
    app.run_jobs().await;
}

#[tokio::test]
async fn malformed_json_is_a_clear_400() {
    let app = spawn_app().await;
    let r = app
        .request(reqwest::Method::POST, "/api/v1/organisations", &app.admin)
        .header("content-type", "application/json")
        .body("{\"ref\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
}

/// Every constraint the domain maps to a conflict exists in the schema:
/// a misspelt or vanished name would turn a clear 409 into a 500.
#[tokio::test]
async fn every_mapped_constraint_exists() {
    let app = crate::helpers::spawn_app().await;
    for (name, _, _) in varsel::domain::CONSTRAINTS {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1)
                 OR EXISTS (SELECT 1 FROM pg_class WHERE relname = $1 AND relkind = 'i')",
        )
        .bind(name)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert!(exists, "constraint {name} is mapped but does not exist");
    }
}
