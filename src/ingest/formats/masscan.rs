//! masscan results: `-oJ` (a JSON array, one port per record, with old
//! masscan's trailing comma and `{finished: 1}` trailer), `--ndjson`/`-oD`
//! (one object per line, `rec_type` status or banner), `-oX` (nmap's XML
//! layout, `<nmaprun scanner="masscan">`, one `<host>` per port) and `-oL`
//! (the list format), told apart by the first non-blank byte. Every open
//! port and every banner is an exposure: check `open-port`, state unknown.

use std::collections::VecDeque;
use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde::Deserialize;
use serde_json::json;

use super::canonical::json_error;
use super::fields::{
    EvidenceBuilder, Loose, clip_text, normalise_protocol, parse_epoch, parse_ip, parse_port,
    parse_port_text,
};
use super::input::{JsonFraming, JsonRecord, Line, LineReader, peek_first_non_blank, too_long};
use super::xml_input::{LineCounting, attribute, xml_error};
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

// ---------------------------------------------------------------------------
// -oX

/// One `<host>` of masscan's XML: masscan writes one per port it saw, with
/// `endtime` (when it saw it) and no `starttime`.
#[derive(Debug, Default)]
struct XmlHost {
    line: u64,
    time: Option<String>,
    address: Option<String>,
    ports: Vec<XmlPort>,
}

#[derive(Debug, Default)]
struct XmlPort {
    protocol: Option<String>,
    portid: Option<String>,
    state: Option<String>,
    reason: Option<String>,
    ttl: Option<String>,
    /// `<service name banner>`: a banner record.
    service: Option<(Option<String>, Option<String>)>,
}

/// Reads masscan `-oX` one `<host>` at a time.
struct XmlSource {
    reader: Reader<LineCounting<Box<dyn BufRead + Send>>>,
    buf: Vec<u8>,
    /// Names of the open elements, innermost last.
    open: Vec<Vec<u8>>,
    run_start: Option<String>,
    host: Option<XmlHost>,
    seen_root: bool,
    finished: bool,
}

impl XmlSource {
    fn new(input: Box<dyn BufRead + Send>, first_line: u64) -> Self {
        Self {
            reader: Reader::from_reader(LineCounting::starting_at(input, first_line)),
            buf: Vec::with_capacity(4096),
            open: Vec::new(),
            run_start: None,
            host: None,
            seen_root: false,
            finished: false,
        }
    }

    /// Reads up to the end of the next `<host>`, pushing what it yields.
    /// `Ok(false)` at the end of the document.
    fn next_host(&mut self, out: &mut VecDeque<Item>) -> Result<bool, InputError> {
        if self.finished {
            return Ok(false);
        }
        loop {
            self.buf.clear();
            let start = self.reader.buffer_position();
            let event = self.reader.read_event_into(&mut self.buf);
            let line = self.reader.get_ref().line_at(start);
            // The event borrows `self.buf`; take it out before using `self`.
            let (element, empty) = match event {
                Err(e) => return Err(xml_error(&self.reader, e)),
                Ok(Event::Start(e)) => (Some(e.into_owned()), false),
                Ok(Event::Empty(e)) => (Some(e.into_owned()), true),
                Ok(Event::End(_)) => (None, false),
                Ok(Event::Eof) => {
                    self.finished = true;
                    if let Some(name) = self.open.last() {
                        return Err(InputError::malformed(
                            self.reader.get_ref().current_line(),
                            format!(
                                "XML ends inside <{}> (the scan output is cut off)",
                                String::from_utf8_lossy(name)
                            ),
                        ));
                    }
                    return Ok(false);
                }
                Ok(_) => continue,
            };
            let name = match element {
                Some(e) => {
                    self.open_element(&e, line)?;
                    if !empty {
                        self.open.push(e.local_name().as_ref().to_vec());
                        continue;
                    }
                    e.local_name().as_ref().to_vec()
                }
                None => match self.open.pop() {
                    Some(name) => name,
                    None => continue,
                },
            };
            if name == b"host" {
                if let Some(host) = self.host.take() {
                    emit_xml_host(host, self.run_start.as_deref(), out);
                    return Ok(true);
                }
            }
        }
    }

