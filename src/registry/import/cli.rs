//! `varsel import ripe|csv`: reads the files with a progress bar (bytes read
//! of the total), applies them in one transaction, prints a summary.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::apply::{self, Channel, ImportSummary};
use super::input::open_input_with;
use crate::cli::{ImportCommand, ImportOptions};
use crate::config::Settings;

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:12} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn open(path: &Path, bar: &ProgressBar) -> anyhow::Result<Box<dyn std::io::BufRead + Send>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    open_input_with(bar.wrap_read(file)).with_context(|| format!("cannot read {}", path.display()))
}

fn total_size(paths: &[&Path]) -> u64 {
    paths
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

pub async fn run(settings: Settings, cmd: ImportCommand) -> anyhow::Result<()> {
    let pool = crate::db::connect(&settings).await?;
    crate::db::migrate(&pool).await?;
    let (snapshot, channel, options) = match cmd {
        ImportCommand::Ripe {
            country,
            files,
            options,
        } => {
            let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
            let bar = progress_bar(total_size(&paths));
            bar.set_message("reading");
            let mut inputs = Vec::with_capacity(files.len());
            for path in &files {
                inputs.push((path.display().to_string(), open(path, &bar)?));
            }
            let country = country.clone();
            let snapshot =
                tokio::task::spawn_blocking(move || super::ripe::read_ripe(inputs, &country))
                    .await?
                    .context("reading the RIPE files")?;
            bar.finish_and_clear();
            (snapshot, Channel::Ripe, options)
        }
        ImportCommand::Csv {
            organisations,
            networks,
            options,
        } => {
            let bar = progress_bar(total_size(&[&organisations, &networks]));
            bar.set_message("reading");
            let orgs = (
                organisations.display().to_string(),
                open(&organisations, &bar)?,
            );
            let nets = (networks.display().to_string(), open(&networks, &bar)?);
            let snapshot = tokio::task::spawn_blocking(move || {
                super::csv_files::read_csv(
                    (orgs.0, Box::new(orgs.1) as Box<dyn std::io::Read + Send>),
                    (nets.0, Box::new(nets.1) as Box<dyn std::io::Read + Send>),
                )
            })
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            bar.finish_and_clear();
            (snapshot, Channel::Csv, options)
        }
    };
    let spinner = ProgressBar::new_spinner();
    spinner.set_message("applying to the registry");
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let summary = apply::apply(&pool, snapshot, channel, options.dry_run).await?;
    spinner.finish_and_clear();
    // The import enqueued late attribution in its transaction; a serving
    // instance runs it.
    print_summary(&summary, &options)?;
    Ok(())
}

fn print_summary(summary: &ImportSummary, options: &ImportOptions) -> anyhow::Result<()> {
    if options.json {
        println!("{}", serde_json::to_string_pretty(summary)?);
        return Ok(());
    }
    if summary.dry_run {
        println!("Dry run: nothing was stored. The import would make these changes:");
    }
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>10}",
        "", "added", "changed", "ended", "unchanged"
    );
    for (name, c) in [
        ("organisations", summary.organisations),
        ("contacts", summary.contacts),
        ("networks", summary.networks),
        ("ASNs", summary.asns),
    ] {
        println!(
            "{name:<14} {:>8} {:>8} {:>8} {:>10}",
            c.added, c.changed, c.ended, c.unchanged
        );
    }
    println!("skipped: {}", summary.skipped.values().sum::<u64>());
    for (reason, n) in &summary.skipped {
        println!("  {n:>8}  {reason}");
    }
    if !summary.inferred.is_empty() {
        println!("inferred: {}", summary.inferred.values().sum::<u64>());
        for (reason, n) in &summary.inferred {
            println!("  {n:>8}  {reason}");
        }
    }
    println!("rejected: {}", summary.rejected.len());
    for r in summary.rejected.iter().take(50) {
        if r.line > 0 {
            println!("  {}:{}: {}", r.file, r.line, r.reason);
        } else {
            println!("  {}: {}", r.file, r.reason);
        }
    }
    if summary.rejected.len() > 50 {
        println!(
            "  … and {} more (use --json for all)",
            summary.rejected.len() - 50
        );
    }
    Ok(())
}
