//! What an importer read from its files: the registry as the source sees it,
//! before it is compared with the database. Parsers fill it; `apply` makes the
//! database agree with it.

use std::collections::BTreeMap;

use ipnet::IpNet;

use crate::registry::model::{ContactRole, EmailAddress, Language, OrgNumber, Source};

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedOrganisation {
    /// The key across re-imports: RIPE `ORG-…` handle (or the owning role's
    /// `nic-hdl` when an inetnum has no `org:`), or the CSV's `ref`.
    pub reference: String,
    pub name: String,
    pub org_number: Option<OrgNumber>,
    pub sector: Option<String>,
    pub contacts: Vec<ImportedContact>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedContact {
    pub email: EmailAddress,
    pub name: Option<String>,
    pub role: ContactRole,
    pub language: Language,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedNetwork {
    /// Aligned (no host bits).
    pub cidr: IpNet,
    pub organisation_ref: String,
    pub source: Source,
    /// RIPE `netname`, when there is one.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedAsn {
    pub asn: u32,
    pub organisation_ref: String,
    pub name: Option<String>,
}

/// One input record the importer refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub file: String,
    /// 1-based line where the record starts.
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    pub organisations: Vec<ImportedOrganisation>,
    pub networks: Vec<ImportedNetwork>,
    pub asns: Vec<ImportedAsn>,
    pub rejected: Vec<Rejection>,
    /// Well-formed records the importer passed over on purpose (another
    /// country, no owner to attach to, …), counted by reason, so a person can
    /// see why an import added nothing.
    pub skipped: BTreeMap<&'static str, u64>,
    /// Records imported with something the source does not state outright
    /// (an owner taken from a contact role, …), counted by reason, so a
    /// person can see how much of the import rests on it.
    pub inferred: BTreeMap<&'static str, u64>,
}
