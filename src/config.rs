//! Service configuration: environment variables (`DATABASE_URL`, `VARSEL_*`)
//! over an optional TOML file (`VARSEL_CONFIG`), over defaults that work on a
//! developer machine. Secrets are wrapped so they never print.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A value that must not reach logs: `Debug` and `Display` print `[redacted]`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// PostgreSQL URL; may carry a password, hence secret.
    pub database_url: Secret,
    pub listen: SocketAddr,
    /// `tracing` filter, e.g. `info,varsel=debug`.
    pub log: String,
    /// `json` for one JSON object per line, anything else for human text.
    pub log_format: String,
    pub db_max_connections: u32,
    /// Largest JSON body for ordinary API calls, in bytes.
    pub max_body_bytes: usize,
    /// Largest ingest body (after decompression), in bytes.
    pub max_ingest_bytes: u64,
    /// Requests per minute per API token; 0 disables the limit.
    pub rate_limit_per_minute: u32,
    /// Observations older than this many days are dropped (whole monthly
    /// partitions); 0 keeps everything.
    pub retention_days: u32,
    /// Accept observations of addresses that cannot be on the Internet
    /// (private, loopback, link-local, multicast, …), e.g. for a lab.
    /// Refused per line by default.
    pub allow_private_addresses: bool,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_grace_seconds: u64,
    /// Observations per database round in the ingest pipeline.
    pub ingest_chunk_rows: usize,
    /// Background job workers of this instance; 0 runs none (the jobs wait
    /// for an instance that does).
    pub job_workers: usize,
    /// Seconds between looks for due jobs when no notification came (for
    /// retries and scheduled jobs coming due).
    pub job_poll_seconds: u64,

    // E-mail (the outbox, `crate::mail`).
    /// Where mail goes: `smtp://host:port` (plain, for a relay on
    /// loopback), `smtp://host:port?tls=required` (STARTTLS),
    /// `smtps://host:port` (implicit TLS); `user:password@` for AUTH. None:
    /// `.eml` files in `mail_dir`, so a fresh install never mails anyone.
    pub smtp_url: Option<Secret>,
    /// Limit for each SMTP connect, command and reply, in seconds.
    pub smtp_timeout_seconds: u64,
    /// Where the file transport writes, when there is no `smtp_url`.
    pub mail_dir: PathBuf,
    /// The From of every message, e.g. `CERT <cert@example.no>`; its domain
    /// is the right side of every Message-ID.
    pub mail_from: String,
    /// Where replies go (the centre's desk); default `mail_from`.
    pub mail_reply_to: Option<String>,
    /// DKIM signing: all three or none. The key is RSA, PEM (PKCS#1 or
    /// PKCS#8), read once at startup.
    pub dkim_domain: Option<String>,
    pub dkim_selector: Option<String>,
    pub dkim_private_key_file: Option<PathBuf>,
    /// Outbox worker loops on this instance; 0: this instance sends nothing
    /// (others sharing the database do).
    pub outbox_workers: usize,
    /// Messages in flight at once per worker loop.
    pub mail_concurrency: usize,
    /// Messages per second from this instance; 0: no limit.
    pub mail_rate_per_second: u32,
    /// Messages per minute to one recipient domain from this instance; 0:
    /// no limit. A message over it waits without using up an attempt.
    pub mail_rate_per_domain_per_minute: u32,
    /// Attempts before a message that keeps failing transiently is given up.
    pub mail_max_attempts: u32,
    /// Backoff after the n-th transient failure: base * 2^(n-1), at most cap.
    pub mail_retry_base_seconds: u64,
    pub mail_retry_cap_seconds: u64,
    /// How long a worker owns a message it is sending; past it, another
    /// worker may send it (the first one died). Longer than a send can take.
    pub mail_lease_seconds: u64,
    /// How often idle workers look for retries that came due (new messages
    /// wake them at once).
    pub mail_poll_seconds: u64,
    /// Where organisations reach this service: advisory links in mails are
    /// `{public_base_url}/a/{token}`.
    pub public_base_url: String,
    /// The key advisory link tokens are derived from (see
    /// `notifications::tokens`). Required with SMTP; without it a fixed
    /// development key is used, which makes links guessable to anyone who
    /// has the database.
    pub link_secret: Option<Secret>,
    /// Advisory page requests per minute per client address; 0 disables
    /// the limit.
    pub page_rate_limit_per_minute: u32,
    /// How long an organisation's "false positive" keeps a finding out of
    /// reminders and counts.
    pub false_positive_days: u32,
    /// A dashboard session ends after this long without a request…
    pub session_idle_minutes: u32,
    /// …and this long after login, however active.
    pub session_max_hours: u32,
    /// Login attempts per minute per client address; 0 disables the limit.
    pub login_rate_limit_per_minute: u32,
    /// Wrong passwords in a row that lock an account…
    pub login_max_failures: u32,
    /// …for this long.
    pub login_lock_minutes: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            database_url: Secret::new("postgres://postgres@127.0.0.1:5432/varsel"),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            log: "info".to_owned(),
            log_format: "text".to_owned(),
            db_max_connections: 16,
            max_body_bytes: 2 * 1024 * 1024,
            max_ingest_bytes: 2 * 1024 * 1024 * 1024,
            rate_limit_per_minute: 600,
            retention_days: 0,
            allow_private_addresses: false,
            shutdown_grace_seconds: 20,
            ingest_chunk_rows: 20_000,
            job_workers: 2,
            job_poll_seconds: 5,
            smtp_url: None,
            smtp_timeout_seconds: 30,
            mail_dir: PathBuf::from("var/mail"),
            mail_from: "Varsel <varsel@localhost>".to_owned(),
            mail_reply_to: None,
            dkim_domain: None,
            dkim_selector: None,
            dkim_private_key_file: None,
            outbox_workers: 1,
            mail_concurrency: 4,
            mail_rate_per_second: 0,
            mail_rate_per_domain_per_minute: 0,
            mail_max_attempts: 12,
            mail_retry_base_seconds: 30,
            mail_retry_cap_seconds: 3600,
            mail_lease_seconds: 300,
            mail_poll_seconds: 5,
            public_base_url: "http://127.0.0.1:8080".to_owned(),
            link_secret: None,
            page_rate_limit_per_minute: 120,
            false_positive_days: 90,
            session_idle_minutes: 30,
            session_max_hours: 12,
            login_rate_limit_per_minute: 10,
            login_max_failures: 5,
            login_lock_minutes: 15,
        }
    }
}