    fn open_element(&mut self, e: &BytesStart<'_>, line: u64) -> Result<(), InputError> {
        let name = e.local_name();
        let name = name.as_ref();
        let attr = |key: &[u8]| attribute(e, key).map_err(|r| InputError::malformed(line, r));
        if !self.seen_root {
            self.seen_root = true;
            if name != b"nmaprun" {
                return Err(InputError::malformed(
                    line,
                    format!(
                        "root element is <{}>, expected <nmaprun scanner=\"masscan\"> (masscan -oX output)",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
            if attr(b"scanner")?.as_deref() == Some("nmap") {
                // Read as masscan's, nmap's services and scripts would be lost.
                return Err(InputError::malformed(
                    line,
                    "this is nmap -oX output (<nmaprun scanner=\"nmap\">), not masscan's: send it with ?format=nmap",
                ));
            }
        }
        let in_port = self.open.last().is_some_and(|n| n == b"port");
        match name {
            b"nmaprun" => self.run_start = attr(b"start")?,
            b"host" => {
                self.host = Some(XmlHost {
                    line,
                    time: attr(b"endtime")?.or(attr(b"starttime")?),
                    ..XmlHost::default()
                });
            }
            b"address" => {
                let kind = attr(b"addrtype")?;
                let addr = attr(b"addr")?;
                if let Some(host) = self.host.as_mut() {
                    let usable = matches!(kind.as_deref(), None | Some("ipv4" | "ipv6"));
                    if usable && host.address.is_none() {
                        host.address = addr;
                    }
                }
            }
            b"port" => {
                let port = XmlPort {
                    protocol: attr(b"protocol")?,
                    portid: attr(b"portid")?,
                    ..XmlPort::default()
                };
                if let Some(host) = self.host.as_mut() {
                    host.ports.push(port);
                }
            }
            b"state" if in_port => {
                let (state, reason, ttl) =
                    (attr(b"state")?, attr(b"reason")?, attr(b"reason_ttl")?);
                if let Some(port) = self.host.as_mut().and_then(|h| h.ports.last_mut()) {
                    port.state = state;
                    port.reason = reason;
                    port.ttl = ttl;
                }
            }
            b"service" if in_port => {
                let service = (attr(b"name")?, attr(b"banner")?);
                if let Some(port) = self.host.as_mut().and_then(|h| h.ports.last_mut()) {
                    port.service = Some(service);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn emit_xml_host(host: XmlHost, run_start: Option<&str>, out: &mut VecDeque<Item>) {
    let line = host.line;
    let reject =
        |field: &str, reason: String| Item::Rejected(LineError::new(line, Some(field), reason));
    let ip = match host.address.as_deref().map(parse_ip) {
        Some(Ok(ip)) => ip,
        Some(Err(r)) => return out.push_back(reject("address", r)),
        None => {
            return out.push_back(reject(
                "address",
                "host has no IPv4 or IPv6 <address>".to_owned(),
            ));
        }
    };
    let time = host.time.as_deref().or(run_start);
    let observed_at = match time.map(parse_epoch) {
        Some(Ok(t)) => t,
        Some(Err(r)) => return out.push_back(reject("endtime", r)),
        None => {
            return out.push_back(reject(
                "endtime",
                "host has no endtime and <nmaprun> no start".to_owned(),
            ));
        }
    };
    for port in &host.ports {
        let banner = port.service.as_ref().map(|(name, banner)| {
            (
                name.as_deref().unwrap_or(""),
                banner.as_deref().unwrap_or(""),
            )
        });
        if banner.is_none() && !is_open(port.state.as_deref()) {
            continue;
        }
        let protocol = match port.protocol.as_deref().map(normalise_protocol) {
            Some(Ok(p)) => p,
            Some(Err(r)) => {
                out.push_back(reject("protocol", r));
                continue;
            }
            None => "tcp".to_owned(),
        };
        let number = if protocol == "icmp" {
            0
        } else {
            match port.portid.as_deref().map(parse_port_text) {
                Some(Ok(p)) => p,
                Some(Err(r)) => {
                    out.push_back(reject("portid", r));
                    continue;
                }
                None => {
                    out.push_back(reject("portid", "port has no portid".to_owned()));
                    continue;
                }
            }
        };
        // The record as `-oJ` would have written it, so raw looks alike
        // whichever output the scan was saved as.
        let ttl = port.ttl.as_deref().map(|t| match t.trim().parse::<u64>() {
            Ok(n) => json!(n),
            Err(_) => json!(t),
        });
        let mut entry = json!({
            "port": number,
            "proto": protocol,
            "status": port.state,
            "reason": port.reason,
            "ttl": ttl,
        });
        if let Some((name, text)) = banner {
            entry["service"] = json!({ "name": name, "banner": text });
        }
        let raw = json!({
            "ip": ip.to_string(),
            "timestamp": time,
            "ports": [entry],
        })
        .to_string();
        let result = PortResult {
            port: number,
            protocol,
            banner,
        };
        out.push_back(Item::Observation(
            observation(ip, observed_at, result, &raw),
            line,
        ));
    }
}

enum Mode {
    Undetected(Option<Box<dyn BufRead + Send>>),
    Json(JsonFraming),
    // Boxed: the XML reader's buffers would make every mode as large.
    Xml(Box<XmlSource>),
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
                Some(b'<') => Mode::Xml(Box::new(XmlSource::new(input, newlines + 1))),
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
            Mode::Xml(xml) => xml.next_host(out),
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
    fn xml_sample() {
        let items = items(&Format::Masscan, sample("masscan/masscan_sample.xml"));
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let lines: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Item::Observation(_, line) => Some(*line),
                _ => None,
            })
            .collect();
        assert_eq!(lines, (5..=12).collect::<Vec<u64>>(), "one <host> a line");
        let obs = observations(&items);
        assert_eq!(obs.len(), 8);
        check_common(&obs);
        assert_eq!((obs[1].port, obs[1].protocol.as_str()), (443, "tcp"));
        assert_eq!(obs[1].observed_at.timestamp(), 1629960654, "host endtime");
        assert_eq!(
            (obs[1].product.as_deref(), obs[1].evidence.as_deref()),
            (None, None)
        );
        let raw: serde_json::Value = serde_json::from_str(&obs[1].raw).unwrap();
        assert_eq!(
            raw,
            serde_json::json!({"ip": "93.184.216.34", "timestamp": "1629960654",
                "ports": [{"port": 443, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 54}]})
        );

        let banner = obs[3];
        assert_eq!(banner.port, 80);
        assert_eq!(banner.observed_at.timestamp(), 1629960657);
        assert_eq!(banner.product.as_deref(), Some("http.server"));
        let ev: serde_json::Value =
            serde_json::from_str(banner.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["banner"], "ECS (sec/973B)");
        let raw: serde_json::Value = serde_json::from_str(&banner.raw).unwrap();
        assert_eq!(raw["ports"][0]["service"]["name"], "http.server");
        assert_eq!(obs[7].product.as_deref(), Some("X509"));
    }

    #[test]
    fn xml_quirks() {
        // A blank prefix, IPv6 written as addrtype="ipv4" (masscan's XML
        // output names every address so), a closed port (--show closed), a
        // host without endtime (the run's start) and rejected hosts.
        let xml = "\n\n<?xml version=\"1.0\"?>\r\n<nmaprun scanner=\"masscan\" start=\"1629960000\">\r\n\
<host endtime=\"1629960654\"><address addr=\"2001:db8::5\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"22\"><state state=\"open\" reason=\"syn-ack\" reason_ttl=\"54\"/></port></ports></host>\r\n\
<host endtime=\"1629960654\"><address addr=\"192.0.2.1\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"23\"><state state=\"closed\" reason=\"rst\" reason_ttl=\"54\"/></port></ports></host>\r\n\
<host><address addr=\"192.0.2.2\" addrtype=\"ipv4\"/><ports><port protocol=\"udp\" portid=\"53\"><state state=\"open\" reason=\"response\" reason_ttl=\"54\"/></port></ports></host>\r\n\
<host endtime=\"1629960654\"><address addr=\"192.0.2.999\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"80\"><state state=\"open\"/></port></ports></host>\r\n\
<host endtime=\"1629960654\"><address addr=\"192.0.2.3\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"80000\"><state state=\"open\"/></port></ports></host>\r\n\
<host endtime=\"soon\"><address addr=\"192.0.2.4\" addrtype=\"ipv4\"/><ports><port protocol=\"tcp\" portid=\"80\"><state state=\"open\"/></port></ports></host>\r\n\
</nmaprun>\r\n";
        let items = items(&Format::Masscan, text(xml));
        let obs = observations(&items);
        let got: Vec<_> = obs
            .iter()
            .map(|o| {
                (
                    o.ip.to_string(),
                    o.port,
                    o.protocol.as_str(),
                    o.observed_at.timestamp(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("2001:db8::5".to_owned(), 22, "tcp", 1629960654),
                ("192.0.2.2".to_owned(), 53, "udp", 1629960000),
            ]
        );
        let rej: Vec<_> = rejections(&items)
            .iter()
            .map(|e| (e.line, e.field.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            rej,
            vec![
                (8, "address".to_owned()),
                (9, "portid".to_owned()),
                (10, "endtime".to_owned())
            ]
        );
    }

    #[test]
    fn xml_that_is_not_masscan_or_is_cut_off_is_an_input_error() {
        let (_, err) = items_until_error(&Format::Masscan, sample("nmap/nmap_sample.xml"));
        match err {
            Some(InputError::Malformed { line, reason }) => {
                assert_eq!(line, 5, "{reason}");
                assert!(reason.contains("?format=nmap"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let (_, err) =
            items_until_error(&Format::Masscan, text("<?xml version=\"1.0\"?>\n<scan/>"));
        assert!(
            matches!(err, Some(InputError::Malformed { line: 2, ref reason }) if reason.contains("masscan -oX")),
            "{err:?}"
        );
        let sample_text = std::fs::read_to_string(
            super::super::test_support::formats_dir().join("masscan/masscan_sample.xml"),
        )
        .unwrap();
        let cut = &sample_text[..sample_text.find("<host endtime=\"1629960657\"").unwrap() + 30];
        let (items, err) = items_until_error(&Format::Masscan, text(cut));
        assert_eq!(observations(&items).len(), 3, "the complete hosts");
        assert!(
            matches!(err, Some(InputError::Malformed { line: 8, .. })),
            "{err:?}"
        );
        let (_, err) = items_until_error(
            &Format::Masscan,
            text("<nmaprun scanner=\"masscan\"><host></hots></nmaprun>"),
        );
        assert!(
            matches!(err, Some(InputError::Malformed { ref reason, .. }) if reason.contains("not well formed")),
            "{err:?}"
        );
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
