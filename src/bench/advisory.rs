//! `varsel bench advisory`: the advisory page of an organisation with 200
//! findings, served by a `varsel serve` child, under an open-loop load of
//! a fixed rate (500 requests/s by default) from this process — each
//! request sent at its planned time whatever the earlier ones did, and
//! timed from that planned time, so a slow server cannot hide its queue
//! (no coordinated omission). `/healthz` under the same load is the
//! baseline of the same run: what the machine, the client and the HTTP
//! stack cost by themselves.
//!
//! The organisation is made over the API like any other: its network and
//! contact, 200 Exchange observations with evidence, the ProxyLogon seed
//! activated and approved, the advisory mailed (to files), and a link
//! reissued so the bench holds its token.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::config::Settings;
use crate::domain::Actor;

pub async fn run(
    settings: Settings,
    findings: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!((1..=250).contains(&findings), "--findings must be 1 to 250");
    anyhow::ensure!(
        rate > 0 && seconds > 0,
        "--rate and --seconds must be positive"
    );
    println!("machine: {}", super::machine());
    let (settings, pool) = super::fresh_database(&settings, "bench_advisory").await?;
    let (_, token) =
        crate::auth::create_client(&pool, &Actor::Cli, "bench", &[crate::auth::Scope::Admin])
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = super::ingest::start_server(&settings).await?;
    let api = Api {
        http: reqwest::Client::new(),
        base: server.base.clone(),
        token: token.expose().to_owned(),
    };
    let link = advised_organisation(&api, &pool, findings).await?;
    let page = format!("{}{}", server.base, link);

    let http = reqwest::Client::new();
    let first = http.get(&page).send().await?;
    anyhow::ensure!(
        first.status().is_success(),
        "the page answered {}",
        first.status()
    );
    let body = first.text().await?;
    let shown = body.matches(r#"<li class="finding"#).count();
    anyhow::ensure!(
        shown == findings,
        "the page shows {shown} findings, not {findings}"
    );
    println!(
        "page: {findings} findings, {} KB of HTML",
        body.len() / 1024
    );

    // Warm both up (connections, caches), then measure each.
    load(&http, &page, None, rate, 2).await?;
    let page_stats = load(&http, &page, None, rate, seconds).await?;
    let health = format!("{}/healthz", server.base);
    load(&http, &health, None, rate, 2).await?;
    let health_stats = load(&http, &health, None, rate, seconds).await?;
    page_stats.print("advisory page");
    health_stats.print("baseline /healthz");
    println!(
        "p99 page / p99 baseline: {:.1}",
        page_stats.quantile(0.99).as_secs_f64() / health_stats.quantile(0.99).as_secs_f64()
    );
    let opens: i32 = sqlx::query_scalar("SELECT open_count FROM notifications LIMIT 1")
        .fetch_one(&pool)
        .await?;
    println!("opens recorded: {opens}");
    Ok(())
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }
}

/// Makes the organisation, advises it of `findings` hosts, and returns its
/// page's path.
async fn advised_organisation(
    api: &Api,
    pool: &sqlx::PgPool,
    findings: usize,
) -> anyhow::Result<String> {
    let org = api
        .post(
            "/api/v1/organisations",
            json!({ "ref": "BENCH", "name": "Benchmark kommune" }),
        )
        .await?;
    let org = org["id"].as_i64().context("organisation id")?;
    api.post(
        &format!("/api/v1/organisations/{org}/networks"),
        json!({ "cidr": "198.18.0.0/24" }),
    )
    .await?;
    api.post(
        &format!("/api/v1/organisations/{org}/contacts"),
        json!({ "email": "security@bench.example.no", "role": "security", "language": "nb" }),
    )
    .await?;
    let observations: String = (1..=findings)
        .map(|i| {
            json!({
                "ip": format!("198.18.0.{i}"), "port": 443, "check": "exchange-proxylogon",
                "state": if i % 10 == 0 { "compromised" } else { "vulnerable" },
                "observed_at": "2021-03-10T06:42:17Z",
                "cves": ["CVE-2021-26855", "CVE-2021-27065"],
                "product": "Microsoft Exchange Server 2016", "version": "15.1.2176",
                "evidence": { "http_status": 200, "path": "/owa/auth/x.js",
                              "x_owa_version": "15.1.2176.2", "server": format!("MBX{i:03}") }
            })
            .to_string()
                + "\n"
        })
        .collect();
    let response = api
        .http
        .post(format!("{}/api/v1/observations", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/x-ndjson")
        .body(observations)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "push: {}",
        response.text().await?
    );

    let mut conn = pool.acquire().await?;
    let campaign =
        crate::campaigns::seed::seed(&mut conn, &Actor::Cli, chrono::Utc::now(), false).await?;
    api.post(&format!("/api/v1/campaigns/{campaign}/activate"), json!({}))
        .await?;
    let notification = wait_for(api, org, |n| n["findings"] == findings).await?;
    api.post(&format!("/api/v1/campaigns/{campaign}/approve"), json!({}))
        .await?;
    wait_for(api, org, |n| n["mailed_at"].is_string()).await?;
    let link = api
        .post(
            &format!("/api/v1/notifications/{notification}/links"),
            json!({}),
        )
        .await?;
    let url = link["url"].as_str().context("link url")?;
    let path = url
        .find("/a/")
        .map(|at| url[at..].to_owned())
        .context("link path")?;
    Ok(path)
}

/// Polls the organisation's notification (the serving child's jobs draft
/// and mail it) until `done`; returns its id.
async fn wait_for(api: &Api, org: i64, done: impl Fn(&Value) -> bool) -> anyhow::Result<i64> {
    for _ in 0..600 {
        let page = api
            .get(&format!("/api/v1/notifications?organisation_id={org}"))
            .await?;
        if let Some(n) = page["items"].as_array().and_then(|i| i.first()) {
            if done(n) {
                return n["id"].as_i64().context("notification id");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the notification did not get there in a minute")
}

/// Latencies of one load run, sorted.
pub(super) struct Stats {
    latencies: Vec<Duration>,
    errors: usize,
    rate: u32,
    achieved: f64,
}

impl Stats {
    pub(super) fn quantile(&self, q: f64) -> Duration {
        let i = ((self.latencies.len() as f64 * q).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[i - 1]
    }

    pub(super) fn print(&self, what: &str) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "{what}: {} requests at {}/s (sent at {:.0}/s), {} errors: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.latencies.len(),
            self.rate,
            self.achieved,
            self.errors,
            ms(self.quantile(0.5)),
            ms(self.quantile(0.9)),
            ms(self.quantile(0.99)),
            ms(self.quantile(1.0)),
        );
    }
}

/// `rate` GETs a second of `url` for `seconds`, each at its planned time,
/// with `cookie` if given.
pub(super) async fn load(
    http: &reqwest::Client,
    url: &str,
    cookie: Option<&str>,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Stats> {
    let total = rate as u64 * seconds;
    let interval = Duration::from_secs(1) / rate;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let began = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let planned = start + interval * i as u32;
        tokio::time::sleep_until(planned).await;
        let http = http.clone();
        let mut request = http.get(url);
        if let Some(cookie) = cookie {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        tasks.push(tokio::spawn(async move {
            let ok = match request.send().await {
                Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                Err(_) => false,
            };
            (planned.elapsed(), ok)
        }));
    }
    let sent_in = began.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    for task in tasks {
        let (latency, ok) = task.await?;
        latencies.push(latency);
        errors += usize::from(!ok);
    }
    latencies.sort_unstable();
    Ok(Stats {
        latencies,
        errors,
        rate,
        achieved: total as f64 / sent_in,
    })
}
