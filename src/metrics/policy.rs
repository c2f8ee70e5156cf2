//! The listener policy's metrics, registered only with `-listen-policy`.

use std::sync::Arc;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;

use super::family::FamilyDef;
use crate::policy::ActivePolicy;
use crate::series_cap::{cap, MAX_SERIES};

pub(crate) struct PolicyCollector {
    policy: Arc<ActivePolicy>,
    violations: FamilyDef,
    violated_rules: FamilyDef,
    ok: FamilyDef,
    rules: FamilyDef,
    reloads: FamilyDef,
    last_reload: FamilyDef,
}

impl PolicyCollector {
    pub fn new(policy: Arc<ActivePolicy>) -> Self {
        Self {
            policy,
            violations: FamilyDef::gauge(
                "tcpinfo_listening_policy_violations",
                "violated listener policy rules (at most 256 series): listeners at fault (forbidden, wrong_owner), 1 (missing), or the difference from the expected count (count)",
                &["rule", "kind"],
            ),
            violated_rules: FamilyDef::gauge(
                "tcpinfo_listening_policy_violated_rules",
                "listener policy rules violated by the last inventory, including those beyond the series cap",
                &[],
            ),
            ok: FamilyDef::gauge(
                "tcpinfo_listening_policy_ok",
                "1 when every rule of the listener policy holds, else 0",
                &[],
            ),
            rules: FamilyDef::gauge(
                "tcpinfo_listening_policy_rules",
                "rules in the active listener policy",
                &[],
            ),
            reloads: FamilyDef::counter(
                "tcpinfo_listening_policy_reloads_total",
                "listener policy reloads (SIGHUP, POST /-/reload) by result",
                &["result"],
            ),
            last_reload: FamilyDef::gauge(
                "tcpinfo_listening_policy_last_reload_successful",
                "1 when the last listener policy (re)load succeeded, 0 when the file on disk was rejected",
                &[],
            ),
        }
    }
}

impl Collector for PolicyCollector {
    fn desc(&self) -> Vec<&Desc> {
        [
            &self.violations,
            &self.violated_rules,
            &self.ok,
            &self.rules,
            &self.reloads,
            &self.last_reload,
        ]
        .into_iter()
        .map(|f| &f.desc)
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let p = &self.policy;
        let (success, failure) = p.reloads();
        let mut families = vec![
            self.rules.single(p.rules() as f64),
            self.reloads
                .family([(["success"], success as f64), (["failure"], failure as f64)]),
            self.last_reload
                .single(if p.last_reload_ok() { 1.0 } else { 0.0 }),
        ];
        // Nothing is said about violations before the first inventory.
        let Some(e) = p.evaluation() else {
            return families;
        };
        // Rules come from a file an operator writes, but a generated policy
        // could hold thousands; the violated ones beyond the cap are still
        // counted in `violated_rules`.
        let (shown, _) = cap(e.violations(), MAX_SERIES);
        families.push(
            self.violations.family(
                shown
                    .into_iter()
                    .map(|(rule, v)| ([rule, v.kind.label()], v.amount as f64)),
            ),
        );
        families.push(self.violated_rules.single(e.failed() as f64));
        families.push(self.ok.single(if e.ok() { 1.0 } else { 0.0 }));
        families
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    #[test]
    fn violation_series_are_capped_and_the_rest_still_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        let mut text = String::new();
        for port in 1..=300 {
            let _ = writeln!(text, "[[listen]]\nproto = \"tcp\"\nport = {port}");
        }
        std::fs::write(&path, text).unwrap();
        let policy = ActivePolicy::load(&path).unwrap();
        let collector = PolicyCollector::new(Arc::clone(&policy));
        let names = |families: &[MetricFamily]| -> Vec<String> {
            families.iter().map(|f| f.name().to_owned()).collect()
        };
        // Before the first inventory: no verdict.
        let before = collector.collect();
        assert!(!names(&before).contains(&OK_NAME.to_owned()));
        assert_eq!(policy.observe(Vec::new()), 300);
        let families = collector.collect();
        let get = |name: &str| {
            families
                .iter()
                .find(|f| f.name() == name)
                .unwrap_or_else(|| panic!("no {name} in {:?}", names(&families)))
        };
        assert_eq!(
            get("tcpinfo_listening_policy_violations")
                .get_metric()
                .len(),
            MAX_SERIES
        );
        let gauge = |name: &str| get(name).get_metric()[0].get_gauge().get_value();
        assert_eq!(gauge("tcpinfo_listening_policy_violated_rules"), 300.0);
        assert_eq!(gauge(OK_NAME), 0.0);
        assert_eq!(gauge("tcpinfo_listening_policy_rules"), 300.0);
    }

    const OK_NAME: &str = "tcpinfo_listening_policy_ok";
}
