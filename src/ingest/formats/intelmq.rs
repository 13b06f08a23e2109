//! IntelMQ events (`?format=intelmq`): what the REST API output bot POSTs
//! (one event per request) and what the file output bot writes (one event
//! per line); a JSON array of events works too. Events come flat, IntelMQ's
//! own form (`{"source.ip": …, "extra.tag": …}`), or nested, what the output
//! bots send with `hierarchical_output: true` (`{"source": {"ip": …}}`); the
//! two are read alike. An `extra` sent as a JSON string (`jsondict_as_string`)
//! is read as the object it holds.
//!
//! Fields: `source.ip` (required), `time.source` else `time.observation`
//! (one required), `source.port` (else 0), `protocol.transport` (else tcp),
//! `source.asn`, `source.fqdn` else `source.reverse_dns` as hostname,
//! `product.*` and `extra.version`, `extra.severity`, CVE ids from
//! `product.vulnerabilities`, `extra.cve`, `extra.tag` and a CVE-shaped
//! `classification.identifier`. Everything else but `raw` (already kept as the
//! observation's raw record) is evidence, size-capped.
//!
//! The check id is the Shadowserver report type, so that an event that
//! IntelMQ's Shadowserver parser made from a report row folds into the same
//! finding as that row uploaded with `?format=shadowserver`. It is, first
//! found: `?report=` (one check for every event of the request); the report
//! named by `extra.file_name` (collectors that copy it); `feed.name`, then
//! `feed.code`, looked up in `intelmq_feeds.tsv` (or already a report type
//! there); the report whose documentation page `feed.documentation` points at
//! (the parser sets it from Shadowserver's schema; collectors usually name
//! the feed after themselves, so this is what finds the report in a stock
//! pipeline); else `classification.identifier` as it is, with a note that
//! the feed is not in the table. An event with none of these is rejected.
//!
//! State, from the classification (RSIT taxonomy and type):
//! - compromised: taxonomy `intrusions` or `malicious-code`; a type that says
//!   so (`system-compromise`, `infected-system`, `compromised`, …) unless the
//!   taxonomy is `vulnerable` (older IntelMQ typed vulnerable Exchange
//!   servers `infected-system`); `webshell` in the identifier or a tag; an
//!   `extra.*implant` flag set;
//! - vulnerable: a CVE id, an `extra.*_vulnerable` flag set, or taxonomy
//!   `vulnerable` / type `vulnerable-system`, `vulnerable-service` — except
//!   for exposures, identifiers `accessible-*` / `open-*` and type
//!   `potentially-unwanted-accessible`: Shadowserver classifies every open
//!   service `vulnerable`, which Varsel's own parser stores as an exposure;
//! - unknown otherwise (information gathering, other).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::BufRead;
use std::net::IpAddr;
use std::sync::LazyLock;

use serde_json::{Map, Value};

use super::canonical::json_error;
use super::fields::{
    EvidenceBuilder, Loose, MAX_EVIDENCE_STRING_BYTES, clip_text, is_placeholder_asn, is_truthy,
    normalise_cve, normalise_protocol, parse_asn, parse_ip, parse_port, parse_rfc3339_utc,
    parse_severity, push_cve, quoted, split_list, validate_check,
};
use super::input::{JsonFraming, JsonRecord};
use super::{Format, InputError, Item, Source};
use crate::ingest::observation::{LineError, Observation, ObservationState};

/// Fields that became observation fields (or are the raw record) and so are
/// not repeated in the evidence.
const CONSUMED: &[&str] = &[
    "__type",
    "raw",
    "source.ip",
    "source.port",
    "protocol.transport",
    "source.asn",
    "time.source",
];

/// Types that mean the host itself is compromised (RSIT and older IntelMQ
/// names).
const COMPROMISE_TYPES: &[&str] = &[
    "application-compromise",
    "backdoor",
    "c2-server",
    "compromised",
    "defacement",
    "infected-system",
    "malware-distribution",
    "privileged-account-compromise",
    "system-compromise",
    "unprivileged-account-compromise",
];

const VULNERABLE_TYPES: &[&str] = &[
    "vulnerable-client",
    "vulnerable-service",
    "vulnerable-system",
];

/// Distinct feeds noted per request at most, so that a file of events from
/// many unknown feeds cannot grow the answer without bound.
const MAX_NOTED_FEEDS: usize = 20;

/// [`Source`] for IntelMQ events.
pub(crate) struct IntelMqSource {
    framing: JsonFraming,
    /// `?report=`: the check of every event, whatever its feed says.
    report: Option<String>,
    checked: bool,
    noted: HashSet<String>,
}

impl IntelMqSource {
    pub(crate) fn new(input: Box<dyn BufRead + Send>, report: Option<String>) -> Self {
        Self {
            framing: JsonFraming::new(input),
            report: report.as_deref().and_then(super::normalise_report),
            checked: false,
            noted: HashSet::new(),
        }
    }
}

