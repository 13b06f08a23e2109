//! The outbox: durable, leased, retried delivery of rendered messages.
//!
//! - [`enqueue`] writes a `deliveries` row inside the caller's transaction,
//!   at most once per dedupe key, and wakes the workers at commit.
//! - [`claim`] leases due rows (`status = 'sending'`, `lease_until`) in a
//!   statement of its own, so no transaction or row lock is held while
//!   talking SMTP; a row whose lease ran out (its worker died or hung) is
//!   due again.
//! - [`finish`] records the outcome, guarded by the attempt it claimed so a
//!   worker whose lease was taken over cannot overwrite the new owner: sent;
//!   back to queued with exponential backoff (transient); or failed, at once
//!   for a 5xx (which also marks the contact's delivery health) or after
//!   `mail_max_attempts`. Every row ends sent or failed; none is deleted,
//!   and `delivery_attempts` keeps each attempt with the server's reply.
//! - [`retry`]: an operator puts a failed delivery back in the queue.
//! - [`Outbox`]: the worker loops (LISTEN plus a poll for retries coming
//!   due, bounded concurrency, global and per-domain rate limits, graceful
//!   stop) and [`Outbox::send_due`] for tests and benches.
//!
//! Every time that decides anything is the business clock's, passed to SQL.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use sqlx::postgres::PgListener;
use sqlx::types::Json;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::message::StoredAttachment;
use super::transport::SendOutcome;
use super::{Mailer, OutgoingMail};
use crate::app::AppState;
use crate::audit;
use crate::clock::Clock;
use crate::config::{Secret, Settings};
use crate::domain::{Actor, DomainError, DomainResult};
use crate::notifications::tokens;

/// The channel `enqueue` and `retry` notify at commit.
pub const CHANNEL: &str = "varsel_outbox";

/// Queues `mail` in the caller's transaction: it is sent only if that
/// commits. Returns the delivery's id, or None when a delivery with the same
/// dedupe key exists already (nothing is queued twice). `mailer` supplies
/// the Message-ID's domain and refuses a message that could never be built.
pub async fn enqueue(
    conn: &mut PgConnection,
    mailer: &Mailer,
    mail: &OutgoingMail,
    now: DateTime<Utc>,
) -> DomainResult<Option<i64>> {
    mailer.composer.check(mail)?;
    let message_id = format!(
        "<{}@{}>",
        hex::encode(rand::random::<[u8; 16]>()),
        mailer.message_id_domain()
    );
    let attachments: Vec<StoredAttachment> = mail
        .attachments
        .iter()
        .map(StoredAttachment::from)
        .collect();
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO deliveries (notification_id, contact_id, recipient, recipient_name, kind,
                                 dedupe_key, message_id, subject, text_body, html_body,
                                 attachments, language, status, next_attempt_at, created_at,
                                 link_token_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $13, $14)
         ON CONFLICT ON CONSTRAINT deliveries_dedupe_key DO NOTHING
         RETURNING id",
    )
    .bind(mail.notification_id)
    .bind(mail.contact_id)
    .bind(mail.to.trim())
    .bind(&mail.to_name)
    .bind(mail.kind.as_str())
    .bind(&mail.dedupe_key)
    .bind(&message_id)
    .bind(&mail.subject)
    .bind(&mail.text)
    .bind(&mail.html)
    .bind(Json(&attachments))
    .bind(&mail.language)
    .bind(now)
    .bind(mail.link_token_id)
    .fetch_optional(&mut *conn)
    .await?;
    if id.is_some() {
        notify(conn).await?;
    }
    Ok(id)
}

/// Wakes the workers of every instance when the transaction commits.
async fn notify(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(CHANNEL)
        .execute(conn)
        .await?;
    Ok(())
}

