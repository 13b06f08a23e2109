//! Our own pool of SMTP connections: lettre's `AsyncSmtpConnection`s (lettre
//! still does all of the SMTP protocol: greeting, EHLO, STARTTLS, AUTH,
//! MAIL/RCPT/DATA, dot-stuffing, reply parsing) on TCP streams this module
//! opens itself, with `TCP_NODELAY` set.
//!
//! Why it is hand-written: lettre 0.11.23's SMTP transport never sets
//! `TCP_NODELAY`, and it writes a message as the body and then a separate
//! 5-byte `\r\n.\r\n`. Nagle's algorithm holds that small write until the
//! server ACKs the body, and the server delays its ACK (40 ms on Linux)
//! because it is waiting for the end of the data: every message on a
//! connection costs about 40 ms, so lettre's pooled transport tops out at
//! about 25 messages/s per connection (see BENCHMARKS.md, "Outbox"). Fixed
//! upstream in lettre PR #1159 (merged, not released): when a lettre release
//! has it, this module can go and `Transport::Smtp` can use
//! `AsyncSmtpTransport` again. Also, lettre's async transport applies its
//! timeout only to connecting (lettre PR #1157, open), so [`SmtpPool::send`]
//! bounds connecting and sending with `tokio::time::timeout` itself.
//!
//! What it owns: parsing `smtp_url` the way lettre's `from_url` does (same
//! schemes, `tls` query values, default ports, credentials and HELO name),
//! opening connections, keeping up to `max_idle` of them idle for at most
//! `idle_timeout`, checking an idle one is still open before reusing it, and
//! dropping every connection that gave any error.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Ports lettre's `from_url` defaults to.
const SMTP_PORT: u16 = 25;
const SUBMISSION_PORT: u16 = 587;
const SUBMISSIONS_PORT: u16 = 465;

/// How a connection is secured, as lettre's `Tls`.
#[derive(Clone)]
enum Security {
    /// `smtp://…`: plain, never STARTTLS (as lettre's `from_url`).
    Plain,
    /// `smtp://…?tls=opportunistic`: STARTTLS when the server offers it.
    Opportunistic(TlsParameters),
    /// `smtp://…?tls=required`: STARTTLS or no connection.
    Required(TlsParameters),
    /// `smtps://…`: TLS from the first byte.
    Implicit(TlsParameters),
}

impl Security {
    fn name(&self) -> &'static str {
        match self {
            Security::Plain => "plain",
            Security::Opportunistic(_) => "opportunistic STARTTLS",
            Security::Required(_) => "STARTTLS",
            Security::Implicit(_) => "implicit TLS",
        }
    }
}

/// Where and how to connect: what `smtp_url` says.
#[derive(Clone)]
pub struct SmtpServerConfig {
    /// Host name or address, without brackets, to connect to.
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl fmt::Debug for SmtpServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpServerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security.name())
            .field("credentials", &self.credentials.is_some())
            .finish()
    }
}

