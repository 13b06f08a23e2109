//! nuclei results (`-jsonl` lines or a `-json-export` array): one observation
//! per result, check id = template id.
//!
//! Handles both field spellings (before v2.5.3: `templateID`, `matched`,
//! `extracted_results`, `matcher_name`; after: `template-id`, `matched-at`,
//! `extracted-results`, `matcher-name`), `port` as a string, a missing or
//! dotted `ip` (recovered from `host`), local-offset timestamps, and
//! lower-case CVE ids in `info.classification.cve-id`.

use std::net::IpAddr;

use serde::Deserialize;

use super::Item;
use super::canonical::json_error;
use super::fields::{
    EvidenceBuilder, Loose, StrList, clip_text, normalise_cve, parse_port, parse_rfc3339_utc,
    parse_severity, push_cve, quoted, split_list, validate_check,
};
use crate::ingest::observation::{LineError, Observation, ObservationState, Severity};

/// Templates named after a CVE that only show the service is exposed, not
/// that it is vulnerable (tests/fixtures/formats/README.md): `CVE-2021-27065`
/// only proves the Exchange ECP panel answers.
const EXPOSURE_ONLY_TEMPLATES: &[&str] = &["CVE-2021-27065"];

#[derive(Debug, Deserialize)]
#[serde(expecting = "a nuclei result object")]
struct NucleiRecord<'a> {
    #[serde(rename = "template-id", alias = "templateID", borrow)]
    template_id: Option<Loose<'a>>,
    #[serde(rename = "template-path", borrow)]
    template_path: Option<Loose<'a>>,
    #[serde(borrow)]
    info: Option<NucleiInfo<'a>>,
    #[serde(rename = "matcher-name", alias = "matcher_name", borrow)]
    matcher_name: Option<Loose<'a>>,
    #[serde(rename = "matched-at", alias = "matched", borrow)]
    matched_at: Option<Loose<'a>>,
    #[serde(
        rename = "extracted-results",
        alias = "extracted_results",
        borrow,
        default
    )]
    extracted_results: StrList<'a>,
    #[serde(rename = "matcher-status", borrow)]
    matcher_status: Option<Loose<'a>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Loose<'a>>,
    #[serde(borrow)]
    host: Option<Loose<'a>>,
    #[serde(borrow)]
    port: Option<Loose<'a>>,
    #[serde(borrow)]
    scheme: Option<Loose<'a>>,
    #[serde(borrow)]
    url: Option<Loose<'a>>,
    #[serde(borrow)]
    ip: Option<Loose<'a>>,
    #[serde(borrow)]
    timestamp: Option<Loose<'a>>,
}

#[derive(Debug, Deserialize)]
struct NucleiInfo<'a> {
    #[serde(borrow)]
    name: Option<Loose<'a>>,
    #[serde(borrow)]
    severity: Option<Loose<'a>>,
    #[serde(borrow)]
    classification: Option<Classification<'a>>,
}

#[derive(Debug, Deserialize)]
struct Classification<'a> {
    #[serde(rename = "cve-id", borrow, default)]
    cve_id: StrList<'a>,
}

/// Scheme, host and port of a nuclei `host` / `matched-at` / `url` value,
/// which may be a URL, `host:port`, `[v6]:port` or a bare name or address.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    scheme: Option<&'a str>,
    host: &'a str,
    port: Option<u16>,
}

impl<'a> Target<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        let s = s.trim();
        let (scheme, rest) = match s.find("://") {
            Some(i) => (Some(&s[..i]), &s[i + 3..]),
            None => (None, s),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (host, after) = inner.split_once(']')?;
            (host, after.strip_prefix(':'))
        } else if authority.matches(':').count() == 1 {
            let (h, p) = authority.split_once(':')?;
            (h, Some(p))
        } else {
            // No colon, or a bare IPv6 address.
            (authority, None)
        };
        if host.is_empty() {
            return None;
        }
        Some(Target {
            scheme,
            host,
            port: port.and_then(|p| p.parse().ok()),
        })
    }

    /// The host as an address (a trailing dot, as in DNS names, is dropped).
    fn ip(&self) -> Option<IpAddr> {
        parse_dotted_ip(self.host)
    }
}

