//! Prometheus metrics: M-Lab's operational metrics under their names, the
//! agent's own counters, and the exposure gauges; served over HTTP.
//!
//! Metrics only read: histograms are observed on the polling path (once
//! per dump or cycle, never per record), counters are read from [`Stats`]
//! atomics, and the exposure and policy gauges render what the exposure
//! worker and the listener policy last published, in the cells handed over
//! at wiring time. Nothing here does I/O or netlink work at scrape time.
//!
//! - [`observer`]: the [`crate::poller::PollObserver`] that feeds them.
//! - [`collectors`]: scrape-time collectors over atomics and the summary.
//! - [`rates`]: per-second send/receive rates from tcp_info byte counters.
//! - [`policy`]: the listener policy's gauges (with `-listen-policy`).
//! - [`server`]: `/metrics`, `/-/healthy`, `/-/ready` and the routes the
//!   wiring adds, on a small runtime.
//! - [`probe`]: `tcp-info ready`, the client side of `/-/ready`.

pub mod build;
mod collectors;
mod family;
#[cfg(test)]
mod go_parity;
pub mod gofloat;
pub mod health;
mod listener_changes;
pub mod observer;
pub mod policy;
pub mod probe;
mod process;
pub mod rates;
mod remote;
pub mod server;
pub mod web_config;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::eventsocket::Publisher;
use crate::exposure::remote::RemoteCell;
use crate::exposure::SummaryCell;
use crate::policy::ActivePolicy;
use crate::saver::QueueDepths;
use crate::stats::Stats;

pub use observer::MetricsObserver;

/// `tcpinfo_syscall_time_histogram` buckets (seconds), as M-Lab's tool has them.
const SYSCALL_TIME_BUCKETS: &[f64] = &[
    0.001, 0.00125, 0.0016, 0.002, 0.0025, 0.0032, 0.004, 0.005, 0.0063, 0.0079, 0.01, 0.0125,
    0.016, 0.02, 0.025, 0.032, 0.04, 0.05, 0.063, 0.079, 0.1, 0.125, 0.16, 0.2,
];

/// Connection and cache count buckets: roughly ten per decade up to 79,000.
const COUNT_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.5, 16.0, 20.0, 25.0, 32.0, 40.0, 50.0, 63.0, 79.0,
    100.0, 125.0, 160.0, 200.0, 250.0, 320.0, 400.0, 500.0, 630.0, 790.0, 1000.0, 1250.0, 1600.0,
    2000.0, 2500.0, 3200.0, 4000.0, 5000.0, 6300.0, 7900.0, 10000.0, 12500.0, 16000.0, 20000.0,
    25000.0, 32000.0, 40000.0, 50000.0, 63000.0, 79000.0, 10000000.0,
];

/// Send/receive rate buckets (bits per second): coarse below 1 kb/s, five
/// per decade up to 1 Gb/s, ten per decade up to 10 Gb/s.
const RATE_BUCKETS: &[f64] = &[
    0.0, 1.0, 10.0, 100.0, 1e3, 1.58e3, 2.51e3, 3.98e3, 6.31e3, 1e4, 1.58e4, 2.51e4, 3.98e4,
    6.31e4, 1e5, 1.58e5, 2.51e5, 3.98e5, 6.31e5, 1e6, 1.58e6, 2.51e6, 3.98e6, 6.31e6, 1e7, 1.58e7,
    2.51e7, 3.98e7, 6.31e7, 1e8, 1.58e8, 2.51e8, 3.98e8, 6.31e8, 1e9, 1.26e9, 1.58e9, 2e9, 2.51e9,
    3.16e9, 3.98e9, 5.01e9, 6.31e9, 7.94e9, 1e10,
];

/// State the polling path updates and scrape-time collectors read.
#[derive(Debug, Default)]
pub(crate) struct PollState {
    /// Failed netlink dumps by error kind (rare: a lock is fine).
    pub netlink_errors: Mutex<BTreeMap<&'static str, u64>>,
    /// Sockets in the poller's cache after the last cycle.
    pub cached_sockets: AtomicU64,
    /// Time spent walking the cache for the rate histograms, in
    /// nanoseconds.
    pub rate_walk_nanos: AtomicU64,
}

/// The registry and every metric the agent exports.
pub struct Metrics {
    registry: Registry,
    pub(crate) syscall_time: HistogramVec,
    pub(crate) polling_interval: Histogram,
    pub(crate) connection_count: HistogramVec,
    pub(crate) cache_count: Histogram,
    pub(crate) send_rate: Histogram,
    pub(crate) receive_rate: Histogram,
    pub(crate) flow_events: IntCounterVec,
    pub(crate) poll_state: Arc<PollState>,
    readiness: Arc<health::Readiness>,
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(buckets.to_vec())
}

