//! Canonical observations as CSV: a header row of canonical field names (any
//! order, unknown columns ignored), one observation per row. Spreadsheet
//! exports are the typical sender, so empty cells mean "absent" and `cves`
//! may be separated by `;`, `,` or whitespace. Validation is the canonical
//! one ([`CanonicalFields`]); this file only maps cells to fields.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;

use super::canonical::{CanonicalFields, Evidence};
use super::csv_input::{CsvRows, row_as_json};
use super::fields::{Loose, StrList};
use super::{InputError, Item, Source};
use crate::ingest::observation::LineError;

/// The canonical columns, in the order [`Columns`] stores their indexes.
const COLUMNS: [&str; 13] = [
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
const REQUIRED: [&str; 3] = ["ip", "observed_at", "check"];
/// A header with Shadowserver's `timestamp` and `ip`/`src_ip` but no
/// `observed_at` is a Shadowserver report sent without its name.
const SHADOWSERVER_HINT: &str = "CSV header has no \"observed_at\" column but \"timestamp\" and \
    an address column: this looks like a Shadowserver report. Name it: \
    ?format=shadowserver&report=scan_exchange (its type), \
    ?filename=2021-03-10-scan_exchange-no.csv (its file name), or a \
    Content-Disposition: attachment; filename=\"2021-03-10-scan_exchange-no.csv\" header";

/// Where each canonical column is in the row (`None`: not in the header).
struct Columns {
    index: [Option<usize>; 13],
    /// Header names as sent, for `raw`.
    names: Vec<String>,
}

impl Columns {
    fn from_header(header: &csv::ByteRecord, line: u64) -> Result<Self, InputError> {
        let mut index = [None; 13];
        let mut names = Vec::with_capacity(header.len());
        for (i, cell) in header.iter().enumerate() {
            let name = String::from_utf8_lossy(cell).trim().to_owned();
            let key = name.to_ascii_lowercase();
            if let Some(c) = COLUMNS.iter().position(|&c| c == key) {
                if index[c].is_some() {
                    return Err(InputError::malformed(
                        line,
                        format!("CSV header has the column {key:?} twice"),
                    ));
                }
                index[c] = Some(i);
            }
            names.push(name);
        }
        let has = |name: &str| names.iter().any(|n| n.eq_ignore_ascii_case(name));
        if !has("observed_at") && has("timestamp") && (has("ip") || has("src_ip")) {
            return Err(InputError::malformed(line, SHADOWSERVER_HINT));
        }
        for (c, required) in COLUMNS.iter().enumerate() {
            if REQUIRED.contains(required) && index[c].is_none() {
                return Err(InputError::malformed(
                    line,
                    format!(
                        "CSV header has no {required:?} column (required: ip, observed_at, check)"
                    ),
                ));
            }
        }
        Ok(Self { index, names })
    }
}

enum State {
    Start(Option<Box<dyn BufRead + Send>>),
    // Boxed: the csv reader is large and the enum lives in the iterator.
    Rows(Box<(CsvRows, Columns)>),
}

/// [`Source`] for canonical CSV.
pub(crate) struct CanonicalCsvSource {
    state: State,
}

impl CanonicalCsvSource {
    pub(crate) fn new(input: Box<dyn BufRead + Send>) -> Self {
        Self {
            state: State::Start(Some(input)),
        }
    }
}

fn parse_row(columns: &Columns, record: &csv::ByteRecord, line: u64) -> Item {
    if record.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
        // Unreachable for csv's own blank lines; this is a row of commas.
        return Item::Rejected(LineError::new(line, None, "row has no values"));
    }
    let mut cells: [Option<&str>; 13] = [None; 13];
    for (c, idx) in columns.index.iter().enumerate() {
        let Some(i) = *idx else { continue };
        let Some(bytes) = record.get(i) else { continue };
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                let s = s.trim();
                if !s.is_empty() {
                    cells[c] = Some(s);
                }
            }
            Err(_) => {
                return Item::Rejected(LineError::new(
                    line,
                    Some(COLUMNS[c]),
                    format!("{} is not valid UTF-8", COLUMNS[c]),
                ));
            }
        }
    }
    let loose = |c: usize| cells[c].map(|s| Loose::Str(Cow::Borrowed(s)));
    let fields = CanonicalFields {
        ip: loose(0),
        port: loose(1),
        protocol: loose(2),
        observed_at: loose(3),
        check: loose(4),
        state: loose(5),
        cves: cells[6].map_or(StrList::Absent, |s| StrList::Text(Cow::Borrowed(s))),
        severity: loose(7),
        hostname: loose(8),
        product: loose(9),
        version: loose(10),
        asn: loose(11),
        evidence: cells[12].map(Evidence::Text),
    };
    match fields.into_observation(line, row_as_json(&columns.names, record)) {
        Ok(obs) => Item::Observation(obs, line),
        Err(e) => Item::Rejected(e),
    }
}

