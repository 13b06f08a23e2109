//! `varsel bench dataset`: the synthetic data set the benchmarks and the
//! tests run on. This module owns its shape and the truth that comes with it.
//!
//! Shaped like a national address space: a few hundred providers hold large
//! IPv4 allocations and an IPv6 /32 each, tens of thousands of organisations
//! hold small assignments nested inside them (so longest-prefix match
//! matters), and scan observations fall mostly inside assignments, partly
//! only inside provider space, and a few in space nobody registered
//! (`11.0.0.0/8`), which must end up unattributed.
//!
//! One folder, four files:
//! - `organisations.csv`: `ref,name,org_number,sector,email,language`
//! - `networks.csv`: `cidr,organisation_ref,source`
//! - `observations.ndjson`: one canonical observation (DESIGN.md) per line
//! - `truth.csv`: `ip,organisation_ref`, one row per distinct observed
//!   address in order of first sighting: its owner by longest-prefix match
//!   over networks.csv, empty for none
//!
//! A spec gives the same bytes on every run and platform: one ChaCha8 stream
//! seeded from the seed, sampled only through fixed-width integers and `f64`
//! (rand samples `usize` differently on 32- and 64-bit targets), and hash
//! maps are only looked up, never iterated into the output. The shape follows
//! the `gen_dataset.py` this replaced, not its random stream.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// `varsel bench dataset OUT …`
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// Folder to write into; created if missing, its four files replaced.
    pub out: PathBuf,
    /// Organisations holding assignments; providers come on top (one per 40,
    /// at least 20).
    #[arg(long, default_value_t = DatasetSpec::default().organisations)]
    pub orgs: u32,
    #[arg(long, default_value_t = DatasetSpec::default().observations)]
    pub observations: u64,
    #[arg(long, default_value_t = DatasetSpec::default().seed)]
    pub seed: u64,
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Organisations holding assignments, providers not counted.
    pub organisations: u32,
    pub observations: u64,
    pub seed: u64,
}

impl Default for DatasetSpec {
    /// The benchmark set of BENCHMARKS.md.
    fn default() -> Self {
        Self {
            organisations: 20_000,
            observations: 1_000_000,
            seed: 2021,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub providers: usize,
    /// Rows of organisations.csv, providers included.
    pub organisations: usize,
    /// Rows of networks.csv: `allocations + assignments`.
    pub networks: usize,
    /// Provider networks, IPv6 /32s included.
    pub allocations: usize,
    /// Organisations' networks, each inside an allocation.
    pub assignments: usize,
    /// Of `networks`, how many are IPv6.
    pub ipv6_networks: usize,
    pub observations: u64,
    /// Hosts drawn; observations beyond the first `hosts` re-observe them.
    pub hosts: usize,
    /// Rows of truth.csv: distinct observed addresses.
    pub addresses: usize,
    /// Of `addresses`, how many have no owner.
    pub unattributed: usize,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} organisations ({} providers), {} networks ({} allocations, {} assignments, {} IPv6), \
             {} observations of {} hosts, truth for {} distinct addresses ({} unattributed)",
            self.organisations,
            self.providers,
            self.networks,
            self.allocations,
            self.assignments,
            self.ipv6_networks,
            self.observations,
            self.hosts,
            self.addresses,
            self.unattributed
        )
    }
}

