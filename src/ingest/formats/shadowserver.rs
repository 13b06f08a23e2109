//! Shadowserver reports (CSV, one report type per file): maps each row to
//! one observation and keeps the rest of the row as evidence. Every report
//! type is read, scan, event (sinkhole, honeypot), compromised-host and
//! special reports alike; the table of types
//! ([`report_type`], `checks/shadowserver_reports.csv`) says which column names the
//! host, the check id, the state a row starts from and the default severity.
//! A row then says more: a web shell or CVE tag, a `*_vulnerable` or
//! implant column, `ssl_poodle=Y`, a `status` of "likely compromised", its
//! own `severity`. A type the table does not have is still stored (as
//! exposures, unless a row says more) with one note saying so.
//!
//! Real reports are messy (tests/fixtures/formats/README.md): mixed quoting,
//! rows shorter than the header, backslash-escaped quotes, `;`- or
//! `,`-separated tags, placeholder values (`ZZ`, ASN 64512). All are
//! tolerated; a row is rejected only when it has no usable address or time.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::csv_input::{CsvRows, row_as_json};
use super::fields::{
    EvidenceBuilder, clip_text, cves_in_text, is_placeholder_asn, is_truthy, normalise_cve,
    normalise_protocol, parse_ip, parse_port_text, push_cve, quoted, validate_check,
};
use super::{InputError, Item, Source};
use crate::ingest::observation::{LineError, Observation, ObservationState, Severity};

pub use crate::checks::shadowserver::{HostColumn, ReportType, report_type, report_types};

/// Check id when the client did not say which report this is.
const GENERIC_CHECK: &str = "shadowserver";
const EXCHANGE_PRODUCT: &str = "Microsoft Exchange Server";
/// The vulnerabilities behind Shadowserver's SSL flag columns.
const POODLE: &str = "CVE-2014-3566";
const FREAK: &str = "CVE-2015-0204";

/// The note for a report type the table does not have.
pub(crate) fn unmapped_note(report: &str) -> String {
    format!(
        "Shadowserver report type {report} is not mapped in Varsel: its rows were stored as \
         exposures (check {report}, state unknown unless a row's tags or columns say more)"
    )
}

/// Columns that become observation fields rather than evidence.
struct Columns {
    names: Vec<String>,
    timestamp: usize,
    /// The address of the host the row is about (`ip`, `src_ip`, …).
    ip: usize,
    port: Option<usize>,
    protocol: Option<usize>,
    hostname: Option<usize>,
    asn: Option<usize>,
    tag: Option<usize>,
    version: Option<usize>,
    product: Option<usize>,
    severity: Option<usize>,
}

impl Columns {
    /// `host` is the table's column for the report; a header without it
    /// (an older layout, a type not in the table) uses `ip`, else `src_ip`.
    fn from_header(
        header: &csv::ByteRecord,
        line: u64,
        report: Option<&ReportType>,
    ) -> Result<Self, InputError> {
        let names: Vec<String> = header
            .iter()
            .map(|c| String::from_utf8_lossy(c).trim().to_ascii_lowercase())
            .collect();
        let find = |name: &str| names.iter().position(|n| n == name);
        let timestamp = find("timestamp").ok_or_else(|| {
            InputError::malformed(
                line,
                "Shadowserver header has no \"timestamp\" column (required: timestamp, and ip or src_ip)",
            )
        })?;
        let preferred = report.map(|r| r.host).filter(|h| *h != HostColumn::None);
        let host = preferred
            .into_iter()
            .chain([HostColumn::Ip, HostColumn::SrcIp])
            .find(|h| h.column().and_then(find).is_some())
            .ok_or_else(|| no_host_column(line, report))?;
        let ip = host
            .column()
            .and_then(find)
            .ok_or_else(|| no_host_column(line, report))?;
        let of_host = |field: &str| find(&format!("{}{field}", host.prefix()));
        Ok(Self {
            timestamp,
            ip,
            port: of_host("port"),
            protocol: find("protocol"),
            hostname: of_host("hostname"),
            asn: of_host("asn"),
            tag: find("tag"),
            version: find("version"),
            product: find("product"),
            severity: find("severity"),
            names,
        })
    }
}

fn no_host_column(line: u64, report: Option<&ReportType>) -> InputError {
    let reason = match report {
        Some(r) if r.host == HostColumn::None => format!(
            "Shadowserver report type {} ({}) names no host address in its rows; Varsel stores \
             observations per address and cannot store it",
            r.name, r.title
        ),
        Some(r) if r.host != HostColumn::Ip && r.host != HostColumn::SrcIp => format!(
            "Shadowserver header has no {:?} column, nor \"ip\" nor \"src_ip\" (the address of \
             the host each row is about)",
            r.host.to_string()
        ),
        _ => "Shadowserver header has neither an \"ip\" nor a \"src_ip\" column (the address of \
              the host each row is about; required: timestamp, and ip or src_ip)"
            .to_owned(),
    };
    InputError::malformed(line, reason)
}

