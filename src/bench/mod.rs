//! Benchmarks run as `varsel bench …` on a data set from gen_dataset.py.

use clap::Subcommand;

use crate::config::Settings;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {}

pub async fn run(_settings: Settings, cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {}
}
