//! Test harness: a fresh database per test, the real application on a free
//! port, HTTP through reqwest, and the `varsel` binary for CLI tests.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use varsel::auth::Scope;
use varsel::config::{Secret, Settings};

pub struct TestApp {
    pub base: String,
    pub pool: PgPool,
    pub database_url: String,
    pub http: reqwest::Client,
    pub admin: String,
    pub ingest: String,
    pub read: String,
    /// The running application's state: its clock, mailer, settings.
    pub state: varsel::app::AppState,
    leftover_jobs_allowed: AtomicBool,
    /// Where the file transport writes (the default: no `smtp_url`).
    pub mail_dir: PathBuf,
    _mail_dir: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if !std::thread::panicking() && !self.leftover_jobs_allowed.load(Ordering::Relaxed) {
            let left = unfinished_jobs(&self.database_url, self.state.clock.now());
            assert!(
                left.is_empty(),
                "the test left background jobs unfinished (run `app.run_jobs()`, or \
                 `app.allow_leftover_jobs()` if that is the point): {left:?}"
            );
        }
    }
}

/// Due, running and failed jobs (periodic ones, always scheduled ahead,
/// aside). Asked on a thread of its own: `Drop` runs inside the test's
/// runtime, which cannot be blocked on.
fn unfinished_jobs(database_url: &str, now: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    let url = database_url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
            sqlx::query_scalar(
                "SELECT format('%s %s %s', id, status, payload) FROM jobs
                  WHERE (status IN ('pending', 'running') AND run_at <= $1 OR status = 'failed')
                    AND coalesce(dedupe_key, '') NOT LIKE $2 || '%'
                  ORDER BY id",
            )
            .bind(now)
            .bind(varsel::jobs::PERIODIC_PREFIX)
            .fetch_all(&mut conn)
            .await
            .expect("read jobs")
        })
    })
    .join()
    .expect("job check")
}

fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/varsel".to_owned())
}

/// Drops test databases left by earlier runs (older than an hour), once per
/// test process.
async fn sweep_old_databases(admin: &mut sqlx::PgConnection) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    if SWEPT.set(()).is_err() {
        return;
    }
    let now = chrono::Utc::now().timestamp();
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'varsel_test_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix("varsel_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|t| t.parse::<i64>().ok());
        if created.is_some_and(|t| now - t > 3600) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// A fresh, migrated database; returns its URL.
pub async fn fresh_database() -> String {
    let base: PgConnectOptions = server_url().parse().expect("DATABASE_URL");
    let mut admin = base
        .clone()
        .database("postgres")
        .connect()
        .await
        .expect("connect to PostgreSQL");
    sweep_old_databases(&mut admin).await;
    let name = format!(
        "varsel_test_{}_{}",
        chrono::Utc::now().timestamp(),
        uuid::Uuid::new_v4().simple()
    );
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create test database");
    admin.close().await.ok();
    base.database(&name).to_url_lossy().to_string()
}

