//! Registry value types, parsed once at the edge and trusted inside:
//! organisation numbers, CIDRs, e-mail addresses and the small enums of the
//! registry.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A Norwegian organisation number: nine digits, the last a mod-11 check digit
/// over weights 3 2 7 6 5 4 3 2.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgNumber(String);

impl OrgNumber {
    pub fn parse(input: &str) -> Result<Self, String> {
        // People write "974 760 673" or "NO 974760673 MVA"; accept the digits.
        let trimmed = input.trim();
        let core = trimmed
            .strip_prefix("NO")
            .unwrap_or(trimmed)
            .trim_end_matches("MVA")
            .trim();
        let digits: String = core.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "organisation number must be 9 digits, got {input:?}"
            ));
        }
        let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
        const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
        let sum: u32 = d.iter().zip(WEIGHTS).map(|(a, w)| a * w).sum();
        let check = match 11 - sum % 11 {
            11 => 0,
            10 => {
                return Err(format!(
                    "{digits} is not a valid organisation number (no check digit fits)"
                ));
            }
            c => c,
        };
        if d[8] != check {
            return Err(format!(
                "{digits} fails the mod-11 check (check digit should be {check})"
            ));
        }
        Ok(Self(digits))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OrgNumber {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<OrgNumber> for String {
    fn from(value: OrgNumber) -> Self {
        value.0
    }
}

impl fmt::Display for OrgNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IPv4 or IPv6 network in CIDR notation with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr(IpNet);

impl Cidr {
    pub fn parse(input: &str) -> Result<Self, String> {
        let net: IpNet = input.trim().parse().map_err(|_| {
            format!("{input:?} is not a CIDR (expected e.g. 192.0.2.0/24 or 2001:db8::/32)")
        })?;
        if net.trunc() != net {
            return Err(format!(
                "{input} has host bits set; the network is {}",
                net.trunc()
            ));
        }
        Ok(Self(net))
    }

    /// For networks built in code (range splitting), already aligned.
    pub fn from_net(net: IpNet) -> Self {
        Self(net.trunc())
    }

    pub fn net(&self) -> IpNet {
        self.0
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Cidr> for String {
    fn from(value: Cidr) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An e-mail address, checked for shape (one `@`, a dotted domain, no spaces),
/// the domain lower-cased. Deliverability is the mail system's business.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        let bad = || format!("{s:?} is not an e-mail address");
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let ok_local = !local.is_empty()
            && local.len() <= 64
            && !local.contains(['@', ' ', '\t', '<', '>', ',', ';', '"']);
        let ok_domain = domain.len() <= 253
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if !ok_local || !ok_domain {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: `s***@example.no`.
    pub fn masked(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".to_owned(),
        }
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress({})", self.masked())
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(s: &str) -> Result<Self, String> {
                match s.trim() {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "{other:?} is not one of {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

// Campaigns spell their small enums the same way.
pub(crate) use text_enum;

text_enum!(
    /// Where a network or contact came from. At equal prefix length a manual
    /// entry beats an organisation's own report, which beats a registry import.
    Source {
        Manual => "manual",
        Organisation => "organisation",
        Registry => "registry",
    }
);

impl Source {
    /// Lower ranks win ties in attribution.
    pub fn rank(self) -> u8 {
        match self {
            Source::Manual => 0,
            Source::Organisation => 1,
            Source::Registry => 2,
        }
    }
}

text_enum!(
    ContactRole {
        Security => "security",
        Technical => "technical",
        Abuse => "abuse",
        Management => "management",
    }
);

text_enum!(
    Language {
        Nb => "nb",
        Nn => "nn",
        En => "en",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_number_checks_mod11() {
        assert!(OrgNumber::parse("974760673").is_ok());
        assert_eq!(
            OrgNumber::parse("974 760 673").unwrap().as_str(),
            "974760673"
        );
        assert!(
            OrgNumber::parse("974760674")
                .unwrap_err()
                .contains("mod-11")
        );
        assert!(OrgNumber::parse("12345").unwrap_err().contains("9 digits"));
    }

    #[test]
    fn cidr_rejects_host_bits() {
        assert!(Cidr::parse("192.0.2.0/24").is_ok());
        assert!(Cidr::parse("2001:db8::/32").is_ok());
        let err = Cidr::parse("192.0.2.1/24").unwrap_err();
        assert!(err.contains("host bits"), "{err}");
        assert!(Cidr::parse("nonsense").is_err());
    }

    #[test]
    fn email_shape() {
        assert_eq!(
            EmailAddress::parse("Abuse@Example.NO").unwrap().as_str(),
            "Abuse@example.no"
        );
        assert!(EmailAddress::parse("no-at-sign").is_err());
        assert!(EmailAddress::parse("a@b").is_err());
        assert!(EmailAddress::parse("a b@c.no").is_err());
        assert_eq!(
            EmailAddress::parse("security@x.no").unwrap().masked(),
            "s***@x.no"
        );
    }

    #[test]
    fn source_ranks_manual_first() {
        assert!(Source::Manual.rank() < Source::Organisation.rank());
        assert!(Source::Organisation.rank() < Source::Registry.rank());
        assert_eq!(Source::parse("registry"), Ok(Source::Registry));
    }
}
