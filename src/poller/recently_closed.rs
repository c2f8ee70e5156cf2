//! Cookies the poller closed, remembered for a while, so that nothing
//! opens them again: a notice that still comes for a socket closed by its
//! absence from dumps, or the afterlife of a destroyed socket — a timewait
//! mini-socket in FIN_WAIT2, which keeps the socket's cookie and shows in
//! dumps (without tcp_info) for up to `tcp_fin_timeout`.

use std::collections::VecDeque;

use ahash::AHashSet;

/// How long a closed cookie is remembered (unix ms): the mini-socket shows
/// in the very next dump, a late notice within milliseconds of the end of
/// an absence grace (1 s by default). At 10,000 closes a second this holds
/// 30,000 cookies (about 1 MB).
const REMEMBER_MS: i64 = 3_000;

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
    fn cookies_are_remembered_for_three_seconds() {
        let mut recent = RecentlyClosed::default();
        recent.insert(7, 1_000);
        recent.insert(8, 2_000);
        recent.expire(3_999);
        assert!(recent.contains(7) && recent.contains(8));
        recent.expire(4_000);
        assert!(!recent.contains(7) && recent.contains(8));
        recent.expire(5_000);
        assert!(!recent.contains(8));
    }
}