/// The command: generate, then say what and how fast.
pub fn run(args: &DatasetArgs) -> anyhow::Result<()> {
    let spec = DatasetSpec {
        organisations: args.orgs,
        observations: args.observations,
        seed: args.seed,
    };
    let started = Instant::now();
    let summary = generate(&args.out, &spec)?;
    println!(
        "{}: {summary}; {:.2} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

const SECTORS: [&str; 12] = [
    "energy",
    "health",
    "finance",
    "transport",
    "public",
    "municipality",
    "education",
    "telecom",
    "industry",
    "retail",
    "media",
    "defence-supplier",
];

struct Check {
    name: &'static str,
    cves: &'static [&'static str],
    severity: &'static str,
    port: u16,
}

/// The March 2021 picture: the two Exchange chains, and two exposures.
const CHECKS: [Check; 4] = [
    Check {
        name: "exchange-proxylogon",
        cves: &[
            "CVE-2021-26855",
            "CVE-2021-26857",
            "CVE-2021-26858",
            "CVE-2021-27065",
        ],
        severity: "critical",
        port: 443,
    },
    Check {
        name: "exchange-proxyshell",
        cves: &["CVE-2021-34473", "CVE-2021-34523", "CVE-2021-31207"],
        severity: "critical",
        port: 443,
    },
    Check {
        name: "rdp-open",
        cves: &[],
        severity: "medium",
        port: 3389,
    },
    Check {
        name: "smbv1-open",
        cves: &[],
        severity: "high",
        port: 445,
    },
];

const EXCHANGE_VERSIONS: [&str; 4] = ["15.1.2176.2", "15.2.792.3", "15.0.1497.12", "15.2.858.5"];

/// First octet of the space nobody registers: observations there are the
/// ones truth.csv leaves without owner.
const UNREGISTERED_V4: u128 = 11;

/// First octets kept out of allocations: private, shared, loopback,
/// link-local and documentation space, and [`UNREGISTERED_V4`].
const RESERVED_FIRST_OCTETS: [u32; 9] = [10, 11, 100, 127, 169, 172, 192, 198, 203];

/// One CIDR as an integer range; IPv4 addresses in the low 32 bits.
#[derive(Debug, Clone, Copy)]
struct Net {
    v6: bool,
    start: u128,
    len: u8,
    /// Index into the organisation list (providers first).
    owner: u32,
}

impl Net {
    fn bits(&self) -> u8 {
        if self.v6 { 128 } else { 32 }
    }

    fn size(&self) -> u128 {
        // Allocations are /20 or longer (IPv4) and /32 or longer (IPv6), so
        // the shift never reaches 128.
        1u128 << (self.bits() - self.len)
    }

    fn end(&self) -> u128 {
        self.start + (self.size() - 1)
    }

    fn to_ipnet(self) -> IpNet {
        // The lengths come from the ranges drawn below, all valid; the
        // constructors fail only on a length beyond the family's width.
        if self.v6 {
            IpNet::V6(Ipv6Net::new(Ipv6Addr::from(self.start), self.len).expect("IPv6 length"))
        } else {
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(self.start as u32), self.len).expect("IPv4 length"),
            )
        }
    }
}

fn address(v6: bool, x: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

/// The seeded stream, and the only ways this module draws from it.
struct Draw(ChaCha8Rng);

impl Draw {
    /// Uniform in `0..n`, `n > 0`.
    fn below(&mut self, n: u64) -> u64 {
        self.0.gen_range(0..n)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u32, hi: u32) -> u32 {
        self.0.gen_range(lo..=hi)
    }

    /// One of `items`, which is not empty.
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        self.0.r#gen::<f64>()
    }
}

/// All /12 blocks of public-looking IPv4 space allocations are made in, as
/// first addresses.
fn slash12_blocks() -> Vec<u32> {
    (2..=223u32)
        .filter(|first| !RESERVED_FIRST_OCTETS.contains(first))
        .flat_map(|first| (0..16u32).map(move |second| first << 24 | second << 20))
        .collect()
}

