//! `varsel bench ingest`: the data set's observations pushed as NDJSON over
//! loopback into a `varsel serve` child process (so its memory can be read
//! from /proc), twice, then the same rows with a bare COPY into a plain
//! table for comparison.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::config::Settings;
use crate::ingest::formats::{self, Format, Item};
use crate::ingest::store::{self, StoredObservation};

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

pub(super) fn batches(data: &Path, batch: usize) -> anyhow::Result<(Vec<Vec<u8>>, usize)> {
    let path = data.join("observations.ndjson");
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut lines = 0usize;
    let mut in_batch = 0usize;
    for line in BufReader::new(file).split(b'\n') {
        let line = line?;
        current.extend_from_slice(&line);
        current.push(b'\n');
        lines += 1;
        in_batch += 1;
        if in_batch == batch {
            out.push(std::mem::take(&mut current));
            in_batch = 0;
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok((out, lines))
}

pub(super) struct Server {
    pub(super) child: tokio::process::Child,
    pub(super) base: String,
}

pub(super) async fn start_server(settings: &Settings) -> anyhow::Result<Server> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .env("DATABASE_URL", settings.database_url.expose())
        .env("VARSEL_LISTEN", format!("127.0.0.1:{port}"))
        .env("VARSEL_RATE_LIMIT_PER_MINUTE", "0")
        .env("VARSEL_PAGE_RATE_LIMIT_PER_MINUTE", "0")
        .env(
            "VARSEL_MAIL_DIR",
            std::env::temp_dir().join("varsel-bench-mail"),
        )
        .env(
            "VARSEL_INGEST_CHUNK_ROWS",
            settings.ingest_chunk_rows.to_string(),
        )
        .env(
            "VARSEL_LOG",
            std::env::var("VARSEL_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .env_remove("VARSEL_CONFIG")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting varsel serve")?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(Server { child, base });
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("varsel serve did not become ready")
}

/// Pushes every body, `parallel` requests in flight at a time.
pub(super) async fn push_all(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    bodies: &[Vec<u8>],
    parallel: usize,
    round: &str,
) -> anyhow::Result<(f64, u64, u64)> {
    use futures_util::StreamExt;
    let started = Instant::now();
    let results: Vec<anyhow::Result<crate::ingest::pipeline::IngestSummary>> =
        futures_util::stream::iter(bodies.iter().enumerate().map(|(i, body)| async move {
            // As a careful scanner would: an idempotency key per batch, and a
            // retry when the server asks for one (503 + Retry-After).
            loop {
                let response = http
                    .post(format!("{base}/api/v1/observations"))
                    .bearer_auth(token)
                    .header("content-type", "application/x-ndjson")
                    .header("idempotency-key", format!("bench-{round}-{i}"))
                    .body(body.clone())
                    .send()
                    .await?;
                if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                    eprintln!("batch {i}: server asked for a retry");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                return Ok(response.error_for_status()?.json().await?);
            }
        }))
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    let (mut accepted, mut rejected) = (0, 0);
    for r in results {
        let r = r?;
        accepted += r.accepted;
        rejected += r.rejected;
    }
    Ok((started.elapsed().as_secs_f64(), accepted, rejected))
}

pub async fn run(
    settings: Settings,
    data: &Path,
    batch: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    println!("machine: {}", super::machine());
    let (settings, pool) = super::fresh_database(&settings, "bench_ingest").await?;
    super::import_registry(&pool, data).await?;
    let (_, token) = crate::auth::create_client(
        &pool,
        &crate::domain::Actor::Cli,
        "bench",
        &[crate::auth::Scope::Ingest],
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (bodies, lines) = batches(data, batch)?;
    println!(
        "{lines} observations in {} requests of up to {batch} lines, {parallel} in flight",
        bodies.len()
    );

    let mut server = start_server(&settings).await?;
    let pid = server.child.id().context("server pid")?;
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                if let Some(kib) = rss_kib(pid, "VmRSS:") {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let http = reqwest::Client::new();
    let (first, accepted, rejected) = push_all(
        &http,
        &server.base,
        token.expose(),
        &bodies,
        parallel,
        "scan",
    )
    .await?;
    let findings: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
        .fetch_one(&pool)
        .await?;
    println!(
        "scan:   {accepted} accepted, {rejected} rejected in {first:.2} s = {:.0} observations/s; {findings} findings",
        accepted as f64 / first
    );
    // The rescan is new requests: other idempotency keys.
    let (second, accepted2, _) = push_all(
        &http,
        &server.base,
        token.expose(),
        &bodies,
        parallel,
        "rescan",
    )
    .await?;
    let findings2: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
        .fetch_one(&pool)
        .await?;
    println!(
        "rescan: {accepted2} accepted in {second:.2} s = {:.0} observations/s; {findings2} findings",
        accepted2 as f64 / second
    );
    let hwm = rss_kib(pid, "VmHWM:").unwrap_or(0);
    sampler.abort();
    println!(
        "server memory: peak RSS {:.0} MB (VmHWM), highest sample {:.0} MB",
        hwm as f64 / 1024.0,
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    );
    let _ = server.child.kill().await;

    // The same rows, bare: one COPY into a plain table without indexes.
    let path = data.join("observations.ndjson");
    let observations = tokio::task::spawn_blocking(
        move || -> anyhow::Result<Vec<crate::ingest::observation::Observation>> {
            let file = std::fs::File::open(&path)?;
            let input = Box::new(BufReader::with_capacity(1 << 20, file));
            let mut out = Vec::new();
            for item in formats::parse(&Format::Canonical, input) {
                if let Item::Observation(o, _) = item.map_err(|e| anyhow::anyhow!("{e}"))? {
                    out.push(o);
                }
            }
            Ok(out)
        },
    )
    .await??;
    let rows: Vec<StoredObservation<'_>> = observations
        .iter()
        .enumerate()
        .map(|(i, o)| StoredObservation {
            id: i as i64,
            scan_run_id: None,
            finding_id: None,
            organisation_id: None,
            network_id: None,
            attribution: "none",
            observation: o,
        })
        .collect();
    let mut conn = pool.acquire().await?;
    sqlx::query("CREATE TABLE copy_baseline (LIKE observations INCLUDING DEFAULTS)")
        .execute(&mut *conn)
        .await?;
    let started = Instant::now();
    store::copy_rows(&mut conn, "copy_baseline", &rows).await?;
    let copy = started.elapsed().as_secs_f64();
    println!(
        "bare COPY of the same {} rows into a plain table: {copy:.2} s = {:.0} rows/s",
        rows.len(),
        rows.len() as f64 / copy
    );
    println!(
        "ratio: HTTP ingest took {:.2}x the bare COPY (rescan {:.2}x)",
        first / copy,
        second / copy
    );
    Ok(())
}
