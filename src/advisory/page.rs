//! The advisory page as `templates/advisory/page.html` renders it: the
//! campaign's text in the page's language, the organisation's findings
//! with the outcome of every re-check, what it answered so far, and its
//! forms (with their CSRF token, a fresh submission nonce, and on a
//! failed post the values sent and the errors by field).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use askama::Template;
use axum::response::Response;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sqlx::PgConnection;

use super::access::Link;
use super::texts::PageWords;
use super::view::{self, PageFinding, Recheck};
use crate::app::AppState;
use crate::campaigns::markdown::to_html;
use crate::campaigns::model::{Campaign, CampaignUpdate};
use crate::notifications::render::product_line;
use crate::notifications::texts::MailLanguage;
use crate::web::csrf::CsrfCookie;
use crate::web::error::WebError;
use crate::web::form::{FieldErrors, FormFields};
use crate::web::page::Layout;

/// Evidence longer than this is cut on the page (the downloads have it
/// whole).
const MAX_EVIDENCE_CHARS: usize = 4000;

/// What a form post leaves for the page shown after it.
#[derive(Default)]
pub struct PageState {
    /// The kind of answer just recorded.
    pub done: Option<String>,
    /// The values of a form that failed, to show again.
    pub echo: Echo,
    pub errors: FieldErrors,
}

/// The values of the form that failed.
#[derive(Default)]
pub struct Echo {
    form: String,
    selected: Vec<i64>,
    values: Vec<(String, String)>,
}

impl Echo {
    pub fn from_form(fields: &FormFields) -> Self {
        let keep = [
            "reason",
            "contact_name",
            "phone",
            "observed",
            "comment",
            "email",
            "name",
            "language",
        ];
        Self {
            form: fields.get("form").unwrap_or("").to_owned(),
            selected: match fields.get("form") {
                Some("findings") => fields
                    .all("finding")
                    .filter_map(|v| v.parse().ok())
                    .collect(),
                _ => Vec::new(),
            },
            values: keep
                .iter()
                .filter_map(|k| fields.get(k).map(|v| ((*k).to_owned(), v.to_owned())))
                .chain(
                    fields
                        .get("finding")
                        .filter(|_| fields.get("form") == Some("compromise"))
                        .map(|v| ("compromise_finding".to_owned(), v.to_owned())),
                )
                .collect(),
        }
    }