impl Source for IntelMqSource {
    fn fill(&mut self, out: &mut VecDeque<Item>) -> Result<bool, InputError> {
        if !self.checked {
            self.checked = true;
            if let Some(report) = &self.report {
                // Every event would fail on it, so a bad override fails the input.
                validate_check(report).map_err(|r| {
                    InputError::malformed(1, format!("report is not a usable check id: {r}"))
                })?;
            }
        }
        let (line, text) = match self.framing.next_record()? {
            None => return Ok(false),
            Some(JsonRecord::Unreadable(e)) => {
                out.push_back(Item::Rejected(e));
                return Ok(true);
            }
            Some(JsonRecord::Text { line, text }) => (line, text),
        };
        match parse_event(line, text, self.report.as_deref()) {
            Ok((obs, note)) => {
                if let Some(feed) = note {
                    if self.noted.len() < MAX_NOTED_FEEDS && self.noted.insert(feed.clone()) {
                        out.push_back(Item::Note(unknown_feed_note(&feed)));
                    }
                }
                out.push_back(Item::Observation(obs, line));
            }
            Err(e) => out.push_back(Item::Rejected(e)),
        }
        Ok(true)
    }
}

fn unknown_feed_note(feed: &str) -> String {
    format!(
        "IntelMQ feed {} is not in Varsel's feed table: its events are stored under their \
         classification.identifier (name the check with ?report= to change that)",
        quoted(feed)
    )
}

/// One event: the observation, and the feed to note when the check fell
/// back to the classification identifier.
fn parse_event(
    line: u64,
    text: &str,
    report: Option<&str>,
) -> Result<(Observation, Option<String>), LineError> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        let mut reason = json_error(&e);
        if !text.trim_start().starts_with(['{', '[']) {
            // What the REST output bot sends with `use_json: false`.
            reason.push_str(" (IntelMQ's REST API output bot must send JSON: use_json: true)");
        }
        LineError::new(line, None, reason)
    })?;
    let Value::Object(object) = &value else {
        return Err(LineError::new(
            line,
            None,
            format!(
                "an IntelMQ event is a JSON object, not {}",
                Loose::from(&value).kind()
            ),
        ));
    };
    let event = Event::flatten(object);
    event.observation(line, text, report)
}

impl<'v> From<&'v Value> for Loose<'v> {
    fn from(v: &'v Value) -> Self {
        match v {
            Value::Null => Loose::Null,
            Value::Bool(b) => Loose::Bool(*b),
            Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Loose::U64(u),
                (None, Some(i), _) => Loose::I64(i),
                (None, None, f) => Loose::F64(f.unwrap_or(f64::NAN)),
            },
            Value::String(s) => Loose::Str(Cow::Borrowed(s)),
            Value::Array(_) => Loose::Array,
            Value::Object(_) => Loose::Object,
        }
    }
}

/// An event's fields under their flat IntelMQ names (`source.ip`,
/// `extra.source.naics`), however they were nested.
struct Event<'v> {
    fields: BTreeMap<String, Cow<'v, Value>>,
}

impl<'v> Event<'v> {
    fn flatten(object: &'v Map<String, Value>) -> Self {
        let mut fields = BTreeMap::new();
        flatten_into(&mut fields, "", object);
        Event { fields }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.fields
            .get(key)
            .map(|v| v.as_ref())
            .filter(|v| !v.is_null())
    }

