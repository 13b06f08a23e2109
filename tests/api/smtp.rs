//! A real SMTP server for the outbox tests: `tests/support/smtp_server.py`
//! (aiosmtpd, run with Debian's /usr/bin/python3) as a child process on a
//! loopback port, and the messages it received, parsed with mail-parser.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use mail_parser::{MessageParser, MimeHeaders};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Debian's python, which has aiosmtpd (python3-aiosmtpd); the `python3` on
/// PATH may be another one without it.
const PYTHON: &str = "/usr/bin/python3";

pub fn script() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/smtp_server.py"
    ))
}

pub struct SmtpServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// One message as the server received it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub raw: Vec<u8>,
    /// The envelope's recipients (RCPT TO).
    pub rcpt_tos: Vec<String>,
    pub mail_from: String,
    /// With its angle brackets, as the header carries it.
    pub message_id: Option<String>,
    pub subject: Option<String>,
    /// The Date header, as a Unix time.
    pub date: Option<i64>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub reply_to: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    pub attachments: Vec<ReceivedAttachment>,
    /// Every header as (name, raw value), in order.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct ReceivedAttachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub content: Vec<u8>,
}

impl ReceivedMail {
    /// The first header of that name (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_owned())
    }
}

impl SmtpServer {
    /// Starts the server on `port` (None: one the kernel picks) with a
    /// fresh folder for what it receives.
    pub async fn start(port: Option<u16>) -> Self {
        let dir = tempfile::tempdir().expect("folder for received mail");
        Self::start_in(dir, port, &[]).await
    }

    /// With extra arguments for the script, e.g. `["--slow", "5"]`.
    pub async fn start_with(port: Option<u16>, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("folder for received mail");
        Self::start_in(dir, port, args).await
    }

    async fn start_in(dir: tempfile::TempDir, port: Option<u16>, args: &[&str]) -> Self {
        let mut child = Command::new(PYTHON)
            .arg(script())
            .arg("--dir")
            .arg(dir.path())
            .arg("--port")
            .arg(port.unwrap_or(0).to_string())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start tests/support/smtp_server.py with /usr/bin/python3 (python3-aiosmtpd)");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP server did not start within 20 s")
            .expect("read the SMTP server's output")
            .expect("the SMTP server exited before it listened (is python3-aiosmtpd installed?)");
        let port = line
            .strip_prefix("PORT ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the SMTP server: {line:?}"));
        Self {
            child: Some(child),
            port,
            dir,
        }
    }

    /// `smtp://127.0.0.1:<port>`: plain SMTP on loopback.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its connections are cut); what it received stays
    /// readable.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Everything received so far, in the order it arrived.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("read the mail folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names.iter().map(|p| parse(p)).collect()
    }

    /// Waits until at least `n` messages have arrived (at most `limit`),
    /// for tests where the application's own workers send.
    pub async fn wait_for(&self, n: usize, limit: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + limit;
        loop {
            let count = std::fs::read_dir(self.dir.path())
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                        .count()
                })
                .unwrap_or(0);
            if count >= n {
                return self.messages();
            }
            if Instant::now() > deadline {
                panic!("{count} of {n} messages arrived within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A free loopback port with nothing listening on it (for a server that is
/// "down", to be started there later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn parse(eml: &Path) -> ReceivedMail {
    let raw = std::fs::read(eml).expect("read a received message");
    let envelope: serde_json::Value = std::fs::read(eml.with_extension("json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let message = MessageParser::default()
        .parse(&raw)
        .unwrap_or_else(|| panic!("{} does not parse as a message", eml.display()));
    let address = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .map(str::to_owned)
    };
    let attachments = message
        .attachments()
        .map(|part| ReceivedAttachment {
            filename: part.attachment_name().map(str::to_owned),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_default(),
            content: part.contents().to_vec(),
        })
        .collect();
    let headers = message
        .headers_raw()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    ReceivedMail {
        rcpt_tos: envelope["rcpt_tos"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        mail_from: envelope["mail_from"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        message_id: message.message_id().map(|id| format!("<{id}>")),
        subject: message.subject().map(str::to_owned),
        date: message.date().map(|d| d.to_timestamp()),
        from: address(message.from()),
        to: address(message.to()),
        reply_to: address(message.reply_to()),
        text: message.body_text(0).map(|t| t.into_owned()),
        html: message.body_html(0).map(|t| t.into_owned()),
        attachments,
        headers,
        raw,
    }
}
