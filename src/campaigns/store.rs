//! The campaign operations every surface calls (the REST API now, the
//! dashboard later): creating and editing drafts, activating, posting
//! updates, closing, listing and showing with live counts. Each write is one
//! transaction with its audit event; each input is checked here, naming the
//! field at fault (`nb.title`, `cves[2]`).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{Connection, PgConnection, Postgres};

use super::markdown;
use super::matching::MATCH_SQL;
use super::model::{
    Bilingual, Campaign, CampaignCounts, CampaignDetail, CampaignPatch, CampaignSeverity,
    CampaignStatus, CampaignText, CampaignTextPatch, CampaignUpdate, MAX_CHECKS, MAX_CVES,
    MAX_TEXT_CHARS, MAX_TITLE_CHARS, MatchState, NewCampaign, NewCampaignText, NewUpdate,
    RenderedText, RenderedTexts, Tlp,
};
use crate::audit;
use crate::domain::{Actor, DomainError, DomainResult};
use crate::registry::model::Language;

const COLUMNS: &str = "id, slug, status, tlp, severity, \
     title_nb, summary_nb, impact_nb, what_to_do_nb, how_to_check_nb, references_nb, \
     title_en, summary_en, impact_en, what_to_do_en, how_to_check_en, references_en, \
     checks, cves, states, reminder_days, auto_approve, copy_sector_teams, closing_mail, \
     followup_interval_hours, link_valid_days, created_by, created_at, updated_at, \
     activated_at, closed_at";

/// The columns a draft's author sets, in the order [`bind_fields`] binds
/// them ($1 … $24), and what follows from them ($25: the checks whose
/// compromises the campaign's CVEs reach, from the check catalogue).
const FIELD_COLUMNS: &str = "slug, tlp, severity, \
     title_nb, summary_nb, impact_nb, what_to_do_nb, how_to_check_nb, references_nb, \
     title_en, summary_en, impact_en, what_to_do_en, how_to_check_en, references_en, \
     checks, cves, states, reminder_days, auto_approve, copy_sector_teams, closing_mail, \
     followup_interval_hours, link_valid_days, compromise_checks";
const FIELD_PARAMS: &str = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
     $16, $17, $18, $19, $20, $21, $22, $23, $24, $25";

const UPDATE_COLUMNS: &str = "id, campaign_id, posted_at, body_nb, body_en, created_by";

#[derive(sqlx::FromRow)]
struct CampaignRow {
    id: i64,
    slug: String,
    status: String,
    tlp: String,
    severity: String,
    title_nb: String,
    summary_nb: String,
    impact_nb: String,
    what_to_do_nb: String,
    how_to_check_nb: String,
    references_nb: String,
    title_en: String,
    summary_en: String,
    impact_en: String,
    what_to_do_en: String,
    how_to_check_en: String,
    references_en: String,
    checks: Vec<String>,
    cves: Vec<String>,
    states: Vec<String>,
    reminder_days: Vec<i32>,
    auto_approve: bool,
    copy_sector_teams: bool,
    closing_mail: bool,
    followup_interval_hours: i32,
    link_valid_days: i32,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    activated_at: Option<DateTime<Utc>>,
    closed_at: Option<DateTime<Utc>>,
}

impl TryFrom<CampaignRow> for Campaign {
    type Error = DomainError;

