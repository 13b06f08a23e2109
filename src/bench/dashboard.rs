//! `varsel bench dashboard`: the dashboard's heaviest pages over the data
//! set — the overview, the campaign's progress page and a filtered
//! findings list — served by a `varsel serve` child to a logged-in
//! operator, each under an open-loop load of a fixed rate (see
//! [`super::advisory::load`]), against `/healthz` under the same load in
//! the same run.
//!
//! The data set goes in as in `bench drafting` (through the API, then the
//! ProxyLogon campaign drafted, approved and mailed to files); the charts'
//! figures are gathered once, timed, as the periodic job would.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use reqwest::header::{COOKIE, SET_COOKIE};

use super::advisory::load;
use crate::config::Settings;
use crate::dashboard::operators::{self, Role};
use crate::domain::Actor;

const EMAIL: &str = "bench@varsel.invalid";
const PASSWORD: &str = "bench password, not a secret";

pub async fn run(
    settings: Settings,
    data: &Path,
    batch: usize,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        rate > 0 && seconds > 0,
        "--rate and --seconds must be positive"
    );
    println!("machine: {}", super::machine());
    let (settings, pool, campaign) =
        super::drafting::mailed_campaign(settings, data, batch, "bench_dashboard").await?;
    sqlx::query("ANALYZE").execute(&pool).await?;
    let mut conn = pool.acquire().await?;
    let started = Instant::now();
    crate::dashboard::stats::refresh(&mut conn, chrono::Utc::now()).await?;
    println!(
        "charts' figures gathered (the periodic job): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let observations: i64 = sqlx::query_scalar("SELECT count(*) FROM observations")
        .fetch_one(&mut *conn)
        .await?;
    println!("observations stored: {observations}");
    operators::create(&mut conn, &Actor::Cli, EMAIL, None, Role::Viewer, PASSWORD)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(conn);

    let server = super::ingest::start_server(&settings).await?;
    // Redirects not followed: a page that sent the bench to the login page
    // counts as an error, not as a fast answer.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = login(&http, &server.base).await?;
    let pages = [
        ("baseline /healthz", "/healthz".to_owned()),
        ("overview", "/".to_owned()),
        ("campaign progress", format!("/campaigns/{campaign}")),
        (
            "campaign progress, by organisation",
            format!("/campaigns/{campaign}?sort=organisation"),
        ),
        (
            "findings, filtered",
            "/findings?check=exchange-proxylogon&state=vulnerable&status=open".to_owned(),
        ),
        (
            "findings, filtered, by address",
            "/findings?check=exchange-proxylogon&state=vulnerable&status=open&sort=ip".to_owned(),
        ),
        (
            "findings, filtered, newest first",
            "/findings?check=exchange-proxylogon&state=vulnerable&status=open&sort=-first_seen"
                .to_owned(),
        ),
    ];
    let mut baseline = None;
    for (what, path) in pages {
        let url = format!("{}{path}", server.base);
        let first = http.get(&url).header(COOKIE, &cookie).send().await?;
        anyhow::ensure!(
            first.status().is_success(),
            "{path} answered {}",
            first.status()
        );
        let size = first.bytes().await?.len();
        load(&http, &url, Some(&cookie), rate, 2).await?;
        let stats = load(&http, &url, Some(&cookie), rate, seconds).await?;
        stats.print(&format!("{what} ({path}, {} KB)", size / 1024));
        let p99 = stats.quantile(0.99).as_secs_f64();
        match baseline {
            None => baseline = Some(p99),
            Some(base) => println!("  p99 / p99 baseline: {:.1}", p99 / base),
        }
    }
    Ok(())
}

/// Logs the bench's operator in as a browser would; returns the cookies.
async fn login(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let cookie_of = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.strip_prefix(&format!("{name}="))?
                    .split(';')
                    .next()
                    .map(str::to_owned)
            })
    };
    let form = http.get(format!("{base}/login")).send().await?;
    let csrf_cookie = cookie_of(&form, "varsel_csrf").context("no CSRF cookie")?;
    let html = form.text().await?;
    let token = html
        .split(r#"name="csrf" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no CSRF token in the login form")?
        .to_owned();
    let answer = http
        .post(format!("{base}/login"))
        .header(COOKIE, format!("varsel_csrf={csrf_cookie}"))
        .header("origin", base)
        .form(&[
            ("csrf", token.as_str()),
            ("email", EMAIL),
            ("password", PASSWORD),
            ("next", "/"),
        ])
        .send()
        .await?;
    let session = cookie_of(&answer, "varsel_session")
        .with_context(|| format!("login answered {}", answer.status()))?;
    Ok(format!(
        "varsel_csrf={csrf_cookie}; varsel_session={session}"
    ))
}
