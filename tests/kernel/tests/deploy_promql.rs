//! Every PromQL expression the project ships — the Grafana dashboard's
//! queries and the alerting rules of every `deploy/*.yml` rules file — is
//! evaluated by a real Prometheus (Debian package) scraping a real agent in
//! a network namespace, and returns at least one series.
//!
//! The scene gives every panel something to show: a public listener that
//! the listener policy forbids (port 23), a public listener opened after
//! the agent started, and an established connection to a peer inside
//! `-remote-states`. An alert's expression is evaluated without its final
//! threshold (`… > 0` as `…`, `absent(X)` as `X`), since a healthy scene rightly fires nothing:
//! what is checked is that it parses, runs, and finds the series it watches.

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::metrics::alert_watches;
use harness::prometheus::Prometheus;
use harness::system::tool;
use harness::{wait_for, wait_for_ok, Agent, Netns};

const PROMETHEUS_PORT: u16 = 9090;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Every rules file under deploy/: `*.yml` but the promtool unit tests
/// (`*.test.yml`), so that rule files added later are covered too.
fn rules_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.ends_with(".yml") && !name.ends_with(".test.yml")
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no rules files in deploy/");
    files
}

/// `(rule name, expr)` of every rule in `file`.
fn rule_exprs(file: &Path) -> Vec<(String, String)> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .expect("alert or record name");
            let expr = rule["expr"].as_str().expect("expr");
            out.push((name.to_string(), expr.trim().to_string()));
        }
    }
    out
}

/// The dashboard's queries with Grafana's variables replaced by what they
/// stand for: each query variable's "All" value, each constant's value,
/// and fixed ranges for the built-ins.
fn dashboard_exprs() -> Vec<(String, String)> {
    let path = deploy_dir().join("grafana/tcp-info.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut vars: BTreeMap<String, String> = BTreeMap::from([
        ("__rate_interval".into(), "10s".into()),
        ("__range".into(), "5m".into()),
        ("__interval".into(), "5s".into()),
    ]);
    for var in dash["templating"]["list"].as_array().unwrap() {
        let name = var["name"].as_str().unwrap().to_string();
        match var["type"].as_str().unwrap() {
            "constant" => vars.insert(name, var["query"].as_str().unwrap().into()),
            "query" => vars.insert(name, var["allValue"].as_str().expect("allValue").into()),
            _ => None,
        };
    }
    let mut out = Vec::new();
    let mut stack: Vec<&serde_json::Value> = dash["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            stack.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            let mut expr = target["expr"]
                .as_str()
                .expect("a PromQL target")
                .to_string();
            // Longest names first: $__range is not $__rate_interval's prefix
            // problem, but $instance_x would be $instance's.
            let mut names: Vec<&String> = vars.keys().collect();
            names.sort_by_key(|n| std::cmp::Reverse(n.len()));
            for name in names {
                expr = expr.replace(&format!("${{{name}}}"), &vars[name]);
                expr = expr.replace(&format!("${name}"), &vars[name]);
            }
            assert!(!expr.contains('$'), "unknown variable in {expr}");
            out.push((panel["title"].as_str().unwrap().to_string(), expr));
        }
    }
    assert!(out.len() >= 15, "{} dashboard queries", out.len());
    out
}

#[test]
fn every_shipped_promql_expression_returns_a_series_from_a_real_agent() {
    let rules = rules_files();
    for file in &rules {
        let out = tool("promtool")
            .args(["check", "rules"])
            .arg(file)
            .output()
            .expect("running promtool");
        assert!(
            out.status.success(),
            "promtool check rules {}: {}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut exprs: Vec<(String, String)> = Vec::new();
    for file in &rules {
        for (name, expr) in rule_exprs(file) {
            exprs.push((name, alert_watches(&expr)));
        }
    }
    exprs.extend(dashboard_exprs());

    let ns = Netns::with_every_scope();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[[forbid]]\nport = 23\n").unwrap();
    let policy_flag = format!("-listen-policy={}", policy.display());
    let _agent = Agent::serving_metrics(&ns, &[&policy_flag, "-remote-states=198.51.100.0/24"]);
    wait_for(Duration::from_secs(10), "the agent's first scrape", || {
        ns.scrape()
    });
    // Opened after the agent's first inventory: listener changes count them.
    let _scene = ns.enter(|| {
        let forbidden = TcpListener::bind("198.51.100.1:23").unwrap();
        let listener = TcpListener::bind("198.51.100.1:7202").unwrap();
        let client = TcpStream::connect("198.51.100.1:7202").unwrap();
        let server = listener.accept().unwrap();
        (forbidden, listener, client, server)
    });

    let prometheus = Prometheus::scraping_the_agent(&ns, PROMETHEUS_PORT, &rules);
    // Ok(series count) or Err(why), for one instant query now.
    let query = |q: &str| prometheus.query(q).map(|result| result.len());

    // Prometheus loaded every rules file's groups.
    let groups: usize = rules
        .iter()
        .map(|f| {
            let doc: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            doc["groups"].as_sequence().unwrap().len()
        })
        .sum();
    wait_for(
        Duration::from_secs(30),
        "Prometheus to load the rules",
        || {
            let (status, body) = ns.http_get(PROMETHEUS_PORT, "/api/v1/rules").ok()?;
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && v["data"]["groups"].as_array()?.len() == groups).then_some(())
        },
    );

    wait_for_ok(
        Duration::from_secs(90),
        "every expression to return a series",
        || {
            let missing: Vec<String> = exprs
                .iter()
                .filter_map(|(name, expr)| match query(expr) {
                    Ok(n) if n > 0 => None,
                    Ok(_) => Some(format!("{name}: no series: {expr}")),
                    Err(e) => Some(format!("{name}: {e}: {expr}")),
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(missing.join("\n"))
            }
        },
    );
}
