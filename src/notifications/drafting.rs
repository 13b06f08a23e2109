//! Keeping notifications in step with findings, for every active campaign:
//! a draft for each organisation with open matching findings, new matching
//! findings joining their organisation's notification (and a follow-up
//! when it was already mailed), an immediate re-alert when a mailed
//! finding escalates to `compromised`, and resolution once all of a
//! notification's findings are resolved (reopening when one comes back).
//!
//! Runs as the `match_findings` job, which activation, ingest and late
//! attribution enqueue in their transactions; it is idempotent.

use chrono::{DateTime, Datelike, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;

use super::mailing::{self, Letter, Selection, Sender};
use super::model::MailKind;
use super::{recipients, store};
use crate::app::AppState;
use crate::campaigns::matching::MATCH_SQL;
use crate::campaigns::model::Campaign;
use crate::domain::Actor;
use crate::jobs::{self, Job};

/// What one run changed, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drafted {
    pub notifications: u64,
    pub findings: u64,
    pub resolved: u64,
    pub reopened: u64,
}

/// Enqueues the job, in the caller's transaction.
pub async fn enqueue(conn: &mut PgConnection, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    jobs::enqueue(conn, &Job::MatchFindings, now)
        .await
        .map(|_| ())
}

/// Enqueues the job when a campaign is active (a change of findings
/// matters to none otherwise: activation drafts from all of them).
pub async fn enqueue_if_active(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let active: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM campaigns WHERE status = 'active')")
            .fetch_one(&mut *conn)
            .await?;
    if active {
        enqueue(conn, now).await?;
    }
    Ok(())
}

/// The job: every active campaign in turn.
pub async fn run(state: &AppState) -> anyhow::Result<()> {
    let mut conn = state.pool.acquire().await?;
    let campaigns: Vec<i64> =
        sqlx::query_scalar("SELECT id FROM campaigns WHERE status = 'active' ORDER BY id")
            .fetch_all(&mut *conn)
            .await?;
    drop(conn);
    for id in campaigns {
        let drafted = draft(state, id).await?;
        if drafted != Drafted::default() {
            tracing::info!(campaign = id, ?drafted, "notifications drafted");
        }
    }
    Ok(())
}

