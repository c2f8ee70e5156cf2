//! The Go tool's metric families, as its `/metrics` prints them (m-lab/
//! tcp-info d72b41f, `metrics/metrics.go`, Go's client_golang text format):
//! every `le` string must be exactly Go's, since recording rules and
//! dashboards select buckets by these strings.

use std::sync::Arc;
use std::time::Duration;

use super::observer::MetricsObserver;
use super::Metrics;
use crate::cache::Cache;
use crate::poller::{DumpReport, PollObserver};

/// `prometheus.LinearBuckets(0, .001, 30)`, Go's float accumulation and all.
const POLLING_INTERVAL: &[&str] = &[
    "0",
    "0.001",
    "0.002",
    "0.003",
    "0.004",
    "0.005",
    "0.006",
    "0.007",
    "0.008",
    "0.009000000000000001",
    "0.010000000000000002",
    "0.011000000000000003",
    "0.012000000000000004",
    "0.013000000000000005",
    "0.014000000000000005",
    "0.015000000000000006",
    "0.016000000000000007",
    "0.017000000000000008",
    "0.01800000000000001",
    "0.01900000000000001",
    "0.02000000000000001",
    "0.02100000000000001",
    "0.022000000000000013",
    "0.023000000000000013",
    "0.024000000000000014",
    "0.025000000000000015",
    "0.026000000000000016",
    "0.027000000000000017",
    "0.028000000000000018",
    "0.02900000000000002",
    "+Inf",
];

const SYSCALL_TIME: &[&str] = &[
    "0.001", "0.00125", "0.0016", "0.002", "0.0025", "0.0032", "0.004", "0.005", "0.0063",
    "0.0079", "0.01", "0.0125", "0.016", "0.02", "0.025", "0.032", "0.04", "0.05", "0.063",
    "0.079", "0.1", "0.125", "0.16", "0.2", "+Inf",
];

/// `tcpinfo_connection_count_histogram` and `tcpinfo_cache_count_histogram`.
const COUNT: &[&str] = &[
    "1", "2", "3", "4", "5", "6", "8", "10", "12.5", "16", "20", "25", "32", "40", "50", "63",
    "79", "100", "125", "160", "200", "250", "320", "400", "500", "630", "790", "1000", "1250",
    "1600", "2000", "2500", "3200", "4000", "5000", "6300", "7900", "10000", "12500", "16000",
    "20000", "25000", "32000", "40000", "50000", "63000", "79000", "1e+07", "+Inf",
];

/// `tcpinfo_send_rate_histogram` and `tcpinfo_receive_rate_histogram`.
const RATE: &[&str] = &[
    "0", "1", "10", "100", "1000", "1580", "2510", "3980", "6310", "10000", "15800", "25100",
    "39800", "63100", "100000", "158000", "251000", "398000", "631000", "1e+06", "1.58e+06",
    "2.51e+06", "3.98e+06", "6.31e+06", "1e+07", "1.58e+07", "2.51e+07", "3.98e+07", "6.31e+07",
    "1e+08", "1.58e+08", "2.51e+08", "3.98e+08", "6.31e+08", "1e+09", "1.26e+09", "1.58e+09",
    "2e+09", "2.51e+09", "3.16e+09", "3.98e+09", "5.01e+09", "6.31e+09", "7.94e+09", "1e+10",
    "+Inf",
];

/// The `le` values of `family`'s first series, in order.
fn le_values(text: &str, family: &str, series: &str) -> Vec<String> {
    let prefix = format!("{family}_bucket{{{series}");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|l| {
            let start = l.find("le=\"").expect("bucket has le") + 4;
            let len = l[start..].find('"').expect("le is quoted");
            l[start..start + len].to_owned()
        })
        .collect()
}

#[test]
fn every_go_histogram_prints_exactly_gos_le_strings() {
    let metrics = Metrics::new(Arc::default(), Arc::default());
    let mut observer = MetricsObserver::new(Arc::clone(&metrics));
    observer.dump_finished(&DumpReport {
        family: inetdiag::AF_UNSPEC,
        elapsed: Duration::from_millis(2),
        ipv4: 5,
        ipv6: 7,
    });
    observer.cycle_finished(Some(Duration::from_millis(10)), &Cache::new());
    metrics.send_rate.observe(1e6);
    metrics.receive_rate.observe(1e6);
    let text = String::from_utf8(metrics.render()).unwrap();
    for (family, series, want) in [
        ("tcpinfo_polling_interval_histogram", "", POLLING_INTERVAL),
        (
            "tcpinfo_syscall_time_histogram",
            "af=\"all\",",
            SYSCALL_TIME,
        ),
        ("tcpinfo_connection_count_histogram", "af=\"ipv4\",", COUNT),
        ("tcpinfo_connection_count_histogram", "af=\"ipv6\",", COUNT),
        ("tcpinfo_cache_count_histogram", "", COUNT),
        ("tcpinfo_send_rate_histogram", "", RATE),
        ("tcpinfo_receive_rate_histogram", "", RATE),
    ] {
        assert_eq!(
            le_values(&text, family, series),
            want,
            "{family}{{{series}}}"
        );
    }
    // A sample value that happens to be a bound keeps the encoder's own
    // spelling: only label values are Go's.
    assert!(
        text.contains("tcpinfo_send_rate_histogram_sum 1000000\n"),
        "{text}"
    );
}

#[test]
fn git_short_commit_build_info_and_process_metrics_are_exported() {
    let metrics = Metrics::new(Arc::default(), Arc::default());
    let text = String::from_utf8(metrics.render()).unwrap();
    let commit = super::build::GIT_COMMIT;
    assert!(
        text.contains(&format!("git_short_commit{{commit=\"{commit}\"}} ")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "tcpinfo_build_info{{version=\"{}\",revision=\"{commit}\",rustc_version=\"{}\"}} 1\n",
        super::build::VERSION,
        super::build::RUSTC_VERSION
    )));
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(text.contains(&format!("\n{family} ")), "{family} missing");
    }
}