enum State {
    Start(Option<Box<dyn BufRead + Send>>),
    // Boxed: the csv reader is large and the enum lives in the iterator.
    Rows(Box<(CsvRows, Columns)>),
}

/// [`Source`] for Shadowserver CSV.
pub(crate) struct ShadowserverSource {
    state: State,
    report: Option<String>,
    /// The table's entry for `report`; `None` for a type it does not have.
    mapped: Option<&'static ReportType>,
}

impl ShadowserverSource {
    pub(crate) fn new(input: Box<dyn BufRead + Send>, report: Option<String>) -> Self {
        // The same spelling whether the caller went through from_name
        // or built the Format itself.
        let report = report.as_deref().and_then(super::normalise_report);
        Self {
            state: State::Start(Some(input)),
            mapped: report.as_deref().and_then(report_type),
            report,
        }
    }

    fn check(&self) -> &str {
        self.report.as_deref().unwrap_or(GENERIC_CHECK)
    }
}

impl Source for ShadowserverSource {
    fn fill(&mut self, out: &mut VecDeque<Item>) -> Result<bool, InputError> {
        if let State::Start(input) = &mut self.state {
            let Some(input) = input.take() else {
                return Ok(false);
            };
            // Every row would fail on it, so a bad report type fails the input.
            validate_check(self.check()).map_err(|r| {
                InputError::malformed(1, format!("report type is not a usable check id: {r}"))
            })?;
            let configure = |b: &mut csv::ReaderBuilder| {
                // `\"` inside quotes is a quote (not RFC 4180, but Shadowserver
                // writes it); `""` keeps working too.
                b.escape(Some(b'\\')).double_quote(true);
            };
            let Some((rows, header, line)) = CsvRows::open(input, configure)? else {
                return Ok(false);
            };
            let columns = Columns::from_header(&header, line, self.mapped)?;
            if let (Some(report), None) = (&self.report, self.mapped) {
                out.push_back(Item::Note(unmapped_note(report)));
            }
            self.state = State::Rows(Box::new((rows, columns)));
        }
        let check = self.report.as_deref().unwrap_or(GENERIC_CHECK);
        let mapped = self.mapped;
        let State::Rows(reading) = &mut self.state else {
            return Ok(false);
        };
        let (rows, columns) = &mut **reading;
        let Some((line, record)) = rows.next_row()? else {
            return Ok(false);
        };
        let raw = row_as_json(&columns.names, record);
        let row = Row { columns, record };
        out.push_back(match row.observation(check, mapped, line, raw) {
            Ok(obs) => Item::Observation(obs, line),
            Err(e) => Item::Rejected(e),
        });
        Ok(true)
    }
}

struct Row<'r> {
    columns: &'r Columns,
    record: &'r csv::ByteRecord,
}

