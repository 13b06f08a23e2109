//! Where messages go: an SMTP server (the `smtp_url` setting; lettre's
//! connections in our own pool, [`super::smtp_pool`], which says why) or,
//! when none is configured, a folder of `.eml` files (`mail_dir`), so a
//! fresh install never mails anyone by accident.
//! Every answer is classified as the outbox needs it: sent, transient (try
//! again later) or permanent (give up).

use std::time::Duration;

use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use super::smtp_pool::{SendError, SmtpPool, SmtpServerConfig};
use crate::config::Settings;

/// What the server said to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Accepted (2xx), or written to the folder.
    Sent { code: Option<u16>, reply: String },
    /// Try again later: 4xx, or no answer at all (refused, timed out, TLS or
    /// network failure).
    Transient { code: Option<u16>, reply: String },
    /// 5xx: the server will never take it.
    Permanent { code: Option<u16>, reply: String },
}

impl SendOutcome {
    pub fn code(&self) -> Option<u16> {
        match self {
            SendOutcome::Sent { code, .. }
            | SendOutcome::Transient { code, .. }
            | SendOutcome::Permanent { code, .. } => *code,
        }
    }

    pub fn reply(&self) -> &str {
        match self {
            SendOutcome::Sent { reply, .. }
            | SendOutcome::Transient { reply, .. }
            | SendOutcome::Permanent { reply, .. } => reply,
        }
    }

    /// `sent`, `transient` or `permanent`, as `delivery_attempts.outcome`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendOutcome::Sent { .. } => "sent",
            SendOutcome::Transient { .. } => "transient",
            SendOutcome::Permanent { .. } => "permanent",
        }
    }
}

pub enum Transport {
    Smtp {
        pool: SmtpPool,
        /// The URL without credentials, for logs.
        described: String,
    },
    File {
        transport: AsyncFileTransport<Tokio1Executor>,
        dir: std::path::PathBuf,
    },
}

impl Transport {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.smtp_url {
            Some(url) => {
                let described = redacted(url.expose());
                let timeout = Duration::from_secs(settings.smtp_timeout_seconds.max(1));
                let server = SmtpServerConfig::from_url(url.expose())
                    .map_err(|e| anyhow::anyhow!("VARSEL_SMTP_URL ({described}): {e}"))?;
                let pool = SmtpPool::new(
                    server,
                    timeout,
                    // Idle connections kept: one per message in flight; the
                    // outbox bounds how many that is.
                    settings.mail_concurrency.max(1) * settings.outbox_workers.max(1),
                    Duration::from_secs(60),
                );
                Ok(Transport::Smtp { pool, described })
            }
            None => {
                let dir = settings.mail_dir.clone();
                std::fs::create_dir_all(&dir).map_err(|e| {
                    anyhow::anyhow!("VARSEL_MAIL_DIR {}: cannot create it: {e}", dir.display())
                })?;
                Ok(Transport::File {
                    transport: AsyncFileTransport::<Tokio1Executor>::new(&dir),
                    dir,
                })
            }
        }
    }

    /// For logs: the server without credentials, or the folder.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp { described, .. } => described.clone(),
            Transport::File { dir, .. } => format!("files in {}", dir.display()),
        }
    }

    pub async fn send(&self, message: Message) -> SendOutcome {
        match self {
            Transport::Smtp { pool, .. } => {
                let raw = message.formatted();
                match pool.send(message.envelope(), &raw).await {
                    Ok(response) => SendOutcome::Sent {
                        code: Some(u16::from(response.code())),
                        reply: response.message().collect::<Vec<_>>().join(" "),
                    },
                    Err(SendError::Smtp(e)) => classify(&e),
                    // No server to answer, or one that stopped answering:
                    // it may well pass later.
                    Err(e @ (SendError::Connect(_) | SendError::Timeout { .. })) => {
                        SendOutcome::Transient {
                            code: None,
                            reply: e.to_string(),
                        }
                    }
                }
            }
            Transport::File { transport, dir } => match transport.send(message).await {
                Ok(id) => SendOutcome::Sent {
                    code: None,
                    reply: format!("written to {}", dir.join(format!("{id}.eml")).display()),
                },
                // A full disk or a missing folder may well pass.
                Err(e) => SendOutcome::Transient {
                    code: None,
                    reply: format!("{e}"),
                },
            },
        }
    }
}

/// 5xx is permanent, everything else (4xx, no connection, a timeout, TLS,
/// a reply that did not parse) may pass.
fn classify(e: &lettre::transport::smtp::Error) -> SendOutcome {
    let code = e.status().map(u16::from);
    let reply = match (code, std::error::Error::source(e)) {
        (Some(c), Some(text)) => format!("{c} {text}"),
        (Some(c), None) => c.to_string(),
        (None, _) => chain(e),
    };
    if e.is_permanent() {
        SendOutcome::Permanent { code, reply }
    } else {
        SendOutcome::Transient { code, reply }
    }
}

/// The error with its causes: "network error: Connection refused (os error 111)".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// `smtps://user:secret@relay:465` → `smtps://relay:465`.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => "an SMTP URL that does not parse".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_print() {
        let shown = redacted("smtps://alice:hunter2@relay.example.no:465?tls=required");
        assert_eq!(shown, "smtps://relay.example.no:465?tls=required");
        assert_eq!(
            redacted("not a url"),
            "an SMTP URL that does not parse".to_owned()
        );
    }
}
