//! The in-memory prefix table: longest-prefix match over every registered
//! network (all of its history), answering "who owned this address at time t"
//! in well under a microsecond.
//!
//! Written by hand because the crates that do longest-prefix match (e.g.
//! `prefix-trie`, `ip_network_table`) hold one value per prefix; here a prefix
//! has several rows over time and by source, and the answer depends on the
//! time asked about. CIDRs either nest or are disjoint, so the address space
//! cuts into elementary segments, each with the short list of prefixes that
//! cover it, best first. A lookup is one binary search and a walk of that list
//! for the first row valid at the time asked.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;
use std::net::IpAddr;

use crate::registry::model::Source;

/// Microseconds since the Unix epoch; `None` bounds are open.
pub type Micros = i64;

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkRow {
    pub network_id: i64,
    pub organisation_id: i64,
    pub organisation_ref: Arc<str>,
    pub cidr: IpNet,
    pub source: Source,
    /// Entered by a person through the API (beats an import of equal source).
    pub by_hand: bool,
    pub valid_from: Option<Micros>,
    pub valid_to: Option<Micros>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AsnRow {
    pub asn_id: i64,
    pub asn: u32,
    pub organisation_id: i64,
    pub organisation_ref: Arc<str>,
    pub source: Source,
    pub by_hand: bool,
    pub valid_from: Option<Micros>,
    pub valid_to: Option<Micros>,
}

fn valid_at(from: Option<Micros>, to: Option<Micros>, at: Micros) -> bool {
    from.is_none_or(|f| f <= at) && to.is_none_or(|t| at < t)
}

/// Preference among rows for the same prefix (or ASN): manual before
/// organisation-reported before registry, by hand before imported, newest
/// first.
fn preference(
    source: Source,
    by_hand: bool,
    valid_from: Option<Micros>,
) -> (u8, bool, std::cmp::Reverse<Micros>) {
    (
        source.rank(),
        !by_hand,
        std::cmp::Reverse(valid_from.unwrap_or(Micros::MIN)),
    )
}

/// Segments over one address family, keys as unsigned integers.
#[derive(Debug, Default)]
struct Segments<K> {
    /// Sorted; `starts[0]` is 0, so every key falls in a segment.
    starts: Vec<K>,
    /// Candidates of segment i: `candidates[offsets[i]..offsets[i + 1]]`.
    offsets: Vec<u32>,
    candidates: Vec<u32>,
}

trait Key: Copy + Ord + Default {
    const MAX: Self;
    fn succ(self) -> Self;
}

impl Key for u32 {
    const MAX: Self = u32::MAX;
    fn succ(self) -> Self {
        self + 1
    }
}

impl Key for u128 {
    const MAX: Self = u128::MAX;
    fn succ(self) -> Self {
        self + 1
    }
}

impl<K: Key> Segments<K> {
    /// `ranges`: (first, last inclusive, row index), for one family.
    fn build(mut ranges: Vec<(K, K, u32)>, rows: &[NetworkRow]) -> Self {
        // Parents before children: start ascending, end descending.
        ranges.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut bounds: Vec<K> = Vec::with_capacity(ranges.len() * 2 + 1);
        bounds.push(K::default());
        for &(first, last, _) in &ranges {
            bounds.push(first);
            if last != K::MAX {
                bounds.push(last.succ());
            }
        }
        bounds.sort_unstable();
        bounds.dedup();

        let mut offsets = Vec::with_capacity(bounds.len() + 1);
        let mut candidates = Vec::new();
        let mut stack: Vec<(K, u32)> = Vec::new();
        let mut next = 0;
        let mut scratch: Vec<u32> = Vec::new();
        for &b in &bounds {
            while stack.last().is_some_and(|&(last, _)| last < b) {
                stack.pop();
            }
            while next < ranges.len() && ranges[next].0 == b {
                stack.push((ranges[next].1, ranges[next].2));
                next += 1;
            }
            offsets.push(candidates.len() as u32);
            scratch.clear();
            scratch.extend(stack.iter().rev().map(|&(_, i)| i));
            // Longest prefix first; at equal length, the preferred row.
            scratch.sort_by_key(|&i| {
                let r = &rows[i as usize];
                (
                    std::cmp::Reverse(r.cidr.prefix_len()),
                    preference(r.source, r.by_hand, r.valid_from),
                )
            });
            candidates.extend_from_slice(&scratch);
        }
        offsets.push(candidates.len() as u32);
        Self {
            starts: bounds,
            offsets,
            candidates,
        }
    }

    fn find<'a>(&self, key: K, at: Micros, rows: &'a [NetworkRow]) -> Option<&'a NetworkRow> {
        let seg = self.starts.partition_point(|&s| s <= key).checked_sub(1)?;
        let (from, to) = (self.offsets[seg] as usize, self.offsets[seg + 1] as usize);
        self.candidates[from..to]
            .iter()
            .map(|&i| &rows[i as usize])
            .find(|r| valid_at(r.valid_from, r.valid_to, at))
    }
}

