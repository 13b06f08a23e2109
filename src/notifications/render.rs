//! Building a notification's mails from the `templates/mail` templates:
//! the subject (with the ticket reference), the text and the HTML part
//! from the same context, and the hosts as a CSV attachment when the list
//! is long. Campaign text is Markdown, rendered by `campaigns::markdown`
//! (sanitised HTML, readable plain text); everything else the templates
//! escape.

use askama::Template;
use chrono::{DateTime, Utc};

use super::model::MailKind;
use super::texts::{MailLanguage, Words};
use crate::campaigns::markdown::{to_html, to_plain_text};
use crate::campaigns::model::{Campaign, CampaignUpdate};
use crate::domain::{DomainError, DomainResult};
use crate::mail::Attachment;

/// More hosts than this go into a CSV attachment (the body lists the first
/// ones).
pub const MAX_HOSTS_IN_BODY: usize = 20;

/// A finding as a mail lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Host {
    pub finding_id: i64,
    pub ip: String,
    pub port: i32,
    pub protocol: String,
    pub check_id: String,
    pub state: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub product: Option<String>,
    pub version: Option<String>,
    /// Not in any earlier mail (a follow-up lists these first).
    pub new: bool,
}

/// Everything a mail says.
pub struct MailInput<'a> {
    pub kind: MailKind,
    pub language: MailLanguage,
    pub campaign: &'a Campaign,
    /// For an update mail, the update; otherwise every update, newest first.
    pub updates: &'a [CampaignUpdate],
    pub ticket: &'a str,
    /// A copy for a sector response team names the organisation it was for.
    pub copy_for: Option<&'a str>,
    /// The advisory link and when it expires (none in copies).
    pub link: Option<(&'a str, DateTime<Utc>)>,
    pub hosts: &'a [Host],
}

#[derive(Debug, Clone)]
pub struct RenderedMail {
    pub subject: String,
    pub text: String,
    pub html: String,
    pub attachments: Vec<Attachment>,
}

struct HostLine {
    new: bool,
    ip: String,
    port: String,
    check: String,
    state: &'static str,
    compromised: bool,
    first_seen: String,
    last_seen: String,
    product: String,
}

struct Section {
    heading: &'static str,
    text: String,
    html: String,
}

struct UpdateLine {
    label: String,
    text: String,
    html: String,
}

/// The context both parts are rendered from.
struct Context<'a> {
    w: &'static Words,
    lang: &'static str,
    tlp_label: String,
    tlp_colour: &'static str,
    tlp_wording: &'static str,
    title: &'a str,
    ticket: &'a str,
    intro: String,
    /// An update mail leads with the update.
    lead_update: Option<UpdateLine>,
    sections: Vec<Section>,
    updates: Vec<UpdateLine>,
    hosts: Vec<HostLine>,
    hosts_total: usize,
    hosts_attached: bool,
    link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "mail/notification.txt")]
struct TextPart<'a> {
    c: &'a Context<'a>,
}

#[derive(Template)]
#[template(path = "mail/notification.html")]
struct HtmlPart<'a> {
    c: &'a Context<'a>,
}

fn tlp_colour(label: &str) -> &'static str {
    match label {
        "RED" => "#FF2B2B",
        "AMBER" | "AMBER+STRICT" => "#FFC000",
        "GREEN" => "#33FF00",
        _ => "#FFFFFF",
    }
}

fn update_line(u: &CampaignUpdate, language: MailLanguage) -> UpdateLine {
    let body = match language {
        MailLanguage::Nb => &u.body_nb,
        MailLanguage::En => &u.body_en,
    };
    UpdateLine {
        label: format!(
            "{} {}",
            language.words().update_label,
            language.datetime(u.posted_at)
        ),
        text: to_plain_text(body),
        html: to_html(body),
    }
}

