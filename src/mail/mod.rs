//! E-mail: everything Varsel sends leaves through here. A caller renders a
//! message ([`OutgoingMail`]) and queues it with [`outbox::enqueue`] inside
//! the transaction that decided to send it; the [`outbox`] workers then
//! deliver it, durably (a row per message, never deleted), leased (no lock
//! held while talking to the server, a dead worker's messages are taken
//! over) and retried with backoff. [`message`] turns a stored delivery into
//! the MIME message (headers, parts, DKIM); [`transport`] hands it to an
//! SMTP server (over [`smtp_pool`]'s connections) or, when none is
//! configured, writes it to a folder; [`routes`] shows operators the outbox
//! and retries what failed.

pub mod message;
pub mod outbox;
pub mod routes;
pub mod smtp_pool;
pub mod transport;

use serde::{Deserialize, Serialize};

use crate::config::Settings;

pub use message::Composer;
pub use transport::Transport;

/// Why a message is sent; stored as `deliveries.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryKind {
    /// The advisory itself; the others as `notifications::model::MailKind`
    /// says.
    Initial,
    Reminder,
    Update,
    Followup,
    Realert,
    Closing,
    /// A sector response team's copy of one of the above (without the
    /// link).
    Copy,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Initial => "initial",
            DeliveryKind::Reminder => "reminder",
            DeliveryKind::Update => "update",
            DeliveryKind::Followup => "followup",
            DeliveryKind::Realert => "realert",
            DeliveryKind::Closing => "closing",
            DeliveryKind::Copy => "copy",
        }
    }
}

/// A file sent with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub filename: String,
    /// A MIME type, e.g. `text/csv`.
    pub content_type: String,
    pub content: Vec<u8>,
}

/// A rendered message, ready to queue: what to send to whom, and the key
/// that makes it "the same message" (queued at most once).
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub notification_id: Option<i64>,
    /// The advisory link whose token the outbox puts where the bodies say
    /// `notifications::tokens::PLACEHOLDER`, as it sends the mail.
    pub link_token_id: Option<i64>,
    /// The registry contact it goes to, whose delivery health a bounce marks.
    pub contact_id: Option<i64>,
    pub kind: DeliveryKind,
    /// Unique per "this thing to this recipient", e.g.
    /// `notification:42:contact:7:initial`.
    pub dedupe_key: String,
    /// The recipient's address.
    pub to: String,
    pub to_name: Option<String>,
    pub language: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
}

/// How this instance sends: who messages are from (and their signature),
/// and where they go. Made once at startup, in `AppState`.
pub struct Mailer {
    pub composer: Composer,
    pub transport: Transport,
}

impl Mailer {
    /// From the settings: a bad address, DKIM key or SMTP URL is an error
    /// here, at startup, not at the first message. Logs which transport is
    /// active (never the URL's credentials).
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let composer = Composer::from_settings(settings)?;
        let transport = Transport::from_settings(settings)?;
        tracing::info!(
            transport = %transport.describe(),
            from = %composer.from(),
            dkim = composer.dkim_description().as_deref().unwrap_or("off"),
            "mail transport"
        );
        Ok(Self {
            composer,
            transport,
        })
    }

    /// The right side of every Message-ID: the domain of the From address.
    pub fn message_id_domain(&self) -> &str {
        self.composer.message_id_domain()
    }
}
