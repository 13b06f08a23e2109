//! The CSV registry format → [`Snapshot`]: `organisations.csv` and
//! `networks.csv`, as maintained by hand or exported from another register.
//!
//! This file owns the column contract and the per-row checks. Columns are
//! found by header name (any order, case-insensitive, extra columns ignored);
//! a missing required column fails the whole import, because every row would
//! be wrong. A bad row is a [`Rejection`] with its line, and the rest still
//! import.
//!
//! Fields are decoded as UTF-8, or as ISO-8859-1 when a field is not valid
//! UTF-8 (spreadsheets in Norway still save Latin-1, and `ø` must survive).

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read};

use csv::{ByteRecord, ReaderBuilder};

use super::snapshot::{
    ImportedContact, ImportedNetwork, ImportedOrganisation, Rejection, Snapshot,
};
use crate::registry::model::{Cidr, ContactRole, EmailAddress, Language, OrgNumber, Source};

/// Why a CSV import could not run at all (row problems are rejections).
#[derive(Debug)]
pub enum CsvError {
    /// Reading the file failed (including malformed CSV the reader gave up on).
    Io { file: String, source: io::Error },
    /// The header lacks a required column.
    MissingColumn { file: String, column: &'static str },
}

impl fmt::Display for CsvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CsvError::Io { file, source } => write!(f, "{file}: cannot read: {source}"),
            CsvError::MissingColumn { file, column } => {
                write!(
                    f,
                    "{file}: required column {column:?} is missing from the header"
                )
            }
        }
    }
}

impl std::error::Error for CsvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CsvError::Io { source, .. } => Some(source),
            CsvError::MissingColumn { .. } => None,
        }
    }
}

/// Read `organisations` and `networks` (each `(display name, reader)`).
///
/// organisations.csv: required `ref`, `name`; optional `org_number`,
/// `sector`, `email`, `language` (nb|nn|en, default nb), `notes`.
/// networks.csv: required `cidr`, `organisation_ref`; optional `source`
/// (manual|organisation|registry, default registry), `name`.
///
/// A network whose `organisation_ref` is not in organisations.csv is still
/// returned: the organisation may already be in the database.
pub fn read_csv(
    organisations: (String, Box<dyn Read + Send>),
    networks: (String, Box<dyn Read + Send>),
) -> Result<Snapshot, CsvError> {
    let mut snapshot = Snapshot::default();
    read_organisations(organisations.0, organisations.1, &mut snapshot)?;
    read_networks(networks.0, networks.1, &mut snapshot)?;
    Ok(snapshot)
}

/// A CSV file being read: header positions, current record, its decoded
/// fields.
struct Table {
    file: String,
    reader: csv::Reader<Box<dyn Read + Send>>,
    columns: HashMap<String, usize>,
    record: ByteRecord,
}

impl Table {
    fn open(file: String, input: Box<dyn Read + Send>) -> Result<Self, CsvError> {
        let mut reader = ReaderBuilder::new()
            .has_headers(true)
            // Short or long rows are judged field by field, not fatal.
            .flexible(true)
            .from_reader(input);
        let header = match reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => {
                return Err(CsvError::Io {
                    file,
                    source: e.into(),
                });
            }
        };
        let mut columns = HashMap::new();
        for (index, raw) in header.iter().enumerate() {
            let name = decode(raw);
            // Excel's BOM, should the csv reader not have removed it.
            let name = name
                .trim_start_matches('\u{feff}')
                .trim()
                .to_ascii_lowercase();
            // First occurrence wins if a header repeats a name.
            columns.entry(name).or_insert(index);
        }
        Ok(Self {
            file,
            reader,
            columns,
            record: ByteRecord::new(),
        })
    }

    fn require(&self, column: &'static str) -> Result<usize, CsvError> {
        self.columns
            .get(column)
            .copied()
            .ok_or_else(|| CsvError::MissingColumn {
                file: self.file.clone(),
                column,
            })
    }

    fn optional(&self, column: &str) -> Option<usize> {
        self.columns.get(column).copied()
    }

    /// Next record; `Ok(false)` at the end.
    fn next(&mut self) -> Result<bool, CsvError> {
        self.reader
            .read_byte_record(&mut self.record)
            .map_err(|e| CsvError::Io {
                file: self.file.clone(),
                source: e.into(),
            })
    }

    /// 1-based line where the current record starts.
    fn line(&self) -> u64 {
        self.record.position().map_or(0, csv::Position::line)
    }

    /// The trimmed field in `column`, empty when the column or the field is
    /// absent.
    fn field(&self, column: Option<usize>) -> String {
        column
            .and_then(|i| self.record.get(i))
            .map(|raw| decode(raw).trim().to_owned())
            .unwrap_or_default()
    }

    /// Skip rows with no content at all (a trailing `,,,` line from a
    /// spreadsheet) rather than rejecting them.
    fn is_blank(&self) -> bool {
        self.record.iter().all(|f| f.trim_ascii().is_empty())
    }

    fn reject(&self, snapshot: &mut Snapshot, problems: &[String]) {
        snapshot.rejected.push(Rejection {
            file: self.file.clone(),
            line: self.line(),
            reason: problems.join("; "),
        });
    }
}

