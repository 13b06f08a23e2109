//! Benchmarks, run as `varsel bench …` on a data set made by
//! `varsel bench dataset` (see BENCHMARKS.md). Each bench makes its own
//! database (`<name>_bench`) on the configured server, dropped and recreated
//! per run; making the data set needs no database.

mod advisory;
mod attribution;
mod dashboard;
pub mod dataset;
mod drafting;
mod ingest;
mod outbox;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::{Secret, Settings};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Writes the synthetic data set the benchmarks and tests run on:
    /// organisations.csv, networks.csv, observations.ndjson, truth.csv.
    Dataset(dataset::DatasetArgs),
    /// In-process longest-prefix attribution on one core, and the bulk
    /// lookup endpoint end to end.
    Attribution {
        /// Folder with organisations.csv, networks.csv, observations.ndjson, truth.csv.
        #[arg(long)]
        data: PathBuf,
        /// Addresses per bulk lookup request.
        #[arg(long, default_value_t = 100_000)]
        batch: usize,
    },
    /// Pushes observations.ndjson through the HTTP API into a `varsel serve`
    /// child process, twice (scan and rescan), and compares with a bare COPY.
    Ingest {
        #[arg(long)]
        data: PathBuf,
        /// Lines per request.
        #[arg(long, default_value_t = 50_000)]
        batch: usize,
        /// Requests in flight at once (one client, several connections).
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        /// Observations per database round in the server
        /// (VARSEL_INGEST_CHUNK_ROWS).
        #[arg(long, default_value_t = 20_000)]
        chunk_rows: usize,
    },
    /// The ProxyLogon campaign over the data set: drafting its
    /// notifications, approving them all and writing their advisories to
    /// the outbox.
    Drafting {
        #[arg(long)]
        data: PathBuf,
        /// Observation lines per ingest request.
        #[arg(long, default_value_t = 50_000)]
        batch: usize,
    },
    /// The advisory page of an organisation with 200 findings under a fixed
    /// request rate from this process (open loop), against `/healthz` under
    /// the same load.
    Advisory {
        /// Findings of the organisation.
        #[arg(long, default_value_t = 200)]
        findings: usize,
        /// Requests per second.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Seconds of load (after 2 s of warm-up).
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// The dashboard's overview, the campaign's progress page and a
    /// filtered findings list over the data set with the ProxyLogon
    /// campaign mailed, each under a fixed request rate (open loop) from a
    /// logged-in operator, against `/healthz` under the same load.
    Dashboard {
        #[arg(long)]
        data: PathBuf,
        /// Observation lines per ingest request.
        #[arg(long, default_value_t = 50_000)]
        batch: usize,
        /// Requests per second, per page.
        #[arg(long, default_value_t = 10)]
        rate: u32,
        /// Seconds of load per page (after 2 s of warm-up).
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
    /// Sends N rendered advisories through the outbox to an SMTP server,
    /// then the same messages with bare loops (lettre's stock pooled
    /// transport, and the outbox's TCP_NODELAY pool) against the same server.
    Outbox {
        /// The SMTP server, e.g. `smtp://127.0.0.1:2525` (aiosmtpd's Sink).
        #[arg(long)]
        smtp: String,
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Sends in flight per worker (VARSEL_MAIL_CONCURRENCY); default:
        /// the configured one.
        #[arg(long)]
        concurrency: Option<usize>,
    },
}

pub async fn run(settings: Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        // `cli::run` sends this here before loading settings; a caller that
        // has them gets the same.
        BenchCommand::Dataset(args) => dataset::run(&args),
        BenchCommand::Attribution { data, batch } => attribution::run(settings, &data, batch).await,
        BenchCommand::Ingest {
            data,
            batch,
            parallel,
            chunk_rows,
        } => {
            let settings = Settings {
                ingest_chunk_rows: chunk_rows,
                ..settings
            };
            ingest::run(settings, &data, batch, parallel).await
        }
        BenchCommand::Drafting { data, batch } => drafting::run(settings, &data, batch).await,
        BenchCommand::Advisory {
            findings,
            rate,
            seconds,
        } => advisory::run(settings, findings, rate, seconds).await,
        BenchCommand::Dashboard {
            data,
            batch,
            rate,
            seconds,
        } => dashboard::run(settings, &data, batch, rate, seconds).await,
        BenchCommand::Outbox {
            smtp,
            messages,
            concurrency,
        } => outbox::run(settings, &smtp, messages, concurrency).await,
    }
}

/// A fresh bench database; returns its settings and pool.
async fn fresh_database(settings: &Settings, suffix: &str) -> anyhow::Result<(Settings, PgPool)> {
    let base: PgConnectOptions = settings.database_url.expose().parse()?;
    let name = format!("{}_{suffix}", base.get_database().unwrap_or("varsel"));
    let mut admin = base.clone().database("postgres").connect().await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    let url = base.database(&name).to_url_lossy().to_string();
    let settings = Settings {
        database_url: Secret::new(url),
        ..settings.clone()
    };
    let pool = crate::db::connect(&settings).await?;
    crate::db::migrate(&pool).await?;
    Ok((settings, pool))
}

/// Imports the data set's registry CSVs.
async fn import_registry(pool: &PgPool, data: &Path) -> anyhow::Result<()> {
    let open = |name: &str| -> anyhow::Result<(String, Box<dyn std::io::Read + Send>)> {
        let path = data.join(name);
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok((name.to_owned(), Box::new(std::io::BufReader::new(file))))
    };
    let (orgs, nets) = (open("organisations.csv")?, open("networks.csv")?);
    let snapshot = tokio::task::spawn_blocking(move || {
        crate::registry::import::csv_files::read_csv(orgs, nets)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let summary = crate::registry::import::apply::apply(
        pool,
        snapshot,
        crate::registry::import::apply::Channel::Csv,
        false,
    )
    .await?;
    println!(
        "registry: {} organisations, {} networks imported ({} rejected)",
        summary.organisations.added,
        summary.networks.added,
        summary.rejected.len()
    );
    Ok(())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}