fn parse_dotted_ip(s: &str) -> Option<IpAddr> {
    s.trim().trim_end_matches('.').parse().ok()
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        "ftp" => Some(21),
        "ssh" => Some(22),
        _ => None,
    }
}

fn text<'v>(v: &'v Option<Loose<'_>>) -> Option<&'v str> {
    v.as_ref()
        .and_then(Loose::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

impl NucleiRecord<'_> {
    fn into_observation(self, line: u64, raw: &str) -> Result<Observation, LineError> {
        let reject = |field: &str, reason: String| LineError::new(line, Some(field), reason);

        let check = text(&self.template_id)
            .ok_or_else(|| reject("template-id", "template-id is missing".to_owned()))?;
        validate_check(check).map_err(|r| reject("template-id", r))?;

        let host = text(&self.host).and_then(Target::parse);
        let matched = text(&self.matched_at).and_then(Target::parse);
        let url = text(&self.url).and_then(Target::parse);

        let ip = match text(&self.ip).and_then(parse_dotted_ip) {
            Some(ip) => ip,
            None => host.as_ref().and_then(Target::ip).ok_or_else(|| {
                let ip_said = match text(&self.ip) {
                    Some(s) => format!("ip {} is not an IPv4 or IPv6 address", quoted(s)),
                    None => "ip is missing".to_owned(),
                };
                let host_said = match text(&self.host) {
                    Some(h) => format!("host {} has no IP address", quoted(h)),
                    None => "there is no host".to_owned(),
                };
                reject("ip", format!("{ip_said} and {host_said}"))
            })?,
        };

        let observed_at = match text(&self.timestamp) {
            Some(t) => parse_rfc3339_utc(t).map_err(|r| reject("timestamp", r))?,
            None => return Err(reject("timestamp", "timestamp is missing".to_owned())),
        };

        let kind = text(&self.kind).map(str::to_ascii_lowercase);
        let is_dns = kind.as_deref() == Some("dns");
        let targets = [&matched, &url, &host];
        let explicit_port = match &self.port {
            None | Some(Loose::Null) => None,
            Some(Loose::Str(s)) if s.trim().is_empty() => None,
            Some(p) => Some(parse_port(p).map_err(|r| reject("port", r))?),
        };
        let scheme_port = || {
            targets
                .iter()
                .filter_map(|t| t.as_ref()?.scheme)
                .chain(text(&self.scheme))
                .find_map(default_port)
        };
        let port = explicit_port
            .or_else(|| targets.iter().find_map(|t| t.as_ref()?.port))
            .or_else(scheme_port)
            .or(is_dns.then_some(53))
            .unwrap_or(0);
        let udp_scheme = targets
            .iter()
            .filter_map(|t| t.as_ref()?.scheme)
            .any(|s| s.eq_ignore_ascii_case("udp"));
        let protocol = if is_dns || udp_scheme { "udp" } else { "tcp" };

        let info = self.info.as_ref();
        let severity = info
            .and_then(|i| text(&i.severity))
            .and_then(parse_severity);
        let mut cves = Vec::new();
        if let Some(class) = info.and_then(|i| i.classification.as_ref()) {
            match &class.cve_id {
                StrList::Items(items) => {
                    for id in items.iter().filter_map(Loose::as_str) {
                        if let Some(cve) = normalise_cve(id) {
                            push_cve(&mut cves, cve);
                        }
                    }
                }
                StrList::Text(t) => {
                    for id in split_list(t) {
                        if let Some(cve) = normalise_cve(id) {
                            push_cve(&mut cves, cve);
                        }
                    }
                }
                StrList::Absent | StrList::Invalid(_) => {}
            }
        }
        let template_cve = normalise_cve(check);
        if let Some(cve) = &template_cve {
            push_cve(&mut cves, cve.clone());
        }

        let state = state_for(
            check,
            template_cve.is_some(),
            &cves,
            severity,
            &self.matcher_status,
        );

        let hostname = [&host, &matched, &url]
            .into_iter()
            .flatten()
            .find(|t| t.ip().is_none())
            .and_then(|t| clip_text(t.host.trim_end_matches('.')));

        let mut ev = EvidenceBuilder::new();
        ev.opt_str("template-name", info.and_then(|i| text(&i.name)))
            .opt_str("matcher-name", text(&self.matcher_name))
            .opt_str("matched-at", text(&self.matched_at))
            .opt_str("type", kind.as_deref())
            .opt_str("template-path", text(&self.template_path));
        if let StrList::Items(items) = &self.extracted_results {
            ev.str_list("extracted-results", items.iter().filter_map(Loose::as_str));
        }

        Ok(Observation {
            ip,
            port,
            protocol: protocol.to_owned(),
            observed_at,
            check: check.to_owned(),
            state,
            cves,
            severity,
            hostname,
            product: None,
            version: None,
            asn: None,
            evidence: ev.finish(),
            raw: raw.to_owned(),
        })
    }
}

/// A CVE template, CVEs in the classification, or severity medium and up
/// mean the template proved a weakness; info/low results (tech-detect and
/// friends) are exposures. `matcher-status: false` (nuclei `-ms`) is a
/// template that ran and did not match.
fn state_for(
    check: &str,
    cve_template: bool,
    cves: &[String],
    severity: Option<Severity>,
    matcher_status: &Option<Loose<'_>>,
) -> ObservationState {
    if matches!(matcher_status, Some(Loose::Bool(false))) {
        return ObservationState::NotVulnerable;
    }
    if EXPOSURE_ONLY_TEMPLATES
        .iter()
        .any(|t| t.eq_ignore_ascii_case(check))
    {
        return ObservationState::Unknown;
    }
    if cve_template || !cves.is_empty() || severity >= Some(Severity::Medium) {
        ObservationState::Vulnerable
    } else {
        ObservationState::Unknown
    }
}

pub(crate) fn parse_record(line: u64, text: &str) -> Item {
    match serde_json::from_str::<NucleiRecord<'_>>(text) {
        Ok(rec) => match rec.into_observation(line, text) {
            Ok(obs) => Item::Observation(obs, line),
            Err(e) => Item::Rejected(e),
        },
        Err(e) => Item::Rejected(LineError::new(line, None, json_error(&e))),
    }
}