fn read_organisations(
    file: String,
    input: Box<dyn Read + Send>,
    snapshot: &mut Snapshot,
) -> Result<(), CsvError> {
    let mut table = Table::open(file, input)?;
    let col_ref = table.require("ref")?;
    let col_name = table.require("name")?;
    let col_org_number = table.optional("org_number");
    let col_sector = table.optional("sector");
    let col_email = table.optional("email");
    let col_language = table.optional("language");
    // `notes` is part of the format but the snapshot has nowhere to put it
    // yet; recognising it keeps it from looking like a typo.
    let _col_notes = table.optional("notes");

    // ref → line of its first row (accepted or not): a second row for the
    // same ref is ambiguous, so it is refused rather than merged.
    let mut seen: HashMap<String, u64> = HashMap::new();
    while table.next()? {
        if table.is_blank() {
            continue;
        }
        let line = table.line();
        let mut problems = Vec::new();

        let reference = table.field(Some(col_ref));
        if reference.is_empty() {
            problems.push("ref: empty".to_owned());
        } else if let Some(first) = seen.get(&reference) {
            problems.push(format!(
                "ref: duplicate ref {reference:?} (first on line {first})"
            ));
        } else {
            seen.insert(reference.clone(), line);
        }

        let name = table.field(Some(col_name));
        if name.is_empty() {
            problems.push("name: empty".to_owned());
        }

        let org_number = table.field(col_org_number);
        let org_number = if org_number.is_empty() {
            None
        } else {
            match OrgNumber::parse(&org_number) {
                Ok(n) => Some(n),
                Err(e) => {
                    problems.push(format!("org_number: {e}"));
                    None
                }
            }
        };

        let sector = Some(table.field(col_sector)).filter(|s| !s.is_empty());

        let language = table.field(col_language);
        let language = if language.is_empty() {
            Language::Nb
        } else {
            Language::parse(&language.to_ascii_lowercase()).unwrap_or_else(|e| {
                problems.push(format!("language: {e}"));
                Language::Nb
            })
        };

        let email = table.field(col_email);
        let mut contacts = Vec::new();
        if !email.is_empty() {
            match EmailAddress::parse(&email) {
                Ok(email) => contacts.push(ImportedContact {
                    email,
                    name: None,
                    role: ContactRole::Security,
                    language,
                }),
                Err(e) => problems.push(format!("email: {e}")),
            }
        }

        if !problems.is_empty() {
            table.reject(snapshot, &problems);
            continue;
        }
        snapshot.organisations.push(ImportedOrganisation {
            reference,
            name,
            org_number,
            sector,
            contacts,
        });
    }
    Ok(())
}