/// Drafts and updates one campaign's notifications.
pub async fn draft(state: &AppState, campaign_id: i64) -> anyhow::Result<Drafted> {
    let now = state.clock.now();
    let actor = Actor::System;
    let mut drafted = Drafted::default();
    let mut tx = state.pool.begin().await?;
    // One drafting run per campaign at a time (instances and workers may
    // run the job at once); others wait, then find the work done.
    sqlx::query("SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE")
        .bind(campaign_id)
        .execute(&mut *tx)
        .await?;
    let campaign = crate::campaigns::store::fetch(&mut tx, campaign_id).await?;
    if campaign.status.as_str() != "active" {
        return Ok(drafted);
    }
    let new: Vec<i64> = sqlx::query_scalar(&format!(
        "INSERT INTO notifications (campaign_id, organisation_id, ticket, created_at)
         SELECT c.id, m.organisation_id,
                format('VARSEL-%s-%s', $3::int, lpad(nextval('ticket_numbers')::text, 6, '0')), $2
           FROM campaigns c
           JOIN LATERAL (SELECT DISTINCT f.organisation_id FROM findings f
                          WHERE {MATCH_SQL} AND f.current AND f.organisation_id IS NOT NULL) m ON true
          WHERE c.id = $1
            AND NOT EXISTS (SELECT 1 FROM notifications n
                             WHERE n.campaign_id = c.id AND n.organisation_id = m.organisation_id)
         ON CONFLICT (campaign_id, organisation_id) DO NOTHING
         RETURNING id"
    ))
    .bind(campaign_id)
    .bind(now)
    .bind(now.year())
    .fetch_all(&mut *tx)
    .await?;
    drafted.notifications = new.len() as u64;
    if !new.is_empty() {
        store::record(&mut tx, &new, now, "drafted", &actor, serde_json::json!({})).await?;
    }
    let added: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "INSERT INTO notification_findings (notification_id, finding_id, added_at)
         SELECT n.id, f.id, $2
           FROM campaigns c
           JOIN findings f ON {MATCH_SQL}
           JOIN notifications n ON n.campaign_id = c.id AND n.organisation_id = f.organisation_id
          WHERE c.id = $1 AND f.current
            AND NOT EXISTS (SELECT 1 FROM notification_findings x
                             WHERE x.notification_id = n.id AND x.finding_id = f.id)
         ON CONFLICT DO NOTHING
         RETURNING notification_id, finding_id"
    ))
    .bind(campaign_id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    drafted.findings = added.len() as u64;
    let mut grown: Vec<i64> = added.iter().map(|(n, _)| *n).collect();
    grown.sort_unstable();
    grown.dedup();
    // Growth of notifications drafted in this run is their drafting.
    let grown: Vec<i64> = grown.into_iter().filter(|n| !new.contains(n)).collect();
    for n in &grown {
        let count = added.iter().filter(|(id, _)| id == n).count();
        store::record(
            &mut tx,
            &[*n],
            now,
            "findings_added",
            &actor,
            serde_json::json!({ "findings": count }),
        )
        .await?;
    }
    // Those already mailed get a follow-up, batched by its job.
    let mailed: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM notifications WHERE id = ANY($1) AND mailed_at IS NOT NULL",
    )
    .bind(&grown)
    .fetch_all(&mut *tx)
    .await?;
    for n in mailed {
        jobs::enqueue(&mut tx, &Job::SendFollowup { notification_id: n }, now).await?;
    }
    let reopened: Vec<i64> = sqlx::query_scalar(&format!(
        "UPDATE notifications n SET resolved_at = NULL,
                status = CASE WHEN n.acknowledged_at IS NOT NULL THEN 'acknowledged'
                              WHEN n.sent_at IS NOT NULL THEN 'sent'
                              WHEN n.approved_at IS NOT NULL THEN 'approved'
                              ELSE 'draft' END
          WHERE n.campaign_id = $1 AND n.status = 'resolved'
            AND EXISTS (SELECT 1 FROM notification_findings nf JOIN findings f ON f.id = nf.finding_id
                         WHERE nf.notification_id = n.id AND {COUNTS})
         RETURNING n.id",
        COUNTS = store::COUNTS
    ))
    .bind(campaign_id)
    .fetch_all(&mut *tx)
    .await?;
    drafted.reopened = reopened.len() as u64;
    if !reopened.is_empty() {
        store::record(
            &mut tx,
            &reopened,
            now,
            "reopened",
            &actor,
            serde_json::json!({}),
        )
        .await?;
    }
    let resolved: Vec<(i64, bool)> = sqlx::query_as(&format!(
        "UPDATE notifications n SET status = 'resolved', resolved_at = $2
          WHERE n.campaign_id = $1 AND n.status NOT IN ('resolved', 'expired')
            AND NOT EXISTS (SELECT 1 FROM notification_findings nf JOIN findings f ON f.id = nf.finding_id
                             WHERE nf.notification_id = n.id AND {COUNTS})
         RETURNING n.id, n.mailed_at IS NOT NULL",
        COUNTS = store::COUNTS
    ))
    .bind(campaign_id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    drafted.resolved = resolved.len() as u64;
    let resolved_ids: Vec<i64> = resolved.iter().map(|(id, _)| *id).collect();
    if !resolved_ids.is_empty() {
        store::record(
            &mut tx,
            &resolved_ids,
            now,
            "resolved",
            &actor,
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;

    let sender = Sender {
        state,
        now,
        actor: &actor,
    };
    realert(state, &sender, &campaign).await?;
    if campaign.closing_mail {
        for (id, mailed) in resolved {
            if mailed {
                closing(state, &sender, &campaign, id).await?;
            }
        }
    }
    if campaign.auto_approve {
        let mut conn = state.pool.acquire().await?;
        mailing::approve(&mut conn, &actor, campaign_id, &Selection::All, now).await?;
    }
    Ok(drafted)
}

/// Mailed findings that escalated to `compromised` since: one re-alert per
/// notification, at once (no batching: exploitation has begun).
async fn realert(state: &AppState, sender: &Sender<'_>, campaign: &Campaign) -> anyhow::Result<()> {
    let mut conn = state.pool.acquire().await?;
    let due: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT DISTINCT nf.notification_id FROM notification_findings nf
           JOIN notifications n ON n.id = nf.notification_id
           JOIN findings f ON f.id = nf.finding_id
          WHERE n.campaign_id = $1 AND n.mailed_at IS NOT NULL
            AND n.status NOT IN ('resolved', 'expired', 'no_contact')
            AND nf.mailed_at IS NOT NULL AND nf.realerted_at IS NULL
            AND f.state = 'compromised' AND {COUNTS}",
        COUNTS = store::COUNTS
    ))
    .bind(campaign.id)
    .fetch_all(&mut *conn)
    .await?;
    drop(conn);
    for id in due {
        let mut tx = state.pool.begin().await?;
        let Some(target) = mailing::lock(&mut tx, id).await? else {
            continue;
        };
        let escalated: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT nf.finding_id FROM notification_findings nf
               JOIN notifications n ON n.id = nf.notification_id
               JOIN findings f ON f.id = nf.finding_id
              WHERE nf.notification_id = $1 AND nf.mailed_at IS NOT NULL AND nf.realerted_at IS NULL
                AND f.state = 'compromised' AND {COUNTS}
              ORDER BY nf.finding_id",
            COUNTS = store::COUNTS
        ))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        if escalated.is_empty() {
            continue;
        }
        let hosts = store::hosts(&mut tx, id, false).await?;
        let to = recipients::of_organisation(&mut tx, target.organisation_id).await?;
        let updates = crate::campaigns::store::updates(&mut tx, campaign.id).await?;
        let letter = Letter {
            kind: MailKind::Realert,
            occasion: occasion_of(&escalated),
            hosts: &hosts,
            updates: &updates,
        };
        mailing::queue_letter(&mut tx, sender, &target, campaign, &letter, &to).await?;
        sqlx::query(
            "UPDATE notification_findings SET realerted_at = $3
              WHERE notification_id = $1 AND finding_id = ANY($2)",
        )
        .bind(id)
        .bind(&escalated)
        .bind(sender.now)
        .execute(&mut *tx)
        .await?;
        store::record(
            &mut tx,
            &[id],
            sender.now,
            "realert",
            sender.actor,
            serde_json::json!({ "findings": escalated }),
        )
        .await?;
        tx.commit().await?;
    }
    Ok(())
}

/// A short name for a set of findings, for a dedupe key.
fn occasion_of(findings: &[i64]) -> String {
    let mut h = Sha256::new();
    for f in findings {
        h.update(f.to_be_bytes());
    }
    format!("e{}", &hex::encode(h.finalize())[..16])
}

async fn closing(
    state: &AppState,
    sender: &Sender<'_>,
    campaign: &Campaign,
    id: i64,
) -> anyhow::Result<()> {
    let mut tx = state.pool.begin().await?;
    let Some(target) = mailing::lock(&mut tx, id).await? else {
        return Ok(());
    };
    if target.status != "resolved" {
        return Ok(());
    }
    let hosts = store::hosts(&mut tx, id, true).await?;
    let to = recipients::of_organisation(&mut tx, target.organisation_id).await?;
    let letter = Letter {
        kind: MailKind::Closing,
        occasion: String::new(),
        hosts: &hosts,
        updates: &[],
    };
    mailing::queue_letter(&mut tx, sender, &target, campaign, &letter, &to).await?;
    tx.commit().await?;
    Ok(())
}
