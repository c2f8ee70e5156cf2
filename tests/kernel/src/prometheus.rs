//! A real Prometheus (Debian's package) in a test's namespace, scraping the
//! agent there every second and evaluating rule files.

use std::path::PathBuf;

use crate::metrics::{url_encode, METRICS_PORT};
use crate::netns::Netns;
use crate::process::Process;
use crate::system::tool_path;

pub struct Prometheus<'a> {
    ns: &'a Netns,
    port: u16,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl<'a> Prometheus<'a> {
    /// Serves on 127.0.0.1:`port` in `ns`, scraping the agent's metrics
    /// port as job `tcpinfo` and evaluating `rule_files`, each every second.
    pub fn scraping_the_agent(ns: &'a Netns, port: u16, rule_files: &[PathBuf]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        let rules: String = rule_files
            .iter()
            .map(|f| format!("  - '{}'\n", f.display()))
            .collect();
        let rules = if rules.is_empty() {
            String::new()
        } else {
            format!("rule_files:\n{rules}")
        };
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 {rules}\
                 scrape_configs:\n  - job_name: tcpinfo\n    static_configs:\n      - targets: ['127.0.0.1:{METRICS_PORT}']\n"
            ),
        )
        .unwrap();
        let process = Process::spawn(
            ns.command(tool_path("prometheus"))
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}")),
        );
        Prometheus {
            ns,
            port,
            _process: process,
            _dir: dir,
        }
    }

    /// One instant query now: its result vector (maybe empty), or why
    /// there is none (not up yet, HTTP error with Prometheus' message).
    pub fn query(&self, q: &str) -> Result<Vec<serde_json::Value>, String> {
        let path = format!("/api/v1/query?query={}", url_encode(q));
        let (status, body) = self
            .ns
            .http_get(self.port, &path)
            .map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("HTTP {status}: {}", v["error"]));
        }
        v["data"]["result"]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("no result in {body}"))
    }

    /// The query's series, or None while there are none (or no answer).
    pub fn series(&self, q: &str) -> Option<Vec<serde_json::Value>> {
        self.query(q).ok().filter(|r| !r.is_empty())
    }
}
