//! The Shadowserver report types Varsel knows (`shadowserver_reports.csv`,
//! compiled in and parsed once): for each type its check id, the state its
//! rows start from, the column that names the host, Shadowserver's default
//! severity and a title for people. The CSV's comment header says how each
//! column was decided and where the facts come from.
//!
//! The Shadowserver parser reads rows by it; the check catalogue names
//! checks by it.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use super::{ObservationState, Severity};

const TABLE_CSV: &str = include_str!("shadowserver_reports.csv");

/// Which column of a report's rows names the host the row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HostColumn {
    /// `ip` (scan, population, compromised, special, … reports).
    Ip,
    /// `src_ip` (event reports: sinkholes, honeypots, DDoS participants).
    SrcIp,
    /// `dst_ip` (reports about the target of an attack).
    DstIp,
    /// `http_referer_ip` (sinkhole referer reports: the referring site).
    HttpRefererIp,
    /// The rows name no address (accounts, ransomware victims by name).
    None,
}

impl HostColumn {
    /// The address column, `None` for [`HostColumn::None`].
    pub fn column(self) -> Option<&'static str> {
        match self {
            Self::Ip => Some("ip"),
            Self::SrcIp => Some("src_ip"),
            Self::DstIp => Some("dst_ip"),
            Self::HttpRefererIp => Some("http_referer_ip"),
            Self::None => None,
        }
    }

    /// What the columns describing the same host start with: `src_ip`
    /// goes with `src_port`, `src_hostname`, `src_asn`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Ip | Self::None => "",
            Self::SrcIp => "src_",
            Self::DstIp => "dst_",
            Self::HttpRefererIp => "http_referer_",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ip" => Self::Ip,
            "src_ip" => Self::SrcIp,
            "dst_ip" => Self::DstIp,
            "http_referer_ip" => Self::HttpRefererIp,
            "none" => Self::None,
            _ => return None,
        })
    }
}

impl fmt::Display for HostColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.column().unwrap_or("none"))
    }
}

/// One Shadowserver report type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportType {
    /// As in the file name `2021-03-10-<name>-<rest>.csv`, e.g. `scan_exchange`.
    pub name: String,
    /// The check id of the report's observations (the type itself).
    pub check: String,
    /// What a row means before the row itself says more.
    pub state: ObservationState,
    pub host: HostColumn,
    /// Shadowserver's default severity; a row's own `severity` wins.
    pub severity: Option<Severity>,
    /// For people, e.g. "Vulnerable Exchange Server".
    pub title: String,
}

#[derive(Debug)]
struct Table {
    types: Vec<ReportType>,
    by_name: HashMap<String, usize>,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    // The table is compiled in, not input; `table_parses` proves it.
    parse_table(TABLE_CSV).expect("shadowserver_reports.csv does not parse")
});

/// The report type called `name` (lower case, as in file names).
pub fn report_type(name: &str) -> Option<&'static ReportType> {
    let table = &*TABLE;
    table.by_name.get(name).map(|&i| &table.types[i])
}

/// Every report type, in the table's order.
pub fn report_types() -> &'static [ReportType] {
    &TABLE.types
}

