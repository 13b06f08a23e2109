//! RIPE database split files → [`Snapshot`] for one country.
//!
//! This file owns the *meaning* of the RIPE objects (the syntax is `rpsl.rs`):
//! which `inetnum`/`inet6num` objects belong to the country, who owns them
//! (`org:`, else the `abuse-c:` role, else the first `admin-c:` then `tech-c:`
//! role with an `abuse-mailbox`), which organisations, abuse contacts and
//! `aut-num`s come along, and what is refused.
//!
//! One streaming pass over all files keeps only what resolution needs, in
//! compact records keyed by handle (the full dumps are gigabytes; the country's
//! share is small, the organisation and role tables are ~100 k entries each);
//! the files may come in any order and hold any mix of classes. Then the
//! records are resolved into the snapshot.
//!
//! Handles are compared upper-cased (RIPE treats them case-insensitively) and
//! come out upper-cased.
//!
//! Choices where RIPE leaves room:
//! - an unaligned range is split into CIDRs; should a piece equal another
//!   object's CIDR, the object with the smaller range (the more specific
//!   registration) owns it;
//! - a network whose `org:` object is not in the files still comes out (the
//!   database may know the organisation), but no organisation is invented;
//! - an `abuse-mailbox` is checked once per role; a bad one is rejected once
//!   and the organisation is imported without that contact;
//! - an assignment with neither `org:` nor `abuse-c:` (older objects, and
//!   ones whose holder never set an abuse contact) is owned by its `admin-c:`
//!   role, else its `tech-c:` role, the first whose `abuse-mailbox` holds an
//!   address: the people RIPE lists for the range are the best contact there
//!   is, and no notice can go to a range without one. How many owners came
//!   so is counted by reason ([`Snapshot::inferred`]); persons (never with an
//!   abuse-mailbox) and roles without one do not count, and an assignment no
//!   role answers for is rejected;
//! - organisations come out sorted by reference, networks and ASNs in file
//!   order, rejections by file and line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, BufRead};

use ipnet::IpNet;

use super::ranges::parse_inetnum_range;
use super::rpsl::{RpslObject, RpslReader};
use super::snapshot::{
    ImportedAsn, ImportedContact, ImportedNetwork, ImportedOrganisation, Rejection, Snapshot,
};
use crate::registry::model::{Cidr, ContactRole, EmailAddress, Language, Source};

/// The classes resolution needs; everything else (person, route, mntner, …)
/// is skipped by the reader without decoding.
const CLASSES: &[&str] = &["inetnum", "inet6num", "organisation", "role", "aut-num"];
/// The attributes resolution needs (besides each object's key).
const ATTRIBUTES: &[&str] = &[
    "netname",
    "country",
    "org",
    "abuse-c",
    "admin-c",
    "tech-c",
    "org-name",
    "nic-hdl",
    "abuse-mailbox",
    "as-name",
];

/// Read RIPE split files (plain RPSL, any order, any mix of classes) and keep
/// what belongs to `country` (ISO code, case-insensitive).
///
/// `files` are `(display name used in rejections, reader)`; see
/// [`super::input::open_input`] for gzip handling. Only I/O errors fail the
/// import; bad records become [`Rejection`]s.
pub fn read_ripe(
    files: Vec<(String, Box<dyn BufRead + Send>)>,
    country: &str,
) -> io::Result<Snapshot> {
    let mut collected = Collected::new(country);
    for (index, (name, input)) in files.into_iter().enumerate() {
        collected.file_names.push(name);
        collected.read_file(file_index(index), input)?;
    }
    Ok(collected.resolve())
}

