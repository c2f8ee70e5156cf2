//! Concise logging to stderr: a level and a format chosen once at start
//! (`-log.level`, `-log.format`), fixed-width UTC timestamps, and a rate
//! limit for messages that can repeat on hot paths.
//!
//! Formats (one line per message):
//! - `plain` (default): `2026-11-30T01:30:40.123Z message`, as before
//!   levels existed; warnings and errors carry `warning: ` / `error: `.
//! - `logfmt`: `ts=2026-11-30T01:30:40.123Z level=info msg="message"`.
//! - `json`: `{"ts":"2026-11-30T01:30:40.123Z","level":"info","msg":"message"}`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::clock::unix_millis;

/// How much is logged (`-log.level`): a message is printed when its level is
/// at least this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// How each line is written (`-log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `<timestamp> <message>`, for people.
    Plain,
    /// `ts=… level=… msg="…"`, for Loki, Vector and friends.
    Logfmt,
    /// One JSON object per line (`ts`, `level`, `msg`).
    Json,
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static FORMAT: AtomicU8 = AtomicU8::new(Format::Plain as u8);

/// Sets the level and format for the rest of the process (called once at
/// start, before any thread logs).
pub fn init(level: Level, format: Format) {
    LEVEL.store(level as u8, Relaxed);
    FORMAT.store(format as u8, Relaxed);
}

/// Whether a message at `level` is printed.
pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Relaxed)
}

fn format() -> Format {
    match FORMAT.load(Relaxed) {
        x if x == Format::Logfmt as u8 => Format::Logfmt,
        x if x == Format::Json as u8 => Format::Json,
        _ => Format::Plain,
    }
}

/// A UTC time as `YYYY-MM-DDTHH:MM:SS.mmmZ`: always 24 characters, so that
/// columns line up (the archive's Go-style timestamps drop trailing zeros).
pub fn fixed_width_timestamp(unix_ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(unix_ms) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        None => "0000-00-00T00:00:00.000Z".to_owned(),
    }
}

/// One line in `format`, without the newline.
pub fn render(format: Format, unix_ms: i64, level: Level, msg: std::fmt::Arguments) -> String {
    let ts = fixed_width_timestamp(unix_ms);
    let mut out = String::with_capacity(96);
    match format {
        Format::Plain => {
            let prefix = match level {
                Level::Warn => "warning: ",
                Level::Error => "error: ",
                Level::Debug => "debug: ",
                Level::Info => "",
            };
            let _ = write!(out, "{ts} {prefix}{msg}");
        }
        Format::Logfmt => {
            let text = msg.to_string();
            let _ = write!(out, "ts={ts} level={} msg=", level.as_str());
            logfmt_value(&mut out, &text);
        }
        Format::Json => {
            let line = serde_json::json!({
                "ts": ts,
                "level": level.as_str(),
                "msg": msg.to_string(),
            });
            out.push_str(&line.to_string());
        }
    }
    out
}

/// A logfmt value: bare when it needs no quoting, else quoted with `"` and
/// `\` escaped and control characters as escapes.
fn logfmt_value(out: &mut String, text: &str) {
    let bare = !text.is_empty()
        && !text
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || c.is_control());
    if bare {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Prints one line at `level`, if enabled.
pub fn at(level: Level, msg: std::fmt::Arguments) {
    if !enabled(level) {
        return;
    }
    let mut line = render(format(), unix_millis(), level, msg);
    line.push('\n');
    // One write per line, so that threads' lines never interleave.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Prints one line at the info level.
pub fn line(msg: std::fmt::Arguments) {
    at(Level::Info, msg);
}

/// An info line.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::at($crate::log::Level::Info, format_args!($($arg)*)) };
}

/// A debug line (`-log.level=debug` or Go's `-logx.debug`).
#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)*) => { $crate::log::at($crate::log::Level::Debug, format_args!($($arg)*)) };
}

/// A warning: something is wrong but the agent carries on.
#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::log::at($crate::log::Level::Warn, format_args!($($arg)*)) };
}

/// An error: the agent stops, or loses data.
#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log::at($crate::log::Level::Error, format_args!($($arg)*)) };
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
        self.log_at(Level::Info, msg)
    }

    /// Logs `msg` at `level` if the budget allows (a message below the
    /// level uses none of it).
    pub fn log_at(&self, level: Level, msg: std::fmt::Arguments) {
        if !enabled(level) {
            return;
        }
        match self.check() {
            Some(0) => at(level, msg),
            Some(n) => at(
                level,
                format_args!("{msg} ({n} similar messages suppressed)"),
            ),
            None => {}
        }
    }
}

/// Logs through a [`RateLimit`].
#[macro_export]
macro_rules! log_limited {
    ($limit:expr, $($arg:tt)*) => { $limit.log(format_args!($($arg)*)) };
}

/// A warning through a [`RateLimit`]: something failed on a hot path
/// (a write, a dump) and is retried or counted.
#[macro_export]
macro_rules! warn_limited {
    ($limit:expr, $($arg:tt)*) => { $limit.log_at($crate::log::Level::Warn, format_args!($($arg)*)) };
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
    fn timestamps_are_fixed_width() {
        assert_eq!(fixed_width_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            fixed_width_timestamp(1_554_214_357_510),
            "2019-04-02T14:12:37.510Z"
        );
        assert_eq!(
            fixed_width_timestamp(1_554_214_357_000).len(),
            fixed_width_timestamp(1_554_214_357_511).len()
        );
    }

    #[test]
    fn each_format_writes_one_parseable_line() {
        let ms = 1_554_214_357_500;
        assert_eq!(
            render(
                Format::Plain,
                ms,
                Level::Info,
                format_args!("serving on {}", 9990)
            ),
            "2019-04-02T14:12:37.500Z serving on 9990"
        );
        assert_eq!(
            render(Format::Plain, ms, Level::Warn, format_args!("disk full")),
            "2019-04-02T14:12:37.500Z warning: disk full"
        );
        assert_eq!(
            render(
                Format::Logfmt,
                ms,
                Level::Warn,
                format_args!("a \"b\"\nc=d")
            ),
            r#"ts=2019-04-02T14:12:37.500Z level=warn msg="a \"b\"\nc=d""#
        );
        assert_eq!(
            render(Format::Logfmt, ms, Level::Debug, format_args!("x")),
            "ts=2019-04-02T14:12:37.500Z level=debug msg=x"
        );
        let json = render(
            Format::Json,
            ms,
            Level::Error,
            format_args!("a \"quote\"\n"),
        );
        assert!(!json.contains('\n'), "{json}");
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["ts"], "2019-04-02T14:12:37.500Z");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "a \"quote\"\n");
    }

    #[test]
    fn levels_order_from_debug_to_error() {
        assert!(Level::Debug < Level::Info && Level::Info < Level::Warn);
        assert!(Level::Warn < Level::Error);
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
