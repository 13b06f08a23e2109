//! Checks: what a scanner looks for, and what people read about it. The
//! states a scanner concludes ([`ObservationState`], [`Severity`]), the
//! Shadowserver report types ([`shadowserver`]), and the catalogue that
//! names a check in Norwegian and English for mails, pages and the
//! dashboard ([`describe`]): "Web shell found on Microsoft Exchange
//! (Shadowserver)", not `scan_exchange`, with the host name, server name
//! and path the scanner saw ([`details`]).
//!
//! Below ingest, findings and the surfaces: all of them speak of checks.

pub mod shadowserver;

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a scanner concluded about one service. Ordered by how bad it is, so
/// `max` gives the worst state seen.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ObservationState {
    /// The service was seen and is patched / not affected.
    NotVulnerable,
    /// The service was seen (an exposure) but the scanner cannot tell.
    Unknown,
    Vulnerable,
    /// An indicator of compromise, e.g. a web shell.
    Compromised,
}

impl ObservationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotVulnerable => "not_vulnerable",
            Self::Unknown => "unknown",
            Self::Vulnerable => "vulnerable",
            Self::Compromised => "compromised",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "not_vulnerable" => Self::NotVulnerable,
            "unknown" => Self::Unknown,
            "vulnerable" => Self::Vulnerable,
            "compromised" => Self::Compromised,
            _ => return None,
        })
    }
}

impl fmt::Display for ObservationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Case-insensitive; scanners disagree on case.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "info" | "informational" | "none" => Self::Info,
            "low" => Self::Low,
            "medium" | "moderate" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }
}

/// The two languages people read checks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Nb,
    En,
}

/// Both languages of one text.
#[derive(Debug, Clone, Copy)]
struct Text {
    nb: &'static str,
    en: &'static str,
}

impl Text {
    fn get(self, lang: Lang) -> &'static str {
        match lang {
            Lang::Nb => self.nb,
            Lang::En => self.en,
        }
    }
}

const fn t(nb: &'static str, en: &'static str) -> Text {
    Text { nb, en }
}

/// What a check is called in each state it can be found in.
#[derive(Clone, Copy)]
struct Titles {
    vulnerable: Text,
    compromised: Text,
    exposed: Text,
    fixed: Text,
}

/// Who reported a check.
const CENTRE: Text = t("senterets skanning", "the centre's scan");
const SHADOWSERVER: Text = t("Shadowserver", "Shadowserver");
const NUCLEI: Text = t("nuclei", "nuclei");
const NMAP: Text = t("nmap", "nmap");
const SCANNER: Text = t("skanner", "scanner");

const EXCHANGE: Titles = Titles {
    vulnerable: t(
        "Sårbar Microsoft Exchange-server",
        "Vulnerable Microsoft Exchange server",
    ),
    compromised: t(
        "Webshell funnet på Microsoft Exchange",
        "Web shell found on Microsoft Exchange",
    ),
    exposed: t(
        "Microsoft Exchange tilgjengelig fra Internett",
        "Microsoft Exchange reachable from the Internet",
    ),
    fixed: t(
        "Microsoft Exchange, oppdatert",
        "Microsoft Exchange, patched",
    ),
};

const PROXYLOGON: Titles = Titles {
    vulnerable: t(
        "Microsoft Exchange sårbar for ProxyLogon",
        "Microsoft Exchange vulnerable to ProxyLogon",
    ),
    ..EXCHANGE
};

/// What a web shell on Exchange means, for the reader who has never seen
/// one.
const WEB_SHELL: Text = t(
    "Et webshell er en fil en angriper har lagt på serveren for å kunne kjøre kommandoer på den. \
     Serveren er kompromittert, og en sikkerhetsoppdatering fjerner ikke angriperen.",
    "A web shell is a file an attacker placed on the server to run commands on it. The server is \
     compromised, and a security update does not remove the attacker.",
);

/// The CVEs whose exploitation Exchange web shells came from in 2021
/// (ProxyLogon, then ProxyShell).
const EXCHANGE_CHAIN: &[&str] = &[
    "CVE-2021-26855",
    "CVE-2021-26857",
    "CVE-2021-26858",
    "CVE-2021-27065",
    "CVE-2021-34473",
    "CVE-2021-34523",
    "CVE-2021-31207",
];

