//! Varsel's own format: canonical observations (DESIGN.md, "Canonical
//! observation") as NDJSON or one JSON array. Owns the canonical field rules,
//! which the canonical CSV parser reuses through [`CanonicalFields`].
//!
//! This is the path bulk submitters use, so it is built for speed: a line is
//! deserialized into borrowed fields (no copies of unescaped strings, evidence
//! kept as a raw slice) and the only allocations are the observation's own.
//!
//! A key that is no canonical field rejects the line, naming it: a typo
//! (`"cve"` for `"cves"`) must not drop what it carried. A line that is
//! another tool's output (nuclei, masscan, IntelMQ) is rejected with the
//! `format` that reads it; telling them apart looks at the line again, which
//! only rejected lines pay for.

use std::fmt;

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::Item;
use super::fields::{
    Loose, StrList, compact_json, normalise_cve, normalise_protocol, optional_text, parse_asn,
    parse_ip, parse_port, parse_rfc3339_utc, parse_severity, push_cve, quoted, split_list,
    validate_check,
};
use crate::ingest::observation::{LineError, MAX_EVIDENCE_BYTES, Observation, ObservationState};

/// The canonical fields of one record, before validation. JSON and CSV both
/// fill this; [`CanonicalFields::into_observation`] applies the rules once.
#[derive(Debug, Default, Deserialize)]
#[serde(
    expecting = "a JSON object with the canonical observation fields",
    deny_unknown_fields
)]
pub(crate) struct CanonicalFields<'a> {
    #[serde(borrow)]
    pub ip: Option<Loose<'a>>,
    #[serde(borrow)]
    pub port: Option<Loose<'a>>,
    #[serde(borrow)]
    pub protocol: Option<Loose<'a>>,
    #[serde(borrow)]
    pub observed_at: Option<Loose<'a>>,
    #[serde(borrow)]
    pub check: Option<Loose<'a>>,
    #[serde(borrow)]
    pub state: Option<Loose<'a>>,
    #[serde(borrow, default)]
    pub cves: StrList<'a>,
    #[serde(borrow)]
    pub severity: Option<Loose<'a>>,
    #[serde(borrow)]
    pub hostname: Option<Loose<'a>>,
    #[serde(borrow)]
    pub product: Option<Loose<'a>>,
    #[serde(borrow)]
    pub version: Option<Loose<'a>>,
    #[serde(borrow)]
    pub asn: Option<Loose<'a>>,
    #[serde(borrow, default, deserialize_with = "evidence_json")]
    pub evidence: Option<Evidence<'a>>,
}

/// The `evidence` field: raw JSON from a JSON record, or text from a CSV cell
/// that still has to be checked to be JSON.
#[derive(Debug)]
pub(crate) enum Evidence<'a> {
    Json(&'a RawValue),
    Text(&'a str),
}

fn evidence_json<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Evidence<'de>>, D::Error> {
    // `null` arrives as the raw text "null" and is treated as absent below.
    let raw = <&'de RawValue>::deserialize(d)?;
    Ok(Some(Evidence::Json(raw)))
}

type FieldResult<T> = Result<T, (&'static str, String)>;

fn string_field<'v>(name: &'static str, v: &'v Loose<'_>) -> FieldResult<&'v str> {
    v.as_str()
        .ok_or_else(|| (name, format!("{name} must be a string, not {}", v.kind())))
}

/// An optional string field: absent, null and "" mean absent.
fn opt_string_field<'v>(
    name: &'static str,
    v: &'v Option<Loose<'_>>,
) -> FieldResult<Option<&'v str>> {
    match v {
        None | Some(Loose::Null) => Ok(None),
        Some(v) => string_field(name, v).map(|s| (!s.is_empty()).then_some(s)),
    }
}

