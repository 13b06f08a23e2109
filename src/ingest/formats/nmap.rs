//! nmap XML (`-oX`), read as a stream of events one `<host>` at a time.
//!
//! Each open port becomes an `open-port` exposure (service product/version
//! from `<service>`). NSE results become observations of their own, checked
//! by the script id and carrying the port's product and version: scripts
//! that report `State: VULNERABLE` (the nmap `vulns` library) with the CVEs
//! from their `IDs:`, and `vulners`, which lists the CVEs known for the
//! detected version: any CVE listed makes the service vulnerable, with the
//! severity of the highest CVSS score listed. Everything of a host carries
//! the line where its `<host>` starts; a document that is not well formed
//! fails as a whole.

use std::collections::VecDeque;
use std::io::BufRead;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde_json::json;

use super::fields::{
    EvidenceBuilder, clip_text, cves_in_text, evidence_string, normalise_cve, normalise_protocol,
    parse_severity, push_cve, validate_check,
};
use super::xml_input::{LineCounting, attribute, xml_error};
use super::{InputError, Item, Source};
use crate::ingest::observation::{LineError, Observation, ObservationState, Severity};

const OPEN_PORT_CHECK: &str = "open-port";
const VULNERS: &str = "vulners";

// ---------------------------------------------------------------------------
// What a host is made of

#[derive(Debug, Default)]
struct HostAcc {
    line: u64,
    starttime: Option<String>,
    address: Option<String>,
    hostname: Option<String>,
    ports: Vec<PortAcc>,
    host_scripts: Vec<ScriptAcc>,
}

#[derive(Debug, Default)]
struct PortAcc {
    protocol: String,
    portid: String,
    state: Option<String>,
    service: Option<ServiceAcc>,
    scripts: Vec<ScriptAcc>,
}

#[derive(Debug, Default)]
struct ServiceAcc {
    name: Option<String>,
    product: Option<String>,
    version: Option<String>,
    extrainfo: Option<String>,
    tunnel: Option<String>,
    cpes: Vec<String>,
}

#[derive(Debug, Default)]
struct ScriptAcc {
    id: String,
    output: String,
    /// `<table>` frames open inside the script; frame 0 is the script itself.
    frames: Vec<TableFrame>,
    /// Tables with an `id` elem (vulners entries).
    listed: Vec<ListedVuln>,
    /// Tables with a `state` elem (the nmap `vulns` library).
    reported: Vec<ReportedVuln>,
}

#[derive(Debug, Default)]
struct TableFrame {
    key: Option<String>,
    elems: Vec<(Option<String>, String)>,
    /// Values of a child `<table key="ids">`.
    ids: Vec<String>,
}

impl TableFrame {
    fn elem(&self, key: &str) -> Option<&str> {
        self.elems
            .iter()
            .find(|(k, _)| k.as_deref() == Some(key))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct ListedVuln {
    id: String,
    cvss: Option<f64>,
}

#[derive(Debug)]
struct ReportedVuln {
    state: String,
    ids: Vec<String>,
}

impl ScriptAcc {
    fn close_frame(&mut self) {
        let Some(frame) = self.frames.pop() else {
            return;
        };
        if frame.key.as_deref() == Some("ids") {
            if let Some(parent) = self.frames.last_mut() {
                parent.ids.extend(frame.elems.into_iter().map(|(_, v)| v));
            }
            return;
        }
        if let Some(id) = frame.elem("id") {
            self.listed.push(ListedVuln {
                id: id.to_owned(),
                cvss: frame.elem("cvss").and_then(parse_cvss),
            });
        }
        if let Some(state) = frame.elem("state") {
            self.reported.push(ReportedVuln {
                state: state.to_owned(),
                ids: frame.ids.clone(),
            });
        }
    }
}

/// Where the parser is, for the elements whose meaning depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Host,
    Port,
    Service,
    Cpe,
    Script,
    HostScript,
    Table,
    Elem,
    Other,
}

// ---------------------------------------------------------------------------
// The source

pub(crate) struct NmapSource {
    reader: Reader<LineCounting<Box<dyn BufRead + Send>>>,
    buf: Vec<u8>,
    stack: Vec<(Tag, Vec<u8>)>,
    run_start: Option<String>,
    host: Option<HostAcc>,
    seen_root: bool,
    seen_text: bool,
    finished: bool,
}

impl NmapSource {
    pub(crate) fn new(input: Box<dyn BufRead + Send>) -> Self {
        Self {
            reader: Reader::from_reader(LineCounting::new(input)),
            buf: Vec::with_capacity(4096),
            stack: Vec::new(),
            run_start: None,
            host: None,
            seen_root: false,
            seen_text: false,
            finished: false,
        }
    }

    fn counter(&self) -> &LineCounting<Box<dyn BufRead + Send>> {
        self.reader.get_ref()
    }

    fn in_tag(&self, tag: Tag) -> bool {
        self.stack.last().is_some_and(|(t, _)| *t == tag)
    }

