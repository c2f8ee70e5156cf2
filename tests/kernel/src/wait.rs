//! Waiting for a condition with a deadline. Tests never sleep a fixed time
//! hoping that something has happened: they poll for it, and fail naming
//! what they waited for once the deadline passes.

use std::thread;
use std::time::{Duration, Instant};

/// The longest pause between two polls. Most conditions hold within
/// milliseconds, so polling starts at 1 ms and backs off to this.
const MAX_PAUSE: Duration = Duration::from_millis(20);

/// Polls `probe` until it returns `Ok`, and returns that value; once
/// `timeout` has passed, panics naming `what` and the last `Err` (say, the
/// state last seen).
pub fn wait_for_ok<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        let last = match probe() {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}{}{last}",
            if last.is_empty() { "" } else { "; last seen: " }
        );
        thread::sleep(pause);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// Polls `probe` until it returns `Some`, and returns that value; panics
/// naming `what` once `timeout` has passed.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    wait_for_ok(timeout, what, || probe().ok_or_else(String::new))
}

/// Polls `condition` until it holds; panics naming `what` once `timeout`
/// has passed.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(timeout, what, || condition().then_some(()))
}
