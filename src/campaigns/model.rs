//! Campaign value types, read from requests once and trusted inside: the
//! TLP label with its FIRST TLP 2.0 wording, severity, status, the finding
//! states a campaign covers, the texts in both languages, and the request
//! and response shapes of campaigns and their updates.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::registry::model::{Language, text_enum};

/// A FIRST Traffic Light Protocol 2.0 label: how far the recipient may
/// share what the campaign says. Spelt as the standard spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum Tlp {
    #[serde(rename = "CLEAR")]
    Clear,
    #[serde(rename = "GREEN")]
    Green,
    #[serde(rename = "AMBER")]
    Amber,
    #[serde(rename = "AMBER+STRICT")]
    AmberStrict,
    #[serde(rename = "RED")]
    Red,
}

impl Tlp {
    pub const ALL: &'static [Tlp] = &[
        Tlp::Clear,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tlp::Clear => "CLEAR",
            Tlp::Green => "GREEN",
            Tlp::Amber => "AMBER",
            Tlp::AmberStrict => "AMBER+STRICT",
            Tlp::Red => "RED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// The label as it is written in a message: `TLP:AMBER+STRICT`.
    pub fn label(self) -> String {
        format!("TLP:{}", self.as_str())
    }

    /// What the recipient may share, in the words of the FIRST TLP 2.0
    /// standard (its definition of the label and its "recipients may"
    /// sentence; the parts addressed to the source are left out). The
    /// Norwegian is this project's translation of that text. Nynorsk
    /// readers get the Bokmål text until there is a Nynorsk one.
    pub fn wording(self, language: Language) -> &'static str {
        match (self, language) {
            (Tlp::Clear, Language::En) => {
                "Recipients can spread this to the world, there is no limit on disclosure. \
                 Subject to standard copyright rules, TLP:CLEAR information may be shared \
                 without restriction."
            }
            (Tlp::Clear, Language::Nb | Language::Nn) => {
                "Mottakerne kan spre dette til hele verden; det er ingen begrensning på deling. \
                 Med forbehold om vanlige regler for opphavsrett kan TLP:CLEAR-informasjon \
                 deles uten begrensning."
            }
            (Tlp::Green, Language::En) => {
                "Limited disclosure, recipients can spread this within their community. \
                 Recipients may share TLP:GREEN information with peers and partner \
                 organizations within their community, but not via publicly accessible \
                 channels. TLP:GREEN information may not be shared outside of the community. \
                 Note: when \u{201c}community\u{201d} is not defined, assume the \
                 cybersecurity/defense community."
            }
            (Tlp::Green, Language::Nb | Language::Nn) => {
                "Begrenset deling: mottakerne kan spre dette innenfor sitt fellesskap. \
                 Mottakerne kan dele TLP:GREEN-informasjon med likemenn og \
                 partnerorganisasjoner i sitt fellesskap, men ikke gjennom offentlig \
                 tilgjengelige kanaler. TLP:GREEN-informasjon kan ikke deles utenfor \
                 fellesskapet. Merk: når \u{ab}fellesskap\u{bb} ikke er definert, gjelder \
                 fellesskapet for cybersikkerhet og forsvar."
            }
            (Tlp::Amber, Language::En) => {
                "Limited disclosure, recipients can only spread this on a need-to-know basis \
                 within their organization and its clients. Recipients may share TLP:AMBER \
                 information with members of their own organization and its clients, but \
                 only on a need-to-know basis to protect their organization and its clients \
                 and prevent further harm."
            }
            (Tlp::Amber, Language::Nb | Language::Nn) => {
                "Begrenset deling: mottakerne kan bare spre dette til dem som trenger å vite \
                 det, i egen organisasjon og hos organisasjonens kunder. Mottakerne kan dele \
                 TLP:AMBER-informasjon med medlemmer av egen organisasjon og med dens kunder, \
                 men bare til dem som trenger å vite det for å beskytte organisasjonen og \
                 kundene og hindre videre skade."
            }
            (Tlp::AmberStrict, Language::En) => {
                "Limited disclosure, recipients can only spread this on a need-to-know basis \
                 within their organization. Recipients may share TLP:AMBER+STRICT \
                 information only with members of their own organization, on a \
                 need-to-know basis to protect their organization and prevent further harm."
            }
            (Tlp::AmberStrict, Language::Nb | Language::Nn) => {
                "Begrenset deling: mottakerne kan bare spre dette til dem som trenger å vite \
                 det, i egen organisasjon. Mottakerne kan dele TLP:AMBER+STRICT-informasjon \
                 bare med medlemmer av egen organisasjon, og bare til dem som trenger å vite \
                 det for å beskytte organisasjonen og hindre videre skade."
            }
            (Tlp::Red, Language::En) => {
                "For the eyes and ears of individual recipients only, no further disclosure. \
                 Recipients may therefore not share TLP:RED information with anyone else. In \
                 the context of a meeting, for example, TLP:RED information is limited to \
                 those present at the meeting."
            }
            (Tlp::Red, Language::Nb | Language::Nn) => {
                "Bare for de enkelte mottakernes egne øyne og ører, ingen videre deling. \
                 Mottakerne kan derfor ikke dele TLP:RED-informasjon med noen andre. I et \
                 møte, for eksempel, er TLP:RED-informasjon begrenset til dem som er til \
                 stede."
            }
        }
    }
}

