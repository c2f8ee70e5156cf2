//! Per-peer connection states (`-remote-states`): how many connections
//! each peer inside the given ranges has opening, open, closing and
//! closed, bucketed as conntrack_exporter buckets conntrack's TCP states.
//!
//! Two sources, both on the inventory's cadence, never on the polling
//! path: the poller's cache (every state the archive's dump requests),
//! collected by the inventory walk into [`TcpInventory::peers`], and a dump
//! of its own here for the three states that dump leaves out (SYN_RECV,
//! TIME_WAIT, CLOSE).

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use arc_swap::ArcSwap;
use inetdiag::request::DumpRequest;
use inetdiag::{DiagSocket, InetDiagMsg};

use super::inventory::TcpInventory;
use super::peers::{PeerFilter, PeerSocket};
use crate::log::RateLimit;
use crate::series_cap::{self, DroppedSeries};

/// Default of `-remote-states.max-series`.
pub const DEFAULT_MAX_SERIES: usize = series_cap::MAX_SERIES;

/// How long a connection that vanished without passing through TIME_WAIT
/// or CLOSE (a passive close, a reset) stays `closed`: conntrack's own
/// `nf_conntrack_tcp_timeout_close`, so that a scrape every 15 s or so
/// still sees it.
pub const CLOSED_RETENTION: Duration = Duration::from_secs(10);

/// The states the archive's dump does not request, asked for in a dump of
/// their own. The kernel adds NEW_SYN_RECV request sockets whenever
/// SYN_RECV is asked for (`inet_diag_dump_icsk`, net/ipv4/inet_diag.c).
pub const LEFTOVER_STATES: u32 =
    (1 << inetdiag::TCP_SYN_RECV) | (1 << inetdiag::TCP_TIME_WAIT) | (1 << inetdiag::TCP_CLOSE);

static DUMP_ERRORS: RateLimit = RateLimit::new(60_000);

/// The `state` label: where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Opening,
    Open,
    Closing,
    Closed,
}

impl Phase {
    pub const ALL: [Phase; 4] = [Phase::Opening, Phase::Open, Phase::Closing, Phase::Closed];

    pub fn label(self) -> &'static str {
        match self {
            Phase::Opening => "opening",
            Phase::Open => "open",
            Phase::Closing => "closing",
            Phase::Closed => "closed",
        }
    }

    /// The phase of a socket in TCP state `state` (linux/tcp_states.h), as
    /// conntrack_exporter maps conntrack's states; `None` for LISTEN, which
    /// is not a connection, and for states the kernel does not define.
    pub fn of_state(state: u8) -> Option<Phase> {
        use inetdiag::*;
        match state {
            TCP_SYN_SENT | TCP_SYN_RECV | TCP_NEW_SYN_RECV => Some(Phase::Opening),
            TCP_ESTABLISHED => Some(Phase::Open),
            TCP_FIN_WAIT1 | TCP_FIN_WAIT2 | TCP_CLOSE_WAIT | TCP_LAST_ACK | TCP_CLOSING => {
                Some(Phase::Closing)
            }
            TCP_TIME_WAIT | TCP_CLOSE => Some(Phase::Closed),
            _ => None,
        }
    }
}

/// The `remote` label: the peer's address and the port of the connection's
/// listening side. Ordered by address (IPv4 first), then port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Remote {
    /// Canonical: an IPv4-mapped IPv6 peer is its IPv4 address.
    pub ip: IpAddr,
    pub port: u16,
}

impl Remote {
    /// For an inbound connection (our local port listens) the peer's port
    /// is an ephemeral one, different for every connection: the key is the
    /// peer with our service port instead, which bounds the label values by
    /// peers × services. For an outbound one it is the peer's own address
    /// and port.
    pub fn of(socket: &PeerSocket, local_port_listens: bool) -> Self {
        Remote {
            ip: socket.peer.to_canonical(),
            port: if local_port_listens {
                socket.local_port
            } else {
                socket.peer_port
            },
        }
    }
}

impl fmt::Display for Remote {
    /// `198.51.100.2:443`, `[2001:db8::2]:443`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        SocketAddr::new(self.ip, self.port).fmt(f)
    }
}

/// One `tcpinfo_remote_connections` series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteSeries {
    pub remote: Remote,
    pub phase: Phase,
    pub connections: u64,
}