impl CanonicalFields<'_> {
    /// Applies the canonical rules. `raw` is stored as the observation's raw.
    pub(crate) fn into_observation(self, line: u64, raw: String) -> Result<Observation, LineError> {
        self.validate(raw)
            .map_err(|(field, reason)| LineError::new(line, Some(field), reason))
    }

    fn validate(self, raw: String) -> FieldResult<Observation> {
        let ip = match opt_string_field("ip", &self.ip)? {
            Some(s) => parse_ip(s).map_err(|r| ("ip", r))?,
            None => return Err(("ip", "ip is required".to_owned())),
        };
        let port = match &self.port {
            None | Some(Loose::Null) => 0,
            Some(Loose::Str(s)) if s.is_empty() => 0,
            Some(v) => parse_port(v).map_err(|r| ("port", r))?,
        };
        let protocol = match opt_string_field("protocol", &self.protocol)? {
            Some(p) => normalise_protocol(p).map_err(|r| ("protocol", r))?,
            None => "tcp".to_owned(),
        };
        let observed_at = match opt_string_field("observed_at", &self.observed_at)? {
            Some(s) => parse_rfc3339_utc(s).map_err(|r| ("observed_at", r))?,
            None => return Err(("observed_at", "observed_at is required".to_owned())),
        };
        let check = match opt_string_field("check", &self.check)? {
            Some(c) => {
                validate_check(c).map_err(|r| ("check", r))?;
                c.to_owned()
            }
            None => return Err(("check", "check is required".to_owned())),
        };
        let state = match opt_string_field("state", &self.state)? {
            Some(s) => parse_state(s).ok_or_else(|| {
                (
                    "state",
                    format!(
                        "unknown state {} (expected vulnerable, compromised, not_vulnerable or unknown)",
                        quoted(s)
                    ),
                )
            })?,
            None => ObservationState::Vulnerable,
        };
        let cves = cve_list(&self.cves)?;
        let severity = match opt_string_field("severity", &self.severity)? {
            Some(s) => Some(parse_severity(s).ok_or_else(|| {
                (
                    "severity",
                    format!(
                        "unknown severity {} (expected critical, high, medium, low or info)",
                        quoted(s)
                    ),
                )
            })?),
            None => None,
        };
        let hostname = text("hostname", &self.hostname)?;
        let product = text("product", &self.product)?;
        let version = text("version", &self.version)?;
        let asn = match &self.asn {
            None | Some(Loose::Null) => None,
            Some(Loose::Str(s)) if s.is_empty() => None,
            Some(v) => Some(parse_asn(v).map_err(|r| ("asn", r))?),
        };
        let evidence = match self.evidence {
            None => None,
            Some(e) => evidence(e)?,
        };
        Ok(Observation {
            ip,
            port,
            protocol,
            observed_at,
            check,
            state,
            cves,
            severity,
            hostname,
            product,
            version,
            asn,
            evidence,
            raw,
        })
    }
}

fn parse_state(s: &str) -> Option<ObservationState> {
    ObservationState::parse(s).or_else(|| ObservationState::parse(&s.trim().to_ascii_lowercase()))
}

fn text(name: &'static str, v: &Option<Loose<'_>>) -> FieldResult<Option<String>> {
    match opt_string_field(name, v)? {
        Some(s) => optional_text(name, s).map_err(|r| (name, r)),
        None => Ok(None),
    }
}

fn cve_list(list: &StrList<'_>) -> FieldResult<Vec<String>> {
    let mut cves = Vec::new();
    let mut add = |s: &str| -> FieldResult<()> {
        let cve = normalise_cve(s).ok_or_else(|| {
            (
                "cves",
                format!("{} is not a CVE id (expected CVE-YYYY-NNNN)", quoted(s)),
            )
        })?;
        push_cve(&mut cves, cve);
        Ok(())
    };
    match list {
        StrList::Absent => {}
        StrList::Items(items) => {
            for item in items {
                match item {
                    Loose::Str(s) => add(s)?,
                    other => {
                        return Err((
                            "cves",
                            format!("cves must be strings, found {}", other.kind()),
                        ));
                    }
                }
            }
        }
        StrList::Text(t) => {
            for part in split_list(t) {
                add(part)?;
            }
        }
        StrList::Invalid(kind) => {
            return Err((
                "cves",
                format!("cves must be an array of CVE ids, not {kind}"),
            ));
        }
    }
    Ok(cves)
}

