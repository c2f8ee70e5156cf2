//! The agent's active policy (`-listen-policy FILE`): evaluated by the
//! exposure worker every inventory, replaced on reload (SIGHUP,
//! `POST /-/reload`) only by a file that validates; read by /metrics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};

use super::evaluate::{evaluate, Evaluation, Observed, ViolationKind};
use super::file::{self, PolicyError};
use super::rule::Policy;
use crate::exposure::inventory::ListeningSocket;
use crate::exposure::worker::ListenerHook;
use crate::lock::lock;
use crate::log::RateLimit;

/// Reloads are operator-driven, violations follow listeners coming and
/// going: both are logged, but a loop of either cannot flood the log.
static RELOAD_LOG: RateLimit = RateLimit::with_budget(10, 60_000);
static VIOLATION_LOG: RateLimit = RateLimit::with_budget(20, 60_000);

pub struct ActivePolicy {
    path: PathBuf,
    policy: ArcSwap<Policy>,
    /// The last inventory, so that a reload is evaluated at once; its lock
    /// also makes evaluations one at a time (see `apply`).
    observed: Mutex<Option<Arc<[Observed]>>>,
    /// The last evaluation, for /metrics; `None` before the first inventory.
    evaluation: ArcSwapOption<Evaluation>,
    reloads_success: AtomicU64,
    reloads_failure: AtomicU64,
    last_reload_ok: AtomicBool,
}

/// What a successful reload applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reloaded {
    pub rules: usize,
    /// Violated rules against the last inventory (`None` before the first).
    pub violated: Option<usize>,
}

