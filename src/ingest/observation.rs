//! The normalised observation: one scanner result in Varsel's canonical shape,
//! whatever format it arrived in. Parsers produce these; the ingest pipeline
//! attributes, stores and folds them into findings.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::checks::{ObservationState, Severity};

/// Largest `evidence` object accepted, serialised, in bytes.
pub const MAX_EVIDENCE_BYTES: usize = 16 * 1024;

/// One normalised scanner result.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub ip: IpAddr,
    /// 0 when the result is not about a port (ICMP, host-level checks).
    pub port: u16,
    /// Lower case, `tcp` unless the input says otherwise.
    pub protocol: String,
    pub observed_at: DateTime<Utc>,
    /// The scanner's check id, e.g. `exchange-proxylogon`.
    pub check: String,
    pub state: ObservationState,
    /// Upper case `CVE-YYYY-N+`, deduplicated, input order.
    pub cves: Vec<String>,
    pub severity: Option<Severity>,
    pub hostname: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    /// Used for attribution only when no registered network matches.
    pub asn: Option<u32>,
    /// Serialised JSON object, at most [`MAX_EVIDENCE_BYTES`].
    pub evidence: Option<String>,
    /// The record as received, for evidence: the JSON line, the CSV row as a
    /// JSON object of header to value, the XML element, ….
    pub raw: String,
}

/// Why one line / row / record of an input was rejected. `line` is 1-based
/// (for JSON arrays: the line where the rejected element starts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LineError {
    pub line: u64,
    /// The field at fault, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub reason: String,
}

impl LineError {
    pub fn new(line: u64, field: Option<&str>, reason: impl Into<String>) -> Self {
        Self {
            line,
            field: field.map(str::to_owned),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "line {}: {}: {}", self.line, field, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}