fn evidence(e: Evidence<'_>) -> FieldResult<Option<String>> {
    let text = match e {
        Evidence::Json(raw) => raw.get(),
        Evidence::Text(t) => {
            if let Err(err) = serde_json::from_str::<&RawValue>(t) {
                return Err(("evidence", format!("evidence is not valid JSON: {err}")));
            }
            t
        }
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with("null") {
        return Ok(None);
    }
    if !trimmed.starts_with('{') {
        return Err(("evidence", "evidence must be a JSON object".to_owned()));
    }
    let compact = compact_json(text.trim());
    if compact.len() > MAX_EVIDENCE_BYTES {
        return Err((
            "evidence",
            format!(
                "evidence is {} bytes; at most {MAX_EVIDENCE_BYTES} allowed",
                compact.len()
            ),
        ));
    }
    Ok(Some(compact.into_owned()))
}

/// Parses one canonical JSON record (an NDJSON line or array element).
pub(crate) fn parse_record(line: u64, text: &str) -> Item {
    match serde_json::from_str::<CanonicalFields<'_>>(text) {
        Ok(fields) => match fields.into_observation(line, text.to_owned()) {
            Ok(obs) => Item::Observation(obs, line),
            Err(e) => Item::Rejected(e),
        },
        Err(e) => Item::Rejected(
            unknown_keys(line, text, &e)
                .unwrap_or_else(|| LineError::new(line, None, json_error(&e))),
        ),
    }
}

/// The canonical fields, in the order DESIGN.md lists them.
const FIELDS: [&str; 13] = [
    "ip",
    "port",
    "protocol",
    "observed_at",
    "check",
    "state",
    "cves",
    "severity",
    "hostname",
    "product",
    "version",
    "asn",
    "evidence",
];

/// Why a record with keys that are no canonical field was rejected: another
/// tool's output, or the first unknown key. `None` when the record has no
/// unknown key (the error was something else, e.g. a duplicate field).
fn unknown_keys(line: u64, text: &str, e: &serde_json::Error) -> Option<LineError> {
    if e.classify() != serde_json::error::Category::Data {
        return None;
    }
    let keys = serde_json::from_str::<TopLevelKeys>(text).ok()?;
    let first = keys.names.iter().find(|k| !FIELDS.contains(&k.as_str()))?;
    let reason = match other_format(&keys) {
        Some((format, tool, telling)) => format!(
            "looks like {tool} ({}), not a canonical observation: send it with ?format={format}",
            telling.join(", ")
        ),
        None => {
            let hint = closest_field(first)
                .map(|f| format!(" (did you mean \"{f}\"?)"))
                .unwrap_or_default();
            format!(
                "unknown field {}{hint}; expected one of {}",
                quoted(first),
                FIELDS.join(", ")
            )
        }
    };
    Some(LineError::new(line, Some(first.as_str()), reason))
}

/// The top-level keys of a JSON object in the order written, and what
/// telling other tools' output apart needs of `ports` (masscan).
#[derive(Debug, Default)]
struct TopLevelKeys {
    names: Vec<String>,
    /// `ports` is an array of objects with `proto` or `status`.
    masscan_ports: bool,
}

impl TopLevelKeys {
    fn has(&self, key: &str) -> bool {
        self.names.iter().any(|k| k == key)
    }

    fn first_of<'k>(&self, keys: &[&'k str]) -> Option<&'k str> {
        keys.iter().copied().find(|k| self.has(k))
    }
}

impl<'de> Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = TopLevelKeys;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevelKeys, A::Error> {
                let mut keys = TopLevelKeys::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "ports" {
                        let ports: serde_json::Value = map.next_value()?;
                        keys.masscan_ports = ports.as_array().is_some_and(|ports| {
                            ports
                                .iter()
                                .any(|p| p.get("proto").is_some() || p.get("status").is_some())
                        });
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                    keys.names.push(key);
                }
                Ok(keys)
            }
        }
        d.deserialize_map(KeysVisitor)
    }
}