impl Source for CanonicalCsvSource {
    fn fill(&mut self, out: &mut VecDeque<Item>) -> Result<bool, InputError> {
        if let State::Start(input) = &mut self.state {
            let Some(input) = input.take() else {
                return Ok(false);
            };
            let Some((rows, header, line)) = CsvRows::open(input, |_| {})? else {
                return Ok(false);
            };
            let columns = Columns::from_header(&header, line)?;
            self.state = State::Rows(Box::new((rows, columns)));
        }
        let State::Rows(reading) = &mut self.state else {
            return Ok(false);
        };
        let (rows, columns) = &mut **reading;
        match rows.next_row()? {
            None => Ok(false),
            Some((line, record)) => {
                out.push_back(parse_row(columns, record, line));
                Ok(true)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Format;
    use super::super::test_support::{
        FailingReader, items, items_until_error, observations, rejections, text,
    };
    use super::*;
    use crate::ingest::observation::{ObservationState, Severity};

    #[test]
    fn rows_in_any_column_order() {
        let input = "\u{feff}Check,observed_at,IP,port,cves,severity,state,evidence,extra\n\
            exchange-proxylogon,2021-03-05T10:00:00Z,192.0.2.1,443,cve-2021-26855; CVE-2021-27065,high,,\"{\"\"build\"\": \"\"15.2.792\"\"}\",x\n\
            exchange-proxylogon,2021-03-05T10:00:00+01:00,192.0.2.2,,,,not_vulnerable,,\n";
        let items = items(&Format::CanonicalCsv, text(input));
        assert!(rejections(&items).is_empty(), "{items:?}");
        let obs = observations(&items);
        assert_eq!(obs.len(), 2);
        assert_eq!(obs[0].cves, vec!["CVE-2021-26855", "CVE-2021-27065"]);
        assert_eq!(obs[0].severity, Some(Severity::High));
        assert_eq!(
            obs[0].state,
            ObservationState::Vulnerable,
            "empty cell = default"
        );
        assert_eq!(obs[0].evidence.as_deref(), Some(r#"{"build":"15.2.792"}"#));
        let raw: serde_json::Value = serde_json::from_str(&obs[0].raw).unwrap();
        assert_eq!(raw["IP"], "192.0.2.1");
        assert_eq!(raw["extra"], "x");
        assert_eq!(obs[1].port, 0);
        assert_eq!(obs[1].state, ObservationState::NotVulnerable);
        assert_eq!(obs[1].observed_at.to_rfc3339(), "2021-03-05T09:00:00+00:00");
    }

    #[test]
    fn errors_have_csv_line_numbers() {
        let input = "ip,observed_at,check,port,evidence,cves\n\
            192.0.2.1,2021-03-05T10:00:00Z,c,1,,\n\
            999.1.1.1,2021-03-05T10:00:00Z,c,1,,\n\
            \"192.0.2.1\",\"2021-03-05T10:00:00\",c,1,,\n\
            192.0.2.1,2021-03-05T10:00:00Z,c,port,,\n\
            \n\
            192.0.2.1,2021-03-05T10:00:00Z,c,1,\"{bad\",\n\
            192.0.2.1,2021-03-05T10:00:00Z,c,1,[1],\n\
            192.0.2.1,2021-03-05T10:00:00Z,c,1,,CVE-1\n\
            192.0.2.1,2021-03-05T10:00:00Z,,1,,\n\
            192.0.2.1,2021-03-05T10:00:00Z,c,2\n";
        let items = items(&Format::CanonicalCsv, text(input));
        let got: Vec<_> = rejections(&items)
            .iter()
            .map(|e| (e.line, e.field.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            got,
            vec![
                (3, "ip".into()),
                (4, "observed_at".into()),
                (5, "port".into()),
                (7, "evidence".into()),
                (8, "evidence".into()),
                (9, "cves".into()),
                (10, "check".into()),
            ]
        );
        let obs = observations(&items);
        assert_eq!(obs.len(), 2);
        assert_eq!(
            obs[1].port, 2,
            "short row: missing trailing cells are empty"
        );
    }

    #[test]
    fn missing_required_column_is_malformed() {
        let (items, err) = items_until_error(
            &Format::CanonicalCsv,
            text("ip,check,port\n192.0.2.1,c,1\n"),
        );
        assert!(items.is_empty());
        match err {
            Some(InputError::Malformed { line: 1, reason }) => {
                assert!(reason.contains("\"observed_at\""), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert!(
            items_until_error(&Format::CanonicalCsv, text(""))
                .1
                .is_none()
        );
    }

    #[test]
    fn io_error_mid_stream() {
        let row = "192.0.2.1,2021-03-05T10:00:00Z,c\n";
        let input = format!("ip,observed_at,check\n{}", row.repeat(1000));
        let (items, err) =
            items_until_error(&Format::CanonicalCsv, FailingReader::boxed(&input, 5000));
        assert!(!items.is_empty());
        assert!(matches!(err, Some(InputError::Io(_))), "{err:?}");
    }

    #[test]
    fn a_shadowserver_report_without_its_name_says_how_to_name_it() {
        for header in [
            "\"timestamp\",\"ip\",\"port\",\"tag\"",
            "timestamp,protocol,src_ip,src_port,severity",
        ] {
            let input = format!("{header}\n\"2021-03-10 06:42:17\",\"192.0.2.10\",443,\"x\"\n");
            let (items, err) = items_until_error(&Format::CanonicalCsv, text(&input));
            assert!(items.is_empty());
            match err {
                Some(InputError::Malformed { line: 1, reason }) => {
                    assert!(
                        reason.contains("looks like a Shadowserver report"),
                        "{reason}"
                    );
                    assert!(reason.contains("?format=shadowserver&report=scan_exchange"));
                    assert!(reason.contains("?filename=2021-03-10-scan_exchange-no.csv"));
                    assert!(reason.contains("Content-Disposition"));
                }
                other => panic!("{other:?}"),
            }
        }
        // Without an address column it is just a CSV missing observed_at.
        let (_, err) = items_until_error(
            &Format::CanonicalCsv,
            text("timestamp,host\n2021-03-10,x\n"),
        );
        match err {
            Some(InputError::Malformed { reason, .. }) => {
                assert!(reason.contains("no \"ip\" column"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