/// Where the exposure worker publishes the series and /metrics reads them
/// (a reader never waits for the worker).
#[derive(Debug, Default)]
pub struct RemoteCell {
    series: ArcSwap<Vec<RemoteSeries>>,
    /// Series left out by the cap.
    dropped: DroppedSeries,
    /// Failed dumps of SYN_RECV, TIME_WAIT and CLOSE sockets.
    pub dump_errors: AtomicU64,
}

impl RemoteCell {
    pub fn load(&self) -> Arc<Vec<RemoteSeries>> {
        self.series.load_full()
    }

    /// Series left out by the cap, summed over every inventory.
    pub fn dropped(&self) -> u64 {
        self.dropped.total()
    }

    fn publish(&self, series: Vec<RemoteSeries>, dropped: usize) {
        if self.dropped.add(dropped) {
            log!(
                "remote-states: {} series, only {} exported; the rest are counted in tcpinfo_remote_dropped_series_total (logged once)",
                series.len() + dropped,
                series.len()
            );
        }
        self.series.store(Arc::new(series));
    }
}

/// The per-peer accounting between inventories, without any I/O: what the
/// tracker feeds it is the cache walk's sockets and the dump's.
#[derive(Debug)]
pub struct PeerStates {
    max_series: usize,
    /// cookie → (key, TCP state) of every tracked socket in the current and
    /// the previous inventory.
    current: AHashMap<u64, (Remote, u8)>,
    previous: AHashMap<u64, (Remote, u8)>,
    /// Connections that vanished without passing through TIME_WAIT or
    /// CLOSE, per key, until the given instant; oldest first.
    gone: VecDeque<(Instant, Remote, u64)>,
    scratch: AHashMap<Remote, u64>,
}

impl PeerStates {
    pub fn new(max_series: usize) -> Self {
        Self {
            max_series,
            current: AHashMap::new(),
            previous: AHashMap::new(),
            gone: VecDeque::new(),
            scratch: AHashMap::new(),
        }
    }

    /// Starts an inventory: forgets the sockets of the one before last.
    pub fn begin(&mut self) {
        std::mem::swap(&mut self.current, &mut self.previous);
        self.current.clear();
    }

    /// Adds one socket; a later sighting of the same cookie (the dump runs
    /// after the cache walk) replaces an earlier one. `listens` says whether
    /// a local port is a listening port.
    pub fn add(&mut self, socket: &PeerSocket, listens: impl Fn(u16) -> bool) {
        if Phase::of_state(socket.state).is_some() {
            let remote = Remote::of(socket, listens(socket.local_port));
            self.current.insert(socket.cookie, (remote, socket.state));
        }
    }

    /// Ends the inventory at `now`: the series, best first and at most
    /// `max_series` of them, and how many were left out.
    ///
    /// Connections of the previous inventory that are gone now count as
    /// `closed` for [`CLOSED_RETENTION`], unless they were already closed
    /// (TIME_WAIT, CLOSE: counted while the kernel kept them) or were
    /// request sockets (SYN_RECV: a completed handshake replaces the
    /// request socket by a new one, which is no close).
    pub fn finish(&mut self, now: Instant) -> (Vec<RemoteSeries>, usize) {
        while self.gone.front().is_some_and(|&(until, ..)| until <= now) {
            self.gone.pop_front();
        }
        self.scratch.clear();
        for (cookie, &(remote, state)) in &self.previous {
            let counts = !matches!(
                state,
                inetdiag::TCP_TIME_WAIT
                    | inetdiag::TCP_CLOSE
                    | inetdiag::TCP_SYN_RECV
                    | inetdiag::TCP_NEW_SYN_RECV
            );
            if counts && !self.current.contains_key(cookie) {
                *self.scratch.entry(remote).or_insert(0) += 1;
            }
        }
        let until = now + CLOSED_RETENTION;
        self.gone
            .extend(self.scratch.drain().map(|(remote, n)| (until, remote, n)));

        let mut counts: AHashMap<(Remote, Phase), u64> = AHashMap::new();
        for &(remote, state) in self.current.values() {
            if let Some(phase) = Phase::of_state(state) {
                *counts.entry((remote, phase)).or_insert(0) += 1;
            }
        }
        for &(_, remote, n) in &self.gone {
            *counts.entry((remote, Phase::Closed)).or_insert(0) += n;
        }
        keep_busiest(counts, self.max_series)
    }
}