impl Row<'_> {
    /// The trimmed cell, "" when the row is shorter than the header.
    fn cell(&self, i: usize) -> Cow<'_, str> {
        match self.record.get(i) {
            Some(bytes) => match String::from_utf8_lossy(bytes) {
                Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
                Cow::Owned(s) => Cow::Owned(s.trim().to_owned()),
            },
            None => Cow::Borrowed(""),
        }
    }

    fn opt_cell(&self, i: Option<usize>) -> Cow<'_, str> {
        i.map_or(Cow::Borrowed(""), |i| self.cell(i))
    }

    fn observation(
        &self,
        check: &str,
        mapped: Option<&ReportType>,
        line: u64,
        raw: String,
    ) -> Result<Observation, LineError> {
        let c = self.columns;
        let ip_field = c.names[c.ip].as_str();
        let reject = |field: &str, reason: String| LineError::new(line, Some(field), reason);

        let ip_text = self.cell(c.ip);
        if ip_text.is_empty() {
            return Err(reject(ip_field, format!("{ip_field} is empty")));
        }
        let ip = parse_ip(&ip_text).map_err(|r| reject(ip_field, r))?;
        let observed_at =
            parse_timestamp(&self.cell(c.timestamp)).map_err(|r| reject("timestamp", r))?;
        let port_text = self.opt_cell(c.port);
        let port = if port_text.is_empty() {
            0
        } else {
            let field = c.port.map_or("port", |i| c.names[i].as_str());
            parse_port_text(&port_text).map_err(|r| reject(field, r))?
        };
        let protocol_text = self.opt_cell(c.protocol);
        let protocol = if protocol_text.is_empty() {
            "tcp".to_owned()
        } else {
            normalise_protocol(&protocol_text).map_err(|r| reject("protocol", r))?
        };
        let hostname = clip_text(self.opt_cell(c.hostname).trim_end_matches('.'));
        let asn_text = self.opt_cell(c.asn);
        let asn = asn_text
            .strip_prefix("AS")
            .unwrap_or(&asn_text)
            .parse::<u32>()
            .ok()
            .filter(|a| !is_placeholder_asn(*a));

        let verdict = self.verdict(mapped.map_or(ObservationState::Unknown, |r| r.state));
        let exchange = check.contains("exchange") || verdict.exchange_tag;
        // The row's own severity, else the report's default; a report not in
        // the table about a vulnerable Exchange is still critical.
        let severity = Severity::parse(&self.opt_cell(c.severity))
            .or(mapped.and_then(|r| r.severity))
            .or_else(|| {
                (exchange && verdict.state >= ObservationState::Vulnerable)
                    .then_some(Severity::Critical)
            });
        let version = clip_text(&self.opt_cell(c.version));
        let product = clip_text(&self.opt_cell(c.product))
            .or_else(|| exchange.then(|| EXCHANGE_PRODUCT.to_owned()));

        Ok(Observation {
            ip,
            port,
            protocol,
            observed_at,
            check: check.to_owned(),
            state: verdict.state,
            cves: verdict.cves,
            severity,
            hostname,
            product,
            version,
            asn,
            evidence: self.evidence(),
            raw,
        })
    }

    /// What the row says about the host, starting from what the report
    /// says (`base`): tags first, then flag and status columns. A row only
    /// ever raises the state.
    fn verdict(&self, base: ObservationState) -> Verdict {
        let mut v = Verdict {
            state: base,
            cves: Vec::new(),
            exchange_tag: false,
        };
        if let Some(tag_col) = self.columns.tag {
            let tags = self.cell(tag_col);
            for tag in tags
                .split([';', ','])
                .map(str::trim)
                .filter(|t| !t.is_empty())
            {
                let lower = tag.to_ascii_lowercase();
                // `exchange;webshell`, an `implant` tag (replaced scan_smb's
                // smb_implant column in 2023).
                if lower.contains("webshell") || lower.contains("implant") {
                    v.raise(ObservationState::Compromised);
                }
                if lower == "exchange" {
                    v.exchange_tag = true;
                }
                if let Some(cve) = normalise_cve(&lower) {
                    push_cve(&mut v.cves, cve);
                    v.raise(ObservationState::Vulnerable);
                }
            }
        }
        for (i, name) in self.columns.names.iter().enumerate() {
            if Some(i) == self.columns.tag {
                continue;
            }
            let value = self.cell(i);
            if value.is_empty() {
                continue;
            }
            if name == "ssl_poodle" || name == "freak_vulnerable" {
                if is_truthy(&value) {
                    v.raise(ObservationState::Vulnerable);
                    let cve = if name == "ssl_poodle" { POODLE } else { FREAK };
                    push_cve(&mut v.cves, cve.to_owned());
                }
            } else if (name == "vulnerable" || name.ends_with("_vulnerable")) && is_truthy(&value) {
                v.raise(ObservationState::Vulnerable);
                // `cve_2020_0796_vulnerable` names the CVE it is about.
                for cve in cves_in_text(&name.replace('_', "-")) {
                    push_cve(&mut v.cves, cve);
                }
            } else if (name == "implant" || name.ends_with("_implant")) && is_truthy(&value) {
                // An implant (e.g. DoublePulsar in scan_smb) is a compromise.
                v.raise(ObservationState::Compromised);
            } else if name == "status" {
                // The special report's verdict: "vulnerable", "likely
                // compromised", …
                let status = value.to_ascii_lowercase();
                if status.contains("not ") || status == "unknown" {
                    // "not vulnerable", "unknown": says nothing more.
                } else if status.contains("compromised") {
                    v.raise(ObservationState::Compromised);
                } else if status.contains("vulnerable") {
                    v.raise(ObservationState::Vulnerable);
                }
            } else if name.starts_with("cve") {
                let named = cves_in_text(&name.replace('_', "-"));
                let listed = cves_in_text(&value);
                if !listed.is_empty() {
                    for cve in listed {
                        push_cve(&mut v.cves, cve);
                    }
                    v.raise(ObservationState::Vulnerable);
                } else if !named.is_empty() && is_truthy(&value) {
                    for cve in named {
                        push_cve(&mut v.cves, cve);
                    }
                    v.raise(ObservationState::Vulnerable);
                }
            }
        }
        v
    }

    /// Every non-empty column not already an observation field (so an
    /// event report's `dst_ip`, `dst_port`, `infection` stay here).
    /// Placeholders (`ZZ` geo, zero NAICS/SIC) say nothing and are left
    /// out, and so is the host's ASN: it is either the observation's or a
    /// placeholder.
    fn evidence(&self) -> Option<String> {
        let c = self.columns;
        let consumed = [
            Some(c.timestamp),
            Some(c.ip),
            c.port,
            c.protocol,
            c.hostname,
            c.version,
            c.product,
            c.asn,
            c.severity,
        ];
        let mut ev = EvidenceBuilder::new();
        for (i, name) in c.names.iter().enumerate() {
            if consumed.contains(&Some(i)) || name.is_empty() {
                continue;
            }
            let value = self.cell(i);
            let field = name.rsplit('_').next().unwrap_or(name);
            let placeholder = match field {
                "geo" => value.eq_ignore_ascii_case("ZZ"),
                "naics" | "sic" => value == "0",
                _ => false,
            };
            if !placeholder {
                ev.str(name, &value);
            }
        }
        ev.finish()
    }
}