fn file_index(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// Where a record came from, for rejections.
#[derive(Debug, Clone, Copy)]
struct Origin {
    file: u32,
    line: u64,
}

/// A kept inetnum/inet6num.
struct NetworkRecord {
    cidrs: Vec<IpNet>,
    /// Empty while `pending` (decided once all roles are read).
    owner: String,
    /// The owner is a role (no `org:`): its `abuse-c`, `admin-c` or `tech-c`.
    owner_is_role: bool,
    /// Neither `org:` nor `abuse-c:`: the roles that may own it.
    pending: Option<Box<PendingOwner>>,
    /// The network's own `abuse-c`, upper-cased.
    abuse_c: Option<String>,
    netname: Option<String>,
    /// Addresses in the object's whole range; when range splitting makes two
    /// objects yield the same CIDR, the smaller (more specific) object wins.
    range_size: u128,
}

/// An assignment whose owner is one of its contact roles, once the role
/// objects (in any file, in any order) are known.
struct PendingOwner {
    /// Upper-cased handles, `admin-c` before `tech-c`, each with the reason
    /// it is counted under when it gives the owner.
    candidates: Vec<(String, &'static str)>,
    origin: Origin,
    label: String,
}

struct OrganisationRecord {
    name: Option<String>,
    abuse_c: Option<String>,
    in_country: bool,
}

struct RoleRecord {
    name: String,
    mailbox: String,
    origin: Origin,
}

struct AutNumRecord {
    key: String,
    org: String,
    as_name: Option<String>,
    origin: Origin,
}

struct Collected {
    country: String,
    language: Language,
    file_names: Vec<String>,
    networks: Vec<NetworkRecord>,
    organisations: HashMap<String, OrganisationRecord>,
    roles: HashMap<String, RoleRecord>,
    aut_nums: Vec<AutNumRecord>,
    rejected: Vec<(Origin, String)>,
    skipped: BTreeMap<&'static str, u64>,
    inferred: BTreeMap<&'static str, u64>,
}

/// Why a well-formed object was passed over (counted in the summary).
const SKIP_OTHER_COUNTRY: &str = "inetnum/inet6num of another country";
const SKIP_AUT_NUM_NO_ORG: &str = "aut-num without org:";
const SKIP_AUT_NUM_ELSEWHERE: &str = "aut-num of an organisation outside the country";
const SKIP_AUT_NUM_REPEATED: &str = "aut-num repeating an AS number";
const SKIP_ORGANISATION_ELSEWHERE: &str =
    "organisation of another country, holding nothing imported";
const SKIP_ORGANISATION_UNUSED: &str = "organisation of the country holding no network or ASN";

/// Owners that the objects do not name outright (counted in the summary).
const OWNER_FROM_ADMIN_C: &str =
    "inetnum/inet6num without org: or abuse-c:, owner from its admin-c role";
const OWNER_FROM_TECH_C: &str =
    "inetnum/inet6num without org: or abuse-c:, owner from its tech-c role";

impl Collected {
    fn new(country: &str) -> Self {
        let country = country.trim().to_ascii_uppercase();
        // Norwegian abuse desks get Norwegian; anyone else English.
        let language = if country == "NO" {
            Language::Nb
        } else {
            Language::En
        };
        Self {
            country,
            language,
            file_names: Vec::new(),
            networks: Vec::new(),
            organisations: HashMap::new(),
            roles: HashMap::new(),
            aut_nums: Vec::new(),
            rejected: Vec::new(),
            skipped: BTreeMap::new(),
            inferred: BTreeMap::new(),
        }
    }

    fn skip(&mut self, reason: &'static str) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    fn reject(&mut self, origin: Origin, reason: String) {
        self.rejected.push((origin, reason));
    }

    fn in_country(&self, obj: &RpslObject) -> bool {
        obj.get_all("country")
            .any(|c| c.trim().eq_ignore_ascii_case(&self.country))
    }

    fn read_file(&mut self, file: u32, input: Box<dyn BufRead + Send>) -> io::Result<()> {
        let mut reader = RpslReader::new(input)
            .only_classes(CLASSES)
            .only_attributes(ATTRIBUTES);
        let mut obj = RpslObject::default();
        while reader.read_into(&mut obj)? {
            let origin = Origin {
                file,
                line: obj.line,
            };
            match obj.class() {
                "inetnum" | "inet6num" => self.network(&obj, origin),
                "organisation" => self.organisation(&obj),
                "role" => self.role(&obj, origin),
                "aut-num" => self.aut_num(&obj, origin),
                _ => {}
            }
        }
        for issue in reader.issues() {
            self.rejected.push((
                Origin {
                    file,
                    line: issue.line,
                },
                issue.reason.to_owned(),
            ));
        }
        let unlisted = reader
            .issue_count()
            .saturating_sub(reader.issues().len() as u64);
        if unlisted > 0 {
            let line = reader.lines_read();
            self.reject(
                Origin { file, line },
                format!("{unlisted} further malformed lines skipped, not listed"),
            );
        }
        Ok(())
    }

    fn network(&mut self, obj: &RpslObject, origin: Origin) {
        if !self.in_country(obj) {
            return self.skip(SKIP_OTHER_COUNTRY);
        }
        let class = obj.class();
        let key = obj.key();
        let netname = obj.get("netname").map(clean_name).filter(|n| !n.is_empty());
        let label = match &netname {
            Some(n) => format!("{class} {key} ({n})"),
            None => format!("{class} {key}"),
        };
        let cidrs = if class == "inetnum" {
            parse_inetnum_range(key)
        } else {
            Cidr::parse(key).map(|c| vec![c.net()])
        };
        let cidrs = match cidrs {
            Ok(c) => c,
            Err(e) => return self.reject(origin, format!("{label}: {e}")),
        };
        let org = handle(obj.get("org"));
        let abuse_c = handle(obj.get("abuse-c"));
        let (owner, owner_is_role, pending) = match (org, &abuse_c) {
            (Some(org), _) => (org, false, None),
            (None, Some(role)) => (role.clone(), true, None),
            (None, None) => {
                let mut candidates: Vec<(String, &'static str)> = Vec::new();
                let contacts = [
                    ("admin-c", OWNER_FROM_ADMIN_C),
                    ("tech-c", OWNER_FROM_TECH_C),
                ];
                for (attribute, reason) in contacts {
                    for value in obj.get_all(attribute) {
                        if let Some(h) = handle(Some(value)) {
                            if !candidates.iter().any(|(c, _)| *c == h) {
                                candidates.push((h, reason));
                            }
                        }
                    }
                }
                let pending = PendingOwner {
                    candidates,
                    origin,
                    label,
                };
                (String::new(), true, Some(Box::new(pending)))
            }
        };
        let range_size = cidrs
            .iter()
            .map(|n| {
                let host_bits = u32::from(n.max_prefix_len() - n.prefix_len());
                1u128.checked_shl(host_bits).unwrap_or(u128::MAX)
            })
            .fold(0u128, u128::saturating_add);
        self.networks.push(NetworkRecord {
            cidrs,
            owner,
            owner_is_role,
            pending,
            abuse_c,
            netname,
            range_size,
        });
    }

    fn organisation(&mut self, obj: &RpslObject) {
        let Some(key) = handle(Some(obj.key())) else {
            return;
        };
        let in_country = self.in_country(obj);
        // A handle is unique in RIPE; should a file repeat it, the first wins.
        self.organisations
            .entry(key)
            .or_insert_with(|| OrganisationRecord {
                name: obj
                    .get("org-name")
                    .map(clean_name)
                    .filter(|n| !n.is_empty()),
                abuse_c: handle(obj.get("abuse-c")),
                in_country,
            });
    }

    fn role(&mut self, obj: &RpslObject, origin: Origin) {
        // Only roles with a mailbox can become contacts; the rest (tens of
        // thousands of NOC/admin roles) would only cost memory.
        let Some(mailbox) = obj.get("abuse-mailbox").filter(|m| !m.trim().is_empty()) else {
            return;
        };
        let Some(nic_hdl) = handle(obj.get("nic-hdl")) else {
            return;
        };
        self.roles.entry(nic_hdl).or_insert_with(|| RoleRecord {
            name: clean_name(obj.key()),
            mailbox: mailbox.to_owned(),
            origin,
        });
    }

    fn aut_num(&mut self, obj: &RpslObject, origin: Origin) {
        // Without an organisation an aut-num has no owner to attach to.
        let Some(org) = handle(obj.get("org")) else {
            return self.skip(SKIP_AUT_NUM_NO_ORG);
        };
        self.aut_nums.push(AutNumRecord {
            key: obj.key().to_owned(),
            org,
            as_name: obj.get("as-name").map(clean_name).filter(|n| !n.is_empty()),
            origin,
        });
    }

    /// Gives each assignment without `org:` or `abuse-c:` its first contact
    /// role with a usable mailbox as owner; rejects those without one.
    fn decide_contact_owners(&mut self, mailboxes: &mut MailboxCache) {
        let mut networks = std::mem::take(&mut self.networks);
        networks.retain_mut(|record| {
            let Some(pending) = record.pending.take() else {
                return true;
            };
            let chosen = pending
                .candidates
                .iter()
                .find(|(h, _)| mailboxes.has_address(&self.roles, h));
            match chosen {
                Some((h, reason)) => {
                    record.owner = h.clone();
                    *self.inferred.entry(*reason).or_default() += 1;
                    true
                }
                None => {
                    self.rejected.push((
                        pending.origin,
                        format!(
                            "{}: no org: or abuse-c: names an owner, and no admin-c: or tech-c: role has a usable abuse-mailbox",
                            pending.label
                        ),
                    ));
                    false
                }
            }
        });
        self.networks = networks;
    }

    fn resolve(mut self) -> Snapshot {
        let mut snapshot = Snapshot::default();
        let mut mailboxes = MailboxCache::default();
        self.decide_contact_owners(&mut mailboxes);

        // Networks, one per CIDR. Splitting an unaligned parent range can
        // yield exactly the CIDR of a child object; the more specific object
        // is the one that says who holds it.
        let mut by_cidr: HashMap<IpNet, (usize, u128)> = HashMap::new();
        for record in &self.networks {
            for &cidr in &record.cidrs {
                let network = ImportedNetwork {
                    cidr,
                    organisation_ref: record.owner.clone(),
                    source: Source::Registry,
                    name: record.netname.clone(),
                };
                match by_cidr.get_mut(&cidr) {
                    None => {
                        by_cidr.insert(cidr, (snapshot.networks.len(), record.range_size));
                        snapshot.networks.push(network);
                    }
                    Some((index, size)) => {
                        if record.range_size < *size {
                            if let Some(slot) = snapshot.networks.get_mut(*index) {
                                *size = record.range_size;
                                *slot = network;
                            }
                        }
                    }
                }
            }
        }
        let mut referenced: HashSet<String> = snapshot
            .networks
            .iter()
            .map(|n| n.organisation_ref.clone())
            .collect();

        // ASNs: an organisation we already import, or one in the country.
        let mut seen_asns = HashSet::new();
        for record in std::mem::take(&mut self.aut_nums) {
            let wanted = referenced.contains(&record.org)
                || self
                    .organisations
                    .get(&record.org)
                    .is_some_and(|o| o.in_country);
            if !wanted {
                self.skip(SKIP_AUT_NUM_ELSEWHERE);
                continue;
            }
            let Some(asn) = parse_asn(&record.key) else {
                self.reject(
                    record.origin,
                    format!("aut-num {:?}: not an AS number", record.key),
                );
                continue;
            };
            if !seen_asns.insert(asn) {
                self.skip(SKIP_AUT_NUM_REPEATED);
                continue;
            }
            referenced.insert(record.org.clone());
            snapshot.asns.push(ImportedAsn {
                asn,
                organisation_ref: record.org,
                name: record.as_name,
            });
        }

        // Owners that are roles, and extra abuse-c roles of org-owned
        // networks, in network order.
        let mut role_owner_name: HashMap<&str, Option<&str>> = HashMap::new();
        let mut extra_roles: HashMap<&str, Vec<&str>> = HashMap::new();
        for record in &self.networks {
            if !referenced.contains(&record.owner) {
                continue; // every CIDR went to a more specific object
            }
            if record.owner_is_role {
                role_owner_name
                    .entry(record.owner.as_str())
                    .or_insert(record.netname.as_deref());
            } else if let Some(abuse_c) = record.abuse_c.as_deref() {
                let roles = extra_roles.entry(record.owner.as_str()).or_default();
                if !roles.contains(&abuse_c) {
                    roles.push(abuse_c);
                }
            }
        }

        let mut refs: Vec<&String> = referenced.iter().collect();
        refs.sort();
        for reference in refs {
            let organisation = if let Some(netname) = role_owner_name.get(reference.as_str()) {
                // The abuse role stands in for the organisation.
                let name = self
                    .roles
                    .get(reference)
                    .map(|r| r.name.clone())
                    .or_else(|| netname.map(str::to_owned))
                    .unwrap_or_else(|| reference.clone());
                let mut contacts = Vec::new();
                mailboxes.add_contacts(&self.roles, reference, self.language, &mut contacts);
                ImportedOrganisation {
                    reference: reference.clone(),
                    name,
                    org_number: None,
                    sector: None,
                    contacts,
                }
            } else if let Some(org) = self.organisations.get(reference) {
                let mut contacts = Vec::new();
                if let Some(abuse_c) = &org.abuse_c {
                    mailboxes.add_contacts(&self.roles, abuse_c, self.language, &mut contacts);
                }
                for role in extra_roles.get(reference.as_str()).into_iter().flatten() {
                    mailboxes.add_contacts(&self.roles, role, self.language, &mut contacts);
                }
                ImportedOrganisation {
                    reference: reference.clone(),
                    // org-name is mandatory in RIPE; the handle beats no name.
                    name: org.name.clone().unwrap_or_else(|| reference.clone()),
                    org_number: None,
                    sector: None,
                    contacts,
                }
            } else {
                // The organisation object is not in these files (e.g. only
                // the inetnum dump was given): the networks still name it, the
                // database step decides whether it is known.
                continue;
            };
            snapshot.organisations.push(organisation);
        }

        for (key, org) in &self.organisations {
            if !referenced.contains(key) {
                let reason = if org.in_country {
                    SKIP_ORGANISATION_UNUSED
                } else {
                    SKIP_ORGANISATION_ELSEWHERE
                };
                *self.skipped.entry(reason).or_default() += 1;
            }
        }
        snapshot.skipped = std::mem::take(&mut self.skipped);
        snapshot.inferred = std::mem::take(&mut self.inferred);
        self.rejected.extend(mailboxes.rejected);
        self.rejected
            .sort_by_key(|(origin, _)| (origin.file, origin.line));
        snapshot.rejected = self
            .rejected
            .into_iter()
            .map(|(origin, reason)| Rejection {
                file: self
                    .file_names
                    .get(origin.file as usize)
                    .cloned()
                    .unwrap_or_default(),
                line: origin.line,
                reason,
            })
            .collect();
        snapshot
    }
}

/// Each role's mailbox cleaned and checked once, however many organisations
/// use it, so a bad mailbox is rejected once.
#[derive(Default)]
struct MailboxCache {
    parsed: HashMap<String, Vec<EmailAddress>>,
    rejected: Vec<(Origin, String)>,
}

impl MailboxCache {
    /// Whether the role is in the files with an `abuse-mailbox` that holds
    /// at least one good address.
    fn has_address(&mut self, roles: &HashMap<String, RoleRecord>, handle: &str) -> bool {
        self.role(roles, handle).is_some()
            && self.parsed.get(handle).is_some_and(|good| !good.is_empty())
    }

    fn add_contacts(
        &mut self,
        roles: &HashMap<String, RoleRecord>,
        handle: &str,
        language: Language,
        contacts: &mut Vec<ImportedContact>,
    ) {
        // A role missing from the files (or without abuse-mailbox) gives no
        // contact; that is not the organisation's fault.
        let Some(role) = self.role(roles, handle) else {
            return;
        };
        for email in self.parsed.get(handle).into_iter().flatten() {
            if contacts.iter().any(|c| c.email == *email) {
                continue;
            }
            contacts.push(ImportedContact {
                email: email.clone(),
                name: Some(role.name.clone()).filter(|n| !n.is_empty()),
                role: ContactRole::Abuse,
                language,
            });
        }
    }

    /// The role, its mailbox parsed (once; a bad one rejected once).
    fn role<'r>(
        &mut self,
        roles: &'r HashMap<String, RoleRecord>,
        handle: &str,
    ) -> Option<&'r RoleRecord> {
        let role = roles.get(handle)?;
        if !self.parsed.contains_key(handle) {
            let (good, bad) = parse_mailboxes(&role.mailbox);
            if let Some(error) = bad {
                self.rejected.push((
                    role.origin,
                    format!(
                        "role {:?} ({handle}): abuse-mailbox {:?}: {error}",
                        role.name, role.mailbox
                    ),
                ));
            }
            self.parsed.insert(handle.to_owned(), good);
        }
        Some(role)
    }
}

/// Clean a real-world `abuse-mailbox` value and parse the addresses in it:
/// parenthesised remarks (`abuse@x.example (preferred)`), trailing commas,
/// `<…>`, `mailto:` and several addresses separated by commas, semicolons or
/// spaces. Returns the good addresses and the first problem, if any.
fn parse_mailboxes(raw: &str) -> (Vec<EmailAddress>, Option<String>) {
    let mut without_remarks = String::with_capacity(raw.len());
    let mut depth = 0usize;
    for c in raw.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => without_remarks.push(c),
            _ => {}
        }
    }
    let mut good = Vec::new();
    let mut problem = None;
    for piece in without_remarks.split(|c: char| c == ',' || c == ';' || c.is_whitespace()) {
        let piece =
            piece.trim_matches(|c: char| matches!(c, '<' | '>' | '"' | '\'') || c.is_whitespace());
        let piece = strip_prefix_ignore_case(piece, "mailto:").trim_end_matches('.');
        if piece.is_empty() {
            continue;
        }
        match EmailAddress::parse(piece) {
            Ok(email) => {
                if !good.contains(&email) {
                    good.push(email);
                }
            }
            Err(e) => {
                problem.get_or_insert(e);
            }
        }
    }
    if good.is_empty() && problem.is_none() {
        problem = Some("no e-mail address in it".to_owned());
    }
    (good, problem)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> &'a str {
    match s.get(..prefix.len()) {
        Some(head) if head.eq_ignore_ascii_case(prefix) => &s[prefix.len()..],
        _ => s,
    }
}

