//! `/notifications`: each advisory sent, filtered and paged; one
//! notification with its deliveries (every attempt and the mail server's
//! reply), its page's opens and the organisation's answers, and the
//! actions on it: retry a failed delivery, resend one, revoke the link,
//! reissue it (the new address shown once, on the answer page only); and
//! each delivery's message exactly as stored and sent. The same domain
//! functions as the API.

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::operators::Role;
use super::routes::{
    Act, Analyst, Chrome, ListOrder as _, Sorts, list_address, oslo_time, query_id, sort_of,
    with_csrf_cookie,
};
use super::sessions::Signed;
use crate::advisory::store as advisory;
use crate::app::AppState;
use crate::mail::outbox::{self, DeliveryInfo};
use crate::notifications::mailing;
use crate::notifications::model::{Notification, NotificationStatus};
use crate::notifications::store::{self, NotificationOrder, NotificationQuery};
use crate::notifications::tokens;
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/notifications", get(list))
        .route("/notifications/{id}", get(show))
        .route("/notifications/{id}/revoke", post(revoke))
        .route("/notifications/{id}/reissue", post(reissue))
        .route("/notifications/{id}/deliveries/{delivery}", get(message))
        .route(
            "/notifications/{id}/deliveries/{delivery}/retry",
            post(retry),
        )
        .route(
            "/notifications/{id}/deliveries/{delivery}/resend",
            post(resend),
        )
}

/// Rows per page.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    campaign: Option<String>,
    status: Option<String>,
    organisation: Option<String>,
    /// `id` (the default), `organisation`, `status`.
    #[serde(default)]
    sort: String,
    /// Where the previous page ended (`NotificationOrder::cursor_of`).
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/notifications.html")]
struct ListPage {
    layout: Layout,
    chrome: Chrome,
    campaign: String,
    status: String,
    organisation: String,
    statuses: Vec<&'static str>,
    rows: Vec<(Notification, String)>,
    next: Option<String>,
    /// The orders the headers offer.
    sorts: Sorts,
}

