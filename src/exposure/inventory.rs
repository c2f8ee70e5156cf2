//! What is listening and who talks to whom: the inventory the exposure
//! gauges are built from, taken from the poller's cache (TCP) and from a
//! UDP sock_diag dump.

use std::net::IpAddr;

use ahash::AHashMap;
use inetdiag::request::DumpRequest;
use inetdiag::{DiagSocket, InetDiagMsg};

use super::peers::{PeerFilter, PeerSocket};
use crate::address::{classify, Scope};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// The `family` / `af` label value of an address family, as M-Lab's tool
/// spells it.
pub fn family_label(family: u8) -> &'static str {
    match family {
        inetdiag::AF_INET => "ipv4",
        inetdiag::AF_INET6 => "ipv6",
        // The syscall time of one dump of both families.
        inetdiag::AF_UNSPEC => "all",
        _ => "unknown",
    }
}

/// One listening socket: a TCP socket in LISTEN, or a UDP socket bound to a
/// port with no connected peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListeningSocket {
    pub proto: Proto,
    pub family: u8,
    /// Scope of the local (bound) address.
    pub scope: Scope,
    /// The bound address (unspecified for a wildcard bind).
    pub addr: IpAddr,
    pub port: u16,
    /// The socket's inode: the key to the owning process in /proc.
    pub inode: u32,
}

impl ListeningSocket {
    pub(crate) fn from_msg(proto: Proto, msg: &InetDiagMsg) -> Self {
        Self {
            proto,
            family: msg.family(),
            scope: classify(msg.src()),
            addr: msg.src(),
            port: msg.sport(),
            inode: msg.inode(),
        }
    }

    /// A listener on `addr` (family and scope follow from it), for tests.
    #[cfg(test)]
    pub(crate) fn bound(proto: Proto, addr: &str, port: u16, inode: u32) -> Self {
        let addr: IpAddr = addr.parse().expect("test address");
        Self {
            proto,
            family: if addr.is_ipv4() {
                inetdiag::AF_INET
            } else {
                inetdiag::AF_INET6
            },
            scope: classify(addr),
            addr,
            port,
            inode,
        }
    }
}

/// Whether a connection's local port is one of the host's listening ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    pub fn label(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The `remote_scope` label: a scope, or `none` for LISTEN sockets.
pub const REMOTE_SCOPES: usize = 4;
const REMOTE_NONE: usize = 3;

pub fn remote_scope_label(index: usize) -> &'static str {
    match index {
        0..=2 => Scope::ALL[index].label(),
        _ => "none",
    }
}

/// TCP states are 4-bit numbers (`TCP_MAX_STATES` = 16, net/tcp_states.h).
const STATES: usize = 16;

/// TCP socket counts by (state, direction, remote scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionCounts {
    counts: [[[u64; REMOTE_SCOPES]; 2]; STATES],
}

impl Default for ConnectionCounts {
    fn default() -> Self {
        Self {
            counts: [[[0; REMOTE_SCOPES]; 2]; STATES],
        }
    }
}

impl ConnectionCounts {
    fn add(&mut self, state: u8, direction: Direction, remote_scope: usize) {
        self.counts[state as usize % STATES][direction as usize][remote_scope] += 1;
    }

    /// `(state, direction, remote_scope index, count)` for every non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (u8, Direction, usize, u64)> + '_ {
        self.counts.iter().enumerate().flat_map(|(state, by_dir)| {
            Direction::ALL.into_iter().flat_map(move |dir| {
                by_dir[dir as usize]
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(move |(scope, &n)| (state as u8, dir, scope, n))
            })
        })
    }

    pub fn get(&self, state: u8, direction: Direction, remote_scope: usize) -> u64 {
        self.counts[state as usize % STATES][direction as usize][remote_scope]
    }
}

/// The TCP half of the inventory, built by the poller on a slow cadence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpInventory {
    pub listeners: Vec<ListeningSocket>,
    pub connections: ConnectionCounts,
    /// Inbound connections (not LISTEN sockets) per listening port, by port.
    pub inbound_by_port: Vec<(u16, u64)>,
    /// Sockets whose peer is inside the `-remote-states` ranges (none when
    /// the option is off).
    pub peers: Vec<PeerSocket>,
}

/// Builds [`TcpInventory`]s, keeping its scratch space between builds so
/// that a build allocates only what it returns.
pub struct InventoryBuilder {
    /// Bit `p` set when some socket listens on TCP port `p`.
    listening_ports: Box<[u64; 1024]>,
    /// `(local port, state, remote scope)` of every non-LISTEN socket.
    others: Vec<(u16, u8, u8)>,
    by_port: AHashMap<u16, u64>,
    /// `-remote-states`: which peers to collect into [`TcpInventory::peers`].
    peer_filter: Option<PeerFilter>,
}

