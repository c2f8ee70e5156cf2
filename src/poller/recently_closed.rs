//! Cookies the poller closed, remembered for a while, so that nothing
//! opens them again: a notice that still comes for a socket closed by its
//! absence from dumps, or the afterlife of a destroyed socket — a timewait
//! mini-socket in FIN_WAIT2, which keeps the socket's cookie and shows in
//! dumps (without tcp_info) for up to `tcp_fin_timeout`.

use std::collections::VecDeque;

use ahash::AHashSet;

/// At most this many cookies are remembered; past it the oldest go first.
const MAX_COOKIES: usize = 1 << 20;

#[derive(Debug)]
pub struct RecentlyClosed {
    /// How long a cookie is remembered (ms).
    remember_ms: i64,
    cookies: AHashSet<u64>,
    by_age: VecDeque<(i64, u64)>,
}

impl RecentlyClosed {
    pub fn new(remember_ms: i64) -> Self {
        Self {
            remember_ms,
            cookies: AHashSet::new(),
            by_age: VecDeque::new(),
        }
    }

    pub fn insert(&mut self, cookie: u64, now_ms: i64) {
        if self.cookies.insert(cookie) {
            self.by_age.push_back((now_ms, cookie));
        }
        while self.cookies.len() > MAX_COOKIES {
            match self.by_age.pop_front() {
                Some((_, oldest)) => self.cookies.remove(&oldest),
                None => break,
            };
        }
    }

    /// Forgets `cookie`; whether it was remembered.
    pub fn remove(&mut self, cookie: u64) -> bool {
        // Its place in `by_age` goes when it expires.
        self.cookies.remove(&cookie)
    }

    pub fn contains(&self, cookie: u64) -> bool {
        self.cookies.contains(&cookie)
    }

    /// Forgets the cookies closed more than the remembering time ago.
    pub fn expire(&mut self, now_ms: i64) {
        while let Some(&(closed_ms, cookie)) = self.by_age.front() {
            if now_ms.saturating_sub(closed_ms) < self.remember_ms {
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
    fn a_removed_cookie_is_forgotten_at_once() {
        let mut recent = RecentlyClosed::new(3_000);
        recent.insert(7, 1_000);
        assert!(recent.remove(7));
        assert!(!recent.contains(7) && !recent.remove(7));
    }

    #[test]
    fn cookies_are_remembered_for_three_seconds() {
        let mut recent = RecentlyClosed::new(3_000);
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
