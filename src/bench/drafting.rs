//! `varsel bench drafting`: the notifications of a campaign over the data
//! set. The observations go in through the HTTP API of a `varsel serve`
//! child (as in `bench ingest`), then the ProxyLogon seed is activated and
//! its drafting, an idempotent second drafting run, approving every draft
//! and writing every advisory to the outbox are timed in process, with the
//! same functions the job runner calls.

use std::path::Path;
use std::time::Instant;

use crate::app::AppState;
use crate::config::Settings;
use crate::domain::Actor;
use crate::notifications::{drafting, mailing};

pub async fn run(settings: Settings, data: &Path, batch: usize) -> anyhow::Result<()> {
    println!("machine: {}", super::machine());
    mailed_campaign(settings, data, batch, "bench_drafting").await?;
    Ok(())
}

/// The data set ingested into a fresh database `bench_<suffix>`, and the
/// ProxyLogon campaign over it drafted, approved and mailed, each step
/// timed and printed. Returns the database's settings and pool and the
/// campaign's id (for benches of what comes after).
pub(super) async fn mailed_campaign(
    settings: Settings,
    data: &Path,
    batch: usize,
    database: &str,
) -> anyhow::Result<(Settings, sqlx::PgPool, i64)> {
    let (settings, pool) = super::fresh_database(&settings, database).await?;
    super::import_registry(&pool, data).await?;
    let (_, token) =
        crate::auth::create_client(&pool, &Actor::Cli, "bench", &[crate::auth::Scope::Ingest])
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (bodies, lines) = super::ingest::batches(data, batch)?;
    let mut server = super::ingest::start_server(&settings).await?;
    let http = reqwest::Client::new();
    let (took, accepted, _) =
        super::ingest::push_all(&http, &server.base, token.expose(), &bodies, 1, "scan").await?;
    let _ = server.child.kill().await;
    let findings: i64 = sqlx::query_scalar("SELECT count(*) FROM findings")
        .fetch_one(&pool)
        .await?;
    println!("ingest: {accepted} of {lines} observations in {took:.1} s; {findings} findings");
    // As autovacuum would have by now. Only the findings: statistics taken
    // of the still empty notification tables would mislead the planner once
    // they fill.
    sqlx::query("ANALYZE findings").execute(&pool).await?;

    let state = AppState::new(
        Settings {
            job_workers: 0,
            outbox_workers: 0,
            ..settings.clone()
        },
        pool.clone(),
    )?;
    let now = state.clock.now();
    let mut conn = pool.acquire().await?;
    let campaign = crate::campaigns::seed::seed(&mut conn, &Actor::Cli, now, false).await?;
    crate::campaigns::store::activate(&mut conn, &Actor::Cli, campaign, now).await?;
    let matching: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM campaigns c JOIN findings f ON {}
          WHERE c.id = $1 AND f.current AND f.organisation_id IS NOT NULL",
        crate::campaigns::matching::MATCH_SQL
    ))
    .bind(campaign)
    .fetch_one(&mut *conn)
    .await?;
    println!("campaign {campaign}: {matching} attributed findings match its rule");

    let started = Instant::now();
    let drafted = drafting::draft(&state, campaign).await?;
    let draft = started.elapsed().as_secs_f64();
    println!(
        "draft:         {draft:.2} s: {} notifications, {} findings",
        drafted.notifications, drafted.findings
    );
    let started = Instant::now();
    let again = drafting::draft(&state, campaign).await?;
    println!(
        "draft again:   {:.2} s: {} notifications, {} findings (nothing new)",
        started.elapsed().as_secs_f64(),
        again.notifications,
        again.findings
    );
    let started = Instant::now();
    let approved = mailing::approve(
        &mut conn,
        &Actor::Cli,
        campaign,
        &mailing::Selection::All,
        now,
    )
    .await?;
    println!(
        "approve all:   {:.2} s: {} notifications",
        started.elapsed().as_secs_f64(),
        approved.len()
    );
    let started = Instant::now();
    mailing::mail_approved(&state, campaign).await?;
    let mailed = started.elapsed().as_secs_f64();
    let (deliveries, links, no_contact): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM deliveries),
                (SELECT count(*) FROM notification_tokens),
                (SELECT count(*) FROM notifications WHERE status = 'no_contact')",
    )
    .fetch_one(&mut *conn)
    .await?;
    println!(
        "mail approved: {mailed:.2} s: {deliveries} deliveries queued ({:.0}/s), {links} links, \
         {no_contact} notifications without a contact",
        deliveries as f64 / mailed
    );
    println!(
        "total from activation to every advisory queued: {:.1} s",
        draft + mailed
    );
    Ok((settings, pool, campaign))
}
