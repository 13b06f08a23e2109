//! Decisions to send, each written with its outbox rows in one
//! transaction: approval, the advisory itself, reminders, campaign
//! updates, follow-ups for new hosts, re-alerts, closing mails. Every mail
//! has a dedupe key — what it is about, for whom — so running a job twice,
//! or on two instances, queues nothing twice; and each step locks its
//! notification, so two runs cannot both decide.

use chrono::{DateTime, Duration, Utc};
use sqlx::{Connection, PgConnection};

use super::model::{MailKind, Notification};
use super::recipients::{self, Recipient};
use super::render::{self, Host, MailInput};
use super::store;
use super::texts::MailLanguage;
use super::tokens;
use crate::app::AppState;
use crate::audit;
use crate::campaigns::model::{Campaign, CampaignStatus, CampaignUpdate};
use crate::domain::{Actor, DomainError, DomainResult};
use crate::jobs::{self, Job};
use crate::mail::outbox;
use crate::mail::{DeliveryKind, OutgoingMail};

/// A notification, locked for a decision.
#[derive(Debug, sqlx::FromRow)]
pub struct Target {
    pub id: i64,
    pub campaign_id: i64,
    pub organisation_id: i64,
    pub organisation_name: String,
    pub ticket: String,
    pub status: String,
    pub mailed_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub reminders_sent: i32,
    pub followups_sent: i32,
    pub last_followup_at: Option<DateTime<Utc>>,
}

pub async fn lock(conn: &mut PgConnection, id: i64) -> Result<Option<Target>, sqlx::Error> {
    sqlx::query_as(
        "SELECT n.id, n.campaign_id, n.organisation_id, o.name AS organisation_name, n.ticket,
                n.status, n.mailed_at, n.sent_at, n.reminders_sent, n.followups_sent,
                n.last_followup_at
           FROM notifications n JOIN organisations o ON o.id = n.organisation_id
          WHERE n.id = $1 FOR UPDATE OF n",
    )
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// One mail to write to every recipient (and the sector team's copy).
pub struct Letter<'a> {
    pub kind: MailKind,
    /// What makes this mail distinct from others of its kind for the same
    /// notification: the reminder's number, the update's id, …
    pub occasion: String,
    pub hosts: &'a [Host],
    pub updates: &'a [CampaignUpdate],
}

/// Where mails come from: the settings and the time of the decision.
pub struct Sender<'a> {
    pub state: &'a AppState,
    pub now: DateTime<Utc>,
    pub actor: &'a Actor,
}

impl<'a> Sender<'a> {
    /// A job's decision, taken now.
    pub fn system(state: &'a AppState) -> Self {
        Self {
            state,
            now: state.clock.now(),
            actor: &Actor::System,
        }
    }
}

fn delivery_kind(kind: MailKind) -> DeliveryKind {
    match kind {
        MailKind::Initial => DeliveryKind::Initial,
        MailKind::Reminder => DeliveryKind::Reminder,
        MailKind::Update => DeliveryKind::Update,
        MailKind::Followup => DeliveryKind::Followup,
        MailKind::Realert => DeliveryKind::Realert,
        MailKind::Closing => DeliveryKind::Closing,
    }
}

async fn already_queued(conn: &mut PgConnection, key: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deliveries WHERE dedupe_key = $1)")
        .bind(key)
        .fetch_one(conn)
        .await
}

/// Queues `letter` for every recipient, each with a link of its own, and a
/// copy (without a link) for the sector team when the campaign copies to
/// it. Returns the new deliveries' ids; mails queued before are skipped.
pub async fn queue_letter(
    tx: &mut PgConnection,
    sender: &Sender<'_>,
    target: &Target,
    campaign: &Campaign,
    letter: &Letter<'_>,
    to: &[Recipient],
) -> DomainResult<Vec<i64>> {
    let mut queued = Vec::new();
    let mut addresses = Vec::new();
    for r in to {
        if let Some(id) = queue_one(&mut *tx, sender, target, campaign, letter, r, None).await? {
            queued.push(id);
            addresses.push(r.email.clone());
        }
    }
    if campaign.copy_sector_teams {
        if let Some((team, team_to)) =
            recipients::sector_team(&mut *tx, target.organisation_id).await?
        {
            let copy_for = Some(target.organisation_name.as_str());
            for r in &team_to {
                if let Some(id) =
                    queue_one(&mut *tx, sender, target, campaign, letter, r, copy_for).await?
                {
                    queued.push(id);
                    addresses.push(format!("{} (copy, sector team {team})", r.email));
                }
            }
        }
    }
    if !queued.is_empty() {
        store::record(
            &mut *tx,
            &[target.id],
            sender.now,
            "mail_queued",
            sender.actor,
            serde_json::json!({
                "mail": letter.kind.as_str(),
                "occasion": letter.occasion,
                "deliveries": queued,
                "recipients": addresses,
            }),
        )
        .await?;
    }
    Ok(queued)
}

