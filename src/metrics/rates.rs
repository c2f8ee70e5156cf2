//! Host-wide TCP send and receive rates, from the `tcpi_bytes_acked` and
//! `tcpi_bytes_received` counters of every connection: sampled on a walk
//! of the poller's cache once per [`WINDOW`], and once more from the last
//! snapshot of each connection that closed, so a connection's final bytes
//! are not lost.

use std::time::{Duration, Instant};

use ahash::AHashMap;

/// Rates are observed over windows of (at least) this long.
pub const WINDOW: Duration = Duration::from_secs(1);

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
    /// A connection seen on a walk, with its `(bytes acked, bytes
    /// received)`.
    pub fn sample(&mut self, cookie: u64, now: (u64, u64)) {
        let primed = self.window_start.is_some();
        match self.last.insert(cookie, now) {
            Some(before) => self.add(before, now),
            // The first walk only takes the baseline: counting what every
            // connection carried before the agent started would be a spike.
            None if primed => self.add((0, 0), now),
            None => {}
        }
    }

    /// A connection closed; `counters` are its last snapshot's.
    pub fn gone(&mut self, cookie: u64, counters: Option<(u64, u64)>) {
        let before = self.last.remove(&cookie);
        if self.window_start.is_none() {
            return;
        }
        if let Some(now) = counters {
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

    fn sample(t: &mut RateTracker, cookie: u64, acked: u64, received: u64) {
        t.sample(cookie, (acked, received));
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
        t.gone(2, Some((500, 500)));
        sample(&mut t, 1, 1_001_000, 500_000);
        let (sent, received) = t.end_walk(t0 + Duration::from_secs(1)).unwrap();
        assert_eq!(sent, 8.0 * (1000 + 200 + 300) as f64);
        assert_eq!(received, 8.0 * (100 + 400) as f64);
        // The next window starts empty.
        sample(&mut t, 1, 1_001_000, 500_000);
        assert_eq!(t.end_walk(t0 + Duration::from_secs(3)), Some((0.0, 0.0)));
    }
}