impl fmt::Display for Tlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

text_enum!(
    /// How bad it is for an affected organisation.
    CampaignSeverity {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
);

text_enum!(
    /// `draft` (edited freely) → `active` (notifications go out, updates
    /// are posted) → `closed`.
    CampaignStatus {
        Draft => "draft",
        Active => "active",
        Closed => "closed",
    }
);

text_enum!(
    /// The finding states a campaign covers: `unknown` is an exposure (the
    /// service was seen, the scanner could not tell whether it is
    /// vulnerable).
    MatchState {
        Vulnerable => "vulnerable",
        Compromised => "compromised",
        Unknown => "unknown",
    }
);

/// Limits of the texts, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_TEXT_CHARS: usize = 20_000;
pub const MAX_CHECKS: usize = 100;
pub const MAX_CVES: usize = 100;

/// The texts of a campaign in one language, Markdown (the title is plain
/// text, one line: it is a mail subject too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignText {
    pub title: String,
    pub summary: String,
    pub impact: String,
    pub what_to_do: String,
    /// How to check for compromise.
    pub how_to_check: String,
    pub references: String,
}

/// A campaign as stored.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Campaign {
    pub id: i64,
    pub slug: String,
    pub status: CampaignStatus,
    pub tlp: Tlp,
    pub severity: CampaignSeverity,
    /// Norwegian Bokmål.
    pub nb: CampaignText,
    /// English.
    pub en: CampaignText,
    /// Check ids whose findings the campaign covers.
    pub checks: Vec<String>,
    /// CVE ids (upper case) whose findings the campaign covers.
    pub cves: Vec<String>,
    /// Finding states the campaign covers.
    pub states: Vec<MatchState>,
    /// Days after the first notification when a reminder goes out while
    /// findings stay open and unacknowledged; strictly increasing.
    pub reminder_days: Vec<i32>,
    pub auto_approve: bool,
    pub copy_sector_teams: bool,
    pub closing_mail: bool,
    pub followup_interval_hours: i32,
    pub link_valid_days: i32,
    /// The actor that created it, as the audit log names it.
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// A check id, as the document states it.
#[derive(utoipa::ToSchema)]
#[schema(
    example = "exchange-proxylogon",
    pattern = "^[^\\s\\u0000-\\u001f\\u007f-\\u009f]{1,128}$"
)]
pub struct CampaignCheck(pub String);

/// A CVE id; stored upper case.
#[derive(utoipa::ToSchema)]
#[schema(
    example = "CVE-2021-26855",
    pattern = "^[Cc][Vv][Ee]-[0-9]{4}-[0-9]{4,19}$"
)]
pub struct CveId(pub String);

