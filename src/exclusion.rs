//! Which connections are archived, and how their addresses are anonymized
//! (archives and events only; exposure gauges see every socket).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use inetdiag::InetDiagMsg;

/// How addresses are anonymized in archives and events (the values of
/// `-anonymize.ip`, whose help lists these comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Anonymization {
    /// Addresses are written as the kernel reports them.
    None,
    /// Addresses other than the host's own are zeroed to /24 (IPv4) or /64
    /// (IPv6).
    Netblock,
}

/// The archive's exclusion rules.
#[derive(Debug, Clone, Default)]
pub struct Exclusion {
    exclude_local: bool,
    srcports: Vec<u16>,
    dstips: Vec<IpAddr>,
}

impl Exclusion {
    pub fn new(exclude_local: bool, srcports: Vec<u16>, dstips: Vec<IpAddr>) -> Self {
        let dstips = dstips.into_iter().map(|ip| ip.to_canonical()).collect();
        Self {
            exclude_local,
            srcports,
            dstips,
        }
    }

    /// Whether the connection is left out of archives and events.
    pub fn excludes(&self, msg: &InetDiagMsg) -> bool {
        let (src, dst) = (msg.src().to_canonical(), msg.dst().to_canonical());
        (self.exclude_local && (is_non_routable(src) || is_non_routable(dst)))
            || self.srcports.contains(&msg.sport())
            || self.dstips.contains(&dst)
    }
}

impl Exclusion {
    /// Whether `-exclude-local` alone leaves the connection out (an end is
    /// loopback, link-local, multicast or unspecified).
    pub fn excludes_as_local(&self, msg: &InetDiagMsg) -> bool {
        let (src, dst) = (msg.src(), msg.dst());
        self.exclude_local && (is_non_routable(src) || is_non_routable(dst))
    }
}

/// Loopback, link-local, multicast or unspecified: addresses whose
/// connections say nothing about the host's traffic with the world.
pub fn is_non_routable(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_link_local() || v4.is_multicast() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Which ends of a connection get anonymized: bit 0 the source, bit 1 the
/// destination.
pub type AnonymizeMask = u8;
pub const ANONYMIZE_SRC: AnonymizeMask = 1;
pub const ANONYMIZE_DST: AnonymizeMask = 2;

/// Decides, once per connection, which of its addresses are not the host's
/// own and so must be anonymized.
#[derive(Debug, Clone)]
pub struct Anonymizer {
    method: Anonymization,
    local: Vec<IpAddr>,
}

impl Anonymizer {
    pub fn new(method: Anonymization) -> Self {
        let mut a = Self {
            method,
            local: Vec::new(),
        };
        a.refresh_local_addresses();
        a
    }

    pub fn is_enabled(&self) -> bool {
        self.method != Anonymization::None
    }

    /// Re-reads the host's addresses (interfaces come and go).
    pub fn refresh_local_addresses(&mut self) {
        if !self.is_enabled() {
            return;
        }
        if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
            self.local = addrs
                .filter_map(|a| a.address)
                .filter_map(|s| {
                    if let Some(v4) = s.as_sockaddr_in() {
                        Some(IpAddr::V4(v4.ip()))
                    } else {
                        s.as_sockaddr_in6()
                            .map(|v6| IpAddr::V6(v6.ip()).to_canonical())
                    }
                })
                .collect();
        }
    }

    /// The ends of `msg` to anonymize.
    pub fn mask_for(&self, msg: &InetDiagMsg) -> AnonymizeMask {
        if !self.is_enabled() {
            return 0;
        }
        let mut mask = 0;
        if !self.local.contains(&msg.src().to_canonical()) {
            mask |= ANONYMIZE_SRC;
        }
        if !self.local.contains(&msg.dst().to_canonical()) {
            mask |= ANONYMIZE_DST;
        }
        mask
    }
}

/// Zeroes the host part of the masked addresses inside a raw
/// `inet_diag_msg`: IPv4 (and IPv4-mapped IPv6) to /24, IPv6 to /64.
pub fn netblock_in_place(idm: &mut [u8], mask: AnonymizeMask) {
    if idm.len() < inetdiag::INET_DIAG_MSG_LEN {
        return;
    }
    let family = idm[0];
    for (bit, range) in [
        (ANONYMIZE_SRC, inetdiag::address_ranges::SRC),
        (ANONYMIZE_DST, inetdiag::address_ranges::DST),
    ] {
        if mask & bit != 0 {
            netblock_address(family, &mut idm[range]);
        }
    }
}

fn netblock_address(family: u8, addr: &mut [u8]) {
    if family == inetdiag::AF_INET {
        addr[3] = 0;
        return;
    }
    let bytes: [u8; 16] = addr.try_into().unwrap_or([0; 16]);
    if Ipv6Addr::from(bytes).to_ipv4_mapped().is_some() {
        addr[15] = 0;
    } else {
        addr[8..16].fill(0);
    }
}