fn read_networks(
    file: String,
    input: Box<dyn Read + Send>,
    snapshot: &mut Snapshot,
) -> Result<(), CsvError> {
    let mut table = Table::open(file, input)?;
    let col_cidr = table.require("cidr")?;
    let col_ref = table.require("organisation_ref")?;
    let col_source = table.optional("source");
    let col_name = table.optional("name");

    // (cidr, source) → line of its first row: at equal prefix and source,
    // two owners cannot both win attribution, so the later row is refused.
    let mut seen: HashMap<(Cidr, Source), u64> = HashMap::new();
    while table.next()? {
        if table.is_blank() {
            continue;
        }
        let line = table.line();
        let mut problems = Vec::new();

        let cidr_text = table.field(Some(col_cidr));
        let cidr = if cidr_text.is_empty() {
            problems.push("cidr: empty".to_owned());
            None
        } else {
            Cidr::parse(&cidr_text)
                .map_err(|e| problems.push(format!("cidr: {e}")))
                .ok()
        };

        let organisation_ref = table.field(Some(col_ref));
        if organisation_ref.is_empty() {
            problems.push("organisation_ref: empty".to_owned());
        }

        let source = table.field(col_source);
        let source = if source.is_empty() {
            Some(Source::Registry)
        } else {
            Source::parse(&source.to_ascii_lowercase())
                .map_err(|e| problems.push(format!("source: {e}")))
                .ok()
        };

        if let (Some(cidr), Some(source)) = (cidr, source) {
            if let Some(first) = seen.get(&(cidr, source)) {
                problems.push(format!(
                    "cidr: duplicate {cidr} with source {source} (first on line {first})"
                ));
            } else if problems.is_empty() {
                seen.insert((cidr, source), line);
            }
        }

        let (Some(cidr), Some(source), true) = (cidr, source, problems.is_empty()) else {
            table.reject(snapshot, &problems);
            continue;
        };
        let name = Some(table.field(col_name)).filter(|n| !n.is_empty());
        snapshot.networks.push(ImportedNetwork {
            cidr: cidr.net(),
            organisation_ref,
            source,
            name,
        });
    }
    Ok(())
}

