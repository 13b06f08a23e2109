//! What analysts and scanners read and decide of the organisations'
//! answers: responses by notification, escalations (take, close with a
//! note), re-check targets, proposed contacts (confirm, reject), and the
//! advisory links (revoke, reissue). Every decision is one transaction
//! with its audit event.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Acquire, PgConnection};

use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult, required_text};
use crate::notifications::{store as notifications, tokens};
use crate::registry::contacts::{self, Contact, NewContact};
use crate::registry::model::{ContactRole, EmailAddress, Language, Source};

/// One answer of an organisation.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Response {
    pub id: i64,
    pub notification_id: i64,
    /// For answers about one finding.
    pub finding_id: Option<i64>,
    /// `acknowledged`, `fixed`, `false_positive`, `not_ours`, `compromise`,
    /// `comment` or `contact_change`.
    pub kind: String,
    pub at: DateTime<Utc>,
    /// The address the answer came from.
    pub client_addr: Option<String>,
    /// What was said: a reason, a comment, a contact person, …
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

pub async fn responses(
    conn: &mut PgConnection,
    notification_id: i64,
) -> DomainResult<Vec<Response>> {
    notifications::fetch(&mut *conn, notification_id).await?;
    Ok(sqlx::query_as(
        "SELECT id, notification_id, finding_id, kind, at, host(client_addr) AS client_addr, detail
           FROM responses WHERE notification_id = $1 ORDER BY id",
    )
    .bind(notification_id)
    .fetch_all(conn)
    .await?)
}

/// A reported compromise.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Escalation {
    pub id: i64,
    pub notification_id: i64,
    pub ticket: String,
    pub organisation_id: i64,
    pub organisation_name: String,
    /// The finding it is about, if the organisation named one.
    pub finding_id: Option<i64>,
    pub opened_at: DateTime<Utc>,
    pub contact_name: String,
    pub phone: String,
    /// What the organisation saw.
    pub observed: String,
    /// `open`, `taken` or `closed`.
    pub status: String,
    pub taken_by: Option<String>,
    pub taken_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_note: Option<String>,
}

const ESCALATION: &str =
    "SELECT e.id, e.notification_id, n.ticket, n.organisation_id, o.name AS organisation_name,
            r.finding_id, e.opened_at, e.contact_name, e.phone, e.observed, e.status, e.taken_by,
            e.taken_at, e.closed_by, e.closed_at, e.close_note
       FROM escalations e
       JOIN notifications n ON n.id = e.notification_id
       JOIN organisations o ON o.id = n.organisation_id
       JOIN responses r ON r.id = e.response_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscalationStatus {
    Open,
    Taken,
    Closed,
}

impl EscalationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationStatus::Open => "open",
            EscalationStatus::Taken => "taken",
            EscalationStatus::Closed => "closed",
        }
    }
}