    fn script_mut(&mut self) -> Option<&mut ScriptAcc> {
        let host = self.host.as_mut()?;
        // The innermost open script: in a port, or in <hostscript>.
        let in_host_script = self.stack.iter().rev().any(|(t, _)| *t == Tag::HostScript);
        if in_host_script {
            host.host_scripts.last_mut()
        } else {
            host.ports.last_mut()?.scripts.last_mut()
        }
    }

    fn open(&mut self, e: &BytesStart<'_>, line: u64) -> Result<Tag, InputError> {
        let name = e.local_name();
        let name = name.as_ref();
        let attr = |key: &[u8]| attribute(e, key).map_err(|r| InputError::malformed(line, r));
        if !self.seen_root {
            self.seen_root = true;
            if name != b"nmaprun" {
                return Err(InputError::malformed(
                    line,
                    format!(
                        "root element is <{}>, expected <nmaprun> (nmap -oX output)",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
        }
        let parent = self.stack.last().map(|(t, _)| *t);
        let tag = match name {
            b"nmaprun" => {
                self.run_start = attr(b"start")?;
                Tag::Other
            }
            b"host" => {
                self.host = Some(HostAcc {
                    line,
                    starttime: attr(b"starttime")?,
                    ..HostAcc::default()
                });
                Tag::Host
            }
            b"address" => {
                let kind = attr(b"addrtype")?;
                let addr = attr(b"addr")?;
                if let (Some(host), Some(addr)) = (self.host.as_mut(), addr) {
                    // MAC addresses say nothing about where on the internet.
                    let usable = matches!(kind.as_deref(), None | Some("ipv4" | "ipv6"));
                    if usable && host.address.is_none() {
                        host.address = Some(addr);
                    }
                }
                Tag::Other
            }
            b"hostname" => {
                let hostname = attr(b"name")?;
                if let Some(host) = self.host.as_mut() {
                    if host.hostname.is_none() {
                        host.hostname = hostname;
                    }
                }
                Tag::Other
            }
            b"port" => {
                let port = PortAcc {
                    protocol: attr(b"protocol")?.unwrap_or_else(|| "tcp".to_owned()),
                    portid: attr(b"portid")?.unwrap_or_default(),
                    ..PortAcc::default()
                };
                if let Some(host) = self.host.as_mut() {
                    host.ports.push(port);
                }
                Tag::Port
            }
            b"state" if parent == Some(Tag::Port) => {
                let state = attr(b"state")?;
                if let Some(port) = self.host.as_mut().and_then(|h| h.ports.last_mut()) {
                    port.state = state;
                }
                Tag::Other
            }
            b"service" if parent == Some(Tag::Port) => {
                let service = ServiceAcc {
                    name: attr(b"name")?,
                    product: attr(b"product")?,
                    version: attr(b"version")?,
                    extrainfo: attr(b"extrainfo")?,
                    tunnel: attr(b"tunnel")?,
                    cpes: Vec::new(),
                };
                if let Some(port) = self.host.as_mut().and_then(|h| h.ports.last_mut()) {
                    port.service = Some(service);
                }
                Tag::Service
            }
            b"cpe" if parent == Some(Tag::Service) => Tag::Cpe,
            b"hostscript" => Tag::HostScript,
            b"script" if matches!(parent, Some(Tag::Port | Tag::HostScript)) => {
                let script = ScriptAcc {
                    id: attr(b"id")?.unwrap_or_default(),
                    output: attr(b"output")?.unwrap_or_default(),
                    frames: vec![TableFrame::default()],
                    ..ScriptAcc::default()
                };
                if let Some(host) = self.host.as_mut() {
                    if parent == Some(Tag::HostScript) {
                        host.host_scripts.push(script);
                    } else if let Some(port) = host.ports.last_mut() {
                        port.scripts.push(script);
                    }
                }
                Tag::Script
            }
            b"table" if matches!(parent, Some(Tag::Script | Tag::Table)) => {
                let key = attr(b"key")?;
                if let Some(script) = self.script_mut() {
                    script.frames.push(TableFrame {
                        key,
                        ..TableFrame::default()
                    });
                }
                Tag::Table
            }
            b"elem" if matches!(parent, Some(Tag::Script | Tag::Table)) => {
                let key = attr(b"key")?;
                if let Some(frame) = self.script_mut().and_then(|s| s.frames.last_mut()) {
                    frame.elems.push((key, String::new()));
                }
                Tag::Elem
            }
            _ => Tag::Other,
        };
        Ok(tag)
    }

    fn text(&mut self, text: &str) {
        if self.in_tag(Tag::Cpe) {
            if let Some(service) = self
                .host
                .as_mut()
                .and_then(|h| h.ports.last_mut())
                .and_then(|p| p.service.as_mut())
            {
                service.cpes.push(text.trim().to_owned());
            }
        } else if self.in_tag(Tag::Elem) {
            if let Some((_, value)) = self
                .script_mut()
                .and_then(|s| s.frames.last_mut())
                .and_then(|f| f.elems.last_mut())
            {
                value.push_str(text);
            }
        } else if !text.trim().is_empty() && !self.seen_root {
            self.seen_text = true;
        }
    }

    /// Closes the innermost element (an End event, or right after an Empty).
    fn close(&mut self, tag: Tag, out: &mut VecDeque<Item>) -> bool {
        match tag {
            Tag::Table => {
                if let Some(script) = self.script_mut() {
                    script.close_frame();
                }
            }
            Tag::Script => {
                if let Some(script) = self.script_mut() {
                    // Elems directly under <script> (no table) are frame 0.
                    while !script.frames.is_empty() {
                        script.close_frame();
                    }
                }
            }
            Tag::Host => {
                if let Some(host) = self.host.take() {
                    emit_host(host, self.run_start.as_deref(), out);
                    return true;
                }
            }
            _ => {}
        }
        false
    }
}

impl Source for NmapSource {
    fn fill(&mut self, out: &mut VecDeque<Item>) -> Result<bool, InputError> {
        if self.finished {
            return Ok(false);
        }
        loop {
            self.buf.clear();
            let start = self.reader.buffer_position();
            let event = self.reader.read_event_into(&mut self.buf);
            let line = self.reader.get_ref().line_at(start);
            // The event borrows `self.buf`; take what is needed out of it
            // before touching the rest of `self`.
            let step = match event {
                Err(e) => return Err(xml_error(&self.reader, e)),
                Ok(Event::Start(e)) => Step::Open(e.into_owned(), false),
                Ok(Event::Empty(e)) => Step::Open(e.into_owned(), true),
                Ok(Event::End(_)) => Step::Close,
                Ok(Event::Text(t)) => Step::Text(match t.unescape() {
                    Ok(s) => s.into_owned(),
                    Err(_) => String::from_utf8_lossy(&t).into_owned(),
                }),
                Ok(Event::CData(c)) => Step::Text(String::from_utf8_lossy(&c).into_owned()),
                Ok(Event::Eof) => Step::Eof,
                Ok(_) => Step::Skip,
            };
            match step {
                Step::Open(e, empty) => {
                    let tag = self.open(&e, line)?;
                    if empty {
                        if self.close(tag, out) {
                            return Ok(true);
                        }
                    } else {
                        self.stack.push((tag, e.local_name().as_ref().to_vec()));
                    }
                }
                Step::Close => {
                    if let Some((tag, _)) = self.stack.pop() {
                        if self.close(tag, out) {
                            return Ok(true);
                        }
                    }
                }
                Step::Text(t) => self.text(&t),
                Step::Skip => {}
                Step::Eof => {
                    self.finished = true;
                    let line = self.counter().current_line();
                    if let Some((_, name)) = self.stack.last() {
                        return Err(InputError::malformed(
                            line,
                            format!(
                                "XML ends inside <{}> (the scan output is cut off)",
                                String::from_utf8_lossy(name)
                            ),
                        ));
                    }
                    if self.seen_text && !self.seen_root {
                        return Err(InputError::malformed(
                            line,
                            "not XML: expected nmap -oX output",
                        ));
                    }
                    return Ok(false);
                }
            }
        }
    }
}

enum Step {
    Open(BytesStart<'static>, bool),
    Close,
    Text(String),
    Skip,
    Eof,
}

// ---------------------------------------------------------------------------
// From a host to observations

fn emit_host(host: HostAcc, run_start: Option<&str>, out: &mut VecDeque<Item>) {
    let line = host.line;
    let has_results = host
        .ports
        .iter()
        .any(|p| p.state.as_deref() == Some("open"))
        || !host.host_scripts.is_empty();
    if !has_results {
        return;
    }
    let reject =
        |field: &str, reason: String| Item::Rejected(LineError::new(line, Some(field), reason));
    let ip: IpAddr = match host.address.as_deref().map(|a| a.trim().parse()) {
        Some(Ok(ip)) => ip,
        Some(Err(_)) => {
            let addr = host.address.as_deref().unwrap_or("");
            out.push_back(reject(
                "address",
                format!(
                    "{} is not an IPv4 or IPv6 address",
                    super::fields::quoted(addr)
                ),
            ));
            return;
        }
        None => {
            out.push_back(reject(
                "address",
                "host has no IPv4 or IPv6 <address>".to_owned(),
            ));
            return;
        }
    };
    let time = host.starttime.as_deref().or(run_start);
    let observed_at = match time.map(super::fields::parse_epoch) {
        Some(Ok(t)) => t,
        Some(Err(r)) => {
            out.push_back(reject("starttime", r));
            return;
        }
        None => {
            out.push_back(reject(
                "starttime",
                "host has no starttime and <nmaprun> no start".to_owned(),
            ));
            return;
        }
    };
    let hostname = host
        .hostname
        .as_deref()
        .and_then(|h| clip_text(h.trim_end_matches('.')));
    let ctx = HostCtx {
        line,
        ip,
        observed_at,
        hostname,
    };

    for port in &host.ports {
        if port.state.as_deref() != Some("open") {
            continue;
        }
        let portid = match port.portid.trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                out.push_back(reject(
                    "portid",
                    format!(
                        "port {} is not an integer 0–65535",
                        super::fields::quoted(&port.portid)
                    ),
                ));
                continue;
            }
        };
        let protocol = match normalise_protocol(&port.protocol) {
            Ok(p) => p,
            Err(r) => {
                out.push_back(reject("protocol", r));
                continue;
            }
        };
        out.push_back(Item::Observation(
            ctx.open_port(portid, &protocol, port),
            line,
        ));
        for script in &port.scripts {
            if let Some(item) = ctx.script(portid, &protocol, port.service.as_ref(), script) {
                out.push_back(item);
            }
        }
    }
    for script in &host.host_scripts {
        // Host scripts (e.g. smb-vuln-ms17-010) are not tied to a port.
        if let Some(item) = ctx.script(0, "tcp", None, script) {
            out.push_back(item);
        }
    }
}

struct HostCtx {
    line: u64,
    ip: IpAddr,
    observed_at: DateTime<Utc>,
    hostname: Option<String>,
}

impl HostCtx {
    fn base(&self, port: u16, protocol: &str, check: &str, raw: serde_json::Value) -> Observation {
        Observation {
            ip: self.ip,
            port,
            protocol: protocol.to_owned(),
            observed_at: self.observed_at,
            check: check.to_owned(),
            state: ObservationState::Unknown,
            cves: Vec::new(),
            severity: None,
            hostname: self.hostname.clone(),
            product: None,
            version: None,
            asn: None,
            evidence: None,
            raw: raw.to_string(),
        }
    }

    fn open_port(&self, port: u16, protocol: &str, acc: &PortAcc) -> Observation {
        let service = acc.service.as_ref();
        let raw = json!({
            "host": self.ip.to_string(),
            "hostname": self.hostname,
            "port": port,
            "protocol": protocol,
            "state": "open",
            "service": service.map(|s| json!({
                "name": s.name,
                "product": s.product,
                "version": s.version,
            })),
        });
        let mut obs = self.base(port, protocol, OPEN_PORT_CHECK, raw);
        if let Some(s) = service {
            obs.product = s.product.as_deref().and_then(clip_text);
            obs.version = s.version.as_deref().and_then(clip_text);
            let mut ev = EvidenceBuilder::new();
            ev.opt_str("service", s.name.as_deref())
                .opt_str("extrainfo", s.extrainfo.as_deref())
                .opt_str("tunnel", s.tunnel.as_deref())
                .str_list("cpe", s.cpes.iter().map(String::as_str));
            obs.evidence = ev.finish();
        }
        obs
    }

    /// A script's result; `service` is the port's `<service>` (none for
    /// host scripts), whose product and version the result is about.
    fn script(
        &self,
        port: u16,
        protocol: &str,
        service: Option<&ServiceAcc>,
        script: &ScriptAcc,
    ) -> Option<Item> {
        let verdict = if script.id == VULNERS {
            vulners_verdict(script)?
        } else {
            vuln_script_verdict(script)?
        };
        if let Err(r) = validate_check(&script.id) {
            return Some(Item::Rejected(LineError::new(self.line, Some("script"), r)));
        }
        let raw = json!({
            "host": self.ip.to_string(),
            "port": port,
            "protocol": protocol,
            "script": script.id,
            "output": evidence_string(&script.output),
        });
        let mut obs = self.base(port, protocol, &script.id, raw);
        obs.state = verdict.state;
        obs.cves = verdict.cves;
        obs.severity = verdict.severity;
        obs.evidence = verdict.evidence;
        if let Some(s) = service {
            obs.product = s.product.as_deref().and_then(clip_text);
            obs.version = s.version.as_deref().and_then(clip_text);
        }
        Some(Item::Observation(obs, self.line))
    }
}

struct Verdict {
    state: ObservationState,
    cves: Vec<String>,
    severity: Option<Severity>,
    evidence: Option<String>,
}

/// CVSS bands (v3 qualitative ratings); 0 (or no score) rates nothing.
fn severity_from_cvss(cvss: f64) -> Option<Severity> {
    if cvss >= 9.0 {
        Some(Severity::Critical)
    } else if cvss >= 7.0 {
        Some(Severity::High)
    } else if cvss >= 4.0 {
        Some(Severity::Medium)
    } else if cvss > 0.0 {
        Some(Severity::Low)
    } else {
        None
    }
}

/// A CVSS score as vulners writes it; `nan`, `inf` and the like are no score.
fn parse_cvss(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|c| c.is_finite())
}

/// `vulners` lists what is known to affect the detected product version,
/// with CVSS scores. It reports no state of its own: the listing is the
/// verdict, so any CVE in it makes the service vulnerable to that CVE, rated
/// by the highest score listed for a CVE. Entries that are no CVE (exploit
/// database ids, advisories) alone leave the state unknown, rated by their
/// own highest score.
fn vulners_verdict(script: &ScriptAcc) -> Option<Verdict> {
    let mut entries: Vec<(String, Option<f64>)> = script
        .listed
        .iter()
        .map(|v| (v.id.clone(), v.cvss))
        .collect();
    if entries.is_empty() {
        // Older vulners versions write only the output text:
        // "\tCVE-2018-15919\t5.0\thttps://vulners.com/cve/CVE-2018-15919".
        for line in script.output.lines() {
            let mut parts = line.split_whitespace();
            if let (Some(id), Some(score)) = (parts.next(), parts.next()) {
                if let Some(cvss) = parse_cvss(score) {
                    entries.push((id.to_owned(), Some(cvss)));
                }
            }
        }
    }
    if entries.is_empty() {
        return None;
    }
    let mut cves = Vec::new();
    let mut max_cve_cvss: Option<f64> = None;
    let mut max_any_cvss: Option<f64> = None;
    for (id, cvss) in &entries {
        max_any_cvss = max_f64(max_any_cvss, *cvss);
        // Newer vulners also lists a CVE under other databases' ids
        // (`PRION:CVE-2023-38408`): the same CVE.
        let found = cves_in_text(id);
        if !found.is_empty() {
            max_cve_cvss = max_f64(max_cve_cvss, *cvss);
        }
        for cve in found {
            push_cve(&mut cves, cve);
        }
    }
    let (state, cvss) = if cves.is_empty() {
        (ObservationState::Unknown, max_any_cvss)
    } else {
        (ObservationState::Vulnerable, max_cve_cvss)
    };
    let items: Vec<String> = entries
        .iter()
        .map(|(id, cvss)| json!({ "id": evidence_string(id), "cvss": cvss }).to_string())
        .collect();
    let mut ev = EvidenceBuilder::new();
    ev.list("vulners", &items);
    Some(Verdict {
        state,
        cves,
        severity: cvss.and_then(severity_from_cvss),
        evidence: ev.finish(),
    })
}

fn max_f64(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn is_vulnerable_state(state: &str) -> bool {
    let s = state.trim().to_ascii_uppercase();
    s.contains("VULNERABLE") && !s.starts_with("NOT")
}

/// NSE scripts built on the `vulns` library: structured `<table>`s with a
/// `state` elem when present, else the `State:` and `IDs:` lines of the
/// output. Scripts that report no vulnerability state yield nothing.
fn vuln_script_verdict(script: &ScriptAcc) -> Option<Verdict> {
    let mut cves = Vec::new();
    let state = if !script.reported.is_empty() {
        let vulnerable: Vec<&ReportedVuln> = script
            .reported
            .iter()
            .filter(|r| is_vulnerable_state(&r.state))
            .collect();
        let all_not = script.reported.iter().all(|r| {
            r.state
                .trim()
                .to_ascii_uppercase()
                .starts_with("NOT VULNERABLE")
        });
        let relevant: Vec<&ReportedVuln> = if vulnerable.is_empty() {
            script.reported.iter().collect()
        } else {
            vulnerable.clone()
        };
        for r in relevant {
            for id in &r.ids {
                for cve in cves_in_text(id) {
                    push_cve(&mut cves, cve);
                }
            }
        }
        if !vulnerable.is_empty() {
            ObservationState::Vulnerable
        } else if all_not {
            ObservationState::NotVulnerable
        } else {
            return None;
        }
    } else {
        let out = &script.output;
        let state = if out.contains("State: VULNERABLE") || out.contains("LIKELY VULNERABLE") {
            ObservationState::Vulnerable
        } else if out.contains("State: NOT VULNERABLE") {
            ObservationState::NotVulnerable
        } else {
            return None;
        };
        for line in out.lines().filter(|l| l.trim_start().starts_with("IDs:")) {
            for cve in cves_in_text(line) {
                push_cve(&mut cves, cve);
            }
        }
        state
    };
    if cves.is_empty() {
        // `http-vuln-cve2017-5638` names its CVE even when IDs are missing.
        if let Some(cve) = cve_in_script_id(&script.id) {
            cves.push(cve);
        }
    }
    let severity = script.output.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("Risk factor:")?;
        parse_severity(rest.split_whitespace().next()?)
    });
    let mut ev = EvidenceBuilder::new();
    ev.str("script", &script.id)
        .str("output", script.output.trim());
    Some(Verdict {
        state,
        cves,
        severity,
        evidence: ev.finish(),
    })
}

/// `...-cve2017-5638` / `...-cve-2017-7494` in a script id → the CVE id.
fn cve_in_script_id(id: &str) -> Option<String> {
    let lower = id.to_ascii_lowercase();
    let at = lower.find("cve")?;
    let rest = lower[at + 3..].trim_start_matches('-');
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    normalise_cve(&format!("CVE-{}", rest[..end].trim_end_matches('-')))
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::super::test_support::{
        items, items_until_error, observations, rejections, sample, text,
    };
    use super::*;

    #[test]
    fn sample_with_vulners() {
        let items = items(&Format::Nmap, sample("nmap/nmap_sample.xml"));
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let obs = observations(&items);
        assert_eq!(obs.len(), 2, "{obs:#?}");

        let open = obs[0];
        assert_eq!(open.check, OPEN_PORT_CHECK);
        assert_eq!(open.ip.to_string(), "192.168.0.1");
        assert_eq!((open.port, open.protocol.as_str()), (5022, "tcp"));
        assert_eq!(open.state, ObservationState::Unknown);
        assert_eq!(open.product.as_deref(), Some("OpenSSH"));
        assert_eq!(open.version.as_deref(), Some("7.4"));
        assert_eq!(open.observed_at.timestamp(), 1581930450, "host starttime");
        assert_eq!(open.hostname, None);
        let ev: serde_json::Value =
            serde_json::from_str(open.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["service"], "ssh");
        assert_eq!(ev["extrainfo"], "protocol 2.0");
        assert_eq!(ev["cpe"][0], "cpe:/a:openbsd:openssh:7.4");
        let raw: serde_json::Value = serde_json::from_str(&open.raw).unwrap();
        assert_eq!(raw["port"], 5022);
        assert_eq!(raw["service"]["product"], "OpenSSH");

        let vulners = obs[1];
        assert_eq!(vulners.check, VULNERS);
        assert_eq!(vulners.port, 5022);
        assert_eq!(vulners.cves, vec!["CVE-2018-15919", "CVE-2017-15906"]);
        assert_eq!(vulners.state, ObservationState::Vulnerable, "CVEs listed");
        assert_eq!(vulners.severity, Some(Severity::Medium), "highest 5.0");
        assert_eq!(vulners.product.as_deref(), Some("OpenSSH"));
        assert_eq!(vulners.version.as_deref(), Some("7.4"));
        assert_eq!(vulners.observed_at, open.observed_at);
        let ev: serde_json::Value =
            serde_json::from_str(vulners.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["vulners"][0]["id"], "CVE-2018-15919");
        assert_eq!(ev["vulners"][0]["cvss"], 5.0);
        let raw: serde_json::Value = serde_json::from_str(&vulners.raw).unwrap();
        assert_eq!(raw["script"], "vulners");
    }

    #[test]
    fn host_line_numbers() {
        let sample_text = std::fs::read_to_string(
            super::super::test_support::formats_dir().join("nmap/nmap_sample.xml"),
        )
        .unwrap();
        // A broken address makes the host rejected, which shows its line.
        let broken = sample_text.replace("addr=\"192.168.0.1\"", "addr=\"192.168.0.999\"");
        let items = items(&Format::Nmap, text(&broken));
        let rej = rejections(&items);
        assert_eq!(rej.len(), 1);
        assert_eq!((rej[0].line, rej[0].field.as_deref()), (9, Some("address")));
    }

    const HEAD: &str = "<?xml version=\"1.0\"?>\n<nmaprun scanner=\"nmap\" start=\"1615000000\">\n";

    #[test]
    fn vuln_scripts_and_vulners_severity() {
        let xml = format!(
            "{HEAD}<host><address addr=\"192.0.2.1\" addrtype=\"ipv4\"/><address addr=\"00:11:22:33:44:55\" addrtype=\"mac\"/>\
<hostnames><hostname name=\"mail.example.no\" type=\"PTR\"/></hostnames>\n<ports>\
<port protocol=\"tcp\" portid=\"443\"><state state=\"open\"/><service name=\"https\" product=\"Microsoft IIS httpd\" version=\"10.0\"/>\
<script id=\"http-vuln-exchange\" output=\"&#xa;  VULNERABLE:&#xa;  Exchange ProxyLogon&#xa;    State: VULNERABLE&#xa;    IDs:  CVE:CVE-2021-26855&#xa;    Risk factor: Critical&#xa;\"/>\
<script id=\"vulners\" output=\"x\"><table key=\"cpe:/a:x\"><table><elem key=\"id\">CVE-2021-1111</elem><elem key=\"cvss\">9.8</elem></table>\
<table><elem key=\"id\">EDB-ID:1</elem><elem key=\"cvss\">10.0</elem></table><table><elem key=\"id\">CVE-2021-2222</elem><elem key=\"cvss\">4.3</elem></table></table></script>\
<script id=\"http-title\" output=\"Outlook\"/></port>\
<port protocol=\"tcp\" portid=\"80\"><state state=\"closed\"/></port>\
<port protocol=\"udp\" portid=\"53\"><state state=\"open\"/></port></ports>\n\
<hostscript><script id=\"smb-vuln-ms17-010\" output=\"...\"><table key=\"CVE-2017-0143\"><elem key=\"title\">MS17-010</elem><elem key=\"state\">VULNERABLE</elem>\
<table key=\"ids\"><elem>CVE:CVE-2017-0143</elem></table><table key=\"refs\"><elem>https://x/CVE-2017-0144</elem></table></table></script>\
<script id=\"smb-vuln-cve-2017-7494\" output=\"&#xa;  State: NOT VULNERABLE&#xa;\"/></hostscript>\
</host>\n</nmaprun>\n"
        );
        let items = items(&Format::Nmap, text(&xml));
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let obs = observations(&items);
        let summary: Vec<_> = obs
            .iter()
            .map(|o| (o.check.as_str(), o.port, o.state))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("open-port", 443, ObservationState::Unknown),
                ("http-vuln-exchange", 443, ObservationState::Vulnerable),
                ("vulners", 443, ObservationState::Vulnerable),
                ("open-port", 53, ObservationState::Unknown),
                ("smb-vuln-ms17-010", 0, ObservationState::Vulnerable),
                ("smb-vuln-cve-2017-7494", 0, ObservationState::NotVulnerable),
            ]
        );
        assert!(obs.iter().all(|o| o.ip.to_string() == "192.0.2.1"));
        assert!(
            obs.iter()
                .all(|o| o.hostname.as_deref() == Some("mail.example.no"))
        );
        assert!(
            obs.iter().all(|o| o.observed_at.timestamp() == 1615000000),
            "nmaprun start"
        );
        assert_eq!(obs[1].cves, vec!["CVE-2021-26855"]);
        assert_eq!(obs[1].severity, Some(Severity::Critical));
        assert_eq!(obs[2].cves, vec!["CVE-2021-1111", "CVE-2021-2222"]);
        assert_eq!(obs[2].severity, Some(Severity::Critical));
        for o in &obs[..3] {
            assert_eq!(o.product.as_deref(), Some("Microsoft IIS httpd"));
            assert_eq!(o.version.as_deref(), Some("10.0"));
        }
        assert_eq!(obs[3].protocol, "udp");
        assert_eq!(obs[4].cves, vec!["CVE-2017-0143"], "refs are not ids");
        assert_eq!(obs[5].cves, vec!["CVE-2017-7494"], "from the script id");
        assert!(
            obs[4..].iter().all(|o| o.product.is_none()),
            "host scripts have no service"
        );
    }

