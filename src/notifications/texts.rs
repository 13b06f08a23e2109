//! The fixed words of the mails, in Norwegian Bokmål and English (Nynorsk
//! readers get Bokmål), and how dates are written for each.

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Oslo;

use super::model::MailKind;
use crate::registry::model::Language;

/// The two languages mails are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailLanguage {
    Nb,
    En,
}

impl MailLanguage {
    pub fn of(language: Language) -> Self {
        match language {
            Language::Nb | Language::Nn => MailLanguage::Nb,
            Language::En => MailLanguage::En,
        }
    }

    pub fn parse(code: &str) -> Self {
        Language::parse(code).map_or(MailLanguage::Nb, Self::of)
    }

    pub fn code(self) -> &'static str {
        match self {
            MailLanguage::Nb => "nb",
            MailLanguage::En => "en",
        }
    }

    /// The check catalogue's language.
    pub fn lang(self) -> crate::checks::Lang {
        match self {
            MailLanguage::Nb => crate::checks::Lang::Nb,
            MailLanguage::En => crate::checks::Lang::En,
        }
    }

    /// The registry's language, for the campaign's texts.
    pub fn language(self) -> Language {
        match self {
            MailLanguage::Nb => Language::Nb,
            MailLanguage::En => Language::En,
        }
    }

    pub fn words(self) -> &'static Words {
        match self {
            MailLanguage::Nb => &NB,
            MailLanguage::En => &EN,
        }
    }

    /// A time as the reader's clock on the wall shows it (Europe/Oslo).
    pub fn datetime(self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&Oslo);
        match self {
            MailLanguage::Nb => local.format("%d.%m.%Y %H:%M").to_string(),
            MailLanguage::En => local.format("%-d %B %Y %H:%M").to_string(),
        }
    }
}

/// The fixed words of one language.
pub struct Words {
    pub greeting: &'static str,
    pub intro: &'static str,
    pub reminder_intro: &'static str,
    pub update_intro: &'static str,
    pub followup_intro: &'static str,
    pub realert_intro: &'static str,
    /// Leads every mail but the closing one when a host shows signs of
    /// compromise: said plainly, first.
    pub compromise_alert: &'static str,
    pub closing_intro: &'static str,
    pub copy_intro: &'static str,
    pub summary: &'static str,
    pub impact: &'static str,
    pub what_to_do: &'static str,
    pub how_to_check: &'static str,
    pub references: &'static str,
    pub updates: &'static str,
    pub update_label: &'static str,
    pub hosts: &'static str,
    pub hosts_attached: &'static str,
    pub address: &'static str,
    pub port: &'static str,
    pub check: &'static str,
    pub state: &'static str,
    pub first_seen: &'static str,
    pub last_seen: &'static str,
    pub product: &'static str,
    /// Marks a host not in any earlier mail.
    pub new_marker: &'static str,
    /// "Not seen since …" on a compromised host a scan no longer sees.
    pub not_seen_since: &'static str,
    pub not_seen_meaning: &'static str,
    pub link_intro: &'static str,
    pub link_valid_until: &'static str,
    pub never_passwords: &'static str,
    pub ticket: &'static str,
    pub signature: &'static str,
    pub tlp_heading: &'static str,
    pub state_vulnerable: &'static str,
    pub state_compromised: &'static str,
    pub state_unknown: &'static str,
    pub state_not_vulnerable: &'static str,
    pub copy_prefix: &'static str,
    pub reminder_prefix: &'static str,
    pub update_prefix: &'static str,
    pub followup_prefix: &'static str,
    pub realert_prefix: &'static str,
    pub closing_prefix: &'static str,
}

impl Words {
    /// What the subject says before the campaign's title.
    pub fn subject_prefix(&self, kind: MailKind, copy: bool) -> &'static str {
        match kind {
            MailKind::Initial if copy => self.copy_prefix,
            MailKind::Initial => "",
            MailKind::Reminder => self.reminder_prefix,
            MailKind::Update => self.update_prefix,
            MailKind::Followup => self.followup_prefix,
            MailKind::Realert => self.realert_prefix,
            MailKind::Closing => self.closing_prefix,
        }
    }

    pub fn state(&self, state: &str) -> &'static str {
        match state {
            "compromised" => self.state_compromised,
            "vulnerable" => self.state_vulnerable,
            "not_vulnerable" => self.state_not_vulnerable,
            _ => self.state_unknown,
        }
    }
}

