//! The database connection: creating the database when it is missing,
//! applying the embedded migrations, the readiness check, and bulk writes
//! with COPY ([`copy`]) and the dense id ranges they use ([`ids`]).

pub mod copy;
pub mod ids;

use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::config::Settings;

pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Connects to the configured database, creating it first if it is missing.
/// Migrations are not applied here: see [`migrate`].
pub async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    let url = settings.database_url.expose();
    if !Postgres::database_exists(url)
        .await
        .context("cannot reach PostgreSQL to check that the database exists")?
    {
        tracing::info!("database does not exist yet; creating it");
        // Two instances starting at once may race here; the loser sees
        // "already exists", which is fine.
        if let Err(e) = Postgres::create_database(url).await {
            if !Postgres::database_exists(url).await.unwrap_or(false) {
                return Err(e).context("cannot create the database");
            }
        }
    }
    let options: PgConnectOptions = url
        .parse()
        .context("DATABASE_URL is not a PostgreSQL URL")?;
    pool_with(options, settings.db_max_connections).await
}

pub async fn pool_with(options: PgConnectOptions, max_connections: u32) -> anyhow::Result<PgPool> {
    // JIT compilation pays off for long analytical queries; every query here
    // is short, and compiling cost more than running them (100 ms against
    // 50 ms for an ingest statement).
    let options = options.application_name("varsel").options([("jit", "off")]);
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .context("cannot connect to the database")
}

/// Applies pending migrations. Safe to run from several instances at once:
/// sqlx takes an advisory lock.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await.context("applying migrations")?;
    Ok(())
}

/// Ready means: the database answers and every embedded migration is applied.
pub async fn ready(pool: &PgPool) -> Result<(), String> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await
            .map_err(|_| "database unreachable or not migrated".to_owned())?;
    let missing = MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count();
    if missing > 0 {
        return Err(format!("{missing} migration(s) not applied"));
    }
    Ok(())
}