/// [`Source`] for nuclei JSONL / JSON export.
#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::super::test_support::{items, observations, rejections, sample, text};
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("https://user@1.2.3.4:8443/x?y").unwrap();
        assert_eq!(
            (t.scheme, t.host, t.port),
            (Some("https"), "1.2.3.4", Some(8443))
        );
        let t = Target::parse("nuclei-example.com:22").unwrap();
        assert_eq!(
            (t.scheme, t.host, t.port),
            (None, "nuclei-example.com", Some(22))
        );
        let t = Target::parse("http://[2001:db8::1]:8080/").unwrap();
        assert_eq!(t.ip().unwrap().to_string(), "2001:db8::1");
        assert_eq!(t.port, Some(8080));
        let t = Target::parse("2001:db8::2").unwrap();
        assert_eq!((t.host, t.port), ("2001:db8::2", None));
        assert!(Target::parse("").is_none());
    }

    #[test]
    fn legacy_sample() {
        let items = items(
            &Format::Nuclei,
            sample("nuclei/nuclei_sample_legacy_v2.jsonl"),
        );
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let obs = observations(&items);
        assert_eq!(obs.len(), 18);

        let ssh = obs[0];
        assert_eq!(ssh.check, "openssh5.3-detect");
        assert_eq!(ssh.ip.to_string(), "178.21.15.56");
        assert_eq!(ssh.port, 22, "from matched host:port");
        assert_eq!(ssh.protocol, "tcp");
        assert_eq!(
            ssh.observed_at.to_rfc3339(),
            "2021-05-20T08:11:01.667748+00:00"
        );
        assert_eq!(ssh.severity, Some(Severity::Low));
        assert_eq!(ssh.state, ObservationState::Unknown);
        assert_eq!(ssh.hostname.as_deref(), Some("nuclei-example.com"));
        assert_eq!(ssh.raw.lines().count(), 1);
        assert!(ssh.raw.starts_with("{\"templateID\":\"openssh5.3-detect\""));

        let nginx = obs[1];
        assert_eq!(nginx.port, 443, "https default");
        let ev: serde_json::Value =
            serde_json::from_str(nginx.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["extracted-results"][0], "nginx/1.14.2");
        assert_eq!(ev["template-name"], "nginx version detect");
        assert_eq!(ev["matched-at"], "https://nuclei-example.com");

        let setup = obs[2];
        assert_eq!(setup.check, "phpmyadmin-setup");
        assert_eq!(setup.severity, Some(Severity::Medium));
        assert_eq!(setup.state, ObservationState::Vulnerable);

        let tech = obs[3];
        assert_eq!(tech.check, "tech-detect");
        assert_eq!(tech.ip.to_string(), "127.0.0.1");
        assert_eq!(tech.port, 8080);
        assert_eq!(tech.state, ObservationState::Unknown);
        assert_eq!(tech.hostname, None, "host is an address");
        let ev: serde_json::Value =
            serde_json::from_str(tech.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["matcher-name"], "animate.css");

        let mysql = obs[17];
        assert_eq!(mysql.port, 3306);
        assert_eq!(
            mysql.observed_at.to_rfc3339(),
            "2021-05-20T08:12:02.301031+00:00"
        );
    }

    #[test]
    fn v3_sample() {
        let items = items(&Format::Nuclei, sample("nuclei/nuclei_sample_v3.jsonl"));
        let obs = observations(&items);
        assert_eq!(obs.len(), 2);
        for o in &obs {
            assert_eq!(o.check, "tech-detect");
            assert_eq!(o.ip.to_string(), "3.160.231.125");
            assert_eq!(o.port, 443, "port is the string \"443\"");
            assert_eq!(
                o.hostname.as_deref(),
                Some("turquoise-estrellita-69.tiiny.site")
            );
            assert_eq!(o.severity, Some(Severity::Info));
            assert_eq!(o.state, ObservationState::Unknown);
            let ev = o.evidence.as_deref().unwrap();
            assert!(!ev.contains("HTTP/1.1"), "no request/response in evidence");
        }
        assert_eq!(
            obs[0].observed_at.to_rfc3339(),
            "2024-11-17T11:15:12.821259+00:00"
        );
        let ev: serde_json::Value =
            serde_json::from_str(obs[1].evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["matcher-name"], "recaptcha");
        assert_eq!(ev["template-path"], "http/technologies/tech-detect.yaml");
    }

    #[test]
    fn array_export_matches_jsonl() {
        let jsonl = std::fs::read_to_string(
            super::super::test_support::formats_dir().join("nuclei/nuclei_sample_v3.jsonl"),
        )
        .unwrap();
        let array = format!("[{}]", jsonl.trim_end().replace('\n', ",\n"));
        assert_eq!(
            items(&Format::Nuclei, text(&jsonl)),
            items(&Format::Nuclei, text(&array))
        );
    }

    fn record(fields: &str) -> String {
        format!(r#"{{"timestamp":"2021-03-05T12:00:00.123456789+02:00",{fields}}}"#)
    }

    #[test]
    fn proxylogon_templates_and_cves() {
        let input = [
            record(
                r#""template-id":"CVE-2021-26855","info":{"name":"ProxyLogon","severity":"critical","classification":{"cve-id":["cve-2021-26855"]}},"type":"http","host":"https://mail.example.no","matched-at":"https://mail.example.no/owa/auth/x.js","ip":"192.0.2.5""#,
            ),
            record(
                r#""template-id":"CVE-2021-27065","info":{"name":"ECP","severity":"critical","classification":{"cve-id":["cve-2021-27065"]}},"type":"http","host":"https://192.0.2.6/ecp/","ip":"192.0.2.6.""#,
            ),
            record(
                r#""template-id":"exchange-version","info":{"severity":"info","classification":{"cve-id":null}},"type":"http","host":"https://[2001:db8::7]:8443""#,
            ),
            record(
                r#""templateID":"dns-rebind","info":{"severity":"info"},"type":"dns","host":"192.0.2.8""#,
            ),
            record(
                r#""template-id":"CVE-2021-34473","info":{"severity":"critical"},"host":"https://mail.example.no","ip":"192.0.2.9","matcher-status":false"#,
            ),
        ]
        .join("\n");
        let items = items(&Format::Nuclei, text(&input));
        let obs = observations(&items);
        assert_eq!(obs.len(), 5, "{items:?}");

        assert_eq!(obs[0].state, ObservationState::Vulnerable);
        assert_eq!(obs[0].cves, vec!["CVE-2021-26855"]);
        assert_eq!(obs[0].severity, Some(Severity::Critical));
        assert_eq!(
            obs[0].observed_at.to_rfc3339(),
            "2021-03-05T10:00:00.123456789+00:00"
        );
        assert_eq!(obs[0].hostname.as_deref(), Some("mail.example.no"));

        assert_eq!(
            obs[1].state,
            ObservationState::Unknown,
            "27065 proves exposure only"
        );
        assert_eq!(obs[1].ip.to_string(), "192.0.2.6", "trailing dot stripped");
        assert_eq!(obs[1].cves, vec!["CVE-2021-27065"]);

        assert_eq!(obs[2].ip.to_string(), "2001:db8::7", "ip from host URL");
        assert_eq!(obs[2].port, 8443);
        assert_eq!(obs[2].state, ObservationState::Unknown);

        assert_eq!((obs[3].protocol.as_str(), obs[3].port), ("udp", 53));
        assert_eq!(obs[3].check, "dns-rebind");

        assert_eq!(obs[4].state, ObservationState::NotVulnerable);
        assert_eq!(obs[4].cves, vec!["CVE-2021-34473"]);
    }

    #[test]
    fn rejections_name_the_field() {
        let input = [
            record(r#""template-id":"x","host":"https://mail.example.no""#),
            record(r#""template-id":"x","ip":"192.0.2.1","port":"https""#),
            record(r#""info":{},"ip":"192.0.2.1""#),
            r#"{"template-id":"x","ip":"192.0.2.1"}"#.to_owned(),
            r#"{"template-id":"x","ip":"192.0.2.1","timestamp":"2021-03-05 12:00:00"}"#.to_owned(),
            r#"{"template-id":"x","info":"oops"}"#.to_owned(),
            record(r#""template-id":"ok","ip":"192.0.2.1""#),
        ]
        .join("\n");
        let items = items(&Format::Nuclei, text(&input));
        let rej = rejections(&items);
        let got: Vec<_> = rej.iter().map(|e| (e.line, e.field.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (1, Some("ip")),
                (2, Some("port")),
                (3, Some("template-id")),
                (4, Some("timestamp")),
                (5, Some("timestamp")),
                (6, None)
            ]
        );
        assert_eq!(
            rej[0].reason,
            "ip is missing and host \"https://mail.example.no\" has no IP address"
        );
        assert!(rej[4].reason.contains("no time zone"));
        assert_eq!(observations(&items).len(), 1);
    }

    #[test]
    fn huge_extracted_results_are_capped_not_rejected() {
        let big: Vec<String> = (0..100)
            .map(|i| format!("\"{i}{}\"", "z".repeat(3000)))
            .collect();
        let input = record(&format!(
            r#""template-id":"x","ip":"192.0.2.1","extracted-results":[{}]"#,
            big.join(",")
        ));
        let items = items(&Format::Nuclei, text(&input));
        let obs = observations(&items);
        let ev = obs[0].evidence.as_deref().unwrap();
        assert!(ev.len() <= crate::ingest::observation::MAX_EVIDENCE_BYTES);
        let v: serde_json::Value = serde_json::from_str(ev).unwrap();
        assert_eq!(v["truncated"], true);
        assert!(!v["extracted-results"].as_array().unwrap().is_empty());
    }
}