pub static NB: Words = Words {
    greeting: "Hei,",
    intro: "Vi har funnet sårbare tjenester på IP-adresser som tilhører organisasjonen deres. Les hele meldingen: det er ikke nok å oppdatere, dere må også undersøke om serverne allerede er kompromittert.",
    reminder_intro: "Dette er en påminnelse. Funnene under er fortsatt åpne, og vi har ikke fått bekreftet at dere har mottatt varselet.",
    update_intro: "Det er kommet en oppdatering til varselet vi sendte dere.",
    followup_intro: "Vi har funnet flere berørte adresser hos dere siden forrige melding. De nye er merket NY.",
    realert_intro: "VIKTIG: Vi ser nå tegn på kompromittering (for eksempel et webshell) på minst én av adressene deres. Undersøk serveren straks og meld fra til oss via lenken under.",
    compromise_alert: "VIKTIG: Vi ser tegn på kompromittering (for eksempel et webshell) på minst én av serverne deres. Den står først i listen under. Det er ikke nok å oppdatere: en angriper kan allerede ha tilgang. Undersøk serveren straks og meld fra til oss via lenken under.",
    closing_intro: "Alle funnene i dette varselet er nå løst etter våre siste skanninger. Takk for at dere fulgte opp. Husk at en oppdatert server kan ha vært kompromittert før oppdateringen.",
    copy_intro: "Dette er en kopi til sektorens responsmiljø av et varsel sendt til",
    summary: "Sammendrag",
    impact: "Konsekvens",
    what_to_do: "Hva dere må gjøre",
    how_to_check: "Slik undersøker dere kompromittering",
    references: "Referanser",
    updates: "Oppdateringer",
    update_label: "Oppdatering",
    hosts: "Berørte adresser",
    hosts_attached: "Listen over alle berørte adresser ligger vedlagt som CSV-fil.",
    address: "Adresse",
    port: "Port",
    check: "Funn",
    state: "Tilstand",
    first_seen: "Først sett",
    last_seen: "Sist sett",
    product: "Produkt/versjon",
    new_marker: "NY",
    not_seen_since: "Ikke sett siden",
    not_seen_meaning: "serveren svarer ikke lenger på skanningen vår, men det betyr ikke at kompromitteringen er borte",
    link_intro: "Se alle funnene og gi oss svar (mottatt, rettet, falsk positiv, ikke vår, tegn på kompromittering) på den private lenken:",
    link_valid_until: "Lenken gjelder til",
    never_passwords: "Vi ber aldri om passord eller påloggingsinformasjon. En e-post som gjør det, kommer ikke fra oss.",
    ticket: "Saksnummer",
    signature: "Med vennlig hilsen\nNasjonalt cybersikkerhetssenter",
    tlp_heading: "Deling",
    state_vulnerable: "sårbar",
    state_compromised: "kompromittert",
    state_unknown: "eksponert",
    state_not_vulnerable: "ikke sårbar",
    copy_prefix: "Kopi: ",
    reminder_prefix: "Påminnelse: ",
    update_prefix: "Oppdatering: ",
    followup_prefix: "Nye funn: ",
    realert_prefix: "Tegn på kompromittering: ",
    closing_prefix: "Løst: ",
};

pub static EN: Words = Words {
    greeting: "Hello,",
    intro: "We have found vulnerable services on IP addresses that belong to your organisation. Please read the whole message: patching is not enough, you must also check whether the servers have already been compromised.",
    reminder_intro: "This is a reminder. The findings below are still open, and we have not had word that you received our advisory.",
    update_intro: "There is an update to the advisory we sent you.",
    followup_intro: "We have found more affected addresses of yours since our last message. The new ones are marked NEW.",
    realert_intro: "IMPORTANT: We now see signs of compromise (such as a web shell) on at least one of your addresses. Investigate the server at once and tell us through the link below.",
    compromise_alert: "IMPORTANT: We see signs of compromise (such as a web shell) on at least one of your servers, listed first below. Patching is not enough: an attacker may already have access. Investigate the server at once and tell us through the link below.",
    closing_intro: "All findings of this advisory are resolved according to our latest scans. Thank you for acting on it. Remember that a patched server may have been compromised before it was patched.",
    copy_intro: "This is a copy for the sector's response team of an advisory sent to",
    summary: "Summary",
    impact: "Impact",
    what_to_do: "What to do",
    how_to_check: "How to check for compromise",
    references: "References",
    updates: "Updates",
    update_label: "Update",
    hosts: "Affected addresses",
    hosts_attached: "The list of all affected addresses is attached as a CSV file.",
    address: "Address",
    port: "Port",
    check: "What we found",
    state: "State",
    first_seen: "First seen",
    last_seen: "Last seen",
    product: "Product/version",
    new_marker: "NEW",
    not_seen_since: "Not seen since",
    not_seen_meaning: "the server no longer answers our scan, which does not mean the compromise is gone",
    link_intro: "See all findings and answer us (acknowledged, fixed, false positive, not ours, signs of compromise) at your private link:",
    link_valid_until: "The link is valid until",
    never_passwords: "We never ask for passwords or credentials. An e-mail that does is not from us.",
    ticket: "Ticket",
    signature: "Kind regards\nNational Cyber Security Centre",
    tlp_heading: "Sharing",
    state_vulnerable: "vulnerable",
    state_compromised: "compromised",
    state_unknown: "exposed",
    state_not_vulnerable: "not vulnerable",
    copy_prefix: "Copy: ",
    reminder_prefix: "Reminder: ",
    update_prefix: "Update: ",
    followup_prefix: "New hosts found: ",
    realert_prefix: "Signs of compromise: ",
    closing_prefix: "Resolved: ",
};
