//! The immutable exposure summary that /metrics renders, and the cell it is
//! published through.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use super::changes::ChangeCounters;
use super::inventory::{ConnectionCounts, ListeningSocket, Proto, TcpInventory};
use super::scope::Scope;

/// At most this many series per exposure gauge: a host with thousands of
/// listening ports must not blow up the scrape or the time-series database.
pub const MAX_SERIES: usize = 256;

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
        let listening_dropped = tuples.len().saturating_sub(MAX_SERIES);
        let by_port_dropped = tcp.inbound_by_port.len().saturating_sub(MAX_SERIES);
        Self {
            listening: tuples.into_iter().take(MAX_SERIES).collect(),
            listening_dropped,
            connections: tcp.connections.clone(),
            inbound_by_port: tcp
                .inbound_by_port
                .iter()
                .copied()
                .take(MAX_SERIES)
                .collect(),
            by_port_dropped,
        }
    }
}

/// Where the exposure worker publishes summaries and /metrics reads them:
/// readers take an `Arc` under a lock held for a pointer copy, never for
/// the building or the rendering.
#[derive(Debug, Default)]
pub struct SummaryCell {
    current: Mutex<Arc<ExposureSummary>>,
    published: AtomicBool,
    /// Series left out by the cap, summed over every published summary.
    dropped_listening: AtomicU64,
    dropped_by_port: AtomicU64,
    /// Failed UDP sock_diag dumps.
    pub udp_dump_errors: AtomicU64,
    /// Scans of /proc for the owners of listening sockets.
    pub proc_scans: AtomicU64,
    /// Listening tuples opened and closed.
    pub listener_changes: ChangeCounters,
}

impl SummaryCell {
    pub fn load(&self) -> Arc<ExposureSummary> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn store(&self, summary: ExposureSummary) {
        self.dropped_listening
            .fetch_add(summary.listening_dropped as u64, Relaxed);
        self.dropped_by_port
            .fetch_add(summary.by_port_dropped as u64, Relaxed);
        let summary = Arc::new(summary);
        let old = std::mem::replace(
            &mut *self.current.lock().unwrap_or_else(|e| e.into_inner()),
            summary,
        );
        self.published.store(true, Relaxed);
        // The old summary is freed here, outside the lock.
        drop(old);
    }

    /// Whether a summary was published yet.
    pub fn is_published(&self) -> bool {
        self.published.load(Relaxed)
    }

    /// `(listening_ports, tcp_connections_by_port)` series dropped so far.
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_listening.load(Relaxed),
            self.dropped_by_port.load(Relaxed),
        )
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
        assert!(!cell.is_published());
        cell.store(s.clone());
        cell.store(s);
        assert!(cell.is_published());
        assert_eq!(cell.dropped(), (90, 88));
        assert_eq!(cell.load().listening.len(), MAX_SERIES);
    }
}