    /// A non-empty string (numbers are formatted), trimmed.
    fn text(&self, key: &str) -> Option<Cow<'_, str>> {
        match self.get(key)? {
            Value::String(s) => {
                let t = s.trim();
                (!t.is_empty()).then_some(Cow::Borrowed(t))
            }
            Value::Number(n) => Some(Cow::Owned(n.to_string())),
            _ => None,
        }
    }

    fn lower(&self, key: &str) -> String {
        self.text(key)
            .map(|t| t.to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// The tokens of `extra.tag` (`exchange;webshell`), lower case.
    fn tags(&self) -> Vec<String> {
        self.text("extra.tag")
            .map(|t| split_list(&t).map(str::to_ascii_lowercase).collect())
            .unwrap_or_default()
    }

    /// Whether an `extra.*` flag whose name (after `extra.`) `matches` is set.
    fn extra_flag(&self, matches: impl Fn(&str) -> bool) -> bool {
        self.fields.iter().any(|(key, value)| {
            key.strip_prefix("extra.").is_some_and(&matches)
                && match value.as_ref() {
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_u64() == Some(1),
                    Value::String(s) => is_truthy(s),
                    _ => false,
                }
        })
    }

    fn observation(
        &self,
        line: u64,
        raw: &str,
        report: Option<&str>,
    ) -> Result<(Observation, Option<String>), LineError> {
        let reject = |field: &str, reason: String| LineError::new(line, Some(field), reason);

        let ip = match self.get("source.ip") {
            Some(Value::String(s)) => parse_ip(s).map_err(|r| reject("source.ip", r))?,
            Some(other) => {
                return Err(reject(
                    "source.ip",
                    format!(
                        "source.ip must be a string, not {}",
                        Loose::from(other).kind()
                    ),
                ));
            }
            None => {
                return Err(reject(
                    "source.ip",
                    "source.ip is missing: Varsel needs the address the event is about".to_owned(),
                ));
            }
        };
        let observed_at = match (self.text("time.source"), self.text("time.observation")) {
            (Some(t), _) => parse_rfc3339_utc(&t).map_err(|r| reject("time.source", r))?,
            (None, Some(t)) => parse_rfc3339_utc(&t).map_err(|r| reject("time.observation", r))?,
            (None, None) => {
                return Err(reject(
                    "time.source",
                    "time.source and time.observation are both missing".to_owned(),
                ));
            }
        };
        let port = match self.get("source.port") {
            None => 0,
            Some(Value::String(s)) if s.trim().is_empty() => 0,
            Some(v) => parse_port(&Loose::from(v)).map_err(|r| reject("source.port", r))?,
        };
        let protocol = match self.text("protocol.transport") {
            Some(p) => normalise_protocol(&p).map_err(|r| reject("protocol.transport", r))?,
            None => "tcp".to_owned(),
        };
        let asn = match self.get("source.asn") {
            None => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(v) => Some(parse_asn(&Loose::from(v)).map_err(|r| reject("source.asn", r))?),
        }
        .filter(|a| !is_placeholder_asn(*a));

        let (check, unknown_feed) = self.check(report, &ip).ok_or_else(|| {
            reject(
                "classification.identifier",
                "cannot tell the check: no ?report=, the feed (feed.name, feed.code, \
                 feed.documentation) is not in Varsel's IntelMQ feed table, and \
                 classification.identifier is missing"
                    .to_owned(),
            )
        })?;
        validate_check(&check).map_err(|r| reject("classification.identifier", r))?;

        let cves = self.cves();
        let state = self.state(&cves);
        let severity = self.text("extra.severity").and_then(|s| parse_severity(&s));
        let hostname = self
            .text("source.fqdn")
            .or_else(|| self.text("source.reverse_dns"))
            .and_then(|h| clip_text(h.trim_end_matches('.')));

        Ok((
            Observation {
                ip,
                port,
                protocol,
                observed_at,
                check,
                state,
                cves,
                severity,
                hostname,
                product: self.product(),
                version: self
                    .text("product.version")
                    .or_else(|| self.text("extra.version"))
                    .and_then(|v| clip_text(&v)),
                asn,
                evidence: self.evidence(),
                raw: raw.to_owned(),
            },
            unknown_feed,
        ))
    }

    /// The check id, and the feed to note when it is the identifier only.
    fn check(&self, report: Option<&str>, ip: &IpAddr) -> Option<(String, Option<String>)> {
        if let Some(r) = report {
            return Some((r.to_owned(), None));
        }
        let from_table = self
            .text("extra.file_name")
            .and_then(|f| Format::shadowserver_report_from_filename(&f))
            .or_else(|| {
                ["feed.name", "feed.code"].iter().find_map(|key| {
                    let name = self.text(key)?;
                    FEEDS.by_feed_name(&name).map(str::to_owned)
                })
            })
            .or_else(|| {
                let page = doc_page(&self.text("feed.documentation")?)?;
                FEEDS.by_doc_page(&page, ip.is_ipv6()).map(str::to_owned)
            });
        if let Some(report) = from_table {
            return Some((report, None));
        }
        let identifier = self.text("classification.identifier")?;
        let feed = self
            .text("feed.name")
            .or_else(|| self.text("feed.code"))
            .map(Cow::into_owned);
        Some((identifier.into_owned(), feed))
    }

    fn cves(&self) -> Vec<String> {
        let mut cves = Vec::new();
        let mut add = |s: &str| {
            if let Some(cve) = normalise_cve(s) {
                push_cve(&mut cves, cve);
            }
        };
        for key in ["product.vulnerabilities", "extra.cve", "extra.tag"] {
            match self.get(key) {
                Some(Value::String(s)) => split_list(s).for_each(&mut add),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .flat_map(split_list)
                    .for_each(&mut add),
                _ => {}
            }
        }
        if let Some(id) = self.text("classification.identifier") {
            add(&id);
        }
        cves
    }

    fn state(&self, cves: &[String]) -> ObservationState {
        let taxonomy = self.lower("classification.taxonomy");
        let kind = self.lower("classification.type");
        let identifier = self.lower("classification.identifier");
        let vulnerable_taxonomy = taxonomy == "vulnerable";

        let compromised = matches!(taxonomy.as_str(), "intrusions" | "malicious-code")
            || (!vulnerable_taxonomy && COMPROMISE_TYPES.contains(&kind.as_str()))
            || identifier.contains("webshell")
            || self.tags().iter().any(|t| t.contains("webshell"))
            || self.extra_flag(|name| name.ends_with("implant"));
        if compromised {
            return ObservationState::Compromised;
        }
        let exposure = ["accessible-", "open-"]
            .iter()
            .any(|p| identifier.starts_with(p) || identifier.contains(&format!("-{p}")))
            || kind == "potentially-unwanted-accessible";
        let vulnerable = !cves.is_empty()
            || self.extra_flag(|name| name == "vulnerable" || name.ends_with("_vulnerable"))
            || (!exposure && (vulnerable_taxonomy || VULNERABLE_TYPES.contains(&kind.as_str())));
        if vulnerable {
            ObservationState::Vulnerable
        } else {
            ObservationState::Unknown
        }
    }

    fn product(&self) -> Option<String> {
        if let Some(full) = self.text("product.full_name") {
            return clip_text(&full);
        }
        match (self.text("product.vendor"), self.text("product.name")) {
            (Some(vendor), Some(name)) => clip_text(&format!("{vendor} {name}")),
            (None, Some(name)) => clip_text(&name),
            _ => None,
        }
    }

    fn evidence(&self) -> Option<String> {
        let mut ev = EvidenceBuilder::new();
        for (key, value) in &self.fields {
            if CONSUMED.contains(&key.as_str()) {
                continue;
            }
            match value.as_ref() {
                Value::Null => {}
                Value::String(s) => {
                    ev.str(key, s);
                }
                Value::Bool(_) | Value::Number(_) => {
                    ev.raw(key, &value.to_string());
                }
                Value::Array(_) | Value::Object(_) => {
                    let json = value.to_string();
                    if json.len() <= MAX_EVIDENCE_STRING_BYTES {
                        ev.raw(key, &json);
                    } else {
                        // Too big to keep whole: kept cut, as text.
                        ev.str(key, &json);
                    }
                }
            }
        }
        ev.finish()
    }
}

fn flatten_into<'v>(
    out: &mut BTreeMap<String, Cow<'v, Value>>,
    prefix: &str,
    object: &'v Map<String, Value>,
) {
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Object(inner) => flatten_into(out, &name, inner),
            // `extra` as a JSON string (`jsondict_as_string: true`).
            Value::String(s) if name == "extra" && s.trim_start().starts_with('{') => {
                match serde_json::from_str::<Map<String, Value>>(s) {
                    Ok(inner) => flatten_owned(out, &name, inner),
                    Err(_) => {
                        out.insert(name, Cow::Borrowed(value));
                    }
                }
            }
            _ => {
                out.insert(name, Cow::Borrowed(value));
            }
        }
    }
}

