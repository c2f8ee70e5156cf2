//! Host-wide TCP send and receive rates, from the `tcpi_bytes_acked` and
//! `tcpi_bytes_received` counters of every connection: sampled on a walk
//! of the poller's cache once per [`WINDOW`], and once more from the last
//! snapshot of each connection that closed, so a connection's final bytes
//! are not lost.

use std::time::{Duration, Instant};

use ahash::AHashMap;
use inetdiag::tcp_info::{u64_at, BYTES_ACKED, BYTES_RECEIVED};
use inetdiag::{DiagRecord, INET_DIAG_INFO};

/// Rates are observed over windows of (at least) this long.
pub const WINDOW: Duration = Duration::from_secs(1);

/// `(bytes acked, bytes received)` of a snapshot, when its tcp_info is long
/// enough to carry them (Linux 4.1+ for acked, 4.1+ for received).
fn byte_counters(record: &DiagRecord) -> Option<(u64, u64)> {
    let info = record.attribute(INET_DIAG_INFO)?;
    Some((u64_at(info, BYTES_ACKED)?, u64_at(info, BYTES_RECEIVED)?))
}

#[derive(Debug, Default)]
pub struct RateTracker {
    /// Counters of each connection at its last sample.
    last: AHashMap<u64, (u64, u64)>,
    /// Bytes sent and received in the current window.
    sent: u64,
    received: u64,
    window_start: Option<Instant>,
}

impl RateTracker {
    /// A connection seen on a walk.
    pub fn sample(&mut self, cookie: u64, record: &DiagRecord) {
        let Some(now) = byte_counters(record) else {
            return;
        };
        let primed = self.window_start.is_some();
        match self.last.insert(cookie, now) {
            Some(before) => self.add(before, now),
            // The first walk only takes the baseline: counting what every
            // connection carried before the agent started would be a spike.
            None if primed => self.add((0, 0), now),
            None => {}
        }
    }

    /// A connection closed; `record` is its last snapshot.
    pub fn gone(&mut self, cookie: u64, record: &DiagRecord) {
        let before = self.last.remove(&cookie);
        if self.window_start.is_none() {
            return;
        }
        if let Some(now) = byte_counters(record) {
            self.add(before.unwrap_or((0, 0)), now);
        }
    }

    fn add(&mut self, before: (u64, u64), now: (u64, u64)) {
        self.sent += now.0.saturating_sub(before.0);
        self.received += now.1.saturating_sub(before.1);
    }

    /// Ends a walk. Once a window is complete, returns the `(sent,
    /// received)` rates over it in bits per second and starts the next.
    pub fn end_walk(&mut self, now: Instant) -> Option<(f64, f64)> {
        let Some(start) = self.window_start else {
            self.window_start = Some(now);
            return None;
        };
        let elapsed = now.duration_since(start);
        if elapsed < WINDOW {
            return None;
        }
        let seconds = elapsed.as_secs_f64();
        let rates = (
            8.0 * self.sent as f64 / seconds,
            8.0 * self.received as f64 / seconds,
        );
        self.sent = 0;
        self.received = 0;
        self.window_start = Some(now);
        Some(rates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_bytes(cookie: u64, acked: u64, received: u64) -> Vec<u8> {
        let mut v = vec![0u8; 72];
        v[0] = inetdiag::AF_INET;
        v[1] = inetdiag::TCP_ESTABLISHED;
        v[44..52].copy_from_slice(&cookie.to_le_bytes());
        let mut info = vec![0u8; 232];
        info[BYTES_ACKED..BYTES_ACKED + 8].copy_from_slice(&acked.to_ne_bytes());
        info[BYTES_RECEIVED..BYTES_RECEIVED + 8].copy_from_slice(&received.to_ne_bytes());
        v.extend_from_slice(&((info.len() + 4) as u16).to_ne_bytes());
        v.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
        v.extend_from_slice(&info);
        v
    }

    fn sample(t: &mut RateTracker, cookie: u64, acked: u64, received: u64) {
        t.sample(
            cookie,
            &DiagRecord::parse(&record_bytes(cookie, acked, received)).unwrap(),
        );
    }

    #[test]
    fn rates_count_deltas_new_and_closed_connections_but_not_history() {
        let mut t = RateTracker::default();
        let t0 = Instant::now();
        // Baseline: a connection that moved 1 MB before the agent started.
        sample(&mut t, 1, 1_000_000, 500_000);
        assert_eq!(t.end_walk(t0), None);
        // Half a window: 1000 bytes more on 1, and a new connection 2.
        sample(&mut t, 1, 1_001_000, 500_000);
        sample(&mut t, 2, 200, 100);
        assert_eq!(t.end_walk(t0 + Duration::from_millis(500)), None);
        // Connection 2 closes having sent 300 more and received 400 more.
        t.gone(2, &DiagRecord::parse(&record_bytes(2, 500, 500)).unwrap());
        sample(&mut t, 1, 1_001_000, 500_000);
        let (sent, received) = t.end_walk(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(sent, 8.0 * (1000 + 200 + 300) as f64);
        assert_eq!(received, 8.0 * (100 + 400) as f64);
        // The next window starts empty.
        sample(&mut t, 1, 1_001_000, 500_000);
        assert_eq!(t.end_walk(t0 + Duration::from_secs(3)), Some((0.0, 0.0)));
    }
}
