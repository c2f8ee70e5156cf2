//! The immutable exposure summary that /metrics renders, and the cell it is
//! published through.

use std::collections::BTreeSet;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use super::changes::ChangeCounters;
use super::inventory::{ConnectionCounts, ListeningSocket, Proto, TcpInventory};
use crate::address::Scope;
use crate::series_cap::{cap, DroppedSeries, MAX_SERIES};

/// One `listening_ports` series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListeningSeries {
    pub port: u16,
    pub proto: Proto,
    pub family: u8,
    pub scope: Scope,
    pub process: Arc<str>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExposureSummary {
    /// Distinct listening tuples, lowest ports first, at most [`MAX_SERIES`].
    pub listening: Vec<ListeningSeries>,
    /// Tuples left out of `listening` by the cap.
    pub listening_dropped: usize,
    pub connections: ConnectionCounts,
    /// Inbound connections per listening port, at most [`MAX_SERIES`].
    pub inbound_by_port: Vec<(u16, u64)>,
    pub by_port_dropped: usize,
}

impl ExposureSummary {
    /// Builds the summary from the TCP inventory, the UDP listeners and the
    /// process name of each socket inode.
    pub fn build(
        tcp: &TcpInventory,
        udp: &[ListeningSocket],
        name: impl Fn(u32) -> Arc<str>,
    ) -> Self {
        let tuples: BTreeSet<ListeningSeries> = tcp
            .listeners
            .iter()
            .chain(udp)
            .map(|l| ListeningSeries {
                port: l.port,
                proto: l.proto,
                family: l.family,
                scope: l.scope,
                process: name(l.inode),
            })
            .collect();
        let (listening, listening_dropped) = cap(tuples, MAX_SERIES);
        let (inbound_by_port, by_port_dropped) =
            cap(tcp.inbound_by_port.iter().copied(), MAX_SERIES);
        Self {
            listening,
            listening_dropped,
            connections: tcp.connections.clone(),
            inbound_by_port,
            by_port_dropped,
        }
    }
}

/// Where the exposure side publishes what /metrics renders: the latest
/// summary, which a reader takes without ever waiting for the worker, and
/// counters.
#[derive(Debug, Default)]
pub struct SummaryCell {
    summary: ArcSwapOption<ExposureSummary>,
    /// Series left out by the caps.
    dropped_listening: DroppedSeries,
    dropped_by_port: DroppedSeries,
    /// Failed UDP sock_diag dumps.
    pub udp_dump_errors: AtomicU64,
    /// Scans of /proc for the owners of listening sockets.
    pub proc_scans: AtomicU64,
    /// Listening tuples opened and closed.
    pub listener_changes: ChangeCounters,
    /// Time the polling thread spent walking the cache for inventories, in
    /// nanoseconds.
    pub walk_nanos: AtomicU64,
}

impl SummaryCell {
    /// The last summary; `None` before the first.
    pub fn load(&self) -> Option<Arc<ExposureSummary>> {
        self.summary.load_full()
    }

    pub fn publish(&self, summary: ExposureSummary) {
        if self.dropped_listening.add(summary.listening_dropped) {
            log!(
                "exposure: {} listening tuples, only {MAX_SERIES} exported; the rest are counted in tcpinfo_exposure_dropped_series_total (logged once)",
                summary.listening.len() + summary.listening_dropped
            );
        }
        self.dropped_by_port.add(summary.by_port_dropped);
        self.summary.store(Some(Arc::new(summary)));
    }

    /// `(listening_ports, tcp_connections_by_port)` series dropped so far.
    pub fn dropped(&self) -> (u64, u64) {
        (self.dropped_listening.total(), self.dropped_by_port.total())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(proto: Proto, port: u16, inode: u32) -> ListeningSocket {
        // The wildcard address is public.
        ListeningSocket::bound(proto, "0.0.0.0", port, inode)
    }

    #[test]
    fn duplicate_tuples_are_one_series_and_the_cap_keeps_the_lowest_ports() {
        let mut tcp = TcpInventory::default();
        for port in (1..=300u16).rev() {
            tcp.listeners.push(listener(Proto::Tcp, port, port as u32));
            tcp.inbound_by_port.push((port, 1));
        }
        tcp.inbound_by_port.sort_unstable();
        // SO_REUSEPORT twin of port 1.
        tcp.listeners.push(listener(Proto::Tcp, 1, 9999));
        let udp = [listener(Proto::Udp, 1, 7)];
        let s = ExposureSummary::build(&tcp, &udp, |_| Arc::from("p"));
        assert_eq!(s.listening.len(), MAX_SERIES);
        assert_eq!(s.listening_dropped, 301 - MAX_SERIES);
        assert_eq!(s.listening[0].port, 1);
        assert_eq!(s.listening[0].proto, Proto::Tcp);
        assert_eq!(s.listening[1].proto, Proto::Udp);
        assert_eq!(s.inbound_by_port.len(), MAX_SERIES);
        assert_eq!(s.by_port_dropped, 300 - MAX_SERIES);

        let cell = SummaryCell::default();
        assert!(cell.load().is_none());
        cell.publish(s.clone());
        cell.publish(s);
        assert_eq!(cell.dropped(), (90, 88));
        assert_eq!(cell.load().unwrap().listening.len(), MAX_SERIES);
    }
}