/// Writes the four files of `spec` into `out`.
pub fn generate(out: &Path, spec: &DatasetSpec) -> anyhow::Result<Summary> {
    let providers = (spec.organisations / 40).max(20);
    // Each provider takes up to three /12 blocks of its own, so allocations
    // never overlap; the limit is checked up front rather than discovered
    // half-way through a seed-dependent draw.
    let blocks = slash12_blocks();
    anyhow::ensure!(
        providers as usize * 3 <= blocks.len(),
        "{} organisations need {providers} providers, more than the {} IPv4 /12 blocks \
         allow; at most {} organisations",
        spec.organisations,
        blocks.len(),
        (blocks.len() / 3 + 1) * 40 - 1
    );
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    let mut rng = Draw(ChaCha8Rng::seed_from_u64(spec.seed));
    let allocations = allocate(&mut rng, providers, blocks);
    let assignments = assign(&mut rng, spec.organisations, providers, &allocations);
    let refs: Vec<String> = (0..providers)
        .map(|p| format!("P{p:05}"))
        .chain((0..spec.organisations).map(|o| format!("O{o:06}")))
        .collect();

    write_organisations(&out.join("organisations.csv"), &mut rng, &refs, providers)?;
    write_networks(
        &out.join("networks.csv"),
        &mut rng,
        &refs,
        &allocations,
        &assignments,
    )?;

    let owners = LongestPrefix::new(allocations.iter().chain(&assignments));
    let hosts = draw_hosts(&mut rng, spec.observations, &allocations, &assignments);
    let hosts: Vec<(IpAddr, Option<u32>)> = hosts
        .into_iter()
        .map(|(v6, x)| (address(v6, x), owners.owner(v6, x)))
        .collect();
    let (addresses, unattributed) = write_observations(out, &mut rng, spec, &hosts, &refs)?;

    let networks = allocations.len() + assignments.len();
    Ok(Summary {
        providers: providers as usize,
        organisations: refs.len(),
        networks,
        allocations: allocations.len(),
        assignments: assignments.len(),
        ipv6_networks: allocations
            .iter()
            .chain(&assignments)
            .filter(|n| n.v6)
            .count(),
        observations: spec.observations,
        hosts: hosts.len(),
        addresses,
        unattributed,
    })
}

/// Per provider one to three IPv4 allocations (/13 to /20, each inside a /12
/// block no one else has) and one IPv6 /32.
fn allocate(rng: &mut Draw, providers: u32, mut free: Vec<u32>) -> Vec<Net> {
    let mut nets = Vec::new();
    for p in 0..providers {
        for _ in 0..rng.between(1, 3) {
            // Drawn from what is left, so no retry loop; `generate` checked
            // that enough is left.
            let block = free.swap_remove(rng.below(free.len() as u64) as usize);
            let len = rng.between(13, 20) as u8;
            let offset = rng.below(1 << (len - 12)) << (32 - len);
            nets.push(Net {
                v6: false,
                start: u128::from(block) + u128::from(offset),
                len,
                owner: p,
            });
        }
        nets.push(Net {
            v6: true,
            start: 0x2a00u128 << 112 | u128::from(p) << 96,
            len: 32,
            owner: p,
        });
    }
    nets
}

/// Per organisation one to three assignments inside random allocations:
/// IPv4 /24 to /30 (nine in ten) or IPv6 /48.
fn assign(rng: &mut Draw, organisations: u32, providers: u32, allocations: &[Net]) -> Vec<Net> {
    let v4: Vec<&Net> = allocations.iter().filter(|n| !n.v6).collect();
    let v6: Vec<&Net> = allocations.iter().filter(|n| n.v6).collect();
    // Assignments never overlap each other: a registry does not hand one
    // address to two organisations, and an equal CIDR twice would be refused
    // on import. Every assignment lies whole in one IPv4 /20 or IPv6 /32, so
    // only those in the same such bucket can overlap.
    let mut taken: HashMap<(bool, u128), Vec<(u128, u128)>> = HashMap::new();
    let mut nets = Vec::new();
    for o in 0..organisations {
        for _ in 0..*rng.pick(&[1, 1, 1, 2, 3]) {
            let (alloc, len) = if rng.unit() < 0.9 {
                (*rng.pick(&v4), *rng.pick(&[24u8, 25, 26, 27, 28, 29, 30]))
            } else {
                (*rng.pick(&v6), 48)
            };
            let shift = alloc.bits() - len;
            let net = Net {
                v6: alloc.v6,
                start: alloc.start + (u128::from(rng.below(1 << (len - alloc.len))) << shift),
                len,
                owner: providers + o,
            };
            let bucket_len = if net.v6 { 32 } else { 20 };
            let bucket = (net.v6, net.start >> (net.bits() - bucket_len));
            let taken = taken.entry(bucket).or_default();
            if taken
                .iter()
                .any(|&(start, end)| start <= net.end() && net.start <= end)
            {
                // The organisation simply holds one network fewer.
                continue;
            }
            taken.push((net.start, net.end()));
            nets.push(net);
        }
    }
    nets
}

fn csv_writer(path: &Path) -> anyhow::Result<csv::Writer<File>> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    Ok(csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(1 << 16)
        .from_writer(file))
}