/// One recipient's mail, rendered in their language: with a link of its
/// own, or, as a sector team's copy (`copy_for` the organisation's name),
/// without. None when it was queued before.
async fn queue_one(
    tx: &mut PgConnection,
    sender: &Sender<'_>,
    target: &Target,
    campaign: &Campaign,
    letter: &Letter<'_>,
    r: &Recipient,
    copy_for: Option<&str>,
) -> DomainResult<Option<i64>> {
    let kind = letter.kind.as_str();
    let prefix = if copy_for.is_some() { "copy:" } else { "" };
    let key = format!(
        "{prefix}{kind}:{}:{}:{}",
        target.id,
        letter.occasion,
        r.email.to_lowercase()
    );
    if already_queued(&mut *tx, &key).await? {
        return Ok(None);
    }
    let expires = sender.now + Duration::days(i64::from(campaign.link_valid_days));
    let token_id = match copy_for {
        Some(_) => None,
        None => {
            let secret = sender.state.settings.link_secret();
            Some(tokens::issue(&mut *tx, &secret, target.id, sender.now, expires).await?)
        }
    };
    // The token itself goes in as the outbox sends the mail.
    let url = format!(
        "{}/a/{}",
        sender.state.settings.public_base_url.trim_end_matches('/'),
        tokens::PLACEHOLDER
    );
    let mail = render::render(&MailInput {
        kind: letter.kind,
        language: r.language,
        campaign,
        updates: letter.updates,
        ticket: &target.ticket,
        copy_for,
        link: token_id.map(|_| (url.as_str(), expires)),
        hosts: letter.hosts,
    })?;
    let outgoing = OutgoingMail {
        notification_id: Some(target.id),
        link_token_id: token_id,
        contact_id: Some(r.contact_id),
        kind: match copy_for {
            Some(_) => DeliveryKind::Copy,
            None => delivery_kind(letter.kind),
        },
        dedupe_key: key,
        to: r.email.clone(),
        to_name: r.name.clone(),
        language: Some(r.language.code().to_owned()),
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
        attachments: mail.attachments,
    };
    let id = match outbox::enqueue(&mut *tx, &sender.state.mailer, &outgoing, sender.now).await {
        Ok(id) => id,
        // An address the registry took but no mail server would: skipped
        // and told on the timeline, so it holds up nobody else's mail.
        Err(DomainError::Invalid { field, detail }) if field == "to" => {
            store::record(
                &mut *tx,
                &[target.id],
                sender.now,
                "recipient_unusable",
                sender.actor,
                serde_json::json!({ "contact_id": r.contact_id, "reason": detail }),
            )
            .await?;
            None
        }
        Err(e) => return Err(e),
    };
    if let (None, Some(token_id)) = (id, token_id) {
        // Not sent after all (queued meanwhile by another run, or
        // unusable): its link is not needed.
        tokens::discard(&mut *tx, token_id).await?;
    }
    Ok(id)
}

/// Which drafts to approve.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    Some(Vec<i64>),
}