/// Days after the first notification, 1 to 365. (By hand: the derive
/// takes no bounds on a newtype.)
pub struct ReminderDay(pub i32);

impl utoipa::PartialSchema for ReminderDay {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
            .minimum(Some(1))
            .maximum(Some(365))
            .description(Some("Days after the first notification, 1 to 365."))
            .into()
    }
}

impl utoipa::ToSchema for ReminderDay {}

/// The texts of a new campaign in one language.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaignText {
    /// Plain text, one line (no control characters), with something in
    /// it besides white space.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub title: String,
    /// Markdown.
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub summary: String,
    /// Markdown.
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub impact: String,
    /// Markdown.
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub what_to_do: String,
    /// Markdown: how to check for compromise (patching is not enough when
    /// exploitation has begun).
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub how_to_check: String,
    /// Markdown: the sources and further reading.
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub references: String,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    /// The campaign's name in URLs and file names.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[a-z0-9][a-z0-9-]{0,99}$",
        example = "exchange-proxylogon-2021-03"
    )]
    pub slug: String,
    pub tlp: Tlp,
    pub severity: CampaignSeverity,
    /// Norwegian Bokmål.
    pub nb: NewCampaignText,
    /// English.
    pub en: NewCampaignText,
    /// Check ids whose findings the campaign covers (duplicates are
    /// dropped). A campaign needs at least one check or CVE.
    #[serde(default)]
    #[schema(value_type = Vec<CampaignCheck>, max_items = 100)]
    pub checks: Vec<String>,
    /// CVE ids whose findings the campaign covers (upper-cased, duplicates
    /// dropped).
    #[serde(default)]
    #[schema(value_type = Vec<CveId>, max_items = 100)]
    pub cves: Vec<String>,
    /// Finding states covered; default `vulnerable` and `compromised`.
    #[serde(default = "default_states")]
    #[schema(min_items = 1, default = json!(["vulnerable", "compromised"]))]
    pub states: Vec<MatchState>,
    /// Strictly increasing; default 3 and 7. Empty: no reminders.
    #[serde(default = "default_reminder_days")]
    #[schema(value_type = Vec<ReminderDay>, max_items = 365, default = json!([3, 7]))]
    pub reminder_days: Vec<i32>,
    /// Approve new notifications without an analyst; default false.
    #[serde(default)]
    pub auto_approve: bool,
    /// Send a copy to the organisation's sector response team; default true.
    #[serde(default = "yes")]
    #[schema(default = true)]
    pub copy_sector_teams: bool,
    /// Tell the organisation when the campaign closes; default false.
    #[serde(default)]
    pub closing_mail: bool,
    /// How often new findings of a notified organisation are batched into
    /// a follow-up; default 24.
    #[serde(default = "default_followup_interval_hours")]
    #[schema(minimum = 1, maximum = 720, default = 24)]
    pub followup_interval_hours: i32,
    /// How long an advisory link stays valid; default 90.
    #[serde(default = "default_link_valid_days")]
    #[schema(minimum = 1, maximum = 365, default = 90)]
    pub link_valid_days: i32,
}

impl crate::http::BodyShape for NewCampaign {}

/// What the derive cannot say of [`NewCampaign`] in the OpenAPI document:
/// it needs at least one check or CVE (else it would match nothing).
/// Called by `openapi::document`.
pub fn complete_schema(doc: &mut serde_json::Value) {
    let Some(schema) = doc
        .pointer_mut("/components/schemas/NewCampaign")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    schema.insert(
        "anyOf".to_owned(),
        serde_json::json!([
            { "required": ["checks"], "properties": { "checks": { "minItems": 1 } } },
            { "required": ["cves"], "properties": { "cves": { "minItems": 1 } } },
        ]),
    );
}

fn yes() -> bool {
    true
}

pub fn default_states() -> Vec<MatchState> {
    vec![MatchState::Vulnerable, MatchState::Compromised]
}

pub fn default_reminder_days() -> Vec<i32> {
    vec![3, 7]
}

fn default_followup_interval_hours() -> i32 {
    24
}