/// `AS64500` (any case, spaces tolerated) → 64500.
fn parse_asn(key: &str) -> Option<u32> {
    let key = key.trim();
    let digits = strip_prefix_ignore_case(key, "AS");
    if digits.len() == key.len() {
        return None;
    }
    digits.trim().parse().ok()
}

/// An upper-cased handle, or `None` when absent or empty.
fn handle(value: Option<&str>) -> Option<String> {
    value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_ascii_uppercase)
}

/// Names arrive with continuation newlines and runs of spaces; a name is one
/// line with single spaces.
fn clean_name(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::path::Path;

    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/formats/ripe");

    fn text(s: &str) -> Box<dyn BufRead + Send> {
        Box::new(Cursor::new(s.as_bytes().to_vec()))
    }

    fn sample(name: &str) -> (String, Box<dyn BufRead + Send>) {
        let path = Path::new(SAMPLES).join(name);
        (
            name.to_owned(),
            super::super::input::open_input(&path).unwrap(),
        )
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The CIDRs an organisation holds, sorted (file order varies).
    fn networks_of(snapshot: &Snapshot, reference: &str) -> Vec<IpNet> {
        let mut nets: Vec<IpNet> = snapshot
            .networks
            .iter()
            .filter(|n| n.organisation_ref == reference)
            .map(|n| n.cidr)
            .collect();
        nets.sort();
        nets
    }

    fn org<'a>(snapshot: &'a Snapshot, reference: &str) -> &'a ImportedOrganisation {
        snapshot
            .organisations
            .iter()
            .find(|o| o.reference == reference)
            .unwrap_or_else(|| panic!("no organisation {reference}"))
    }

    fn emails(o: &ImportedOrganisation) -> Vec<&str> {
        o.contacts.iter().map(|c| c.email.as_str()).collect()
    }

    fn check_constructed_no(s: &Snapshot) {
        let refs: Vec<&str> = s
            .organisations
            .iter()
            .map(|o| o.reference.as_str())
            .collect();
        assert_eq!(refs, ["EKAB1-RIPE", "ORG-EXA1-RIPE", "ORG-FJN1-RIPE"]);

        let fjn = org(s, "ORG-FJN1-RIPE");
        assert_eq!(fjn.name, "Fjordnett AS");
        assert_eq!(fjn.org_number, None);
        assert_eq!(fjn.sector, None);
        assert_eq!(
            fjn.contacts,
            vec![ImportedContact {
                email: EmailAddress::parse("abuse@fjordnett.example.no").unwrap(),
                name: Some("Fjordnett NOC".to_owned()),
                role: ContactRole::Abuse,
                language: Language::Nb,
            }]
        );
        let exa = org(s, "ORG-EXA1-RIPE");
        assert_eq!(exa.name, "Eksempel Kommune");
        assert_eq!(emails(exa), ["abuse@eksempel-kommune.example.no"]);
        assert_eq!(
            exa.contacts[0].name.as_deref(),
            Some("Eksempel Kommune abuse desk")
        );
        let ekab = org(s, "EKAB1-RIPE");
        assert_eq!(ekab.name, "Eksempel Kommune abuse desk");
        assert_eq!(emails(ekab), ["abuse@eksempel-kommune.example.no"]);

        assert_eq!(
            networks_of(s, "ORG-FJN1-RIPE"),
            [net("198.18.0.0/15"), net("2001:db8:4000::/34")]
        );
        assert_eq!(
            networks_of(s, "ORG-EXA1-RIPE"),
            [
                net("198.18.4.0/23"),
                net("198.18.6.0/24"),
                net("2001:db8:4000:1200::/56")
            ]
        );
        assert_eq!(networks_of(s, "EKAB1-RIPE"), [net("198.18.9.64/26")]);
        assert_eq!(s.networks.len(), 6);
        assert!(s.networks.iter().all(|n| n.source == Source::Registry));
        let exa_net = s
            .networks
            .iter()
            .find(|n| n.cidr == net("198.18.6.0/24"))
            .unwrap();
        assert_eq!(exa_net.name.as_deref(), Some("EKSEMPEL-KOMMUNE-NET"));

        assert_eq!(
            s.asns,
            vec![ImportedAsn {
                asn: 64500,
                organisation_ref: "ORG-FJN1-RIPE".to_owned(),
                name: Some("FJORDNETT-AS".to_owned()),
            }]
        );
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    }

    #[test]
    fn constructed_norway() {
        let s = read_ripe(vec![sample("ripe_constructed_no.txt")], "NO").unwrap();
        check_constructed_no(&s);
        // Country is case-insensitive.
        let lower = read_ripe(vec![sample("ripe_constructed_no.txt")], "no").unwrap();
        assert_eq!(lower, s);
    }

    #[test]
    fn constructed_gzip_through_open_input() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write;
        let data = std::fs::read(Path::new(SAMPLES).join("ripe_constructed_no.txt")).unwrap();
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&data).unwrap();
        let gz = enc.finish().unwrap();
        let dir = std::env::temp_dir().join(format!("varsel-ripe-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ripe.db.inetnum.gz");
        std::fs::write(&path, &gz).unwrap();
        let input = super::super::input::open_input(&path).unwrap();
        let s = read_ripe(vec![("ripe.db.inetnum.gz".to_owned(), input)], "NO").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        check_constructed_no(&s);
    }

    #[test]
    fn split_files_in_any_order_match_one_file() {
        // Cut the constructed file into one file per object, reversed.
        let data =
            std::fs::read_to_string(Path::new(SAMPLES).join("ripe_constructed_no.txt")).unwrap();
        let mut chunks: Vec<&str> = data.split("\n\n").collect();
        chunks.reverse();
        let files: Vec<(String, Box<dyn BufRead + Send>)> = chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| (format!("part{i}"), text(chunk)))
            .collect();
        let s = read_ripe(files, "NO").unwrap();
        check_constructed_no(&s);
    }

    #[test]
    fn other_country_sees_only_its_own() {
        let s = read_ripe(vec![sample("ripe_constructed_no.txt")], "SE").unwrap();
        // The SE inetnum has neither org: nor abuse-c:.
        assert!(s.networks.is_empty());
        assert!(s.organisations.is_empty());
        assert!(s.asns.is_empty());
        assert_eq!(s.rejected.len(), 1);
        assert!(s.rejected[0].reason.contains("no org: or abuse-c:"));
    }

    #[test]
    fn irrd_sample_italy_leading_zeros_without_owner() {
        let s = read_ripe(vec![sample("ripe_objects_irrd2018_sample.txt")], "IT").unwrap();
        assert!(s.networks.is_empty());
        assert_eq!(s.rejected.len(), 1);
        let r = &s.rejected[0];
        assert_eq!(r.file, "ripe_objects_irrd2018_sample.txt");
        assert_eq!(r.line, 1);
        assert!(
            r.reason.contains("no org: or abuse-c: names an owner"),
            "{}",
            r.reason
        );
        assert!(r.reason.contains("NETECONOMY-MG41731"), "{}", r.reason);

        // With an owner added, the leading-zero range is the /29.
        let data =
            std::fs::read_to_string(Path::new(SAMPLES).join("ripe_objects_irrd2018_sample.txt"))
                .unwrap()
                .replacen(
                    "country:        IT\n",
                    "country:        IT\norg: ORG-TI1-RIPE\n",
                    1,
                );
        let s = read_ripe(vec![("x".to_owned(), text(&data))], "IT").unwrap();
        assert_eq!(s.networks.len(), 1);
        assert_eq!(s.networks[0].cidr, net("80.16.151.184/29"));
        assert_eq!(s.networks[0].organisation_ref, "ORG-TI1-RIPE");
        assert!(s.rejected.is_empty());
        // The organisation object is not in the file: no organisation, the
        // network still names it.
        assert!(s.organisations.is_empty());
    }

    #[test]
    fn irrd_sample_germany_inet6num_without_owner() {
        let s = read_ripe(vec![sample("ripe_objects_irrd2018_sample.txt")], "DE").unwrap();
        assert!(s.networks.is_empty());
        assert_eq!(s.rejected.len(), 1);
        assert_eq!(s.rejected[0].line, 14);
        assert!(
            s.rejected[0]
                .reason
                .starts_with("inet6num 2001:638:501::/48 (UNI-ESSEN): no org:")
        );
    }

    #[test]
    fn roles_only_is_empty() {
        let s = read_ripe(vec![sample("ripe_role_sample.txt")], "NO").unwrap();
        assert_eq!(s, Snapshot::default());
        let s = read_ripe(Vec::new(), "NO").unwrap();
        assert_eq!(s, Snapshot::default());
    }

    #[test]
    fn role_sample_messy_mailboxes_become_clean_contacts() {
        // Networks naming the sample's roles as abuse-c give each role an
        // owner; its `abuse@….example,` and `… (preferred)` come out clean.
        let nets = "inetnum: 192.0.2.0 - 192.0.2.255\nnetname: NET-A\ncountry: NO\nabuse-c: AR64501-RIPE\n\n\
                    inetnum: 198.51.100.0 - 198.51.100.255\nnetname: NET-B\ncountry: NO\nabuse-c: hnc12-ripe\n";
        let s = read_ripe(
            vec![
                sample("ripe_role_sample.txt"),
                ("nets".to_owned(), text(nets)),
            ],
            "NO",
        )
        .unwrap();
        assert!(s.rejected.is_empty(), "{:?}", s.rejected);
        let refs: Vec<&str> = s
            .organisations
            .iter()
            .map(|o| o.reference.as_str())
            .collect();
        assert_eq!(refs, ["AR64501-RIPE", "HNC12-RIPE"]);
        let ar = org(&s, "AR64501-RIPE");
        assert_eq!(ar.name, "Abuse-C Role");
        assert_eq!(emails(ar), ["abuse@nordvik-telekom.example"]);
        let hnc = org(&s, "HNC12-RIPE");
        assert_eq!(hnc.name, "Havlys Nett Contacts");
        assert_eq!(emails(hnc), ["abuse@havlys-nett.example"]);
        assert_eq!(networks_of(&s, "HNC12-RIPE"), [net("198.51.100.0/24")]);
    }

    /// Assignments without org: or abuse-c:, their contact roles after them
    /// (files come in any order).
    const CONTACT_OWNERS: &str = "\
inetnum:      192.0.2.0 - 192.0.2.255
netname:      ADMIN-ROLE-NET
country:      NO
admin-c:      ADM1-RIPE
tech-c:       TEC1-RIPE