fn parse_table(text: &str) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new()
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| e.to_string())?.clone();
    let expected = ["type", "state", "host", "severity", "title"];
    if header.iter().ne(expected) {
        return Err(format!("header is {header:?}, not {expected:?}"));
    }
    let mut types = Vec::new();
    let mut by_name = HashMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let line = record.position().map_or(0, |p| p.line());
        let cell = |i: usize| record.get(i).unwrap_or("").trim();
        let name = cell(0);
        let valid_name = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(format!("line {line}: {name:?} is not a report type"));
        }
        let state = ObservationState::parse(cell(1))
            .filter(|s| *s != ObservationState::NotVulnerable)
            .ok_or_else(|| format!("line {line}: state {:?}", cell(1)))?;
        let host =
            HostColumn::parse(cell(2)).ok_or_else(|| format!("line {line}: host {:?}", cell(2)))?;
        let severity = match cell(3) {
            "" => None,
            s => Some(Severity::parse(s).ok_or_else(|| format!("line {line}: severity {s:?}"))?),
        };
        let title = cell(4);
        if title.is_empty() {
            return Err(format!("line {line}: {name} has no title"));
        }
        if by_name.insert(name.to_owned(), types.len()).is_some() {
            return Err(format!("line {line}: {name} is listed twice"));
        }
        types.push(ReportType {
            name: name.to_owned(),
            check: name.to_owned(),
            state,
            host,
            severity,
            title: title.to_owned(),
        });
    }
    Ok(Table { types, by_name })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses() {
        let table = parse_table(TABLE_CSV).unwrap();
        assert!(table.types.len() > 170, "{}", table.types.len());
        assert_eq!(table.types.len(), table.by_name.len(), "no duplicates");
        assert_eq!(report_types().len(), table.types.len());
    }

    #[test]
    fn duplicates_and_bad_cells_are_refused() {
        let header = "type,state,host,severity,title\n";
        let twice = format!("{header}scan_x,unknown,ip,,X\nscan_x,unknown,ip,,X again\n");
        assert!(parse_table(&twice).unwrap_err().contains("listed twice"));
        for bad in [
            "Scan X,unknown,ip,,X",
            "scan_x,broken,ip,,X",
            "scan_x,not_vulnerable,ip,,X",
            "scan_x,unknown,address,,X",
            "scan_x,unknown,ip,urgent,X",
            "scan_x,unknown,ip,,",
        ] {
            assert!(parse_table(&format!("{header}{bad}\n")).is_err(), "{bad}");
        }
        assert!(parse_table("name,state\n").is_err());
    }

    #[test]
    fn families() {
        let exchange = report_type("scan_exchange").unwrap();
        assert_eq!(exchange.check, "scan_exchange");
        assert_eq!(exchange.state, ObservationState::Vulnerable);
        assert_eq!(exchange.host, HostColumn::Ip);
        assert_eq!(exchange.severity, Some(Severity::Critical));
        assert_eq!(exchange.title, "Vulnerable Exchange Server");

        let sinkhole = report_type("event4_sinkhole_http").unwrap();
        assert_eq!(sinkhole.state, ObservationState::Compromised);
        assert_eq!(sinkhole.host, HostColumn::SrcIp);
        assert_eq!(sinkhole.host.prefix(), "src_");

        for compromised in ["compromised_website", "compromised_iot", "event6_sinkhole"] {
            assert_eq!(
                report_type(compromised).unwrap().state,
                ObservationState::Compromised,
                "{compromised}"
            );
        }
        for exposure in [
            "scan_rdp",
            "scan6_ssh",
            "population_bgp",
            "device_id",
            "blocklist",
        ] {
            assert_eq!(
                report_type(exposure).unwrap().state,
                ObservationState::Unknown,
                "{exposure}"
            );
        }
        assert_eq!(
            report_type("event4_honeypot_ddos_target").unwrap().host,
            HostColumn::DstIp
        );
        assert_eq!(
            report_type("event4_sinkhole_http_referer").unwrap().host,
            HostColumn::HttpRefererIp
        );
        assert_eq!(
            report_type("compromised_account").unwrap().host,
            HostColumn::None
        );
        assert_eq!(report_type("special").unwrap().severity, None);
        assert!(report_type("scan_nonexistent").is_none());
        assert!(
            report_type("SCAN_EXCHANGE").is_none(),
            "names are lower case"
        );
    }

    #[test]
    fn every_event_report_names_its_host_by_an_event_column() {
        for t in report_types() {
            if t.name.starts_with("event4_") || t.name.starts_with("event6_") {
                assert_ne!(t.host, HostColumn::Ip, "{}", t.name);
            }
            if t.name.starts_with("scan") || t.name.starts_with("population") {
                assert_eq!(t.host, HostColumn::Ip, "{}", t.name);
            }
        }
    }
}