fn default_link_valid_days() -> i32 {
    90
}

/// Changes to the texts in one language; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignTextPatch {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub title: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub summary: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub impact: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub what_to_do: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub how_to_check: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub references: Option<String>,
}

/// Changes to a draft campaign; absent fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignPatch {
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[a-z0-9][a-z0-9-]{0,99}$"
    )]
    pub slug: Option<String>,
    pub tlp: Option<Tlp>,
    pub severity: Option<CampaignSeverity>,
    pub nb: Option<CampaignTextPatch>,
    pub en: Option<CampaignTextPatch>,
    #[schema(value_type = Option<Vec<CampaignCheck>>, max_items = 100)]
    pub checks: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<CveId>>, max_items = 100)]
    pub cves: Option<Vec<String>>,
    #[schema(min_items = 1)]
    pub states: Option<Vec<MatchState>>,
    #[schema(value_type = Option<Vec<ReminderDay>>, max_items = 365)]
    pub reminder_days: Option<Vec<i32>>,
    pub auto_approve: Option<bool>,
    pub copy_sector_teams: Option<bool>,
    pub closing_mail: Option<bool>,
    #[schema(minimum = 1, maximum = 720)]
    pub followup_interval_hours: Option<i32>,
    #[schema(minimum = 1, maximum = 365)]
    pub link_valid_days: Option<i32>,
}

impl crate::http::BodyShape for CampaignPatch {}

/// A dated update to an active campaign, in both languages (Markdown).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpdate {
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub body_nb: String,
    #[schema(
        min_length = 1,
        max_length = 20000,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub body_en: String,
}

impl crate::http::BodyShape for NewUpdate {}

/// A posted update, with its bodies rendered as sanitised HTML.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignUpdate {
    pub id: i64,
    pub campaign_id: i64,
    pub posted_at: DateTime<Utc>,
    pub body_nb: String,
    pub body_en: String,
    pub body_html_nb: String,
    pub body_html_en: String,
    /// The actor that posted it, as the audit log names it.
    pub created_by: String,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignQuery {
    /// Only campaigns with this status.
    pub status: Option<CampaignStatus>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Items per page, 1 to 10 000 (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
}

/// What a campaign covers now, computed from the findings when asked.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignCounts {
    /// Open findings the campaign matches.
    pub open_findings: i64,
    /// Organisations owning at least one of them.
    pub organisations: i64,
    /// Matching open findings no organisation owns yet (the triage queue).
    pub unattributed_findings: i64,
    /// The same, by check and state (compromised first): what the
    /// campaign reaches, before it is activated.
    pub by_check: Vec<MatchCount>,
    /// The campaign's notifications by status (`draft`, `approved`, `sent`,
    /// `acknowledged`, `resolved`, `no_contact`, `expired`); absent ones
    /// are 0.
    #[schema(value_type = Object)]
    pub notifications: std::collections::BTreeMap<String, i64>,
}

/// Open findings a campaign matches of one check in one state.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct MatchCount {
    #[sqlx(rename = "check_id")]
    pub check: String,
    pub state: String,
    pub findings: i64,
    pub organisations: i64,
}

/// A text in both languages.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bilingual {
    pub nb: String,
    pub en: String,
}

/// The texts of one language as sanitised HTML, as a recipient sees them.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenderedText {
    /// The title, HTML-escaped (it is plain text).
    pub title: String,
    pub summary: String,
    pub impact: String,
    pub what_to_do: String,
    pub how_to_check: String,
    pub references: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RenderedTexts {
    pub nb: RenderedText,
    pub en: RenderedText,
}

/// One campaign with what it covers now, its updates (newest first), the
/// meaning of its TLP label and its texts as HTML.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CampaignDetail {
    #[serde(flatten)]
    pub campaign: Campaign,
    pub counts: CampaignCounts,
    pub updates: Vec<CampaignUpdate>,
    /// What the recipient may share, by the TLP 2.0 standard.
    pub tlp_wording: Bilingual,
    pub html: RenderedTexts,
}
