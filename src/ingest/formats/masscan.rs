//! masscan results: `-oJ` (a JSON array, one port per record, with old
//! masscan's trailing comma and `{finished: 1}` trailer), `--ndjson`/`-oD`
//! (one object per line, `rec_type` status or banner) and `-oL` (the list
//! format). Every open port and every banner is an exposure: check
//! `open-port`, state unknown.

use std::collections::VecDeque;
use std::io::BufRead;

use serde::Deserialize;

use super::canonical::json_error;
use super::fields::{
    EvidenceBuilder, Loose, clip_text, normalise_protocol, parse_epoch, parse_ip, parse_port,
    parse_port_text,
};
use super::input::{JsonFraming, JsonRecord, Line, LineReader, peek_first_non_blank, too_long};
use super::{InputError, Item, Source};
use crate::ingest::observation::{LineError, Observation, ObservationState};

const CHECK: &str = "open-port";

/// One `-oJ` record, or one `--ndjson` record (which has the port fields at
/// the top level and `data` instead of `ports`).
#[derive(Debug, Deserialize)]
#[serde(expecting = "a masscan record object")]
struct Record<'a> {
    #[serde(borrow)]
    ip: Option<Loose<'a>>,
    #[serde(borrow)]
    timestamp: Option<Loose<'a>>,
    #[serde(borrow, default)]
    ports: Vec<Port<'a>>,
    #[serde(borrow)]
    port: Option<Loose<'a>>,
    #[serde(borrow)]
    proto: Option<Loose<'a>>,
    #[serde(borrow)]
    rec_type: Option<Loose<'a>>,
    #[serde(borrow)]
    data: Option<NdjsonData<'a>>,
}

#[derive(Debug, Deserialize)]
struct Port<'a> {
    #[serde(borrow)]
    port: Option<Loose<'a>>,
    #[serde(borrow)]
    proto: Option<Loose<'a>>,
    #[serde(borrow)]
    status: Option<Loose<'a>>,
    #[serde(borrow)]
    service: Option<Service<'a>>,
}

#[derive(Debug, Deserialize)]
struct Service<'a> {
    #[serde(borrow)]
    name: Option<Loose<'a>>,
    #[serde(borrow)]
    banner: Option<Loose<'a>>,
}

#[derive(Debug, Deserialize)]
struct NdjsonData<'a> {
    #[serde(borrow)]
    status: Option<Loose<'a>>,
    #[serde(borrow)]
    service_name: Option<Loose<'a>>,
    #[serde(borrow)]
    banner: Option<Loose<'a>>,
}

/// What one port entry says, whatever the format.
struct PortResult<'s> {
    port: u16,
    protocol: String,
    /// `Some((service, banner))` for a banner record.
    banner: Option<(&'s str, &'s str)>,
}

fn loose_str<'v>(v: &'v Option<Loose<'_>>) -> Option<&'v str> {
    v.as_ref().and_then(Loose::as_str)
}

/// Builds the observation shared by all masscan flavours.
fn observation(
    ip: std::net::IpAddr,
    observed_at: chrono::DateTime<chrono::Utc>,
    result: PortResult<'_>,
    raw: &str,
) -> Observation {
    let (product, evidence) = match result.banner {
        Some((service, banner)) => {
            let mut ev = EvidenceBuilder::new();
            ev.str("service", service).str("banner", banner);
            (clip_text(service), ev.finish())
        }
        None => (None, None),
    };
    Observation {
        ip,
        port: result.port,
        protocol: result.protocol,
        observed_at,
        check: CHECK.to_owned(),
        state: ObservationState::Unknown,
        cves: Vec::new(),
        severity: None,
        hostname: None,
        product,
        version: None,
        asn: None,
        evidence,
        raw: raw.to_owned(),
    }
}

/// Port and protocol; ICMP has no port, whatever the record says.
fn port_and_protocol(
    port: &Option<Loose<'_>>,
    proto: &Option<Loose<'_>>,
    line: u64,
) -> Result<(u16, String), LineError> {
    let protocol = match loose_str(proto) {
        Some(p) => normalise_protocol(p).map_err(|r| LineError::new(line, Some("proto"), r))?,
        None => "tcp".to_owned(),
    };
    if protocol == "icmp" {
        return Ok((0, protocol));
    }
    let port = match port {
        Some(p) => parse_port(p).map_err(|r| LineError::new(line, Some("port"), r))?,
        None => return Err(LineError::new(line, Some("port"), "port is missing")),
    };
    Ok((port, protocol))
}

