//! Which part of the network an address belongs to: the `scope` and
//! `remote_scope` labels of the exposure gauges.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// 127.0.0.0/8 and ::1: reachable from this host only.
    Loopback,
    /// Reachable only inside a site or link: RFC 1918, RFC 6598 shared
    /// address space, RFC 4193 unique local, IPv4 and IPv6 link-local.
    Private,
    /// Everything else, including the wildcards 0.0.0.0 and :: (a socket
    /// bound to them answers on every address, public ones included).
    Public,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Loopback, Scope::Private, Scope::Public];

    pub fn label(self) -> &'static str {
        match self {
            Scope::Loopback => "loopback",
            Scope::Private => "private",
            Scope::Public => "public",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Classifies an address; IPv4-mapped IPv6 addresses (how dual-stack
/// sockets report IPv4 ends) are classified as the IPv4 address they carry.
pub fn classify(ip: IpAddr) -> Scope {
    match ip.to_canonical() {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Scope {
    let [a, b, ..] = ip.octets();
    match (a, b) {
        (127, _) => Scope::Loopback,
        // RFC 1918.
        (10, _) => Scope::Private,
        (172, 16..=31) => Scope::Private,
        (192, 168) => Scope::Private,
        // RFC 6598 shared address space (carrier-grade NAT), 100.64.0.0/10.
        (100, 64..=127) => Scope::Private,
        // RFC 3927 link-local.
        (169, 254) => Scope::Private,
        _ => Scope::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Scope {
    let first = ip.segments()[0];
    if ip == Ipv6Addr::LOCALHOST {
        Scope::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        // RFC 4193 unique local addresses, fc00::/7.
        Scope::Private
    } else if first & 0xffc0 == 0xfe80 {
        // RFC 4291 link-local unicast, fe80::/10.
        Scope::Private
    } else {
        Scope::Public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each range's first and last address, and the addresses just outside it.
    #[test]
    fn every_range_and_its_just_outside_boundaries() {
        use Scope::*;
        let table: &[(&str, Scope)] = &[
            // 127.0.0.0/8
            ("126.255.255.255", Public),
            ("127.0.0.0", Loopback),
            ("127.0.0.1", Loopback),
            ("127.255.255.255", Loopback),
            ("128.0.0.0", Public),
            // 10.0.0.0/8
            ("9.255.255.255", Public),
            ("10.0.0.0", Private),
            ("10.255.255.255", Private),
            ("11.0.0.0", Public),
            // 172.16.0.0/12
            ("172.15.255.255", Public),
            ("172.16.0.0", Private),
            ("172.31.255.255", Private),
            ("172.32.0.0", Public),
            // 192.168.0.0/16
            ("192.167.255.255", Public),
            ("192.168.0.0", Private),
            ("192.168.255.255", Private),
            ("192.169.0.0", Public),
            // 100.64.0.0/10
            ("100.63.255.255", Public),
            ("100.64.0.0", Private),
            ("100.127.255.255", Private),
            ("100.128.0.0", Public),
            // 169.254.0.0/16
            ("169.253.255.255", Public),
            ("169.254.0.0", Private),
            ("169.254.255.255", Private),
            ("169.255.0.0", Public),
            // Wildcards, documentation and ordinary public addresses.
            ("0.0.0.0", Public),
            ("198.51.100.1", Public),
            ("8.8.8.8", Public),
            ("255.255.255.255", Public),
            // ::1 and its neighbours
            ("::", Public),
            ("::1", Loopback),
            ("::2", Public),
            // fc00::/7
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Public),
            ("fc00::", Private),
            ("fd00::1", Private),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Private),
            ("fe00::", Public),
            // fe80::/10
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Public),
            ("fe80::", Private),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", Private),
            ("fec0::", Public),
            ("2001:db8::1", Public),
            // IPv4-mapped addresses are classified as IPv4.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:100.64.0.1", Private),
            ("::ffff:198.51.100.1", Public),
        ];
        for &(addr, want) in table {
            let ip: IpAddr = addr.parse().unwrap();
            assert_eq!(classify(ip), want, "{addr}");
        }
    }
}
