//! Address ranges (`198.51.100.0/24`, `2001:db8::/32`) and the set of them
//! that decides which peers get per-peer connection states.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One address range. Host bits given in the text are cleared, as Go's
/// `net.ParseCIDR` does (`198.51.100.7/24` is `198.51.100.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR {text:?}: {reason} (examples: 198.51.100.0/24, 2001:db8::/32, 203.0.113.7)")]
pub struct CidrError {
    text: String,
    reason: &'static str,
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// `ADDR/PREFIX`, or a bare address for that one host.
    fn from_str(text: &str) -> Result<Self, CidrError> {
        let err = |reason| CidrError {
            text: text.to_owned(),
            reason,
        };
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| err("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p
                .parse::<u8>()
                .ok()
                .filter(|&n| n <= max)
                .ok_or_else(|| err("prefix length out of range"))?,
            Some(_) => return Err(err("prefix length is not a number")),
        };
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl Cidr {
    /// Whether `ip` is inside; an IPv4 range never holds an IPv6 address
    /// (callers canonicalize IPv4-mapped addresses first).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

/// The ranges given to `-remote-states`: a peer is tracked when any holds
/// it. A handful of ranges is the expected use, so a linear scan is the
/// cheapest test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFilter {
    ranges: Vec<Cidr>,
}

impl PeerFilter {
    pub fn new(ranges: Vec<Cidr>) -> Self {
        Self { ranges }
    }

    /// The range list, canonical (host bits cleared), for the start-up log.
    pub fn ranges(&self) -> &[Cidr] {
        &self.ranges
    }

    /// Whether `peer` is inside one of the ranges. An IPv4-mapped IPv6 peer
    /// (`::ffff:198.51.100.2`, an IPv4 client of a dual-stack socket) is
    /// tested as the IPv4 address it is.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.ranges.iter().any(|r| r.contains(peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_like_go_with_host_bits_cleared_and_bare_addresses_as_hosts() {
        let c: Cidr = "198.51.100.7/24".parse().unwrap();
        assert_eq!(c.to_string(), "198.51.100.0/24");
        assert_eq!(
            "203.0.113.7".parse::<Cidr>().unwrap().to_string(),
            "203.0.113.7/32"
        );
        assert_eq!(
            "2001:db8::1/32".parse::<Cidr>().unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        for bad in [
            "",
            "/24",
            "198.51.100.0/",
            "198.51.100.0/33",
            "::/129",
            "198.51.100/24",
            "198.51.100.0/-1",
            "198.51.100.0/+8",
            "host/8",
            "198.51.100.0/24/8",
        ] {
            let e = bad.parse::<Cidr>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn membership_by_family_prefix_and_mapped_ipv4() {
        let filter = PeerFilter::new(vec![
            "198.51.100.0/30".parse().unwrap(),
            "2001:db8::/64".parse().unwrap(),
        ]);
        assert!(filter.contains(ip("198.51.100.0")));
        assert!(filter.contains(ip("198.51.100.3")));
        assert!(!filter.contains(ip("198.51.100.4")));
        assert!(filter.contains(ip("::ffff:198.51.100.2")));
        assert!(!filter.contains(ip("::ffff:198.51.100.9")));
        assert!(filter.contains(ip("2001:db8::ffff:1")));
        assert!(!filter.contains(ip("2001:db8:0:1::1")));
        // 198.51.100.0 as an IPv6 address (not mapped) is not the IPv4 one.
        assert!(!filter.contains(ip("::c633:6400")));
        assert!(!PeerFilter::default().contains(ip("198.51.100.1")));
        let everything = PeerFilter::new(vec!["0.0.0.0/0".parse().unwrap()]);
        assert!(everything.contains(ip("255.255.255.255")));
        assert!(!everything.contains(ip("::1")));
    }
}