    fn try_from(r: CampaignRow) -> DomainResult<Self> {
        // The table's checks admit only these; anything else is a bug.
        let corrupt = |what: &str, value: &str| {
            DomainError::Internal(anyhow::anyhow!(
                "campaign {}: stored {what} {value:?} is not one Varsel knows",
                r.id
            ))
        };
        let status = CampaignStatus::parse(&r.status).map_err(|_| corrupt("status", &r.status))?;
        let tlp = Tlp::parse(&r.tlp).ok_or_else(|| corrupt("tlp", &r.tlp))?;
        let severity =
            CampaignSeverity::parse(&r.severity).map_err(|_| corrupt("severity", &r.severity))?;
        let states = r
            .states
            .iter()
            .map(|s| MatchState::parse(s).map_err(|_| corrupt("state", s)))
            .collect::<DomainResult<Vec<_>>>()?;
        Ok(Campaign {
            id: r.id,
            slug: r.slug,
            status,
            tlp,
            severity,
            nb: CampaignText {
                title: r.title_nb,
                summary: r.summary_nb,
                impact: r.impact_nb,
                what_to_do: r.what_to_do_nb,
                how_to_check: r.how_to_check_nb,
                references: r.references_nb,
            },
            en: CampaignText {
                title: r.title_en,
                summary: r.summary_en,
                impact: r.impact_en,
                what_to_do: r.what_to_do_en,
                how_to_check: r.how_to_check_en,
                references: r.references_en,
            },
            checks: r.checks,
            cves: r.cves,
            states,
            reminder_days: r.reminder_days,
            auto_approve: r.auto_approve,
            copy_sector_teams: r.copy_sector_teams,
            closing_mail: r.closing_mail,
            followup_interval_hours: r.followup_interval_hours,
            link_valid_days: r.link_valid_days,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
            activated_at: r.activated_at,
            closed_at: r.closed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UpdateRow {
    id: i64,
    campaign_id: i64,
    posted_at: DateTime<Utc>,
    body_nb: String,
    body_en: String,
    created_by: String,
}

impl From<UpdateRow> for CampaignUpdate {
    fn from(r: UpdateRow) -> Self {
        CampaignUpdate {
            body_html_nb: markdown::to_html(&r.body_nb),
            body_html_en: markdown::to_html(&r.body_en),
            id: r.id,
            campaign_id: r.campaign_id,
            posted_at: r.posted_at,
            body_nb: r.body_nb,
            body_en: r.body_en,
            created_by: r.created_by,
        }
    }
}

/// Everything a draft's author sets, checked.
#[derive(Debug, Clone)]
struct Fields {
    slug: String,
    tlp: Tlp,
    severity: CampaignSeverity,
    nb: CampaignText,
    en: CampaignText,
    checks: Vec<String>,
    cves: Vec<String>,
    states: Vec<MatchState>,
    reminder_days: Vec<i32>,
    auto_approve: bool,
    copy_sector_teams: bool,
    closing_mail: bool,
    followup_interval_hours: i32,
    link_valid_days: i32,
}

impl Fields {
    fn new(new: &NewCampaign) -> DomainResult<Self> {
        let fields = Fields {
            slug: slug(&new.slug)?,
            tlp: new.tlp,
            severity: new.severity,
            nb: new_text("nb", &new.nb)?,
            en: new_text("en", &new.en)?,
            checks: checks(&new.checks)?,
            cves: cves(&new.cves)?,
            states: states(&new.states)?,
            reminder_days: reminder_days(&new.reminder_days)?,
            auto_approve: new.auto_approve,
            copy_sector_teams: new.copy_sector_teams,
            closing_mail: new.closing_mail,
            followup_interval_hours: within(
                "followup_interval_hours",
                new.followup_interval_hours,
                1,
                720,
            )?,
            link_valid_days: within("link_valid_days", new.link_valid_days, 1, 365)?,
        };
        fields.check_whole()?;
        Ok(fields)
    }

    fn of(c: &Campaign) -> Self {
        Fields {
            slug: c.slug.clone(),
            tlp: c.tlp,
            severity: c.severity,
            nb: c.nb.clone(),
            en: c.en.clone(),
            checks: c.checks.clone(),
            cves: c.cves.clone(),
            states: c.states.clone(),
            reminder_days: c.reminder_days.clone(),
            auto_approve: c.auto_approve,
            copy_sector_teams: c.copy_sector_teams,
            closing_mail: c.closing_mail,
            followup_interval_hours: c.followup_interval_hours,
            link_valid_days: c.link_valid_days,
        }
    }

    /// The rules between fields, which no single field breaks.
    fn check_whole(&self) -> DomainResult<()> {
        if self.checks.is_empty() && self.cves.is_empty() {
            return Err(DomainError::invalid(
                "checks",
                "give at least one check or CVE: without them the campaign matches no finding",
            ));
        }
        Ok(())
    }
}

/// A patch with each field it carries checked on its own (before anything
/// is read, so an invalid request is a 422 whatever the campaign's status).
struct CheckedPatch {
    slug: Option<String>,
    tlp: Option<Tlp>,
    severity: Option<CampaignSeverity>,
    nb: Option<CheckedTextPatch>,
    en: Option<CheckedTextPatch>,
    checks: Option<Vec<String>>,
    cves: Option<Vec<String>>,
    states: Option<Vec<MatchState>>,
    reminder_days: Option<Vec<i32>>,
    auto_approve: Option<bool>,
    copy_sector_teams: Option<bool>,
    closing_mail: Option<bool>,
    followup_interval_hours: Option<i32>,
    link_valid_days: Option<i32>,
}

struct CheckedTextPatch {
    title: Option<String>,
    summary: Option<String>,
    impact: Option<String>,
    what_to_do: Option<String>,
    how_to_check: Option<String>,
    references: Option<String>,
}

impl CheckedTextPatch {
    fn new(lang: &str, p: &CampaignTextPatch) -> DomainResult<Self> {
        let field = |name: &str| format!("{lang}.{name}");
        let req = |name: &str, value: &Option<String>, max: usize| {
            value
                .as_deref()
                .map(|v| title_or_text(&field(name), v, max, name == "title"))
                .transpose()
        };
        Ok(Self {
            title: req("title", &p.title, MAX_TITLE_CHARS)?,
            summary: req("summary", &p.summary, MAX_TEXT_CHARS)?,
            impact: req("impact", &p.impact, MAX_TEXT_CHARS)?,
            what_to_do: req("what_to_do", &p.what_to_do, MAX_TEXT_CHARS)?,
            how_to_check: req("how_to_check", &p.how_to_check, MAX_TEXT_CHARS)?,
            references: req("references", &p.references, MAX_TEXT_CHARS)?,
        })
    }

    fn apply(self, t: &mut CampaignText) {
        if let Some(v) = self.title {
            t.title = v;
        }
        if let Some(v) = self.summary {
            t.summary = v;
        }
        if let Some(v) = self.impact {
            t.impact = v;
        }
        if let Some(v) = self.what_to_do {
            t.what_to_do = v;
        }
        if let Some(v) = self.how_to_check {
            t.how_to_check = v;
        }
        if let Some(v) = self.references {
            t.references = v;
        }
    }
}

impl CheckedPatch {
    fn new(p: &CampaignPatch) -> DomainResult<Self> {
        Ok(Self {
            slug: p.slug.as_deref().map(slug).transpose()?,
            tlp: p.tlp,
            severity: p.severity,
            nb: p
                .nb
                .as_ref()
                .map(|t| CheckedTextPatch::new("nb", t))
                .transpose()?,
            en: p
                .en
                .as_ref()
                .map(|t| CheckedTextPatch::new("en", t))
                .transpose()?,
            checks: p.checks.as_deref().map(checks).transpose()?,
            cves: p.cves.as_deref().map(cves).transpose()?,
            states: p.states.as_deref().map(states).transpose()?,
            reminder_days: p.reminder_days.as_deref().map(reminder_days).transpose()?,
            auto_approve: p.auto_approve,
            copy_sector_teams: p.copy_sector_teams,
            closing_mail: p.closing_mail,
            followup_interval_hours: p
                .followup_interval_hours
                .map(|v| within("followup_interval_hours", v, 1, 720))
                .transpose()?,
            link_valid_days: p
                .link_valid_days
                .map(|v| within("link_valid_days", v, 1, 365))
                .transpose()?,
        })
    }

    fn apply(self, f: &mut Fields) {
        macro_rules! set {
            ($($name:ident),+) => {
                $(if let Some(v) = self.$name { f.$name = v; })+
            };
        }
        set!(
            slug,
            tlp,
            severity,
            checks,
            cves,
            states,
            reminder_days,
            auto_approve,
            copy_sector_teams,
            closing_mail,
            followup_interval_hours,
            link_valid_days
        );
        if let Some(t) = self.nb {
            t.apply(&mut f.nb);
        }
        if let Some(t) = self.en {
            t.apply(&mut f.en);
        }
    }
}

/// What the document's `\s` matches: Rust's white space less U+0085 (a
/// control character there) plus U+FEFF. Trimming by it makes "has a
/// character that is not white space" mean here what the pattern says.
fn is_space(c: char) -> bool {
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// A title (plain text, one line) or a Markdown text: trimmed, not empty,
/// at most `max` characters as sent.
fn title_or_text(field: &str, value: &str, max: usize, is_title: bool) -> DomainResult<String> {
    if value.chars().count() > max {
        return Err(DomainError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    if is_title && value.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            field,
            "a title is one line of text, without control characters",
        ));
    }
    let trimmed = value.trim_matches(is_space);
    if trimmed.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    Ok(trimmed.to_owned())
}

fn new_text(lang: &str, t: &NewCampaignText) -> DomainResult<CampaignText> {
    let field = |name: &str| format!("{lang}.{name}");
    Ok(CampaignText {
        title: title_or_text(&field("title"), &t.title, MAX_TITLE_CHARS, true)?,
        summary: title_or_text(&field("summary"), &t.summary, MAX_TEXT_CHARS, false)?,
        impact: title_or_text(&field("impact"), &t.impact, MAX_TEXT_CHARS, false)?,
        what_to_do: title_or_text(&field("what_to_do"), &t.what_to_do, MAX_TEXT_CHARS, false)?,
        how_to_check: title_or_text(
            &field("how_to_check"),
            &t.how_to_check,
            MAX_TEXT_CHARS,
            false,
        )?,
        references: title_or_text(&field("references"), &t.references, MAX_TEXT_CHARS, false)?,
    })
}

/// `^[a-z0-9][a-z0-9-]{0,99}$`, as sent (no trimming: it goes into URLs).
fn slug(s: &str) -> DomainResult<String> {
    let mut chars = s.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !first_ok || !rest_ok || s.len() > 100 {
        return Err(DomainError::invalid(
            "slug",
            "1 to 100 of a-z, 0-9 and '-', starting with a letter or digit",
        ));
    }
    Ok(s.to_owned())
}

/// Check ids as ingest accepts them; duplicates dropped, order kept.
fn checks(items: &[String]) -> DomainResult<Vec<String>> {
    if items.len() > MAX_CHECKS {
        return Err(DomainError::invalid(
            "checks",
            format!("at most {MAX_CHECKS} checks"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, check) in items.iter().enumerate() {
        let problem = crate::ingest::scans::check_id_problem(check).or_else(|| {
            // The document's `\s` also matches U+FEFF.
            check
                .contains('\u{feff}')
                .then(|| format!("{check:?} contains white space"))
        });
        if let Some(problem) = problem {
            return Err(DomainError::invalid(format!("checks[{i}]"), problem));
        }
        if !out.contains(check) {
            out.push(check.clone());
        }
    }
    Ok(out)
}

/// `CVE-YYYY-NNNN…` in any case, stored upper case; duplicates dropped.
fn cves(items: &[String]) -> DomainResult<Vec<String>> {
    if items.len() > MAX_CVES {
        return Err(DomainError::invalid(
            "cves",
            format!("at most {MAX_CVES} CVEs"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, cve) in items.iter().enumerate() {
        let upper = cve.to_ascii_uppercase();
        let shape_ok = upper.strip_prefix("CVE-").is_some_and(|rest| {
            rest.split_once('-').is_some_and(|(year, number)| {
                year.len() == 4
                    && (4..=19).contains(&number.len())
                    && year
                        .bytes()
                        .chain(number.bytes())
                        .all(|b| b.is_ascii_digit())
            })
        });
        if !shape_ok {
            return Err(DomainError::invalid(
                format!("cves[{i}]"),
                format!("{cve:?} is not a CVE id (CVE-YYYY-NNNN, e.g. CVE-2021-26855)"),
            ));
        }
        if !out.contains(&upper) {
            out.push(upper);
        }
    }
    Ok(out)
}

/// At least one; duplicates dropped; in a fixed order.
fn states(items: &[MatchState]) -> DomainResult<Vec<MatchState>> {
    if items.is_empty() {
        return Err(DomainError::invalid(
            "states",
            "give at least one of vulnerable, compromised, unknown",
        ));
    }
    Ok(MatchState::ALL
        .iter()
        .copied()
        .filter(|s| items.contains(s))
        .collect())
}

/// Each 1 to 365, strictly increasing.
fn reminder_days(days: &[i32]) -> DomainResult<Vec<i32>> {
    for (i, &d) in days.iter().enumerate() {
        if !(1..=365).contains(&d) {
            return Err(DomainError::invalid(
                format!("reminder_days[{i}]"),
                "a reminder goes out 1 to 365 days after the notification",
            ));
        }
    }
    if let Some(w) = days.windows(2).find(|w| w[1] <= w[0]) {
        return Err(DomainError::invalid(
            "reminder_days",
            format!(
                "must be strictly increasing ({} comes after {})",
                w[1], w[0]
            ),
        ));
    }
    Ok(days.to_vec())
}

fn within(field: &str, value: i32, min: i32, max: i32) -> DomainResult<i32> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(DomainError::invalid(
            field,
            format!("must be {min} to {max}"),
        ))
    }
}

fn bind_fields<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    f: &'q Fields,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    let states: Vec<&'static str> = f.states.iter().map(|s| s.as_str()).collect();
    query
        .bind(&f.slug)
        .bind(f.tlp.as_str())
        .bind(f.severity.as_str())
        .bind(&f.nb.title)
        .bind(&f.nb.summary)
        .bind(&f.nb.impact)
        .bind(&f.nb.what_to_do)
        .bind(&f.nb.how_to_check)
        .bind(&f.nb.references)
        .bind(&f.en.title)
        .bind(&f.en.summary)
        .bind(&f.en.impact)
        .bind(&f.en.what_to_do)
        .bind(&f.en.how_to_check)
        .bind(&f.en.references)
        .bind(&f.checks)
        .bind(&f.cves)
        .bind(states)
        .bind(&f.reminder_days)
        .bind(f.auto_approve)
        .bind(f.copy_sector_teams)
        .bind(f.closing_mail)
        .bind(f.followup_interval_hours)
        .bind(f.link_valid_days)
        .bind(crate::checks::compromise_checks(&f.cves))
}

fn subject(id: i64) -> String {
    format!("campaign:{id}")
}

fn not_found(id: i64) -> DomainError {
    DomainError::not_found(format!("campaign {id}"))
}

fn wrong_status(id: i64, status: CampaignStatus, rule: &str) -> DomainError {
    DomainError::conflict(format!("campaign {id} is {status}: {rule}"))
}

/// Creates a draft campaign.
pub async fn create(
    conn: &mut PgConnection,
    actor: &Actor,
    new: &NewCampaign,
) -> DomainResult<Campaign> {
    let fields = Fields::new(new)?;
    let mut tx = conn.begin().await?;
    let sql = format!(
        "INSERT INTO campaigns ({FIELD_COLUMNS}, created_by) VALUES ({FIELD_PARAMS}, $26)
         RETURNING {COLUMNS}"
    );
    let row: CampaignRow = bind_fields(sqlx::query_as(&sql), &fields)
        .bind(actor.to_string())
        .fetch_one(&mut *tx)
        .await?;
    let campaign = Campaign::try_from(row)?;
    audit::commit(
        tx,
        actor,
        "campaign.create",
        &subject(campaign.id),
        serde_json::json!({ "slug": campaign.slug }),
    )
    .await?;
    Ok(campaign)
}

/// Locks the campaign's row until the transaction ends.
async fn lock(conn: &mut PgConnection, id: i64) -> DomainResult<Campaign> {
    let row: CampaignRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaigns WHERE id = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or_else(|| not_found(id))?;
    Campaign::try_from(row)
}

/// Changes a draft. An active or closed campaign has been sent as it is,
/// so it no longer changes (post an update instead): 409.
pub async fn update(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    patch: &CampaignPatch,
) -> DomainResult<Campaign> {
    let patch = CheckedPatch::new(patch)?;
    let mut tx = conn.begin().await?;
    let current = lock(&mut tx, id).await?;
    if current.status != CampaignStatus::Draft {
        return Err(wrong_status(
            id,
            current.status,
            "only a draft can be edited; post an update instead",
        ));
    }
    let mut fields = Fields::of(&current);
    patch.apply(&mut fields);
    fields.check_whole()?;
    let before = audit::snapshot(&mut tx, "campaigns", id).await?;
    let sql = format!(
        "UPDATE campaigns SET ({FIELD_COLUMNS}) = ({FIELD_PARAMS}) WHERE id = $26
         RETURNING {COLUMNS}"
    );
    let row: CampaignRow = bind_fields(sqlx::query_as(&sql), &fields)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let campaign = Campaign::try_from(row)?;
    let after = audit::snapshot(&mut tx, "campaigns", id).await?;
    audit::commit(
        tx,
        actor,
        "campaign.update",
        &subject(id),
        audit::changes(before.as_ref(), after.as_ref()),
    )
    .await?;
    Ok(campaign)
}

/// Moves the campaign from status `from` to `to` at `now`, inside `tx`;
/// `rule` says why when it is not in `from`.
async fn transition(
    tx: &mut PgConnection,
    id: i64,
    from: CampaignStatus,
    to: CampaignStatus,
    now: DateTime<Utc>,
    rule: &str,
) -> DomainResult<Campaign> {
    let current = lock(tx, id).await?;
    if current.status != from {
        return Err(wrong_status(id, current.status, rule));
    }
    let stamp = match to {
        CampaignStatus::Active => "activated_at",
        CampaignStatus::Closed => "closed_at",
        CampaignStatus::Draft => {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "a campaign never goes back to draft"
            )));
        }
    };
    let row: CampaignRow = sqlx::query_as(&format!(
        "UPDATE campaigns SET status = $2, {stamp} = $3 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(to.as_str())
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    Campaign::try_from(row)
}

/// Starts a draft campaign at `now` (the application's clock): from here
/// on its findings are notified.
pub async fn activate(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let mut tx = conn.begin().await?;
    let campaign = transition(
        &mut tx,
        id,
        CampaignStatus::Draft,
        CampaignStatus::Active,
        now,
        "only a draft can be activated",
    )
    .await?;
    // The job that drafts a notification per affected organisation goes
    // into `tx`: an activation and its drafting commit together or not at
    // all.
    crate::notifications::drafting::enqueue(&mut tx, now).await?;
    audit::commit(
        tx,
        actor,
        "campaign.activate",
        &subject(id),
        serde_json::json!({ "activated_at": now }),
    )
    .await?;
    Ok(campaign)
}

/// Appends a dated update (posted at `now`) to an active campaign.
pub async fn post_update(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    new: &NewUpdate,
    now: DateTime<Utc>,
) -> DomainResult<CampaignUpdate> {
    let mut tx = conn.begin().await?;
    let update = insert_update(&mut tx, actor, id, new, now).await?;
    // Its mail to every organisation already notified, with it.
    crate::jobs::enqueue(
        &mut tx,
        &crate::jobs::Job::SendUpdate {
            update_id: update.id,
        },
        now,
    )
    .await?;
    audit::commit(
        tx,
        actor,
        "campaign.post_update",
        &subject(id),
        serde_json::json!({ "update_id": update.id, "posted_at": update.posted_at }),
    )
    .await?;
    Ok(update)
}

/// The update's checks and insert, inside the caller's transaction (the
/// seed posts its historical update through here too).
pub(super) async fn insert_update(
    tx: &mut PgConnection,
    actor: &Actor,
    id: i64,
    new: &NewUpdate,
    posted_at: DateTime<Utc>,
) -> DomainResult<CampaignUpdate> {
    let body_nb = title_or_text("body_nb", &new.body_nb, MAX_TEXT_CHARS, false)?;
    let body_en = title_or_text("body_en", &new.body_en, MAX_TEXT_CHARS, false)?;
    let current = lock(tx, id).await?;
    if current.status != CampaignStatus::Active {
        return Err(wrong_status(
            id,
            current.status,
            "updates are posted to an active campaign only",
        ));
    }
    let row: UpdateRow = sqlx::query_as(&format!(
        "INSERT INTO campaign_updates (campaign_id, posted_at, body_nb, body_en, created_by)
         VALUES ($1, $2, $3, $4, $5) RETURNING {UPDATE_COLUMNS}"
    ))
    .bind(id)
    .bind(posted_at)
    .bind(&body_nb)
    .bind(&body_en)
    .bind(actor.to_string())
    .fetch_one(&mut *tx)
    .await?;
    Ok(row.into())
}

/// Ends an active campaign at `now`.
pub async fn close(
    conn: &mut PgConnection,
    actor: &Actor,
    id: i64,
    now: DateTime<Utc>,
) -> DomainResult<Campaign> {
    let mut tx = conn.begin().await?;
    let campaign = transition(
        &mut tx,
        id,
        CampaignStatus::Active,
        CampaignStatus::Closed,
        now,
        "only an active campaign can be closed",
    )
    .await?;
    audit::commit(
        tx,
        actor,
        "campaign.close",
        &subject(id),
        serde_json::json!({ "closed_at": now }),
    )
    .await?;
    Ok(campaign)
}

/// A page of campaigns by id, after `after`; `limit + 1` rows, so the
/// caller learns whether more exist.
pub async fn list(
    conn: &mut PgConnection,
    status: Option<CampaignStatus>,
    after: i64,
    limit: usize,
) -> DomainResult<Vec<Campaign>> {
    let rows: Vec<CampaignRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaigns
          WHERE id > $1 AND ($2::text IS NULL OR status = $2)
          ORDER BY id LIMIT $3"
    ))
    .bind(after)
    .bind(status.map(CampaignStatus::as_str))
    .bind(limit as i64 + 1)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Campaign::try_from).collect()
}

pub async fn fetch(conn: &mut PgConnection, id: i64) -> DomainResult<Campaign> {
    let row: CampaignRow =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM campaigns WHERE id = $1"))
            .bind(id)
            .fetch_optional(conn)
            .await?
            .ok_or_else(|| not_found(id))?;
    Campaign::try_from(row)
}

/// The campaign whose slug this is, if any.
pub async fn find_by_slug(conn: &mut PgConnection, slug: &str) -> DomainResult<Option<Campaign>> {
    let row: Option<CampaignRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM campaigns WHERE slug = $1"))
            .bind(slug)
            .fetch_optional(conn)
            .await?;
    row.map(Campaign::try_from).transpose()
}

/// What the campaign covers now, by the match rule over the findings.
pub async fn counts(conn: &mut PgConnection, id: i64) -> DomainResult<CampaignCounts> {
    let (open_findings, organisations, unattributed_findings): (i64, i64, i64) =
        sqlx::query_as(&format!(
            "SELECT count(*), count(DISTINCT f.organisation_id),
                    count(*) FILTER (WHERE f.organisation_id IS NULL)
               FROM campaigns c JOIN findings f ON {MATCH_SQL}
              WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    let by_check = sqlx::query_as(&format!(
        "SELECT f.check_id, f.state, count(*) AS findings,
                count(DISTINCT f.organisation_id) AS organisations
           FROM campaigns c JOIN findings f ON {MATCH_SQL}
          WHERE c.id = $1 AND f.current
          GROUP BY f.check_id, f.state
          ORDER BY f.state = 'compromised' DESC, count(*) DESC, f.check_id"
    ))
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let notifications = notification_counts(conn, id).await?;
    Ok(CampaignCounts {
        open_findings,
        organisations,
        unattributed_findings,
        by_check,
        notifications,
    })
}

/// The campaign's notifications by status, every status present (an index
/// read; the finding counts of [`counts`] scan the findings).
pub async fn notification_counts(
    conn: &mut PgConnection,
    id: i64,
) -> DomainResult<std::collections::BTreeMap<String, i64>> {
    let by_status: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM notifications WHERE campaign_id = $1 GROUP BY status",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    let mut notifications: std::collections::BTreeMap<String, i64> =
        crate::notifications::model::NotificationStatus::ALL
            .iter()
            .map(|s| (s.as_str().to_owned(), 0))
            .collect();
    notifications.extend(by_status);
    Ok(notifications)
}

/// The campaign's updates, newest first.
pub async fn updates(conn: &mut PgConnection, id: i64) -> DomainResult<Vec<CampaignUpdate>> {
    let rows: Vec<UpdateRow> = sqlx::query_as(&format!(
        "SELECT {UPDATE_COLUMNS} FROM campaign_updates WHERE campaign_id = $1
          ORDER BY posted_at DESC, id DESC"
    ))
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(CampaignUpdate::from).collect())
}

fn rendered(t: &CampaignText) -> RenderedText {
    RenderedText {
        title: markdown::escape_html(&t.title),
        summary: markdown::to_html(&t.summary),
        impact: markdown::to_html(&t.impact),
        what_to_do: markdown::to_html(&t.what_to_do),
        how_to_check: markdown::to_html(&t.how_to_check),
        references: markdown::to_html(&t.references),
    }
}

/// One campaign with its live counts, its updates (newest first), the
/// meaning of its TLP label and its texts as HTML.
pub async fn show(conn: &mut PgConnection, id: i64) -> DomainResult<CampaignDetail> {
    let campaign = fetch(conn, id).await?;
    let counts = counts(conn, id).await?;
    let updates = updates(conn, id).await?;
    Ok(CampaignDetail {
        counts,
        updates,
        tlp_wording: Bilingual {
            nb: campaign.tlp.wording(Language::Nb).to_owned(),
            en: campaign.tlp.wording(Language::En).to_owned(),
        },
        html: RenderedTexts {
            nb: rendered(&campaign.nb),
            en: rendered(&campaign.en),
        },
        campaign,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(e: DomainError) -> String {
        match e {
            DomainError::Invalid { field, .. } => field,
            other => panic!("not invalid: {other:?}"),
        }
    }

    #[test]
    fn slugs() {
        assert!(slug("exchange-proxylogon-2021-03").is_ok());
        assert!(slug("0day").is_ok());
        for bad in ["", "-x", "Exchange", "a b", "æ", &"a".repeat(101)] {
            assert_eq!(field(slug(bad).unwrap_err()), "slug", "{bad:?}");
        }
        assert!(slug(&"a".repeat(100)).is_ok());
    }

    #[test]
    fn cves_are_upper_cased_and_checked() {
        let got = cves(&[
            "cve-2021-26855".into(),
            "CVE-2021-26855".into(),
            "CVE-2021-123456".into(),
        ])
        .unwrap();
        assert_eq!(got, ["CVE-2021-26855", "CVE-2021-123456"]);
        for bad in [
            "CVE-21-26855",
            "CVE-2021-123",
            "CVE-2021-2685x",
            " CVE-2021-26855",
            "2021-26855",
        ] {
            assert_eq!(
                field(cves(&["CVE-2021-1234".into(), bad.into()]).unwrap_err()),
                "cves[1]"
            );
        }
    }

    #[test]
    fn reminder_days_increase_strictly() {
        assert_eq!(reminder_days(&[3, 7]).unwrap(), [3, 7]);
        assert!(reminder_days(&[]).unwrap().is_empty());
        assert_eq!(field(reminder_days(&[7, 3]).unwrap_err()), "reminder_days");
        assert_eq!(field(reminder_days(&[3, 3]).unwrap_err()), "reminder_days");
        assert_eq!(
            field(reminder_days(&[3, 366]).unwrap_err()),
            "reminder_days[1]"
        );
        assert_eq!(field(reminder_days(&[0]).unwrap_err()), "reminder_days[0]");
    }

    #[test]
    fn texts_are_trimmed_as_the_document_counts_white_space() {
        assert_eq!(title_or_text("t", "  x \u{feff}", 10, false).unwrap(), "x");
        assert!(title_or_text("t", " \u{feff}\u{a0}", 10, false).is_err());
        // U+0085 is not white space to the document's pattern.
        assert_eq!(title_or_text("t", "\u{85}", 10, false).unwrap(), "\u{85}");
        assert!(title_or_text("t", "a\nb", 10, true).is_err());
        assert!(title_or_text("t", "a\nb", 10, false).is_ok());
        // Counted as sent, as maxLength counts.
        assert!(title_or_text("t", "abc  ", 4, false).is_err());
    }

    #[test]
    fn states_in_a_fixed_order() {
        assert_eq!(
            states(&[
                MatchState::Compromised,
                MatchState::Vulnerable,
                MatchState::Compromised
            ])
            .unwrap(),
            [MatchState::Vulnerable, MatchState::Compromised]
        );
        assert_eq!(field(states(&[]).unwrap_err()), "states");
    }
}