fn flatten_owned(
    out: &mut BTreeMap<String, Cow<'_, Value>>,
    prefix: &str,
    object: Map<String, Value>,
) {
    for (key, value) in object {
        let name = format!("{prefix}.{key}");
        match value {
            Value::Object(inner) => flatten_owned(out, &name, inner),
            other => {
                out.insert(name, Cow::Owned(other));
            }
        }
    }
}

/// The last path segment of a documentation URL, lower case:
/// `https://…/network-reporting/vulnerable-exchange-server-report/` gives
/// `vulnerable-exchange-server-report`.
fn doc_page(url: &str) -> Option<String> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let page = path.trim_end_matches('/').rsplit('/').next()?.trim();
    (!page.is_empty() && !page.contains(':')).then(|| page.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------
// The feed table

/// `intelmq_feeds.tsv`, read once.
static FEEDS: LazyLock<FeedTable> = LazyLock::new(|| FeedTable::parse(FEED_TABLE).0);

const FEED_TABLE: &str = include_str!("intelmq_feeds.tsv");

#[derive(Debug, PartialEq, Eq)]
struct FeedRow {
    report: &'static str,
    feed_name: &'static str,
    doc_page: Option<&'static str>,
}

#[derive(Debug, Default)]
struct FeedTable {
    rows: Vec<FeedRow>,
}

impl FeedTable {
    /// The rows, and the lines that are not rows (a test keeps that empty).
    fn parse(text: &'static str) -> (Self, Vec<String>) {
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&'static str> = line.split('\t').map(str::trim).collect();
            match cols.as_slice() {
                [report, feed_name, doc_page]
                    if validate_check(report).is_ok() && !feed_name.is_empty() =>
                {
                    rows.push(FeedRow {
                        report,
                        feed_name,
                        doc_page: (*doc_page != "-" && !doc_page.is_empty()).then_some(*doc_page),
                    });
                }
                _ => bad.push(format!("line {}: {line:?}", i + 1)),
            }
        }
        (FeedTable { rows }, bad)
    }

    /// The report of a feed name, or the name itself when it is a report
    /// type in the table (a collector whose `code` is `scan_exchange`).
    fn by_feed_name(&self, name: &str) -> Option<&'static str> {
        self.rows
            .iter()
            .find(|r| r.feed_name.eq_ignore_ascii_case(name))
            .or_else(|| {
                self.rows
                    .iter()
                    .find(|r| r.report.eq_ignore_ascii_case(name))
            })
            .map(|r| r.report)
    }

    /// The report whose documentation page this is, the IPv6 one for an
    /// IPv6 address when the page has both.
    fn by_doc_page(&self, page: &str, ipv6: bool) -> Option<&'static str> {
        let mut matching = self
            .rows
            .iter()
            .filter(|r| r.doc_page.is_some_and(|p| p.eq_ignore_ascii_case(page)));
        let first = matching.next()?;
        if is_ipv6_report(first.report) == ipv6 {
            return Some(first.report);
        }
        Some(
            matching
                .find(|r| is_ipv6_report(r.report) == ipv6)
                .unwrap_or(first)
                .report,
        )
    }
}