/// The link key when none is configured: for development only.
const DEVELOPMENT_LINK_SECRET: &str = "varsel development link secret: set VARSEL_LINK_SECRET";

impl Settings {
    /// Whether the service is reached over HTTPS, so its cookies are
    /// `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_base_url.starts_with("https://")
    }

    /// The key advisory links are derived from.
    pub fn link_secret(&self) -> Secret {
        self.link_secret
            .clone()
            .unwrap_or_else(|| Secret::new(DEVELOPMENT_LINK_SECRET))
    }

    /// Defaults, then the file named by `VARSEL_CONFIG` (if any), then
    /// `DATABASE_URL` and `VARSEL_*` variables (`VARSEL_LISTEN`, …).
    pub fn load() -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = std::env::var_os("VARSEL_CONFIG") {
            let path = PathBuf::from(path);
            if !path.is_file() {
                anyhow::bail!(
                    "VARSEL_CONFIG names {}, which is not a file",
                    path.display()
                );
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL"]))
            .merge(Env::prefixed("VARSEL_").ignore(&["CONFIG"]));
        let settings: Settings = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.ingest_chunk_rows == 0 || self.ingest_chunk_rows > 65_536 {
            anyhow::bail!("VARSEL_INGEST_CHUNK_ROWS must be between 1 and 65536");
        }
        if self.smtp_url.is_some() && self.link_secret.is_none() {
            anyhow::bail!(
                "VARSEL_LINK_SECRET must be set when VARSEL_SMTP_URL is: advisory links are derived from it"
            );
        }
        if self
            .link_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < 32)
        {
            anyhow::bail!("VARSEL_LINK_SECRET must be at least 32 characters");
        }
        if self.job_poll_seconds == 0 {
            anyhow::bail!("VARSEL_JOB_POLL_SECONDS must be at least 1");
        }
        if self.db_max_connections < 2 {
            anyhow::bail!("VARSEL_DB_MAX_CONNECTIONS must be at least 2");
        }
        if self.mail_concurrency == 0 {
            anyhow::bail!("VARSEL_MAIL_CONCURRENCY must be at least 1");
        }
        if self.mail_max_attempts == 0 {
            anyhow::bail!("VARSEL_MAIL_MAX_ATTEMPTS must be at least 1");
        }
        if self.mail_retry_base_seconds == 0
            || self.mail_retry_cap_seconds < self.mail_retry_base_seconds
        {
            anyhow::bail!(
                "VARSEL_MAIL_RETRY_BASE_SECONDS must be at least 1 and at most VARSEL_MAIL_RETRY_CAP_SECONDS"
            );
        }
        // A send is a connect and a handful of commands, each allowed the
        // timeout; a lease shorter than that would hand a message to a
        // second worker while the first is still sending it.
        if self.mail_lease_seconds < 4 * self.smtp_timeout_seconds.max(1) {
            anyhow::bail!(
                "VARSEL_MAIL_LEASE_SECONDS must be at least 4 x VARSEL_SMTP_TIMEOUT_SECONDS"
            );
        }
        if self.mail_poll_seconds == 0 {
            anyhow::bail!("VARSEL_MAIL_POLL_SECONDS must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Settings {
            database_url: Secret::new("postgres://u:hunter2@db/varsel"),
            ..Settings::default()
        };
        let s = Settings {
            smtp_url: Some(Secret::new("smtps://u:hunter2@relay.example.no")),
            ..s
        };
        let printed = format!("{s:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
