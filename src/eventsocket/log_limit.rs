//! A log line budget: at most `per_window` lines per `window`, the rest
//! counted and reported once the next window opens. A local process that
//! connects in a loop must not be able to flood the agent's log.

use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) struct LogLimiter {
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    window_start: Instant,
    printed: u32,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) fn new(per_window: u32, window: Duration) -> Self {
        LogLimiter {
            per_window,
            window,
            state: Mutex::new(State {
                window_start: Instant::now(),
                printed: 0,
                suppressed: 0,
            }),
        }
    }

    /// Logs `eventsocket: <line>` (timestamped, stderr) unless this window's budget is
    /// spent.
    pub(crate) fn log(&self, line: fmt::Arguments<'_>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(state.window_start) >= self.window {
            if state.suppressed > 0 {
                crate::log::line(format_args!(
                    "eventsocket: {} similar log lines suppressed",
                    state.suppressed
                ));
            }
            state.window_start = now;
            state.printed = 0;
            state.suppressed = 0;
        }
        if state.printed < self.per_window {
            state.printed += 1;
            crate::log::line(format_args!("eventsocket: {line}"));
        } else {
            state.suppressed += 1;
        }
    }
}
