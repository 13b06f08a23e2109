//! Input formats the ingest API accepts, and the streaming parsers that turn
//! each into normalised [`Observation`]s.
//!
//! This module owns the public face: [`Format`] (how a request names its
//! format), [`parse`] (the one entry point), [`Item`] (an observation or a
//! per-record rejection) and [`InputError`] (the whole input is unusable).
//! Each format lives in its own file; `input`, `json_array`, `csv_input` and
//! `xml_input` frame records out of a byte stream, `fields` holds the validation and
//! normalisation that several formats share.
//!
//! Every parser streams: it holds at most one record (one line, one array
//! element, one CSV row, one nmap `<host>`) in memory, so a multi-gigabyte
//! upload costs no more memory than a small one.

mod canonical;
mod canonical_csv;
mod csv_input;
mod fields;
mod input;
mod intelmq;
mod json_array;
mod masscan;
mod nmap;
mod nuclei;
pub mod shadowserver;
mod xml_input;

#[cfg(test)]
mod test_support;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead};

use super::observation::{LineError, Observation};

/// An input format the ingest API accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// Canonical observations: NDJSON, or one JSON array (auto-detected: first non-blank byte '[').
    Canonical,
    /// Canonical observations as CSV with the canonical field names as header.
    CanonicalCsv,
    /// Shadowserver report CSV of any type; `report` is the report type, e.g. "scan_exchange" or "event4_sinkhole" (see `shadowserver::report_type`); None = not given (generic check, exposure unless columns/tags say more).
    Shadowserver { report: Option<String> },
    /// nuclei -jsonl or -json-export array (auto-detected), old (<v2.5.3) and new field names.
    Nuclei,
    /// nmap -oX.
    Nmap,
    /// masscan -oJ (JSON array), -oX (XML) or -oL (list), auto-detected.
    Masscan,
    /// IntelMQ events, flat or nested, one per line or body (or a JSON
    /// array); `report` overrides the check the feed table gives.
    IntelMq { report: Option<String> },
}

impl Format {
    /// From a `format` query parameter: "canonical" | "json" | "ndjson" | "csv" | "shadowserver" | "nuclei" | "nmap" | "masscan" | "intelmq". `report` is the optional shadowserver report type parameter (for intelmq: the check of every event).
    ///
    /// Names are case-insensitive; "jsonl" is accepted as a synonym of
    /// "ndjson" and "canonical-csv" of "csv". `report` may also be a
    /// Shadowserver file name, from which the report type is taken.
    pub fn from_name(name: &str, report: Option<&str>) -> Option<Format> {
        Some(match name.trim().to_ascii_lowercase().as_str() {
            "canonical" | "json" | "ndjson" | "jsonl" => Format::Canonical,
            "csv" | "canonical-csv" | "canonical_csv" => Format::CanonicalCsv,
            "shadowserver" => Format::Shadowserver {
                report: report.and_then(normalise_report),
            },
            "nuclei" => Format::Nuclei,
            "nmap" => Format::Nmap,
            "masscan" => Format::Masscan,
            "intelmq" => Format::IntelMq {
                report: report.and_then(normalise_report),
            },
            _ => return None,
        })
    }

    /// From a Content-Type header (parameters like charset ignored): application/json, application/x-ndjson, application/jsonl, text/csv (=CanonicalCsv), application/xml or text/xml (=Nmap). None if not recognised.
    pub fn from_content_type(ct: &str) -> Option<Format> {
        let media = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        Some(match media.as_str() {
            "application/json"
            | "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonl"
            | "application/json-seq" => Format::Canonical,
            "text/csv" => Format::CanonicalCsv,
            "application/xml" | "text/xml" => Format::Nmap,
            _ => return None,
        })
    }