/// Shadowserver names its IPv6 reports `scan6_…`, `event6_…`,
/// `population6_…` or `…6`.
fn is_ipv6_report(report: &str) -> bool {
    report.ends_with('6') || report.contains("6_")
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{items, observations, rejections, text};
    use super::*;
    use crate::ingest::observation::Severity;

    fn format() -> Format {
        Format::IntelMq { report: None }
    }

    /// What IntelMQ 3.5's Shadowserver parser makes of the second row of
    /// tests/fixtures/formats/shadowserver/scan_exchange.csv (a web shell),
    /// as the REST API output bot sends it (flat, `hierarchical_output:
    /// false`), behind a collector named "Shadowserver Reports".
    const FLAT_WEBSHELL: &str = r#"{"classification.identifier": "exchange-server-webshell", "classification.taxonomy": "intrusions", "classification.type": "system-compromise", "extra.source.naics": 921190, "extra.source.sector": "Government, Public Administration, and Defence", "extra.servername": "KOMMAIL01", "extra.tag": "exchange;webshell", "extra.version": "15.0.1395", "feed.documentation": "https://www.shadowserver.org/what-we-do/network-reporting/vulnerable-exchange-server-report/", "feed.name": "Shadowserver Reports", "protocol.application": "exchange", "raw": "InRpbWVzdGFtcCIK", "source.asn": 64501, "source.geolocation.cc": "NO", "source.geolocation.city": "DRAMMEN", "source.geolocation.region": "VIKEN", "source.ip": "198.51.100.23", "source.port": 443, "source.reverse_dns": "webmail.kommune-xxx.example", "time.observation": "2021-03-11T07:00:00+00:00", "time.source": "2021-03-10T06:42:21+00:00"}"#;

    /// The first row (vulnerable), nested (`hierarchical_output: true`), with
    /// the parser's own feed name.
    const NESTED_VULNERABLE: &str = r#"{"classification": {"identifier": "vulnerable-exchange-server", "taxonomy": "vulnerable", "type": "vulnerable-system"}, "extra": {"source": {"naics": 517311, "sector": "Communications, Service Provider, and Hosting Service"}, "servername": "FJN-EXCH2019", "tag": "exchange;cve-2021-26855", "version": "15.2.721"}, "feed": {"documentation": "https://www.shadowserver.org/what-we-do/network-reporting/vulnerable-exchange-server-report/", "name": "Vulnerable-Exchange-Server"}, "protocol": {"application": "exchange"}, "raw": "InRpbWVzdGFtcCIK", "source": {"asn": 64500, "geolocation": {"cc": "NO", "city": "BERGEN", "region": "VESTLAND"}, "ip": "192.0.2.10", "port": 443, "reverse_dns": "owa.fjordnett-xxx.example"}, "time": {"observation": "2021-03-11T07:00:00+00:00", "source": "2021-03-10T06:42:17+00:00"}}"#;

    fn one(input: &str) -> Observation {
        let items = items(&format(), text(input));
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let obs = observations(&items);
        assert_eq!(obs.len(), 1, "{items:?}");
        obs[0].clone()
    }

    fn shadowserver_rows() -> Vec<Observation> {
        let items = items(
            &Format::Shadowserver {
                report: Some("scan_exchange".into()),
            },
            super::super::test_support::sample("shadowserver/scan_exchange.csv"),
        );
        observations(&items).into_iter().cloned().collect()
    }

    #[test]
    fn flat_webshell_event_is_the_shadowserver_rows_compromise() {
        let obs = one(FLAT_WEBSHELL);
        assert_eq!(obs.ip.to_string(), "198.51.100.23");
        assert_eq!((obs.port, obs.protocol.as_str()), (443, "tcp"));
        assert_eq!(obs.check, "scan_exchange", "from feed.documentation");
        assert_eq!(obs.state, ObservationState::Compromised);
        assert_eq!(obs.observed_at.to_rfc3339(), "2021-03-10T06:42:21+00:00");
        assert_eq!(obs.asn, Some(64501));
        assert_eq!(obs.hostname.as_deref(), Some("webmail.kommune-xxx.example"));
        assert_eq!(obs.version.as_deref(), Some("15.0.1395"));
        assert!(obs.cves.is_empty());
        assert_eq!(obs.raw, FLAT_WEBSHELL);
        let ev: Value = serde_json::from_str(obs.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["extra.servername"], "KOMMAIL01");
        assert_eq!(ev["extra.source.naics"], 921190);
        assert_eq!(ev["classification.type"], "system-compromise");
        assert_eq!(ev["feed.name"], "Shadowserver Reports");
        assert!(ev.get("raw").is_none() && ev.get("source.ip").is_none());

        let native = &shadowserver_rows()[1];
        assert_eq!(
            (native.ip, native.port, &native.protocol, &native.check),
            (obs.ip, obs.port, &obs.protocol, &obs.check),
            "the same finding key"
        );
        assert_eq!(native.state, obs.state);
    }

    #[test]
    fn nested_vulnerable_event_reads_like_the_flat_form() {
        let obs = one(NESTED_VULNERABLE);
        assert_eq!(obs.ip.to_string(), "192.0.2.10");
        assert_eq!(obs.check, "scan_exchange", "from feed.name");
        assert_eq!(obs.state, ObservationState::Vulnerable);
        assert_eq!(obs.cves, vec!["CVE-2021-26855"], "from extra.tag");
        assert_eq!(obs.hostname.as_deref(), Some("owa.fjordnett-xxx.example"));
        assert_eq!(obs.asn, Some(64500));
        let ev: Value = serde_json::from_str(obs.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(
            ev["extra.source.sector"],
            "Communications, Service Provider, and Hosting Service"
        );
        assert_eq!(ev["source.geolocation.city"], "BERGEN");

        let native = &shadowserver_rows()[0];
        assert_eq!(
            (
                native.ip,
                native.port,
                &native.protocol,
                &native.check,
                native.state,
                &native.cves
            ),
            (
                obs.ip,
                obs.port,
                &obs.protocol,
                &obs.check,
                obs.state,
                &obs.cves
            )
        );
    }

    /// The events IntelMQ 3.5's own Shadowserver parser made of
    /// shadowserver/scan_exchange.csv (tests/support/intelmq_pipeline.py
    /// parse): flat behind a collector named "Shadowserver Reports", nested
    /// with the parser's feed name. Each must be the finding Varsel's own
    /// parser makes of the same row.
    #[test]
    fn intelmq_parsed_report_matches_varsels_own_parse_row_by_row() {
        let native = shadowserver_rows();
        for rel in [
            "intelmq/scan_exchange_flat.jsonl",
            "intelmq/scan_exchange_nested.jsonl",
        ] {
            let items = items(&format(), super::super::test_support::sample(rel));
            assert!(
                rejections(&items).is_empty(),
                "{rel}: {:?}",
                rejections(&items)
            );
            assert!(
                !items.iter().any(|i| matches!(i, Item::Note(_))),
                "{rel}: every feed is known"
            );
            let obs = observations(&items);
            assert_eq!(obs.len(), native.len(), "{rel}");
            for (ours, theirs) in obs.iter().zip(&native) {
                let key = |o: &Observation| {
                    (
                        o.ip,
                        o.port,
                        o.protocol.clone(),
                        o.check.clone(),
                        o.state,
                        o.cves.clone(),
                        o.observed_at,
                        o.hostname.clone(),
                        o.asn,
                        o.version.clone(),
                    )
                };
                assert_eq!(key(ours), key(theirs), "{rel}");
            }
        }
    }

    #[test]
    fn one_event_per_line_and_arrays() {
        let lines = format!("{FLAT_WEBSHELL}\n\n{NESTED_VULNERABLE}\n");
        let items = items(&format(), text(&lines));
        let got: Vec<_> = items
            .iter()
            .map(|i| match i {
                Item::Observation(o, line) => (*line, o.state),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, ObservationState::Compromised),
                (3, ObservationState::Vulnerable)
            ]
        );
        let array = format!("[{FLAT_WEBSHELL},\n{NESTED_VULNERABLE}]");
        assert_eq!(observations(&items_of(&array)).len(), 2);
    }

    fn items_of(input: &str) -> Vec<Item> {
        items(&format(), text(input))
    }

    fn event(fields: &str) -> String {
        format!(
            r#"{{"source.ip": "192.0.2.44", "time.source": "2024-05-01T10:00:00+00:00", {fields}}}"#
        )
    }

    #[test]
    fn check_comes_from_override_file_name_feed_code_and_ipv6_documentation() {
        let doc = r#""feed.documentation": "https://www.shadowserver.org/what-we-do/network-reporting/accessible-rdp-report/""#;
        let items = items(
            &Format::IntelMq {
                report: Some("My_Check".into()),
            },
            text(&event(doc)),
        );
        assert_eq!(observations(&items)[0].check, "my_check");

        let obs = one(&event(
            r#""extra.file_name": "2024-05-01-scan_rdp-norway-geo.csv""#,
        ));
        assert_eq!(obs.check, "scan_rdp");
        let obs = one(&event(
            r#""feed.name": "Mine", "feed.code": "Accessible-RDP""#,
        ));
        assert_eq!(obs.check, "scan_rdp");
        let obs = one(&event(r#""feed.code": "scan_rdp""#));
        assert_eq!(obs.check, "scan_rdp", "a report type as code");
        assert_eq!(one(&event(doc)).check, "scan_rdp");
        let v6 = one(&event(doc).replace("192.0.2.44", "2001:db8::44"));
        assert_eq!(v6.check, "scan6_rdp", "IPv6 report of the same page");
        let only_v4 =
            event(r#""feed.documentation": "https://x.example/sinkhole-dns-events-report""#);
        assert_eq!(
            one(&only_v4.replace("192.0.2.44", "2001:db8::44")).check,
            "event4_sinkhole_dns",
            "a page without an IPv6 report"
        );
    }

    #[test]
    fn unknown_feed_falls_back_to_the_identifier_with_one_note() {
        let e = event(
            r#""feed.name": "Our Honeypot", "classification.identifier": "open-redis", "classification.taxonomy": "vulnerable", "classification.type": "vulnerable-system""#,
        );
        let items = items_of(&format!("{e}\n{e}\n"));
        let notes: Vec<_> = items
            .iter()
            .filter_map(|i| match i {
                Item::Note(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(notes.len(), 1, "{items:?}");
        assert!(notes[0].contains("\"Our Honeypot\""), "{}", notes[0]);
        let obs = observations(&items);
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0].check, "open-redis");
        assert_eq!(obs[0].state, ObservationState::Unknown, "an exposure");
    }

    #[test]
    fn states_from_the_classification() {
        let state = |fields: &str| {
            one(&event(&format!(
                r#""feed.code": "x", "classification.identifier": "x", {fields}"#
            )))
            .state
        };
        use ObservationState::*;
        assert_eq!(
            state(
                r#""classification.taxonomy": "malicious-code", "classification.type": "infected-system""#
            ),
            Compromised
        );
        assert_eq!(
            state(r#""classification.type": "compromised""#),
            Compromised,
            "older type"
        );
        assert_eq!(
            state(
                r#""classification.taxonomy": "vulnerable", "classification.type": "infected-system""#
            ),
            Vulnerable,
            "older IntelMQ's vulnerable Exchange servers"
        );
        assert_eq!(
            state(
                r#""classification.taxonomy": "vulnerable", "classification.type": "vulnerable-system", "extra.tag": "exchange,webshell""#
            ),
            Compromised,
            "webshell tag"
        );
        assert_eq!(state(r#""extra.smb_implant": true"#), Compromised);
        assert_eq!(
            state(r#""classification.type": "vulnerable-service""#),
            Vulnerable
        );
        assert_eq!(
            state(
                r#""classification.taxonomy": "information-gathering", "classification.type": "scanner""#
            ),
            Unknown
        );
        assert_eq!(
            state(r#""classification.taxonomy": "other", "extra.freak_vulnerable": "Y""#),
            Vulnerable
        );
        assert_eq!(
            state(
                r#""classification.taxonomy": "vulnerable", "classification.type": "potentially-unwanted-accessible""#
            ),
            Unknown
        );
        assert_eq!(state(r#""classification.taxonomy": "other""#), Unknown);
    }

    #[test]
    fn cves_products_severity_and_string_extra() {
        let obs = one(&event(
            r#""feed.code": "c", "product.vulnerabilities": "cve-2023-1111;cve-2023-2222", "extra": "{\"cve\": [\"CVE-2023-2222\", \"CVE-2023-3333\"], \"severity\": \"High\", \"version\": \"9.9\"}", "classification.identifier": "CVE-2023-4444", "product.vendor": "acme", "product.name": "gateway", "product.version": "1.2", "source.fqdn": "gw.example.", "source.reverse_dns": "other.example", "protocol.transport": "UDP", "source.port": "500", "source.asn": 64512"#,
        ));
        assert_eq!(
            obs.cves,
            vec![
                "CVE-2023-1111",
                "CVE-2023-2222",
                "CVE-2023-3333",
                "CVE-2023-4444"
            ]
        );
        assert_eq!(obs.state, ObservationState::Vulnerable);
        assert_eq!(obs.severity, Some(Severity::High));
        assert_eq!(obs.product.as_deref(), Some("acme gateway"));
        assert_eq!(obs.version.as_deref(), Some("1.2"), "product.version first");
        assert_eq!(obs.hostname.as_deref(), Some("gw.example"));
        assert_eq!((obs.port, obs.protocol.as_str()), (500, "udp"));
        assert_eq!(obs.asn, None, "64512 is a placeholder");
        let ev: Value = serde_json::from_str(obs.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["extra.cve"][1], "CVE-2023-3333");
    }

    #[test]
    fn every_rejection_names_line_and_field() {
        let input = [
            r#"{"time.source": "2024-05-01T10:00:00+00:00", "feed.code": "x"}"#.to_owned(),
            event(r#""feed.code": "x", "source.port": 70000"#),
            event(r#""feed.code": "x", "source.asn": "ASx""#),
            event(r#""feed.code": "x", "protocol.transport": "t c p""#),
            r#"{"source.ip": "192.0.2.1", "feed.code": "x"}"#.to_owned(),
            r#"{"source.ip": "192.0.2.1", "time.observation": "yesterday", "feed.code": "x"}"#
                .to_owned(),
            event(r#""feed.name": "Mine""#),
            r#"{"source": {"ip": 3232235777}, "time.source": "2024-05-01T10:00:00+00:00"}"#
                .to_owned(),
            r#"[1]"#.to_owned(),
            "source.ip=192.0.2.1&time.source=now".to_owned(),
            event(r#""classification.identifier": "two words""#),
        ]
        .join("\n");
        let items = items_of(&input);
        let got: Vec<_> = rejections(&items)
            .iter()
            .map(|e| (e.line, e.field.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, Some("source.ip")),
                (2, Some("source.port")),
                (3, Some("source.asn")),
                (4, Some("protocol.transport")),
                (5, Some("time.source")),
                (6, Some("time.observation")),
                (7, Some("classification.identifier")),
                (8, Some("source.ip")),
                (9, None),
                (10, None),
                (11, Some("classification.identifier")),
            ]
        );
        let rej = rejections(&items);
        assert!(
            rej[0].reason.contains("source.ip is missing"),
            "{}",
            rej[0].reason
        );
        assert!(rej[6].reason.contains("feed table"), "{}", rej[6].reason);
        assert!(
            rej[7].reason.contains("not an integer"),
            "{}",
            rej[7].reason
        );
        assert!(
            rej[9].reason.contains("use_json: true"),
            "{}",
            rej[9].reason
        );
        assert!(observations(&items).is_empty());
    }

    #[test]
    fn bad_override_fails_the_input() {
        let (_, err) = super::super::test_support::items_until_error(
            &Format::IntelMq {
                report: Some("scan exchange".into()),
            },
            text(FLAT_WEBSHELL),
        );
        assert!(
            matches!(err, Some(InputError::Malformed { line: 1, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn huge_extra_is_capped_not_rejected() {
        let big: Vec<String> = (0..40)
            .map(|i| format!(r#""extra.k{i:02}": "{}""#, "z".repeat(3000)))
            .collect();
        let obs = one(&event(&format!(
            r#""feed.code": "scan_rdp", "extra.a_list": [{}], {}"#,
            (0..2000)
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
            big.join(", ")
        )));
        let ev = obs.evidence.unwrap();
        assert!(ev.len() <= crate::ingest::observation::MAX_EVIDENCE_BYTES);
        let v: Value = serde_json::from_str(&ev).unwrap();
        assert_eq!(v["truncated"], true);
        assert!(
            v["extra.a_list"].as_str().unwrap().ends_with('…'),
            "cut as text"
        );
    }

    #[test]
    fn the_feed_table_parses_and_is_unambiguous() {
        let (table, bad) = FeedTable::parse(FEED_TABLE);
        assert!(bad.is_empty(), "{bad:?}");
        assert!(table.rows.len() > 100);
        let mut names = HashSet::new();
        for row in &table.rows {
            assert!(
                names.insert(row.feed_name.to_ascii_lowercase()),
                "feed name {} twice",
                row.feed_name
            );
        }
        // A page may name one report per address family, no more.
        let mut pages: BTreeMap<(String, bool), HashSet<&str>> = BTreeMap::new();
        for row in &table.rows {
            if let Some(page) = row.doc_page {
                pages
                    .entry((page.to_ascii_lowercase(), is_ipv6_report(row.report)))
                    .or_default()
                    .insert(row.report);
            }
        }
        for ((page, v6), reports) in &pages {
            assert_eq!(reports.len(), 1, "{page} (IPv6: {v6}) names {reports:?}");
        }
        assert_eq!(
            table.by_feed_name("vulnerable-exchange-server"),
            Some("scan_exchange")
        );
        assert_eq!(
            table.by_doc_page("vulnerable-exchange-server-report", true),
            Some("scan6_exchange")
        );
    }

    #[test]
    fn documentation_pages() {
        assert_eq!(
            doc_page(
                "https://www.shadowserver.org/what-we-do/network-reporting/open-redis-report/?x=1#y"
            )
            .as_deref(),
            Some("open-redis-report")
        );
        assert_eq!(
            doc_page("open-redis-report").as_deref(),
            Some("open-redis-report")
        );
        assert_eq!(doc_page("https://"), None);
        assert_eq!(doc_page(""), None);
    }
}