/// Approves the campaign's drafts (and notifications waiting for a
/// contact, to try again); the mails are written by the job this enqueues
/// in the same transaction. Returns the approved notifications' ids.
pub async fn approve(
    conn: &mut PgConnection,
    actor: &Actor,
    campaign_id: i64,
    selection: &Selection,
    now: DateTime<Utc>,
) -> DomainResult<Vec<i64>> {
    let mut tx = conn.begin().await?;
    let campaign = crate::campaigns::store::fetch(&mut tx, campaign_id).await?;
    if campaign.status != CampaignStatus::Active {
        return Err(DomainError::Conflict {
            field: None,
            detail: format!(
                "campaign {campaign_id} is {}; only an active campaign's notifications can be approved",
                campaign.status.as_str()
            ),
        });
    }
    let ids = match selection {
        Selection::All => None,
        Selection::Some(ids) => {
            let known: Vec<i64> = sqlx::query_scalar(
                "SELECT id FROM notifications WHERE campaign_id = $1 AND id = ANY($2)",
            )
            .bind(campaign_id)
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
            if let Some(missing) = ids.iter().find(|id| !known.contains(id)) {
                // Well-formed, but not what is stored: a conflict.
                return Err(DomainError::Conflict {
                    field: Some("notification_ids".to_owned()),
                    detail: format!(
                        "notification {missing} is not one of campaign {campaign_id}'s"
                    ),
                });
            }
            Some(ids.clone())
        }
    };
    let approved: Vec<i64> = sqlx::query_scalar(
        "UPDATE notifications SET status = 'approved', approved_at = $3, approved_by = $4
          WHERE campaign_id = $1 AND status IN ('draft', 'no_contact')
            AND ($2::bigint[] IS NULL OR id = ANY($2))
         RETURNING id",
    )
    .bind(campaign_id)
    .bind(ids)
    .bind(now)
    .bind(actor.to_string())
    .fetch_all(&mut *tx)
    .await?;
    if !approved.is_empty() {
        store::record(
            &mut tx,
            &approved,
            now,
            "approved",
            actor,
            serde_json::json!({}),
        )
        .await?;
        jobs::enqueue(&mut tx, &Job::MailApproved { campaign_id }, now).await?;
    }
    audit::commit(
        tx,
        actor,
        "notification.approve",
        &format!("campaign:{campaign_id}"),
        serde_json::json!({ "notifications": approved }),
    )
    .await?;
    Ok(approved)
}

/// The job after approval: writes each approved notification's advisory
/// to its recipients, or puts it in the no-contact queue.
pub async fn mail_approved(state: &AppState, campaign_id: i64) -> anyhow::Result<()> {
    let mut conn = state.pool.acquire().await?;
    let campaign = crate::campaigns::store::fetch(&mut conn, campaign_id).await?;
    let updates = crate::campaigns::store::updates(&mut conn, campaign_id).await?;
    let mut after = 0i64;
    loop {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM notifications
              WHERE campaign_id = $1 AND status = 'approved' AND mailed_at IS NULL AND id > $2
              ORDER BY id LIMIT 500",
        )
        .bind(campaign_id)
        .bind(after)
        .fetch_all(&mut *conn)
        .await?;
        let Some(&last) = ids.last() else {
            return Ok(());
        };
        after = last;
        for chunk in ids.chunks(MAIL_BATCH) {
            let sender = Sender::system(state);
            let mut tx = state.pool.begin().await?;
            for &id in chunk {
                mail_initial(&mut tx, &sender, &campaign, &updates, id).await?;
            }
            tx.commit().await?;
        }
    }
}

/// Notifications whose advisories are written in one transaction: one
/// commit per notification would bound a campaign of tens of thousands to
/// the disk's flush rate, while a batch holds its notifications' locks for
/// well under a second.
const MAIL_BATCH: usize = 100;

async fn mail_initial(
    tx: &mut PgConnection,
    sender: &Sender<'_>,
    campaign: &Campaign,
    updates: &[CampaignUpdate],
    id: i64,
) -> anyhow::Result<()> {
    let Some(target) = lock(&mut *tx, id).await? else {
        return Ok(());
    };
    if target.status != "approved" || target.mailed_at.is_some() {
        return Ok(());
    }
    let to = recipients::of_organisation(&mut *tx, target.organisation_id).await?;
    if to.is_empty() {
        set_status(&mut *tx, sender, id, "no_contact", serde_json::json!({})).await?;
        return Ok(());
    }
    let hosts = store::hosts(&mut *tx, id, false).await?;
    if hosts.is_empty() {
        // Resolved between drafting and approval: nothing to tell.
        return Ok(());
    }
    let letter = Letter {
        kind: MailKind::Initial,
        occasion: String::new(),
        hosts: &hosts,
        updates,
    };
    if queue_letter(&mut *tx, sender, &target, campaign, &letter, &to)
        .await?
        .is_empty()
    {
        // Not one address a mail server would take.
        set_status(&mut *tx, sender, id, "no_contact", serde_json::json!({})).await?;
        return Ok(());
    }
    sqlx::query("UPDATE notifications SET mailed_at = $2 WHERE id = $1")
        .bind(id)
        .bind(sender.now)
        .execute(&mut *tx)
        .await?;
    mark_mailed(&mut *tx, id, &hosts, sender.now).await?;
    Ok(())
}