fn write_organisations(
    path: &Path,
    rng: &mut Draw,
    refs: &[String],
    providers: u32,
) -> anyhow::Result<()> {
    let mut w = csv_writer(path)?;
    w.write_record(["ref", "name", "org_number", "sector", "email", "language"])?;
    for (i, reference) in refs.iter().enumerate() {
        let (name, sector) = if i < providers as usize {
            (format!("Provider {i} AS"), "telecom")
        } else {
            let o = i - providers as usize;
            (format!("Organisation {o} AS"), *rng.pick(&SECTORS))
        };
        let number = org_number(rng);
        let email = format!("security@{}.example.no", reference.to_ascii_lowercase());
        let language = *rng.pick(&["nb", "nb", "nb", "en"]);
        w.write_record([reference.as_str(), &name, &number, sector, &email, language])?;
    }
    w.flush()?;
    Ok(())
}

/// A Norwegian organisation number: nine digits starting with 8 or 9, the
/// last a mod-11 check digit, as [`crate::registry::model::OrgNumber`]
/// checks it.
fn org_number(rng: &mut Draw) -> String {
    const WEIGHTS: [u32; 8] = [3, 2, 7, 6, 5, 4, 3, 2];
    loop {
        let mut digits = [0u32; 9];
        digits[0] = rng.between(8, 9);
        for d in &mut digits[1..8] {
            *d = rng.between(0, 9);
        }
        let sum: u32 = digits[..8].iter().zip(WEIGHTS).map(|(d, w)| d * w).sum();
        digits[8] = match 11 - sum % 11 {
            11 => 0,
            // No check digit fits these eight digits: draw again.
            10 => continue,
            c => c,
        };
        return digits.iter().map(|&d| char::from(b'0' + d as u8)).collect();
    }
}

fn write_networks(
    path: &Path,
    rng: &mut Draw,
    refs: &[String],
    allocations: &[Net],
    assignments: &[Net],
) -> anyhow::Result<()> {
    let mut w = csv_writer(path)?;
    w.write_record(["cidr", "organisation_ref", "source"])?;
    for net in allocations {
        let cidr = net.to_ipnet().to_string();
        w.write_record([cidr.as_str(), &refs[net.owner as usize], "registry"])?;
    }
    for net in assignments {
        let cidr = net.to_ipnet().to_string();
        // Some entered by hand, so both sources are in the table.
        let source = if rng.unit() < 0.8 {
            "registry"
        } else {
            "manual"
        };
        w.write_record([cidr.as_str(), &refs[net.owner as usize], source])?;
    }
    w.flush()?;
    Ok(())
}

/// Two thirds as many hosts as observations (at least one, unless there are
/// no observations): four in five inside an assignment, three in twenty
/// anywhere in an allocation (often outside any assignment), one in twenty in
/// unregistered space. Drawn independently, so some repeat.
fn draw_hosts(
    rng: &mut Draw,
    observations: u64,
    allocations: &[Net],
    assignments: &[Net],
) -> Vec<(bool, u128)> {
    let n = if observations == 0 {
        0
    } else {
        (observations * 2 / 3).max(1)
    };
    let mut hosts = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let r = rng.unit();
        let net = if r < 0.80 && !assignments.is_empty() {
            Some(rng.pick(assignments))
        } else if r < 0.95 {
            Some(rng.pick(allocations))
        } else {
            None
        };
        hosts.push(match net {
            // The first 65 536 addresses: scanners find IPv6 hosts where
            // they are numbered, not at random in 2^80 addresses.
            Some(net) if net.v6 => (true, net.start + u128::from(rng.below(1 << 16))),
            Some(net) => (false, net.start + u128::from(rng.below(net.size() as u64))),
            None => {
                let (b, c, d) = (rng.below(256), rng.below(256), rng.between(1, 254));
                let x = UNREGISTERED_V4 << 24 | u128::from(b) << 16 | u128::from(c) << 8;
                (false, x | u128::from(d))
            }
        });
    }
    hosts
}

