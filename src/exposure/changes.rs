//! Listener change detection: which listening tuples appeared or vanished
//! between two successive inventories, counted in
//! `tcpinfo_listening_port_changes_total`, logged once each, and handed to
//! an observer (the event socket).
//!
//! A tuple is (proto, family, bound address, port): several sockets on one
//! tuple (SO_REUSEPORT groups, a forked server's copies) are one listener,
//! and a server that closes and rebinds its port between two inventories
//! never left it. Each protocol's first inventory is its baseline, so what
//! listens when the agent starts is not reported as opened; a protocol whose
//! inventory could not be taken (a failed UDP dump) is simply not compared
//! that round.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use ahash::AHashMap;

use super::inventory::{family_label, ListeningSocket, Proto};
use crate::address::{classify, Scope};
use crate::clock::unix_millis;
use crate::log::RateLimit;

/// What identifies a listener across inventories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerTuple {
    pub proto: Proto,
    pub family: u8,
    /// The bound address (unspecified for a wildcard bind).
    pub addr: IpAddr,
    pub port: u16,
}

impl ListenerTuple {
    pub fn of(listener: &ListeningSocket) -> Self {
        Self {
            proto: listener.proto,
            family: listener.family,
            addr: listener.addr,
            port: listener.port,
        }
    }

    pub fn scope(&self) -> Scope {
        classify(self.addr)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    Opened,
    Closed,
}

impl Change {
    pub const ALL: [Change; 2] = [Change::Opened, Change::Closed];

    /// The `change` label value.
    pub fn label(self) -> &'static str {
        match self {
            Change::Opened => "opened",
            Change::Closed => "closed",
        }
    }
}

/// One listener that appeared or vanished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerChange {
    pub change: Change,
    pub tuple: ListenerTuple,
    /// The owning program: of the new socket when opened, as last seen
    /// when closed (the socket is gone by then); empty when not visible.
    pub process: Arc<str>,
}

impl fmt::Display for ListenerChange {
    /// `listener opened: tcp ipv4 198.51.100.1:8080 (public) by nginx`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tuple;
        write!(
            f,
            "listener {}: {} {} ",
            self.change.label(),
            t.proto.label(),
            family_label(t.family)
        )?;
        match t.addr.to_canonical() {
            IpAddr::V4(a) => write!(f, "{a}:{}", t.port)?,
            IpAddr::V6(a) => write!(f, "[{a}]:{}", t.port)?,
        }
        write!(f, " ({})", t.scope().label())?;
        if self.process.is_empty() {
            f.write_str(" by an unknown process")
        } else {
            write!(f, " by {}", self.process)
        }
    }
}

/// Remembers each protocol's last inventory and reports the difference.
#[derive(Default)]
pub struct ListenerDiff {
    /// Tuples of the last inventory of each protocol (indexed by
    /// [`proto_index`]) with their program's name; `None` before the
    /// protocol's baseline.
    last: [Option<AHashMap<ListenerTuple, Arc<str>>>; 2],
    scratch: AHashMap<ListenerTuple, Arc<str>>,
}

fn proto_index(proto: Proto) -> usize {
    match proto {
        Proto::Tcp => 0,
        Proto::Udp => 1,
    }
}