impl Default for InventoryBuilder {
    fn default() -> Self {
        Self {
            listening_ports: Box::new([0; 1024]),
            others: Vec::new(),
            by_port: AHashMap::new(),
            peer_filter: None,
        }
    }
}

impl InventoryBuilder {
    /// Also collect the sockets whose peer is inside `filter`.
    pub fn track_peers(&mut self, filter: PeerFilter) {
        self.peer_filter = Some(filter);
    }

    /// One pass over the last snapshot of every socket the poller knows.
    pub fn build<'a>(&mut self, sockets: impl Iterator<Item = InetDiagMsg<'a>>) -> TcpInventory {
        let mut inventory = TcpInventory::default();
        self.listening_ports.fill(0);
        self.others.clear();
        self.by_port.clear();
        for msg in sockets {
            if msg.state() == inetdiag::TCP_LISTEN {
                let port = msg.sport();
                self.listening_ports[port as usize / 64] |= 1 << (port % 64);
                inventory
                    .listeners
                    .push(ListeningSocket::from_msg(Proto::Tcp, &msg));
            } else {
                let dst = msg.dst();
                let remote = classify(dst).index() as u8;
                self.others.push((msg.sport(), msg.state(), remote));
                if let Some(filter) = &self.peer_filter {
                    if filter.contains(dst) {
                        inventory.peers.push(PeerSocket::from_msg(&msg));
                    }
                }
            }
        }
        for listener in &inventory.listeners {
            inventory
                .connections
                .add(inetdiag::TCP_LISTEN, Direction::Inbound, REMOTE_NONE);
            // Every listening port gets a by-port series, zero included.
            self.by_port.entry(listener.port).or_insert(0);
        }
        for &(port, state, remote) in &self.others {
            let listening = self.listening_ports[port as usize / 64] & (1 << (port % 64)) != 0;
            let direction = if listening {
                *self.by_port.entry(port).or_insert(0) += 1;
                Direction::Inbound
            } else {
                Direction::Outbound
            };
            inventory.connections.add(state, direction, remote as usize);
        }
        inventory.inbound_by_port = self.by_port.iter().map(|(&p, &n)| (p, n)).collect();
        inventory.inbound_by_port.sort_unstable();
        inventory
    }
}

/// Where the kernel puts UDP client sockets nobody bound: a socket that
/// sends (`sendto`) without a `bind` is given a port from
/// `net.ipv4.ip_local_port_range` on the wildcard address, never one of
/// `net.ipv4.ip_local_reserved_ports` (both per network namespace, and for
/// IPv6 too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPorts {
    range: std::ops::RangeInclusive<u16>,
    reserved: Vec<std::ops::RangeInclusive<u16>>,
}

impl Default for ClientPorts {
    /// The kernel's defaults.
    fn default() -> Self {
        ClientPorts {
            range: 32768..=60999,
            reserved: Vec::new(),
        }
    }
}

impl ClientPorts {
    /// This network namespace's settings, read from `/proc/sys` (the
    /// kernel's defaults when unreadable).
    pub fn current() -> Self {
        let read = |name: &str| std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"));
        let mut ports = ClientPorts::default();
        if let Ok(text) = read("ip_local_port_range") {
            let mut bounds = text
                .split_whitespace()
                .filter_map(|n| n.parse::<u16>().ok());
            if let (Some(lo), Some(hi)) = (bounds.next(), bounds.next()) {
                ports.range = lo..=hi;
            }
        }
        if let Ok(text) = read("ip_local_reserved_ports") {
            ports.reserved = parse_port_list(&text);
        }
        ports
    }

    pub fn new(range: std::ops::RangeInclusive<u16>, reserved: &str) -> Self {
        ClientPorts {
            range,
            reserved: parse_port_list(reserved),
        }
    }

    /// Whether the kernel could have picked `port` for an unbound socket.
    fn ephemeral(&self, port: u16) -> bool {
        self.range.contains(&port) && !self.reserved.iter().any(|r| r.contains(&port))
    }
}

/// `8080,9000-9010` (the format of `ip_local_reserved_ports`).
fn parse_port_list(text: &str) -> Vec<std::ops::RangeInclusive<u16>> {
    text.trim()
        .split(',')
        .filter_map(|item| {
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            Some(lo.trim().parse().ok()?..=hi.trim().parse().ok()?)
        })
        .collect()
}