/// A delivery a worker has leased: everything needed to send it, and the
/// attempt it is (the guard of [`finish`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub notification_id: Option<i64>,
    /// The advisory link whose token goes where the body has
    /// `notifications::tokens::PLACEHOLDER`.
    pub link_token_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub kind: String,
    pub recipient: String,
    pub recipient_name: Option<String>,
    pub message_id: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    #[sqlx(json)]
    pub attachments: Vec<StoredAttachment>,
    pub language: Option<String>,
    /// This attempt's number (attempts so far, this one included).
    pub attempts: i32,
    pub retry_from_attempt: i32,
    pub created_at: DateTime<Utc>,
}

impl ClaimedDelivery {
    /// The recipient's domain, lower case, for the per-domain rate limit.
    pub fn recipient_domain(&self) -> String {
        self.recipient
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default()
    }
}

/// Leases up to `limit` deliveries due by `due_by` (queued with
/// `next_attempt_at <= due_by`, or sending with a lease that ran out by
/// then) until `now + lease`, counts the attempt and records its start. One
/// statement, committed at once: nothing stays locked while sending. A row
/// taken over from an expired lease marks that attempt `lost`.
///
/// The commit does not wait for the disk (`synchronous_commit = off`): a
/// claim lost in a crash leaves its row queued, and its message, if it was
/// sent, is sent again, exactly as when a worker dies after a durable claim
/// (the lease runs out). What the send did is recorded by [`finish`], whose
/// commit waits, and makes every claim before it durable too.
pub async fn claim(
    pool: &PgPool,
    now: DateTime<Utc>,
    due_by: DateTime<Utc>,
    lease: chrono::Duration,
    limit: usize,
) -> Result<Vec<ClaimedDelivery>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    // Expired leases first, then what is due, each read in index order: one
    // condition with OR would make PostgreSQL fetch and sort every due row
    // on every claim (10 000 queued: milliseconds per message).
    let claimed = sqlx::query_as(
        "WITH expired AS (
             SELECT id, status AS was FROM deliveries
              WHERE status = 'sending' AND lease_until <= $2
              ORDER BY lease_until
              LIMIT $4
              FOR UPDATE SKIP LOCKED
         ), due AS (
             SELECT id, status AS was FROM deliveries
              WHERE status = 'queued' AND next_attempt_at <= $2
              ORDER BY next_attempt_at
              LIMIT $4
              FOR UPDATE SKIP LOCKED
         ), picked AS (
             SELECT * FROM expired UNION ALL SELECT * FROM due LIMIT $4
         ), claimed AS (
             UPDATE deliveries d
                SET status = 'sending',
                    lease_until = $1 + make_interval(secs => $3),
                    attempts = d.attempts + 1
               FROM picked
              WHERE d.id = picked.id
          RETURNING d.id, d.notification_id, d.link_token_id, d.contact_id, d.kind, d.recipient, d.recipient_name,
                    d.message_id, d.subject, d.text_body, d.html_body, d.attachments, d.language,
                    d.attempts, d.retry_from_attempt, d.created_at, picked.was
         ), lost AS (
             UPDATE delivery_attempts a
                SET outcome = 'lost', finished_at = $1
               FROM claimed c
              WHERE c.was = 'sending' AND a.delivery_id = c.id
                AND a.attempt = c.attempts - 1 AND a.outcome IS NULL
         ), started AS (
             INSERT INTO delivery_attempts (delivery_id, attempt, started_at)
             SELECT id, attempts, $1 FROM claimed
         )
         SELECT id, notification_id, link_token_id, contact_id, kind, recipient, recipient_name, message_id,
                subject, text_body, html_body, attachments, language, attempts,
                retry_from_attempt, created_at
           FROM claimed",
    )
    .bind(now)
    .bind(due_by)
    .bind(lease.num_milliseconds() as f64 / 1000.0)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(claimed)
}

/// What [`finish`] did with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    Sent,
    /// Back in the queue for a later attempt.
    Requeued,
    Failed,
    /// The lease had run out and another worker owns the row now: only this
    /// attempt's record was written.
    LeaseLost,
}