inetnum:      198.51.100.0 - 198.51.100.255
netname:      TECH-ROLE-NET
country:      NO
admin-c:      DUMY-RIPE
admin-c:      NOMAIL-RIPE
tech-c:       tec1-ripe

inet6num:     2001:db8:100::/48
netname:      BROKEN-ADMIN-NET
country:      NO
admin-c:      BAD1-RIPE
tech-c:       ADM1-RIPE

inetnum:      203.0.113.0 - 203.0.113.255
netname:      NOBODY-NET
country:      NO
admin-c:      DUMY-RIPE
tech-c:       NOMAIL-RIPE

inetnum:      203.0.113.0 - 203.0.113.255
netname:      NO-CONTACTS-AT-ALL
country:      NO

role:         Admin desk
nic-hdl:      ADM1-RIPE
abuse-mailbox: abuse@admin.example

role:         Tech desk
nic-hdl:      TEC1-RIPE
abuse-mailbox: noc@tech.example (24/7)

role:         Broken desk
nic-hdl:      BAD1-RIPE
abuse-mailbox: nobody at all

role:         No mailbox
nic-hdl:      NOMAIL-RIPE
";

    #[test]
    fn owner_from_the_admin_c_then_tech_c_role_with_a_mailbox() {
        let s = read_ripe(vec![("c".to_owned(), text(CONTACT_OWNERS))], "NO").unwrap();
        let owners: Vec<(IpNet, &str)> = s
            .networks
            .iter()
            .map(|n| (n.cidr, n.organisation_ref.as_str()))
            .collect();
        assert_eq!(
            owners,
            [
                (net("192.0.2.0/24"), "ADM1-RIPE"),
                // The person and the role without a mailbox are passed by.
                (net("198.51.100.0/24"), "TEC1-RIPE"),
                // A mailbox without an address is no contact either.
                (net("2001:db8:100::/48"), "ADM1-RIPE"),
            ]
        );
        let adm = org(&s, "ADM1-RIPE");
        assert_eq!(adm.name, "Admin desk");
        assert_eq!(emails(adm), ["abuse@admin.example"]);
        assert_eq!(adm.contacts[0].role, ContactRole::Abuse);
        assert_eq!(emails(org(&s, "TEC1-RIPE")), ["noc@tech.example"]);
        assert_eq!(s.organisations.len(), 2);
        assert_eq!(
            s.inferred,
            BTreeMap::from([(OWNER_FROM_ADMIN_C, 1), (OWNER_FROM_TECH_C, 2)])
        );
        let reasons: Vec<(u64, &str)> = s
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                (
                    20,
                    "inetnum 203.0.113.0 - 203.0.113.255 (NOBODY-NET): no org: or abuse-c: names an owner, and no admin-c: or tech-c: role has a usable abuse-mailbox"
                ),
                (
                    26,
                    "inetnum 203.0.113.0 - 203.0.113.255 (NO-CONTACTS-AT-ALL): no org: or abuse-c: names an owner, and no admin-c: or tech-c: role has a usable abuse-mailbox"
                ),
                (
                    38,
                    "role \"Broken desk\" (BAD1-RIPE): abuse-mailbox \"nobody at all\": \"nobody\" is not an e-mail address"
                ),
            ]
        );
        // Roles read before the assignments decide the same.
        let (nets, roles) = CONTACT_OWNERS.split_at(CONTACT_OWNERS.find("role:").unwrap());
        let s2 = read_ripe(
            vec![("r".to_owned(), text(roles)), ("n".to_owned(), text(nets))],
            "NO",
        )
        .unwrap();
        assert_eq!(s2.networks, s.networks);
        assert_eq!(s2.inferred, s.inferred);
    }

    const MESSY: &str = "\
organisation: ORG-A1-RIPE
org-name:     Alpha
  Networks   AS
