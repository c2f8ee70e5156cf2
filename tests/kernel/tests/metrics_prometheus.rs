//! The agent's output against Prometheus' own tools: `promtool check
//! metrics` finds nothing but the legacy histogram names, and a real
//! Prometheus server (Debian package, loopback inside the test's namespace,
//! its own temp dir) scrapes the agent and answers queries for the
//! listening series.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::process::Stdio;
use std::time::Duration;

use harness::process::program_name;
use harness::prometheus::Prometheus;
use harness::system::tool;
use harness::{wait_for, Agent, Netns};

/// M-Lab's histogram names, kept as they are for existing dashboards.
const LEGACY_HISTOGRAMS: [&str; 6] = [
    "tcpinfo_cache_count_histogram",
    "tcpinfo_connection_count_histogram",
    "tcpinfo_polling_interval_histogram",
    "tcpinfo_receive_rate_histogram",
    "tcpinfo_send_rate_histogram",
    "tcpinfo_syscall_time_histogram",
];

const PROMETHEUS_PORT: u16 = 9090;

#[test]
fn promtool_reports_only_the_legacy_histogram_names() {
    let ns = Netns::with_every_scope();
    let _agent = Agent::serving_metrics(&ns, &[]);
    let _listener = ns.enter(|| TcpListener::bind("198.51.100.1:7200").unwrap());
    let scrape = wait_for(Duration::from_secs(10), "the listener's series", || {
        let s = ns.scrape()?;
        s.value("tcpinfo_listening_ports", &[("port", "7200")])
            .map(|_| s)
    });
    let mut promtool = tool("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let problems: BTreeSet<&str> = report.lines().filter(|l| !l.trim().is_empty()).collect();
    let allowed: BTreeSet<String> = LEGACY_HISTOGRAMS
        .iter()
        .map(|n| format!("{n} metric name should not include type 'histogram'"))
        .collect();
    let allowed: BTreeSet<&str> = allowed.iter().map(String::as_str).collect();
    assert_eq!(problems, allowed, "promtool report:\n{report}");
}

#[test]
fn a_real_prometheus_scrapes_the_agent_and_returns_the_listening_series() {
    let ns = Netns::with_every_scope();
    let _agent = Agent::serving_metrics(&ns, &[]);
    let _sockets = ns.enter(|| {
        (
            TcpListener::bind("198.51.100.1:7300").unwrap(),
            UdpSocket::bind("[fd00::1]:7301").unwrap(),
        )
    });

    let prometheus = Prometheus::scraping_the_agent(&ns, PROMETHEUS_PORT, &[]);
    let query = |q: &str| prometheus.series(q);
    let tcp = wait_for(
        Duration::from_secs(60),
        "Prometheus to return the TCP listening series",
        || query("tcpinfo_listening_ports{port=\"7300\"}"),
    );
    assert_eq!(tcp.len(), 1, "{tcp:?}");
    let metric = &tcp[0]["metric"];
    assert_eq!(metric["job"], "tcpinfo");
    assert_eq!(metric["proto"], "tcp");
    assert_eq!(metric["family"], "ipv4");
    assert_eq!(metric["scope"], "public");
    assert_eq!(metric["process"], program_name().as_str());
    assert_eq!(tcp[0]["value"][1], "1");

    let udp = wait_for(
        Duration::from_secs(10),
        "Prometheus to return the UDP listening series",
        || query("tcpinfo_listening_ports{proto=\"udp\",port=\"7301\"}"),
    );
    assert_eq!(udp[0]["metric"]["family"], "ipv6");
    assert_eq!(udp[0]["metric"]["scope"], "private");

    let up = query("up{job=\"tcpinfo\"}").expect("the target is known");
    assert_eq!(up[0]["value"][1], "1", "the scrape succeeds");
}

/// The alerting rules shipped in deploy/ are valid, fire on the series
/// they are written for (promtool's rule unit tests), and only name metrics
/// the agent really exports when its exposure options are on.
#[test]
fn the_shipped_exposure_alerts_hold_and_name_exported_metrics() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    for args in [
        &["check", "rules", "exposure-alerts.yml"][..],
        &["test", "rules", "exposure-alerts.test.yml"],
    ] {
        let out = tool("promtool")
            .args(args)
            .current_dir(&deploy)
            .output()
            .expect("running promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let rules = std::fs::read_to_string(deploy.join("exposure-alerts.yml")).unwrap();
    let named: BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("tcpinfo_"))
        .collect();
    assert!(named.len() >= 4, "{named:?}");

    let ns = Netns::with_every_scope();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[[forbid]]\nport = 23\n").unwrap();
    let policy_flag = format!("-listen-policy={}", policy.display());
    let _agent = Agent::serving_metrics(&ns, &[&policy_flag, "-remote-states=198.51.100.0/24"]);
    // What the rules watch for: a forbidden public listener, and an
    // outbound connection to a public peer (198.51.100.0/24 is public).
    let (_forbidden, _listener, _client, _server) = ns.enter(|| {
        let forbidden = TcpListener::bind("198.51.100.1:23").unwrap();
        let listener = TcpListener::bind("198.51.100.1:7201").unwrap();
        let client = std::net::TcpStream::connect("198.51.100.1:7201").unwrap();
        let server = listener.accept().unwrap();
        (forbidden, listener, client, server)
    });
    wait_for(
        Duration::from_secs(10),
        "a series of every metric the rules name",
        || {
            let s = ns.scrape()?;
            named
                .iter()
                .all(|name| {
                    s.text.lines().any(|l| {
                        l.strip_prefix(name)
                            .is_some_and(|rest| rest.starts_with(['{', ' ']))
                    })
                })
                .then_some(())
        },
    );
}