pub async fn escalations(
    conn: &mut PgConnection,
    status: Option<EscalationStatus>,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<Escalation>> {
    Ok(sqlx::query_as(&format!(
        "{ESCALATION} WHERE e.id > $1 AND ($2::text IS NULL OR e.status = $2) ORDER BY e.id LIMIT $3"
    ))
    .bind(after)
    .bind(status.map(EscalationStatus::as_str))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?)
}

pub async fn escalation(conn: &mut PgConnection, id: i64) -> DomainResult<Escalation> {
    sqlx::query_as(&format!("{ESCALATION} WHERE e.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("escalation {id}")))
}

/// An analyst takes an open escalation.
pub async fn take_escalation(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let mut tx = conn.begin().await?;
    let status = lock_escalation(&mut tx, id).await?;
    if status != "open" {
        return Err(DomainError::conflict(format!(
            "escalation {id} is {status}, not open"
        )));
    }
    sqlx::query(
        "UPDATE escalations SET status = 'taken', taken_by = $2, taken_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(actor.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "escalation.take",
        &format!("escalation:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// The analyst who took it closes it with a note.
pub async fn close_escalation(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    note: &str,
    now: DateTime<Utc>,
) -> DomainResult<()> {
    let note = required_text("note", note, 5000)?;
    let mut tx = conn.begin().await?;
    let status = lock_escalation(&mut tx, id).await?;
    if status != "taken" {
        return Err(DomainError::conflict(format!(
            "escalation {id} is {status}: an analyst must take it before closing it"
        )));
    }
    sqlx::query(
        "UPDATE escalations SET status = 'closed', closed_by = $2, closed_at = $3, close_note = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(actor.to_string())
    .bind(now)
    .bind(&note)
    .execute(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        "escalation.close",
        &format!("escalation:{id}"),
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

async fn lock_escalation(conn: &mut PgConnection, id: i64) -> DomainResult<String> {
    sqlx::query_scalar("SELECT status FROM escalations WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("escalation {id}")))
}

/// A target an organisation reported fixed, for a scanner to look at
/// first.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RecheckTarget {
    pub finding_id: i64,
    pub ip: String,
    pub port: i32,
    pub protocol: String,
    pub check_id: String,
    pub requested_at: DateTime<Utc>,
}

/// Open findings reported fixed and not seen since.
pub async fn rechecks(
    conn: &mut PgConnection,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<RecheckTarget>> {
    Ok(sqlx::query_as(
        "SELECT id AS finding_id, host(ip) AS ip, port, protocol, check_id, recheck_requested_at AS requested_at
           FROM findings
          WHERE recheck_requested_at IS NOT NULL AND status = 'open' AND current
            AND last_seen < recheck_requested_at AND id > $1
          ORDER BY id LIMIT $2",
    )
    .bind(after)
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?)
}

/// A contact address an organisation proposed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ContactProposal {
    pub id: i64,
    pub notification_id: i64,
    pub organisation_id: i64,
    pub email: String,
    pub name: Option<String>,
    pub language: String,
    pub proposed_at: DateTime<Utc>,
    /// `pending`, `confirmed` or `rejected`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The contact it became.
    pub contact_id: Option<i64>,
}

const PROPOSAL: &str =
    "SELECT p.id, p.notification_id, p.organisation_id, p.email, p.name, p.language,
            r.at AS proposed_at, p.status, p.decided_by, p.decided_at, p.contact_id
       FROM contact_proposals p JOIN responses r ON r.id = p.response_id";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Pending,
    Confirmed,
    Rejected,
}

impl ProposalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Confirmed => "confirmed",
            ProposalStatus::Rejected => "rejected",
        }
    }
}

pub async fn proposals(
    conn: &mut PgConnection,
    status: Option<ProposalStatus>,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<ContactProposal>> {
    Ok(sqlx::query_as(&format!(
        "{PROPOSAL} WHERE p.id > $1 AND ($2::text IS NULL OR p.status = $2) ORDER BY p.id LIMIT $3"
    ))
    .bind(after)
    .bind(status.map(ProposalStatus::as_str))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?)
}

pub async fn proposal(conn: &mut PgConnection, id: i64) -> DomainResult<ContactProposal> {
    sqlx::query_as(&format!("{PROPOSAL} WHERE p.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .ok_or_else(|| DomainError::not_found(format!("contact proposal {id}")))
}

/// Confirms (the address becomes a security contact of the organisation,
/// of provenance `organisation`) or rejects a pending proposal.
pub async fn decide_proposal(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    confirm: bool,
    now: DateTime<Utc>,
) -> DomainResult<Option<Contact>> {
    let mut tx = conn.begin().await?;
    let p: Option<(String, i64, String, Option<String>, String)> = sqlx::query_as(
        "SELECT status, organisation_id, email, name, language FROM contact_proposals WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, organisation_id, email, name, language)) = p else {
        return Err(DomainError::not_found(format!("contact proposal {id}")));
    };
    if status != "pending" {
        return Err(DomainError::conflict(format!(
            "contact proposal {id} is already {status}"
        )));
    }
    let contact = if confirm {
        let new = NewContact {
            email: EmailAddress::parse(&email).map_err(|e| DomainError::invalid("email", e))?,
            name,
            role: ContactRole::Security,
            language: Language::parse(&language)
                .map_err(|e| DomainError::invalid("language", e))?,
            enabled: true,
            provenance: Some(Source::Organisation),
        };
        Some(contacts::create(&mut tx, actor, organisation_id, &new).await?)
    } else {
        None
    };
    sqlx::query(
        "UPDATE contact_proposals SET status = $2, decided_by = $3, decided_at = $4, contact_id = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(if confirm { "confirmed" } else { "rejected" })
    .bind(actor.to_string())
    .bind(now)
    .bind(contact.as_ref().map(|c| c.id))
    .execute(&mut *tx)
    .await?;
    audit::commit(
        tx,
        actor,
        if confirm {
            "contact_proposal.confirm"
        } else {
            "contact_proposal.reject"
        },
        &format!("contact_proposal:{id}"),
        serde_json::json!({ "organisation_id": organisation_id }),
    )
    .await?;
    Ok(contact)
}

/// Revokes every live link of the notification; returns how many.
pub async fn revoke_links(
    conn: &mut PgConnection,
    actor: &Actor,
    notification_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<u64> {
    let mut tx = conn.begin().await?;
    notifications::fetch(&mut tx, notification_id).await?;
    let revoked = revoke_all(&mut tx, notification_id, now).await?;
    notifications::record(
        &mut tx,
        &[notification_id],
        now,
        "links_revoked",
        actor,
        serde_json::json!({ "links": revoked }),
    )
    .await?;
    audit::commit(
        tx,
        actor,
        "notification.revoke_links",
        &format!("notification:{notification_id}"),
        serde_json::json!({ "links": revoked }),
    )
    .await?;
    Ok(revoked)
}

async fn revoke_all(
    conn: &mut PgConnection,
    notification_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE notification_tokens SET revoked_at = $2
          WHERE notification_id = $1 AND revoked_at IS NULL AND expires_at > $2",
    )
    .bind(notification_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A new link in place of every live one, shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedLink {
    /// The advisory page; give it to the organisation. It is not stored
    /// and cannot be shown again.
    pub url: String,
    pub expires_at: DateTime<Utc>,
    /// Links revoked in its favour.
    pub revoked: u64,
}

/// Revokes the notification's live links and makes one new one, valid for
/// the campaign's link validity from now.
pub async fn reissue_link(
    conn: &mut PgConnection,
    actor: &Actor,
    secret: &crate::config::Secret,
    public_base_url: &str,
    notification_id: i64,
    now: DateTime<Utc>,
) -> DomainResult<IssuedLink> {
    let mut tx = conn.begin().await?;
    let n = notifications::fetch(&mut tx, notification_id).await?;
    if n.mailed_at.is_none() {
        return Err(DomainError::conflict(format!(
            "notification {notification_id} was never mailed: it has no link to reissue"
        )));
    }
    let days: i32 = sqlx::query_scalar("SELECT link_valid_days FROM campaigns WHERE id = $1")
        .bind(n.campaign_id)
        .fetch_one(&mut *tx)
        .await?;
    let revoked = revoke_all(&mut tx, notification_id, now).await?;
    let expires_at = now + Duration::days(i64::from(days));
    let id = tokens::issue(&mut tx, secret, notification_id, now, expires_at).await?;
    let token = tokens::reveal(&mut tx, secret, id).await?;
    // An expired notification lives again with its new link.
    sqlx::query(
        "UPDATE notifications
            SET status = CASE WHEN acknowledged_at IS NOT NULL THEN 'acknowledged' ELSE 'sent' END
          WHERE id = $1 AND status = 'expired'",
    )
    .bind(notification_id)
    .execute(&mut *tx)
    .await?;
    notifications::record(
        &mut tx,
        &[notification_id],
        now,
        "link_reissued",
        actor,
        serde_json::json!({ "link_id": id, "revoked": revoked }),
    )
    .await?;
    audit::commit(
        tx,
        actor,
        "notification.reissue_link",
        &format!("notification:{notification_id}"),
        serde_json::json!({ "link_id": id, "revoked": revoked }),
    )
    .await?;
    Ok(IssuedLink {
        url: format!(
            "{}/a/{}",
            public_base_url.trim_end_matches('/'),
            token.expose()
        ),
        expires_at,
        revoked,
    })
}