country:      NO
abuse-c:      bad1-ripe

organisation: ORG-B1-RIPE
org-name:     Beta AS
country:      NO
abuse-c:      MULTI1-RIPE

organisation: ORG-C1-RIPE
org-name:     Gamma (country NO, no networks)
country:      NO

organisation: ORG-D1-RIPE
org-name:     Delta, Sweden
country:      SE

role:         Broken desk
nic-hdl:      BAD1-RIPE
abuse-mailbox: abuse at alpha dot example

role:         Multi desk
nic-hdl:      MULTI1-RIPE
abuse-mailbox: <abuse@beta.example>; noc@BETA.example, abuse@beta.example

role:         Net desk
nic-hdl:      NET1-RIPE
abuse-mailbox: mailto:net@beta.example.

role:         No mailbox
nic-hdl:      NOMAIL-RIPE

inetnum:      192.0.2.0 - 192.0.2.255
netname:      ALPHA-NET
country:      no
org:          org-a1-ripe

inetnum:      198.51.100.0 - 198.51.100.255
netname:      BETA-NET
country:      SE
country:      NO
org:          ORG-B1-RIPE
abuse-c:      NET1-RIPE

inetnum:      198.51.101.0 - 198.51.101.255
netname:      BETA-NET-2
country:      NO
org:          ORG-B1-RIPE
abuse-c:      MULTI1-RIPE

