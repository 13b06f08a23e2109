//! Address ranges as registries write them, turned into CIDRs.
//!
//! RIPE `inetnum` keys are inclusive ranges (`198.18.4.0 - 198.18.6.255`)
//! that need not be one CIDR, and older objects carry zero-padded octets
//! (`80.016.151.191`) that Rust's address parser refuses. This file owns the
//! lenient address parsing and the split of a range into the minimal set of
//! aligned prefixes that covers it exactly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The minimal list of CIDRs whose union is exactly `[start, end]`
/// (both inclusive), in ascending address order.
///
/// `198.18.4.0 – 198.18.6.255` → `198.18.4.0/23`, `198.18.6.0/24`.
/// At most 2 × (address bits) prefixes come out, so a hostile range cannot
/// blow up memory.
pub fn range_to_cidrs(start: IpAddr, end: IpAddr) -> Result<Vec<IpNet>, String> {
    let (first, last, bits) = match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => (u128::from(u32::from(s)), u128::from(u32::from(e)), 32),
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e), 128),
        _ => {
            return Err(format!(
                "range {start} - {end} mixes IPv4 and IPv6 addresses"
            ));
        }
    };
    if first > last {
        return Err(format!("range {start} - {end} ends before it starts"));
    }

    let mut out = Vec::new();
    let mut cursor = first;
    loop {
        // The block at `cursor` may be no larger than its alignment allows…
        let align = if cursor == 0 {
            bits
        } else {
            cursor.trailing_zeros().min(bits)
        };
        // …and no larger than what is left of the range. `remaining + 1` would
        // overflow only for the whole IPv6 space, which is one /0.
        let remaining = last - cursor;
        let fits = if remaining == u128::MAX {
            128
        } else {
            127 - (remaining + 1).leading_zeros()
        };
        let host_bits = align.min(fits);
        let prefix = (bits - host_bits) as u8;
        out.push(make_net(cursor, prefix, bits)?);

        let block_last = if host_bits >= 128 {
            u128::MAX
        } else {
            cursor + ((1u128 << host_bits) - 1)
        };
        if block_last >= last {
            break;
        }
        cursor = block_last + 1;
    }
    Ok(out)
}

fn make_net(addr: u128, prefix: u8, bits: u32) -> Result<IpNet, String> {
    if bits == 32 {
        let v4 = u32::try_from(addr).map_err(|_| format!("{addr} is not an IPv4 address"))?;
        Ipv4Net::new(Ipv4Addr::from(v4), prefix)
            .map(IpNet::V4)
            .map_err(|e| e.to_string())
    } else {
        Ipv6Net::new(Ipv6Addr::from(addr), prefix)
            .map(IpNet::V6)
            .map_err(|e| e.to_string())
    }
}

/// A dotted-quad IPv4 address that may carry leading zeros: `80.016.151.191`
/// is 80.16.151.191. Octets are decimal (RIPE's convention), never octal as
/// in `inet_aton`.
pub fn parse_ipv4_lenient(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.trim().split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = part.trim_start_matches('0');
        // Past three significant digits it cannot be an octet; checking the
        // length first also keeps `parse` from overflowing.
        if digits.len() > 3 {
            return None;
        }
        *octet = if digits.is_empty() {
            0
        } else {
            digits.parse::<u8>().ok()?
        };
    }
    if parts.next().is_some() {
        return None;
    }
    Some(Ipv4Addr::from(octets))
}