/// Longest-prefix match by its definition: for each prefix length in use,
/// longest first, is this address's prefix of that length registered? Not
/// the attribution table's segment algorithm, so a test comparing the two
/// compares two independent answers.
struct LongestPrefix {
    v4: Family,
    v6: Family,
}

#[derive(Default)]
struct Family {
    /// Lengths in use, longest first.
    lens: Vec<u8>,
    nets: HashMap<(u128, u8), u32>,
}

impl LongestPrefix {
    fn new<'a>(nets: impl Iterator<Item = &'a Net>) -> Self {
        let (mut v4, mut v6) = (Family::default(), Family::default());
        for net in nets {
            let family = if net.v6 { &mut v6 } else { &mut v4 };
            // CIDRs are unique in networks.csv, so no entry is replaced.
            family.nets.insert((net.start, net.len), net.owner);
            if !family.lens.contains(&net.len) {
                family.lens.push(net.len);
            }
        }
        for family in [&mut v4, &mut v6] {
            family.lens.sort_unstable_by(|a, b| b.cmp(a));
        }
        Self { v4, v6 }
    }

    fn owner(&self, v6: bool, x: u128) -> Option<u32> {
        let (family, bits) = if v6 { (&self.v6, 128) } else { (&self.v4, 32) };
        family.lens.iter().find_map(|&len| {
            let mask = u128::MAX.checked_shl(u32::from(bits - len)).unwrap_or(0);
            family.nets.get(&(x & mask, len)).copied()
        })
    }
}

/// One line of observations.ndjson, fields in the order of DESIGN.md.
#[derive(Serialize)]
struct Record<'a> {
    ip: IpAddr,
    port: u16,
    protocol: &'static str,
    observed_at: &'a str,
    check: &'static str,
    state: &'static str,
    severity: &'static str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cves: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<Evidence>,
}

#[derive(Serialize)]
struct Evidence {
    x_owa_version: &'static str,
    path: &'static str,
}