/// A check the catalogue knows by name.
struct Entry {
    checks: &'static [&'static str],
    source: Text,
    titles: Titles,
    /// What its compromised state means.
    compromise: Option<Text>,
    /// The vulnerabilities whose exploitation its compromised state shows:
    /// a campaign about them reaches these compromises though they name no
    /// CVE (a web shell is not a vulnerability).
    compromise_of: &'static [&'static str],
}

const ENTRIES: &[Entry] = &[
    Entry {
        checks: &["exchange-proxylogon"],
        source: CENTRE,
        titles: PROXYLOGON,
        compromise: Some(WEB_SHELL),
        compromise_of: EXCHANGE_CHAIN,
    },
    Entry {
        checks: &["scan_exchange", "scan6_exchange"],
        source: SHADOWSERVER,
        titles: EXCHANGE,
        compromise: Some(WEB_SHELL),
        compromise_of: EXCHANGE_CHAIN,
    },
    Entry {
        checks: &["CVE-2021-26855", "CVE-2021-27065"],
        source: NUCLEI,
        titles: PROXYLOGON,
        compromise: Some(WEB_SHELL),
        compromise_of: &[],
    },
    Entry {
        checks: &["vulners"],
        source: NMAP,
        titles: Titles {
            vulnerable: t(
                "Kjente sårbarheter i tjenestens versjon",
                "Known vulnerabilities in the service's version",
            ),
            compromised: t("Tegn på kompromittering", "Signs of compromise"),
            exposed: t(
                "Tjenesteversjon med sårbarhetsliste",
                "Service version checked for vulnerabilities",
            ),
            fixed: t(
                "Ingen kjente sårbarheter i versjonen",
                "No known vulnerabilities in the version",
            ),
        },
        compromise: None,
        compromise_of: &[],
    },
    Entry {
        checks: &["open-port"],
        source: SCANNER,
        titles: Titles {
            vulnerable: t("Sårbar åpen port", "Vulnerable open port"),
            compromised: t("Tegn på kompromittering", "Signs of compromise"),
            exposed: t("Åpen port", "Open port"),
            fixed: t("Port lukket", "Port closed"),
        },
        compromise: None,
        compromise_of: &[],
    },
];

fn entry(check: &str) -> Option<&'static Entry> {
    ENTRIES.iter().find(|e| e.checks.contains(&check))
}

/// A check as people read it, in one language and for the state found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// E.g. "Web shell found on Microsoft Exchange".
    pub title: String,
    /// Who reported it, e.g. "Shadowserver".
    pub source: &'static str,
    /// What a compromise found by this check means, when it is one.
    pub meaning: Option<&'static str>,
}

impl Described {
    /// "Web shell found on Microsoft Exchange (Shadowserver)".
    pub fn line(&self) -> String {
        format!("{} ({})", self.title, self.source)
    }
}

/// The catalogue: what `check` found in `state` is called in `lang`.
/// Known checks by name, Shadowserver report types by their table's title,
/// CVE-named checks as the vulnerability; anything else by its id.
pub fn describe(check: &str, state: ObservationState, lang: Lang) -> Described {
    let compromise_prefix = t("Tegn på kompromittering", "Signs of compromise").get(lang);
    if let Some(e) = entry(check) {
        let title = match state {
            ObservationState::Vulnerable => e.titles.vulnerable,
            ObservationState::Compromised => e.titles.compromised,
            ObservationState::Unknown => e.titles.exposed,
            ObservationState::NotVulnerable => e.titles.fixed,
        };
        return Described {
            title: title.get(lang).to_owned(),
            source: e.source.get(lang),
            meaning: (state == ObservationState::Compromised)
                .then(|| e.compromise.map(|m| m.get(lang)))
                .flatten(),
        };
    }
    let (title, source) = if let Some(report) = shadowserver::report_type(check) {
        (report.title.clone(), SHADOWSERVER.get(lang))
    } else if is_cve(check) {
        let vulnerable = t("Sårbar for", "Vulnerable to").get(lang);
        (format!("{vulnerable} {check}"), SCANNER.get(lang))
    } else {
        (check.to_owned(), SCANNER.get(lang))
    };
    let title = if state == ObservationState::Compromised {
        format!("{compromise_prefix}: {title}")
    } else {
        title
    };
    Described {
        title,
        source,
        meaning: None,
    }
}

