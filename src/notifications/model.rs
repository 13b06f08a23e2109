//! Notification value types: status, the mail kinds, and the shapes the
//! API answers with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::model::text_enum;

text_enum!(
    /// Where a notification stands. `draft` waits for approval; `approved`
    /// waits for its mails to be written and accepted; `sent` once a mail
    /// server accepted the first; `acknowledged` once the organisation said
    /// so; `resolved` once all its findings are; `no_contact` when nobody
    /// could be mailed (it waits for a contact, then approval again);
    /// `expired` when its links ran out with findings still open.
    NotificationStatus {
        Draft => "draft",
        Approved => "approved",
        Sent => "sent",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
        NoContact => "no_contact",
        Expired => "expired",
    }
);

/// What a mail is about. Each kind has its subject prefix and its
/// dedupe rule (see `mailing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    /// The advisory itself.
    Initial,
    /// Findings still open, nobody acknowledged.
    Reminder,
    /// A dated campaign update.
    Update,
    /// New hosts found since the last mail.
    Followup,
    /// A finding escalated to `compromised`.
    Realert,
    /// All findings resolved.
    Closing,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MailKind::Initial => "initial",
            MailKind::Reminder => "reminder",
            MailKind::Update => "update",
            MailKind::Followup => "followup",
            MailKind::Realert => "realert",
            MailKind::Closing => "closing",
        }
    }
}

/// A notification as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Notification {
    pub id: i64,
    pub campaign_id: i64,
    pub organisation_id: i64,
    pub organisation_ref: String,
    pub organisation_name: String,
    /// `VARSEL-2021-000042`.
    pub ticket: String,
    /// A [`NotificationStatus`]: `draft`, `approved`, `sent`,
    /// `acknowledged`, `resolved`, `no_contact` or `expired`.
    pub status: String,
    /// Findings it groups that count: open, still the organisation's, not
    /// flagged a false positive.
    pub open_findings: i64,
    pub findings: i64,
    pub created_at: DateTime<Utc>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_by: Option<String>,
    pub mailed_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub reminders_sent: i32,
    pub followups_sent: i32,
    /// The advisory page's views: the first, the last, how many.
    pub first_opened_at: Option<DateTime<Utc>>,
    pub last_opened_at: Option<DateTime<Utc>>,
    pub open_count: i32,
}

/// One entry of a notification's timeline.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TimelineEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `drafted`, `findings_added`, `approved`, `no_contact`, `mail_queued`,
    /// `recipient_unusable` (an address no mail server would take),
    /// `delivered`, `delivery_failed`, `reminder`, `update`, `followup`,
    /// `realert`, `resolved`, `reopened`, `closing`, `expired`; from the
    /// advisory page `opened` (the first view), `acknowledged`,
    /// `reported_fixed`, `reported_false_positive`, `reported_not_ours`,
    /// `compromise_reported`, `comment`, `contact_proposed`; and
    /// `links_revoked`, `link_reissued`.
    pub kind: String,
    pub actor: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}
