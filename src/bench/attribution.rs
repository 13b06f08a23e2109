//! `varsel bench attribution`: the prefix table on one core, then the bulk
//! lookup endpoint end to end over loopback.

use std::io::BufRead;
use std::net::IpAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use chrono::Utc;

use crate::attribution::table::Match;
use crate::config::Settings;

fn read_ips(data: &Path) -> anyhow::Result<Vec<IpAddr>> {
    let path = data.join("observations.ndjson");
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ips = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line?;
        // "ip" is the first field the generator writes.
        if let Some(ip) = line
            .strip_prefix("{\"ip\":\"")
            .and_then(|rest| rest.split('"').next())
            .and_then(|s| s.parse().ok())
        {
            ips.push(ip);
        }
    }
    Ok(ips)
}

pub async fn run(settings: Settings, data: &Path, batch: usize) -> anyhow::Result<()> {
    println!("machine: {}", super::machine());
    let (settings, pool) = super::fresh_database(&settings, "bench_attribution").await?;
    super::import_registry(&pool, data).await?;
    let ips = read_ips(data)?;
    anyhow::ensure!(!ips.is_empty(), "no addresses in observations.ndjson");

    let started = Instant::now();
    let table = crate::attribution::load(&pool).await?;
    println!(
        "table: {} network rows loaded and built in {:.0} ms",
        table.network_rows(),
        started.elapsed().as_secs_f64() * 1000.0
    );

    // Correctness first: every address of truth.csv.
    let truth = std::fs::read_to_string(data.join("truth.csv"))?;
    let now = Utc::now().timestamp_micros();
    let mut mismatches = 0usize;
    let mut checked = 0usize;
    for line in truth.lines().skip(1) {
        let Some((ip, owner)) = line.split_once(',') else {
            continue;
        };
        let Ok(ip) = ip.parse() else { continue };
        let got = match table.attribute(ip, now, None) {
            Match::Network(n) => n.organisation_ref.to_string(),
            _ => String::new(),
        };
        checked += 1;
        if got != owner {
            mismatches += 1;
        }
    }
    println!("truth.csv: {checked} addresses checked, {mismatches} mismatches");

    // One core, the whole observation stream, three rounds; best is reported.
    let mut best = f64::MAX;
    let mut attributed = 0usize;
    for _ in 0..3 {
        let started = Instant::now();
        attributed = 0;
        for ip in &ips {
            if table.attribute(*ip, now, None).organisation_id().is_some() {
                attributed += 1;
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "in-process: {} addresses in {:.3} s = {:.0} addresses/s on one core ({} attributed)",
        ips.len(),
        best,
        ips.len() as f64 / best,
        attributed
    );

    // End to end: the real server, bulk lookups of `batch` addresses.
    let app = crate::app::Application::build(
        Settings {
            listen: "127.0.0.1:0".parse()?,
            rate_limit_per_minute: 0,
            ..settings
        },
        pool.clone(),
    )
    .await?;
    let addr = app.local_addr()?;
    let (_, token) = crate::auth::create_client(
        &pool,
        &crate::domain::Actor::Cli,
        "bench",
        &[crate::auth::Scope::Read],
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let bodies: Vec<String> = ips
        .chunks(batch)
        .map(|c| serde_json::to_string(&c.iter().map(|ip| ip.to_string()).collect::<Vec<_>>()))
        .collect::<Result<_, _>>()?;
    let started = Instant::now();
    let mut answered = 0usize;
    for body in bodies {
        let response = http
            .post(format!("http://{addr}/api/v1/lookup"))
            .bearer_auth(token.expose())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
        // What a client reads of each answer; the rest is skipped unparsed.
        #[derive(serde::Deserialize)]
        struct Answer {
            #[allow(dead_code)]
            organisation: Option<crate::attribution::OrganisationRef>,
        }
        let answers: Vec<Answer> = response.json().await?;
        answered += answers.len();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "bulk lookup over HTTP: {answered} addresses in {elapsed:.2} s = {:.0} addresses/s end to end \
         (batches of {batch}, one client, request and response JSON included)",
        answered as f64 / elapsed
    );
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}
