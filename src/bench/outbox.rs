//! `varsel bench outbox`: N advisories through the real outbox to an SMTP
//! server, then, in the same run against the same server, the same rendered
//! messages sent by two bare loops with K sends in flight: lettre's stock
//! pooled `AsyncSmtpTransport` (Nagle-bound, see `mail::smtp_pool`) and our
//! own TCP_NODELAY pool, the one the outbox sends through.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use crate::campaigns::seed::{SeedName, seed_campaign};
use crate::campaigns::store;
use crate::clock::Clock;
use crate::config::{Secret, Settings};
use crate::domain::Actor;
use crate::mail::outbox::{self, ClaimedDelivery, Outbox};
use crate::mail::smtp_pool::{SmtpPool, SmtpServerConfig};
use crate::mail::{DeliveryKind, Mailer, OutgoingMail};
use crate::notifications::model::MailKind;
use crate::notifications::render::{self, Host, MailInput};
use crate::notifications::texts::MailLanguage;

pub async fn run(
    settings: Settings,
    smtp: &str,
    messages: usize,
    concurrency: Option<usize>,
) -> anyhow::Result<()> {
    anyhow::ensure!(messages > 0, "--messages must be at least 1");
    println!("machine: {}", super::machine());
    let concurrency = concurrency.unwrap_or(settings.mail_concurrency).max(1);
    let settings = Settings {
        smtp_url: Some(Secret::new(smtp.to_owned())),
        mail_concurrency: concurrency,
        outbox_workers: settings.outbox_workers.max(1),
        // Unpaced: the bench measures what the outbox can do.
        mail_rate_per_second: 0,
        mail_rate_per_domain_per_minute: 0,
        ..settings
    };
    let in_flight = concurrency * settings.outbox_workers;
    let timeout = Duration::from_secs(settings.smtp_timeout_seconds.max(1));
    let (settings, pool) = super::fresh_database(&settings, "bench_outbox").await?;
    let mailer = Arc::new(Mailer::from_settings(&settings)?);

    // Advisories as the notifications module renders them: the seed
    // campaign (with its update), 1 to 12 hosts each, both languages.
    let mut conn = pool.acquire().await?;
    let now = Utc::now();
    let campaign_id = seed_campaign(&mut conn, &Actor::Cli, SeedName::Proxylogon, now, true)
        .await
        .map_err(|e| anyhow::anyhow!("seeding the campaign: {e}"))?;
    let campaign = store::fetch(&mut conn, campaign_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let updates = store::updates(&mut conn, campaign_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(conn);
    let started = Instant::now();
    let mut mails = Vec::with_capacity(messages);
    for i in 0..messages {
        let language = if i % 3 == 0 {
            MailLanguage::En
        } else {
            MailLanguage::Nb
        };
        let hosts: Vec<Host> = (0..1 + i % 12)
            .map(|h| Host {
                finding_id: (i * 16 + h) as i64,
                ip: format!("192.0.{}.{}", (i / 250) % 256, 1 + (i + h) % 250),
                port: 443,
                protocol: "tcp".to_owned(),
                check_id: "exchange-proxylogon".to_owned(),
                state: if h == 0 && i % 10 == 0 {
                    "compromised".to_owned()
                } else {
                    "vulnerable".to_owned()
                },
                first_seen: now - chrono::Duration::days(3),
                last_seen: now - chrono::Duration::hours(2),
                product: Some("Microsoft Exchange".to_owned()),
                version: Some("15.1.2176.2".to_owned()),
                hostname: Some(format!("mail{i}.example.no")),
                evidence: None,
                not_seen_since: None,
                new: false,
            })
            .collect();
        let ticket = format!("VARSEL-2021-{i:06}");
        let link = format!("https://varsel.example.no/a/{i:08x}");
        let mail = render::render(&MailInput {
            kind: MailKind::Initial,
            language,
            campaign: &campaign,
            updates: &updates,
            ticket: &ticket,
            copy_for: None,
            link: Some((&link, now + chrono::Duration::days(30))),
            hosts: &hosts,
        })
        .map_err(|e| anyhow::anyhow!("rendering: {e}"))?;
        mails.push(OutgoingMail {
            notification_id: None,
            link_token_id: None,
            contact_id: None,
            kind: DeliveryKind::Initial,
            dedupe_key: format!("bench:{i}"),
            to: format!("sikkerhet@org{}.example.no", i % 997),
            to_name: Some(format!("Sikkerhet org {}", i % 997)),
            language: Some(language.code().to_owned()),
            subject: mail.subject,
            text: mail.text,
            html: mail.html,
            attachments: mail.attachments,
        });
    }
    let rendered_in = started.elapsed();

    let started = Instant::now();
    for chunk in mails.chunks(1000) {
        let mut tx = pool.begin().await?;
        for m in chunk {
            outbox::enqueue(&mut tx, &mailer, m, Utc::now())
                .await
                .map_err(|e| anyhow::anyhow!("enqueue: {e}"))?;
        }
        tx.commit().await?;
    }
    println!(
        "{messages} advisories rendered in {:.2} s, queued in {:.2} s",
        rendered_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    // The same rendered messages for the bare loops, as the outbox builds
    // them from the stored rows.
    let rows: Vec<ClaimedDelivery> = sqlx::query_as(
        "SELECT id, notification_id, link_token_id, contact_id, kind, recipient, recipient_name,
                message_id, subject, text_body, html_body, attachments, language,
                1 AS attempts, retry_from_attempt, created_at
           FROM deliveries ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    let mut rendered: Vec<(Envelope, Vec<u8>)> = Vec::with_capacity(rows.len());
    for d in &rows {
        let m = mailer
            .composer
            .compose(d)
            .map_err(|e| anyhow::anyhow!("composing delivery {}: {e}", d.id))?;
        rendered.push((m.envelope().clone(), m.formatted()));
    }
    let bytes: usize = rendered.iter().map(|(_, raw)| raw.len()).sum();
    println!(
        "messages: {} bytes on average (text and HTML parts{})",
        bytes / rendered.len(),
        if rows.iter().any(|d| !d.attachments.is_empty()) {
            ", some with a CSV attachment"
        } else {
            ""
        }
    );
    println!(
        "concurrency: {concurrency} sends in flight per worker x {} worker(s) = {in_flight}; \
         bare loops use {in_flight}",
        settings.outbox_workers
    );

    // 1. The outbox: the service's own worker loops.
    let outbox = Outbox::with_parts(pool.clone(), Clock::system(), mailer.clone(), &settings);
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let runner = tokio::spawn(outbox.run(cancel.clone()));
    let limit = Duration::from_secs(600);
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending')",
        )
        .fetch_one(&pool)
        .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < limit,
            "the outbox did not finish within {limit:?} ({left} left)"
        );
    }
    let outbox_secs = started.elapsed().as_secs_f64();
    cancel.cancel();
    runner.await.context("the outbox task")?;
    let (sent, attempts): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'sent'), coalesce(sum(attempts), 0)
           FROM deliveries",
    )
    .fetch_one(&pool)
    .await?;
    let outbox_rate = sent as f64 / outbox_secs;
    println!(
        "outbox: {sent} of {messages} sent in {outbox_secs:.2} s = {outbox_rate:.0} messages/s \
         ({attempts} attempts)"
    );
    anyhow::ensure!(
        sent as usize == messages,
        "not every delivery was sent: see the deliveries table of the bench database"
    );

    let rendered = Arc::new(rendered);

    // 2. lettre's stock pooled transport.
    let stock = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp)
        .map_err(|e| anyhow::anyhow!("--smtp: {e}"))?
        .timeout(Some(timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(u32::try_from(in_flight).unwrap_or(u32::MAX))
                .idle_timeout(Duration::from_secs(60)),
        )
        .build();
    let (stock_ok, stock_secs) = bare_loop(
        rendered.clone(),
        in_flight,
        move |env: Envelope, raw: Vec<u8>| {
            let stock = stock.clone();
            async move {
                stock
                    .send_raw(&env, &raw)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    let stock_rate = stock_ok as f64 / stock_secs;
    println!(
        "bare loop, lettre AsyncSmtpTransport (pool max_size {in_flight}): {stock_ok} sent in \
         {stock_secs:.2} s = {stock_rate:.0} messages/s"
    );

    // 3. The outbox's own pool, bare.
    let server = SmtpServerConfig::from_url(smtp).map_err(|e| anyhow::anyhow!("--smtp: {e}"))?;
    let nodelay = SmtpPool::new(server, timeout, in_flight, Duration::from_secs(60));
    let shared = nodelay.clone();
    let (nodelay_ok, nodelay_secs) = bare_loop(
        rendered.clone(),
        in_flight,
        move |env: Envelope, raw: Vec<u8>| {
            let pool = shared.clone();
            async move {
                pool.send(&env, &raw)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        },
    )
    .await;
    nodelay.shutdown().await;
    let nodelay_rate = nodelay_ok as f64 / nodelay_secs;
    println!(
        "bare loop, TCP_NODELAY pool (mail::smtp_pool, {in_flight} connections): {nodelay_ok} \
         sent in {nodelay_secs:.2} s = {nodelay_rate:.0} messages/s"
    );

    println!(
        "ratio outbox / stock lettre loop: {:.0} %",
        100.0 * outbox_rate / stock_rate
    );
    println!(
        "ratio outbox / nodelay bare loop: {:.0} %",
        100.0 * outbox_rate / nodelay_rate
    );
    Ok(())
}

/// Sends every message with `in_flight` tasks, each taking the next one;
/// returns how many were accepted and the seconds it took. Failures are
/// counted and the first few printed.
async fn bare_loop<F, Fut>(
    rendered: Arc<Vec<(Envelope, Vec<u8>)>>,
    in_flight: usize,
    send: F,
) -> (usize, f64)
where
    F: Fn(Envelope, Vec<u8>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (rendered, next, ok, failed, send) = (
            rendered.clone(),
            next.clone(),
            ok.clone(),
            failed.clone(),
            send.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((env, raw)) = rendered.get(i) else {
                    break;
                };
                // The clone of a few KB is noise beside a send.
                match send(env.clone(), raw.clone()).await {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) < 5 {
                            eprintln!("send failed: {e}");
                        }
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("{failed} sends failed");
    }
    (ok.load(Ordering::Relaxed), secs)
}