/// The checks whose compromised findings show the exploitation of one of
/// `cves` (which a campaign about those CVEs must reach).
pub fn compromise_checks(cves: &[String]) -> Vec<String> {
    let mut out: Vec<String> = ENTRIES
        .iter()
        .filter(|e| e.compromise_of.iter().any(|c| cves.iter().any(|v| v == c)))
        .flat_map(|e| e.checks.iter().map(|c| (*c).to_owned()))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn is_cve(check: &str) -> bool {
    let upper = check.to_ascii_uppercase();
    let mut parts = upper.splitn(3, '-');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("CVE"), Some(year), Some(number))
            if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit())
                && number.len() >= 4 && number.bytes().all(|b| b.is_ascii_digit())
    )
}

/// Evidence fields people are shown, with their labels: what the scanner
/// saw that helps the owner find the server.
const DETAILS: &[(&str, Text)] = &[
    ("servername", t("Servernavn", "Server name")),
    ("url", t("Sti skanneren så", "Path the scanner saw")),
    ("path", t("Sti skanneren så", "Path the scanner saw")),
    (
        "matched-at",
        t("Adressen skanneren så", "Address the scanner saw"),
    ),
    (
        "x_owa_version",
        t(
            "Exchange-versjon (X-OWA-Version)",
            "Exchange version (X-OWA-Version)",
        ),
    ),
];

/// What helps the owner find the server: the host name, then the evidence
/// fields of [`DETAILS`], as (label, value), empty ones left out.
pub fn details(
    hostname: Option<&str>,
    evidence: Option<&serde_json::Value>,
    lang: Lang,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(h) = hostname.filter(|h| !h.trim().is_empty()) {
        out.push((t("Vertsnavn", "Host name").get(lang), h.to_owned()));
    }
    let Some(serde_json::Value::Object(fields)) = evidence else {
        return out;
    };
    for (key, label) in DETAILS {
        let value = match fields.get(*key) {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => continue,
        };
        if !out
            .iter()
            .any(|(l, v)| *l == label.get(lang) && *v == value)
        {
            out.push((label.get(lang), value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_checks_are_named_for_the_state_found() {
        let shell = describe("scan_exchange", ObservationState::Compromised, Lang::En);
        assert_eq!(
            shell.line(),
            "Web shell found on Microsoft Exchange (Shadowserver)"
        );
        assert!(shell.meaning.unwrap().contains("web shell"));
        let nb = describe("scan_exchange", ObservationState::Compromised, Lang::Nb);
        assert_eq!(nb.title, "Webshell funnet på Microsoft Exchange");
        let own = describe(
            "exchange-proxylogon",
            ObservationState::Vulnerable,
            Lang::En,
        );
        assert_eq!(
            own.line(),
            "Microsoft Exchange vulnerable to ProxyLogon (the centre's scan)"
        );
        assert_eq!(
            describe(
                "exchange-proxylogon",
                ObservationState::Vulnerable,
                Lang::En
            )
            .meaning,
            None
        );
    }

    #[test]
    fn shadowserver_types_cves_and_the_rest() {
        let rdp = describe("scan_rdp", ObservationState::Unknown, Lang::En);
        assert_eq!(rdp.source, "Shadowserver");
        assert!(!rdp.title.is_empty() && rdp.title != "scan_rdp");
        let cve = describe("CVE-2020-0796", ObservationState::Vulnerable, Lang::Nb);
        assert_eq!(cve.title, "Sårbar for CVE-2020-0796");
        let odd = describe("my-check", ObservationState::Compromised, Lang::En);
        assert_eq!(odd.title, "Signs of compromise: my-check");
    }

    #[test]
    fn exchange_shells_belong_to_proxylogon_campaigns() {
        let checks = compromise_checks(&["CVE-2021-26855".to_owned()]);
        assert!(checks.contains(&"scan_exchange".to_owned()));
        assert!(checks.contains(&"scan6_exchange".to_owned()));
        assert!(compromise_checks(&["CVE-2020-0796".to_owned()]).is_empty());
    }

    #[test]
    fn details_name_the_server() {
        let evidence = serde_json::json!({
            "servername": "FJN-EXCH2019", "url": "/owa/auth/x.js", "tag": "exchange;webshell"
        });
        assert_eq!(
            details(Some("owa.example.no"), Some(&evidence), Lang::En),
            [
                ("Host name", "owa.example.no".to_owned()),
                ("Server name", "FJN-EXCH2019".to_owned()),
                ("Path the scanner saw", "/owa/auth/x.js".to_owned())
            ]
        );
        assert!(details(None, None, Lang::Nb).is_empty());
    }
}