impl ListPage {
    fn is_status(&self, s: &str) -> bool {
        self.status == s
    }
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(NotificationStatus::parse(s).map_err(WebError::BadRequest)?),
    };
    let query = NotificationQuery {
        status,
        campaign_id: query_id("campaign", q.campaign.as_deref())?,
        organisation_id: query_id("organisation", q.organisation.as_deref())?,
        ..NotificationQuery::default()
    };
    let order: NotificationOrder = sort_of(&q.sort)?;
    let mut conn = state.pool.acquire().await?;
    let mut rows = store::list_in_order(&mut conn, &query, order, q.after.as_deref(), PAGE).await?;
    let campaign = query.campaign_id.map_or(String::new(), |c| c.to_string());
    let organisation = query
        .organisation_id
        .map_or(String::new(), |o| o.to_string());
    let status = status.map_or("", NotificationStatus::as_str).to_owned();
    // The list's address: its filters, in `order`, after `after`.
    let address = |order: NotificationOrder, after: Option<&str>| {
        list_address(
            "/notifications",
            &[
                ("campaign", &campaign),
                ("status", &status),
                ("organisation", &organisation),
                ("sort", order.param()),
                ("after", after.unwrap_or("")),
            ],
        )
    };
    let next = (rows.len() > PAGE).then(|| {
        rows.truncate(PAGE);
        let last = rows.last().map(|n| order.cursor_of(n));
        address(order, last.as_deref())
    });
    let sorts = Sorts::of(order, |o| address(o, None));
    let page = ListPage {
        layout: Layout::dashboard("Notifications · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        campaign,
        status,
        organisation,
        statuses: NotificationStatus::ALL.iter().map(|s| s.as_str()).collect(),
        rows: rows
            .into_iter()
            .map(|n| (oslo_time(n.created_at), n))
            .map(|(t, n)| (n, t))
            .collect(),
        next,
        sorts,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

struct Answer {
    kind: String,
    at: String,
    finding: Option<i64>,
    detail: String,
}

#[derive(Template)]
#[template(path = "dashboard/notification.html")]
struct ShowPage {
    layout: Layout,
    chrome: Chrome,
    n: Notification,
    /// (label, Oslo time) of what happened when.
    dates: Vec<(&'static str, String)>,
    deliveries: Vec<(DeliveryInfo, String)>,
    answers: Vec<Answer>,
    can_act: bool,
    /// A link just reissued: shown on this answer only.
    issued: Option<(String, String)>,
}

async fn render(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: i64,
    issued: Option<(String, String)>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let n = store::fetch(&mut conn, id).await?;
    let deliveries = outbox::for_notification(&mut conn, id)
        .await?
        .into_iter()
        .map(|d| (oslo_time(d.created_at), d))
        .map(|(t, d)| (d, t))
        .collect();
    let answers = advisory::responses(&mut conn, id)
        .await?
        .into_iter()
        .map(|r| Answer {
            kind: r.kind,
            at: oslo_time(r.at),
            finding: r.finding_id,
            detail: r.detail.to_string(),
        })
        .collect();
    let mut dates = vec![("Drafted", oslo_time(n.created_at))];
    for (label, at) in [
        ("Approved", n.approved_at),
        ("Mailed", n.mailed_at),
        ("Sent", n.sent_at),
        ("First opened", n.first_opened_at),
        ("Last opened", n.last_opened_at),
        ("Acknowledged", n.acknowledged_at),
        ("Resolved", n.resolved_at),
        ("Link expires", n.link_expires_at),
    ] {
        if let Some(at) = at {
            dates.push((label, oslo_time(at)));
        }
    }
    let page = ShowPage {
        layout: Layout::dashboard(format!("Notification {} · Varsel", n.ticket)),
        chrome: Chrome::of(state, signed, csrf),
        n,
        dates,
        deliveries,
        answers,
        can_act: signed.operator.role >= Role::Analyst,
        issued,
    };
    let mut response = page::render(&page)?;
    // The page may carry a link just issued: never kept by a cache.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(with_csrf_cookie(state, csrf, response))
}

async fn show(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    render(&state, &signed, &csrf, id, None).await
}

fn back(id: i64) -> Response {
    Redirect::to(&format!("/notifications/{id}")).into_response()
}

async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    advisory::revoke_links(&mut conn, &signed.operator.actor(), id, state.clock.now()).await?;
    Ok(back(id))
}

async fn reissue(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, csrf, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let link = advisory::reissue_link(
        &mut conn,
        &signed.operator.actor(),
        &state.settings.link_secret(),
        &state.settings.public_base_url,
        id,
        state.clock.now(),
    )
    .await?;
    drop(conn);
    // Shown on this answer and nowhere else: no redirect, no log.
    render(
        &state,
        &signed,
        &csrf,
        id,
        Some((link.url, oslo_time(link.expires_at))),
    )
    .await
}

async fn retry(
    State(state): State<AppState>,
    Path((id, delivery)): Path<(i64, i64)>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let d = outbox::fetch(&mut conn, delivery).await?;
    if d.notification_id != Some(id) {
        return Err(WebError::NotFound);
    }
    outbox::retry(
        &mut conn,
        &signed.operator.actor(),
        delivery,
        state.clock.now(),
    )
    .await?;
    Ok(back(id))
}

async fn resend(
    State(state): State<AppState>,
    Path((id, delivery)): Path<(i64, i64)>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    mailing::resend(
        &mut conn,
        &signed.operator.actor(),
        id,
        delivery,
        state.clock.now(),
    )
    .await?;
    Ok(back(id))
}

/// Where the stored message holds the link's token, the page shows this.
const TOKEN_SHOWN_AS: &str = "[token: put in as the mail is sent, kept nowhere]";

#[derive(Template)]
#[template(path = "dashboard/delivery_message.html")]
struct MessagePage {
    layout: Layout,
    chrome: Chrome,
    n: Notification,
    m: outbox::StoredMessage,
    queued: String,
    sent: Option<String>,
    text: String,
    html: String,
    /// (file name, content type, size in bytes).
    attachments: Vec<(String, String, usize)>,
}

/// One delivery's message: its headers, its text and HTML parts as stored
/// (the HTML as source, never rendered here: it is the recipient's view),
/// its attachments.
async fn message(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path((id, delivery)): Path<(i64, i64)>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    let m = outbox::message(&mut conn, delivery).await?;
    if m.notification_id != Some(id) {
        return Err(WebError::NotFound);
    }
    let n = store::fetch(&mut conn, id).await?;
    let attachments = m
        .attachments
        .iter()
        .map(|a| {
            // Standard base64: 3 bytes in every 4 characters, less padding.
            let padding = a.content.bytes().rev().take_while(|&b| b == b'=').count();
            let size = (a.content.len() / 4 * 3).saturating_sub(padding);
            (a.filename.clone(), a.content_type.clone(), size)
        })
        .collect();
    let page = MessagePage {
        layout: Layout::dashboard(format!("{} · {} · Varsel", m.subject, n.ticket)),
        chrome: Chrome::of(&state, &signed, &csrf),
        queued: oslo_time(m.created_at),
        sent: m.sent_at.map(oslo_time),
        text: m.text_body.replace(tokens::PLACEHOLDER, TOKEN_SHOWN_AS),
        html: m.html_body.replace(tokens::PLACEHOLDER, TOKEN_SHOWN_AS),
        attachments,
        n,
        m,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}