/// Records that a mail listed these findings; those compromised already
/// need no re-alert.
async fn mark_mailed(
    conn: &mut PgConnection,
    id: i64,
    hosts: &[Host],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let ids: Vec<i64> = hosts.iter().map(|h| h.finding_id).collect();
    let compromised: Vec<i64> = hosts
        .iter()
        .filter(|h| h.state == "compromised")
        .map(|h| h.finding_id)
        .collect();
    sqlx::query(
        "UPDATE notification_findings
            SET mailed_at = coalesce(mailed_at, $3),
                realerted_at = CASE WHEN finding_id = ANY($4) THEN coalesce(realerted_at, $3) ELSE realerted_at END
          WHERE notification_id = $1 AND finding_id = ANY($2)",
    )
    .bind(id)
    .bind(&ids)
    .bind(now)
    .bind(&compromised)
    .execute(conn)
    .await?;
    Ok(())
}

async fn set_status(
    conn: &mut PgConnection,
    sender: &Sender<'_>,
    id: i64,
    status: &str,
    detail: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE notifications SET status = $2 WHERE id = $1")
        .bind(id)
        .bind(status)
        .execute(&mut *conn)
        .await?;
    store::record(conn, &[id], sender.now, status, sender.actor, detail).await
}

/// The periodic sweep: a reminder for every sent notification whose next
/// reminder day has come while its findings stay open and nobody
/// acknowledged; and links that ran out mark their notification expired.
pub async fn send_reminders(state: &AppState) -> anyhow::Result<()> {
    let sender = Sender::system(state);
    let now = sender.now;
    let mut conn = state.pool.acquire().await?;
    let mut tx = conn.begin().await?;
    let expired: Vec<i64> = sqlx::query_scalar(
        "UPDATE notifications SET status = 'expired'
          WHERE status IN ('approved', 'sent', 'acknowledged') AND link_expires_at < $1
         RETURNING id",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    if !expired.is_empty() {
        store::record(
            &mut tx,
            &expired,
            now,
            "expired",
            &Actor::System,
            serde_json::json!({}),
        )
        .await?;
    }
    tx.commit().await?;
    let due: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT n.id, n.campaign_id FROM notifications n JOIN campaigns c ON c.id = n.campaign_id
          WHERE c.status = 'active' AND n.status = 'sent'
            AND n.reminders_sent < cardinality(c.reminder_days)
            AND n.mailed_at + make_interval(days => c.reminder_days[n.reminders_sent + 1]) <= $1
          ORDER BY n.id",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let mut campaign: Option<(Campaign, Vec<CampaignUpdate>)> = None;
    for chunk in due.chunks(MAIL_BATCH) {
        let mut tx = state.pool.begin().await?;
        for &(id, campaign_id) in chunk {
            if campaign.as_ref().is_none_or(|(c, _)| c.id != campaign_id) {
                let c = crate::campaigns::store::fetch(&mut tx, campaign_id).await?;
                let u = crate::campaigns::store::updates(&mut tx, campaign_id).await?;
                campaign = Some((c, u));
            }
            if let Some((c, updates)) = &campaign {
                remind(&mut tx, &sender, c, updates, id).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// One notification's reminder, if it is still due once locked.
async fn remind(
    tx: &mut PgConnection,
    sender: &Sender<'_>,
    campaign: &Campaign,
    updates: &[CampaignUpdate],
    id: i64,
) -> anyhow::Result<()> {
    let Some(target) = lock(&mut *tx, id).await? else {
        return Ok(());
    };
    let Some(mailed_at) = target.mailed_at else {
        return Ok(());
    };
    // However many reminder days passed unswept, one reminder, for the
    // latest of them.
    let due_count = campaign
        .reminder_days
        .iter()
        .filter(|d| mailed_at + Duration::days(i64::from(**d)) <= sender.now)
        .count() as i32;
    if target.status != "sent" || due_count <= target.reminders_sent {
        return Ok(());
    }
    let hosts = store::hosts(&mut *tx, id, false).await?;
    let to = recipients::of_organisation(&mut *tx, target.organisation_id).await?;
    if !hosts.is_empty() && !to.is_empty() {
        let letter = Letter {
            kind: MailKind::Reminder,
            occasion: format!("r{due_count}"),
            hosts: &hosts,
            updates,
        };
        queue_letter(&mut *tx, sender, &target, campaign, &letter, &to).await?;
    }
    sqlx::query("UPDATE notifications SET reminders_sent = $2 WHERE id = $1")
        .bind(id)
        .bind(due_count)
        .execute(&mut *tx)
        .await?;
    store::record(
        &mut *tx,
        &[id],
        sender.now,
        "reminder",
        sender.actor,
        serde_json::json!({ "number": due_count }),
    )
    .await?;
    Ok(())
}

/// The job after a campaign update is posted: the update to every
/// organisation already mailed.
pub async fn send_update(state: &AppState, update_id: i64) -> anyhow::Result<()> {
    let sender = Sender::system(state);
    let now = sender.now;
    let mut conn = state.pool.acquire().await?;
    let campaign_id: i64 =
        sqlx::query_scalar("SELECT campaign_id FROM campaign_updates WHERE id = $1")
            .bind(update_id)
            .fetch_one(&mut *conn)
            .await?;
    let campaign = crate::campaigns::store::fetch(&mut conn, campaign_id).await?;
    let update: Vec<CampaignUpdate> = crate::campaigns::store::updates(&mut conn, campaign_id)
        .await?
        .into_iter()
        .filter(|u| u.id == update_id)
        .collect();
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM notifications WHERE campaign_id = $1 AND mailed_at IS NOT NULL
            AND status IN ('approved', 'sent', 'acknowledged', 'resolved')
          ORDER BY id",
    )
    .bind(campaign_id)
    .fetch_all(&mut *conn)
    .await?;
    for chunk in ids.chunks(MAIL_BATCH) {
        let mut tx = state.pool.begin().await?;
        for &id in chunk {
            let Some(target) = lock(&mut tx, id).await? else {
                continue;
            };
            let hosts = store::hosts(&mut tx, id, false).await?;
            let to = recipients::of_organisation(&mut tx, target.organisation_id).await?;
            let letter = Letter {
                kind: MailKind::Update,
                occasion: format!("u{update_id}"),
                hosts: &hosts,
                updates: &update,
            };
            let queued = queue_letter(&mut tx, &sender, &target, &campaign, &letter, &to).await?;
            if !queued.is_empty() {
                store::record(
                    &mut tx,
                    &[id],
                    now,
                    "update",
                    &Actor::System,
                    serde_json::json!({ "update_id": update_id }),
                )
                .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// The job that tells an already mailed organisation of new hosts: at most
/// one follow-up per the campaign's interval; sooner, it waits for then.
pub async fn send_followup(state: &AppState, id: i64) -> anyhow::Result<()> {
    let sender = Sender::system(state);
    let now = sender.now;
    let mut tx = state.pool.begin().await?;
    let Some(target) = lock(&mut tx, id).await? else {
        return Ok(());
    };
    let Some(mailed_at) = target.mailed_at else {
        // The advisory itself will list them.
        return Ok(());
    };
    if matches!(
        target.status.as_str(),
        "resolved" | "expired" | "no_contact"
    ) {
        return Ok(());
    }
    let campaign = crate::campaigns::store::fetch(&mut tx, target.campaign_id).await?;
    let due = target.last_followup_at.unwrap_or(mailed_at)
        + Duration::hours(i64::from(campaign.followup_interval_hours));
    if now < due {
        jobs::enqueue(
            &mut tx,
            &Job::SendFollowup {
                notification_id: id,
            },
            due,
        )
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    let hosts = store::hosts(&mut tx, id, false).await?;
    if !hosts.iter().any(|h| h.new) {
        return Ok(());
    }
    let to = recipients::of_organisation(&mut tx, target.organisation_id).await?;
    let number = target.followups_sent + 1;
    let updates = crate::campaigns::store::updates(&mut tx, target.campaign_id).await?;
    let letter = Letter {
        kind: MailKind::Followup,
        occasion: format!("f{number}"),
        hosts: &hosts,
        updates: &updates,
    };
    queue_letter(&mut tx, &sender, &target, &campaign, &letter, &to).await?;
    sqlx::query(
        "UPDATE notifications SET followups_sent = $2, last_followup_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(number)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    mark_mailed(&mut tx, id, &hosts, now).await?;
    store::record(
        &mut tx,
        &[id],
        now,
        "followup",
        &Actor::System,
        serde_json::json!({ "number": number, "new_hosts": hosts.iter().filter(|h| h.new).count() }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Called by the outbox in the transaction that records a delivery's
/// outcome: the timeline gets it, and the first accepted mail makes an
/// approved notification `sent`.
pub async fn on_delivery_outcome(
    conn: &mut PgConnection,
    notification_id: i64,
    delivery_id: i64,
    sent: bool,
    reply: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if sent {
        sqlx::query(
            "UPDATE notifications SET status = CASE WHEN status = 'approved' THEN 'sent' ELSE status END,
                    sent_at = coalesce(sent_at, $2)
              WHERE id = $1",
        )
        .bind(notification_id)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    store::record(
        conn,
        &[notification_id],
        now,
        if sent { "delivered" } else { "delivery_failed" },
        &Actor::System,
        serde_json::json!({ "delivery_id": delivery_id, "reply": reply }),
    )
    .await
}

/// An operator sends a delivery of the notification once more (see
/// [`outbox::queue_copy`]), recorded on the timeline and in the audit log.
/// Returns the new delivery's id.
pub async fn resend(
    conn: &mut PgConnection,
    actor: &Actor,
    notification_id: i64,
    delivery_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<i64> {
    let mut tx = conn.begin().await?;
    if lock(&mut tx, notification_id).await?.is_none() {
        return Err(DomainError::not_found(format!(
            "notification {notification_id}"
        )));
    }
    let belongs: Option<(String, String)> = sqlx::query_as(
        "SELECT kind, recipient FROM deliveries WHERE id = $1 AND notification_id = $2",
    )
    .bind(delivery_id)
    .bind(notification_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((kind, recipient)) = belongs else {
        return Err(DomainError::not_found(format!(
            "delivery {delivery_id} of notification {notification_id}"
        )));
    };
    let copy = outbox::queue_copy(&mut tx, delivery_id, now).await?;
    store::record(
        &mut tx,
        &[notification_id],
        now,
        "mail_queued",
        actor,
        serde_json::json!({
            "mail": kind,
            "occasion": "resend",
            "resends": delivery_id,
            "deliveries": [copy],
            "recipients": [recipient],
        }),
    )
    .await?;
    audit::commit(
        tx,
        actor,
        "delivery.resend",
        &format!("delivery:{delivery_id}"),
        serde_json::json!({ "notification_id": notification_id, "copy": copy }),
    )
    .await?;
    Ok(copy)
}

/// The advisory mail a notification would go out as now, and to whom.
pub struct InitialPreview {
    /// The one asked for, or else the first recipient's (Bokmål without one).
    pub language: MailLanguage,
    /// Every recipient of the organisation, in either language.
    pub recipients: Vec<Recipient>,
    pub mail: render::RenderedMail,
}

/// Renders the initial advisory of `notification` (of `campaign`) as it
/// would be written now: the same inputs as [`queue_letter`], but the link
/// stands in as `…/a/…`, since each mail gets a link of its own when it is
/// written. For the API's and the dashboard's previews.
pub async fn preview_initial(
    conn: &mut PgConnection,
    public_base_url: &str,
    notification: &Notification,
    campaign: &Campaign,
    language: Option<MailLanguage>,
    now: DateTime<Utc>,
) -> DomainResult<InitialPreview> {
    let updates = crate::campaigns::store::updates(&mut *conn, campaign.id).await?;
    let recipients = recipients::of_organisation(&mut *conn, notification.organisation_id).await?;
    let hosts = store::hosts(&mut *conn, notification.id, false).await?;
    let language = language
        .or_else(|| recipients.first().map(|r| r.language))
        .unwrap_or(MailLanguage::Nb);
    let link = format!("{}/a/…", public_base_url.trim_end_matches('/'));
    let expires = now + Duration::days(i64::from(campaign.link_valid_days));
    let mail = render::render(&MailInput {
        kind: MailKind::Initial,
        language,
        campaign,
        updates: &updates,
        ticket: &notification.ticket,
        copy_for: None,
        link: Some((&link, expires)),
        hosts: &hosts,
    })?;
    Ok(InitialPreview {
        language,
        recipients,
        mail,
    })
}