/// `(format, what it is, the keys that tell)` when the record is clearly another
/// tool's output that Varsel reads under its own `format`.
fn other_format(keys: &TopLevelKeys) -> Option<(&'static str, &'static str, Vec<&'static str>)> {
    // nuclei before and after v2.5.3 renamed its fields.
    if let (Some(template), Some(matched)) = (
        keys.first_of(&["template-id", "templateID"]),
        keys.first_of(&["matched-at", "matched"]),
    ) {
        return Some(("nuclei", "nuclei output", vec![template, matched]));
    }
    if keys.masscan_ports {
        return Some((
            "masscan",
            "masscan -oJ output",
            vec!["ports", "proto/status"],
        ));
    }
    if keys.has("rec_type") && keys.has("proto") {
        return Some((
            "masscan",
            "masscan --ndjson output",
            vec!["rec_type", "proto"],
        ));
    }
    if keys.has("source.ip") {
        return Some(("intelmq", "an IntelMQ event", vec!["source.ip"]));
    }
    if keys.has("raw") {
        if let Some(key) = keys.first_of(&["feed.name", "classification.type"]) {
            return Some(("intelmq", "an IntelMQ event", vec!["raw", key]));
        }
    }
    None
}

/// The canonical field an unknown key was probably meant to be: the same
/// but for case (`IP`), or at most two edits away (`cve`, `observedAt`).
fn closest_field(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    if let Some(f) = FIELDS.iter().find(|f| **f == lower) {
        return Some(f);
    }
    FIELDS
        .iter()
        .map(|f| (edit_distance(&lower, f), *f))
        .filter(|(d, f)| *d <= 2 && *d < f.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f)
}

/// Levenshtein distance over bytes (the fields are ASCII; a key that is not
/// is far from all of them anyway).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// A serde error as a reason; says "not valid JSON" for syntax errors.
pub(crate) fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof => format!("not valid JSON: {e}"),
        Category::Data | Category::Io => format!("not a valid record: {e}"),
    }
}

/// [`Source`] for canonical NDJSON / JSON array.
#[cfg(test)]
mod tests {
    use super::super::test_support::{
        FailingReader, items, items_until_error, observations, rejections, sample, text,
    };
    use super::super::{Format, InputError};
    use super::*;
    use crate::ingest::observation::Severity;

    const GOOD: &str = r#"{"ip":"192.0.2.10","port":443,"protocol":"TCP","observed_at":"2021-03-05T11:00:00+01:00","check":"exchange-proxylogon","state":"vulnerable","cves":["cve-2021-26855","CVE-2021-26855","CVE-2021-27065"],"severity":"Critical","hostname":"mail.example.no","product":"Microsoft Exchange Server","version":"15.2.792","asn":2119,"evidence":{ "build" : "15.2.792", "x":[1, 2] }}"#;

