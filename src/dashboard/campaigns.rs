//! `/campaigns`: advisories written (Norwegian and English side by side,
//! previewed as the advisory page renders them), activated, approved,
//! followed and closed — through the same domain functions as the API
//! ([`crate::campaigns::store`], [`crate::notifications::mailing`]).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::operators::Role;
use super::overview;
use super::routes::{
    Act, Analyst, Chrome, ListOrder as _, Sorts, keyset_page, list_address, oslo_time, sort_of,
    with_csrf_cookie,
};
use super::sessions::Signed;
use super::stats;
use crate::app::AppState;
use crate::campaigns::markdown;
use crate::campaigns::model::{
    Campaign, CampaignPatch, CampaignSeverity, CampaignStatus, CampaignTextPatch, NewCampaign,
    NewCampaignText, NewUpdate, Tlp, default_reminder_days, default_states,
};
use crate::campaigns::store;
use crate::domain::DomainError;
use crate::notifications::mailing::{self, Selection};
use crate::notifications::model::Notification;
use crate::notifications::store::{self as notes, NotificationOrder, NotificationQuery};
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, FormFields};
use crate::web::page::{self, Layout};

pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/new", get(new_form))
        .route("/campaigns/{id}", get(progress).post(edit))
        .route("/campaigns/{id}/edit", get(edit_form))
        .route("/campaigns/{id}/activate", post(activate))
        .route("/campaigns/{id}/approve", post(approve))
        .route("/campaigns/{id}/updates", post(post_update))
        .route("/campaigns/{id}/close", post(close))
        .route("/campaigns/{id}/preview/{organisation}", get(mail_preview))
}

/// Rows per page.
const PAGE: usize = 50;

/// The text fields of one language: (form suffix, label).
const TEXTS: [(&str, &str); 6] = [
    ("title", "Title"),
    ("summary", "Summary"),
    ("impact", "Impact"),
    ("what_to_do", "What to do"),
    ("how_to_check", "How to check for compromise"),
    ("references", "References"),
];

/// The form's fields, named as the domain names them (`nb.title`) and as
/// the form does (`nb_title`).
const FIELDS: [(&str, &str); 17] = [
    ("slug", "slug"),
    ("tlp", "tlp"),
    ("severity", "severity"),
    ("nb.title", "nb_title"),
    ("nb.summary", "nb_summary"),
    ("nb.impact", "nb_impact"),
    ("nb.what_to_do", "nb_what_to_do"),
    ("nb.how_to_check", "nb_how_to_check"),
    ("nb.references", "nb_references"),
    ("en.title", "en_title"),
    ("en.summary", "en_summary"),
    ("en.impact", "en_impact"),
    ("en.what_to_do", "en_what_to_do"),
    ("en.how_to_check", "en_how_to_check"),
    ("en.references", "en_references"),
    ("checks", "checks"),
    ("cves", "cves"),
];

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    status: Option<String>,
    after: Option<i64>,
}

fn status_filter(s: Option<&str>) -> (&'static str, Option<CampaignStatus>) {
    match s {
        Some("draft") => ("draft", Some(CampaignStatus::Draft)),
        Some("active") => ("active", Some(CampaignStatus::Active)),
        Some("closed") => ("closed", Some(CampaignStatus::Closed)),
        _ => ("all", None),
    }
}

struct ListRow {
    c: Campaign,
    created: String,
    organisations: String,
    open_findings: String,
}

/// A campaign's open findings and organisations as the last figures
/// gathered count them (scanning every finding per view would not keep
/// the page fast), or a dash before the first count.
async fn figures(conn: &mut sqlx::PgConnection, id: i64) -> Result<(String, String), WebError> {
    Ok(match stats::campaign_figures(conn, id).await? {
        Some((findings, organisations)) => (findings.to_string(), organisations.to_string()),
        None => ("—".to_owned(), "—".to_owned()),
    })
}

#[derive(Template)]
#[template(path = "dashboard/campaigns.html")]
struct ListPage<'a> {
    layout: Layout,
    chrome: Chrome,
    status: &'a str,
    rows: Vec<ListRow>,
    next: Option<i64>,
    can_act: bool,
}