/// UTF-8, or ISO-8859-1 when the bytes are not valid UTF-8.
fn decode(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(raw.iter().map(|&b| char::from(b)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn input(name: &str, text: &str) -> (String, Box<dyn Read + Send>) {
        (
            name.to_owned(),
            Box::new(Cursor::new(text.as_bytes().to_vec())),
        )
    }

    fn read(orgs: &str, nets: &str) -> Result<Snapshot, CsvError> {
        read_csv(
            input("organisations.csv", orgs),
            input("networks.csv", nets),
        )
    }

    const NETS_HEADER: &str = "cidr,organisation_ref,source\n";

    #[test]
    fn good_rows() {
        let s = read(
            "ref,name,org_number,sector,email,language\n\
             O1,Eksempel AS,974760673,energy,Security@Eksempel.NO,en\n\
             O2,\"Bare navn, AS\",,,,\n",
            "organisation_ref,name,cidr,extra\n\
             O1,main,192.0.2.0/24,x\n\
             O9,,2001:db8::/32,y\n",
        )
        .unwrap();
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        assert_eq!(s.organisations.len(), 2);
        let o1 = &s.organisations[0];
        assert_eq!(o1.reference, "O1");
        assert_eq!(
            o1.org_number.as_ref().map(OrgNumber::as_str),
            Some("974760673")
        );
        assert_eq!(o1.sector.as_deref(), Some("energy"));
        assert_eq!(
            o1.contacts,
            vec![ImportedContact {
                email: EmailAddress::parse("Security@eksempel.no").unwrap(),
                name: None,
                role: ContactRole::Security,
                language: Language::En,
            }]
        );
        let o2 = &s.organisations[1];
        assert_eq!(o2.name, "Bare navn, AS");
        assert_eq!((o2.org_number.clone(), o2.sector.clone()), (None, None));
        assert!(o2.contacts.is_empty());

        assert_eq!(
            s.networks,
            vec![
                ImportedNetwork {
                    cidr: "192.0.2.0/24".parse().unwrap(),
                    organisation_ref: "O1".into(),
                    source: Source::Registry,
                    name: Some("main".into()),
                },
                // Unknown organisation: still returned, the database decides.
                ImportedNetwork {
                    cidr: "2001:db8::/32".parse().unwrap(),
                    organisation_ref: "O9".into(),
                    source: Source::Registry,
                    name: None,
                },
            ]
        );
    }

    #[test]
    fn default_language_is_nb_and_case_is_forgiven() {
        let s = read(
            "REF,Name,Email,Language,notes\nO1,A,a@a.no,,hello\nO2,B,b@b.no,NN,\n",
            NETS_HEADER,
        )
        .unwrap();
        assert_eq!(s.organisations[0].contacts[0].language, Language::Nb);
        assert_eq!(s.organisations[1].contacts[0].language, Language::Nn);
    }

    #[test]
    fn bad_organisation_rows_are_rejected_with_line_and_field() {
        let s = read(
            "ref,name,org_number,email,language\n\
             O1,Ok,,,\n\
             ,No ref,,,\n\
             O3,,,,\n\
             O4,Bad number,974760674,,\n\
             O5,Bad mail,,not-mail,\n\
             O6,Bad lang,,,de\n\
             O1,Duplicate,,,\n\
             \"O7\",\"multi\nline\",12345,,\n\
             O8,After,,,\n",
            NETS_HEADER,
        )
        .unwrap();
        let refs: Vec<&str> = s
            .organisations
            .iter()
            .map(|o| o.reference.as_str())
            .collect();
        assert_eq!(refs, ["O1", "O8"]);
        let got: Vec<(u64, &str)> = s
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(got.len(), 7, "{got:#?}");
        assert_eq!(got[0], (3, "ref: empty"));
        assert_eq!(got[1], (4, "name: empty"));
        assert_eq!(got[2].0, 5);
        assert!(
            got[2]
                .1
                .starts_with("org_number: 974760674 fails the mod-11 check"),
            "{}",
            got[2].1
        );
        assert_eq!(got[3].0, 6);
        assert!(got[3].1.starts_with("email: "), "{}", got[3].1);
        assert_eq!(got[4].0, 7);
        assert!(got[4].1.starts_with("language: "), "{}", got[4].1);
        assert_eq!(got[5], (8, "ref: duplicate ref \"O1\" (first on line 2)"));
        // A quoted multi-line field: the record starts on line 9.
        assert_eq!(got[6].0, 9);
        assert!(got[6].1.contains("9 digits"));
        assert!(s.rejected.iter().all(|r| r.file == "organisations.csv"));
    }

    #[test]
    fn several_problems_in_one_row_are_all_named() {
        let s = read("ref,name,email\n,,x\n", NETS_HEADER).unwrap();
        assert_eq!(s.rejected.len(), 1);
        let reason = &s.rejected[0].reason;
        assert!(
            reason.contains("ref: empty")
                && reason.contains("name: empty")
                && reason.contains("email: ")
        );
    }

    #[test]
    fn bad_network_rows() {
        let s = read(
            "ref,name\n",
            "cidr,organisation_ref,source,name\n\
             192.0.2.1/24,O1,,\n\
             nonsense,O1,,\n\
             192.0.2.0/24,,,\n\
             198.51.100.0/24,O1,bgp,\n\
             198.51.100.0/24,O1,MANUAL,\n\
             198.51.100.0/24,O2,manual,\n\
             198.51.100.0/24,O2,,\n\
             ,O1,,\n\
             ,,,\n",
        )
        .unwrap();
        let got: Vec<(u64, &str)> = s
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(got.len(), 6, "{got:#?}");
        assert_eq!(got[0].0, 2);
        assert!(got[0].1.contains("host bits"), "{}", got[0].1);
        assert_eq!(got[1].0, 3);
        assert!(got[1].1.starts_with("cidr: "));
        assert_eq!(got[2], (4, "organisation_ref: empty"));
        assert_eq!(got[3].0, 5);
        assert!(got[3].1.starts_with("source: "));
        assert_eq!(got[4].0, 7);
        assert!(
            got[4]
                .1
                .contains("duplicate 198.51.100.0/24 with source manual (first on line 6)")
        );
        assert_eq!(got[5], (9, "cidr: empty"));
        let kept: Vec<(String, Source)> = s
            .networks
            .iter()
            .map(|n| (n.organisation_ref.clone(), n.source))
            .collect();
        assert_eq!(
            kept,
            [
                ("O1".to_owned(), Source::Manual),
                ("O2".to_owned(), Source::Registry)
            ]
        );
    }

    #[test]
    fn missing_columns_and_empty_files() {
        let err = read("ref,title\n", NETS_HEADER).unwrap_err();
        assert!(
            matches!(&err, CsvError::MissingColumn { file, column: "name" } if file == "organisations.csv")
        );
        assert!(err.to_string().contains("\"name\""));
        let err = read("ref,name\n", "cidr,org\n").unwrap_err();
        assert!(
            matches!(&err, CsvError::MissingColumn { file, column: "organisation_ref" } if file == "networks.csv")
        );
        let err = read("", NETS_HEADER).unwrap_err();
        assert!(matches!(err, CsvError::MissingColumn { column: "ref", .. }));
    }

    #[test]
    fn bom_crlf_short_rows_and_latin1() {
        let mut orgs = b"\xef\xbb\xbfref,name,sector\r\nO1,B\xe6rum kommune\r\n".to_vec();
        orgs.extend_from_slice("O2,Tromsø kommune,public\r\n".as_bytes());
        let s = read_csv(
            ("o".to_owned(), Box::new(Cursor::new(orgs))),
            input("n", NETS_HEADER),
        )
        .unwrap();
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        assert_eq!(s.organisations[0].name, "Bærum kommune");
        assert_eq!(s.organisations[0].sector, None);
        assert_eq!(s.organisations[1].name, "Tromsø kommune");
    }

    #[test]
    fn io_errors_name_the_file() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("disk on fire"))
            }
        }
        let err = read_csv(
            ("orgs.csv".to_owned(), Box::new(Broken)),
            input("n", NETS_HEADER),
        )
        .unwrap_err();
        assert!(matches!(&err, CsvError::Io { file, .. } if file == "orgs.csv"));
        assert!(err.to_string().contains("disk on fire"));
        assert!(std::error::Error::source(&err).is_some());
    }

    /// A data set from the project's generator in a temporary folder, and
    /// its organisations.csv and networks.csv read back.
    fn generated(
        organisations: u32,
        observations: u64,
    ) -> (
        Snapshot,
        crate::bench::dataset::Summary,
        std::time::Duration,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let spec = crate::bench::dataset::DatasetSpec {
            organisations,
            observations,
            ..Default::default()
        };
        let summary = crate::bench::dataset::generate(dir.path(), &spec).unwrap();
        let open = |name: &str| -> (String, Box<dyn Read + Send>) {
            let file = std::fs::File::open(dir.path().join(name)).unwrap();
            (name.to_owned(), Box::new(io::BufReader::new(file)))
        };
        let started = std::time::Instant::now();
        let s = read_csv(open("organisations.csv"), open("networks.csv")).unwrap();
        let took = started.elapsed();
        assert!(
            s.rejected.is_empty(),
            "{:?}",
            &s.rejected[..s.rejected.len().min(5)]
        );
        (s, summary, took)
    }

    /// The generated registry reads without a rejection, every row of it.
    #[test]
    fn generated_small_dataset() {
        let (s, summary, _) = generated(500, 2000);
        // 500 organisations and max(20, 500 / 40) = 20 providers.
        assert_eq!(s.organisations.len(), 520);
        assert_eq!(s.networks.len(), summary.networks);
        // Per provider one to three IPv4 allocations and one IPv6 /32.
        let provider_networks = s
            .networks
            .iter()
            .filter(|n| n.organisation_ref.starts_with('P'))
            .count();
        assert_eq!(provider_networks, summary.allocations);
        assert!(
            (40..=80).contains(&provider_networks),
            "{provider_networks}"
        );
        let v6 = s
            .networks
            .iter()
            .filter(|n| n.cidr.addr().is_ipv6())
            .count();
        assert!(v6 >= 20, "{v6}");
        // Per organisation one to three assignments, minus the few that
        // would have overlapped another.
        let assignments = s.networks.len() - provider_networks;
        assert!((500..=1500).contains(&assignments), "{assignments}");
        assert!(s.networks.iter().any(|n| n.source == Source::Manual));
        assert!(
            s.organisations
                .iter()
                .all(|o| o.contacts.len() == 1 && o.org_number.is_some())
        );
    }

    /// The default organisation count, timed (a printout, no limit):
    /// `cargo test --release --lib -- --ignored --nocapture csv_speed`.
    #[test]
    #[ignore]
    fn csv_speed() {
        let (s, summary, took) = generated(20_000, 10);
        // 20 000 organisations and 20 000 / 40 = 500 providers.
        assert_eq!(s.organisations.len(), 20_500);
        assert_eq!(s.networks.len(), summary.networks);
        println!(
            "csv: {} organisations, {} networks in {:.3} s",
            s.organisations.len(),
            s.networks.len(),
            took.as_secs_f64()
        );
    }
}
