//! What is running: `git_short_commit` as M-Lab's `prometheusx` exports it
//! (the commit as a label, and as a number: its hex digits read in base
//! 16), and `tcpinfo_build_info` in the style of node_exporter's build info.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::family::FamilyDef;

/// The short git commit the binary was built from (`unknown` without the
/// repository or `TCPINFO_GIT_COMMIT`).
pub const GIT_COMMIT: &str = env!("TCPINFO_GIT_COMMIT");
/// The compiler's version (`1.87.0`).
pub const RUSTC_VERSION: &str = env!("TCPINFO_RUSTC_VERSION");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `prometheusx`'s value: the commit read as a base-16 number, 0 when it
/// is not one.
pub fn commit_number(commit: &str) -> f64 {
    i64::from_str_radix(commit, 16).map_or(0.0, |n| n as f64)
}

pub(crate) struct BuildCollector {
    commit: FamilyDef,
    info: FamilyDef,
    families: Vec<MetricFamily>,
}

impl BuildCollector {
    pub fn new() -> Self {
        let commit = FamilyDef::gauge(
            "git_short_commit",
            "The git commit interpreted as a number.",
            &["commit"],
        );
        let info = FamilyDef::gauge(
            "tcpinfo_build_info",
            "A metric with a constant '1' value labeled by version, revision and rustc_version from which tcp-info was built.",
            &["version", "revision", "rustc_version"],
        );
        let families = vec![
            commit.family([([GIT_COMMIT], commit_number(GIT_COMMIT))]),
            info.family([([VERSION, GIT_COMMIT, RUSTC_VERSION], 1.0)]),
        ];
        Self {
            commit,
            info,
            families,
        }
    }
}

impl Collector for BuildCollector {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.commit.desc, &self.info.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.families.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_number_is_its_hex_value_as_prometheusx_sets_it() {
        assert_eq!(commit_number("d72b41f"), 225_621_023.0);
        assert_eq!(commit_number("unknown"), 0.0);
        assert_eq!(commit_number(""), 0.0);
    }
}