/// Test settings: mail goes to `.eml` files in `mail_dir` unless a test
/// sets `smtp_url`.
pub fn settings_for(database_url: &str, mail_dir: &Path) -> Settings {
    Settings {
        database_url: Secret::new(database_url),
        mail_dir: mail_dir.to_owned(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        db_max_connections: 8,
        rate_limit_per_minute: 0,
        shutdown_grace_seconds: 2,
        ingest_chunk_rows: 1000,
        // Background work runs when a test says so (`run_jobs`), so that
        // what it does is part of the test's story, not a race with it.
        job_workers: 0,
        link_secret: Some(Secret::new(hex::encode(rand::random::<[u8; 32]>()))),
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let database_url = fresh_database().await;
    let mail_dir = tempfile::tempdir().expect("mail folder");
    let mut settings = settings_for(&database_url, mail_dir.path());
    adjust(&mut settings);
    spawn_on(settings, mail_dir).await
}

/// Another instance sharing `app`'s database.
pub async fn spawn_second_instance(app: &TestApp) -> TestApp {
    spawn_second_instance_with(app, |_| {}).await
}

/// Another instance sharing `app`'s database, with its own settings.
pub async fn spawn_second_instance_with(
    app: &TestApp,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let mail_dir = tempfile::tempdir().expect("mail folder");
    let mut settings = settings_for(&app.database_url, mail_dir.path());
    adjust(&mut settings);
    let mut second = spawn_on(settings, mail_dir).await;
    second.admin = app.admin.clone();
    second.ingest = app.ingest.clone();
    second.read = app.read.clone();
    second
}

async fn spawn_on(settings: Settings, mail_dir: tempfile::TempDir) -> TestApp {
    // Server-side errors show in the output of a failing test.
    varsel::telemetry::init("warn", "text");
    let database_url = settings.database_url.expose().to_owned();
    let pool = varsel::db::connect(&settings).await.expect("connect");
    varsel::db::migrate(&pool).await.expect("migrate");
    let app = varsel::app::Application::build(settings, pool.clone())
        .await
        .expect("build app");
    let addr = app.local_addr().expect("addr");
    let state = app.state().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    let token = |name: &'static str, scope: Scope| {
        let pool = pool.clone();
        async move {
            let (_, token) =
                varsel::auth::create_client(&pool, &varsel::domain::Actor::Cli, name, &[scope])
                    .await
                    .expect("token");
            token.expose().to_owned()
        }
    };
    TestApp {
        base: format!("http://{addr}"),
        admin: token("test-admin", Scope::Admin).await,
        ingest: token("test-scanner", Scope::Ingest).await,
        read: token("test-reader", Scope::Read).await,
        pool,
        database_url,
        http: reqwest::Client::new(),
        state,
        leftover_jobs_allowed: AtomicBool::new(false),
        mail_dir: mail_dir.path().to_owned(),
        _mail_dir: mail_dir,
        shutdown: Some(tx),
    }
}

impl TestApp {
    /// Runs every due background job to completion; returns how many ran.
    pub async fn run_jobs(&self) -> usize {
        varsel::jobs::run_pending(&self.state)
            .await
            .expect("run jobs")
    }

    /// This test means to leave jobs pending or failed.
    pub fn allow_leftover_jobs(&self) {
        self.leftover_jobs_allowed.store(true, Ordering::Relaxed);
    }

    /// The Prometheus exposition at `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn request(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.request(Method::GET, path, token)).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(Method::POST, path, token).json(&body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        send(self.request(Method::PATCH, path, token).json(&body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        send(self.request(Method::DELETE, path, token)).await
    }

    /// Pushes a body in a format, as a scanner would.
    pub async fn push(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        send(
            self.request(Method::POST, path, &self.ingest)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    /// Registers an organisation with networks; returns its id.
    pub async fn organisation(&self, reference: &str, cidrs: &[&str]) -> i64 {
        let (status, org) = self
            .post(
                "/api/v1/organisations",
                &self.admin,
                serde_json::json!({ "ref": reference, "name": format!("{reference} AS") }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{org}");
        let id = org["id"].as_i64().expect("id");
        for cidr in cidrs {
            let (status, body) = self
                .post(
                    &format!("/api/v1/organisations/{id}/networks"),
                    &self.admin,
                    serde_json::json!({ "cidr": cidr }),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        // New networks enqueue late attribution; run it, as a serving
        // instance would.
        self.run_jobs().await;
        id
    }

    /// Runs the `varsel` binary against this app's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_varsel"))
            .args(args)
            .env("DATABASE_URL", &self.database_url)
            .env("VARSEL_LOG", "warn")
            .output()
            .expect("run varsel")
    }
}

pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.expect("request");
    let status = response.status();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// A format sample from the repository's `tests/fixtures/formats`.
pub fn sample(path: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/formats"
    ))
    .join(path)
}

/// A small generated data set (the generator of `varsel bench dataset`),
/// made once per test process. The folder is kept (a static is never
/// dropped, so it could not be removed at exit anyway) under Cargo's
/// target/tmp, where leftovers go with `cargo clean`.
pub fn small_dataset() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("varsel-ds-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("temporary folder")
            .keep();
        let spec = varsel::bench::dataset::DatasetSpec {
            organisations: 400,
            observations: 3000,
            ..Default::default()
        };
        varsel::bench::dataset::generate(&dir, &spec).expect("generate the data set");
        dir
    })
    .clone()
}
