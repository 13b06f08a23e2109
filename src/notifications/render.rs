//! Building a notification's mails from the `templates/mail` templates:
//! the subject (with the ticket reference), the text and the HTML part
//! from the same context, and the hosts as a CSV attachment when the list
//! is long. A host (address and port) seen by several checks is one entry
//! naming each, as the check catalogue calls them; a compromised host
//! comes first, and the subject and the first lines of every mail but the
//! closing one say so. Campaign text is Markdown, rendered by `campaigns::markdown`
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
    /// The host name the scanner reported.
    pub hostname: Option<String>,
    /// The scanner's evidence (its server name, the path it saw, …).
    pub evidence: Option<serde_json::Value>,
    /// A compromise a covering scan no longer sees: its last sighting.
    pub not_seen_since: Option<DateTime<Utc>>,
    /// Not in any earlier mail (a follow-up marks these).
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

/// One host (address and port) as a mail lists it, with every check that
/// found something on it.
struct HostLine {
    new: bool,
    ip: String,
    port: String,
    /// The worst state of its findings.
    state: &'static str,
    compromised: bool,
    sources: Vec<SourceLine>,
    /// Host name, server name, path the scanner saw, …
    details: Vec<(&'static str, String)>,
    first_seen: String,
    last_seen: String,
    not_seen_since: Option<String>,
    product: String,
    /// What its compromise means, said once.
    meaning: Option<&'static str>,
}

/// One check's finding on a host: "Web shell found on Microsoft Exchange
/// (Shadowserver)", and its state.
struct SourceLine {
    what: String,
    state: &'static str,
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
    /// Said first when a host shows signs of compromise.
    alert: Option<&'static str>,
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
    let hosts = host_lines(input);
    let hosts_attached = hosts.len() > MAX_HOSTS_IN_BODY;
    // Compromise first, in every mail about it but the one saying all is
    // resolved (a re-alert says it in its own words).
    let compromised = hosts.iter().any(|h| h.compromised)
        && !matches!(input.kind, MailKind::Closing | MailKind::Realert);
    let tlp = input.campaign.tlp;
    let context = Context {
        w,
        lang: language.code(),
        tlp_label: tlp.label(),
        tlp_colour: tlp_colour(tlp.as_str()),
        tlp_wording: tlp.wording(language.language()),
        title: &text.title,
        ticket: input.ticket,
        alert: compromised.then_some(w.compromise_alert),
        intro,
        lead_update,
        sections,
        updates,
        hosts_total: hosts.len(),
        hosts: hosts.into_iter().take(MAX_HOSTS_IN_BODY).collect(),
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
        attachments.push(hosts_csv(input.ticket, language, input.hosts)?);
    }
    Ok(RenderedMail {
        subject: format!(
            "[{}] {}{}{}",
            input.ticket,
            if compromised { w.realert_prefix } else { "" },
            w.subject_prefix(input.kind, input.copy_for.is_some()),
            one_line(&text.title)
        ),
        text: text_part,
        html: html_part,
        attachments,
    })
}

/// The mail's hosts: one entry per (address, port), compromised ones
/// first, then (in a follow-up) new ones, then by address; within one, the
/// worst finding first.
fn host_lines(input: &MailInput<'_>) -> Vec<HostLine> {
    let language = input.language;
    let w = language.words();
    let mut by_host: Vec<(&str, i32, &str, Vec<&Host>)> = Vec::new();
    for h in input.hosts {
        match by_host
            .iter_mut()
            .find(|(ip, port, proto, _)| *ip == h.ip && *port == h.port && *proto == h.protocol)
        {
            Some((_, _, _, found)) => found.push(h),
            None => by_host.push((&h.ip, h.port, &h.protocol, vec![h])),
        }
    }
    let mut lines: Vec<HostLine> = by_host
        .into_iter()
        .map(|(ip, port, protocol, mut found)| {
            found.sort_by_key(|h| std::cmp::Reverse(state_rank(&h.state)));
            let worst = found[0];
            let mut details = Vec::new();
            for h in &found {
                for d in crate::checks::details(
                    h.hostname.as_deref(),
                    h.evidence.as_ref(),
                    language.lang(),
                ) {
                    if !details.contains(&d) {
                        details.push(d);
                    }
                }
            }
            let described: Vec<_> = found
                .iter()
                .map(|h| {
                    crate::checks::describe(&h.check_id, parse_state(&h.state), language.lang())
                })
                .collect();
            let first = found
                .iter()
                .map(|h| h.first_seen)
                .min()
                .unwrap_or(worst.first_seen);
            let last = found
                .iter()
                .map(|h| h.last_seen)
                .max()
                .unwrap_or(worst.last_seen);
            HostLine {
                new: found.iter().any(|h| h.new) && input.kind == MailKind::Followup,
                ip: ip.to_owned(),
                port: format!("{port}/{protocol}"),
                state: w.state(&worst.state),
                compromised: worst.state == "compromised",
                sources: found
                    .iter()
                    .zip(&described)
                    .map(|(h, d)| SourceLine {
                        what: d.line(),
                        state: w.state(&h.state),
                    })
                    .collect(),
                details,
                first_seen: language.datetime(first),
                last_seen: language.datetime(last),
                not_seen_since: found
                    .iter()
                    .filter_map(|h| h.not_seen_since)
                    .max()
                    .map(|t| language.datetime(t)),
                product: found
                    .iter()
                    .map(|h| product_line(h.product.as_deref(), h.version.as_deref()))
                    .find(|p| !p.is_empty())
                    .unwrap_or_default(),
                meaning: described.iter().find_map(|d| d.meaning),
            }
        })
        .collect();
    lines.sort_by_key(|h| (!h.compromised, !h.new));
    lines
}

fn parse_state(state: &str) -> crate::checks::ObservationState {
    crate::checks::ObservationState::parse(state)
        .unwrap_or(crate::checks::ObservationState::Unknown)
}

/// Worse states rank higher.
fn state_rank(state: &str) -> u8 {
    match state {
        "compromised" => 3,
        "vulnerable" => 2,
        "unknown" => 1,
        _ => 0,
    }
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

fn hosts_csv(ticket: &str, language: MailLanguage, hosts: &[Host]) -> DomainResult<Attachment> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| DomainError::Internal(anyhow::anyhow!("writing the CSV: {e}"));
    w.write_record([
        "ip",
        "port",
        "protocol",
        "check",
        "what",
        "state",
        "first_seen",
        "last_seen",
        "not_seen_since",
        "hostname",
        "product",
        "version",
    ])
    .map_err(failed)?;
    let mut sorted: Vec<&Host> = hosts.iter().collect();
    sorted.sort_by_key(|h| std::cmp::Reverse(state_rank(&h.state)));
    for h in sorted {
        let what = crate::checks::describe(&h.check_id, parse_state(&h.state), language.lang());
        w.write_record([
            h.ip.as_str(),
            &h.port.to_string(),
            &h.protocol,
            &h.check_id,
            &what.line(),
            &h.state,
            &h.first_seen.to_rfc3339(),
            &h.last_seen.to_rfc3339(),
            &h.not_seen_since.map(|t| t.to_rfc3339()).unwrap_or_default(),
            h.hostname.as_deref().unwrap_or(""),
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
