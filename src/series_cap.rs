//! The cap on the series of a metric family: a host with thousands of
//! listening ports, peers or policy rules must not blow up the scrape or
//! the time-series database. Past the cap the rest are left out, counted,
//! and logged once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Series a family exports at most (`-remote-states.max-series` sets its
/// own).
pub const MAX_SERIES: usize = 256;

/// The first `max` of `series`, in the order given (callers put those to
/// keep first), and how many were left out.
pub fn cap<T>(series: impl IntoIterator<Item = T>, max: usize) -> (Vec<T>, usize) {
    let mut series = series.into_iter();
    let kept = series.by_ref().take(max).collect();
    (kept, series.count())
}

/// Series a cap left out, summed over every capping (the counter a family's
/// `…_dropped_series_total` exports), and whether that was logged yet.
#[derive(Debug, Default)]
pub struct DroppedSeries {
    total: AtomicU64,
    logged: AtomicBool,
}

impl DroppedSeries {
    /// Counts one capping's `dropped` series; true only the first time any
    /// are dropped, when the caller logs it (the counter keeps the tally).
    pub fn add(&self, dropped: usize) -> bool {
        self.total.fetch_add(dropped as u64, Relaxed);
        dropped > 0 && !self.logged.swap(true, Relaxed)
    }

    pub fn total(&self) -> u64 {
        self.total.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_the_first_and_counts_the_rest() {
        assert_eq!(cap(1..=5, 3), (vec![1, 2, 3], 2));
        assert_eq!(cap(1..=2, 3), (vec![1, 2], 0));
    }

    #[test]
    fn drops_are_summed_and_reported_for_logging_once() {
        let dropped = DroppedSeries::default();
        assert!(!dropped.add(0), "nothing dropped, nothing to log");
        assert!(dropped.add(4));
        assert!(!dropped.add(4));
        assert_eq!(dropped.total(), 8);
    }
}