/// One address, IPv4 leniently (leading zeros), else IPv6.
fn parse_addr_lenient(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Some(v4) = parse_ipv4_lenient(s) {
        return Some(IpAddr::V4(v4));
    }
    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// An `inetnum` key: `a.b.c.d - w.x.y.z` (spaces optional), a single CIDR
/// (`192.0.2.0/24`, host bits must be clear), or a single address (a
/// one-address range). IPv4 octets may carry leading zeros.
pub fn parse_inetnum_range(key: &str) -> Result<Vec<IpNet>, String> {
    let key = key.trim();
    if let Some((from, to)) = key.split_once('-') {
        let start = parse_addr_lenient(from)
            .ok_or_else(|| format!("{:?} is not an IP address", from.trim()))?;
        let end = parse_addr_lenient(to)
            .ok_or_else(|| format!("{:?} is not an IP address", to.trim()))?;
        return range_to_cidrs(start, end);
    }
    if let Some((addr, len)) = key.split_once('/') {
        let addr = parse_addr_lenient(addr)
            .ok_or_else(|| format!("{:?} is not an IP address", addr.trim()))?;
        let len: u8 = len
            .trim()
            .parse()
            .map_err(|_| format!("{key:?} has no valid prefix length"))?;
        let net = IpNet::new(addr, len)
            .map_err(|_| format!("{key:?} has a prefix length that is too long"))?;
        if net.trunc() != net {
            return Err(format!(
                "{key} has host bits set; the network is {}",
                net.trunc()
            ));
        }
        return Ok(vec![net]);
    }
    let addr = parse_addr_lenient(key)
        .ok_or_else(|| format!("{key:?} is neither an address range nor a CIDR"))?;
    range_to_cidrs(addr, addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    fn range(a: &str, b: &str) -> Result<Vec<IpNet>, String> {
        range_to_cidrs(a.parse().unwrap(), b.parse().unwrap())
    }

    #[test]
    fn splits_unaligned_range() {
        assert_eq!(
            range("198.18.4.0", "198.18.6.255").unwrap(),
            nets(&["198.18.4.0/23", "198.18.6.0/24"])
        );
        assert_eq!(
            range("10.0.0.1", "10.0.0.6").unwrap(),
            nets(&["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"])
        );
    }

    #[test]
    fn whole_spaces_and_single_addresses() {
        assert_eq!(
            range("0.0.0.0", "255.255.255.255").unwrap(),
            nets(&["0.0.0.0/0"])
        );
        assert_eq!(
            range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").unwrap(),
            nets(&["::/0"])
        );
        assert_eq!(
            range("192.0.2.7", "192.0.2.7").unwrap(),
            nets(&["192.0.2.7/32"])
        );
        assert_eq!(
            range("255.255.255.255", "255.255.255.255").unwrap(),
            nets(&["255.255.255.255/32"])
        );
        assert_eq!(
            range("128.0.0.0", "255.255.255.255").unwrap(),
            nets(&["128.0.0.0/1"])
        );
        assert_eq!(
            range("2001:db8::", "2001:db8:0:2::ffff").unwrap(),
            nets(&["2001:db8::/63", "2001:db8:0:2::/112"])
        );
    }

    #[test]
    fn worst_case_is_bounded_and_exact() {
        let out = range("0.0.0.1", "255.255.255.254").unwrap();
        assert_eq!(out.len(), 62);
        let total: u64 = out.iter().map(|n| 1u64 << (32 - n.prefix_len())).sum();
        assert_eq!(total, (1u64 << 32) - 2);
        let v6 = range("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe").unwrap();
        assert_eq!(v6.len(), 254);
    }

    #[test]
    fn rejects_bad_ranges() {
        assert!(
            range("10.0.0.2", "10.0.0.1")
                .unwrap_err()
                .contains("before")
        );
        assert!(range("10.0.0.2", "::1").unwrap_err().contains("mixes"));
    }

    #[test]
    fn lenient_ipv4() {
        assert_eq!(
            parse_ipv4_lenient("80.016.151.191"),
            Some(Ipv4Addr::new(80, 16, 151, 191))
        );
        assert_eq!(
            parse_ipv4_lenient("193.254.030.00"),
            Some(Ipv4Addr::new(193, 254, 30, 0))
        );
        assert_eq!(
            parse_ipv4_lenient("0000.0.0.0255"),
            Some(Ipv4Addr::new(0, 0, 0, 255))
        );
        assert_eq!(parse_ipv4_lenient("256.0.0.0"), None);
        assert_eq!(parse_ipv4_lenient("1.2.3"), None);
        assert_eq!(parse_ipv4_lenient("1.2.3.4.5"), None);
        assert_eq!(parse_ipv4_lenient("1.2.3.-4"), None);
        assert_eq!(parse_ipv4_lenient("1.2..4"), None);
        assert_eq!(parse_ipv4_lenient("99999999999999999999.1.1.1"), None);
    }

    #[test]
    fn inetnum_keys() {
        assert_eq!(
            parse_inetnum_range("80.16.151.184 - 80.016.151.191").unwrap(),
            nets(&["80.16.151.184/29"])
        );
        assert_eq!(
            parse_inetnum_range("198.18.4.0-198.18.6.255").unwrap(),
            nets(&["198.18.4.0/23", "198.18.6.0/24"])
        );
        assert_eq!(
            parse_inetnum_range("192.0.2.0/24").unwrap(),
            nets(&["192.0.2.0/24"])
        );
        assert_eq!(
            parse_inetnum_range("192.0.2.9").unwrap(),
            nets(&["192.0.2.9/32"])
        );
        assert!(
            parse_inetnum_range("192.0.2.1/24")
                .unwrap_err()
                .contains("host bits")
        );
        assert!(parse_inetnum_range("192.0.2.0/33").is_err());
        assert!(parse_inetnum_range("x - y").is_err());
        assert!(parse_inetnum_range("").is_err());
        assert!(parse_inetnum_range("10.0.0.9 - 10.0.0.1").is_err());
    }
}