/// Keeps the `max` series of the busiest peers: ranked by the peer's
/// connections over all phases (most first), then by key (lowest first),
/// then by phase, so the choice is deterministic and a peer's phases tend
/// to stay together.
fn keep_busiest(counts: AHashMap<(Remote, Phase), u64>, max: usize) -> (Vec<RemoteSeries>, usize) {
    let mut totals: AHashMap<Remote, u64> = AHashMap::new();
    for (&(remote, _), &n) in &counts {
        *totals.entry(remote).or_insert(0) += n;
    }
    let mut series: Vec<RemoteSeries> = counts
        .into_iter()
        .map(|((remote, phase), connections)| RemoteSeries {
            remote,
            phase,
            connections,
        })
        .collect();
    series.sort_unstable_by(|a, b| {
        totals[&b.remote]
            .cmp(&totals[&a.remote])
            .then(a.remote.cmp(&b.remote))
            .then(a.phase.cmp(&b.phase))
    });
    series_cap::cap(series, max)
}

/// The exposure worker's part of `-remote-states`: on every inventory it
/// dumps the leftover states, merges them with the inventory's peers and
/// publishes the series.
pub struct RemoteTracker {
    filter: PeerFilter,
    socket: Option<DiagSocket>,
    states: PeerStates,
    cell: Arc<RemoteCell>,
    dumped: Vec<PeerSocket>,
    listening: Vec<u16>,
}

impl RemoteTracker {
    pub fn new(filter: PeerFilter, max_series: usize, cell: Arc<RemoteCell>) -> Self {
        let socket = match DiagSocket::new() {
            Ok(s) => Some(s),
            Err(e) => {
                log_warn!("remote-states: no SYN_RECV, TIME_WAIT or CLOSE sockets: cannot open NETLINK_SOCK_DIAG: {e}");
                None
            }
        };
        Self {
            filter,
            socket,
            states: PeerStates::new(max_series),
            cell,
            dumped: Vec::new(),
            listening: Vec::new(),
        }
    }

    /// The ranges whose peers are tracked.
    pub fn filter(&self) -> &PeerFilter {
        &self.filter
    }

    /// Accounts one TCP inventory and publishes the series.
    pub fn update(&mut self, inventory: &TcpInventory, now: Instant) {
        self.listening.clear();
        self.listening
            .extend(inventory.listeners.iter().map(|l| l.port));
        self.listening.sort_unstable();
        self.listening.dedup();
        let listening = &self.listening;
        let listens = |port: u16| listening.binary_search(&port).is_ok();

        self.dumped.clear();
        if let Some(socket) = self.socket.as_mut() {
            // On failure the inventory's sockets are still accounted;
            // only the three leftover states are missing this time.
            if let Err(e) = dump_leftover_states(socket, &self.filter, &mut self.dumped) {
                self.cell.dump_errors.fetch_add(1, Relaxed);
                warn_limited!(DUMP_ERRORS, "remote-states: sock_diag dump failed: {e}");
            }
        }
        self.states.begin();
        for socket in inventory.peers.iter().chain(&self.dumped) {
            self.states.add(socket, listens);
        }
        let (series, dropped) = self.states.finish(now);
        self.cell.publish(series, dropped);
    }
}