impl ActivePolicy {
    /// Loads the policy at `path`; an invalid file is an error.
    pub fn load(path: impl Into<PathBuf>) -> Result<Arc<Self>, PolicyError> {
        let path = path.into();
        let policy = file::load(&path)?;
        Ok(Arc::new(Self {
            path,
            policy: ArcSwap::from_pointee(policy),
            observed: Mutex::new(None),
            evaluation: ArcSwapOption::empty(),
            reloads_success: AtomicU64::new(0),
            reloads_failure: AtomicU64::new(0),
            last_reload_ok: AtomicBool::new(true),
        }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// Re-reads the file. A file that does not validate leaves the
    /// previous policy active; either way the outcome is counted and
    /// logged.
    pub fn reload(&self) -> Result<Reloaded, PolicyError> {
        match file::load(&self.path) {
            Ok(policy) => {
                let rules = policy.rules.len();
                self.policy.store(Arc::new(policy));
                self.reloads_success.fetch_add(1, Relaxed);
                self.last_reload_ok.store(true, Relaxed);
                let observed = lock(&self.observed).clone();
                let violated = observed.map(|o| self.apply(o));
                log_limited!(
                    RELOAD_LOG,
                    "listen policy: reloaded {} ({rules} rules)",
                    self.path.display()
                );
                Ok(Reloaded { rules, violated })
            }
            Err(e) => {
                self.reloads_failure.fetch_add(1, Relaxed);
                self.last_reload_ok.store(false, Relaxed);
                log_limited!(
                    RELOAD_LOG,
                    "listen policy: reload rejected, keeping the previous policy ({} rules): {e}",
                    self.rules()
                );
                Err(e)
            }
        }
    }

    /// Evaluates the active policy against an inventory and publishes the
    /// result; returns the number of violated rules.
    pub fn observe(&self, listeners: Vec<Observed>) -> usize {
        self.apply(listeners.into())
    }

    fn apply(&self, observed: Arc<[Observed]>) -> usize {
        // Policy read, evaluation and publication under one lock: an
        // inventory evaluated against the policy a reload just replaced can
        // never be published after the reload's own evaluation.
        let (evaluation, previous) = {
            let mut last = lock(&self.observed);
            let evaluation = Arc::new(evaluate(&self.policy.load(), &observed));
            *last = Some(observed);
            let previous = self.evaluation.swap(Some(Arc::clone(&evaluation)));
            (evaluation, previous)
        };
        log_changes(previous.as_deref(), &evaluation);
        evaluation.failed()
    }

    /// The last evaluation; `None` before the first inventory.
    pub fn evaluation(&self) -> Option<Arc<Evaluation>> {
        self.evaluation.load_full()
    }

    /// Rules in the active policy.
    pub fn rules(&self) -> usize {
        self.policy.load().rules.len()
    }

    /// `(successful, failed)` reloads so far.
    pub fn reloads(&self) -> (u64, u64) {
        (
            self.reloads_success.load(Relaxed),
            self.reloads_failure.load(Relaxed),
        )
    }

    /// Whether the last reload (or the initial load) succeeded.
    pub fn last_reload_ok(&self) -> bool {
        self.last_reload_ok.load(Relaxed)
    }
}

/// Logs rules that became violated and rules that hold again.
fn log_changes(previous: Option<&Evaluation>, current: &Evaluation) {
    let before: BTreeMap<&str, ViolationKind> = previous
        .map(|p| p.violations().map(|(r, v)| (r, v.kind)).collect())
        .unwrap_or_default();
    let now: BTreeMap<&str, ViolationKind> =
        current.violations().map(|(r, v)| (r, v.kind)).collect();
    for (rule, v) in current.violations() {
        if before.get(rule) != Some(&v.kind) {
            let more = match v.observed.len() {
                0 | 1 => String::new(),
                n => format!(" (+{} more)", n - 1),
            };
            log_limited!(
                VIOLATION_LOG,
                "listen policy: rule {rule:?} violated ({}): {}{more}",
                v.kind.label(),
                v.observed.first().map_or("", String::as_str)
            );
        }
    }
    if let Some(previous) = previous {
        for (rule, _) in previous.violations() {
            let still_a_rule = current.outcomes.iter().any(|o| &*o.rule == rule);
            if still_a_rule && !now.contains_key(rule) {
                log_limited!(VIOLATION_LOG, "listen policy: rule {rule:?} holds again");
            }
        }
    }
}

/// The exposure worker's hook: every inventory's listeners, before any
/// series cap, with their programs.
impl ListenerHook for Arc<ActivePolicy> {
    fn listeners(&mut self, listeners: &[ListeningSocket], process: &dyn Fn(u32) -> Arc<str>) {
        let observed = listeners
            .iter()
            .map(|&socket| Observed {
                process: process(socket.inode),
                socket,
                // The agent runs as root; an unprivileged agent reports
                // what it can see, as before.
                owner_hidden: false,
            })
            .collect();
        self.observe(observed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::inventory::Proto;
    use crate::policy::evaluate::tests::listener;

    #[test]
    fn a_broken_reload_keeps_the_policy_and_a_fixed_one_applies_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[[listen]]\nproto = \"tcp\"\nport = 22\n").unwrap();
        let active = ActivePolicy::load(&path).unwrap();
        assert!(active.evaluation().is_none());
        assert_eq!(active.observe(vec![]), 1);
        assert_eq!(
            active.observe(vec![listener(Proto::Tcp, "::", 22, "sshd")]),
            0
        );

        std::fs::write(
            &path,
            "[[listen]]\nproto = \"tcp\"\nport = 22\nbind = \"nowhere\"\n",
        )
        .unwrap();
        let e = active.reload().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:4: bind \"nowhere\"", path.display())),
            "{e}"
        );
        assert_eq!(active.reloads(), (0, 1));
        assert!(!active.last_reload_ok());
        assert_eq!(active.rules(), 1);
        assert!(active.evaluation().unwrap().ok());

        std::fs::write(&path, "[[forbid]]\nport = 22\n[[count]]\nlisteners = 1\n").unwrap();
        let r = active.reload().unwrap();
        assert_eq!(
            r,
            Reloaded {
                rules: 2,
                violated: Some(1)
            }
        );
        assert_eq!(active.reloads(), (1, 1));
        assert!(active.last_reload_ok());
        let e = active.evaluation().unwrap();
        let v: Vec<&str> = e.violations().map(|(r, _)| r).collect();
        assert_eq!(v, ["forbid-any-22"]);
    }
}
