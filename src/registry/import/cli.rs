//! `varsel import …`.

use crate::cli::ImportCommand;
use crate::config::Settings;

pub async fn run(_settings: Settings, _cmd: ImportCommand) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