async fn list(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let (status, filter) = status_filter(q.status.as_deref());
    let mut conn = state.pool.acquire().await?;
    let mut found = store::list(&mut conn, filter, q.after.unwrap_or(0), PAGE).await?;
    let next = keyset_page(&mut found, PAGE, |r| r.id);
    let mut rows = Vec::with_capacity(found.len());
    for c in found {
        let (open_findings, organisations) = figures(&mut conn, c.id).await?;
        rows.push(ListRow {
            created: oslo_time(c.created_at),
            organisations,
            open_findings,
            c,
        });
    }
    let page = ListPage {
        layout: Layout::dashboard("Campaigns · Varsel"),
        chrome: Chrome::of(&state, &signed, &csrf),
        status,
        rows,
        next,
        can_act: signed.operator.role >= Role::Analyst,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

/// One language's texts rendered as the advisory page renders them.
struct Preview {
    lang: &'static str,
    title: String,
    sections: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "dashboard/campaign_form.html")]
struct FormPage {
    layout: Layout,
    chrome: Chrome,
    /// `None` for a new campaign.
    id: Option<i64>,
    form: Values,
    errors: FieldErrors,
    previews: Vec<Preview>,
}

/// The form's values by field name, to show it again.
#[derive(Default)]
struct Values(std::collections::HashMap<String, String>);

impl Values {
    fn of(form: &FormFields) -> Self {
        let mut names: Vec<String> = FIELDS.iter().map(|(_, f)| (*f).to_owned()).collect();
        names.push("slug".to_owned());
        Values(
            names
                .into_iter()
                .filter_map(|n| form.get(&n).map(|v| (n.clone(), v.to_owned())))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl FormPage {
    fn value(&self, name: &str) -> &str {
        self.form.get(name).unwrap_or("")
    }

    fn field(&self, lang: &str, name: &str) -> String {
        format!("{lang}_{name}")
    }

    fn is(&self, name: &str, value: &str) -> bool {
        self.value(name) == value
    }

    fn one_line(&self, name: &str) -> bool {
        name == "title"
    }

    fn error(&self, name: &str) -> Option<&str> {
        self.errors.get(name)
    }

    fn tlps(&self) -> Vec<&'static str> {
        Tlp::ALL.iter().map(|t| t.as_str()).collect()
    }
}

fn form_page(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: Option<i64>,
    form: Values,
    errors: FieldErrors,
    previews: Vec<Preview>,
) -> FormPage {
    let title = match id {
        Some(_) => "Edit campaign · Varsel",
        None => "New campaign · Varsel",
    };
    FormPage {
        layout: Layout::dashboard(title),
        chrome: Chrome::of(state, signed, csrf),
        id,
        form,
        errors,
        previews,
    }
}

fn previews_of(form: &Values) -> Vec<Preview> {
    ["nb", "en"]
        .into_iter()
        .map(|lang| Preview {
            lang,
            title: form.get(&format!("{lang}_title")).unwrap_or("").to_owned(),
            sections: TEXTS[1..]
                .iter()
                .map(|(name, label)| {
                    let md = form.get(&format!("{lang}_{name}")).unwrap_or("");
                    (*label, markdown::to_html(md))
                })
                .collect(),
        })
        .collect()
}

/// A stored campaign as the form's fields.
fn fields_of(c: &Campaign) -> Values {
    let mut pairs = vec![
        ("slug".to_owned(), c.slug.clone()),
        ("tlp".to_owned(), c.tlp.as_str().to_owned()),
        ("severity".to_owned(), c.severity.as_str().to_owned()),
        ("checks".to_owned(), c.checks.join("\n")),
        ("cves".to_owned(), c.cves.join("\n")),
    ];
    for (lang, t) in [("nb", &c.nb), ("en", &c.en)] {
        for (name, value) in [
            ("title", &t.title),
            ("summary", &t.summary),
            ("impact", &t.impact),
            ("what_to_do", &t.what_to_do),
            ("how_to_check", &t.how_to_check),
            ("references", &t.references),
        ] {
            pairs.push((format!("{lang}_{name}"), value.clone()));
        }
    }
    Values(pairs.into_iter().collect())
}

async fn new_form(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
) -> Result<Response, WebError> {
    if signed.operator.role < Role::Analyst {
        return Err(WebError::Forbidden);
    }
    let form = Values(
        [("tlp", "AMBER"), ("severity", "high")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    let page = form_page(
        &state,
        &signed,
        &csrf,
        None,
        form,
        FieldErrors::default(),
        vec![],
    );
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

async fn edit_form(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    if signed.operator.role < Role::Analyst {
        return Err(WebError::Forbidden);
    }
    let mut conn = state.pool.acquire().await?;
    let c = store::fetch(&mut conn, id).await?;
    let form = fields_of(&c);
    let previews = previews_of(&form);
    let page = form_page(
        &state,
        &signed,
        &csrf,
        Some(id),
        form,
        FieldErrors::default(),
        previews,
    );
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}

fn words(form: &FormFields, name: &str) -> Vec<String> {
    form.get(name)
        .unwrap_or("")
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn text(form: &FormFields, lang: &str, name: &str) -> String {
    form.get(&format!("{lang}_{name}")).unwrap_or("").to_owned()
}

fn new_text(form: &FormFields, lang: &str) -> NewCampaignText {
    NewCampaignText {
        title: text(form, lang, "title"),
        summary: text(form, lang, "summary"),
        impact: text(form, lang, "impact"),
        what_to_do: text(form, lang, "what_to_do"),
        how_to_check: text(form, lang, "how_to_check"),
        references: text(form, lang, "references"),
    }
}

fn text_patch(form: &FormFields, lang: &str) -> CampaignTextPatch {
    CampaignTextPatch {
        title: Some(text(form, lang, "title")),
        summary: Some(text(form, lang, "summary")),
        impact: Some(text(form, lang, "impact")),
        what_to_do: Some(text(form, lang, "what_to_do")),
        how_to_check: Some(text(form, lang, "how_to_check")),
        references: Some(text(form, lang, "references")),
    }
}

fn tlp_and_severity(
    form: &FormFields,
    errors: &mut FieldErrors,
) -> Option<(Tlp, CampaignSeverity)> {
    let tlp = Tlp::parse(form.get("tlp").unwrap_or(""));
    if tlp.is_none() {
        errors.add("tlp", "Choose a TLP label.");
    }
    let severity = CampaignSeverity::parse(form.get("severity").unwrap_or("")).ok();
    if severity.is_none() {
        errors.add("severity", "Choose a severity.");
    }
    Some((tlp?, severity?))
}

/// A domain refusal as a message at its field (or at the slug).
fn field_error(e: &DomainError) -> Option<FieldErrors> {
    let (field, detail) = match e {
        DomainError::Invalid { field, detail } => (Some(field.as_str()), detail.as_str()),
        DomainError::Conflict { field, detail } => (field.as_deref(), detail.as_str()),
        _ => return None,
    };
    let field = field.unwrap_or("slug");
    let at = field.split('[').next().unwrap_or(field);
    let name = FIELDS
        .iter()
        .find(|(domain, _)| *domain == at)
        .map_or("slug", |(_, form)| *form);
    let mut errors = FieldErrors::default();
    errors.add(name, detail.to_owned());
    Some(errors)
}

async fn save(
    state: AppState,
    id: Option<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let values = Values::of(&form);
    if form.get("action") == Some("preview") {
        let previews = previews_of(&values);
        let page = form_page(
            &state,
            &signed,
            &csrf,
            id,
            values,
            FieldErrors::default(),
            previews,
        );
        return Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?));
    }
    let mut errors = FieldErrors::default();
    let Some((tlp, severity)) = tlp_and_severity(&form, &mut errors) else {
        let previews = previews_of(&values);
        let page = form_page(&state, &signed, &csrf, id, values, errors, previews);
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            with_csrf_cookie(&state, &csrf, page::render(&page)?),
        )
            .into_response());
    };
    let mut conn = state.pool.acquire().await?;
    let actor = signed.operator.actor();
    let saved = match id {
        None => {
            let new = NewCampaign {
                slug: form.get("slug").unwrap_or("").trim().to_owned(),
                tlp,
                severity,
                nb: new_text(&form, "nb"),
                en: new_text(&form, "en"),
                checks: words(&form, "checks"),
                cves: words(&form, "cves"),
                states: default_states(),
                reminder_days: default_reminder_days(),
                auto_approve: false,
                copy_sector_teams: true,
                closing_mail: false,
                followup_interval_hours: 24,
                link_valid_days: 90,
            };
            store::create(&mut conn, &actor, &new).await
        }
        Some(id) => {
            let patch = CampaignPatch {
                slug: Some(form.get("slug").unwrap_or("").trim().to_owned()),
                tlp: Some(tlp),
                severity: Some(severity),
                nb: Some(text_patch(&form, "nb")),
                en: Some(text_patch(&form, "en")),
                checks: Some(words(&form, "checks")),
                cves: Some(words(&form, "cves")),
                ..CampaignPatch::default()
            };
            store::update(&mut conn, &actor, id, &patch).await
        }
    };
    drop(conn);
    match saved {
        Ok(c) => Ok(Redirect::to(&format!("/campaigns/{}", c.id)).into_response()),
        Err(e) => match field_error(&e) {
            // A conflict without a field is the campaign's status (no
            // longer a draft): an error page, not a field's.
            Some(errors)
                if !matches!(e, DomainError::Conflict { field: None, .. }) || id.is_none() =>
            {
                let previews = previews_of(&values);
                let page = form_page(&state, &signed, &csrf, id, values, errors, previews);
                Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    with_csrf_cookie(&state, &csrf, page::render(&page)?),
                )
                    .into_response())
            }
            _ => Err(e.into()),
        },
    }
}

async fn create(State(state): State<AppState>, act: Act<Analyst>) -> Result<Response, WebError> {
    save(state, None, act).await
}

async fn edit(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    act: Act<Analyst>,
) -> Result<Response, WebError> {
    save(state, Some(id), act).await
}

/// A funnel step: its name, count and bar width (0–300).
struct Step {
    name: String,
    count: i64,
    width: i64,
}

#[derive(Debug, Default, Deserialize)]
struct ProgressQuery {
    /// The organisations' order: `id` (the default), `organisation`, `status`.
    #[serde(default)]
    sort: String,
    /// Where the previous page ended (`NotificationOrder::cursor_of`).
    after: Option<String>,
}

impl ProgressQuery {
    /// The progress page's address in `order`, from the page after `after`.
    fn address(id: i64, order: NotificationOrder, after: Option<&str>) -> String {
        list_address(
            &format!("/campaigns/{id}"),
            &[("sort", order.param()), ("after", after.unwrap_or(""))],
        )
    }
}

#[derive(Template)]
#[template(path = "dashboard/campaign.html")]
struct ProgressPage {
    layout: Layout,
    chrome: Chrome,
    c: Campaign,
    open_findings: String,
    organisations: String,
    steps: Vec<Step>,
    /// Notified → opened → acknowledged → resolved.
    funnel: stats::Bars,
    /// Open findings per day, as the stats job last gathered them.
    curve: Option<stats::CampaignCurve>,
    rows: Vec<Notification>,
    /// The next page's address.
    next: Option<String>,
    /// The orders the organisations' headers offer.
    sorts: Sorts,
    updates: Vec<(String, String, String)>,
    can_act: bool,
    errors: FieldErrors,
}

async fn render_progress(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: i64,
    list: &ProgressQuery,
    errors: FieldErrors,
) -> Result<Response, WebError> {
    let order: NotificationOrder = sort_of(&list.sort)?;
    let mut conn = state.pool.acquire().await?;
    let c = store::fetch(&mut conn, id).await?;
    let (open_findings, organisations) = figures(&mut conn, id).await?;
    let notifications = store::notification_counts(&mut conn, id).await?;
    let max = notifications.values().copied().max().unwrap_or(0).max(1);
    let steps = notifications
        .iter()
        .map(|(name, count)| Step {
            name: name.clone(),
            count: *count,
            width: count * 300 / max,
        })
        .collect();
    let funnel = overview::campaign_funnel(&mut conn, id).await?.bars();
    let curve = stats::campaign_curve(&mut conn, id).await?;
    let q = NotificationQuery {
        campaign_id: Some(id),
        ..NotificationQuery::default()
    };
    let mut rows = notes::list_in_order(&mut conn, &q, order, list.after.as_deref(), PAGE).await?;
    let next = (rows.len() > PAGE).then(|| {
        rows.truncate(PAGE);
        let last = rows.last().map(|n| order.cursor_of(n));
        ProgressQuery::address(id, order, last.as_deref())
    });
    let sorts = Sorts::of(order, |o| ProgressQuery::address(id, o, None));
    let updates = store::updates(&mut conn, id)
        .await?
        .into_iter()
        .map(|u| (oslo_time(u.posted_at), u.body_nb, u.body_en))
        .collect();
    let page = ProgressPage {
        layout: Layout::dashboard(format!("Campaign {} · Varsel", c.slug)),
        chrome: Chrome::of(state, signed, csrf),
        open_findings,
        organisations,
        c,
        steps,
        funnel,
        curve,
        rows,
        next,
        sorts,
        updates,
        can_act: signed.operator.role >= Role::Analyst,
        errors,
    };
    Ok(with_csrf_cookie(state, csrf, page::render(&page)?))
}

/// The progress page again, its first page, with what a form got wrong.
async fn refused(
    state: &AppState,
    signed: &Signed,
    csrf: &CsrfCookie,
    id: i64,
    errors: FieldErrors,
) -> Result<Response, WebError> {
    let list = ProgressQuery::default();
    let page = render_progress(state, signed, csrf, id, &list, errors).await?;
    Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
}

async fn progress(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path(id): Path<i64>,
    Query(q): Query<ProgressQuery>,
) -> Result<Response, WebError> {
    render_progress(&state, &signed, &csrf, id, &q, FieldErrors::default()).await
}

fn back(id: i64) -> Response {
    Redirect::to(&format!("/campaigns/{id}")).into_response()
}

async fn activate(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    store::activate(&mut conn, &signed.operator.actor(), id, state.clock.now()).await?;
    Ok(back(id))
}

async fn approve(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let selection = if form.get("all").is_some() {
        Selection::All
    } else {
        let ids: Result<Vec<i64>, _> = form.all("notification").map(str::parse).collect();
        match ids {
            Ok(ids) if !ids.is_empty() => Selection::Some(ids),
            _ => {
                let mut errors = FieldErrors::default();
                errors.add("notification", "Choose the drafts to approve.");
                return refused(&state, &signed, &csrf, id, errors).await;
            }
        }
    };
    let mut conn = state.pool.acquire().await?;
    mailing::approve(
        &mut conn,
        &signed.operator.actor(),
        id,
        &selection,
        state.clock.now(),
    )
    .await?;
    Ok(back(id))
}

async fn post_update(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act {
        signed, csrf, form, ..
    }: Act<Analyst>,
) -> Result<Response, WebError> {
    let body = NewUpdate {
        body_nb: form.get("body_nb").unwrap_or("").to_owned(),
        body_en: form.get("body_en").unwrap_or("").to_owned(),
    };
    let mut conn = state.pool.acquire().await?;
    match store::post_update(
        &mut conn,
        &signed.operator.actor(),
        id,
        &body,
        state.clock.now(),
    )
    .await
    {
        Ok(_) => Ok(back(id)),
        Err(DomainError::Invalid { field, detail }) => {
            drop(conn);
            let mut errors = FieldErrors::default();
            errors.add(
                if field.ends_with("en") {
                    "body_en"
                } else {
                    "body_nb"
                },
                detail,
            );
            refused(&state, &signed, &csrf, id, errors).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn close(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Act { signed, .. }: Act<Analyst>,
) -> Result<Response, WebError> {
    let mut conn = state.pool.acquire().await?;
    store::close(&mut conn, &signed.operator.actor(), id, state.clock.now()).await?;
    Ok(back(id))
}

#[derive(Debug, Default, Deserialize)]
struct PreviewQuery {
    lang: Option<String>,
}

#[derive(Template)]
#[template(path = "dashboard/campaign_preview.html")]
struct MailPreviewPage {
    layout: Layout,
    chrome: Chrome,
    c: Campaign,
    n: Notification,
    lang: &'static str,
    recipients: Vec<String>,
    subject: String,
    text: String,
    page: Preview,
}

/// The advisory mail the organisation's notification would go out as now
/// (its link stands in: each mail gets its own when written), and the
/// campaign's text as its advisory page shows it.
async fn mail_preview(
    State(state): State<AppState>,
    signed: Signed,
    csrf: CsrfCookie,
    Path((id, organisation)): Path<(i64, i64)>,
    Query(q): Query<PreviewQuery>,
) -> Result<Response, WebError> {
    use crate::notifications::texts::MailLanguage;
    let language = match q.lang.as_deref() {
        Some("en") => MailLanguage::En,
        _ => MailLanguage::Nb,
    };
    let mut conn = state.pool.acquire().await?;
    let c = store::fetch(&mut conn, id).await?;
    let query = NotificationQuery {
        campaign_id: Some(id),
        organisation_id: Some(organisation),
        ..NotificationQuery::default()
    };
    let n = notes::list(&mut conn, &query, 0, 1)
        .await?
        .into_iter()
        .next()
        .ok_or(WebError::NotFound)?;
    let preview = mailing::preview_initial(
        &mut conn,
        &state.settings.public_base_url,
        &n,
        &c,
        Some(language),
        state.clock.now(),
    )
    .await?;
    let (to, mail) = (preview.recipients, preview.mail);
    let text = if language == MailLanguage::En {
        &c.en
    } else {
        &c.nb
    };
    let page = Preview {
        lang: language.code(),
        title: text.title.clone(),
        sections: [
            ("Summary", &text.summary),
            ("Impact", &text.impact),
            ("What to do", &text.what_to_do),
            ("How to check for compromise", &text.how_to_check),
            ("References", &text.references),
        ]
        .into_iter()
        .map(|(label, md)| (label, markdown::to_html(md)))
        .collect(),
    };
    let page = MailPreviewPage {
        layout: Layout::dashboard(format!("Preview {} · Varsel", n.ticket)),
        chrome: Chrome::of(&state, &signed, &csrf),
        lang: language.code(),
        recipients: to
            .iter()
            .filter(|r| r.language == language)
            .map(|r| r.email.clone())
            .collect(),
        subject: mail.subject,
        text: mail.text,
        c,
        n,
        page,
    };
    Ok(with_csrf_cookie(&state, &csrf, page::render(&page)?))
}
