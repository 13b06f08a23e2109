use std::io::Write;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, sample, spawn_app};

fn import(app: &TestApp, args: &[&str]) -> Value {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = app.cli(&all);
    assert!(
        out.status.success(),
        "varsel {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON summary")
}

async fn owner(app: &TestApp, ip: &str, at: Option<&str>) -> Value {
    let path = match at {
        Some(at) => format!("/api/v1/lookup?ip={ip}&at={at}"),
        None => format!("/api/v1/lookup?ip={ip}"),
    };
    let (status, r) = app.get(&path, &app.read).await;
    assert_eq!(status, StatusCode::OK, "{r}");
    r["organisation"]["ref"].clone()
}

#[tokio::test]
async fn ripe_sample_import_then_incremental_reimport() {
    let app = spawn_app().await;
    let file = sample("ripe/ripe_constructed_no.txt");
    let s = import(&app, &["ripe", "--country", "NO", file.to_str().unwrap()]);
    assert_eq!(s["organisations"]["added"], 3, "{s}");
    // 198.18.0.0/15, 198.18.4.0/23 + 198.18.6.0/24 (one inetnum range that is
    // not one CIDR), 198.18.9.64/26, two IPv6 prefixes; the SE range is skipped.
    assert_eq!(s["networks"]["added"], 6, "{s}");
    assert_eq!(s["asns"]["added"], 1, "{s}");

    assert_eq!(owner(&app, "198.18.6.5", None).await, "ORG-EXA1-RIPE");
    assert_eq!(owner(&app, "198.18.4.1", None).await, "ORG-EXA1-RIPE");
    assert_eq!(owner(&app, "198.18.7.1", None).await, "ORG-FJN1-RIPE");
    // An inetnum without org: is owned by its abuse-c role.
    assert_eq!(owner(&app, "198.18.9.70", None).await, "EKAB1-RIPE");
    assert_eq!(
        owner(&app, "2001:db8:4000:12ff::1", None).await,
        "ORG-EXA1-RIPE"
    );
    assert_eq!(owner(&app, "2001:db8:5000::1", None).await, "ORG-FJN1-RIPE");
    assert_eq!(owner(&app, "203.0.113.1", None).await, Value::Null);

    let (_, orgs) = app
        .get("/api/v1/organisations?ref=ORG-EXA1-RIPE", &app.read)
        .await;
    let exa = orgs["items"][0]["id"].as_i64().unwrap();
    assert_eq!(orgs["items"][0]["name"], "Eksempel Kommune");
    let (_, contacts) = app
        .get(&format!("/api/v1/organisations/{exa}/contacts"), &app.read)
        .await;
    assert_eq!(contacts[0]["email"], "abuse@eksempel-kommune.example.no");
    assert_eq!(contacts[0]["role"], "abuse");
    assert_eq!(contacts[0]["provenance"], "registry");

    // An analyst's own entries, which no import may touch.
    let (status, _) = app
        .post(
            &format!("/api/v1/organisations/{exa}/contacts"),
            &app.admin,
            serde_json::json!({ "email": "soc@eksempel-kommune.example.no", "role": "security", "language": "nb" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.organisation("HAND-ENTERED", &["198.18.200.0/24"]).await;

    // Re-importing the same file changes nothing.
    let again = import(&app, &["ripe", "--country", "NO", file.to_str().unwrap()]);
    for kind in ["organisations", "networks", "asns", "contacts"] {
        assert_eq!(again[kind]["added"], 0, "{kind}: {again}");
        assert_eq!(again[kind]["changed"], 0, "{kind}: {again}");
        assert_eq!(again[kind]["ended"], 0, "{kind}: {again}");
    }

    // The registry changes: the abuse-only range now belongs to Fjordnett,
    // the municipality's IPv6 assignment is gone.
    let before_change = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replace(
        "netname:        NO-ABUSEC-ONLY\n",
        "netname:        NO-ABUSEC-ONLY\norg:            ORG-FJN1-RIPE\n",
    );
    let v6_start = changed
        .find("inet6num:       2001:db8:4000:1200::/56")
        .unwrap();
    let v6_end = v6_start + changed[v6_start..].find("\n\n").unwrap() + 2;
    let changed = format!("{}{}", &changed[..v6_start], &changed[v6_end..]);
    // …and arrives gzipped this time.
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("ripe.db.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(changed.as_bytes()).unwrap();
    enc.finish().unwrap();
    let third = import(&app, &["ripe", "--country", "NO", gz.to_str().unwrap()]);
    assert_eq!(third["networks"]["changed"], 1, "{third}");
    assert_eq!(third["networks"]["ended"], 1, "{third}");
    assert_eq!(third["networks"]["added"], 0, "{third}");

    assert_eq!(owner(&app, "198.18.9.70", None).await, "ORG-FJN1-RIPE");
    let at = before_change.replace('+', "%2B");
    assert_eq!(
        owner(&app, "198.18.9.70", Some(&at)).await,
        "EKAB1-RIPE",
        "history is kept"
    );
    assert_eq!(
        owner(&app, "2001:db8:4000:12ff::1", None).await,
        "ORG-FJN1-RIPE"
    );
    assert_eq!(
        owner(&app, "2001:db8:4000:12ff::1", Some(&at)).await,
        "ORG-EXA1-RIPE"
    );

    // The hand-entered network and contact are untouched.
    assert_eq!(owner(&app, "198.18.200.1", None).await, "HAND-ENTERED");
    let (_, contacts) = app
        .get(&format!("/api/v1/organisations/{exa}/contacts"), &app.read)
        .await;
    assert!(
        contacts
            .to_string()
            .contains("soc@eksempel-kommune.example.no")
    );
    // The registry changes enqueued late attribution.
    app.run_jobs().await;
}

#[tokio::test]
async fn ripe_objects_without_an_owner_are_rejected_with_their_line() {
    let app = spawn_app().await;
    let file = sample("ripe/ripe_objects_irrd2018_sample.txt");
    let s = import(&app, &["ripe", "--country", "IT", file.to_str().unwrap()]);
    assert_eq!(s["networks"]["added"], 0, "{s}");
    let rejected = s["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{s}");
    assert_eq!(rejected[0]["line"], 1);
    assert!(
        rejected[0]["reason"].as_str().unwrap().contains("owner"),
        "{s}"
    );
    let roles = sample("ripe/ripe_role_sample.txt");
    let s = import(&app, &["ripe", "--country", "NO", roles.to_str().unwrap()]);
    assert_eq!(s["organisations"]["added"], 0, "{s}");
}

#[tokio::test]
async fn a_bad_file_leaves_the_registry_as_it_was() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let orgs = dir.path().join("orgs.csv");
    let nets = dir.path().join("nets.csv");
    std::fs::write(
        &orgs,
        "ref,name,org_number\nA,Alpha,974760673\nB,Beta,974760674\n",
    )
    .unwrap();
    std::fs::write(
        &nets,
        "cidr,organisation_ref,source\n192.0.2.0/24,A,registry\n192.0.2.1/24,A,registry\n",
    )
    .unwrap();
    let s = import(
        &app,
        &[
            "csv",
            "--organisations",
            orgs.to_str().unwrap(),
            "--networks",
            nets.to_str().unwrap(),
        ],
    );
    assert_eq!(s["organisations"]["added"], 1, "{s}");
    assert_eq!(s["networks"]["added"], 1, "{s}");
    let reasons: Vec<String> = s["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}:{} {}", r["file"], r["line"], r["reason"]))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains(":3 ") && r.contains("mod-11")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains(":3 ") && r.contains("host bits")),
        "{reasons:?}"
    );

    // A networks file without its required column fails whole.
    std::fs::write(&nets, "network,organisation_ref\n198.51.100.0/24,A\n").unwrap();
    let out = app.cli(&[
        "import",
        "csv",
        "--organisations",
        orgs.to_str().unwrap(),
        "--networks",
        nets.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cidr"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM networks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);

    // Dry run stores nothing.
    std::fs::write(&nets, "cidr,organisation_ref\n198.51.100.0/24,A\n").unwrap();
    let s = import(
        &app,
        &[
            "csv",
            "--organisations",
            orgs.to_str().unwrap(),
            "--networks",
            nets.to_str().unwrap(),
            "--dry-run",
        ],
    );
    assert_eq!(s["networks"]["added"], 1);
    assert_eq!(s["networks"]["ended"], 1);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM networks WHERE valid_to IS NULL")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(owner(&app, "192.0.2.9", None).await, "A");
    // The registry changes enqueued late attribution.
    app.run_jobs().await;
}

/// An import that adds nothing says why: what it passed over, by reason.
#[tokio::test]
async fn ripe_import_counts_what_it_skipped_by_reason() {
    let app = spawn_app().await;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        b"inetnum:      192.0.2.0 - 192.0.2.255\n\
          country:      SE\n\
          org:          ORG-SE1-RIPE\n\
          \n\
          inetnum:      198.51.100.0 - 198.51.100.255\n\
          country:      DK\n\
          org:          ORG-DK1-RIPE\n\
          \n\
          organisation: ORG-NO1-RIPE\n\
          org-name:     Norsk AS, no networks\n\
          country:      NO\n\
          \n\
          aut-num:      AS64500\n\
          as-name:      NOBODY\n",
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let s = import(&app, &["ripe", "--country", "NO", path]);
    assert_eq!(s["networks"]["added"], 0, "{s}");
    assert_eq!(s["rejected"].as_array().unwrap().len(), 0, "{s}");
    assert_eq!(
        s["skipped"],
        serde_json::json!({
            "inetnum/inet6num of another country": 2,
            "organisation of the country holding no network or ASN": 1,
            "aut-num without org:": 1,
        }),
        "{s}"
    );
    // The same in the summary printed for people.
    let out = app.cli(&["import", "ripe", "--country", "NO", path]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("skipped: 4"), "{text}");
    assert!(
        text.contains("2  inetnum/inet6num of another country"),
        "{text}"
    );
}

/// An assignment with neither org: nor abuse-c: is owned by its admin-c, else
/// tech-c, role with an abuse-mailbox, which becomes its abuse contact; the
/// summary counts it; one no role answers for is still rejected.
#[tokio::test]
async fn ripe_assignment_owned_by_its_contact_role() {
    let app = spawn_app().await;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(
        b"inetnum:      192.0.2.0 - 192.0.2.255\n\
          netname:      KOMMUNE-NET\n\
          country:      NO\n\
          admin-c:      KADM1-RIPE\n\
          tech-c:       KTEC1-RIPE\n\
          \n\
          inetnum:      198.51.100.0 - 198.51.100.255\n\
          netname:      SKOLE-NET\n\
          country:      NO\n\
          admin-c:      DUMY-RIPE\n\
          tech-c:       KTEC1-RIPE\n\
          \n\
          inetnum:      203.0.113.0 - 203.0.113.255\n\
          netname:      NOBODY-NET\n\
          country:      NO\n\
          admin-c:      DUMY-RIPE\n\
          tech-c:       DUMY-RIPE\n\
          \n\
          role:         Kommune IT\n\
          nic-hdl:      KADM1-RIPE\n\
          abuse-mailbox: it@kommune.example.no,\n\
          \n\
          role:         Kommune drift\n\
          nic-hdl:      KTEC1-RIPE\n\
          abuse-mailbox: drift@kommune.example.no\n",
    )
    .unwrap();
    let path = file.path().to_str().unwrap();
    let s = import(&app, &["ripe", "--country", "NO", path]);
    assert_eq!(s["networks"]["added"], 2, "{s}");
    assert_eq!(s["organisations"]["added"], 2, "{s}");
    assert_eq!(
        s["inferred"],
        serde_json::json!({
            "inetnum/inet6num without org: or abuse-c:, owner from its admin-c role": 1,
            "inetnum/inet6num without org: or abuse-c:, owner from its tech-c role": 1,
        }),
        "{s}"
    );
    let rejected = s["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{s}");
    assert_eq!(rejected[0]["line"], 13);
    assert!(
        rejected[0]["reason"]
            .as_str()
            .unwrap()
            .contains("NOBODY-NET"),
        "{s}"
    );

    assert_eq!(owner(&app, "192.0.2.9", None).await, "KADM1-RIPE");
    assert_eq!(owner(&app, "198.51.100.9", None).await, "KTEC1-RIPE");
    assert_eq!(owner(&app, "203.0.113.9", None).await, Value::Null);
    let (_, orgs) = app
        .get("/api/v1/organisations?ref=KADM1-RIPE", &app.read)
        .await;
    assert_eq!(orgs["items"][0]["name"], "Kommune IT");
    let id = orgs["items"][0]["id"].as_i64().unwrap();
    let (_, contacts) = app
        .get(&format!("/api/v1/organisations/{id}/contacts"), &app.read)
        .await;
    assert_eq!(contacts[0]["email"], "it@kommune.example.no");
    assert_eq!(contacts[0]["role"], "abuse");

    // The summary printed for people says so too.
    let out = app.cli(&["import", "ripe", "--country", "NO", path, "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("inferred: 2"), "{text}");
    assert!(text.contains("owner from its admin-c role"), "{text}");
    app.run_jobs().await;
}
