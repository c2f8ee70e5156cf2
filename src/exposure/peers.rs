//! The peers `-remote-states` tracks: the ranges that select them, and the
//! sockets the inventory walk and the leftover-state dump find for them.

use std::net::IpAddr;

use inetdiag::InetDiagMsg;

use crate::address::Cidr;

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

/// One socket whose peer is inside the ranges, as a walk or dump saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerSocket {
    pub cookie: u64,
    pub state: u8,
    pub peer: IpAddr,
    pub peer_port: u16,
    pub local_port: u16,
}

impl PeerSocket {
    pub fn from_msg(msg: &InetDiagMsg) -> Self {
        Self {
            cookie: msg.cookie(),
            state: msg.state(),
            peer: msg.dst(),
            peer_port: msg.dport(),
            local_port: msg.sport(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