impl ListenerDiff {
    /// Compares a fresh, complete inventory of `proto`'s listeners with the
    /// previous one and appends what changed to `out`, sorted by tuple. The
    /// first inventory of each protocol is its baseline and changes nothing.
    /// Sockets of another protocol in `listeners` are ignored.
    pub fn update(
        &mut self,
        proto: Proto,
        listeners: &[ListeningSocket],
        name: impl Fn(u32) -> Arc<str>,
        out: &mut Vec<ListenerChange>,
    ) {
        let mut current = std::mem::take(&mut self.scratch);
        current.clear();
        for l in listeners.iter().filter(|l| l.proto == proto) {
            let process = name(l.inode);
            // Of a tuple's sockets, one whose owner is visible names it.
            current
                .entry(ListenerTuple::of(l))
                .and_modify(|p| {
                    if p.is_empty() {
                        *p = process.clone();
                    }
                })
                .or_insert(process);
        }
        let slot = &mut self.last[proto_index(proto)];
        if let Some(last) = slot.as_ref() {
            let start = out.len();
            for (tuple, process) in &current {
                if !last.contains_key(tuple) {
                    out.push(ListenerChange {
                        change: Change::Opened,
                        tuple: *tuple,
                        process: process.clone(),
                    });
                }
            }
            for (tuple, process) in last {
                if !current.contains_key(tuple) {
                    out.push(ListenerChange {
                        change: Change::Closed,
                        tuple: *tuple,
                        process: process.clone(),
                    });
                }
            }
            out[start..].sort_unstable_by_key(|c| (c.tuple, c.change));
        }
        self.scratch = slot.replace(current).unwrap_or_default();
    }
}

const FAMILIES: [u8; 2] = [inetdiag::AF_INET, inetdiag::AF_INET6];
const PROTOS: [Proto; 2] = [Proto::Tcp, Proto::Udp];

/// `tcpinfo_listening_port_changes_total{proto,family,scope,change}`. All 24
/// label combinations exist from the start at 0: the set is small and
/// fixed, and a series that is born at 1 loses its first change to
/// `increase()` and `rate()`.
#[derive(Debug, Default)]
pub struct ChangeCounters {
    counts: [[[[AtomicU64; 2]; 3]; 2]; 2],
}

impl ChangeCounters {
    pub fn add(&self, change: &ListenerChange) {
        let t = &change.tuple;
        // The dumps ask for AF_INET and AF_INET6 only.
        let family = usize::from(t.family == inetdiag::AF_INET6);
        self.counts[proto_index(t.proto)][family][t.scope().index()][change.change as usize]
            .fetch_add(1, Relaxed);
    }

