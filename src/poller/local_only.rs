//! The first-run surprise: with the default `-exclude-local`, a host whose
//! only connections are on loopback archives nothing, and nothing says why.
//! Once, some seconds after start (or when a short run ends first), when
//! every connection seen so far was excluded as local, say so and name the
//! flag that changes it.

use std::time::{Duration, Instant};

/// How long after start the notice waits for a connection to archive.
pub const AFTER: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct LocalOnlyNotice {
    due: Instant,
    /// Connections left out because an end is loopback, link-local,
    /// multicast or unspecified.
    local: u64,
    /// A connection was archived (or excluded for another reason): the
    /// exclusion surprised nobody.
    other: bool,
    done: bool,
}

impl LocalOnlyNotice {
    pub fn new(start: Instant) -> Self {
        Self {
            due: start + AFTER,
            local: 0,
            other: false,
            done: false,
        }
    }

    /// A new connection, excluded as local or not.
    pub fn seen(&mut self, excluded_as_local: bool) {
        if excluded_as_local {
            self.local += 1;
        } else {
            self.other = true;
        }
    }

    /// The notice, once: at `now` past the deadline, or at the end of the
    /// run (`ending`), when nothing but local connections were seen.
    pub fn due(&mut self, now: Instant, ending: bool) -> Option<String> {
        if self.done || !(ending || now >= self.due) {
            return None;
        }
        self.done = true;
        (!self.other && self.local > 0).then(|| {
            format!(
                "all {} sockets seen so far were excluded as local (loopback, link-local, multicast or unspecified address) and nothing was archived: -exclude-local=false archives them",
                self.local
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn said_once_when_only_local_connections_were_seen() {
        let start = Instant::now();
        let mut n = LocalOnlyNotice::new(start);
        n.seen(true);
        n.seen(true);
        assert_eq!(n.due(start + Duration::from_secs(1), false), None);
        let line = n.due(start + AFTER, false).unwrap();
        assert!(line.contains("all 2 sockets") && line.contains("-exclude-local=false"));
        assert_eq!(n.due(start + AFTER * 2, true), None, "once");
    }

    #[test]
    fn silent_when_anything_else_was_seen_or_nothing_at_all() {
        let start = Instant::now();
        let mut n = LocalOnlyNotice::new(start);
        n.seen(true);
        n.seen(false);
        assert_eq!(n.due(start + AFTER, false), None);
        let mut empty = LocalOnlyNotice::new(start);
        assert_eq!(empty.due(start + AFTER, false), None);
    }

    #[test]
    fn a_short_run_says_it_when_it_ends() {
        let start = Instant::now();
        let mut n = LocalOnlyNotice::new(start);
        n.seen(true);
        assert!(n.due(start, true).is_some());
    }
}