/// How transient failures are retried.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            max_attempts: settings.mail_max_attempts.max(1),
            base: Duration::from_secs(settings.mail_retry_base_seconds.max(1)),
            cap: Duration::from_secs(settings.mail_retry_cap_seconds.max(1)),
        }
    }
}

/// Records the outcome of the attempt `d` claimed, in one transaction.
/// Transient: queued again at `now + least(cap, base * 2^(n-1))` (n: this
/// attempt's number in its series), or failed once the series has
/// `max_attempts`. Permanent: failed, and a 5xx reply marks the contact's
/// delivery health (`last_bounce_at`, `last_failure`).
pub async fn finish(
    pool: &PgPool,
    d: &ClaimedDelivery,
    outcome: &SendOutcome,
    policy: &RetryPolicy,
    now: DateTime<Utc>,
) -> Result<Finished, sqlx::Error> {
    let code = outcome.code().map(i32::from);
    let reply = outcome.reply();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE delivery_attempts
            SET finished_at = $3, outcome = $4, reply_code = $5, reply = $6
          WHERE delivery_id = $1 AND attempt = $2",
    )
    .bind(d.id)
    .bind(d.attempts)
    .bind(now)
    .bind(outcome.as_str())
    .bind(code)
    .bind(reply)
    .execute(&mut *tx)
    .await?;
    let finished = match outcome {
        SendOutcome::Sent { .. } => {
            let done = sqlx::query(
                "UPDATE deliveries
                    SET status = 'sent', sent_at = $3, lease_until = NULL,
                        last_reply_code = $4, last_reply = $5
                  WHERE id = $1 AND status = 'sending' AND attempts = $2",
            )
            .bind(d.id)
            .bind(d.attempts)
            .bind(now)
            .bind(code)
            .bind(reply)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 1 {
                after_outcome(&mut tx, d, true, reply, now).await?;
                Finished::Sent
            } else {
                Finished::LeaseLost
            }
        }
        SendOutcome::Transient { .. } => {
            let status: Option<String> = sqlx::query_scalar(
                "UPDATE deliveries
                    SET status = CASE WHEN attempts - retry_from_attempt >= $3
                                      THEN 'failed' ELSE 'queued' END,
                        failed_at = CASE WHEN attempts - retry_from_attempt >= $3 THEN $4 END,
                        next_attempt_at = CASE WHEN attempts - retry_from_attempt >= $3
                            THEN next_attempt_at
                            ELSE $4 + make_interval(secs => least($6::float8,
                                $5::float8 * power(2::float8,
                                    least(attempts - retry_from_attempt - 1, 60)))) END,
                        lease_until = NULL, last_reply_code = $7, last_reply = $8
                  WHERE id = $1 AND status = 'sending' AND attempts = $2
              RETURNING status",
            )
            .bind(d.id)
            .bind(d.attempts)
            .bind(i32::try_from(policy.max_attempts).unwrap_or(i32::MAX))
            .bind(now)
            .bind(policy.base.as_secs_f64())
            .bind(policy.cap.as_secs_f64())
            .bind(code)
            .bind(reply)
            .fetch_optional(&mut *tx)
            .await?;
            match status.as_deref() {
                Some("failed") => {
                    after_outcome(&mut tx, d, false, reply, now).await?;
                    Finished::Failed
                }
                Some(_) => Finished::Requeued,
                None => Finished::LeaseLost,
            }
        }
        SendOutcome::Permanent { .. } => {
            let failed: Option<Option<i64>> = sqlx::query_scalar(
                "UPDATE deliveries
                    SET status = 'failed', failed_at = $3, lease_until = NULL,
                        last_reply_code = $4, last_reply = $5
                  WHERE id = $1 AND status = 'sending' AND attempts = $2
              RETURNING contact_id",
            )
            .bind(d.id)
            .bind(d.attempts)
            .bind(now)
            .bind(code)
            .bind(reply)
            .fetch_optional(&mut *tx)
            .await?;
            match failed {
                Some(contact) => {
                    // Only a server's refusal says something about the
                    // address; a message we could not build does not.
                    if let (Some(contact), Some(_)) = (contact, code) {
                        sqlx::query(
                            "UPDATE contacts SET last_bounce_at = $2, last_failure = $3
                              WHERE id = $1",
                        )
                        .bind(contact)
                        .bind(now)
                        .bind(reply)
                        .execute(&mut *tx)
                        .await?;
                    }
                    after_outcome(&mut tx, d, false, reply, now).await?;
                    Finished::Failed
                }
                None => Finished::LeaseLost,
            }
        }
    };
    tx.commit().await?;
    Ok(finished)
}