impl Metrics {
    /// Creates and registers every metric; the exposure gauges render what
    /// the exposure worker publishes in `exposure`. Panics only on a
    /// programming error (an invalid or duplicate metric definition).
    pub fn new(stats: Arc<Stats>, exposure: Arc<SummaryCell>) -> Arc<Self> {
        let registry = Registry::new();
        let syscall_time = HistogramVec::new(
            histogram(
                "tcpinfo_syscall_time_histogram",
                "netlink dump latency distribution per address family (seconds)",
                SYSCALL_TIME_BUCKETS,
            ),
            &["af"],
        )
        .expect("valid histogram");
        let polling_interval = Histogram::with_opts(
            HistogramOpts::new(
                "tcpinfo_polling_interval_histogram",
                "time between the starts of two polls (seconds)",
            )
            // Go's LinearBuckets(0, .001, 30), bound for bound.
            .buckets(gofloat::go_linear_buckets(0.0, 0.001, 30)),
        )
        .expect("valid histogram");
        let connection_count = HistogramVec::new(
            histogram(
                "tcpinfo_connection_count_histogram",
                "sockets returned by each netlink dump, excluded ones included",
                COUNT_BUCKETS,
            ),
            &["af"],
        )
        .expect("valid histogram");
        let cache_count = Histogram::with_opts(histogram(
            "tcpinfo_cache_count_histogram",
            "sockets in the poller's cache at the end of each cycle",
            COUNT_BUCKETS,
        ))
        .expect("valid histogram");
        let send_rate = Histogram::with_opts(histogram(
            "tcpinfo_send_rate_histogram",
            "bits per second acknowledged by peers, summed over all TCP connections, once per second",
            RATE_BUCKETS,
        ))
        .expect("valid histogram");
        let receive_rate = Histogram::with_opts(histogram(
            "tcpinfo_receive_rate_histogram",
            "bits per second received, summed over all TCP connections, once per second",
            RATE_BUCKETS,
        ))
        .expect("valid histogram");
        let flow_events = IntCounterVec::new(
            Opts::new(
                "tcpinfo_flow_events_total",
                "connection events (open, close) of archived connections, as sent on the event socket",
            ),
            &["event"],
        )
        .expect("valid counter");
        let poll_state = Arc::new(PollState::default());
        let readiness = Arc::new(health::Readiness::new(Arc::clone(&stats)));

        for c in [
            Box::new(syscall_time.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(polling_interval.clone()),
            Box::new(connection_count.clone()),
            Box::new(cache_count.clone()),
            Box::new(send_rate.clone()),
            Box::new(receive_rate.clone()),
            Box::new(flow_events.clone()),
            Box::new(collectors::StatsCollector::new(
                stats,
                Arc::clone(&poll_state),
                Arc::clone(&exposure),
            )),
            Box::new(collectors::ExposureCollector::new(
                Arc::clone(&exposure),
                Arc::clone(&poll_state),
            )),
            Box::new(listener_changes::ListenerChangeCollector::new(exposure)),
            Box::new(build::BuildCollector::new()),
            Box::new(process::ProcessCollector::new()),
            Box::new(collectors::ReadyCollector::new(Arc::clone(&readiness))),
        ] {
            registry.register(c).expect("metric definitions are unique");
        }
        Arc::new(Self {
            registry,
            syscall_time,
            polling_interval,
            connection_count,
            cache_count,
            send_rate,
            receive_rate,
            flow_events,
            poll_state,
            readiness,
        })
    }

    /// The registry, for other components (the event socket) to add their
    /// own collectors to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Exports the depth of each writer shard's queue, read at scrape time.
    pub fn watch_writer_queues(&self, queues: Arc<QueueDepths>) {
        self.registry
            .register(Box::new(collectors::QueueCollector::new(queues)))
            .expect("registered once");
    }

    /// Exports the event socket's client count and dropped clients.
    pub fn watch_event_socket(&self, publisher: Publisher) {
        self.registry
            .register(Box::new(collectors::EventSocketCollector::new(publisher)))
            .expect("registered once");
    }

    /// Exports `tcpinfo_remote_connections` from what the exposure worker
    /// publishes in `cell` (`-remote-states`).
    pub fn watch_remote_states(&self, cell: Arc<RemoteCell>, max_series: usize) {
        self.registry
            .register(Box::new(remote::RemoteCollector::new(cell, max_series)))
            .expect("registered once");
    }

    /// Exports the listener policy's gauges (`-listen-policy`).
    pub fn watch_listen_policy(&self, policy: Arc<ActivePolicy>) {
        self.registry
            .register(Box::new(policy::PolicyCollector::new(policy)))
            .expect("registered once");
    }

    /// Ready once a complete poll ran, while polls keep completing and
    /// the archive is being written (see [`health`]).
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// `Ok` when ready; otherwise why not, in one line.
    pub fn readiness(&self) -> Result<(), String> {
        self.readiness.check(std::time::Instant::now())
    }

    /// The poll interval the agent aims at (`-poll-interval`): polls far
    /// slower than this make the agent not ready.
    pub fn set_poll_target(&self, target: std::time::Duration) {
        self.readiness.set_poll_target(target);
    }

    pub(crate) fn ready_state(&self) -> &health::Readiness {
        &self.readiness
    }

    /// The text exposition format of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec fails only on a malformed family, which our
        // collectors never build; render what was encoded anyway.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        // Histogram bounds as the Go tool prints them (`1e+06`, not
        // `1000000`): dashboards select buckets by these strings.
        gofloat::go_le_labels(&out)
    }
}