    pub fn value(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn is_selected(&self, id: &i64) -> bool {
        self.selected.contains(id)
    }

    pub fn failed(&self, form: &str) -> bool {
        self.form == form
    }
}

struct Section {
    heading: &'static str,
    html: String,
}

struct UpdateView {
    label: String,
    html: String,
}

/// One host (address and port) with every check's finding on it: the
/// page lists a host once, compromised ones first.
struct HostView {
    ip: String,
    port: String,
    /// The worst state of its open findings (or of all, if none is open).
    state: &'static str,
    compromised: bool,
    open: bool,
    /// Host name, server name, path the scanner saw, …
    details: Vec<(&'static str, String)>,
    not_seen_since: Option<String>,
    /// What its compromise means, said once.
    meaning: Option<&'static str>,
    sources: Vec<FindingView>,
}

struct FindingView {
    id: i64,
    ip: String,
    port: String,
    /// As the check catalogue names it: "Web shell found on Microsoft
    /// Exchange (Shadowserver)".
    what: String,
    state: &'static str,
    compromised: bool,
    open: bool,
    status: &'static str,
    cves: String,
    first_seen: String,
    last_seen: String,
    product: String,
    evidence: Option<String>,
    /// Notes on what the organisation said and what came of it, each with
    /// its CSS class.
    notes: Vec<(&'static str, String)>,
    answerable: bool,
}

struct HistoryLine {
    at: String,
    what: &'static str,
    target: String,
}

#[derive(Template)]
#[template(path = "advisory/page.html")]
struct AdvisoryPage<'a> {
    layout: Layout,
    w: &'static PageWords,
    lang: &'static str,
    /// The page's own address, `/a/{token}`.
    base: String,
    ticket: &'a str,
    organisation: &'a str,
    acknowledged_at: Option<String>,
    link_expires: String,
    campaign: &'a RenderedCampaign,
    hosts: Vec<HostView>,
    /// A host shows signs of compromise: the page says so first.
    any_compromised: bool,
    any_answerable: bool,
    history: Vec<HistoryLine>,
    done: Option<&'static str>,
    errors: &'a FieldErrors,
    echo: &'a Echo,
    csrf: String,
    submission: String,
}

fn finding_view(
    f: &PageFinding,
    language: MailLanguage,
    w: &'static PageWords,
    now: DateTime<Utc>,
) -> FindingView {
    let mw = language.words();
    let mut notes = Vec::new();
    match f.recheck() {
        Some(Recheck::Pending) => notes.push(("", w.recheck_pending.to_owned())),
        Some(Recheck::Confirmed) => notes.push(("ok", w.recheck_confirmed.to_owned())),
        Some(Recheck::StillSeen) => notes.push((
            "alert",
            format!(
                "{} {}",
                w.recheck_still_seen,
                language.datetime(f.last_seen)
            ),
        )),
        None => {}
    }
    if let Some(until) = f.false_positive(now) {
        notes.push((
            "",
            format!("{} {}", w.false_positive_until, language.datetime(until)),
        ));
    }
    if f.disputed {
        notes.push(("", w.disputed.to_owned()));
    }
    let product = product_line(f.product.as_deref(), f.version.as_deref());
    let evidence = f.evidence.as_ref().map(|e| {
        let text = match e {
            serde_json::Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        if text.chars().count() > MAX_EVIDENCE_CHARS {
            let cut: String = text.chars().take(MAX_EVIDENCE_CHARS).collect();
            format!("{cut} …")
        } else {
            text
        }
    });
    let state = crate::checks::ObservationState::parse(&f.state)
        .unwrap_or(crate::checks::ObservationState::Unknown);
    FindingView {
        id: f.id,
        ip: f.ip.to_string(),
        port: format!("{}/{}", f.port, f.protocol),
        what: crate::checks::describe(&f.check_id, state, language.lang()).line(),
        state: mw.state(&f.state),
        compromised: f.state == "compromised",
        open: f.status == "open",
        status: if f.status == "open" {
            w.status_open
        } else {
            w.status_resolved
        },
        cves: f.cves.join(", "),
        first_seen: language.datetime(f.first_seen),
        last_seen: language.datetime(f.last_seen),
        product,
        evidence,
        notes,
        answerable: f.answerable(),
    }
}

/// The findings grouped by host (address, port), in the order given
/// (open and compromised first), each host's worst finding first.
fn host_views(
    findings: &[PageFinding],
    language: MailLanguage,
    w: &'static PageWords,
    now: DateTime<Utc>,
) -> Vec<HostView> {
    let mut hosts: Vec<(&PageFinding, Vec<&PageFinding>)> = Vec::new();
    for f in findings {
        match hosts.iter_mut().find(|(first, _)| {
            first.ip == f.ip && first.port == f.port && first.protocol == f.protocol
        }) {
            Some((_, all)) => all.push(f),
            None => hosts.push((f, vec![f])),
        }
    }
    hosts
        .into_iter()
        .map(|(first, all)| {
            let mut details = Vec::new();
            for f in &all {
                for d in crate::checks::details(
                    f.hostname.as_deref(),
                    f.evidence.as_ref(),
                    language.lang(),
                ) {
                    if !details.contains(&d) {
                        details.push(d);
                    }
                }
            }
            let meaning = all.iter().find_map(|f| {
                let state = crate::checks::ObservationState::parse(&f.state)?;
                (f.status == "open")
                    .then(|| crate::checks::describe(&f.check_id, state, language.lang()).meaning)
                    .flatten()
            });
            HostView {
                ip: first.ip.to_string(),
                port: format!("{}/{}", first.port, first.protocol),
                state: language.words().state(&first.state),
                compromised: first.state == "compromised" && first.status == "open",
                open: all.iter().any(|f| f.status == "open"),
                details,
                not_seen_since: all
                    .iter()
                    .filter_map(|f| f.not_seen_since)
                    .max()
                    .map(|t| language.datetime(t)),
                meaning,
                sources: all
                    .iter()
                    .map(|f| finding_view(f, language, w, now))
                    .collect(),
            }
        })
        .collect()
}

fn nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The campaign as its pages show it in one language: rendered once per
/// version of the campaign (its last change, its latest update), not per
/// view.
pub struct RenderedCampaign {
    version: (DateTime<Utc>, i64),
    title: String,
    tlp_label: String,
    tlp_class: &'static str,
    tlp_wording: &'static str,
    sections: Vec<Section>,
    updates: Vec<UpdateView>,
}

/// Each campaign's rendering, by language; one per serving instance.
#[derive(Default)]
pub struct CampaignCache(RwLock<HashMap<(i64, MailLanguage), Arc<RenderedCampaign>>>);

impl CampaignCache {
    /// The campaign of `link` in `language`, rendered anew if it changed.
    async fn get(
        &self,
        conn: &mut PgConnection,
        link: &Link,
        language: MailLanguage,
    ) -> Result<Arc<RenderedCampaign>, WebError> {
        let key = (link.campaign_id, language);
        let version = (link.campaign_changed_at, link.campaign_update_id);
        let cached = self
            .0
            .read()
            .map_err(|_| WebError::Internal(anyhow::anyhow!("the campaign cache is poisoned")))?
            .get(&key)
            .filter(|c| c.version == version)
            .cloned();
        if let Some(rendered) = cached {
            return Ok(rendered);
        }
        let campaign = crate::campaigns::store::fetch(&mut *conn, link.campaign_id).await?;
        let updates = crate::campaigns::store::updates(&mut *conn, link.campaign_id).await?;
        let rendered = Arc::new(render_campaign(&campaign, &updates, language, version));
        self.0
            .write()
            .map_err(|_| WebError::Internal(anyhow::anyhow!("the campaign cache is poisoned")))?
            .insert(key, rendered.clone());
        Ok(rendered)
    }
}

fn render_campaign(
    campaign: &Campaign,
    updates: &[CampaignUpdate],
    language: MailLanguage,
    version: (DateTime<Utc>, i64),
) -> RenderedCampaign {
    let w = PageWords::of(language);
    let text = match language {
        MailLanguage::Nb => &campaign.nb,
        MailLanguage::En => &campaign.en,
    };
    let sections = [
        (w.summary, &text.summary),
        (w.impact, &text.impact),
        (w.what_to_do, &text.what_to_do),
        (w.how_to_check, &text.how_to_check),
        (w.references, &text.references),
    ]
    .into_iter()
    .filter(|(_, md)| !md.trim().is_empty())
    .map(|(heading, md)| Section {
        heading,
        html: to_html(md),
    })
    .collect();
    let updates = updates
        .iter()
        .map(|u| UpdateView {
            label: format!(
                "{} {}",
                language.words().update_label,
                language.datetime(u.posted_at)
            ),
            html: match language {
                MailLanguage::Nb => u.body_html_nb.clone(),
                MailLanguage::En => u.body_html_en.clone(),
            },
        })
        .collect();
    let tlp = campaign.tlp;
    RenderedCampaign {
        version,
        title: text.title.clone(),
        tlp_label: tlp.label(),
        tlp_class: match tlp.as_str() {
            "RED" => "tlp-red",
            "AMBER" | "AMBER+STRICT" => "tlp-amber",
            "GREEN" => "tlp-green",
            _ => "tlp-clear",
        },
        tlp_wording: tlp.wording(language.language()),
        sections,
        updates,
    }
}

/// The page for `link`, in `language`.
#[allow(clippy::too_many_arguments)]
pub async fn render(
    state: &AppState,
    conn: &mut PgConnection,
    link: &Link,
    token: &str,
    language: MailLanguage,
    csrf: &CsrfCookie,
    findings: &[PageFinding],
    page_state: PageState,
    now: DateTime<Utc>,
) -> Result<Response, WebError> {
    let w = PageWords::of(language);
    let campaign = state.campaign_pages.get(&mut *conn, link, language).await?;
    let history = view::history(&mut *conn, link).await?;
    let hosts = host_views(findings, language, w, now);
    let page = AdvisoryPage {
        layout: Layout::new(
            language.code(),
            format!("{} · {}", link.ticket, campaign.title),
        ),
        w,
        lang: language.code(),
        base: format!("/a/{token}"),
        ticket: &link.ticket,
        organisation: &link.organisation_name,
        acknowledged_at: link.acknowledged_at.map(|t| language.datetime(t)),
        link_expires: language.datetime(link.expires_at),
        campaign: &campaign,
        any_answerable: hosts.iter().flat_map(|h| &h.sources).any(|f| f.answerable),
        any_compromised: hosts.iter().any(|h| h.compromised),
        hosts,
        history: history
            .into_iter()
            .map(|h| HistoryLine {
                at: language.datetime(h.at),
                what: w.response_kind(&h.kind),
                target: h.target.unwrap_or_default(),
            })
            .collect(),
        done: page_state
            .done
            .as_deref()
            .map(|k| w.response_kind(k))
            .filter(|s| !s.is_empty()),
        errors: &page_state.errors,
        echo: &page_state.echo,
        csrf: csrf.token(&state.settings.link_secret(), &link.csrf_scope()),
        submission: nonce(),
    };
    crate::web::page::render(&page)
}