fn is_open(status: Option<&str>) -> bool {
    // Entries without a status are banners or `open` from old versions.
    status.is_none_or(|s| s.eq_ignore_ascii_case("open"))
}

/// Old masscan ends its array with `{finished: 1}` (not even JSON).
fn is_finished_trailer(text: &str) -> bool {
    let inner = text.trim().trim_start_matches('{').trim_start();
    inner.starts_with("finished") || inner.starts_with("\"finished\"")
}

fn parse_json_record(line: u64, text: &str, out: &mut VecDeque<Item>) {
    if is_finished_trailer(text) {
        return;
    }
    let rec = match serde_json::from_str::<Record<'_>>(text) {
        Ok(rec) => rec,
        Err(e) => {
            out.push_back(Item::Rejected(LineError::new(line, None, json_error(&e))));
            return;
        }
    };
    let header = (|| {
        let ip = match loose_str(&rec.ip) {
            Some(s) => parse_ip(s).map_err(|r| LineError::new(line, Some("ip"), r))?,
            None => return Err(LineError::new(line, Some("ip"), "ip is missing")),
        };
        let observed_at = match rec.timestamp.as_ref().and_then(Loose::scalar_text) {
            Some(t) => parse_epoch(&t).map_err(|r| LineError::new(line, Some("timestamp"), r))?,
            None => {
                return Err(LineError::new(
                    line,
                    Some("timestamp"),
                    "timestamp is missing",
                ));
            }
        };
        Ok((ip, observed_at))
    })();
    let (ip, observed_at) = match header {
        Ok(h) => h,
        Err(e) => {
            out.push_back(Item::Rejected(e));
            return;
        }
    };
    let mut push = |result: Result<Option<PortResult<'_>>, LineError>| match result {
        Ok(Some(r)) => out.push_back(Item::Observation(
            observation(ip, observed_at, r, text),
            line,
        )),
        Ok(None) => {}
        Err(e) => out.push_back(Item::Rejected(e)),
    };
    if rec.rec_type.is_some() || rec.data.is_some() {
        // --ndjson: one port per line, status or banner in `data`.
        let data = rec.data.as_ref();
        let banner = data.and_then(|d| {
            Some((
                loose_str(&d.service_name).unwrap_or(""),
                loose_str(&d.banner)?,
            ))
        });
        let status = data.and_then(|d| loose_str(&d.status));
        push(
            port_and_protocol(&rec.port, &rec.proto, line).map(|(port, protocol)| {
                (banner.is_some() || is_open(status)).then_some(PortResult {
                    port,
                    protocol,
                    banner,
                })
            }),
        );
        return;
    }
    if rec.ports.is_empty() {
        out.push_back(Item::Rejected(LineError::new(
            line,
            Some("ports"),
            "record has no ports",
        )));
        return;
    }
    for p in &rec.ports {
        let banner = p.service.as_ref().map(|s| {
            (
                loose_str(&s.name).unwrap_or(""),
                loose_str(&s.banner).unwrap_or(""),
            )
        });
        let status = loose_str(&p.status);
        push(
            port_and_protocol(&p.port, &p.proto, line).map(|(port, protocol)| {
                (banner.is_some() || is_open(status)).then_some(PortResult {
                    port,
                    protocol,
                    banner,
                })
            }),
        );
    }
}

/// One `-oL` line: `open tcp 443 1.2.3.4 1629960470` or
/// `banner tcp 443 1.2.3.4 1629960472 ssl TLS/1.1 …` (the banner may hold
/// spaces, so it is everything after the service name).
fn parse_list_line(line: u64, text: &str) -> Option<Item> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed.starts_with('#') {
        return None;
    }
    let mut parts = trimmed.splitn(7, ' ');
    let kind = parts.next().unwrap_or("");
    let reject = |field: Option<&str>, reason: String| {
        Some(Item::Rejected(LineError::new(line, field, reason)))
    };
    match kind {
        "open" | "banner" => {}
        "closed" | "unknown" => return None,
        other => {
            return reject(
                None,
                format!(
                    "unknown masscan list record {} (expected open, closed or banner)",
                    super::fields::quoted(other)
                ),
            );
        }
    }
    let (Some(proto), Some(port), Some(ip), Some(ts)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return reject(None, format!("masscan {kind} record has too few fields"));
    };
    let protocol = match normalise_protocol(proto) {
        Ok(p) => p,
        Err(r) => return reject(Some("proto"), r),
    };
    let port = if protocol == "icmp" {
        0
    } else {
        match parse_port_text(port) {
            Ok(p) => p,
            Err(r) => return reject(Some("port"), r),
        }
    };
    let ip = match parse_ip(ip) {
        Ok(ip) => ip,
        Err(r) => return reject(Some("ip"), r),
    };
    let observed_at = match parse_epoch(ts) {
        Ok(t) => t,
        Err(r) => return reject(Some("timestamp"), r),
    };
    let banner =
        (kind == "banner").then(|| (parts.next().unwrap_or(""), parts.next().unwrap_or("")));
    Some(Item::Observation(
        observation(
            ip,
            observed_at,
            PortResult {
                port,
                protocol,
                banner,
            },
            text,
        ),
        line,
    ))
}