impl SmtpServerConfig {
    /// The URL as lettre's `AsyncSmtpTransport::from_url` reads it:
    /// `smtp://host[:port]` plain (port 25); `smtp://…?tls=required` or
    /// `?tls=opportunistic` STARTTLS (port 587); `smtps://host[:port]`
    /// implicit TLS (port 465); `user:password@` for AUTH (PLAIN or LOGIN,
    /// only when a password is given; both percent-decoded); a path names
    /// the EHLO host (default: this machine's host name).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let u = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let tls = u
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls_name = u.host_str().ok_or("no host")?.to_owned();
        let host = match u.host() {
            Some(url::Host::Domain(d)) => d.to_owned(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Ipv6(a)) => a.to_string(),
            None => return Err("no host".to_owned()),
        };
        let params = || TlsParameters::new(tls_name.clone()).map_err(|e| format!("TLS: {e}"));
        let (security, default_port) = match (u.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, SMTP_PORT),
            ("smtp", Some("required")) => (Security::Required(params()?), SUBMISSION_PORT),
            ("smtp", Some("opportunistic")) => {
                (Security::Opportunistic(params()?), SUBMISSION_PORT)
            }
            ("smtps", _) => (Security::Implicit(params()?), SUBMISSIONS_PORT),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme {scheme:?} or tls parameter {tls:?} (smtp://, \
                     smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://)"
                ));
            }
        };
        let hello = if u.path().len() > 1 {
            ClientId::Domain(u.path().trim_matches('/').to_owned())
        } else {
            ClientId::default()
        };
        let credentials = match u.password() {
            Some(password) => {
                let decode = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8()
                        .map(|c| c.into_owned())
                        .map_err(|e| format!("credentials are not UTF-8: {e}"))
                };
                Some(Credentials::new(decode(u.username())?, decode(password)?))
            }
            None => None,
        };
        Ok(Self {
            host,
            port: u.port().unwrap_or(default_port),
            security,
            credentials,
            hello,
        })
    }

    /// E.g. `relay.example.no:465, implicit TLS, AUTH`.
    pub fn summary(&self) -> String {
        format!(
            "{}:{}, {}{}",
            self.host,
            self.port,
            self.security.name(),
            if self.credentials.is_some() {
                ", AUTH"
            } else {
                ""
            }
        )
    }
}

/// Why a send did not get an answer from the server, or what it answered.
#[derive(Debug)]
pub enum SendError {
    /// No TCP connection: refused, unreachable, name not found.
    Connect(io::Error),
    /// What lettre reported: a 4xx/5xx reply, a TLS or network failure
    /// mid-conversation, a reply that did not parse.
    Smtp(lettre::transport::smtp::Error),
    /// Connecting, or the conversation for one message, took longer than
    /// the timeout (`smtp_timeout_seconds`).
    Timeout {
        during: &'static str,
        after: Duration,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connection error: {e}"),
            SendError::Smtp(e) => write!(f, "{e}"),
            SendError::Timeout { during, after } => {
                write!(f, "timed out after {} s {during}", after.as_secs_f64())
            }
        }
    }
}

/// One open connection: lettre's, and our handle on its socket (to see
/// whether the server closed it while it was idle).
struct Connection {
    smtp: AsyncSmtpConnection,
    socket: Arc<TcpStream>,
    /// TLS bytes may arrive unasked (a TLS 1.3 session ticket), so seeing
    /// data on an idle TLS socket does not mean the server hung up.
    tls: bool,
}

struct Idle {
    conn: Connection,
    since: Instant,
}

struct Shared {
    server: SmtpServerConfig,
    timeout: Duration,
    max_idle: usize,
    idle_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    sweeper_started: AtomicBool,
}

/// The pool. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SmtpPool {
    shared: Arc<Shared>,
}