/// `ip` with the same netblock anonymization applied (for events).
pub fn netblock_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], 0))
        }
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            netblock_address(inetdiag::AF_INET6, &mut o);
            IpAddr::V6(Ipv6Addr::from(o))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idm(family: u8, src: [u8; 16], sport: u16, dst: [u8; 16]) -> [u8; 72] {
        let mut b = [0u8; 72];
        b[0] = family;
        b[4..6].copy_from_slice(&sport.to_be_bytes());
        b[8..24].copy_from_slice(&src);
        b[24..40].copy_from_slice(&dst);
        b
    }

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..4].copy_from_slice(&a);
        b
    }

    fn mapped(a: [u8; 4]) -> [u8; 16] {
        Ipv4Addr::from(a).to_ipv6_mapped().octets()
    }

    #[test]
    fn local_scopes_are_excluded_by_default_only() {
        let on = Exclusion::new(true, vec![], vec![]);
        let off = Exclusion::new(false, vec![], vec![]);
        let cases = [
            (idm(2, v4([127, 0, 0, 1]), 1, v4([127, 0, 0, 1])), true),
            (idm(2, v4([198, 51, 100, 1]), 1, v4([169, 254, 1, 1])), true),
            (idm(2, v4([198, 51, 100, 1]), 1, v4([224, 0, 0, 1])), true),
            (idm(2, v4([0, 0, 0, 0]), 1, v4([0, 0, 0, 0])), true),
            (
                idm(10, mapped([127, 0, 0, 1]), 1, mapped([127, 0, 0, 1])),
                true,
            ),
            (
                idm(
                    10,
                    Ipv6Addr::LOCALHOST.octets(),
                    1,
                    Ipv6Addr::LOCALHOST.octets(),
                ),
                true,
            ),
            (
                idm(
                    10,
                    "fe80::1".parse::<Ipv6Addr>().unwrap().octets(),
                    1,
                    "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets(),
                ),
                true,
            ),
            (
                idm(2, v4([198, 51, 100, 1]), 1, v4([198, 51, 100, 2])),
                false,
            ),
            (
                idm(10, mapped([198, 51, 100, 1]), 1, mapped([198, 51, 100, 2])),
                false,
            ),
        ];
        for (raw, excluded) in cases {
            let m = InetDiagMsg::parse(&raw).unwrap();
            assert_eq!(on.excludes(&m), excluded, "{m:?}");
            assert!(!off.excludes(&m), "{m:?}");
        }
    }

    #[test]
    fn srcport_and_dstip_rules() {
        let e = Exclusion::new(false, vec![22], vec!["198.51.100.9".parse().unwrap()]);
        let by_port = idm(2, v4([198, 51, 100, 1]), 22, v4([198, 51, 100, 2]));
        let by_ip = idm(10, mapped([198, 51, 100, 1]), 80, mapped([198, 51, 100, 9]));
        let kept = idm(2, v4([198, 51, 100, 1]), 80, v4([198, 51, 100, 2]));
        assert!(e.excludes(&InetDiagMsg::parse(&by_port).unwrap()));
        assert!(e.excludes(&InetDiagMsg::parse(&by_ip).unwrap()));
        assert!(!e.excludes(&InetDiagMsg::parse(&kept).unwrap()));
    }

    #[test]
    fn netblock_zeroes_host_bits() {
        let mut a = idm(2, v4([198, 51, 100, 1]), 1, v4([203, 0, 113, 77]));
        netblock_in_place(&mut a, ANONYMIZE_DST);
        assert_eq!(&a[8..12], &[198, 51, 100, 1]);
        assert_eq!(&a[24..28], &[203, 0, 113, 0]);

        let mut b = idm(10, mapped([198, 51, 100, 1]), 1, mapped([203, 0, 113, 77]));
        netblock_in_place(&mut b, ANONYMIZE_DST | ANONYMIZE_SRC);
        assert_eq!(&b[8..24], &mapped([198, 51, 100, 0]));
        assert_eq!(&b[24..40], &mapped([203, 0, 113, 0]));

        let dst: Ipv6Addr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let mut c = idm(10, Ipv6Addr::LOCALHOST.octets(), 1, dst.octets());
        netblock_in_place(&mut c, ANONYMIZE_DST);
        assert_eq!(
            &c[24..40],
            &"2001:db8:1:2::".parse::<Ipv6Addr>().unwrap().octets()
        );
        assert_eq!(&c[8..24], &Ipv6Addr::LOCALHOST.octets());
        assert_eq!(
            netblock_ip("203.0.113.77".parse().unwrap()).to_string(),
            "203.0.113.0"
        );
    }
}