inetnum:      203.0.113.0 - 203.0.113.127
netname:      ROLE-WITHOUT-OBJECT
country:      NO
abuse-c:      NOMAIL-RIPE

inetnum:      10.0.0.0 - 10.0.2.255
netname:      PARENT
country:      NO
org:          ORG-B1-RIPE

inetnum:      10.0.2.0 - 10.0.2.255
netname:      CHILD
country:      NO
org:          ORG-A1-RIPE

inetnum:      10.9.0.9 - 10.9.0.1
country:      NO
org:          ORG-A1-RIPE

inet6num:     2001:db8::1/32
country:      NO
org:          ORG-A1-RIPE

aut-num:      AS64501
as-name:      GAMMA
org:          ORG-C1-RIPE

aut-num:      AS64502
as-name:      DELTA
org:          ORG-D1-RIPE

aut-num:      AS64503
org:          ORG-UNKNOWN-RIPE

aut-num:      AS64504

aut-num:      ASX
org:          ORG-C1-RIPE

aut-num:      as64501
org:          ORG-A1-RIPE
";

    #[test]
    fn messy_data() {
        let s = read_ripe(vec![("messy".to_owned(), text(MESSY))], "NO").unwrap();
        let refs: Vec<&str> = s
            .organisations
            .iter()
            .map(|o| o.reference.as_str())
            .collect();
        assert_eq!(
            refs,
            ["NOMAIL-RIPE", "ORG-A1-RIPE", "ORG-B1-RIPE", "ORG-C1-RIPE"]
        );

        let a = org(&s, "ORG-A1-RIPE");
        assert_eq!(a.name, "Alpha Networks AS");
        assert!(a.contacts.is_empty());
        let b = org(&s, "ORG-B1-RIPE");
        assert_eq!(
            emails(b),
            ["abuse@beta.example", "noc@beta.example", "net@beta.example"]
        );
        assert_eq!(b.contacts[2].name.as_deref(), Some("Net desk"));
        // Owner role not in the files (no mailbox): named after the netname.
        let nomail = org(&s, "NOMAIL-RIPE");
        assert_eq!(nomail.name, "ROLE-WITHOUT-OBJECT");
        assert!(nomail.contacts.is_empty());
        // In the country by its own object, through its aut-num.
        assert_eq!(
            org(&s, "ORG-C1-RIPE").name,
            "Gamma (country NO, no networks)"
        );

        // The child's /24 beats the same /24 split off the unaligned parent.
        assert_eq!(
            networks_of(&s, "ORG-B1-RIPE"),
            [
                net("10.0.0.0/23"),
                net("198.51.100.0/24"),
                net("198.51.101.0/24"),
            ]
        );
        assert_eq!(
            networks_of(&s, "ORG-A1-RIPE"),
            [net("10.0.2.0/24"), net("192.0.2.0/24")]
        );
        let child = s
            .networks
            .iter()
            .find(|n| n.cidr == net("10.0.2.0/24"))
            .unwrap();
        assert_eq!(child.name.as_deref(), Some("CHILD"));

        let asns: Vec<(u32, &str)> = s
            .asns
            .iter()
            .map(|a| (a.asn, a.organisation_ref.as_str()))
            .collect();
        assert_eq!(asns, [(64501, "ORG-C1-RIPE")]);

        let reasons: Vec<(u64, &str)> = s
            .rejected
            .iter()
            .map(|r| (r.line, r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 4, "{reasons:#?}");
        assert!(
            reasons[0]
                .1
                .starts_with("role \"Broken desk\" (BAD1-RIPE): abuse-mailbox"),
            "{reasons:?}"
        );
        assert_eq!(reasons[0].0, 20);
        assert!(
            reasons[1].1.contains("ends before it starts"),
            "{reasons:?}"
        );
        assert!(reasons[2].1.contains("host bits"), "{reasons:?}");
        assert!(reasons[3].1.contains("not an AS number"), "{reasons:?}");
        assert!(s.rejected.iter().all(|r| r.file == "messy"));
        // What was passed over on purpose, by reason.
        assert_eq!(
            s.skipped,
            BTreeMap::from([
                (SKIP_AUT_NUM_NO_ORG, 1),
                (SKIP_AUT_NUM_ELSEWHERE, 2),
                (SKIP_AUT_NUM_REPEATED, 1),
                (SKIP_ORGANISATION_ELSEWHERE, 1),
            ])
        );
        let sweden = read_ripe(vec![("messy".to_owned(), text(MESSY))], "SE").unwrap();
        // Eight networks, one of them also in SE; Delta holds an ASN there.
        assert_eq!(
            sweden.skipped,
            BTreeMap::from([
                (SKIP_OTHER_COUNTRY, 7),
                (SKIP_AUT_NUM_NO_ORG, 1),
                (SKIP_AUT_NUM_ELSEWHERE, 4),
                (SKIP_ORGANISATION_ELSEWHERE, 2),
            ])
        );
    }

    #[test]
    fn english_outside_norway() {
        let data = "organisation: ORG-S1-RIPE\norg-name: S\nabuse-c: R1\n\nrole: R\nnic-hdl: R1\nabuse-mailbox: a@s.example\n\ninetnum: 192.0.2.0 - 192.0.2.255\ncountry: SE\norg: ORG-S1-RIPE\n";
        let s = read_ripe(vec![("x".to_owned(), text(data))], "SE").unwrap();
        assert_eq!(s.organisations[0].contacts[0].language, Language::En);
    }

    #[test]
    fn latin1_names() {
        let mut data = b"organisation: ORG-B1-RIPE\norg-name: B\xe6rum kommune\n\n".to_vec();
        data.extend_from_slice(
            b"inetnum: 192.0.2.0 - 192.0.2.255\ncountry: NO\norg: ORG-B1-RIPE\n",
        );
        let input: Box<dyn BufRead + Send> = Box::new(Cursor::new(data));
        let s = read_ripe(vec![("x".to_owned(), input)], "NO").unwrap();
        assert_eq!(s.organisations[0].name, "Bærum kommune");
    }

    #[test]
    fn mailbox_cleaning() {
        let ok = |raw: &str| -> Vec<String> {
            let (good, bad) = parse_mailboxes(raw);
            assert!(bad.is_none(), "{raw}: {bad:?}");
            good.iter().map(|e| e.as_str().to_owned()).collect()
        };
        assert_eq!(ok("abuse@x.example,"), ["abuse@x.example"]);
        assert_eq!(ok("abuse@x.example (preferred)"), ["abuse@x.example"]);
        assert_eq!(ok("  abuse@X.Example  "), ["abuse@x.example"]);
        assert_eq!(
            ok("a@x.example, b@x.example"),
            ["a@x.example", "b@x.example"]
        );
        assert!(parse_mailboxes("(nothing)").1.is_some());
        assert!(parse_mailboxes("not-an-address").1.is_some());
        let (good, bad) = parse_mailboxes("a@x.example and");
        assert_eq!(good.len(), 1);
        assert!(bad.is_some());
    }

    /// End-to-end on a synthetic dump: 200 000 inetnums (half in NO), their
    /// organisations and roles, plain and gzip.
    /// `cargo test --release -- --ignored --nocapture ripe_speed`
    #[test]
    #[ignore]
    fn ripe_speed() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::fmt::Write as _;
        use std::io::Write as _;
        const N: u32 = 200_000;
        let mut text = String::new();
        for i in 0..N / 4 {
            writeln!(text, "organisation:   ORG-N{i}-RIPE\norg-name:       Org {i} AS\norg-type:       OTHER\naddress:        Dummy\nabuse-c:        AR{i}-RIPE\ncountry:        NO\nmnt-by:         X-MNT\nsource:         RIPE # Filtered\n").unwrap();
            writeln!(text, "role:           Abuse {i}\naddress:        Dummy\ne-mail:         unread@ripe.net\nabuse-mailbox:  abuse@n{i}.example.no,\nnic-hdl:        AR{i}-RIPE\nmnt-by:         X-MNT\nsource:         RIPE # Filtered\n").unwrap();
        }
        for i in 0..N {
            let (h, a, b) = (10 + (i >> 16), (i >> 8) & 0xff, i & 0xff);
            let country = if i % 2 == 0 { "NO" } else { "SE" };
            writeln!(text, "inetnum:        {h}.{a}.{b}.0 - {h}.{a}.{b}.255\nnetname:        NET-{i}\ndescr:          Customer {i}\ncountry:        {country}\norg:            ORG-N{}-RIPE\nadmin-c:        DUMY-RIPE\ntech-c:         DUMY-RIPE\nstatus:         ASSIGNED PA\nmnt-by:         X-MNT\nsource:         RIPE # Filtered\n", i / 4).unwrap();
        }
        let bytes = text.into_bytes();
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(&bytes).unwrap();
        let gz = enc.finish().unwrap();
        let objects = f64::from(N + N / 2);

        let start = std::time::Instant::now();
        let s = read_ripe(
            vec![("plain".to_owned(), Box::new(Cursor::new(bytes.clone())))],
            "NO",
        )
        .unwrap();
        let plain = start.elapsed();
        assert_eq!(s.networks.len(), (N / 2) as usize);
        assert_eq!(s.organisations.len(), (N / 4) as usize);
        assert!(s.rejected.is_empty());

        let start = std::time::Instant::now();
        let input = super::super::input::open_input_with(Cursor::new(gz.clone())).unwrap();
        let s2 = read_ripe(vec![("gz".to_owned(), input)], "NO").unwrap();
        let packed = start.elapsed();
        assert_eq!(s2.networks.len(), s.networks.len());

        for (label, t) in [("plain", plain), ("gzip", packed)] {
            println!(
                "read_ripe {label}: {objects} objects ({:.1} MB) in {:.3} s = {:.0} objects/s",
                bytes.len() as f64 / 1e6,
                t.as_secs_f64(),
                objects / t.as_secs_f64()
            );
        }
    }

    #[test]
    fn asn_keys() {
        assert_eq!(parse_asn("AS64500"), Some(64500));
        assert_eq!(parse_asn("as 64500"), Some(64500));
        assert_eq!(parse_asn("64500"), None);
        assert_eq!(parse_asn("AS4294967296"), None);
        assert_eq!(parse_asn("AS"), None);
    }
}
