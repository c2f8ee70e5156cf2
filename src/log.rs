//! Concise logging to stderr, with a rate limit for messages that can
//! repeat on hot paths.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::clock::unix_millis;

/// Prints one line with a UTC timestamp.
pub fn line(msg: std::fmt::Arguments) {
    eprintln!(
        "{} {}",
        tcpinfo_archive::Timestamp::from_unix_millis(unix_millis()),
        msg
    );
}

#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::line(format_args!($($arg)*)) };
}

/// Lets at most `budget` messages through per `period_ms`, and says how
/// many were suppressed in between. Lock-free: usable on hot paths.
#[derive(Debug)]
pub struct RateLimit {
    period_ms: u64,
    budget: u64,
    window_start_ms: AtomicU64,
    used: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// One message per period.
    pub const fn new(period_ms: u64) -> Self {
        Self::with_budget(1, period_ms)
    }

    /// `budget` messages per period.
    pub const fn with_budget(budget: u64, period_ms: u64) -> Self {
        Self {
            period_ms,
            budget,
            window_start_ms: AtomicU64::new(0),
            used: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed count)` when a message may be printed now.
    pub fn check(&self) -> Option<u64> {
        // Never negative: a clock before 1970 reads as 0.
        let now = unix_millis() as u64;
        let start = self.window_start_ms.load(Relaxed);
        if (start == 0 || now.saturating_sub(start) >= self.period_ms)
            && self
                .window_start_ms
                .compare_exchange(start, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.used.store(0, Relaxed);
        }
        if self.used.fetch_add(1, Relaxed) < self.budget {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }

    /// Logs `msg` if the budget allows.
    pub fn log(&self, msg: std::fmt::Arguments) {
        match self.check() {
            Some(0) => line(msg),
            Some(n) => line(format_args!("{msg} ({n} similar messages suppressed)")),
            None => {}
        }
    }
}

/// Logs through a [`RateLimit`].
#[macro_export]
macro_rules! log_limited {
    ($limit:expr, $($arg:tt)*) => { $limit.log(format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_honours_a_budget_per_period() {
        let r = RateLimit::with_budget(3, 60_000);
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.suppressed.load(Relaxed), 1);
    }

    #[test]
    fn rate_limit_lets_one_through_per_period() {
        let r = RateLimit::new(60_000);
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        assert_eq!(r.suppressed.load(Relaxed), 2);
    }
}