    /// `([proto, family, scope, change], count)` for every combination.
    pub fn iter(&self) -> impl Iterator<Item = ([&'static str; 4], u64)> + '_ {
        PROTOS.into_iter().flat_map(move |proto| {
            FAMILIES.into_iter().enumerate().flat_map(move |(f, af)| {
                Scope::ALL.into_iter().flat_map(move |scope| {
                    Change::ALL.into_iter().map(move |change| {
                        let n = self.counts[proto_index(proto)][f][scope.index()][change as usize]
                            .load(Relaxed);
                        (
                            [
                                proto.label(),
                                family_label(af),
                                scope.label(),
                                change.label(),
                            ],
                            n,
                        )
                    })
                })
            })
        })
    }
}

/// Changes logged one per line per inventory; the rest of a burst is
/// summed up in one line.
const LOGGED_PER_INVENTORY: usize = 10;
/// And across inventories, at most this many lines a minute (a port that
/// flaps all day would otherwise log all day).
static CHANGE_LOG: RateLimit = RateLimit::with_budget(60, 60_000);

/// Logs a round of changes, bounded: the first few one per line, then a
/// summary of the rest.
pub fn log_changes(changes: &[ListenerChange]) {
    for change in changes.iter().take(LOGGED_PER_INVENTORY) {
        log_limited!(CHANGE_LOG, "{change}");
    }
    let rest = &changes[changes.len().min(LOGGED_PER_INVENTORY)..];
    if !rest.is_empty() {
        let opened = rest.iter().filter(|c| c.change == Change::Opened).count();
        log_limited!(
            CHANGE_LOG,
            "listener changes: {} more not logged ({opened} opened, {} closed); see tcpinfo_listening_port_changes_total",
            rest.len(),
            rest.len() - opened
        );
    }
}

/// Where listener changes go besides the counter and the log: the event
/// socket, in the agent.
pub trait ChangeObserver: Send {
    /// One inventory's changes (never empty), detected at `timestamp_ms`.
    fn listeners_changed(&mut self, changes: &[ListenerChange], timestamp_ms: i64);
}

/// No observer.
impl ChangeObserver for () {
    fn listeners_changed(&mut self, _: &[ListenerChange], _: i64) {}
}

/// The exposure worker's change detection: compares each fresh inventory,
/// then counts, logs and announces what changed.
pub struct ListenerChanges {
    diff: ListenerDiff,
    pending: Vec<ListenerChange>,
    observer: Box<dyn ChangeObserver>,
}

impl ListenerChanges {
    pub fn new(observer: Box<dyn ChangeObserver>) -> Self {
        Self {
            diff: ListenerDiff::default(),
            pending: Vec::new(),
            observer,
        }
    }

    /// A fresh, complete inventory of `proto`'s listeners (never a stale or
    /// partial one: that would read as listeners closing).
    pub fn compare(
        &mut self,
        proto: Proto,
        listeners: &[ListeningSocket],
        name: impl Fn(u32) -> Arc<str>,
    ) {
        self.diff.update(proto, listeners, name, &mut self.pending);
    }

    /// Counts, logs and announces what the comparisons since the last
    /// report found.
    pub fn report(&mut self, counters: &ChangeCounters) {
        if self.pending.is_empty() {
            return;
        }
        for change in &self.pending {
            counters.add(change);
        }
        log_changes(&self.pending);
        self.observer
            .listeners_changed(&self.pending, unix_millis());
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn sock(proto: Proto, addr: &str, port: u16, inode: u32) -> ListeningSocket {
        ListeningSocket::bound(proto, addr, port, inode)
    }

    /// Inode `n` is owned by `p<n>`; inode 0 by nobody visible.
    fn name(inode: u32) -> Arc<str> {
        if inode == 0 {
            Arc::from("")
        } else {
            Arc::from(format!("p{inode}"))
        }
    }

    fn update(diff: &mut ListenerDiff, proto: Proto, ls: &[ListeningSocket]) -> Vec<String> {
        let mut out = Vec::new();
        diff.update(proto, ls, name, &mut out);
        out.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn the_first_inventory_is_the_baseline() {
        let mut diff = ListenerDiff::default();
        let ls = [sock(Proto::Tcp, "0.0.0.0", 22, 1)];
        assert!(update(&mut diff, Proto::Tcp, &ls).is_empty());
        assert!(update(&mut diff, Proto::Tcp, &ls).is_empty());
    }

    #[test]
    fn a_tuple_that_appears_is_opened_and_one_that_vanishes_is_closed() {
        let mut diff = ListenerDiff::default();
        let a = sock(Proto::Tcp, "198.51.100.1", 8080, 7);
        let b = sock(Proto::Tcp, "::1", 9000, 8);
        update(&mut diff, Proto::Tcp, &[a]);
        assert_eq!(
            update(&mut diff, Proto::Tcp, &[a, b]),
            ["listener opened: tcp ipv6 [::1]:9000 (loopback) by p8"]
        );
        // The closed listener is named by the program seen while it was open.
        assert_eq!(
            update(&mut diff, Proto::Tcp, &[b]),
            ["listener closed: tcp ipv4 198.51.100.1:8080 (public) by p7"]
        );
    }

    #[test]
    fn a_rebind_between_inventories_is_no_change() {
        let mut diff = ListenerDiff::default();
        update(&mut diff, Proto::Tcp, &[sock(Proto::Tcp, "0.0.0.0", 80, 1)]);
        // Same tuple, new socket (new inode, even a new program).
        assert!(update(&mut diff, Proto::Tcp, &[sock(Proto::Tcp, "0.0.0.0", 80, 2)]).is_empty());
    }

    #[test]
    fn several_sockets_on_one_tuple_are_one_listener() {
        let mut diff = ListenerDiff::default();
        update(&mut diff, Proto::Tcp, &[]);
        // An SO_REUSEPORT group of three, the first not visible.
        let group = [
            sock(Proto::Tcp, "0.0.0.0", 443, 0),
            sock(Proto::Tcp, "0.0.0.0", 443, 5),
            sock(Proto::Tcp, "0.0.0.0", 443, 6),
        ];
        assert_eq!(
            update(&mut diff, Proto::Tcp, &group),
            ["listener opened: tcp ipv4 0.0.0.0:443 (public) by p5"]
        );
        // One of the group leaves: still listening.
        assert!(update(&mut diff, Proto::Tcp, &group[1..]).is_empty());
        assert_eq!(
            update(&mut diff, Proto::Tcp, &[]),
            ["listener closed: tcp ipv4 0.0.0.0:443 (public) by p5"]
        );
    }

    #[test]
    fn family_address_and_protocol_are_part_of_the_tuple() {
        let mut diff = ListenerDiff::default();
        update(&mut diff, Proto::Tcp, &[sock(Proto::Tcp, "0.0.0.0", 53, 1)]);
        update(&mut diff, Proto::Udp, &[sock(Proto::Udp, "0.0.0.0", 53, 2)]);
        let tcp = [
            sock(Proto::Tcp, "0.0.0.0", 53, 1),
            sock(Proto::Tcp, "::", 53, 3),
            sock(Proto::Tcp, "10.0.0.1", 53, 4),
        ];
        assert_eq!(
            update(&mut diff, Proto::Tcp, &tcp),
            [
                "listener opened: tcp ipv4 10.0.0.1:53 (private) by p4",
                "listener opened: tcp ipv6 [::]:53 (public) by p3",
            ]
        );
        // The UDP side is compared only with UDP.
        assert!(update(&mut diff, Proto::Udp, &[sock(Proto::Udp, "0.0.0.0", 53, 2)]).is_empty());
        assert_eq!(
            update(&mut diff, Proto::Udp, &[]),
            ["listener closed: udp ipv4 0.0.0.0:53 (public) by p2"]
        );
    }

    #[test]
    fn each_protocol_has_its_own_baseline() {
        let mut diff = ListenerDiff::default();
        update(&mut diff, Proto::Tcp, &[]);
        // UDP's first inventory arrives later (its first dump failed, say):
        // what it finds was there all along.
        assert!(update(
            &mut diff,
            Proto::Udp,
            &[sock(Proto::Udp, "0.0.0.0", 123, 1)]
        )
        .is_empty());
    }

    #[test]
    fn unknown_owner_and_mapped_addresses_print_plainly() {
        let change = ListenerChange {
            change: Change::Opened,
            tuple: ListenerTuple {
                proto: Proto::Udp,
                family: inetdiag::AF_INET6,
                addr: Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped().into(),
                port: 5353,
            },
            process: Arc::from(""),
        };
        assert_eq!(
            change.to_string(),
            "listener opened: udp ipv6 127.0.0.1:5353 (loopback) by an unknown process"
        );
    }

    #[test]
    fn counters_cover_every_label_combination_from_zero() {
        let counters = ChangeCounters::default();
        assert_eq!(counters.iter().count(), 24);
        assert!(counters.iter().all(|(_, n)| n == 0));
        let mut diff = ListenerDiff::default();
        let mut out = Vec::new();
        diff.update(Proto::Udp, &[], name, &mut out);
        let ls = [sock(Proto::Udp, "fd00::1", 9, 1)];
        diff.update(Proto::Udp, &ls, name, &mut out);
        diff.update(Proto::Udp, &[], name, &mut out);
        diff.update(Proto::Udp, &ls, name, &mut out);
        for c in &out {
            counters.add(c);
        }
        let get = |labels: [&str; 4]| {
            counters
                .iter()
                .find(|(l, _)| *l == labels)
                .map(|(_, n)| n)
                .unwrap()
        };
        assert_eq!(get(["udp", "ipv6", "private", "opened"]), 2);
        assert_eq!(get(["udp", "ipv6", "private", "closed"]), 1);
        assert_eq!(counters.iter().map(|(_, n)| n).sum::<u64>(), 3);
    }
}
