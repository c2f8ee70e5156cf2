//! Whether the archive is being written: what `/-/ready` and
//! `tcpinfo_ready` say once the first poll is done.
//!
//! The poller's observer samples the writers' counters about once a
//! second ([`ArchiveHealth::sample`]); a scrape or a readiness probe reads
//! the verdict. Writers retry a failing file at growing intervals (up to 16
//! flush intervals apart), so a problem seen once is remembered until a
//! sample shows the same thing working again, or until nothing has failed
//! for [`FORGET_AFTER`] (no more files to create, say).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock::lock;
use crate::stats::Stats;

/// How long a failure is remembered when nothing shows the archive working
/// again.
pub const FORGET_AFTER: Duration = Duration::from_secs(60);

/// Mean poll interval, over a sample, past which polls are "falling
/// behind": this many times the target.
pub const BEHIND_FACTOR: u64 = 10;

/// ... and at least this long: a short interval on a busy machine
/// stretching to a few tens of milliseconds is not yet trouble.
pub const BEHIND_MIN: Duration = Duration::from_millis(250);

/// The counters one sample reads (totals since start).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub written: u64,
    pub write_errors: u64,
    pub files_opened: u64,
    pub open_errors: u64,
    pub dropped: u64,
    pub polls: u64,
    pub poll_interval_us: u64,
}

/// One kind of trouble: when it was last seen, and what was said.
#[derive(Debug, Default)]
struct Problem {
    seen: Option<Instant>,
    reason: String,
}

impl Problem {
    fn report(&mut self, now: Instant, reason: String) {
        self.seen = Some(now);
        self.reason = reason;
    }

    fn clear(&mut self) {
        self.seen = None;
    }

    fn active(&self, now: Instant) -> Option<&str> {
        self.seen
            .filter(|&seen| now.saturating_duration_since(seen) < FORGET_AFTER)
            .map(|_| self.reason.as_str())
    }
}

/// The archive's health, from successive samples of the counters.
#[derive(Debug)]
pub struct ArchiveHealth {
    poll_target: Duration,
    last: Option<(Instant, Counters)>,
    writes: Problem,
    opens: Problem,
    drops: Problem,
    polls: Problem,
}

impl ArchiveHealth {
    pub fn new(poll_target: Duration) -> Self {
        ArchiveHealth {
            poll_target,
            last: None,
            writes: Problem::default(),
            opens: Problem::default(),
            drops: Problem::default(),
            polls: Problem::default(),
        }
    }

    /// Takes a sample of the counters at `now`.
    pub fn sample(&mut self, now: Instant, c: Counters) {
        let Some((_, prev)) = self.last.replace((now, c)) else {
            return;
        };
        let d = |f: fn(&Counters) -> u64| f(&c).saturating_sub(f(&prev));
        let (written, write_errors) = (d(|c| c.written), d(|c| c.write_errors));
        if write_errors > 0 && written == 0 {
            self.writes.report(
                now,
                format!("archive writes failing ({write_errors} write errors, nothing written)"),
            );
        } else if written > 0 && write_errors == 0 {
            self.writes.clear();
        }
        let (opened, open_errors) = (d(|c| c.files_opened), d(|c| c.open_errors));
        if open_errors > 0 && opened == 0 {
            self.opens.report(
                now,
                format!(
                    "archive files cannot be created ({open_errors} open errors, none created)"
                ),
            );
        } else if opened > 0 && open_errors == 0 {
            self.opens.clear();
        }
        let dropped = d(|c| c.dropped);
        if dropped > 0 {
            self.drops
                .report(now, format!("archive records dropped ({dropped})"));
        }
        if let Some(mean_us) = d(|c| c.poll_interval_us).checked_div(d(|c| c.polls)) {
            let mean = Duration::from_micros(mean_us);
            let limit = BEHIND_MIN.max(self.poll_target * BEHIND_FACTOR as u32);
            if mean > limit {
                self.polls.report(
                    now,
                    format!(
                        "polls falling behind (mean interval {}ms, target {}ms)",
                        mean.as_millis(),
                        self.poll_target.as_millis()
                    ),
                );
            } else {
                self.polls.clear();
            }
        }
    }

    /// Why the archive is not healthy at `now`, the first reason of
    /// several; `None` when it is.
    pub fn problem(&self, now: Instant) -> Option<String> {
        [&self.writes, &self.opens, &self.drops, &self.polls]
            .into_iter()
            .find_map(|p| p.active(now))
            .map(str::to_owned)
    }
}

/// Shortest time without a complete poll that counts as stalled.
pub const STALL_MIN: Duration = Duration::from_secs(5);

/// How often the observer samples the counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// Readiness as `/-/ready` and `tcpinfo_ready` report it: the first
/// complete poll, polls still completing, and the archive's health.
#[derive(Debug)]
pub struct Readiness {
    stats: Arc<Stats>,
    /// A complete poll ran.
    polled: AtomicBool,
    /// Nanoseconds from `epoch` to the end of the last complete poll.
    last_poll_ns: AtomicU64,
    epoch: Instant,
    health: Mutex<ArchiveHealth>,
    poll_target_us: AtomicU64,
}