    /// `vulners` entries: (id, cvss as written).
    type Entries<'a> = &'a [(&'a str, &'a str)];

    /// One port with a `vulners` result of these entries.
    fn vulners_port(entries: Entries<'_>) -> Observation {
        let tables: String = entries
            .iter()
            .map(|(id, cvss)| {
                format!(
                    "<table><elem key=\"id\">{id}</elem><elem key=\"cvss\">{cvss}</elem></table>"
                )
            })
            .collect();
        let xml = format!(
            "{HEAD}<host><address addr=\"192.0.2.7\"/><ports><port protocol=\"tcp\" portid=\"22\"><state state=\"open\"/>\
<service name=\"ssh\" product=\"OpenSSH\" version=\"8.9p1 Ubuntu 3ubuntu0.1\"/>\
<script id=\"vulners\" output=\"x\"><table key=\"cpe:/a:openbsd:openssh:8.9p1\">{tables}</table></script></port></ports></host></nmaprun>\n"
        );
        let items = items(&Format::Nmap, text(&xml));
        let obs = observations(&items);
        assert_eq!(obs.len(), 2, "{items:?}");
        obs[1].clone()
    }

    #[test]
    fn vulners_any_cve_is_vulnerable_rated_by_the_highest_cvss() {
        let cases: [(Entries<'_>, Option<Severity>); 7] = [
            (&[("CVE-2023-0001", "3.9")], Some(Severity::Low)),
            (
                &[("CVE-2023-0001", "0.1"), ("CVE-2023-0002", "4.0")],
                Some(Severity::Medium),
            ),
            (
                &[("CVE-2023-0001", "6.9"), ("CVE-2023-0002", "7.0")],
                Some(Severity::High),
            ),
            (
                &[("CVE-2023-0001", "8.9"), ("CVE-2023-0002", "9.0")],
                Some(Severity::Critical),
            ),
            (&[("CVE-2023-0001", "10.0")], Some(Severity::Critical)),
            (&[("CVE-2023-0001", "0.0")], None),
            // A higher score of an exploit id does not rate the CVEs.
            (
                &[("CVE-2023-0001", "5.0"), ("EDB-ID:51000", "9.8")],
                Some(Severity::Medium),
            ),
        ];
        for (entries, severity) in cases {
            let o = vulners_port(entries);
            assert_eq!(o.check, VULNERS);
            assert_eq!(o.state, ObservationState::Vulnerable, "{entries:?}");
            assert_eq!(o.severity, severity, "{entries:?}");
            assert_eq!(o.cves[0], "CVE-2023-0001");
            assert_eq!(o.product.as_deref(), Some("OpenSSH"));
            assert_eq!(o.version.as_deref(), Some("8.9p1 Ubuntu 3ubuntu0.1"));
        }
    }

    #[test]
    fn vulners_without_cves_is_unknown_and_cves_under_other_ids_count() {
        let o = vulners_port(&[("EDB-ID:51000", "7.5"), ("PACKETSTORM:170000", "nan")]);
        assert_eq!(o.state, ObservationState::Unknown);
        assert!(o.cves.is_empty());
        assert_eq!(o.severity, Some(Severity::High));
        let ev: serde_json::Value = serde_json::from_str(o.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(
            ev["vulners"][1]["cvss"],
            serde_json::Value::Null,
            "nan is no score"
        );

        let o = vulners_port(&[("PRION:CVE-2023-38408", "9.8"), ("CVE-2023-38408", "9.8")]);
        assert_eq!(o.state, ObservationState::Vulnerable);
        assert_eq!(o.cves, vec!["CVE-2023-38408"]);
        assert_eq!(o.severity, Some(Severity::Critical));
    }

    #[test]
    fn vulners_output_text_of_old_versions() {
        let xml = format!(
            "{HEAD}<host><address addr=\"192.0.2.8\"/><ports><port protocol=\"tcp\" portid=\"53\"><state state=\"open\"/>\
<service name=\"domain\" product=\"ISC BIND\" version=\"9.4.2\"/>\
<script id=\"vulners\" output=\"&#xa;  ISC BIND DNS:&#xa;    CVE-2012-1667&#x9;8.5&#x9;https://vulners.com/cve/CVE-2012-1667&#xa;    CVE-2002-0651&#x9;7.5&#x9;https://vulners.com/cve/CVE-2002-0651\"/>\
</port></ports></host></nmaprun>\n"
        );
        let items = items(&Format::Nmap, text(&xml));
        let o = observations(&items)[1];
        assert_eq!(o.state, ObservationState::Vulnerable);
        assert_eq!(o.cves, vec!["CVE-2012-1667", "CVE-2002-0651"]);
        assert_eq!(o.severity, Some(Severity::High));
        assert_eq!(o.product.as_deref(), Some("ISC BIND"));
    }

    #[test]
    fn ill_formed_xml_is_malformed_with_line() {
        let xml = format!(
            "{HEAD}<host starttime=\"1\">\n<address addr=\"192.0.2.1\"/>\n</hots>\n</nmaprun>"
        );
        let (_, err) = items_until_error(&Format::Nmap, text(&xml));
        match err {
            Some(InputError::Malformed { line, reason }) => {
                assert_eq!(line, 5, "{reason}");
                assert!(reason.contains("not well formed"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_xml_is_malformed_after_complete_hosts() {
        let host = "<host starttime=\"1615000000\"><address addr=\"192.0.2.1\"/><ports><port protocol=\"tcp\" portid=\"22\"><state state=\"open\"/></port></ports></host>\n";
        let xml = format!("{HEAD}{host}{host}<host><address addr=");
        let (items, err) = items_until_error(&Format::Nmap, text(&xml));
        assert_eq!(observations(&items).len(), 2);
        assert!(matches!(err, Some(InputError::Malformed { .. })), "{err:?}");
        let (items, err) = items_until_error(&Format::Nmap, text(&format!("{HEAD}{host}")));
        assert_eq!(items.len(), 1);
        assert!(
            matches!(err, Some(InputError::Malformed { ref reason, .. }) if reason.contains("<nmaprun>")),
            "{err:?}"
        );
    }

    #[test]
    fn not_nmap_is_malformed_and_empty_is_nothing() {
        let (_, err) = items_until_error(&Format::Nmap, text("{\"ip\":1}"));
        assert!(matches!(err, Some(InputError::Malformed { .. })));
        let (_, err) = items_until_error(&Format::Nmap, text("<?xml version=\"1.0\"?><other/>"));
        assert!(
            matches!(err, Some(InputError::Malformed { ref reason, .. }) if reason.contains("<other>"))
        );
        assert!(items(&Format::Nmap, text("")).is_empty());
    }

    #[test]
    fn host_without_time_or_bad_port_is_rejected() {
        let xml = "<nmaprun><host><address addr=\"192.0.2.1\"/><ports><port portid=\"22\"><state state=\"open\"/></port></ports></host>\n\
<host starttime=\"5\"><address addr=\"192.0.2.2\"/><ports><port portid=\"x\"><state state=\"open\"/></port><port portid=\"23\"><state state=\"open\"/></port></ports></host></nmaprun>";
        let items = items(&Format::Nmap, text(xml));
        let rej = rejections(&items);
        assert_eq!(
            (rej[0].line, rej[0].field.as_deref()),
            (1, Some("starttime"))
        );
        assert_eq!((rej[1].line, rej[1].field.as_deref()), (2, Some("portid")));
        assert_eq!(observations(&items).len(), 1);
    }

    #[test]
    fn io_error_is_io() {
        let xml = format!("{HEAD}{}", "<!-- padding -->\n".repeat(200));
        let (_, err) = items_until_error(
            &Format::Nmap,
            super::super::test_support::FailingReader::boxed(&xml, 1000),
        );
        assert!(matches!(err, Some(InputError::Io(_))), "{err:?}");
    }
}