/// Called in the transaction that records a delivery as sent or as failed
/// for good, so that what depends on it commits with that fact or not at
/// all: the notification's timeline and status.
async fn after_outcome(
    tx: &mut PgConnection,
    d: &ClaimedDelivery,
    sent: bool,
    reply: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    match d.notification_id {
        Some(n) => {
            crate::notifications::mailing::on_delivery_outcome(tx, n, d.id, sent, reply, now).await
        }
        None => Ok(()),
    }
}

/// Gives back a claim that was not attempted (a rate limit said wait): the
/// row is queued again for `at`, its attempt count and record undone.
pub async fn put_back(
    pool: &PgPool,
    d: &ClaimedDelivery,
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let n: Option<i64> = sqlx::query_scalar(
        "WITH back AS (
             UPDATE deliveries
                SET status = 'queued', lease_until = NULL, attempts = attempts - 1,
                    next_attempt_at = $3
              WHERE id = $1 AND status = 'sending' AND attempts = $2
          RETURNING id
         ), undone AS (
             DELETE FROM delivery_attempts
              WHERE delivery_id IN (SELECT id FROM back) AND attempt = $2
         )
         SELECT count(*) FROM back",
    )
    .bind(d.id)
    .bind(d.attempts)
    .bind(at)
    .fetch_optional(pool)
    .await?;
    Ok(n.unwrap_or(0) > 0)
}

/// An operator puts a failed delivery back in the queue, due at once. Its
/// attempts so far stay counted (the timeline keeps them); the new series
/// gets `mail_max_attempts` of its own and starts from the base backoff.
pub async fn retry(
    conn: &mut PgConnection,
    actor: &Actor,
    delivery_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let attempts: Option<i32> = sqlx::query_scalar(
        "UPDATE deliveries
            SET status = 'queued', next_attempt_at = $2, failed_at = NULL,
                retry_from_attempt = attempts
          WHERE id = $1 AND status = 'failed'
      RETURNING attempts",
    )
    .bind(delivery_id)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(attempts) = attempts else {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM deliveries WHERE id = $1")
                .bind(delivery_id)
                .fetch_optional(&mut *tx)
                .await?;
        return Err(match status {
            None => DomainError::not_found(format!("delivery {delivery_id}")),
            Some(status) => DomainError::conflict(format!(
                "delivery {delivery_id} is {status}; only a failed delivery can be retried"
            )),
        });
    };
    notify(&mut tx).await?;
    audit::commit(
        tx,
        actor,
        "delivery.retry",
        &format!("delivery:{delivery_id}"),
        serde_json::json!({ "attempts_before": attempts }),
    )
    .await?;
    Ok(())
}