impl Readiness {
    pub fn new(stats: Arc<Stats>) -> Self {
        let target = Duration::from_millis(10);
        Readiness {
            stats,
            polled: AtomicBool::new(false),
            last_poll_ns: AtomicU64::new(0),
            epoch: Instant::now(),
            health: Mutex::new(ArchiveHealth::new(target)),
            poll_target_us: AtomicU64::new(target.as_micros() as u64),
        }
    }

    /// The poll interval the agent aims at (`-poll-interval`).
    pub fn set_poll_target(&self, target: Duration) {
        self.poll_target_us
            .store(target.as_micros() as u64, Relaxed);
        lock(&self.health).poll_target = target;
    }

    pub fn poll_target(&self) -> Duration {
        Duration::from_micros(self.poll_target_us.load(Relaxed))
    }

    /// A complete poll ended at `now`.
    pub fn polled(&self, now: Instant) {
        self.last_poll_ns.store(
            now.saturating_duration_since(self.epoch).as_nanos() as u64,
            Relaxed,
        );
        self.polled.store(true, Relaxed);
    }

    /// Samples the writers' counters (see [`ArchiveHealth::sample`]).
    pub fn sample(&self, now: Instant) {
        let s = &self.stats;
        let c = Counters {
            written: s.written.load(Relaxed),
            write_errors: s.write_errors.load(Relaxed),
            files_opened: s.files_opened.load(Relaxed),
            open_errors: s.open_errors.load(Relaxed),
            dropped: s.dropped.load(Relaxed),
            polls: s.polls.load(Relaxed),
            poll_interval_us: s.poll_interval_us.load(Relaxed),
        };
        lock(&self.health).sample(now, c);
    }

    /// `Ok` when ready; otherwise the one-line reason.
    pub fn check(&self, now: Instant) -> Result<(), String> {
        if !self.polled.load(Relaxed) {
            return Err("no complete poll yet".into());
        }
        let last = self.epoch + Duration::from_nanos(self.last_poll_ns.load(Relaxed));
        let since = now.saturating_duration_since(last);
        let stall = STALL_MIN.max(self.poll_target() * BEHIND_FACTOR as u32);
        if since > stall {
            return Err(format!(
                "polls stalled (last complete poll {}s ago)",
                since.as_secs()
            ));
        }
        match lock(&self.health).problem(now) {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn counters(written: u64, write_errors: u64) -> Counters {
        Counters {
            written,
            write_errors,
            ..Counters::default()
        }
    }

    #[test]
    fn failing_writes_are_reported_until_a_write_succeeds() {
        let t0 = Instant::now();
        let mut h = ArchiveHealth::new(Duration::from_millis(10));
        h.sample(t0, counters(100, 0));
        h.sample(t0 + S, counters(200, 0));
        assert_eq!(h.problem(t0 + S), None);
        h.sample(t0 + 2 * S, counters(200, 3));
        let why = "archive writes failing (3 write errors, nothing written)";
        assert_eq!(h.problem(t0 + 2 * S).as_deref(), Some(why));
        // Between two retries nothing moves: still failing.
        h.sample(t0 + 3 * S, counters(200, 3));
        assert_eq!(h.problem(t0 + 3 * S).as_deref(), Some(why));
        h.sample(t0 + 4 * S, counters(250, 3));
        assert_eq!(h.problem(t0 + 4 * S), None);
    }

    #[test]
    fn a_failure_not_seen_again_is_forgotten() {
        let t0 = Instant::now();
        let mut h = ArchiveHealth::new(Duration::from_millis(10));
        let c = |files_opened, open_errors| Counters {
            files_opened,
            open_errors,
            ..Counters::default()
        };
        h.sample(t0, c(5, 0));
        h.sample(t0 + S, c(5, 2));
        assert_eq!(
            h.problem(t0 + S).as_deref(),
            Some("archive files cannot be created (2 open errors, none created)")
        );
        assert!(h.problem(t0 + S + FORGET_AFTER - S).is_some());
        assert_eq!(h.problem(t0 + S + FORGET_AFTER), None);
    }

    #[test]
    fn drops_and_slow_polls_are_reported() {
        let t0 = Instant::now();
        let mut h = ArchiveHealth::new(Duration::from_millis(10));
        let c = |dropped, polls, poll_interval_us| Counters {
            dropped,
            polls,
            poll_interval_us,
            ..Counters::default()
        };
        h.sample(t0, c(0, 0, 0));
        // 100 polls of 10 ms: on target.
        h.sample(t0 + S, c(0, 100, 1_000_000));
        assert_eq!(h.problem(t0 + S), None);
        // 20 polls of 50 ms: five times the target, under the minimum.
        h.sample(t0 + 2 * S, c(0, 120, 2_000_000));
        assert_eq!(h.problem(t0 + 2 * S), None);
        // 2 polls of 500 ms.
        h.sample(t0 + 2 * S, c(0, 122, 3_000_000));
        assert_eq!(
            h.problem(t0 + 2 * S).as_deref(),
            Some("polls falling behind (mean interval 500ms, target 10ms)")
        );
        h.sample(t0 + 3 * S, c(7, 222, 4_000_000));
        assert_eq!(
            h.problem(t0 + 3 * S).as_deref(),
            Some("archive records dropped (7)")
        );
    }
}