    /// Shadowserver report type from a file name: `2021-03-10-<type>-<rest>.csv`
    /// (Shadowserver's own shape, any type, also one Varsel does not know
    /// yet), `.csv.gz` and `.csv.zip` alike; without the date, a known type
    /// (`scan6_exchange.csv`, `special-no.csv`) or a `scan6?_…` type
    /// anywhere in the name (`report scan_rdp.csv`).
    ///
    /// Directories are ignored and the match is case-insensitive (the result
    /// is lower case). "scan" must start the name or follow a non-alphanumeric
    /// character, so "myscan_x.csv" is not a report name.
    pub fn shadowserver_report_from_filename(name: &str) -> Option<String> {
        let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
        let lower = base.trim().to_ascii_lowercase();
        let stem = [".csv.gz", ".csv.zip", ".csv"]
            .iter()
            .find_map(|ext| lower.strip_suffix(ext))?;
        if let Some(dated) = dated_report_type(stem) {
            return Some(dated.to_owned());
        }
        let first = stem.split('-').next().unwrap_or(stem);
        if shadowserver::report_type(first).is_some() {
            return Some(first.to_owned());
        }
        scan_type_in(&lower)
    }
}

/// The `<type>` of `YYYY-MM-DD-<type>` or `YYYY-MM-DD-<type>-<rest>`.
fn dated_report_type(stem: &str) -> Option<&str> {
    let b = stem.as_bytes();
    let date_shaped = b.len() > 11
        && b[..10].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
        && b[10] == b'-';
    if !date_shaped {
        return None;
    }
    let rest = &stem[11..];
    let report = rest.split('-').next().unwrap_or(rest);
    let usable = !report.is_empty()
        && report
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    usable.then_some(report)
}

