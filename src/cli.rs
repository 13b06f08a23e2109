//! The command line of the one `varsel` binary: serving, migrating, tokens,
//! registry imports, lookups, seed campaigns and benchmarks.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::auth::Scope;
use crate::config::Settings;
use crate::domain::Actor;

#[derive(Debug, Parser)]
#[command(
    name = "varsel",
    version,
    about = "National vulnerability notification service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (creates and migrates the database if needed).
    Serve,
    /// Create the database if missing and apply migrations, then exit.
    Migrate,
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the dashboard's operators.
    #[command(subcommand)]
    User(UserCommand),
    /// Import the registry from files.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Attribute one address from the command line.
    Lookup {
        ip: std::net::IpAddr,
        /// RFC 3339 time; default now.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        asn: Option<u32>,
    },
    /// Campaigns (advisories).
    #[command(subcommand)]
    Campaign(CampaignCommand),
    /// Benchmarks, and the data set they run on (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API client; its token is printed once, alone on the last
    /// line of standard output.
    Create {
        #[arg(long)]
        name: String,
        /// Repeat for several scopes.
        #[arg(long = "scope", value_enum, required = true)]
        scopes: Vec<Scope>,
    },
    /// List API clients.
    List,
    /// Revoke an API client's token.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add an operator. The password is asked for (twice, not echoed) on a
    /// terminal, or read as the first line of standard input; never an
    /// argument, which other users could see.
    Add {
        email: String,
        #[arg(long, value_enum)]
        role: crate::dashboard::operators::Role,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CampaignCommand {
    /// Store an example campaign that ships with Varsel, as a draft, and
    /// print its id alone on standard output. Seeding again changes nothing
    /// and prints the same id.
    Seed {
        #[arg(value_enum)]
        name: crate::campaigns::seed::SeedName,
        /// Also activate it and post its dated update.
        #[arg(long)]
        with_update: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// RIPE database split files (ripe.db.inetnum, …inet6num, …organisation,
    /// …role, …aut-num), gzip or plain, filtered by country.
    Ripe {
        #[arg(long, default_value = "NO")]
        country: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        options: ImportOptions,
    },
    /// organisations.csv and networks.csv.
    Csv {
        #[arg(long)]
        organisations: PathBuf,
        #[arg(long)]
        networks: PathBuf,
        #[command(flatten)]
        options: ImportOptions,
    },
}

#[derive(Debug, Args)]
pub struct ImportOptions {
    /// Read and compare, report what would change, store nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    // A data set is made from the arguments alone: no configuration to load
    // (or to fail on), no database to reach.
    if let Command::Bench(crate::bench::BenchCommand::Dataset(args)) = &cli.command {
        return crate::bench::dataset::run(args);
    }
    let settings = Settings::load()?;
    match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let pool = crate::db::connect(&settings).await?;
            crate::db::migrate(&pool).await?;
            println!("database is migrated");
            Ok(())
        }
        Command::Token(cmd) => token(settings, cmd).await,
        Command::User(cmd) => user(settings, cmd).await,
        Command::Import(cmd) => crate::registry::import::cli::run(settings, cmd).await,
        Command::Lookup { ip, at, asn } => {
            let pool = crate::db::connect(&settings).await?;
            crate::db::migrate(&pool).await?;
            let table = crate::attribution::load(&pool).await?;
            let at = at.unwrap_or_else(chrono::Utc::now);
            let m = table.attribute(ip, at.timestamp_micros(), asn);
            let answer = crate::attribution::Attribution::from_match(ip, at, asn, m);
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
        Command::Campaign(cmd) => campaign(settings, cmd).await,
        Command::Bench(cmd) => crate::bench::run(settings, cmd).await,
    }
}

async fn user(settings: Settings, cmd: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add { email, role, name } = cmd;
    let password = read_password()?;
    let pool = crate::db::connect(&settings).await?;
    crate::db::migrate(&pool).await?;
    let mut conn = pool.acquire().await?;
    let id = crate::dashboard::operators::create(
        &mut conn,
        &Actor::Cli,
        &email,
        name.as_deref(),
        role,
        &password,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("operator {id} added ({})", role.as_str());
    Ok(())
}

/// A new password: from a prompt on a terminal (asked twice), else the
/// first line of standard input.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let again = rpassword::prompt_password("Again: ")?;
        anyhow::ensure!(first == again, "the two passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

async fn campaign(settings: Settings, cmd: CampaignCommand) -> anyhow::Result<()> {
    let pool = crate::db::connect(&settings).await?;
    crate::db::migrate(&pool).await?;
    match cmd {
        CampaignCommand::Seed { name, with_update } => {
            let mut conn = pool.acquire().await?;
            let now = crate::clock::Clock::system().now();
            let id = crate::campaigns::seed::seed_campaign(
                &mut conn,
                &Actor::Cli,
                name,
                now,
                with_update,
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{id}");
        }
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let pool = crate::db::connect(&settings).await?;
    crate::db::migrate(&pool).await?;
    let app = crate::app::Application::build(settings, pool).await?;
    tracing::info!(addr = %app.local_addr()?, "varsel is listening");
    app.run_until(crate::app::shutdown_signal()).await
}

async fn token(settings: Settings, cmd: TokenCommand) -> anyhow::Result<()> {
    let pool = crate::db::connect(&settings).await?;
    crate::db::migrate(&pool).await?;
    match cmd {
        TokenCommand::Create { name, scopes } => {
            let (info, token) = crate::auth::create_client(&pool, &Actor::Cli, &name, &scopes)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let scopes: Vec<&str> = info.scopes.iter().map(|s| s.as_str()).collect();
            println!(
                "Created API client {} ({}) with scope {}. The token is shown only now:",
                info.id,
                info.name,
                scopes.join(", ")
            );
            println!("{}", token.expose());
        }
        TokenCommand::List => {
            let clients = crate::auth::list_clients(&pool)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{:>6}  {:<24} {:<20} {:<25} status",
                "id", "name", "scopes", "created"
            );
            for c in clients {
                let scopes: Vec<&str> = c.scopes.iter().map(|s| s.as_str()).collect();
                let status = match c.revoked_at {
                    Some(t) => format!("revoked {}", t.to_rfc3339()),
                    None => "active".to_owned(),
                };
                println!(
                    "{:>6}  {:<24} {:<20} {:<25} {status}",
                    c.id,
                    c.name,
                    scopes.join(","),
                    c.created_at.format("%Y-%m-%d %H:%M:%S UTC")
                );
            }
        }
        TokenCommand::Revoke { id } => {
            let found = crate::auth::revoke_client(&pool, id, &Actor::Cli)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !found {
                anyhow::bail!("no API client {id}");
            }
            println!("API client {id} is revoked");
        }
    }
    Ok(())
}