impl SmtpPool {
    /// `timeout` bounds connecting (TCP, greeting, EHLO, TLS, AUTH) and,
    /// separately, each message's conversation.
    pub fn new(
        server: SmtpServerConfig,
        timeout: Duration,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                server,
                timeout,
                max_idle,
                idle_timeout,
                idle: Mutex::new(Vec::new()),
                sweeper_started: AtomicBool::new(false),
            }),
        }
    }

    pub fn server(&self) -> &SmtpServerConfig {
        &self.shared.server
    }

    /// Connections idle in the pool now.
    pub fn idle_connections(&self) -> usize {
        lock(&self.shared.idle).len()
    }

    /// Sends one message on a pooled connection (or a new one). The
    /// connection goes back to the pool only if the whole conversation
    /// succeeded.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<Response, SendError> {
        self.start_sweeper();
        let timeout = self.shared.timeout;
        let mut conn = match tokio::time::timeout(timeout, self.checkout()).await {
            Ok(conn) => conn?,
            Err(_) => {
                return Err(SendError::Timeout {
                    during: "connecting",
                    after: timeout,
                });
            }
        };
        match tokio::time::timeout(timeout, conn.smtp.send(envelope, raw)).await {
            Ok(Ok(response)) => {
                self.checkin(conn);
                Ok(response)
            }
            // lettre has already sent QUIT where it could; the socket
            // closes as `conn` is dropped.
            Ok(Err(e)) => Err(SendError::Smtp(e)),
            Err(_) => Err(SendError::Timeout {
                during: "sending the message",
                after: timeout,
            }),
        }
    }

    /// Closes the idle connections (QUIT, each bounded by the timeout).
    pub async fn shutdown(&self) {
        let idle: Vec<Idle> = std::mem::take(&mut *lock(&self.shared.idle));
        let timeout = self.shared.timeout;
        let quits = idle.into_iter().map(|mut i| async move {
            let _ = tokio::time::timeout(timeout, i.conn.smtp.quit()).await;
        });
        futures_util::future::join_all(quits).await;
    }

    /// The most recently used idle connection that is still open, or a new
    /// one.
    async fn checkout(&self) -> Result<Connection, SendError> {
        loop {
            let parked = {
                let mut idle = lock(&self.shared.idle);
                idle.pop()
            };
            let Some(parked) = parked else {
                return self.connect().await;
            };
            if parked.since.elapsed() > self.shared.idle_timeout {
                close(parked.conn, self.shared.timeout);
                continue;
            }
            let mut conn = parked.conn;
            match probe(&conn.socket) {
                Probe::Quiet => return Ok(conn),
                Probe::Data if conn.tls => {
                    if conn.smtp.test_connected().await {
                        return Ok(conn);
                    }
                }
                // A plain server that speaks unasked is saying goodbye
                // (421); closed or reset needs no comment.
                Probe::Data | Probe::Closed => {}
            }
            tracing::debug!("dropping a pooled SMTP connection the server closed");
        }
    }

    fn checkin(&self, conn: Connection) {
        if conn.smtp.has_broken() {
            return;
        }
        let mut idle = lock(&self.shared.idle);
        if idle.len() < self.shared.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        } else {
            drop(idle);
            close(conn, self.shared.timeout);
        }
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let server = &self.shared.server;
        let tcp = TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(SendError::Connect)?;
        // The point of this module.
        tcp.set_nodelay(true).map_err(SendError::Connect)?;
        let socket = Arc::new(tcp);
        let plain = Box::new(SharedTcp(socket.clone()));
        let stream: Box<dyn AsyncTokioStream> = match &server.security {
            Security::Implicit(params) => {
                // lettre can only wrap a stream it was handed in TLS after
                // the greeting (STARTTLS), so for implicit TLS the
                // handshake is made with lettre's own (deprecated but
                // public) network stream and the result handed over.
                #[allow(deprecated)]
                let mut tls = AsyncNetworkStream::use_existing_tokio1(plain);
                #[allow(deprecated)]
                tls.upgrade_tls(params.clone())
                    .await
                    .map_err(SendError::Smtp)?;
                Box::new(ImplicitTls(tls))
            }
            _ => plain,
        };
        let mut smtp = AsyncSmtpConnection::connect_with_transport(stream, &server.hello)
            .await
            .map_err(SendError::Smtp)?;
        match &server.security {
            Security::Opportunistic(params) if smtp.can_starttls() => smtp
                .starttls(params.clone(), &server.hello)
                .await
                .map_err(SendError::Smtp)?,
            Security::Required(params) => smtp
                .starttls(params.clone(), &server.hello)
                .await
                .map_err(SendError::Smtp)?,
            _ => {}
        }
        if let Some(credentials) = &server.credentials {
            smtp.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(SendError::Smtp)?;
        }
        // lettre sees an implicit-TLS stream as plain (it did not wrap it
        // itself); opportunistic may have stayed plain.
        let tls = matches!(server.security, Security::Implicit(_)) || smtp.is_encrypted();
        Ok(Connection { smtp, socket, tls })
    }

    /// Closes idle connections past `idle_timeout`, every quarter of it,
    /// until the pool is dropped. Started at the first send (a runtime is
    /// running then).
    fn start_sweeper(&self) {
        if self.shared.sweeper_started.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let every = (self.shared.idle_timeout / 4).max(Duration::from_secs(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(shared) = weak.upgrade() else { return };
                let expired: Vec<Idle> = {
                    let mut idle = lock(&shared.idle);
                    let (old, fresh): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut *idle)
                        .into_iter()
                        .partition(|i| i.since.elapsed() > shared.idle_timeout);
                    *idle = fresh;
                    old
                };
                for i in expired {
                    close(i.conn, shared.timeout);
                }
            }
        });
    }
}

