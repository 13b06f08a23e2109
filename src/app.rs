//! The application: shared state, the router with its middleware, and the
//! server that binds its own listener (port 0 in tests), runs background
//! tasks and shuts down gracefully without hanging.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::advisory::page::CampaignCache;
use crate::attribution::Attributor;
use crate::auth::{ClientRateLimiter, SharedRateLimiter};
use crate::clock::Clock;
use crate::config::Settings;
use crate::mail::Mailer;
use crate::mail::outbox::Outbox;
use crate::metrics::Metrics;
use crate::rate_limit::KeyedRateLimit;

/// What every request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub settings: Arc<Settings>,
    pub attributor: Arc<Attributor>,
    pub metrics: Arc<Metrics>,
    pub rate_limiter: SharedRateLimiter,
    /// Advisory page requests per client address.
    pub page_rate_limiter: Arc<KeyedRateLimit<IpAddr>>,
    /// Dashboard login attempts per client address.
    pub login_rate_limiter: Arc<KeyedRateLimit<IpAddr>>,
    /// Business time; tests move it forward.
    pub clock: Clock,
    /// Who mail is from and where it goes; the outbox sends with it.
    pub mailer: Arc<Mailer>,
    /// The advisory pages' rendering of each campaign.
    pub campaign_pages: Arc<CampaignCache>,
}

impl AppState {
    pub fn new(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        Ok(Self {
            pool,
            mailer: Arc::new(Mailer::from_settings(&settings)?),
            rate_limiter: Arc::new(ClientRateLimiter::new(settings.rate_limit_per_minute)),
            page_rate_limiter: Arc::new(KeyedRateLimit::new(settings.page_rate_limit_per_minute)),
            login_rate_limiter: Arc::new(KeyedRateLimit::new(settings.login_rate_limit_per_minute)),
            settings: Arc::new(settings),
            attributor: Arc::new(Attributor::new()),
            metrics: Arc::new(Metrics::new()?),
            clock: Clock::system(),
            campaign_pages: Arc::default(),
        })
    }
}

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(crate::auth::routes::routes())
        .merge(crate::registry::routes())
        .merge(crate::attribution::routes::routes())
        .merge(crate::findings::routes::routes())
        .merge(crate::jobs::routes::routes())
        .merge(crate::mail::routes::routes())
        .merge(crate::campaigns::routes())
        .merge(crate::notifications::routes::routes())
        .merge(crate::advisory::api::routes())
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        // Ingest streams its bodies and enforces its own (larger) limit.
        .merge(crate::ingest::routes::routes());

    Router::new()
        .merge(crate::health::routes())
        .merge(crate::openapi::routes())
        .merge(api)
        .merge(crate::web::router())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let request_id = req
                .headers()
                .get(&REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let path = loggable_path(req.uri().path());
            tracing::info_span!("request", method = %req.method(), uri = %path, request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(CatchPanicLayer::custom(|_| {
            crate::error::ApiError::Internal(anyhow::anyhow!("handler panicked"))
                .into_response_owned()
        }))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state)
}

/// A request's path as logs may show it: an advisory link's token is a
/// credential, so it never reaches a log.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    match path.strip_prefix("/a/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, tail)) => format!("/a/{{token}}/{tail}").into(),
            None => "/a/{token}".into(),
        },
        None => path.into(),
    }
}

/// The API answers an unknown endpoint with a problem document; anything
/// else is a page that does not exist.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response {
    if uri.path().starts_with("/api/") {
        crate::error::ApiError::NotFound("no such endpoint".to_owned()).into_response_owned()
    } else {
        crate::web::not_found(&headers)
    }
}

async fn record_metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    state.metrics.observe_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds the configured address (port 0 picks a free port).
    pub async fn build(settings: Settings, pool: PgPool) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        Ok(Self {
            listener,
            state: AppState::new(settings, pool)?,
        })
    }

    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then gives in-flight requests the
    /// configured grace period, then returns whatever is still running.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let grace = Duration::from_secs(self.state.settings.shutdown_grace_seconds);
        // Background work (jobs and the outbox) is not aborted but told to
        // stop: it claims no more and finishes what it runs, so nothing is
        // left for a lease to expire on.
        let cancel = CancellationToken::new();
        let mut background = crate::jobs::runner::spawn(
            self.state.clone(),
            self.state.settings.job_workers,
            cancel.clone(),
        );
        let outbox = (self.state.settings.outbox_workers > 0)
            .then(|| tokio::spawn(Outbox::new(&self.state).run(cancel.clone())));
        tokio::spawn(forget_idle_clients(self.state.clone(), cancel.clone()));
        let (tx, rx) = tokio::sync::watch::channel(false);
        let stop_on_signal = cancel.clone();
        let app = router(self.state.clone());
        let server = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down: no new connections");
            stop_on_signal.cancel();
            let _ = tx.send(true);
        });
        let mut stopped = rx.clone();
        let deadline = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            r = server => r.map_err(anyhow::Error::from),
            () = deadline => {
                tracing::warn!(?grace, "in-flight requests did not finish in time; stopping anyway");
                Ok(())
            }
        };
        cancel.cancel();
        let drained = async { while background.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(
                ?grace,
                "background jobs did not finish in time; their leases will expire"
            );
        }
        if let Some(outbox) = outbox {
            // A send in flight ends within the SMTP timeout; past that the
            // lease hands it to another instance.
            let wait = grace.max(Duration::from_secs(
                self.state.settings.smtp_timeout_seconds,
            ));
            match tokio::time::timeout(wait, outbox).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the outbox failed"),
                Err(_) => tracing::warn!(?wait, "sends in flight did not finish in time"),
            }
        }
        result
    }
}

/// The rate limits of this instance forget clients whose budget is full
/// again, every few minutes, so a flood of distinct addresses does not
/// keep memory.
async fn forget_idle_clients(state: AppState, cancel: CancellationToken) {
    let mut every = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = every.tick() => {
                state.page_rate_limiter.forget_idle();
                state.login_rate_limiter.forget_idle();
                state.rate_limiter.forget_idle();
            }
            () = cancel.cancelled() => return,
        }
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn advisory_tokens_never_reach_the_log() {
        let token = "ab".repeat(32);
        assert_eq!(super::loggable_path(&format!("/a/{token}")), "/a/{token}");
        assert_eq!(
            super::loggable_path(&format!("/a/{token}/findings.csv")),
            "/a/{token}/findings.csv"
        );
        assert_eq!(super::loggable_path("/api/v1/findings"), "/api/v1/findings");
    }
}
