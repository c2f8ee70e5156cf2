//! The agent-health alert rules shipped in deploy/agent-alerts.yml: valid,
//! firing on the series they are written for (promtool's rule unit tests),
//! and every expression, evaluated by a real Prometheus scraping a real
//! agent, finds the series it watches.

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::prometheus::Prometheus;
use harness::system::tool;
use harness::{wait_for, Agent, Netns};

const PROMETHEUS_PORT: u16 = 9091;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// The `expr:` of every rule in `rules` (each on one line).
fn expressions(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect()
}

use harness::metrics::alert_watches as watched;

#[test]
fn the_threshold_is_cut_off_what_an_alert_watches() {
    assert_eq!(watched("a{x=\"1\"} == 0"), "a{x=\"1\"}");
    assert_eq!(watched("absent(up{job=\"t\"})"), "up{job=\"t\"}");
    assert_eq!(
        watched("rate(a[5m]) / rate(b[5m]) > 10 * c"),
        "rate(a[5m]) / rate(b[5m])"
    );
    assert_eq!(watched("sum(x) > 0"), "sum(x)");
    assert_eq!(watched("rate(a[5m]) >= bool 0.5"), "rate(a[5m])");
    assert_eq!(watched("a[5m]"), "a[5m]");
}

#[test]
fn the_shipped_agent_alerts_hold_and_every_expression_finds_its_series() {
    for args in [
        &["check", "rules", "agent-alerts.yml"][..],
        &["test", "rules", "agent-alerts.test.yml"],
    ] {
        let out = tool("promtool")
            .args(args)
            .current_dir(deploy())
            .output()
            .expect("running promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = std::fs::read_to_string(deploy().join("agent-alerts.yml")).unwrap();
    let exprs = expressions(&rules);
    assert!(exprs.len() >= 6, "{exprs:?}");

    let ns = Netns::with_every_scope();
    let _agent = Agent::serving_metrics(&ns, &[]);
    let prometheus = Prometheus::scraping_the_agent(&ns, PROMETHEUS_PORT, &[]);
    let query = |q: &str| prometheus.series(q);
    for expr in &exprs {
        let series = watched(expr);
        let found = wait_for(
            Duration::from_secs(60),
            &format!("Prometheus to return a series for {series}"),
            || query(&series),
        );
        assert!(!found.is_empty(), "{series}");
    }
    // A healthy agent: not one alert expression holds.
    for expr in &exprs {
        assert_eq!(query(expr), None, "{expr} holds for a healthy agent");
    }
    let ready = query("tcpinfo_ready").unwrap();
    assert_eq!(ready[0]["value"][1], "1");
}