/// A UDP socket "listens" when it is bound to a port and has no connected
/// peer (a connected UDP socket only talks to that peer) — unless it looks
/// like a client's: on the wildcard address, on a port the kernel hands
/// out to sockets that send without binding ([`ClientPorts`]), and held by
/// a process (a kernel socket, such as WireGuard's, has inode 0). The
/// kernel does not say whether a socket was bound explicitly, so this is a
/// heuristic: a service that binds the wildcard address on a port in the
/// ephemeral range (or on port 0) is taken for a client; one bound to a
/// specific address, or to a port outside the range, is always a listener.
pub fn udp_listener(msg: &InetDiagMsg, clients: &ClientPorts) -> Option<ListeningSocket> {
    let unconnected = msg.dport() == 0 && msg.dst().is_unspecified();
    let client_like =
        msg.src().is_unspecified() && clients.ephemeral(msg.sport()) && msg.inode() != 0;
    (unconnected && msg.sport() != 0 && !client_like)
        .then(|| ListeningSocket::from_msg(Proto::Udp, msg))
}

/// Dumps every UDP socket (IPv6 then IPv4) and appends the listening ones.
pub fn dump_udp_listeners(
    socket: &mut DiagSocket,
    out: &mut Vec<ListeningSocket>,
) -> Result<(), inetdiag::Error> {
    let clients = ClientPorts::current();
    for family in [inetdiag::AF_INET6, inetdiag::AF_INET] {
        let request = DumpRequest {
            family,
            protocol: inetdiag::IPPROTO_UDP,
            states: inetdiag::ALL_STATES,
            extensions: 0,
        };
        socket.dump(&request, |payload| {
            if let Ok(msg) = InetDiagMsg::parse(payload) {
                if let Some(listener) = udp_listener(&msg, &clients) {
                    out.push(listener);
                }
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    /// A 72-byte `inet_diag_msg` with the given fields.
    pub(crate) fn msg_bytes(
        state: u8,
        src: IpAddr,
        sport: u16,
        dst: IpAddr,
        dport: u16,
        cookie: u64,
        inode: u32,
    ) -> Vec<u8> {
        let mut v = vec![0u8; 72];
        v[0] = match src {
            IpAddr::V4(_) => inetdiag::AF_INET,
            IpAddr::V6(_) => inetdiag::AF_INET6,
        };
        v[1] = state;
        v[4..6].copy_from_slice(&sport.to_be_bytes());
        v[6..8].copy_from_slice(&dport.to_be_bytes());
        let put = |v: &mut Vec<u8>, at: usize, ip: IpAddr| match ip {
            IpAddr::V4(a) => v[at..at + 4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => v[at..at + 16].copy_from_slice(&a.octets()),
        };
        put(&mut v, 8, src);
        put(&mut v, 24, dst);
        v[44..48].copy_from_slice(&(cookie as u32).to_ne_bytes());
        v[48..52].copy_from_slice(&((cookie >> 32) as u32).to_ne_bytes());
        v[68..72].copy_from_slice(&inode.to_ne_bytes());
        v
    }

    fn v4(s: &str) -> IpAddr {
        s.parse::<Ipv4Addr>().unwrap().into()
    }
    fn v6(s: &str) -> IpAddr {
        s.parse::<Ipv6Addr>().unwrap().into()
    }

    #[test]
    fn listeners_directions_and_inbound_counts_per_port() {
        use inetdiag::{TCP_ESTABLISHED, TCP_LISTEN, TCP_SYN_SENT};
        let any4 = v4("0.0.0.0");
        let sockets = [
            msg_bytes(TCP_LISTEN, any4, 22, any4, 0, 1, 100),
            msg_bytes(TCP_LISTEN, v6("::1"), 8080, v6("::"), 0, 2, 101),
            // Two inbound on 22 (one public, one private peer).
            msg_bytes(
                TCP_ESTABLISHED,
                v4("198.51.100.1"),
                22,
                v4("203.0.113.9"),
                50000,
                3,
                0,
            ),
            msg_bytes(
                TCP_ESTABLISHED,
                v4("10.0.0.1"),
                22,
                v4("10.0.0.2"),
                50001,
                4,
                0,
            ),
            // Outbound from an ephemeral port to a loopback peer.
            msg_bytes(TCP_SYN_SENT, v6("::1"), 40000, v6("::1"), 9999, 5, 0),
        ];
        let records: Vec<_> = sockets
            .iter()
            .map(|b| InetDiagMsg::parse(b).unwrap())
            .collect();
        let inv = InventoryBuilder::default().build(records.iter().copied());
        assert_eq!(inv.listeners.len(), 2);
        assert_eq!(inv.listeners[0].scope, Scope::Public);
        assert_eq!(inv.listeners[1].scope, Scope::Loopback);
        assert_eq!(inv.listeners[1].family, inetdiag::AF_INET6);
        assert_eq!(inv.listeners[1].inode, 101);
        let c = &inv.connections;
        assert_eq!(c.get(TCP_LISTEN, Direction::Inbound, REMOTE_NONE), 2);
        assert_eq!(c.get(TCP_ESTABLISHED, Direction::Inbound, 2), 1);
        assert_eq!(c.get(TCP_ESTABLISHED, Direction::Inbound, 1), 1);
        assert_eq!(c.get(TCP_SYN_SENT, Direction::Outbound, 0), 1);
        assert_eq!(c.iter().map(|(.., n)| n).sum::<u64>(), 5);
        assert_eq!(inv.inbound_by_port, vec![(22, 2), (8080, 0)]);
    }

    #[test]
    fn peers_inside_the_ranges_are_collected_only_when_tracking() {
        use inetdiag::{TCP_ESTABLISHED, TCP_LISTEN};
        let sockets = [
            msg_bytes(TCP_LISTEN, v4("198.51.100.1"), 22, v4("0.0.0.0"), 0, 1, 0),
            msg_bytes(
                TCP_ESTABLISHED,
                v4("198.51.100.1"),
                22,
                v4("198.51.100.2"),
                50000,
                2,
                0,
            ),
            msg_bytes(
                TCP_ESTABLISHED,
                v4("198.51.100.1"),
                22,
                v4("203.0.113.9"),
                50001,
                3,
                0,
            ),
            msg_bytes(
                TCP_ESTABLISHED,
                v6("2001:db8::1"),
                40000,
                v6("::ffff:198.51.100.3"),
                443,
                4,
                0,
            ),
        ];
        let records: Vec<_> = sockets
            .iter()
            .map(|b| InetDiagMsg::parse(b).unwrap())
            .collect();
        let walk = |builder: &mut InventoryBuilder| builder.build(records.iter().copied());
        let mut builder = InventoryBuilder::default();
        assert!(walk(&mut builder).peers.is_empty(), "off by default");
        builder.track_peers(PeerFilter::new(vec!["198.51.100.0/24".parse().unwrap()]));
        let peers = walk(&mut builder).peers;
        let seen: Vec<(u64, u16, u16)> = peers
            .iter()
            .map(|p| (p.cookie, p.local_port, p.peer_port))
            .collect();
        assert_eq!(seen, [(2, 22, 50000), (4, 40000, 443)]);
    }

    #[test]
    fn a_udp_socket_listens_only_while_unconnected() {
        let bound = msg_bytes(7, v4("0.0.0.0"), 53, v4("0.0.0.0"), 0, 1, 9);
        let connected = msg_bytes(1, v4("10.0.0.1"), 40000, v4("10.0.0.2"), 53, 2, 9);
        let unbound = msg_bytes(7, v6("::"), 0, v6("::"), 0, 3, 9);
        let clients = ClientPorts::default();
        let l = udp_listener(&InetDiagMsg::parse(&bound).unwrap(), &clients).unwrap();
        assert_eq!((l.proto, l.port, l.scope), (Proto::Udp, 53, Scope::Public));
        assert!(udp_listener(&InetDiagMsg::parse(&connected).unwrap(), &clients).is_none());
        assert!(udp_listener(&InetDiagMsg::parse(&unbound).unwrap(), &clients).is_none());
    }

    #[test]
    fn a_udp_socket_on_a_wildcard_ephemeral_port_is_a_client_not_a_listener() {
        let clients = ClientPorts::new(32768..=60999, "40000,50000-50010\n");
        let listens = |src: &str, port: u16, inode: u32| {
            let src = if src.contains(':') { v6(src) } else { v4(src) };
            let unspecified = if src.is_ipv6() {
                v6("::")
            } else {
                v4("0.0.0.0")
            };
            let bytes = msg_bytes(7, src, port, unspecified, 0, 1, inode);
            udp_listener(&InetDiagMsg::parse(&bytes).unwrap(), &clients).is_some()
        };
        // A resolver's sendto socket, IPv4 and IPv6.
        assert!(!listens("0.0.0.0", 45123, 9));
        assert!(!listens("::", 32768, 9));
        assert!(!listens("::", 60999, 9));
        // Outside the range, on a reserved port, on a specific address, or
        // a kernel socket: a listener.
        assert!(listens("0.0.0.0", 32767, 9));
        assert!(listens("0.0.0.0", 61000, 9));
        assert!(listens("0.0.0.0", 40000, 9));
        assert!(listens("::", 50005, 9));
        assert!(listens("198.51.100.1", 45123, 9));
        assert!(listens("0.0.0.0", 51820, 0));
        assert_eq!(ClientPorts::new(1..=2, "").reserved, []);
    }
}
