//! What each signal does to the agent. A signal whose default action would
//! kill the process either stops the agent the orderly way (every queued
//! snapshot written, every file finished, the `final stats` line) or is
//! ignored and logged; none of them ends it without the final flush.
//!
//! - Stop: SIGTERM, SIGINT, SIGQUIT, and SIGXCPU and SIGPWR (a CPU limit
//!   reached, a power failure: the end is coming, finish the files first).
//! - Reload: SIGHUP re-reads `-listen-policy`; without a policy it is
//!   ignored like the next group.
//! - Ignored, logged at most once per signal per [`IGNORED_LOG_PERIOD_MS`]:
//!   SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE, SIGVTALRM, SIGPROF, SIGIO,
//!   SIGXFSZ (a write over the file-size limit then fails with EFBIG, which
//!   the writers count, instead of killing the agent), SIGSTKFLT and the
//!   real-time signals.
//! - Left to the kernel: SIGKILL and SIGSTOP (uncatchable), and the signals
//!   of a fault in the process itself (SIGSEGV, SIGBUS, SIGILL, SIGFPE,
//!   SIGTRAP, SIGSYS, SIGABRT), after which nothing can be trusted.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use libc::{
    c_int, SIGALRM, SIGHUP, SIGINT, SIGIO, SIGPIPE, SIGPROF, SIGPWR, SIGQUIT, SIGSTKFLT, SIGTERM,
    SIGUSR1, SIGUSR2, SIGVTALRM, SIGXCPU, SIGXFSZ,
};
use signal_hook::iterator::Signals;

use crate::log::RateLimit;

/// Signals that stop the agent.
pub const STOP: [c_int; 5] = [SIGTERM, SIGINT, SIGQUIT, SIGXCPU, SIGPWR];

/// Signals ignored (and logged), besides the real-time ones.
pub const IGNORED: [c_int; 9] = [
    SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE, SIGVTALRM, SIGPROF, SIGIO, SIGXFSZ, SIGSTKFLT,
];

/// An ignored signal is logged at most once per this period.
pub const IGNORED_LOG_PERIOD_MS: u64 = 10 * 60 * 1000;

/// What a signal does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Stop,
    Reload,
    Ignore,
}

/// What `signal` does; `None` for signals left to the kernel.
pub fn action(signal: c_int) -> Option<Action> {
    if STOP.contains(&signal) {
        Some(Action::Stop)
    } else if signal == SIGHUP {
        Some(Action::Reload)
    } else if IGNORED.contains(&signal) || realtime().contains(&signal) {
        Some(Action::Ignore)
    } else {
        None
    }
}

/// The real-time signals this process may handle (the C library keeps
/// the first few for itself; `SIGRTMIN()` is past them).
fn realtime() -> std::ops::RangeInclusive<c_int> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

/// Every signal with an [`Action`].
fn handled() -> Vec<c_int> {
    STOP.iter()
        .chain(&[SIGHUP])
        .chain(&IGNORED)
        .copied()
        .chain(realtime())
        .collect()
}

/// A signal's name: `SIGTERM`, `SIGRTMIN+3`.
pub fn name(signal: c_int) -> String {
    if realtime().contains(&signal) {
        return format!("SIGRTMIN+{}", signal - libc::SIGRTMIN());
    }
    nix::sys::signal::Signal::try_from(signal)
        .map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

/// Signals caught from [`install`] on; they wait (in signal-hook's pipe)
/// until [`Handling::spawn`] acts on them, so nothing arriving during
/// start-up is lost or kills the agent.
pub struct Handling {
    signals: Signals,
}

/// Replaces the default action of every signal with an [`Action`]. Call it
/// first thing: from here on no such signal kills the agent.
pub fn install() -> io::Result<Handling> {
    Ok(Handling {
        signals: Signals::new(handled())?,
    })
}

impl Handling {
    /// Acts on signals on a thread of its own: a stop signal sets `stop`
    /// (the poller ends its loop on it, and the agent shuts down in order);
    /// SIGHUP calls `reload` when there is one.
    pub fn spawn(
        mut self,
        stop: Arc<AtomicBool>,
        reload: Option<Box<dyn Fn() + Send>>,
    ) -> io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut ignored_log: HashMap<c_int, RateLimit> = HashMap::new();
                for signal in self.signals.forever() {
                    match (action(signal), &reload) {
                        (Some(Action::Stop), _) => {
                            log!("{}: finishing every file and stopping", name(signal));
                            stop.store(true, Ordering::SeqCst);
                        }
                        (Some(Action::Reload), Some(reload)) => reload(),
                        _ => {
                            let why = if signal == SIGHUP {
                                " (no -listen-policy to reload)"
                            } else {
                                ""
                            };
                            ignored_log
                                .entry(signal)
                                .or_insert_with(|| RateLimit::new(IGNORED_LOG_PERIOD_MS))
                                .log(format_args!(
                                    "{} ignored{why}; SIGTERM, SIGINT or SIGQUIT stop the agent",
                                    name(signal)
                                ));
                        }
                    }
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libc::{
        SIGABRT, SIGBUS, SIGCHLD, SIGCONT, SIGFPE, SIGILL, SIGKILL, SIGSEGV, SIGSYS, SIGTRAP,
        SIGURG, SIGWINCH,
    };

    /// Signals whose default action ends the process (signal(7)).
    const DEFAULT_TERMINATES: [c_int; 23] = [
        SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGKILL, SIGUSR1,
        SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGSTKFLT, SIGXCPU, SIGXFSZ, SIGVTALRM,
        SIGPROF, SIGIO, SIGPWR, SIGSYS,
    ];

    /// Left to the kernel: uncatchable, or a fault of the process itself.
    const LEFT: [c_int; 8] = [
        SIGKILL, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT,
    ];

    #[test]
    fn every_catchable_terminating_signal_stops_in_order_or_is_ignored() {
        for signal in DEFAULT_TERMINATES.into_iter().chain(realtime()) {
            let got = action(signal);
            if LEFT.contains(&signal) {
                assert_eq!(got, None, "{}", name(signal));
            } else {
                assert!(got.is_some(), "{} keeps its default action", name(signal));
            }
        }
        for signal in [SIGTERM, SIGINT, SIGQUIT] {
            assert_eq!(action(signal), Some(Action::Stop));
        }
        for signal in [SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE] {
            assert_eq!(action(signal), Some(Action::Ignore));
        }
        assert_eq!(action(SIGHUP), Some(Action::Reload));
        // Signals that do nothing by default stay that way.
        for signal in [SIGCHLD, SIGWINCH, SIGURG, SIGCONT] {
            assert_eq!(action(signal), None, "{}", name(signal));
        }
    }

    #[test]
    fn signals_are_named_as_the_kernel_documents_them() {
        assert_eq!(name(SIGTERM), "SIGTERM");
        assert_eq!(name(SIGUSR1), "SIGUSR1");
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
    }
}