enum Mode {
    Undetected(Option<Box<dyn BufRead + Send>>),
    Json(JsonFraming),
    List(LineReader),
}

/// [`Source`] for masscan output.
pub(crate) struct MasscanSource {
    mode: Mode,
}

impl MasscanSource {
    pub(crate) fn new(input: Box<dyn BufRead + Send>) -> Self {
        Self {
            mode: Mode::Undetected(Some(input)),
        }
    }
}

impl Source for MasscanSource {
    fn fill(&mut self, out: &mut VecDeque<Item>) -> Result<bool, InputError> {
        if let Mode::Undetected(input) = &mut self.mode {
            let Some(mut input) = input.take() else {
                return Ok(false);
            };
            let (first, newlines) = peek_first_non_blank(&mut input)?;
            self.mode = match first {
                // JsonFraming re-detects array vs lines; the blank prefix is
                // gone, so its line count starts after it.
                Some(b'[' | b'{') => Mode::Json(JsonFraming::starting_at(input, newlines + 1)),
                _ => Mode::List(LineReader::new(input, newlines + 1)),
            };
        }
        match &mut self.mode {
            Mode::Undetected(_) => Ok(false),
            Mode::Json(framing) => match framing.next_record()? {
                None => Ok(false),
                Some(JsonRecord::Unreadable(e)) => {
                    out.push_back(Item::Rejected(e));
                    Ok(true)
                }
                Some(JsonRecord::Text { line, text }) => {
                    parse_json_record(line, text, out);
                    Ok(true)
                }
            },
            Mode::List(lines) => match lines.next_line()? {
                None => Ok(false),
                Some(Line::TooLong { line, len }) => {
                    out.push_back(Item::Rejected(too_long(line, len)));
                    Ok(true)
                }
                Some(Line::Text { line }) => {
                    let text = String::from_utf8_lossy(lines.current());
                    if let Some(item) = parse_list_line(line, &text) {
                        out.push_back(item);
                    }
                    Ok(true)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::super::test_support::{
        items, items_until_error, observations, rejections, sample, text,
    };
    use super::*;

    fn check_common(obs: &[&Observation]) {
        assert!(
            obs.iter()
                .all(|o| o.check == CHECK && o.state == ObservationState::Unknown)
        );
        assert!(obs.iter().all(|o| o.ip.to_string() == "93.184.216.34"));
        let icmp: Vec<_> = obs.iter().filter(|o| o.protocol == "icmp").collect();
        assert_eq!(icmp.len(), 1);
        assert_eq!(icmp[0].port, 0);
    }

    #[test]
    fn json_sample() {
        let items = items(&Format::Masscan, sample("masscan/masscan_sample.json"));
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let obs = observations(&items);
        assert_eq!(obs.len(), 8);
        check_common(&obs);
        assert_eq!((obs[0].port, obs[0].protocol.as_str()), (80, "tcp"));
        assert_eq!(obs[0].observed_at.timestamp(), 1629960621);
        assert_eq!(obs[0].evidence, None);
        assert!(obs[0].raw.contains("\"syn-ack\""));

        let banner = obs[3];
        assert_eq!(banner.product.as_deref(), Some("http.server"));
        let ev: serde_json::Value =
            serde_json::from_str(banner.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["service"], "http.server");
        assert_eq!(ev["banner"], "ECS (sec/974D)");

        let x509 = obs[7];
        assert_eq!(x509.product.as_deref(), Some("X509"));
        let ev: serde_json::Value =
            serde_json::from_str(x509.evidence.as_deref().unwrap()).unwrap();
        let b = ev["banner"].as_str().unwrap();
        assert!(
            b.len() <= 1024 + 3 && b.ends_with('…'),
            "banner cut to 1 KiB"
        );
    }

    #[test]
    fn list_sample() {
        let items = items(&Format::Masscan, sample("masscan/masscan_sample.list"));
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let obs = observations(&items);
        assert_eq!(obs.len(), 8);
        check_common(&obs);
        assert_eq!(obs[0].port, 443);
        assert_eq!(obs[0].observed_at.timestamp(), 1629960470);
        assert_eq!(obs[0].raw, "open tcp 443 93.184.216.34 1629960470");
        let ssl = obs[3];
        assert_eq!(ssl.product.as_deref(), Some("ssl"));
        let ev: serde_json::Value = serde_json::from_str(ssl.evidence.as_deref().unwrap()).unwrap();
        assert!(
            ev["banner"]
                .as_str()
                .unwrap()
                .starts_with("TLS/1.1 cipher:0xc013, www.example.org")
        );
        assert_eq!(obs[5].product.as_deref(), Some("http.server"));
        let ev: serde_json::Value =
            serde_json::from_str(obs[5].evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["banner"], "ECS (sec/974D)");
    }

    #[test]
    fn old_masscan_quirks() {
        let input = "[\n{ \"ip\": \"192.0.2.1\", \"timestamp\": \"1629960621\", \"ports\": [ {\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\"} ] },\n{ \"ip\": \"192.0.2.2\", \"timestamp\": 1629960622, \"ports\": [ {\"port\": 81, \"proto\": \"tcp\", \"status\": \"closed\"}, {\"port\": 82, \"proto\": \"tcp\", \"status\": \"open\"} ] },\n{finished: 1}\n]\n";
        let items = items(&Format::Masscan, text(input));
        let obs = observations(&items);
        assert_eq!(obs.len(), 2, "{items:?}");
        assert_eq!(obs[1].port, 82);
        let trailing = "[\n{ \"ip\": \"192.0.2.1\", \"timestamp\": \"1629960621\", \"ports\": [ {\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\"} ] },\n]\n";
        assert_eq!(
            observations(&super::super::test_support::items(
                &Format::Masscan,
                text(trailing)
            ))
            .len(),
            1
        );
    }

    #[test]
    fn ndjson_flavour() {
        let input = "{\"ip\":\"192.0.2.1\",\"timestamp\":\"1629960470\",\"port\":443,\"proto\":\"tcp\",\"rec_type\":\"status\",\"data\":{\"status\":\"open\",\"reason\":\"syn-ack\",\"ttl\":54}}\n{\"ip\":\"192.0.2.1\",\"timestamp\":\"1629960471\",\"port\":443,\"proto\":\"tcp\",\"rec_type\":\"banner\",\"data\":{\"service_name\":\"ssl\",\"banner\":\"TLS/1.2\"}}\n";
        let items = items(&Format::Masscan, text(input));
        let obs = observations(&items);
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[1].product.as_deref(), Some("ssl"));
        assert_eq!(obs[1].port, 443);
    }

    #[test]
    fn bad_records_are_rejected_individually() {
        let input = "#masscan\nopen tcp 443 999.1.1.1 1629960470\nopen tcp 99999 192.0.2.1 1629960470\nopen tcp 1 192.0.2.1 later\nweird tcp\nopen tcp 443\nopen tcp 22 192.0.2.1 1629960470\n# end\n";
        let items = items(&Format::Masscan, text(input));
        let got: Vec<_> = rejections(&items)
            .iter()
            .map(|e| (e.line, e.field.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, Some("ip".into())),
                (3, Some("port".into())),
                (4, Some("timestamp".into())),
                (5, None),
                (6, None)
            ]
        );
        assert_eq!(observations(&items).len(), 1);

        let json = "[\n{\"ip\":\"x\",\"timestamp\":\"1\",\"ports\":[]},\n{\"ip\":\"192.0.2.1\",\"ports\":[{\"port\":1}]},\n{\"ip\":\"192.0.2.1\",\"timestamp\":\"1\",\"ports\":[{\"port\":70000,\"proto\":\"tcp\"},{\"port\":2,\"proto\":\"tcp\"}]}\n]";
        let items = super::super::test_support::items(&Format::Masscan, text(json));
        let got: Vec<_> = rejections(&items)
            .iter()
            .map(|e| (e.line, e.field.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (2, Some("ip".into())),
                (3, Some("timestamp".into())),
                (4, Some("port".into()))
            ]
        );
        assert_eq!(observations(&items).len(), 1);
    }

    #[test]
    fn unterminated_json_is_an_input_error() {
        let (items, err) = items_until_error(
            &Format::Masscan,
            text(
                "[\n{\"ip\":\"192.0.2.1\",\"timestamp\":\"1\",\"ports\":[{\"port\":2,\"proto\":\"tcp\",\"status\":\"open\"}]},\n",
            ),
        );
        assert_eq!(observations(&items).len(), 1);
        assert!(matches!(err, Some(InputError::Malformed { .. })));
    }
}