/// Queues a new copy of a delivery that was sent or failed, in the caller's
/// transaction: the same message (same link, same parts) to the same
/// recipient, with a Message-ID of its own and attempts of its own. For "we
/// never got it" after the mail server took it. Refused while the delivery
/// is still on its way, or when its link no longer opens (the copy would
/// carry a dead link: reissue the link instead). Returns the copy's id.
pub async fn queue_copy(
    conn: &mut PgConnection,
    delivery_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<i64> {
    let found: Option<(String, Option<bool>)> = sqlx::query_as(
        "SELECT d.status, t.revoked_at IS NULL AND t.expires_at > $2
           FROM deliveries d LEFT JOIN notification_tokens t ON t.id = d.link_token_id
          WHERE d.id = $1
            FOR UPDATE OF d",
    )
    .bind(delivery_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((status, link_alive)) = found else {
        return Err(DomainError::not_found(format!("delivery {delivery_id}")));
    };
    if !matches!(status.as_str(), "sent" | "failed") {
        return Err(DomainError::conflict(format!(
            "delivery {delivery_id} is {status}; only a sent or failed delivery can be resent"
        )));
    }
    if link_alive == Some(false) {
        return Err(DomainError::conflict(format!(
            "the advisory link in delivery {delivery_id} is revoked or expired; \
             reissue the link instead of resending a dead one"
        )));
    }
    // The copy's Message-ID is on the original's domain (the From address's).
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO deliveries (notification_id, contact_id, recipient, recipient_name, kind,
                                 dedupe_key, message_id, subject, text_body, html_body,
                                 attachments, language, status, next_attempt_at, created_at,
                                 link_token_id)
         SELECT notification_id, contact_id, recipient, recipient_name, kind,
                'resend:' || id || ':' || $2, '<' || $2 || '@' || split_part(message_id, '@', 2),
                subject, text_body, html_body, attachments, language, 'queued', $3, $3,
                link_token_id
           FROM deliveries WHERE id = $1
      RETURNING id",
    )
    .bind(delivery_id)
    .bind(hex::encode(rand::random::<[u8; 16]>()))
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    notify(conn).await?;
    Ok(id)
}

/// A delivery's message as it is stored, the parts it was built from: what
/// the recipient got, but for the advisory link's token, which is kept
/// nowhere (the body holds a placeholder there; see
/// `notifications::tokens`).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredMessage {
    pub id: i64,
    pub notification_id: Option<i64>,
    pub recipient: String,
    pub recipient_name: Option<String>,
    pub message_id: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    #[sqlx(json)]
    pub attachments: Vec<StoredAttachment>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// One delivery's message.
pub async fn message(conn: &mut PgConnection, id: i64) -> DomainResult<StoredMessage> {
    sqlx::query_as(
        "SELECT id, notification_id, recipient, recipient_name, message_id, subject, text_body,
                html_body, attachments, created_at, sent_at
           FROM deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| DomainError::not_found(format!("delivery {id}")))
}

/// The worker side of the outbox: claims due deliveries and sends them.
/// Cheap to clone; clones share the rate limits.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    link_secret: Secret,
    clock: Clock,
    mailer: Arc<Mailer>,
    retry: RetryPolicy,
    lease: chrono::Duration,
    concurrency: usize,
    workers: usize,
    poll: Duration,
    global: Option<DefaultDirectRateLimiter>,
    per_domain: Option<DefaultKeyedRateLimiter<String>>,
}

/// What happened to one claimed delivery.
enum Handled {
    Attempted,
    /// Put back by the per-domain rate limit, not attempted.
    Deferred,
}

impl Outbox {
    pub fn new(state: &AppState) -> Self {
        Self::with_parts(
            state.pool.clone(),
            state.clock.clone(),
            state.mailer.clone(),
            &state.settings,
        )
    }

