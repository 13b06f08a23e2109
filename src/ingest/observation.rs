//! The normalised observation: one scanner result in Varsel's canonical shape,
//! whatever format it arrived in. Parsers produce these; the ingest pipeline
//! attributes, stores and folds them into findings.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use crate::checks::{ObservationState, Severity};

/// Why `ip` cannot be an address on the Internet, if it cannot: loopback,
/// unspecified, link-local, multicast, private (RFC 1918, ULA), shared
/// (RFC 6598) and reserved space. Observations there come from a scanner
/// that looked at a lab or its own network, and no organisation can be
/// told of them. The documentation ranges (RFC 5737, RFC 3849) are left to
/// examples and tests.
pub fn not_on_the_internet(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            let [first, second, ..] = a.octets();
            Some(if a.is_unspecified() || first == 0 {
                "is in 0.0.0.0/8 (this network)"
            } else if a.is_loopback() {
                "is a loopback address (127.0.0.0/8)"
            } else if a.is_private() {
                "is a private address (RFC 1918: 10/8, 172.16/12, 192.168/16)"
            } else if first == 100 && (64..128).contains(&second) {
                "is shared address space (RFC 6598: 100.64.0.0/10)"
            } else if a.is_link_local() {
                "is a link-local address (169.254.0.0/16)"
            } else if a.is_multicast() {
                "is a multicast address (224.0.0.0/4)"
            } else if first >= 240 {
                "is reserved or broadcast space (240.0.0.0/4)"
            } else {
                return None;
            })
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return not_on_the_internet(IpAddr::V4(v4));
            }
            let first = a.segments()[0];
            Some(if a.is_unspecified() {
                "is the unspecified address (::)"
            } else if a.is_loopback() {
                "is the loopback address (::1)"
            } else if first & 0xffc0 == 0xfe80 {
                "is a link-local address (fe80::/10)"
            } else if first & 0xff00 == 0xff00 {
                "is a multicast address (ff00::/8)"
            } else if first & 0xfe00 == 0xfc00 {
                "is a unique local address (fc00::/7)"
            } else {
                return None;
            })
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::not_on_the_internet;

    #[test]
    fn addresses_that_cannot_be_on_the_internet() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "169.254.1.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fe80::1",
            "ff02::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(not_on_the_internet(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::1",
            "8.8.8.8",
            "100.63.0.1",
            "172.32.0.1",
            "2a01:4f8::1",
        ] {
            assert_eq!(not_on_the_internet(ip.parse().unwrap()), None, "{ip}");
        }
    }
}