/// How an address was attributed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Match<'a> {
    Network(&'a NetworkRow),
    Asn(&'a AsnRow),
    None,
}

impl Match<'_> {
    pub fn organisation_id(&self) -> Option<i64> {
        match self {
            Match::Network(n) => Some(n.organisation_id),
            Match::Asn(a) => Some(a.organisation_id),
            Match::None => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Match::Network(_) => "network",
            Match::Asn(_) => "asn",
            Match::None => "none",
        }
    }
}

/// An immutable snapshot of the registry for attribution. Rebuilt whole when
/// the registry changes (tens of milliseconds for a national registry), and
/// shared by all requests through an `Arc`.
#[derive(Debug, Default)]
pub struct PrefixTable {
    /// The registry generation this snapshot reflects.
    pub generation: i64,
    rows: Vec<NetworkRow>,
    v4: Segments<u32>,
    v6: Segments<u128>,
    asns: HashMap<u32, Vec<AsnRow>>,
}

impl PrefixTable {
    pub fn new(generation: i64, rows: Vec<NetworkRow>, asn_rows: Vec<AsnRow>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            match row.cidr {
                IpNet::V4(n) => {
                    v4.push((u32::from(n.network()), u32::from(n.broadcast()), i as u32))
                }
                IpNet::V6(n) => {
                    v6.push((u128::from(n.network()), u128::from(n.broadcast()), i as u32))
                }
            }
        }
        let v4 = Segments::build(v4, &rows);
        let v6 = Segments::build(v6, &rows);
        let mut asns: HashMap<u32, Vec<AsnRow>> = HashMap::new();
        for row in asn_rows {
            asns.entry(row.asn).or_default().push(row);
        }
        for list in asns.values_mut() {
            list.sort_by_key(|r| preference(r.source, r.by_hand, r.valid_from));
        }
        Self {
            generation,
            rows,
            v4,
            v6,
            asns,
        }
    }

    pub fn network_rows(&self) -> usize {
        self.rows.len()
    }

    /// The longest registered prefix containing `ip` valid at `at`; else the
    /// owner of `asn` at `at`; else nothing.
    pub fn attribute(&self, ip: IpAddr, at: Micros, asn: Option<u32>) -> Match<'_> {
        let network = match ip {
            IpAddr::V4(a) => self.v4.find(u32::from(a), at, &self.rows),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                // ::ffff:a.b.c.d is an IPv4 address written as IPv6.
                Some(v4) => self.v4.find(u32::from(v4), at, &self.rows),
                None => self.v6.find(u128::from(a), at, &self.rows),
            },
        };
        if let Some(n) = network {
            return Match::Network(n);
        }
        if let Some(a) = asn
            .and_then(|asn| self.asns.get(&asn))
            .and_then(|list| list.iter().find(|r| valid_at(r.valid_from, r.valid_to, at)))
        {
            return Match::Asn(a);
        }
        Match::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(
        id: i64,
        cidr: &str,
        org: &str,
        source: Source,
        from: Option<i64>,
        to: Option<i64>,
    ) -> NetworkRow {
        NetworkRow {
            network_id: id,
            organisation_id: id * 10,
            organisation_ref: Arc::from(org),
            cidr: cidr.parse().unwrap(),
            source,
            by_hand: false,
            valid_from: from,
            valid_to: to,
        }
    }

    fn owner(t: &PrefixTable, ip: &str, at: i64) -> Option<String> {
        match t.attribute(ip.parse().unwrap(), at, None) {
            Match::Network(n) => Some(n.organisation_ref.to_string()),
            _ => None,
        }
    }

    #[test]
    fn longest_prefix_wins_and_gaps_are_empty() {
        let t = PrefixTable::new(
            1,
            vec![
                row(1, "10.0.0.0/8", "big", Source::Registry, None, None),
                row(2, "10.1.0.0/16", "mid", Source::Registry, None, None),
                row(3, "10.1.2.0/24", "small", Source::Registry, None, None),
                row(4, "10.2.0.0/16", "other", Source::Registry, None, None),
                row(5, "2001:db8::/32", "v6", Source::Registry, None, None),
                row(
                    6,
                    "2001:db8:1::/48",
                    "v6small",
                    Source::Registry,
                    None,
                    None,
                ),
            ],
            vec![],
        );
        assert_eq!(owner(&t, "10.1.2.3", 0).as_deref(), Some("small"));
        assert_eq!(owner(&t, "10.1.3.3", 0).as_deref(), Some("mid"));
        assert_eq!(owner(&t, "10.1.255.255", 0).as_deref(), Some("mid"));
        assert_eq!(owner(&t, "10.2.0.0", 0).as_deref(), Some("other"));
        assert_eq!(owner(&t, "10.3.0.1", 0).as_deref(), Some("big"));
        assert_eq!(owner(&t, "10.255.255.255", 0).as_deref(), Some("big"));
        assert_eq!(owner(&t, "11.0.0.0", 0), None);
        assert_eq!(owner(&t, "9.255.255.255", 0), None);
        assert_eq!(owner(&t, "0.0.0.0", 0), None);
        assert_eq!(owner(&t, "255.255.255.255", 0), None);
        assert_eq!(owner(&t, "2001:db8:1::5", 0).as_deref(), Some("v6small"));
        assert_eq!(owner(&t, "2001:db8:2::5", 0).as_deref(), Some("v6"));
        assert_eq!(owner(&t, "::ffff:10.1.2.3", 0).as_deref(), Some("small"));
        assert_eq!(owner(&t, "2001:db9::", 0), None);
    }

    #[test]
    fn whole_space_prefixes() {
        let t = PrefixTable::new(
            1,
            vec![
                row(1, "0.0.0.0/0", "all", Source::Registry, None, None),
                row(
                    2,
                    "255.255.255.255/32",
                    "last",
                    Source::Registry,
                    None,
                    None,
                ),
            ],
            vec![],
        );
        assert_eq!(owner(&t, "0.0.0.0", 0).as_deref(), Some("all"));
        assert_eq!(owner(&t, "255.255.255.255", 0).as_deref(), Some("last"));
        assert_eq!(owner(&t, "255.255.255.254", 0).as_deref(), Some("all"));
    }

    #[test]
    fn history_and_ties() {
        let t = PrefixTable::new(
            1,
            vec![
                row(1, "192.0.2.0/24", "old", Source::Registry, None, Some(100)),
                row(2, "192.0.2.0/24", "new", Source::Registry, Some(100), None),
                row(
                    3,
                    "198.51.100.0/24",
                    "imported",
                    Source::Registry,
                    None,
                    None,
                ),
                row(4, "198.51.100.0/24", "analyst", Source::Manual, None, None),
                row(5, "203.0.113.0/25", "ended", Source::Manual, None, Some(50)),
                row(6, "203.0.113.0/24", "parent", Source::Registry, None, None),
            ],
            vec![],
        );
        assert_eq!(owner(&t, "192.0.2.7", 99).as_deref(), Some("old"));
        assert_eq!(owner(&t, "192.0.2.7", 100).as_deref(), Some("new"));
        assert_eq!(owner(&t, "198.51.100.1", 0).as_deref(), Some("analyst"));
        // An ended more-specific falls back to the parent after its end.
        assert_eq!(owner(&t, "203.0.113.1", 49).as_deref(), Some("ended"));
        assert_eq!(owner(&t, "203.0.113.1", 50).as_deref(), Some("parent"));
    }

    #[test]
    fn asn_fallback() {
        let t = PrefixTable::new(
            1,
            vec![row(1, "192.0.2.0/24", "net", Source::Registry, None, None)],
            vec![AsnRow {
                asn_id: 1,
                asn: 64500,
                organisation_id: 7,
                organisation_ref: Arc::from("asn-owner"),
                source: Source::Registry,
                by_hand: false,
                valid_from: None,
                valid_to: None,
            }],
        );
        let ip = "198.51.100.1".parse().unwrap();
        assert!(matches!(t.attribute(ip, 0, Some(64500)), Match::Asn(a) if a.organisation_id == 7));
        assert!(matches!(t.attribute(ip, 0, Some(64501)), Match::None));
        assert!(matches!(
            t.attribute("192.0.2.1".parse().unwrap(), 0, Some(64500)),
            Match::Network(_)
        ));
    }
}
