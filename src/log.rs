//! Concise logging to stderr, with a rate limit for messages that can
//! repeat on hot paths.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints one line with a UTC timestamp.
pub fn line(msg: std::fmt::Arguments) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    eprintln!(
        "{} {}",
        crate::archive::Timestamp::from_unix_millis(now),
        msg
    );
}

#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::line(format_args!($($arg)*)) };
}

/// Lets a message through at most once per `period_ms`, and says how many
/// were suppressed in between.
#[derive(Debug)]
pub struct RateLimit {
    period_ms: u64,
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub const fn new(period_ms: u64) -> Self {
        Self {
            period_ms,
            last_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(suppressed count)` when a message may be printed now.
    pub fn check(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let last = self.last_ms.load(Relaxed);
        if last != 0 && now.saturating_sub(last) < self.period_ms {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        if self
            .last_ms
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Relaxed))
    }
}

/// Logs through a [`RateLimit`].
#[macro_export]
macro_rules! log_limited {
    ($limit:expr, $($arg:tt)*) => {
        if let Some(suppressed) = $limit.check() {
            if suppressed > 0 {
                $crate::log::line(format_args!("{} ({} similar messages suppressed)", format_args!($($arg)*), suppressed));
            } else {
                $crate::log::line(format_args!($($arg)*));
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_one_through_per_period() {
        let r = RateLimit::new(60_000);
        assert_eq!(r.check(), Some(0));
        assert_eq!(r.check(), None);
        assert_eq!(r.check(), None);
        assert_eq!(r.suppressed.load(Relaxed), 2);
    }
}
