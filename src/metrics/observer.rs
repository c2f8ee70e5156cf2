//! The metrics' hook into the polling loop. Per dump and per cycle it only
//! observes histograms and counters (atomic adds); once per rate window it
//! walks the cache to sample byte counters for the rate histograms.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inetdiag::InetDiagMsg;
use prometheus::{Histogram, IntCounter};

use super::health::SAMPLE_EVERY;
use super::rates::{RateTracker, WINDOW};
use super::Metrics;
use crate::cache::{Cache, Entry};
use crate::exclusion::AnonymizeMask;
use crate::exposure::inventory::family_label;
use crate::lock::lock;
use crate::poller::{DumpReport, PollObserver};

pub struct MetricsObserver {
    metrics: Arc<Metrics>,
    /// `tcpinfo_connection_count_histogram` for `af="ipv4"`, `"ipv6"`.
    ipv4_count: Histogram,
    ipv6_count: Histogram,
    /// `af="all"`: the syscall time of a dump of both families at once.
    all_families_time: Histogram,
    opened: IntCounter,
    closed: IntCounter,
    rates: RateTracker,
    next_rate_walk: Instant,
    /// A dump of the current cycle failed.
    cycle_failed: bool,
    next_health_sample: Instant,
}

impl MetricsObserver {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        let count = |af: u8| {
            metrics
                .connection_count
                .with_label_values(&[family_label(af)])
        };
        Self {
            ipv4_count: count(inetdiag::AF_INET),
            ipv6_count: count(inetdiag::AF_INET6),
            all_families_time: metrics
                .syscall_time
                .with_label_values(&[family_label(inetdiag::AF_UNSPEC)]),
            opened: metrics.flow_events.with_label_values(&["open"]),
            closed: metrics.flow_events.with_label_values(&["close"]),
            metrics,
            rates: RateTracker::default(),
            next_rate_walk: Instant::now(),
            cycle_failed: false,
            next_health_sample: Instant::now(),
        }
    }

    /// Samples every connection's byte counters; observes the rates once a
    /// window is complete.
    fn sample_rates(&mut self, cache: &Cache, now: Instant) {
        for (cookie, entry) in cache.iter() {
            if let Some(counters) = entry.byte_counters() {
                if entry.msg().state() != inetdiag::TCP_LISTEN {
                    self.rates.sample(cookie, counters);
                }
            }
        }
        if let Some((sent, received)) = self.rates.end_walk(now) {
            self.metrics.send_rate.observe(sent);
            self.metrics.receive_rate.observe(received);
        }
    }
}

impl PollObserver for MetricsObserver {
    fn connection_opened(&mut self, _: u64, _: &InetDiagMsg, _: AnonymizeMask, _: i64) {
        self.opened.inc();
    }

    fn connection_closed(&mut self, _cookie: u64, _timestamp_ms: i64) {
        self.closed.inc();
    }

    fn socket_gone(&mut self, cookie: u64, entry: &Entry) {
        self.rates.gone(cookie, entry.byte_counters());
    }

    fn dump_finished(&mut self, dump: &DumpReport) {
        let seconds = dump.elapsed.as_secs_f64();
        if dump.family == inetdiag::AF_UNSPEC {
            self.all_families_time.observe(seconds);
        } else {
            // Per-family dumps happen only on a kernel that refuses the
            // combined one: resolved here, so that otherwise no idle
            // `ipv4`/`ipv6` series are exported.
            self.metrics
                .syscall_time
                .with_label_values(&[family_label(dump.family)])
                .observe(seconds);
        }
        // Per family whichever way the dump was asked for: sockets per
        // family per poll.
        if dump.family != inetdiag::AF_INET6 {
            self.ipv4_count.observe(dump.ipv4 as f64);
        }
        if dump.family != inetdiag::AF_INET {
            self.ipv6_count.observe(dump.ipv6 as f64);
        }
    }

    fn error(&mut self, kind: &'static str) {
        self.cycle_failed = true;
        *lock(&self.metrics.poll_state.netlink_errors)
            .entry(kind)
            .or_insert(0) += 1;
    }

    fn cycle_finished(&mut self, interval: Option<Duration>, cache: &Cache) {
        if let Some(interval) = interval {
            self.metrics
                .polling_interval
                .observe(interval.as_secs_f64());
        }
        self.metrics.cache_count.observe(cache.len() as f64);
        self.metrics
            .poll_state
            .cached_sockets
            .store(cache.len() as u64, Relaxed);
        let now = Instant::now();
        if !std::mem::take(&mut self.cycle_failed) {
            self.metrics.ready_state().polled(now);
        }
        if now >= self.next_health_sample {
            self.metrics.ready_state().sample(now);
            self.next_health_sample = now + SAMPLE_EVERY;
        }
        if now >= self.next_rate_walk {
            self.sample_rates(cache, now);
            self.metrics
                .poll_state
                .rate_walk_nanos
                .fetch_add(now.elapsed().as_nanos() as u64, Relaxed);
            self.next_rate_walk = now + WINDOW;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Arc<Metrics> {
        Metrics::new(Arc::default(), Arc::default())
    }

    #[test]
    fn ready_after_the_first_complete_cycle() {
        let metrics = metrics();
        let mut observer = MetricsObserver::new(Arc::clone(&metrics));
        let cache = Cache::new();

        observer.dump_finished(&DumpReport {
            family: inetdiag::AF_INET6,
            elapsed: Duration::from_millis(2),
            ipv4: 0,
            ipv6: 3,
        });
        observer.error("kernel");
        observer.cycle_finished(None, &cache);
        assert!(
            !metrics.is_ready(),
            "a cycle with a failed dump is not complete"
        );

        observer.cycle_finished(Some(Duration::from_millis(10)), &cache);
        assert!(metrics.is_ready());

        let text = String::from_utf8(metrics.render()).unwrap();
        // A kernel error reply under the Go tool's name for it.
        assert!(text.contains("tcpinfo_error_total{type=\"NLMSG_ERROR\"} 1"));
        assert!(text.contains("tcpinfo_syscall_time_histogram_count{af=\"ipv6\"} 1"));
        assert!(text.contains("tcpinfo_connection_count_histogram_sum{af=\"ipv6\"} 3"));
        assert!(text.contains("tcpinfo_polling_interval_histogram_count 1"));
        assert!(text.contains("tcpinfo_cache_count_histogram_count 2"));
    }

    #[test]
    fn a_dump_of_both_families_counts_sockets_per_family() {
        let metrics = metrics();
        let mut observer = MetricsObserver::new(Arc::clone(&metrics));
        observer.dump_finished(&DumpReport {
            family: inetdiag::AF_UNSPEC,
            elapsed: Duration::from_millis(2),
            ipv4: 5,
            ipv6: 7,
        });
        let text = String::from_utf8(metrics.render()).unwrap();
        assert!(text.contains("tcpinfo_syscall_time_histogram_count{af=\"all\"} 1"));
        assert!(!text.contains("tcpinfo_syscall_time_histogram_count{af=\"ipv4\"}"));
        assert!(!text.contains("tcpinfo_syscall_time_histogram_count{af=\"ipv6\"}"));
        assert!(text.contains("tcpinfo_connection_count_histogram_sum{af=\"ipv4\"} 5"));
        assert!(text.contains("tcpinfo_connection_count_histogram_sum{af=\"ipv6\"} 7"));
    }
}