    pub fn with_parts(
        pool: PgPool,
        clock: Clock,
        mailer: Arc<Mailer>,
        settings: &Settings,
    ) -> Self {
        let lease_seconds = i64::try_from(settings.mail_lease_seconds.max(1)).unwrap_or(i64::MAX);
        Self {
            inner: Arc::new(Inner {
                pool,
                link_secret: settings.link_secret(),
                clock,
                mailer,
                retry: RetryPolicy::from_settings(settings),
                lease: chrono::Duration::try_seconds(lease_seconds)
                    .unwrap_or(chrono::Duration::hours(1)),
                concurrency: settings.mail_concurrency.max(1),
                workers: settings.outbox_workers,
                poll: Duration::from_secs(settings.mail_poll_seconds.max(1)),
                global: NonZeroU32::new(settings.mail_rate_per_second)
                    .map(|n| RateLimiter::direct(Quota::per_second(n))),
                per_domain: NonZeroU32::new(settings.mail_rate_per_domain_per_minute)
                    .map(|n| RateLimiter::keyed(Quota::per_minute(n))),
            }),
        }
    }

    /// The worker loops (`outbox_workers` of them) until `cancel`: then no
    /// more claims, the sends in flight finish, and it returns.
    pub async fn run(self, cancel: CancellationToken) {
        let (wake_tx, wake_rx) = watch::channel(0u64);
        let mut tasks = JoinSet::new();
        tasks.spawn(listen(self.inner.pool.clone(), wake_tx, cancel.clone()));
        // Whoever runs it wants it to send: `outbox_workers = 0` means the
        // application does not start it at all.
        for _ in 0..self.inner.workers.max(1) {
            tasks.spawn(self.clone().work(cancel.clone(), wake_rx.clone()));
        }
        tracing::info!(
            workers = self.inner.workers.max(1),
            concurrency = self.inner.concurrency,
            "outbox is running"
        );
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "an outbox task failed");
            }
        }
        tracing::info!("outbox stopped");
    }

    /// Sends everything due now (and what falls due while it runs, up to
    /// this moment: retries it schedules are later), `mail_concurrency` at a
    /// time, and returns when none is left in flight. Returns the number of
    /// attempts made (sent, requeued or failed); deliveries the per-domain
    /// limit put back are not counted.
    pub async fn send_due(&self) -> anyhow::Result<usize> {
        let due_by = self.inner.clock.now();
        let semaphore = Arc::new(Semaphore::new(self.inner.concurrency));
        let mut inflight: JoinSet<Handled> = JoinSet::new();
        let mut attempted = 0;
        loop {
            let free = semaphore.available_permits();
            if free > 0 {
                let now = self.inner.clock.now();
                let batch = claim(&self.inner.pool, now, due_by, self.inner.lease, free).await?;
                let empty = batch.is_empty();
                self.dispatch(batch, &semaphore, &mut inflight);
                if empty && inflight.is_empty() {
                    break;
                }
                if !empty {
                    continue;
                }
            }
            match inflight.join_next().await {
                Some(Ok(Handled::Attempted)) => attempted += 1,
                Some(Ok(Handled::Deferred)) => {}
                Some(Err(e)) => return Err(anyhow::anyhow!("an outbox send failed: {e}")),
                None => {}
            }
        }
        Ok(attempted)
    }

    /// One worker loop: claim as many as there are free slots, wait for a
    /// slot, a wake-up (new mail), the poll tick (retries falling due) or
    /// the stop.
    async fn work(self, cancel: CancellationToken, mut wake: watch::Receiver<u64>) {
        let semaphore = Arc::new(Semaphore::new(self.inner.concurrency));
        let mut inflight: JoinSet<Handled> = JoinSet::new();
        let mut tick = tokio::time::interval(self.inner.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listening = true;
        loop {
            while let Some(r) = inflight.try_join_next() {
                report(r);
            }
            if cancel.is_cancelled() {
                break;
            }
            let free = semaphore.available_permits();
            if free > 0 {
                // Anything committed before this claim is seen by it.
                wake.mark_unchanged();
                let now = self.inner.clock.now();
                match claim(&self.inner.pool, now, now, self.inner.lease, free).await {
                    Ok(batch) => {
                        let full = batch.len() == free;
                        self.dispatch(batch, &semaphore, &mut inflight);
                        if full {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming deliveries failed");
                        tokio::select! {
                            () = cancel.cancelled() => break,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                        continue;
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(r) = inflight.join_next(), if !inflight.is_empty() => report(r),
                changed = wake.changed(), if listening => {
                    listening = changed.is_ok();
                }
                _ = tick.tick() => {}
            }
        }
        while let Some(r) = inflight.join_next().await {
            report(r);
        }
    }

    fn dispatch(
        &self,
        batch: Vec<ClaimedDelivery>,
        semaphore: &Arc<Semaphore>,
        inflight: &mut JoinSet<Handled>,
    ) {
        for d in batch {
            // At most as many were claimed as there were free permits, and
            // only this loop takes them.
            let permit = semaphore.clone().try_acquire_owned().ok();
            let outbox = self.clone();
            inflight.spawn(async move {
                let handled = outbox.deliver(d).await;
                drop(permit);
                handled
            });
        }
    }

    /// Puts the advisory link's token into the mail, as it is sent: it is
    /// stored nowhere (see `notifications::tokens`).
    async fn with_link(
        &self,
        mut d: ClaimedDelivery,
    ) -> Result<ClaimedDelivery, (ClaimedDelivery, sqlx::Error)> {
        let Some(link) = d.link_token_id else {
            return Ok(d);
        };
        let token = {
            let revealed = async {
                let mut conn = self.inner.pool.acquire().await?;
                tokens::reveal(&mut conn, &self.inner.link_secret, link).await
            };
            match revealed.await {
                Ok(token) => token,
                Err(e) => return Err((d, e)),
            }
        };
        d.text_body = d.text_body.replace(tokens::PLACEHOLDER, token.expose());
        d.html_body = d.html_body.replace(tokens::PLACEHOLDER, token.expose());
        Ok(d)
    }

    /// Sends one claimed delivery and records what happened.
    async fn deliver(&self, d: ClaimedDelivery) -> Handled {
        let inner = &self.inner;
        if let Some(limiter) = &inner.per_domain {
            if let Err(not_until) = limiter.check_key(&d.recipient_domain()) {
                let wait = not_until
                    .wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_secs(1));
                let at = inner.clock.now()
                    + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(1));
                if let Err(e) = put_back(&inner.pool, &d, at).await {
                    // The lease runs out and the row is claimed again.
                    tracing::warn!(delivery = d.id, error = %e, "putting a delivery back failed");
                }
                return Handled::Deferred;
            }
        }
        if let Some(limiter) = &inner.global {
            limiter.until_ready().await;
        }
        let d = match self.with_link(d).await {
            Ok(d) => d,
            Err((d, e)) => {
                // The lease runs out and the row is claimed again.
                tracing::warn!(delivery = d.id, error = %e, "reading a delivery's link failed");
                return Handled::Deferred;
            }
        };
        let outcome = match inner.mailer.composer.compose(&d) {
            Ok(message) => inner.mailer.transport.send(message).await,
            Err(e) => SendOutcome::Permanent {
                code: None,
                reply: e.to_string(),
            },
        };
        // The message may be out: try hard to record that, or it is sent
        // again when the lease runs out.
        let mut pause = Duration::from_millis(200);
        for round in 1..=5 {
            match finish(&inner.pool, &d, &outcome, &inner.retry, inner.clock.now()).await {
                Ok(Finished::LeaseLost) => {
                    tracing::warn!(
                        delivery = d.id,
                        attempt = d.attempts,
                        "the lease ran out during the send; another worker owns the delivery"
                    );
                    break;
                }
                Ok(finished) => {
                    tracing::debug!(
                        delivery = d.id,
                        ?finished,
                        reply = outcome.reply(),
                        "delivery attempt"
                    );
                    break;
                }
                Err(e) if round < 5 => {
                    tracing::warn!(delivery = d.id, error = %e, "recording a delivery attempt failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(e) => {
                    tracing::error!(delivery = d.id, error = %e, "recording a delivery attempt failed");
                }
            }
        }
        Handled::Attempted
    }
}

fn report(r: Result<Handled, tokio::task::JoinError>) {
    if let Err(e) = r {
        tracing::error!(error = %e, "an outbox send failed");
    }
}

/// LISTENs on [`CHANNEL`] and bumps `wake` on every notification (and after
/// every reconnect, for anything missed meanwhile).
async fn listen(pool: PgPool, wake: watch::Sender<u64>, cancel: CancellationToken) {
    let bump = |wake: &watch::Sender<u64>| wake.send_modify(|n| *n = n.wrapping_add(1));
    while !cancel.is_cancelled() {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    bump(&wake);
                    loop {
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            r = listener.recv() => match r {
                                Ok(_) => bump(&wake),
                                Err(e) => {
                                    tracing::warn!(error = %e, "outbox LISTEN connection lost");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "LISTEN {CHANNEL} failed"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for queued mail"),
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

/// One attempt at a delivery, with the server's reply.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttemptInfo {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `sent`, `transient`, `permanent`, `lost` (its worker died), or
    /// absent while it runs.
    pub outcome: Option<String>,
    pub reply_code: Option<i32>,
    pub reply: Option<String>,
}

/// A delivery as operators see it: to whom, what, where it stands, every
/// attempt (never its link's token).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DeliveryInfo {
    pub id: i64,
    /// The notification it belongs to; none for mail sent on no
    /// notification's behalf.
    pub notification_id: Option<i64>,
    pub kind: String,
    pub recipient: String,
    pub language: Option<String>,
    pub message_id: String,
    pub subject: String,
    /// `queued`, `sending`, `sent` or `failed`.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_reply_code: Option<i32>,
    pub last_reply: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub failed_at: Option<DateTime<Utc>>,
    #[sqlx(json)]
    pub attempt_log: Vec<AttemptInfo>,
}

/// [`DeliveryInfo`]'s columns, of `deliveries d`.
const DELIVERY_INFO: &str = "SELECT d.id, d.notification_id, d.kind, d.recipient, d.language,
        d.message_id, d.subject, d.status, d.attempts, d.next_attempt_at, d.last_reply_code,
        d.last_reply, d.created_at, d.sent_at, d.failed_at,
        coalesce((SELECT json_agg(json_build_object(
                          'attempt', a.attempt, 'started_at', a.started_at,
                          'finished_at', a.finished_at, 'outcome', a.outcome,
                          'reply_code', a.reply_code, 'reply', a.reply) ORDER BY a.attempt)
                    FROM delivery_attempts a WHERE a.delivery_id = d.id), '[]') AS attempt_log
   FROM deliveries d";

/// A notification's deliveries, oldest first.
pub async fn for_notification(
    conn: &mut PgConnection,
    notification_id: i64,
) -> DomainResult<Vec<DeliveryInfo>> {
    Ok(sqlx::query_as(&format!(
        "{DELIVERY_INFO} WHERE d.notification_id = $1 ORDER BY d.id"
    ))
    .bind(notification_id)
    .fetch_all(conn)
    .await?)
}

/// Deliveries by id after `after`, optionally in one status: a page of
/// `limit` and one more, to tell whether more follow.
pub async fn list(
    conn: &mut PgConnection,
    status: Option<&str>,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<DeliveryInfo>> {
    Ok(sqlx::query_as(&format!(
        "{DELIVERY_INFO} WHERE ($1::text IS NULL OR d.status = $1) AND d.id > $2
          ORDER BY d.id LIMIT $3"
    ))
    .bind(status)
    .bind(after)
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?)
}

/// One delivery.
pub async fn fetch(conn: &mut PgConnection, id: i64) -> DomainResult<DeliveryInfo> {
    sqlx::query_as(&format!("{DELIVERY_INFO} WHERE d.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("delivery {id}")))
}