pub fn render(input: &MailInput<'_>) -> DomainResult<RenderedMail> {
    let language = input.language;
    let w = language.words();
    let text = match language {
        MailLanguage::Nb => &input.campaign.nb,
        MailLanguage::En => &input.campaign.en,
    };
    let section = |heading, md: &str| Section {
        heading,
        text: to_plain_text(md),
        html: to_html(md),
    };
    let sections = vec![
        section(w.summary, &text.summary),
        section(w.impact, &text.impact),
        section(w.what_to_do, &text.what_to_do),
        section(w.how_to_check, &text.how_to_check),
        section(w.references, &text.references),
    ];
    let intro = match (input.copy_for, input.kind) {
        (Some(org), _) => format!("{} {org}.", w.copy_intro),
        (None, MailKind::Initial) => w.intro.to_owned(),
        (None, MailKind::Reminder) => w.reminder_intro.to_owned(),
        (None, MailKind::Update) => w.update_intro.to_owned(),
        (None, MailKind::Followup) => w.followup_intro.to_owned(),
        (None, MailKind::Realert) => w.realert_intro.to_owned(),
        (None, MailKind::Closing) => w.closing_intro.to_owned(),
    };
    let (lead_update, updates) = match input.kind {
        MailKind::Update => (
            input.updates.first().map(|u| update_line(u, language)),
            Vec::new(),
        ),
        _ => (
            None,
            input
                .updates
                .iter()
                .map(|u| update_line(u, language))
                .collect(),
        ),
    };
    let mut hosts: Vec<&Host> = input.hosts.iter().collect();
    // New hosts first, then compromised ones, then by address.
    hosts.sort_by_key(|h| (!h.new, h.state != "compromised"));
    let host_line = |h: &Host| HostLine {
        new: h.new && input.kind == MailKind::Followup,
        ip: h.ip.clone(),
        port: format!("{}/{}", h.port, h.protocol),
        check: h.check_id.clone(),
        state: w.state(&h.state),
        compromised: h.state == "compromised",
        first_seen: language.datetime(h.first_seen),
        last_seen: language.datetime(h.last_seen),
        product: product(h),
    };
    let hosts_attached = hosts.len() > MAX_HOSTS_IN_BODY;
    let tlp = input.campaign.tlp;
    let context = Context {
        w,
        lang: language.code(),
        tlp_label: tlp.label(),
        tlp_colour: tlp_colour(tlp.as_str()),
        tlp_wording: tlp.wording(language.language()),
        title: &text.title,
        ticket: input.ticket,
        intro,
        lead_update,
        sections,
        updates,
        hosts: hosts
            .iter()
            .take(MAX_HOSTS_IN_BODY)
            .map(|h| host_line(h))
            .collect(),
        hosts_total: hosts.len(),
        hosts_attached,
        link: input
            .link
            .map(|(url, expires)| (url.to_owned(), language.datetime(expires))),
    };
    let rendered =
        |e: askama::Error| DomainError::Internal(anyhow::anyhow!("rendering a mail: {e}"));
    let text_part = TextPart { c: &context }.render().map_err(rendered)?;
    let html_part = HtmlPart { c: &context }.render().map_err(rendered)?;
    let mut attachments = Vec::new();
    if hosts_attached {
        attachments.push(hosts_csv(input.ticket, &hosts)?);
    }
    Ok(RenderedMail {
        subject: format!(
            "[{}] {}{}",
            input.ticket,
            w.subject_prefix(input.kind, input.copy_for.is_some()),
            one_line(&text.title)
        ),
        text: text_part,
        html: html_part,
        attachments,
    })
}

fn product(h: &Host) -> String {
    product_line(h.product.as_deref(), h.version.as_deref())
}

/// "Microsoft Exchange 15.1.2176": a product and its version, either of
/// which the scanner may not have reported.
pub fn product_line(product: Option<&str>, version: Option<&str>) -> String {
    match (product, version) {
        (Some(p), Some(v)) => format!("{p} {v}"),
        (Some(p), None) => p.to_owned(),
        (None, Some(v)) => v.to_owned(),
        (None, None) => String::new(),
    }
}

/// A subject is one line whatever the title holds.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn hosts_csv(ticket: &str, hosts: &[&Host]) -> DomainResult<Attachment> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| DomainError::Internal(anyhow::anyhow!("writing the CSV: {e}"));
    w.write_record([
        "ip",
        "port",
        "protocol",
        "check",
        "state",
        "first_seen",
        "last_seen",
        "product",
        "version",
    ])
    .map_err(failed)?;
    for h in hosts {
        w.write_record([
            h.ip.as_str(),
            &h.port.to_string(),
            &h.protocol,
            &h.check_id,
            &h.state,
            &h.first_seen.to_rfc3339(),
            &h.last_seen.to_rfc3339(),
            h.product.as_deref().unwrap_or(""),
            h.version.as_deref().unwrap_or(""),
        ])
        .map_err(failed)?;
    }
    let content = w
        .into_inner()
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("writing the CSV: {e}")))?;
    Ok(Attachment {
        filename: format!("{ticket}-hosts.csv"),
        content_type: "text/csv; charset=utf-8".to_owned(),
        content,
    })
}