/// Says QUIT in the background (bounded by `timeout`) and closes.
fn close(mut conn: Connection, timeout: Duration) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(timeout, conn.smtp.quit()).await;
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing is left half-done under this lock: a panic elsewhere does not
    // make the list wrong.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

enum Probe {
    /// Nothing to read: as open as we can tell without asking.
    Quiet,
    /// The server sent something unasked.
    Data,
    /// End of stream or an error: the server closed or reset it.
    Closed,
}

/// Looks at an idle socket without waiting and without consuming anything.
fn probe(socket: &TcpStream) -> Probe {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    match socket.poll_peek(&mut cx, &mut buf) {
        Poll::Pending => Probe::Quiet,
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => Probe::Closed,
        Poll::Ready(Ok(_)) => Probe::Data,
    }
}

/// Our TCP stream as lettre takes it, shared with the pool (which only
/// peeks at it while the connection is idle).
#[derive(Debug)]
struct SharedTcp(Arc<TcpStream>);

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Nothing is buffered here, and with TCP_NODELAY nothing waits in
        // the kernel either.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes when the connection (and the pool's handle on
        // it) is dropped, which follows every shutdown.
        Poll::Ready(Ok(()))
    }
}

impl AsyncTokioStream for SharedTcp {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

/// lettre's TLS stream (futures-io) as the tokio stream lettre takes.
#[allow(deprecated)]
#[derive(Debug)]
struct ImplicitTls(AsyncNetworkStream);

impl AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(futures_util::io::AsyncRead::poll_read(
            Pin::new(&mut self.0),
            cx,
            buf.initialize_unfilled()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_util::io::AsyncWrite::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_util::io::AsyncWrite::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_util::io::AsyncWrite::poll_close(Pin::new(&mut self.0), cx)
    }
}

impl AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        #[allow(deprecated)]
        self.0.peer_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> SmtpServerConfig {
        SmtpServerConfig::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn urls_read_as_lettre_reads_them() {
        let c = parsed("smtp://127.0.0.1:2525");
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 2525));
        assert!(matches!(c.security, Security::Plain));
        assert!(c.credentials.is_none());

        let c = parsed("smtp://relay.example.no");
        assert_eq!(c.port, 25);
        assert!(matches!(c.security, Security::Plain));

        let c = parsed("smtp://relay.example.no?tls=required");
        assert_eq!(c.port, 587);
        assert!(matches!(c.security, Security::Required(_)));

        let c = parsed("smtp://relay.example.no:2587?tls=opportunistic");
        assert_eq!(c.port, 2587);
        assert!(matches!(c.security, Security::Opportunistic(_)));

        let c = parsed("smtps://al%40ice:hun%3Ater2@relay.example.no/varsel.example.no");
        assert_eq!(c.port, 465);
        assert!(matches!(c.security, Security::Implicit(_)));
        assert_eq!(
            c.credentials,
            Some(Credentials::new("al@ice".to_owned(), "hun:ter2".to_owned()))
        );
        assert_eq!(c.hello, ClientId::Domain("varsel.example.no".to_owned()));
        assert_eq!(c.summary(), "relay.example.no:465, implicit TLS, AUTH");

        // A user without a password is no credentials, as in lettre.
        assert!(parsed("smtp://alice@relay").credentials.is_none());

        let c = parsed("smtp://[::1]:2525");
        assert_eq!(c.host, "::1");

        for bad in ["http://relay", "smtp://relay?tls=yes", "not a url"] {
            assert!(SmtpServerConfig::from_url(bad).is_err(), "{bad}");
        }
    }
}