/// Dumps the TCP sockets in SYN_RECV, TIME_WAIT and CLOSE (IPv6 then IPv4,
/// no extensions) and appends those whose peer is inside `filter`.
///
/// Request sockets and TIME_WAIT sockets are minimal sockets: the kernel
/// fills only family, state, ports, addresses, interface, cookie and timer
/// of their `inet_diag_msg` (`inet_req_diag_fill`, `inet_twsk_diag_fill`),
/// which is all this needs. A TIME_WAIT socket keeps the cookie of the
/// connection it ends (`inet_twsk_alloc`); it is reported with its
/// substate, so an orphaned FIN_WAIT2 kept as a TIME_WAIT socket comes in
/// the archive's dump as FIN_WAIT2, not here.
pub fn dump_leftover_states(
    socket: &mut DiagSocket,
    filter: &PeerFilter,
    out: &mut Vec<PeerSocket>,
) -> Result<(), inetdiag::Error> {
    for family in [inetdiag::AF_INET6, inetdiag::AF_INET] {
        let request = DumpRequest {
            family,
            protocol: inetdiag::IPPROTO_TCP,
            states: LEFTOVER_STATES,
            extensions: 0,
        };
        socket.dump(&request, |payload| {
            if let Ok(msg) = InetDiagMsg::parse(payload) {
                if filter.contains(msg.dst()) {
                    out.push(PeerSocket::from_msg(&msg));
                }
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use inetdiag::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sock(cookie: u64, state: u8, peer: &str, peer_port: u16, local_port: u16) -> PeerSocket {
        PeerSocket {
            cookie,
            state,
            peer: ip(peer),
            peer_port,
            local_port,
        }
    }

    fn remote(s: &str) -> Remote {
        let a: SocketAddr = s.parse().unwrap();
        Remote {
            ip: a.ip(),
            port: a.port(),
        }
    }

    fn listens_on_22(port: u16) -> bool {
        port == 22
    }

    /// One inventory of `sockets` at `now`: the series and how many the cap
    /// left out.
    fn inventory(
        states: &mut PeerStates,
        sockets: &[PeerSocket],
        now: Instant,
    ) -> (Vec<RemoteSeries>, usize) {
        states.begin();
        for s in sockets {
            states.add(s, listens_on_22);
        }
        states.finish(now)
    }

    /// `(remote, phase label, count)` of every series.
    fn table(series: &[RemoteSeries]) -> Vec<(String, &'static str, u64)> {
        series
            .iter()
            .map(|s| (s.remote.to_string(), s.phase.label(), s.connections))
            .collect()
    }

    #[test]
    fn tcp_states_map_to_phases_as_conntrack_exporter_does() {
        let expect = [
            (TCP_SYN_SENT, Some(Phase::Opening)),
            (TCP_SYN_RECV, Some(Phase::Opening)),
            (TCP_NEW_SYN_RECV, Some(Phase::Opening)),
            (TCP_ESTABLISHED, Some(Phase::Open)),
            (TCP_FIN_WAIT1, Some(Phase::Closing)),
            (TCP_FIN_WAIT2, Some(Phase::Closing)),
            (TCP_CLOSE_WAIT, Some(Phase::Closing)),
            (TCP_LAST_ACK, Some(Phase::Closing)),
            (TCP_CLOSING, Some(Phase::Closing)),
            (TCP_TIME_WAIT, Some(Phase::Closed)),
            (TCP_CLOSE, Some(Phase::Closed)),
            (TCP_LISTEN, None),
            (0, None),
            (13, None),
        ];
        for (state, phase) in expect {
            assert_eq!(Phase::of_state(state), phase, "{}", state_name(state));
        }
        assert_eq!(LEFTOVER_STATES | ARCHIVE_STATES, ALL_STATES);
        assert_eq!(LEFTOVER_STATES & ARCHIVE_STATES, 0);
    }

    #[test]
    fn keys_use_the_listening_side_port_and_canonical_addresses() {
        // Inbound to our port 22: the peer's ephemeral port is dropped.
        let inbound = sock(1, TCP_ESTABLISHED, "198.51.100.2", 51234, 22);
        assert_eq!(Remote::of(&inbound, true).to_string(), "198.51.100.2:22");
        // Outbound from an ephemeral port: the peer's service port.
        let outbound = sock(2, TCP_ESTABLISHED, "2001:db8::2", 443, 40000);
        assert_eq!(
            Remote::of(&outbound, false).to_string(),
            "[2001:db8::2]:443"
        );
        // An IPv4 client of a dual-stack listener.
        let mapped = sock(3, TCP_ESTABLISHED, "::ffff:198.51.100.2", 50000, 8080);
        assert_eq!(Remote::of(&mapped, true).to_string(), "198.51.100.2:8080");
        assert_eq!(Remote::of(&mapped, true), remote("198.51.100.2:8080"));
    }

    #[test]
    fn one_series_per_remote_and_phase_listen_sockets_ignored() {
        let sockets = [
            sock(1, TCP_ESTABLISHED, "198.51.100.2", 50001, 22),
            sock(2, TCP_ESTABLISHED, "198.51.100.2", 50002, 22),
            sock(3, TCP_CLOSE_WAIT, "198.51.100.2", 50003, 22),
            sock(4, TCP_SYN_RECV, "198.51.100.2", 50004, 22),
            sock(5, TCP_TIME_WAIT, "198.51.100.2", 50005, 22),
            sock(6, TCP_SYN_SENT, "198.51.100.9", 443, 40000),
            sock(7, TCP_LISTEN, "0.0.0.0", 0, 22),
        ];
        let mut states = PeerStates::new(DEFAULT_MAX_SERIES);
        let (series, dropped) = inventory(&mut states, &sockets, Instant::now());
        assert_eq!(dropped, 0);
        assert_eq!(
            table(&series),
            [
                ("198.51.100.2:22".into(), "opening", 1),
                ("198.51.100.2:22".into(), "open", 2),
                ("198.51.100.2:22".into(), "closing", 1),
                ("198.51.100.2:22".into(), "closed", 1),
                ("198.51.100.9:443".into(), "opening", 1),
            ]
        );
    }

    #[test]
    fn a_later_sighting_of_a_cookie_replaces_the_earlier_one() {
        // The cache saw FIN_WAIT1; the dump, a moment later, TIME_WAIT.
        let sightings = [
            sock(1, TCP_FIN_WAIT1, "198.51.100.2", 80, 40000),
            sock(1, TCP_TIME_WAIT, "198.51.100.2", 80, 40000),
        ];
        let mut states = PeerStates::new(DEFAULT_MAX_SERIES);
        let (series, _) = inventory(&mut states, &sightings, Instant::now());
        assert_eq!(table(&series), [("198.51.100.2:80".into(), "closed", 1)]);
    }

    #[test]
    fn vanished_connections_stay_closed_for_the_retention_unless_already_closed() {
        let survivor = sock(5, TCP_ESTABLISHED, "198.51.100.3", 50005, 22);
        let mut states = PeerStates::new(DEFAULT_MAX_SERIES);
        let t0 = Instant::now();
        let first = [
            sock(1, TCP_ESTABLISHED, "198.51.100.2", 50001, 22),
            sock(2, TCP_LAST_ACK, "198.51.100.2", 50002, 22),
            sock(3, TCP_TIME_WAIT, "198.51.100.2", 50003, 22),
            sock(4, TCP_SYN_RECV, "198.51.100.2", 50004, 22),
            survivor,
        ];
        inventory(&mut states, &first, t0);

        // Everything but cookie 5 is gone: 1 (reset) and 2 (passive close)
        // count as closed; 3 was closed already; 4 was a request socket
        // whose handshake may have completed.
        let t1 = t0 + Duration::from_millis(500);
        let (series, _) = inventory(&mut states, &[survivor], t1);
        assert_eq!(
            table(&series),
            [
                ("198.51.100.2:22".into(), "closed", 2),
                ("198.51.100.3:22".into(), "open", 1),
            ]
        );

        // Counted once, kept while the retention lasts, then gone.
        let almost = t1 + CLOSED_RETENTION - Duration::from_millis(1);
        let (series, _) = inventory(&mut states, &[survivor], almost);
        assert_eq!(series[0].connections, 2);
        let (series, _) = inventory(&mut states, &[], t1 + CLOSED_RETENTION);
        // Now cookie 5 vanished too; the closes of t1 expired.
        assert_eq!(table(&series), [("198.51.100.3:22".into(), "closed", 1)]);
    }

    #[test]
    fn the_cap_keeps_the_busiest_peers_then_the_lowest_keys() {
        let mut states = PeerStates::new(3);
        states.begin();
        let mut cookie = 0;
        let mut add = |states: &mut PeerStates, peer: &str, state: u8, n: usize| {
            for _ in 0..n {
                cookie += 1;
                states.add(&sock(cookie, state, peer, 443, 40000), listens_on_22);
            }
        };
        add(&mut states, "198.51.100.9", TCP_ESTABLISHED, 1);
        add(&mut states, "198.51.100.8", TCP_ESTABLISHED, 1);
        add(&mut states, "198.51.100.7", TCP_ESTABLISHED, 1);
        add(&mut states, "2001:db8::1", TCP_ESTABLISHED, 5);
        add(&mut states, "2001:db8::1", TCP_FIN_WAIT1, 1);
        let (series, dropped) = states.finish(Instant::now());
        assert_eq!(dropped, 2);
        assert_eq!(
            table(&series),
            [
                ("[2001:db8::1]:443".into(), "open", 5),
                ("[2001:db8::1]:443".into(), "closing", 1),
                ("198.51.100.7:443".into(), "open", 1),
            ]
        );
    }

    #[test]
    fn the_cell_publishes_series_and_sums_drops() {
        let cell = RemoteCell::default();
        assert!(cell.load().is_empty());
        let s = RemoteSeries {
            remote: remote("198.51.100.2:22"),
            phase: Phase::Open,
            connections: 1,
        };
        cell.publish(vec![s], 4);
        cell.publish(vec![s], 4);
        assert_eq!(*cell.load(), [s]);
        assert_eq!(cell.dropped(), 8);
    }
}
