//! Cookies the poller closed without a destroy notice (they stayed absent
//! from dumps), remembered for a while: a notice that still comes for one
//! must not open it again as a new connection.

use std::collections::VecDeque;

use ahash::AHashSet;

/// How long a cookie closed by absence is remembered (unix ms). A notice
/// comes within milliseconds of the destruction, which absence-closing
/// waits a grace period (1 s by default) for; ten seconds cover a stalled
/// agent too.
const REMEMBER_MS: i64 = 10_000;

#[derive(Debug, Default)]
pub struct RecentlyClosed {
    cookies: AHashSet<u64>,
    by_age: VecDeque<(i64, u64)>,
}

impl RecentlyClosed {
    pub fn insert(&mut self, cookie: u64, now_ms: i64) {
        if self.cookies.insert(cookie) {
            self.by_age.push_back((now_ms, cookie));
        }
    }

    pub fn contains(&self, cookie: u64) -> bool {
        self.cookies.contains(&cookie)
    }

    /// Forgets the cookies closed more than the remembering time ago.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some(&(closed_ms, cookie)) = self.by_age.front() {
            if now_ms.saturating_sub(closed_ms) < REMEMBER_MS {
                break;
            }
            self.by_age.pop_front();
            self.cookies.remove(&cookie);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_remembered_for_ten_seconds() {
        let mut recent = RecentlyClosed::default();
        recent.insert(7, 1_000);
        recent.insert(8, 5_000);
        recent.expire(10_999);
        assert!(recent.contains(7) && recent.contains(8));
        recent.expire(11_000);
        assert!(!recent.contains(7) && recent.contains(8));
        recent.expire(15_000);
        assert!(!recent.contains(8));
    }
}