/// observations.ndjson and truth.csv; returns (truth rows, of which without
/// owner).
fn write_observations(
    out: &Path,
    rng: &mut Draw,
    spec: &DatasetSpec,
    hosts: &[(IpAddr, Option<u32>)],
    refs: &[String],
) -> anyhow::Result<(usize, usize)> {
    let path = out.join("observations.ndjson");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut observations = BufWriter::with_capacity(1 << 20, file);
    let mut truth = csv_writer(&out.join("truth.csv"))?;
    truth.write_record(["ip", "organisation_ref"])?;

    let mut seen: HashSet<IpAddr> = HashSet::with_capacity(hosts.len());
    let (mut addresses, mut unattributed) = (0, 0);
    let (mut observed_at, mut hostname) = (String::new(), String::new());
    for i in 0..spec.observations {
        // Every host once, in order, then re-observations of random ones.
        let (ip, owner) = match hosts.get(i as usize) {
            Some(host) => *host,
            None => *rng.pick(hosts),
        };
        let bits = match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        };
        // A host runs one service, so it is seen by one check, always the
        // same: a rescan re-sights the same finding.
        let check = &CHECKS[(bits % CHECKS.len() as u128) as usize];
        // Five days of scanning from 5 March 2021, in file order.
        let day = 5 + i * 5 / spec.observations;
        let (h, m, s) = (rng.between(0, 23), rng.between(0, 59), rng.between(0, 59));
        observed_at.clear();
        write!(observed_at, "2021-03-{day:02}T{h:02}:{m:02}:{s:02}Z")?;
        let state = match rng.below(100) {
            0..70 => "vulnerable",
            70..97 => "not_vulnerable",
            _ => "compromised",
        };
        let exchange = check.name.starts_with("exchange");
        let version = if exchange {
            Some(*rng.pick(&EXCHANGE_VERSIONS))
        } else {
            None
        };
        if exchange {
            hostname.clear();
            write!(hostname, "mail{i}.example.no")?;
        }
        let record = Record {
            ip,
            port: check.port,
            protocol: "tcp",
            observed_at: &observed_at,
            check: check.name,
            state,
            severity: check.severity,
            cves: check.cves,
            product: exchange.then_some("Microsoft Exchange Server"),
            version,
            hostname: exchange.then_some(hostname.as_str()),
            evidence: version.map(|v| Evidence {
                x_owa_version: v,
                path: "/owa/auth/x.js",
            }),
        };
        serde_json::to_writer(&mut observations, &record)?;
        observations.write_all(b"\n")?;

        if seen.insert(ip) {
            let owner = owner.map_or("", |o| refs[o as usize].as_str());
            truth.write_record([ip.to_string().as_str(), owner])?;
            addresses += 1;
            if owner.is_empty() {
                unattributed += 1;
            }
        }
    }
    observations
        .flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    truth.flush()?;
    Ok((addresses, unattributed))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::attribution::table::{Match, NetworkRow, PrefixTable};
    use crate::ingest::formats::{Format, Item};
    use crate::ingest::observation::ObservationState;
    use crate::registry::model::{Cidr, OrgNumber};

    /// The size the API tests use.
    const SMALL: DatasetSpec = DatasetSpec {
        organisations: 400,
        observations: 3000,
        seed: 2021,
    };

    const FILES: [&str; 4] = [
        "organisations.csv",
        "networks.csv",
        "observations.ndjson",
        "truth.csv",
    ];

    fn make(spec: &DatasetSpec) -> (tempfile::TempDir, Summary) {
        let dir = tempfile::tempdir().unwrap();
        let summary = generate(dir.path(), spec).unwrap();
        (dir, summary)
    }

    fn read(dir: &tempfile::TempDir, name: &str) -> String {
        std::fs::read_to_string(dir.path().join(name)).unwrap()
    }

    /// Rows after the header, split at commas (no field holds one).
    fn rows(text: &str) -> Vec<Vec<&str>> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect()
    }

    #[test]
    fn a_seed_gives_the_same_files_and_another_seed_others() {
        let (a, _) = make(&SMALL);
        let (b, _) = make(&SMALL);
        let (c, _) = make(&DatasetSpec { seed: 7, ..SMALL });
        for name in FILES {
            assert!(read(&a, name) == read(&b, name), "{name} differs");
            assert!(read(&a, name) != read(&c, name), "{name} ignores the seed");
        }
    }

    /// A few values fixed, so a change of algorithm (here or in rand) that
    /// would quietly change the benchmark data set shows up.
    #[test]
    fn the_stream_is_pinned() {
        let (dir, _) = make(&DatasetSpec {
            organisations: 40,
            observations: 3,
            seed: 2021,
        });
        // The first record of each file (the CSVs have a header).
        let first: Vec<String> = FILES
            .iter()
            .map(|name| {
                let skip = usize::from(name.ends_with(".csv"));
                read(&dir, name).lines().nth(skip).unwrap().to_owned()
            })
            .collect();
        assert_eq!(
            first,
            [
                "P00000,Provider 0 AS,856679837,telecom,security@p00000.example.no,nb",
                "91.66.96.0/20,P00000,registry",
                r#"{"ip":"24.165.218.1","port":443,"protocol":"tcp","observed_at":"2021-03-05T08:30:44Z","check":"exchange-proxyshell","state":"vulnerable","severity":"critical","cves":["CVE-2021-34473","CVE-2021-34523","CVE-2021-31207"],"product":"Microsoft Exchange Server","version":"15.1.2176.2","hostname":"mail0.example.no","evidence":{"x_owa_version":"15.1.2176.2","path":"/owa/auth/x.js"}}"#,
                "24.165.218.1,O000005",
            ]
        );
    }

    #[test]
    fn the_files_have_the_promised_shape() {
        let (dir, summary) = make(&SMALL);

        let orgs = read(&dir, "organisations.csv");
        assert_eq!(
            orgs.lines().next(),
            Some("ref,name,org_number,sector,email,language")
        );
        let orgs = rows(&orgs);
        assert_eq!(orgs.len(), 420);
        assert_eq!(summary.organisations, 420);
        assert_eq!(summary.providers, 20);
        let mut languages = HashSet::new();
        for org in &orgs {
            let [reference, name, number, sector, email, language] = org[..] else {
                panic!("{org:?}");
            };
            assert!(name.ends_with(" AS"), "{org:?}");
            OrgNumber::parse(number).unwrap();
            assert!(SECTORS.contains(&sector), "{org:?}");
            assert_eq!(
                email,
                format!("security@{}.example.no", reference.to_lowercase())
            );
            languages.insert(language);
            if reference.starts_with('P') {
                assert_eq!(sector, "telecom");
            }
        }
        assert_eq!(languages, HashSet::from(["nb", "en"]));
        let refs: HashSet<&str> = orgs.iter().map(|o| o[0]).collect();
        assert_eq!(refs.len(), orgs.len(), "refs are unique");

        let nets = read(&dir, "networks.csv");
        assert_eq!(nets.lines().next(), Some("cidr,organisation_ref,source"));
        let nets: Vec<(IpNet, &str, &str)> = rows(&nets)
            .iter()
            .map(|n| {
                let cidr = Cidr::parse(n[0]).unwrap_or_else(|e| panic!("{e}"));
                assert!(refs.contains(n[1]), "unknown organisation in {n:?}");
                (cidr.net(), n[1], n[2])
            })
            .collect();
        assert_eq!(nets.len(), summary.networks);
        assert_eq!(summary.networks, summary.allocations + summary.assignments);
        let unique: HashSet<IpNet> = nets.iter().map(|n| n.0).collect();
        assert_eq!(unique.len(), nets.len(), "CIDRs are unique");
        let sources: HashSet<&str> = nets.iter().map(|n| n.2).collect();
        assert_eq!(sources, HashSet::from(["registry", "manual"]));
        let v6 = nets.iter().filter(|n| matches!(n.0, IpNet::V6(_))).count();
        assert_eq!(v6, summary.ipv6_networks);
        assert!(v6 > summary.providers, "provider /32s and some /48s");
        // Every organisation's network nests in a provider's, and no two
        // organisations' networks overlap.
        let (providers, assigned): (Vec<&(IpNet, &str, &str)>, Vec<_>) =
            nets.iter().partition(|n| n.1.starts_with('P'));
        assert_eq!(providers.len(), summary.allocations);
        assert!(assigned.len() > 400, "{}", assigned.len());
        for a in &assigned {
            assert!(
                providers.iter().any(|p| p.0.contains(&a.0) && p.0 != a.0),
                "{} is in no allocation",
                a.0
            );
            assert!(!assigned.iter().any(|b| b.0 != a.0 && b.0.contains(&a.0)));
        }

        let truth = read(&dir, "truth.csv");
        assert_eq!(truth.lines().next(), Some("ip,organisation_ref"));
        let truth = rows(&truth);
        assert_eq!(truth.len(), summary.addresses);
        let unattributed: Vec<&Vec<&str>> = truth.iter().filter(|t| t[1].is_empty()).collect();
        assert_eq!(unattributed.len(), summary.unattributed);
        assert!(!unattributed.is_empty());
        for t in &truth {
            assert!(t[1].is_empty() || refs.contains(t[1]), "{t:?}");
            // Unregistered space and only there.
            assert_eq!(t[0].starts_with("11."), t[1].is_empty(), "{t:?}");
        }
        assert!(
            truth.iter().any(|t| t[1].starts_with('P')),
            "provider-only space"
        );
        assert!(truth.iter().any(|t| t[0].contains(':')), "IPv6 hosts");
        // Most hosts were drawn from assignments.
        let in_assignments = truth.iter().filter(|t| t[1].starts_with('O')).count();
        assert!(in_assignments * 10 > truth.len() * 7, "{in_assignments}");
    }

    #[test]
    fn every_observation_is_a_canonical_observation_and_truth_lists_each_address_once() {
        let (dir, summary) = make(&SMALL);
        let file = File::open(dir.path().join("observations.ndjson")).unwrap();
        let items = crate::ingest::formats::parse(
            &Format::Canonical,
            Box::new(std::io::BufReader::new(file)),
        );
        let mut ips = Vec::new();
        let mut states = HashSet::new();
        let (mut days, mut ports, mut with_cves, mut with_evidence) =
            (HashSet::new(), HashSet::new(), 0, 0);
        for item in items {
            match item.unwrap() {
                Item::Observation(o, _) => {
                    states.insert(o.state);
                    ports.insert(o.port);
                    days.insert(o.observed_at.format("%Y-%m-%d").to_string());
                    with_cves += usize::from(!o.cves.is_empty());
                    with_evidence += usize::from(o.evidence.is_some());
                    ips.push(o.ip);
                }
                Item::Rejected(e) => panic!("{e:?}"),
                Item::Note(n) => panic!("{n}"),
            }
        }
        assert_eq!(ips.len() as u64, summary.observations);
        assert_eq!(
            states,
            HashSet::from([
                ObservationState::Vulnerable,
                ObservationState::NotVulnerable,
                ObservationState::Compromised
            ])
        );
        assert_eq!(ports, HashSet::from([443, 445, 3389]));
        let expected_days: HashSet<String> = (5..=9).map(|d| format!("2021-03-{d:02}")).collect();
        assert_eq!(days, expected_days);
        assert!(with_cves > 0 && with_evidence == with_cves);
        assert!(with_cves < ips.len());

        // Re-observations: the first `hosts` lines are the hosts, the rest
        // repeat them.
        assert_eq!(summary.hosts, 2000);
        let distinct: HashSet<IpAddr> = ips.iter().copied().collect();
        assert!(ips[summary.hosts..].iter().all(|ip| distinct.contains(ip)));
        let mut first_seen = Vec::new();
        let mut seen = HashSet::new();
        for ip in &ips {
            if seen.insert(*ip) {
                first_seen.push(ip.to_string());
            }
        }
        let truth: Vec<String> = rows(&read(&dir, "truth.csv"))
            .iter()
            .map(|t| t[0].to_owned())
            .collect();
        assert_eq!(truth, first_seen);
    }

    /// The truth is what the service's own attribution table answers for the
    /// registry in networks.csv, read by the CSV importer.
    #[test]
    fn truth_is_the_attribution_tables_answer() {
        let (dir, summary) = make(&SMALL);
        let open = |name: &str| -> (String, Box<dyn std::io::Read + Send>) {
            let file = File::open(dir.path().join(name)).unwrap();
            (name.to_owned(), Box::new(std::io::BufReader::new(file)))
        };
        let snapshot = crate::registry::import::csv_files::read_csv(
            open("organisations.csv"),
            open("networks.csv"),
        )
        .unwrap();
        assert!(snapshot.rejected.is_empty(), "{:?}", snapshot.rejected);
        let ids: HashMap<&str, i64> = snapshot
            .organisations
            .iter()
            .enumerate()
            .map(|(i, o)| (o.reference.as_str(), i as i64))
            .collect();
        let networks: Vec<NetworkRow> = snapshot
            .networks
            .iter()
            .enumerate()
            .map(|(i, n)| NetworkRow {
                network_id: i as i64,
                organisation_id: ids[n.organisation_ref.as_str()],
                organisation_ref: Arc::from(n.organisation_ref.as_str()),
                cidr: n.cidr,
                source: n.source,
                by_hand: false,
                valid_from: None,
                valid_to: None,
            })
            .collect();
        let table = PrefixTable::new(1, networks, vec![]);

        let truth = read(&dir, "truth.csv");
        let truth = rows(&truth);
        assert_eq!(truth.len(), summary.addresses);
        let mut nested = 0;
        for t in &truth {
            let ip: IpAddr = t[0].parse().unwrap();
            let got = match table.attribute(ip, 0, None) {
                Match::Network(n) => n.organisation_ref.to_string(),
                _ => String::new(),
            };
            assert_eq!(got, t[1], "{ip}");
            nested += usize::from(t[1].starts_with('O'));
        }
        // Most answers come from an assignment inside a provider's
        // allocation: a shortest-prefix match would get them wrong.
        assert!(nested > truth.len() / 2, "{nested}");
    }

    #[test]
    fn too_many_organisations_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ds");
        let err = generate(
            &out,
            &DatasetSpec {
                organisations: 50_000,
                ..SMALL
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("at most 45479 organisations"),
            "{err}"
        );
        assert!(!out.exists());
        // The limit itself is allowed.
        assert!(
            generate(
                &out,
                &DatasetSpec {
                    organisations: 45_479,
                    observations: 0,
                    seed: 1
                }
            )
            .is_ok()
        );
    }
}