struct Verdict {
    state: ObservationState,
    cves: Vec<String>,
    exchange_tag: bool,
}

impl Verdict {
    fn raise(&mut self, to: ObservationState) {
        self.state = self.state.max(to);
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (the documented form); an explicit zone or
/// fractional seconds, which newer reports carry, are accepted too.
fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, String> {
    if s.is_empty() {
        return Err("timestamp is empty".to_owned());
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Ok(dt.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, f) {
            return Ok(dt.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(naive.and_utc());
        }
    }
    Err(format!(
        "timestamp {} is not a time like 2021-05-14 00:11:30",
        quoted(s)
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::super::test_support::{items, observations, rejections, sample, text};
    use super::*;

    fn format(report: &str) -> Format {
        Format::Shadowserver {
            report: Some(report.to_owned()),
        }
    }

    #[test]
    fn exchange_sample() {
        let items = items(
            &format("scan_exchange"),
            sample("shadowserver/scan_exchange.csv"),
        );
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        let obs = observations(&items);
        assert_eq!(obs.len(), 7);
        assert!(
            obs.iter()
                .all(|o| o.check == "scan_exchange" && o.port == 443)
        );
        assert!(obs.iter().all(|o| o.protocol == "tcp"));
        assert!(
            obs.iter()
                .all(|o| o.product.as_deref() == Some(EXCHANGE_PRODUCT))
        );
        assert!(obs.iter().all(|o| o.severity == Some(Severity::Critical)));

        let first = obs[0];
        assert_eq!(first.ip.to_string(), "192.0.2.10");
        assert_eq!(first.observed_at.to_rfc3339(), "2021-03-10T06:42:17+00:00");
        assert_eq!(first.state, ObservationState::Vulnerable);
        assert_eq!(first.cves, vec!["CVE-2021-26855"]);
        assert_eq!(first.hostname.as_deref(), Some("owa.fjordnett-xxx.example"));
        assert_eq!(first.asn, Some(64500));
        assert_eq!(first.version.as_deref(), Some("15.2.721"));
        let ev: serde_json::Value =
            serde_json::from_str(first.evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["servername"], "FJN-EXCH2019");
        assert_eq!(ev["tag"], "exchange;cve-2021-26855");
        assert_eq!(
            ev["sector"],
            "Communications, Service Provider, and Hosting Service"
        );
        assert!(ev.get("ip").is_none() && ev.get("asn").is_none());
        let raw: serde_json::Value = serde_json::from_str(&first.raw).unwrap();
        assert_eq!(raw["timestamp"], "2021-03-10 06:42:17");
        assert_eq!(raw["url"], "");

        let compromised: Vec<_> = obs
            .iter()
            .filter(|o| o.state == ObservationState::Compromised)
            .collect();
        assert_eq!(compromised.len(), 2);
        assert_eq!(compromised[0].ip.to_string(), "198.51.100.23");
        assert_eq!(compromised[1].ip.to_string(), "198.51.100.77");
        assert!(compromised.iter().all(|o| o.cves.is_empty()));
        let vulnerable: Vec<_> = obs
            .iter()
            .filter(|o| o.state == ObservationState::Vulnerable)
            .collect();
        assert_eq!(vulnerable.len(), 5);
        assert!(vulnerable.iter().all(|o| o.cves == ["CVE-2021-26855"]));

        // Row 6 has no hostname, row 5 no version: absent, not errors.
        assert_eq!(obs[5].hostname, None);
        assert_eq!(obs[4].version, None);
    }

    #[test]
    fn http_sample_is_exposure_with_protocol_column() {
        let items = items(&format("scan_http"), sample("shadowserver/scan_http.csv"));
        let obs = observations(&items);
        assert_eq!(obs.len(), 2);
        assert!(rejections(&items).is_empty());
        for o in &obs {
            assert_eq!(o.check, "scan_http");
            assert_eq!(o.state, ObservationState::Unknown);
            assert_eq!(o.port, 8080);
            assert_eq!(o.protocol, "tcp");
            // The report's default: the 2021 layout has no severity column.
            assert_eq!(o.severity, Some(Severity::Info));
            assert_eq!(o.product, None);
        }
        assert_eq!(obs[0].asn, Some(64510));
        let ev: serde_json::Value =
            serde_json::from_str(obs[0].evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["server"], "lighttpd/1.4.59");
        assert_eq!(ev["http_code"], "200");
        assert_eq!(obs[1].observed_at.to_rfc3339(), "2021-03-11T04:17:52+00:00");
    }

    #[test]
    fn smb_sample_with_bare_quoting_and_placeholders() {
        let items = items(&format("scan_smb"), sample("shadowserver/scan_smb.csv"));
        let obs = observations(&items);
        assert_eq!(obs.len(), 3);
        assert_eq!(obs[2].ip.to_string(), "10.20.30.43");
        assert_eq!(obs[2].hostname.as_deref(), Some("filer-c.lab.example"));
        assert_eq!(obs[2].port, 445);
        for o in &obs {
            assert_eq!(o.state, ObservationState::Unknown);
            assert_eq!(o.asn, None, "64512 is a placeholder");
            let ev: serde_json::Value =
                serde_json::from_str(o.evidence.as_deref().unwrap()).unwrap();
            assert!(ev.get("geo").is_none(), "ZZ is a placeholder");
            assert_eq!(ev["smb_version_string"], "SMB 3.1.1");
            assert_eq!(ev["smb_implant"], "N");
        }
    }

    #[test]
    fn unknown_report_type_uses_generic_check() {
        let items = items(
            &Format::Shadowserver { report: None },
            sample("shadowserver/scan_smb.csv"),
        );
        assert!(
            observations(&items)
                .iter()
                .all(|o| o.check == GENERIC_CHECK)
        );
    }

    const HEADER: &str = "\"timestamp\",\"ip\",\"port\",\"hostname\",\"tag\",\"asn\",\"geo\",\"region\",\"city\",\"naics\",\"sic\",\"sector\",\"version\",\"servername\",\"url\"\n";

    #[test]
    fn backslash_escaped_quote() {
        let input = format!(
            "{HEADER}\"2021-03-10 01:02:03\",\"10.0.0.1\",443,\"mail.example.no\",\"exchange;cve-2021-26855\",2119,\"NO\",\"OSLO\",\"OSLO\",,,,\"15.2.792\",\"EX \\\"main\\\", old\",\"/owa\"\n"
        );
        let items = items(&format("scan_exchange"), text(&input));
        let obs = observations(&items);
        assert_eq!(obs.len(), 1, "{items:?}");
        let ev: serde_json::Value =
            serde_json::from_str(obs[0].evidence.as_deref().unwrap()).unwrap();
        assert_eq!(ev["servername"], "EX \"main\", old");
        assert_eq!(ev["url"], "/owa");
        assert_eq!(obs[0].version.as_deref(), Some("15.2.792"));
    }

    #[test]
    fn short_row_missing_trailing_values() {
        let input =
            format!("{HEADER}\"2021-03-10 01:02:03\",\"10.0.0.2\",443,,\"exchange;webshell\"\n");
        let items = items(&format("scan_exchange"), text(&input));
        let obs = observations(&items);
        assert_eq!(obs.len(), 1, "{items:?}");
        assert_eq!(obs[0].state, ObservationState::Compromised);
        assert_eq!(obs[0].asn, None);
        assert_eq!(obs[0].version, None);
        assert_eq!(obs[0].hostname, None);
    }

    #[test]
    fn comma_separated_tags_and_flag_columns() {
        let input = "timestamp,ip,port,tag,ssl_poodle_vulnerable,cve_2020_0796_vulnerable\n\
            2021-03-10 01:02:03,10.0.0.3,443,\"exchange,cve-2021-26855,cve-2021-27065\",,\n\
            2021-03-10 01:02:03,10.0.0.4,443,ssl,Y,\n\
            2021-03-10 01:02:03,10.0.0.5,445,smb,N,yes\n\
            2021-03-10 01:02:03,10.0.0.6,443,ssl,N,no\n";
        let items = items(&format("scan_mixed"), text(input));
        let obs = observations(&items);
        assert_eq!(obs.len(), 4);
        assert_eq!(obs[0].state, ObservationState::Vulnerable);
        assert_eq!(obs[0].cves, vec!["CVE-2021-26855", "CVE-2021-27065"]);
        assert_eq!(obs[0].severity, Some(Severity::Critical), "exchange tag");
        assert_eq!(obs[1].state, ObservationState::Vulnerable);
        assert!(obs[1].cves.is_empty());
        assert_eq!(obs[2].state, ObservationState::Vulnerable);
        assert_eq!(obs[2].cves, vec!["CVE-2020-0796"]);
        assert_eq!(obs[3].state, ObservationState::Unknown);
    }

    #[test]
    fn bad_rows_are_rejected_with_line_and_good_rows_survive() {
        let input = format!(
            "{HEADER}\"2021-03-10 01:02:03\",\"999.1.1.1\",443\n\
             \"2021-03-10 01:02:03\",\"10.0.0.7\",443\n\
             \"yesterday\",\"10.0.0.8\",443\n\
             \"2021-03-10 01:02:03\",\"10.0.0.9\",99999\n"
        );
        let items = items(&format("scan_exchange"), text(&input));
        let rej = rejections(&items);
        assert_eq!(observations(&items).len(), 1);
        assert_eq!(rej.len(), 3);
        assert_eq!((rej[0].line, rej[0].field.as_deref()), (2, Some("ip")));
        assert_eq!(
            rej[0].reason,
            "\"999.1.1.1\" is not an IPv4 or IPv6 address"
        );
        assert_eq!(
            (rej[1].line, rej[1].field.as_deref()),
            (4, Some("timestamp"))
        );
        assert_eq!((rej[2].line, rej[2].field.as_deref()), (5, Some("port")));
    }

    #[test]
    fn crlf_report_keeps_line_numbers() {
        let input = format!(
            "{HEADER}\"2021-03-10 01:02:03\",\"10.0.0.1\",443\n\n\"2021-03-10 01:02:03\",\"10.0.0.x\",443\n"
        )
        .replace('\n', "\r\n");
        let items = items(&format("Scan_Exchange"), text(&input));
        let rej = rejections(&items);
        assert_eq!((rej[0].line, rej[0].field.as_deref()), (4, Some("ip")));
        assert_eq!(observations(&items)[0].check, "scan_exchange");
    }

    #[test]
    fn unusable_report_type_is_malformed() {
        let (_, err) = super::super::test_support::items_until_error(
            &format("scan exchange"),
            sample("shadowserver/scan_exchange.csv"),
        );
        assert!(
            matches!(err, Some(InputError::Malformed { line: 1, .. })),
            "{err:?}"
        );
    }

    #[test]
    fn header_without_ip_is_malformed() {
        let (items, err) = super::super::test_support::items_until_error(
            &format("scan_x"),
            text("timestamp,addr\n2021-03-10 01:02:03,10.0.0.1\n"),
        );
        assert!(items.is_empty());
        match err {
            Some(InputError::Malformed { line: 1, reason }) => assert!(reason.contains("\"ip\"")),
            other => panic!("{other:?}"),
        }
    }

    fn states(obs: &[&Observation]) -> Vec<ObservationState> {
        obs.iter().map(|o| o.state).collect()
    }

    fn severities(obs: &[&Observation]) -> Vec<Option<Severity>> {
        obs.iter().map(|o| o.severity).collect()
    }

    fn evidence(o: &Observation) -> serde_json::Value {
        serde_json::from_str(o.evidence.as_deref().unwrap()).unwrap()
    }

    /// A fixture read under its report type: no rejections, no note.
    fn report(report: &str, file: &str) -> Vec<Item> {
        let items = items(&format(report), sample(file));
        assert!(rejections(&items).is_empty(), "{:?}", rejections(&items));
        assert!(
            !items.iter().any(|i| matches!(i, Item::Note(_))),
            "{report} is mapped"
        );
        items
    }

    #[test]
    fn vulnerable_http_report() {
        let items = report(
            "scan_http_vulnerable",
            "shadowserver/scan_http_vulnerable.csv",
        );
        let obs = observations(&items);
        use ObservationState::Vulnerable;
        assert_eq!(states(&obs), [Vulnerable; 3]);
        assert!(obs.iter().all(|o| o.check == "scan_http_vulnerable"));
        assert_eq!(
            severities(&obs),
            [
                Some(Severity::Critical),
                Some(Severity::High),
                Some(Severity::Critical)
            ]
        );
        assert_eq!(obs[0].cves, ["CVE-2024-21887"]);
        assert_eq!(obs[1].cves, ["CVE-2023-3519"], "tags separated by ','");
        assert_eq!(obs[2].ip.to_string(), "2001:db8:10::25");
        assert_eq!((obs[1].port, obs[1].asn), (8443, Some(64501)));
        assert_eq!(obs[0].version.as_deref(), Some("22.3.1"));
        let ev = evidence(obs[0]);
        assert_eq!(ev["detail"], "build 1647 is affected");
        assert!(ev.get("severity").is_none(), "an observation field now");
    }

    #[test]
    fn compromised_website_report() {
        let items = report(
            "compromised_website",
            "shadowserver/compromised_website.csv",
        );
        let obs = observations(&items);
        assert_eq!(states(&obs), [ObservationState::Compromised; 3]);
        assert_eq!(
            severities(&obs),
            [
                Some(Severity::Critical),
                Some(Severity::Critical),
                Some(Severity::High)
            ]
        );
        assert_eq!(obs[0].hostname.as_deref(), Some("www.bakeri-xxx.example"));
        let ev = evidence(obs[0]);
        assert_eq!(ev["category"], "skimmer");
        assert_eq!(
            ev["cc_url"],
            "https://cdn-analytics.skimmer.example/js/a.js"
        );
        assert_eq!(obs[2].ip.to_string(), "2001:db8:20::80");
    }

    #[test]
    fn compromised_iot_report() {
        let items = report("compromised_iot", "shadowserver/compromised_iot.csv");
        let obs = observations(&items);
        assert_eq!(states(&obs), [ObservationState::Compromised; 2]);
        assert_eq!(obs[0].port, 22);
        assert_eq!(obs[1].port, 2222);
        assert!(obs.iter().all(|o| o.check == "compromised_iot"));
        assert_eq!(evidence(obs[1])["device_type"], "router");
    }

    #[test]
    fn special_report_status_says_compromised() {
        let items = report("special", "shadowserver/special.csv");
        let obs = observations(&items);
        use ObservationState::{Compromised, Vulnerable};
        assert_eq!(states(&obs), [Vulnerable, Compromised, Vulnerable]);
        assert!(obs.iter().all(|o| o.cves == ["CVE-2024-3400"]));
        assert_eq!(
            severities(&obs),
            [
                Some(Severity::Critical),
                Some(Severity::Critical),
                Some(Severity::High)
            ]
        );
        assert_eq!(evidence(obs[1])["status"], "likely compromised");
        assert_eq!(obs[2].port, 4443);
    }

    #[test]
    fn sinkhole_event_report_names_the_host_by_src_ip() {
        let items = report(
            "event4_sinkhole_http",
            "shadowserver/event4_sinkhole_http.csv",
        );
        let obs = observations(&items);
        assert_eq!(states(&obs), [ObservationState::Compromised; 3]);
        assert_eq!(
            severities(&obs),
            [
                Some(Severity::Critical),
                Some(Severity::High),
                Some(Severity::Critical)
            ]
        );
        let first = obs[0];
        assert_eq!(first.ip.to_string(), "198.51.100.23");
        assert_eq!(first.port, 49811);
        assert_eq!(
            first.hostname.as_deref(),
            Some("host-23.bredband-xxx.example")
        );
        assert_eq!(first.asn, Some(64508));
        let ev = evidence(first);
        assert_eq!(ev["dst_ip"], "203.0.113.80");
        assert_eq!(ev["dst_port"], "80");
        assert_eq!(ev["infection"], "android.vo1d");
        assert_eq!(ev["http_host"], "update.sinkholed-xxx.example");
        assert_eq!(ev["src_geo"], "NO");
        for consumed in ["src_ip", "src_port", "src_hostname", "src_asn", "severity"] {
            assert!(ev.get(consumed).is_none(), "{consumed}");
        }
        assert!(ev.get("dst_geo").is_none(), "ZZ is a placeholder");
        assert_eq!(obs[2].ip.to_string(), "2001:db8:40::9");
    }

    #[test]
    fn honeypot_brute_force_report() {
        let items = report(
            "event4_honeypot_brute_force",
            "shadowserver/event4_honeypot_brute_force.csv",
        );
        let obs = observations(&items);
        assert_eq!(states(&obs), [ObservationState::Compromised; 2]);
        assert_eq!(obs[0].ip.to_string(), "198.51.100.90");
        assert_eq!(obs[0].port, 40122);
        assert_eq!(obs[0].asn, Some(64510));
        assert_eq!(evidence(obs[0])["dst_port"], "22");
        assert_eq!(evidence(obs[1])["service"], "telnet");
        assert_eq!(
            severities(&obs),
            [Some(Severity::Critical), Some(Severity::High)]
        );
    }

    #[test]
    fn ssl_poodle_report() {
        let items = report("scan_ssl_poodle", "shadowserver/scan_ssl_poodle.csv");
        let obs = observations(&items);
        assert_eq!(states(&obs), [ObservationState::Vulnerable; 2]);
        assert!(obs.iter().all(|o| o.cves == [POODLE]));
        assert!(obs.iter().all(|o| o.severity == Some(Severity::Low)));
        assert_eq!(obs[1].port, 8443);
    }

    #[test]
    fn flag_columns_raise_an_exposure_report() {
        let input = "timestamp,severity,ip,port,ssl_poodle,freak_vulnerable\n\
            2024-06-14 10:00:00,info,192.0.2.1,443,N,N\n\
            2024-06-14 10:00:00,low,192.0.2.2,443,Y,\n\
            2024-06-14 10:00:00,,192.0.2.3,443,N,Y\n\
            2024-06-14 10:00:00,bogus,192.0.2.4,443,,\n";
        let items = items(&format("scan_ssl"), text(input));
        let obs = observations(&items);
        use ObservationState::{Unknown, Vulnerable};
        assert_eq!(states(&obs), [Unknown, Vulnerable, Vulnerable, Unknown]);
        assert_eq!(obs[1].cves, [POODLE]);
        assert_eq!(obs[2].cves, [FREAK]);
        // The row's severity, else scan_ssl's default (info).
        assert_eq!(
            severities(&obs),
            [
                Some(Severity::Info),
                Some(Severity::Low),
                Some(Severity::Info),
                Some(Severity::Info)
            ]
        );
    }

    #[test]
    fn unmapped_report_type_is_stored_with_one_note() {
        let got = items(
            &format("scan_quantum_teleport"),
            sample("shadowserver/scan_http.csv"),
        );
        let notes: Vec<&String> = got
            .iter()
            .filter_map(|i| match i {
                Item::Note(n) => Some(n),
                _ => None,
            })
            .collect();
        assert_eq!(notes.len(), 1, "{got:?}");
        assert!(
            notes[0].contains("scan_quantum_teleport is not mapped"),
            "{}",
            notes[0]
        );
        assert!(matches!(got[0], Item::Note(_)), "before the rows");
        let obs = observations(&got);
        assert_eq!(obs.len(), 2);
        for o in &obs {
            assert_eq!(o.check, "scan_quantum_teleport");
            assert_eq!(o.state, ObservationState::Unknown);
            assert_eq!(o.severity, None);
        }
        // An unmapped event report: src_ip names the host; tags still count.
        let input = "timestamp,protocol,src_ip,src_port,severity,dst_ip,tag\n\
            2026-01-05 00:00:00,tcp,192.0.2.9,4444,medium,203.0.113.1,cve-2025-0001\n";
        let got = items(&format("event4_honeypot_future_scan"), text(input));
        let obs = observations(&got);
        assert_eq!(
            (obs[0].ip.to_string(), obs[0].port),
            ("192.0.2.9".into(), 4444)
        );
        assert_eq!(obs[0].state, ObservationState::Vulnerable);
        assert_eq!(obs[0].severity, Some(Severity::Medium));
        assert_eq!(evidence(obs[0])["dst_ip"], "203.0.113.1");
    }

    #[test]
    fn mapped_host_column_else_ip_else_src_ip() {
        // A legacy-style event report with `ip`: read by ip.
        let input = "timestamp,ip,port,infection\n2021-03-10 00:00:00,192.0.2.5,1234,gozi\n";
        let got = items(&format("event4_sinkhole"), text(input));
        assert_eq!(observations(&got)[0].ip.to_string(), "192.0.2.5");
        // DDoS targets are named by dst_ip, the attacker's C2 is evidence.
        let input = "timestamp,protocol,dst_ip,dst_port,severity,src_ip,src_port\n\
            2024-06-14 00:00:00,udp,192.0.2.6,53,info,203.0.113.9,23\n";
        let got = items(&format("event4_honeypot_ddos_target"), text(input));
        let obs = observations(&got);
        assert_eq!(
            (obs[0].ip.to_string(), obs[0].port),
            ("192.0.2.6".into(), 53)
        );
        assert_eq!(obs[0].state, ObservationState::Unknown);
        assert_eq!(evidence(obs[0])["src_ip"], "203.0.113.9");
        // A bad address is rejected naming its column.
        let input = "timestamp,src_ip\n2024-06-14 00:00:00,192.0.2.x\n2024-06-14 00:00:00,\n";
        let got = items(&format("event4_sinkhole"), text(input));
        let rej = rejections(&got);
        assert_eq!((rej[0].line, rej[0].field.as_deref()), (2, Some("src_ip")));
        assert_eq!(rej[1].reason, "src_ip is empty");
    }

    #[test]
    fn event_header_without_an_address_is_malformed_naming_both() {
        let (items, err) = super::super::test_support::items_until_error(
            &format("event4_sinkhole"),
            text("timestamp,dst_ip,infection\n2024-06-14 00:00:00,203.0.113.1,x\n"),
        );
        assert!(items.is_empty());
        match err {
            Some(InputError::Malformed { line: 1, reason }) => {
                assert!(
                    reason.contains("\"ip\"") && reason.contains("\"src_ip\""),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
        let (_, err) = super::super::test_support::items_until_error(
            &format("compromised_account"),
            text("timestamp,email,severity\n2024-06-14 00:00:00,a@b.example,critical\n"),
        );
        match err {
            Some(InputError::Malformed { reason, .. }) => {
                assert!(reason.contains("names no host address"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dated_compromised_website_name_from_the_brief() {
        // 2021-03-10-compromised_website-no.csv was refused with "CSV header
        // has no observed_at column": its name now says what it is.
        let format = Format::from_name(
            "shadowserver",
            Some("2021-03-10-compromised_website-no.csv"),
        )
        .unwrap();
        let items = items(&format, sample("shadowserver/compromised_website.csv"));
        assert_eq!(observations(&items).len(), 3);
        assert!(
            observations(&items)
                .iter()
                .all(|o| o.state == ObservationState::Compromised)
        );
    }
}