    fn line(fields: &str) -> String {
        format!(r#"{{"ip":"192.0.2.1","observed_at":"2021-03-05T10:00:00Z","check":"c",{fields}}}"#)
    }

    #[test]
    fn full_record() {
        let items = items(&Format::Canonical, text(GOOD));
        let obs = observations(&items);
        assert_eq!(obs.len(), 1, "{items:?}");
        let o = obs[0];
        assert_eq!(o.ip.to_string(), "192.0.2.10");
        assert_eq!(o.port, 443);
        assert_eq!(o.protocol, "tcp");
        assert_eq!(o.observed_at.to_rfc3339(), "2021-03-05T10:00:00+00:00");
        assert_eq!(o.check, "exchange-proxylogon");
        assert_eq!(o.state, ObservationState::Vulnerable);
        assert_eq!(o.cves, vec!["CVE-2021-26855", "CVE-2021-27065"]);
        assert_eq!(o.severity, Some(Severity::Critical));
        assert_eq!(o.hostname.as_deref(), Some("mail.example.no"));
        assert_eq!(o.product.as_deref(), Some("Microsoft Exchange Server"));
        assert_eq!(o.version.as_deref(), Some("15.2.792"));
        assert_eq!(o.asn, Some(2119));
        assert_eq!(
            o.evidence.as_deref(),
            Some(r#"{"build":"15.2.792","x":[1,2]}"#)
        );
        assert_eq!(o.raw, GOOD);
    }

    #[test]
    fn defaults() {
        let input = r#"{"ip":"2001:db8::1","observed_at":"2021-03-05T10:00:00Z","check":"c"}"#;
        let items = items(&Format::Canonical, text(input));
        let o = observations(&items)[0];
        assert_eq!(o.port, 0);
        assert_eq!(o.protocol, "tcp");
        assert_eq!(o.state, ObservationState::Vulnerable);
        assert!(o.cves.is_empty());
        assert_eq!((o.severity, o.asn), (None, None));
        assert_eq!((&o.hostname, &o.evidence), (&None, &None));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let input = line(r#""hostname":"mail\u002eexample.no","product":"Ex\"change""#);
        let items = items(&Format::Canonical, text(&input));
        let o = observations(&items)[0];
        assert_eq!(o.hostname.as_deref(), Some("mail.example.no"));
        assert_eq!(o.product.as_deref(), Some("Ex\"change"));
    }

    /// Each bad line is followed by a good one, which must survive.
    #[test]
    fn every_validation_error_has_line_and_field() {
        let long_check = "c".repeat(129);
        let big_evidence = format!(r#"{{"blob":"{}"}}"#, "x".repeat(20480 - 11));
        let cases: Vec<(String, Option<&str>, String)> = vec![
            (
                r#"{"ip":"999.1.1.1","observed_at":"2021-03-05T10:00:00Z","check":"c"}"#.into(),
                Some("ip"),
                r#""999.1.1.1" is not an IPv4 or IPv6 address"#.into(),
            ),
            (
                r#"{"observed_at":"2021-03-05T10:00:00Z","check":"c"}"#.into(),
                Some("ip"),
                "ip is required".into(),
            ),
            (
                r#"{"ip":7,"observed_at":"2021-03-05T10:00:00Z","check":"c"}"#.into(),
                Some("ip"),
                "ip must be a string, not an integer".into(),
            ),
            (line(r#""port":65536"#), Some("port"), "port 65536 is out of range (0–65535)".into()),
            (line(r#""port":-1"#), Some("port"), r#"port "-1" is not an integer 0–65535"#.into()),
            (line(r#""port":4.5"#), Some("port"), r#"port "4.5" is not an integer 0–65535"#.into()),
            (line(r#""protocol":"t c p""#), Some("protocol"), String::new()),
            (
                r#"{"ip":"192.0.2.1","observed_at":"2021-03-05T10:00:00","check":"c"}"#.into(),
                Some("observed_at"),
                "time \"2021-03-05T10:00:00\" has no time zone (use RFC 3339, e.g. 2021-03-05T10:00:00Z)".into(),
            ),
            (
                r#"{"ip":"192.0.2.1","check":"c"}"#.into(),
                Some("observed_at"),
                "observed_at is required".into(),
            ),
            (
                r#"{"ip":"192.0.2.1","observed_at":"2021-03-05T10:00:00Z"}"#.into(),
                Some("check"),
                "check is required".into(),
            ),
            (
                r#"{"ip":"192.0.2.1","observed_at":"2021-03-05T10:00:00Z","check":"a b"}"#.into(),
                Some("check"),
                "check \"a b\" contains whitespace or control characters".into(),
            ),
            (
                format!(r#"{{"ip":"192.0.2.1","observed_at":"2021-03-05T10:00:00Z","check":"{long_check}"}}"#),
                Some("check"),
                "check is 129 characters; at most 128 allowed".into(),
            ),
            (
                line(r#""state":"broken""#),
                Some("state"),
                r#"unknown state "broken" (expected vulnerable, compromised, not_vulnerable or unknown)"#.into(),
            ),
            (
                line(r#""cves":["CVE-2021-26855","CVE-21-1"]"#),
                Some("cves"),
                r#""CVE-21-1" is not a CVE id (expected CVE-YYYY-NNNN)"#.into(),
            ),
            (line(r#""cves":[5]"#), Some("cves"), "cves must be strings, found an integer".into()),
            (line(r#""cves":{}"#), Some("cves"), "cves must be an array of CVE ids, not an object".into()),
            (line(r#""severity":"urgent""#), Some("severity"), String::new()),
            (
                line(&format!(r#""hostname":"{}""#, "h".repeat(256))),
                Some("hostname"),
                "hostname is 256 characters; at most 255 allowed".into(),
            ),
            (line(r#""product":["x"]"#), Some("product"), "product must be a string, not an array".into()),
            (line(r#""version":1.2"#), Some("version"), "version must be a string, not a number".into()),
            (line(r#""asn":-5"#), Some("asn"), String::new()),
            (line(r#""evidence":"text""#), Some("evidence"), "evidence must be a JSON object".into()),
            (line(r#""evidence":[1]"#), Some("evidence"), "evidence must be a JSON object".into()),
            (
                line(&format!(r#""evidence":{big_evidence}"#)),
                Some("evidence"),
                "evidence is 20480 bytes; at most 16384 allowed".into(),
            ),
            ("{\"ip\": ".into(), None, String::new()),
            ("not json".into(), None, String::new()),
            ("[1,2]".into(), None, String::new()),
            (line(r#""ip":"192.0.2.2""#), None, String::new()),
        ];
        let good = line(r#""port":22"#);
        let mut input = String::new();
        for (bad, _, _) in &cases {
            input.push_str(bad);
            input.push('\n');
            input.push_str(&good);
            input.push('\n');
        }
        let items = items(&Format::Canonical, text(&input));
        assert_eq!(items.len(), cases.len() * 2);
        for (i, (bad, field, reason)) in cases.iter().enumerate() {
            let n = (i * 2 + 1) as u64;
            match &items[i * 2] {
                Item::Rejected(e) => {
                    assert_eq!(e.line, n, "{bad}");
                    assert_eq!(e.field.as_deref(), *field, "{bad}: {e:?}");
                    if !reason.is_empty() {
                        assert_eq!(&e.reason, reason, "{bad}");
                    }
                }
                other => panic!("line {n} {bad} should be rejected: {other:?}"),
            }
            match &items[i * 2 + 1] {
                Item::Observation(o, line) => {
                    assert_eq!(o.port, 22);
                    assert_eq!(*line, n + 1);
                }
                other => panic!("line {} should pass: {other:?}", n + 1),
            }
        }
        let not_json = rejections(&items)
            .into_iter()
            .find(|e| e.line == 51)
            .unwrap();
        assert!(
            not_json.reason.starts_with("not valid JSON: "),
            "{}",
            not_json.reason
        );
        let dup = rejections(&items)
            .into_iter()
            .find(|e| e.line == 55)
            .unwrap();
        assert!(
            dup.reason.contains("duplicate field `ip`"),
            "{}",
            dup.reason
        );
    }

    const EXPECTED: &str = "expected one of ip, port, protocol, observed_at, check, state, cves, severity, hostname, product, version, asn, evidence";

    fn rejection(input: &str) -> LineError {
        let items = items(&Format::Canonical, text(input));
        match items.as_slice() {
            [Item::Rejected(e)] => e.clone(),
            other => panic!("{input} should be rejected: {other:?}"),
        }
    }

    #[test]
    fn an_unknown_key_rejects_the_line_naming_it() {
        // A typo must not drop the CVEs silently.
        let e = rejection(&line(r#""cve":["CVE-2021-26855"]"#));
        assert_eq!((e.line, e.field.as_deref()), (1, Some("cve")));
        assert_eq!(
            e.reason,
            format!(r#"unknown field "cve" (did you mean "cves"?); {EXPECTED}"#)
        );
        let e = rejection(&line(r#""port":1,"observedAt":"x","scanner":"y""#));
        assert_eq!(e.field.as_deref(), Some("observedAt"), "the first one");
        assert!(
            e.reason.contains(r#"(did you mean "observed_at"?)"#),
            "{}",
            e.reason
        );
        let e = rejection(&line(r#""IP":"192.0.2.9""#));
        assert!(e.reason.contains(r#"(did you mean "ip"?)"#), "{}", e.reason);
        let e = rejection(&line(r#""scanner":"x""#));
        assert_eq!(e.reason, format!(r#"unknown field "scanner"; {EXPECTED}"#));
        // In an array too; a duplicate of a known field stays serde's reason.
        let e = rejection(&format!("[{}]", line(r#""tags":[]"#)));
        assert_eq!(e.field.as_deref(), Some("tags"));
        let e = rejection(&line(r#""check":"d""#));
        assert_eq!(e.field, None);
        assert!(e.reason.contains("duplicate field `check`"), "{}", e.reason);
    }

    #[test]
    fn another_tools_output_is_rejected_with_the_format_that_reads_it() {
        let formats = super::super::test_support::formats_dir();
        let first_line = |rel: &str| {
            let text = std::fs::read_to_string(formats.join(rel)).unwrap();
            text.lines().next().unwrap().to_owned()
        };
        let e = rejection(&first_line("nuclei/nuclei_sample_v3.jsonl"));
        assert_eq!(e.field.as_deref(), Some("template-id"));
        assert_eq!(
            e.reason,
            "looks like nuclei output (template-id, matched-at), not a canonical observation: send it with ?format=nuclei"
        );
        let e = rejection(&first_line("nuclei/nuclei_sample_legacy_v2.jsonl"));
        assert!(e.reason.contains("(templateID, matched)"), "{}", e.reason);
        assert!(e.reason.ends_with("?format=nuclei"), "{}", e.reason);

        // masscan -oJ: every element says so.
        let items = items(&Format::Canonical, sample("masscan/masscan_sample.json"));
        let rej = rejections(&items);
        assert_eq!(rej.len(), 8);
        assert!(
            rej.iter().all(|e| e.field.as_deref() == Some("timestamp")
                && e.reason.ends_with("send it with ?format=masscan")),
            "{rej:?}"
        );
        let e = rejection(
            r#"{"ip":"192.0.2.1","timestamp":"1629960470","port":443,"proto":"tcp","rec_type":"status","data":{"status":"open"}}"#,
        );
        assert!(e.reason.ends_with("?format=masscan"), "{}", e.reason);

        let e = rejection(
            r#"{"feed.name":"Scan","source.ip":"192.0.2.1","source.port":443,"time.source":"2021-03-05T10:00:00+00:00","classification.type":"vulnerable-system"}"#,
        );
        assert_eq!(e.field.as_deref(), Some("feed.name"));
        assert_eq!(
            e.reason,
            "looks like an IntelMQ event (source.ip), not a canonical observation: send it with ?format=intelmq"
        );
        let e = rejection(r#"{"raw":"Zm9v","classification.type":"scanner","extra.x":1}"#);
        assert!(
            e.reason.contains("(raw, classification.type)"),
            "{}",
            e.reason
        );
        assert!(e.reason.ends_with("?format=intelmq"), "{}", e.reason);

        // Half a signature is only an unknown key.
        let e = rejection(&line(r#""template-id":"x""#));
        assert!(
            e.reason.starts_with("unknown field \"template-id\""),
            "{}",
            e.reason
        );
        let e = rejection(&line(r#""ports":[80,443]"#));
        assert!(
            e.reason.starts_with("unknown field \"ports\""),
            "{}",
            e.reason
        );
    }

    #[test]
    fn close_fields() {
        assert_eq!(closest_field("cve"), Some("cves"));
        assert_eq!(closest_field("Severity"), Some("severity"));
        assert_eq!(closest_field("observedat"), Some("observed_at"));
        assert_eq!(closest_field("x"), None);
        assert_eq!(closest_field("timestamp"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ip"), 2);
    }

    #[test]
    fn evidence_at_the_limit_is_accepted_and_null_is_absent() {
        let ev = format!(r#"{{"blob":"{}"}}"#, "x".repeat(MAX_EVIDENCE_BYTES - 11));
        assert_eq!(ev.len(), MAX_EVIDENCE_BYTES);
        let input = format!(
            "{}\n{}\n",
            line(&format!(r#""evidence":{ev}"#)),
            line(r#""evidence":null,"cves":null,"port":null"#)
        );
        let items = items(&Format::Canonical, text(&input));
        let obs = observations(&items);
        assert_eq!(obs.len(), 2, "{items:?}");
        assert_eq!(
            obs[0].evidence.as_deref().map(str::len),
            Some(MAX_EVIDENCE_BYTES)
        );
        assert_eq!(obs[1].evidence, None);
    }

    #[test]
    fn blank_lines_are_skipped_and_crlf_is_trimmed() {
        let good = line(r#""port":1"#);
        let input = format!("\n{good}\r\n   \n\n{good}\n\n");
        let items = items(&Format::Canonical, text(&input));
        assert_eq!(items.len(), 2);
        let obs = observations(&items);
        assert_eq!(obs[0].raw, good);
        let input = format!("{good}\nnope\n");
        let second = super::super::test_support::items(&Format::Canonical, text(&input));
        assert_eq!(rejections(&second)[0].line, 2);
    }

    #[test]
    fn array_and_ndjson_agree() {
        let a = line(r#""port":1"#);
        let b = line(r#""port":2,"cves":["CVE-2021-26855"]"#);
        let bad = line(r#""port":"x""#);
        let ndjson = format!("{a}\n{bad}\n{b}\n");
        let array = format!("[{a},\n{bad},\n{b}]\n");
        let from_lines = items(&Format::Canonical, text(&ndjson));
        let from_array = items(&Format::Canonical, text(&array));
        assert_eq!(from_lines, from_array);
        assert_eq!(rejections(&from_array)[0].line, 2);
    }

    #[test]
    fn array_with_trailing_comma_and_element_lines() {
        let a = line(r#""port":1"#);
        let input = format!("\n[\n  {a},\n  {{\"ip\":\"nope\"}},\n  {a},\n]\n");
        let items = items(&Format::Canonical, text(&input));
        assert_eq!(observations(&items).len(), 2);
        let rej = rejections(&items);
        assert_eq!((rej[0].line, rej[0].field.as_deref()), (4, Some("ip")));
    }

    #[test]
    fn unterminated_array_is_an_input_error_after_the_good_elements() {
        let a = line(r#""port":1"#);
        let (items, err) = items_until_error(&Format::Canonical, text(&format!("[{a},\n{a}")));
        // Both elements are complete; only the closing `]` is missing.
        assert_eq!(observations(&items).len(), 2);
        assert!(
            matches!(err, Some(InputError::Malformed { line: 2, .. })),
            "{err:?}"
        );
        let (items, err) =
            items_until_error(&Format::Canonical, text(&format!("[{a},\n{{\"ip\":")));
        assert_eq!(items.len(), 1);
        assert!(matches!(err, Some(InputError::Malformed { .. })), "{err:?}");
    }

    #[test]
    fn io_error_mid_stream() {
        let a = line(r#""port":1"#);
        let input = format!("{a}\n{a}\n{a}\n");
        let (items, err) = items_until_error(
            &Format::Canonical,
            FailingReader::boxed(&input, a.len() + 10),
        );
        assert_eq!(observations(&items).len(), 1);
        match err {
            Some(InputError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_gzip_is_an_io_error() {
        use flate2::{Compression, read::GzDecoder, write::GzEncoder};
        use std::io::Write;
        let a = line(r#""port":1"#);
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        for _ in 0..1000 {
            writeln!(enc, "{a}").unwrap();
        }
        let mut gz = enc.finish().unwrap();
        gz.truncate(gz.len() / 2);
        let reader = std::io::BufReader::new(GzDecoder::new(std::io::Cursor::new(gz)));
        let (items, err) = items_until_error(&Format::Canonical, Box::new(reader));
        assert!(!items.is_empty());
        assert!(matches!(err, Some(InputError::Io(_))), "{err:?}");
    }

    /// `cargo test --release -- --ignored --nocapture ndjson_speed`
    #[test]
    #[ignore]
    fn ndjson_speed() {
        const N: usize = 1_000_000;
        let mut input = String::with_capacity(N * 260);
        for i in 0..N {
            input.push_str(&format!(
                r#"{{"ip":"10.{}.{}.{}","port":443,"observed_at":"2021-03-05T10:00:{:02}Z","check":"exchange-proxylogon","state":"vulnerable","cves":["CVE-2021-26855"],"severity":"critical","hostname":"mail{i}.example.no","asn":2119,"evidence":{{"build":"15.2.792"}}}}"#,
                (i >> 16) & 255,
                (i >> 8) & 255,
                i & 255,
                i % 60
            ));
            input.push('\n');
        }
        let bytes = input.len();
        let reader = Box::new(std::io::Cursor::new(input.into_bytes()));
        let start = std::time::Instant::now();
        let mut count = 0;
        for item in super::super::parse(&Format::Canonical, reader) {
            if let Ok(Item::Observation(..)) = item {
                count += 1;
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(count, N);
        println!(
            "{N} canonical NDJSON lines ({} MB) in {:.3} s ({:.0} lines/s)",
            bytes / 1_000_000,
            elapsed.as_secs_f64(),
            N as f64 / elapsed.as_secs_f64()
        );
    }
}