/// A `scan6?_[a-z0-9_]+` type before a "-" or ".csv", anywhere in the name.
fn scan_type_in(lower: &str) -> Option<String> {
    let bytes = lower.as_bytes();
    let mut from = 0;
    while let Some(found) = lower[from..].find("scan") {
        let start = from + found;
        from = start + 4;
        if start > 0 && bytes[start - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut i = start + 4;
        if bytes.get(i) == Some(&b'6') {
            i += 1;
        }
        if bytes.get(i) != Some(&b'_') {
            continue;
        }
        i += 1;
        let body_start = i;
        while bytes
            .get(i)
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_')
        {
            i += 1;
        }
        if i == body_start {
            continue;
        }
        let rest = &lower[i..];
        if rest.starts_with('-') || rest.starts_with(".csv") {
            return Some(lower[start..i].to_owned());
        }
    }
    None
}

/// The `report` parameter as a report type: trimmed, lower case, taken from
/// a file name when the client passed one. Empty means "not given".
pub(crate) fn normalise_report(report: &str) -> Option<String> {
    let trimmed = report.trim();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.contains('.') || trimmed.contains('/') {
        if let Some(from_name) = Format::shadowserver_report_from_filename(trimmed) {
            return Some(from_name);
        }
    }
    Some(trimmed.to_ascii_lowercase())
}

/// Whole-input failure: the stream broke (I/O error, e.g. the client disconnected or gzip was truncated) or the input is unreadable as a whole (XML not well formed, JSON array never closed, CSV header missing a required column). The caller aborts the whole batch on this; per-record problems are `LineError`s instead.
#[derive(Debug)]
pub enum InputError {
    /// Reading the stream failed.
    Io(io::Error),
    /// The input as a whole cannot be read as its format; `line` is 1-based.
    Malformed { line: u64, reason: String },
}

impl InputError {
    pub(crate) fn malformed(line: u64, reason: impl Into<String>) -> Self {
        InputError::Malformed {
            line,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Io(e) => write!(f, "reading the input failed: {e}"),
            InputError::Malformed { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

impl std::error::Error for InputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InputError::Io(e) => Some(e),
            InputError::Malformed { .. } => None,
        }
    }
}

impl From<io::Error> for InputError {
    fn from(e: io::Error) -> Self {
        InputError::Io(e)
    }
}

/// One result of parsing: a record that became an observation, or a record
/// that was rejected (and why).
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The observation and the 1-based line its record starts on (as in
    /// [`LineError::line`]), so checks made after parsing, e.g. a time in the
    /// future, can still point at the line.
    Observation(Observation, u64),
    Rejected(LineError),
    /// Something the client should know about the input as a whole that
    /// rejects nothing, e.g. a Shadowserver report type Varsel has no
    /// mapping for (its rows are stored as exposures). Listed once in the
    /// answer's `notes`.
    Note(String),
}

/// Streams the input; never reads it whole. After an Err the iterator ends.
pub fn parse(
    format: &Format,
    input: Box<dyn BufRead + Send>,
) -> Box<dyn Iterator<Item = Result<Item, InputError>> + Send> {
    match format {
        Format::Canonical => Box::new(Driver::new(input::JsonRecordSource::new(
            input,
            canonical::parse_record,
        ))),
        Format::CanonicalCsv => {
            Box::new(Driver::new(canonical_csv::CanonicalCsvSource::new(input)))
        }
        Format::Shadowserver { report } => Box::new(Driver::new(
            shadowserver::ShadowserverSource::new(input, report.clone()),
        )),
        Format::Nuclei => Box::new(Driver::new(input::JsonRecordSource::new(
            input,
            nuclei::parse_record,
        ))),
        Format::Nmap => Box::new(Driver::new(nmap::NmapSource::new(input))),
        Format::Masscan => Box::new(Driver::new(masscan::MasscanSource::new(input))),
        Format::IntelMq { report } => Box::new(Driver::new(intelmq::IntelMqSource::new(
            input,
            report.clone(),
        ))),
    }
}

/// What every format parser implements: read the next record (or a little
/// more) and push what it yields. Keeping the parsers push-based lets one
/// record give several observations (a masscan record with many ports, an
/// nmap host with many ports) without each parser writing its own iterator.
pub(crate) trait Source: Send {
    /// Reads at least one record, pushing zero or more items. `Ok(false)`
    /// once the input is exhausted.
    fn fill(&mut self, out: &mut VecDeque<Item>) -> Result<bool, InputError>;
}

/// Turns a [`Source`] into the iterator [`parse`] returns: items queued before
/// an error are still delivered, then the error, then nothing.
struct Driver<S> {
    source: S,
    pending: VecDeque<Item>,
    failed: Option<InputError>,
    finished: bool,
}

impl<S: Source> Driver<S> {
    fn new(source: S) -> Self {
        Self {
            source,
            pending: VecDeque::new(),
            failed: None,
            finished: false,
        }
    }
}

impl<S: Source> Iterator for Driver<S> {
    type Item = Result<Item, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            if let Some(err) = self.failed.take() {
                return Some(Err(err));
            }
            if self.finished {
                return None;
            }
            match self.source.fill(&mut self.pending) {
                Ok(true) => {}
                Ok(false) => self.finished = true,
                Err(e) => {
                    self.finished = true;
                    self.failed = Some(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for n in ["canonical", "json", "NDJSON", "jsonl"] {
            assert_eq!(Format::from_name(n, None), Some(Format::Canonical));
        }
        assert_eq!(Format::from_name("csv", None), Some(Format::CanonicalCsv));
        assert_eq!(Format::from_name("nuclei", None), Some(Format::Nuclei));
        assert_eq!(Format::from_name("nmap", None), Some(Format::Nmap));
        assert_eq!(Format::from_name("masscan", None), Some(Format::Masscan));
        assert_eq!(
            Format::from_name("IntelMQ", None),
            Some(Format::IntelMq { report: None })
        );
        assert_eq!(
            Format::from_name("intelmq", Some("Scan_Exchange")),
            Some(Format::IntelMq {
                report: Some("scan_exchange".into())
            })
        );
        assert_eq!(
            Format::from_name("shadowserver", Some("Scan_Exchange")),
            Some(Format::Shadowserver {
                report: Some("scan_exchange".into())
            })
        );
        assert_eq!(
            Format::from_name("shadowserver", Some("2021-03-10-scan6_exchange-no.csv")),
            Some(Format::Shadowserver {
                report: Some("scan6_exchange".into())
            })
        );
        assert_eq!(
            Format::from_name("shadowserver", Some(" ")),
            Some(Format::Shadowserver { report: None })
        );
        assert_eq!(Format::from_name("xlsx", None), None);
    }

    #[test]
    fn content_types() {
        for ct in [
            "application/json",
            "application/x-ndjson",
            "application/jsonl; charset=utf-8",
            "Application/JSON;charset=UTF-8",
        ] {
            assert_eq!(
                Format::from_content_type(ct),
                Some(Format::Canonical),
                "{ct}"
            );
        }
        assert_eq!(
            Format::from_content_type("text/csv; header=present"),
            Some(Format::CanonicalCsv)
        );
        assert_eq!(Format::from_content_type("text/xml"), Some(Format::Nmap));
        assert_eq!(
            Format::from_content_type("application/xml"),
            Some(Format::Nmap)
        );
        assert_eq!(Format::from_content_type("text/plain"), None);
        assert_eq!(Format::from_content_type(""), None);
    }

    #[test]
    fn shadowserver_report_names() {
        let f = Format::shadowserver_report_from_filename;
        assert_eq!(
            f("2021-03-10-scan_exchange-no.csv").as_deref(),
            Some("scan_exchange")
        );
        assert_eq!(f("scan6_exchange.csv").as_deref(), Some("scan6_exchange"));
        assert_eq!(
            f("/tmp/up/2023-01-01-scan_rdp-norway-geo.csv").as_deref(),
            Some("scan_rdp")
        );
        assert_eq!(
            f("C:\\x\\2021-03-10-scan_smb-no.csv.gz").as_deref(),
            Some("scan_smb")
        );
        assert_eq!(f("SCAN_HTTP.CSV").as_deref(), Some("scan_http"));
        assert_eq!(f("scan_.csv"), None);
        assert_eq!(f("myscan_x.csv"), None);
        assert_eq!(f("scan_exchange.txt"), None);
        assert_eq!(f("report.csv"), None);
    }

    #[test]
    fn every_report_type_is_recognised_from_its_file_name() {
        let f = Format::shadowserver_report_from_filename;
        for t in shadowserver::report_types() {
            for name in [
                format!("2021-03-10-{}-no.csv", t.name),
                format!("2021-03-10-{}-no-geo.csv.gz", t.name),
                format!("2024-07-04-{}-123-sample-asn.csv.zip", t.name),
                format!("2021-03-10-{}.csv", t.name),
                format!("{}.csv", t.name),
                format!("{}-norway.csv", t.name.to_ascii_uppercase()),
            ] {
                assert_eq!(f(&name).as_deref(), Some(t.name.as_str()), "{name}");
            }
        }
        // New reports keep Shadowserver's shape: recognised before Varsel
        // knows them.
        assert_eq!(
            f("2026-01-05-event4_honeypot_future_scan-no.csv").as_deref(),
            Some("event4_honeypot_future_scan")
        );
        assert_eq!(
            f("2026-01-05-vulnerable_thing.csv.gz").as_deref(),
            Some("vulnerable_thing")
        );
        // Without the date, an unknown non-scan name is not a report name.
        assert_eq!(f("vulnerable_thing.csv"), None);
        assert_eq!(f("2021-03-10-.csv"), None);
        assert_eq!(f("2021-3-10-scan_x.csv").as_deref(), Some("scan_x"));
        assert_eq!(f("2021-03-10-special-no.txt"), None);
        assert_eq!(f("2021-03-10-compromised_website-no.csv.gz.part"), None);
    }

    #[test]
    fn report_parameter_takes_any_type() {
        assert_eq!(
            Format::from_name("shadowserver", Some("Event4_Sinkhole")),
            Some(Format::Shadowserver {
                report: Some("event4_sinkhole".into())
            })
        );
        assert_eq!(
            Format::from_name(
                "shadowserver",
                Some("2021-03-10-compromised_website-no.csv.zip")
            ),
            Some(Format::Shadowserver {
                report: Some("compromised_website".into())
            })
        );
    }

    #[test]
    fn input_error_display() {
        let e = InputError::malformed(3, "JSON array is never closed");
        assert_eq!(e.to_string(), "line 3: JSON array is never closed");
        let e = InputError::Io(io::Error::other("gone"));
        assert_eq!(e.to_string(), "reading the input failed: gone");
    }

    #[test]
    fn parse_is_send_and_streams() {
        fn assert_send<T: Send>(_: &T) {}
        let it = parse(
            &Format::Canonical,
            Box::new(io::Cursor::new(b"\n".to_vec())),
        );
        assert_send(&it);
        assert_eq!(it.count(), 0);
    }
}

#[cfg(test)]
mod robustness {
    //! Cut-off and garbled inputs must give items or an InputError, never a
    //! panic or an endless iterator.

    use super::test_support::formats_dir;
    use super::*;

    fn drain(format: &Format, bytes: Vec<u8>) {
        let reader = io::BufReader::with_capacity(7, io::Cursor::new(bytes));
        let mut n = 0;
        for item in parse(format, Box::new(reader)) {
            n += 1;
            assert!(n < 100_000, "iterator does not end");
            if item.is_err() {
                break;
            }
        }
    }

    #[test]
    fn every_prefix_and_flipped_byte_of_every_sample() {
        let cases = [
            (
                Format::Shadowserver {
                    report: Some("scan_exchange".into()),
                },
                "shadowserver/scan_exchange.csv",
            ),
            (
                Format::Shadowserver { report: None },
                "shadowserver/scan_smb.csv",
            ),
            (
                Format::Shadowserver {
                    report: Some("event4_sinkhole_http".into()),
                },
                "shadowserver/event4_sinkhole_http.csv",
            ),
            (
                Format::Shadowserver {
                    report: Some("special".into()),
                },
                "shadowserver/special.csv",
            ),
            (Format::Nuclei, "nuclei/nuclei_sample_legacy_v2.jsonl"),
            (Format::Nuclei, "nuclei/nuclei_sample_v3.jsonl"),
            (Format::Nmap, "nmap/nmap_sample.xml"),
            (Format::Masscan, "masscan/masscan_sample.json"),
            (Format::Masscan, "masscan/masscan_sample.list"),
            (Format::Masscan, "masscan/masscan_sample.xml"),
            (
                Format::IntelMq { report: None },
                "intelmq/scan_exchange_flat.jsonl",
            ),
            (
                Format::IntelMq { report: None },
                "intelmq/scan_exchange_nested.jsonl",
            ),
        ];
        let mut seed: u32 = 12345;
        for (format, rel) in cases {
            let bytes = std::fs::read(formats_dir().join(rel)).unwrap();
            let step = (bytes.len() / 400).max(1);
            for cut in (0..bytes.len()).step_by(step) {
                drain(&format, bytes[..cut].to_vec());
                let mut garbled = bytes.clone();
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                garbled[cut] = (seed >> 16) as u8;
                drain(&format, garbled);
                // The sample under another parser's rules.
                drain(&Format::Canonical, bytes[..cut].to_vec());
                drain(&Format::CanonicalCsv, bytes[..cut].to_vec());
            }
        }
    }
}

#[cfg(test)]
mod observation_lines {
    use super::test_support::{items, sample};
    use super::*;

    fn lines(format: &Format, rel: &str) -> Vec<u64> {
        items(format, sample(rel))
            .into_iter()
            .filter_map(|i| match i {
                Item::Observation(_, line) => Some(line),
                Item::Rejected(_) | Item::Note(_) => None,
            })
            .collect()
    }

    #[test]
    fn observations_carry_the_line_of_their_record() {
        let exchange = Format::Shadowserver {
            report: Some("scan_exchange".into()),
        };
        assert_eq!(
            lines(&exchange, "shadowserver/scan_exchange.csv"),
            vec![2, 3, 4, 5, 6, 7, 8]
        );
        assert_eq!(
            lines(&Format::Nuclei, "nuclei/nuclei_sample_v3.jsonl"),
            vec![1, 2]
        );
        assert_eq!(lines(&Format::Nmap, "nmap/nmap_sample.xml"), vec![9, 9]);
        assert_eq!(
            lines(&Format::Masscan, "masscan/masscan_sample.json"),
            vec![2, 4, 6, 8, 10, 12, 14, 16]
        );
        assert_eq!(
            lines(&Format::Masscan, "masscan/masscan_sample.list"),
            (2..=9).collect::<Vec<u64>>()
        );
        assert_eq!(
            lines(&Format::Masscan, "masscan/masscan_sample.xml"),
            (5..=12).collect::<Vec<u64>>()
        );
    }
}
