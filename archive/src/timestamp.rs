//! Timestamps as Go's `encoding/json` writes `time.Time`: RFC 3339 with up to
//! nine fraction digits, trailing zeros dropped, `Z` for UTC, and the
//! original offset kept otherwise. Older archives carry offsets and
//! nanoseconds; round-tripping them must not change a byte.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike, Utc};

/// A point in time with the UTC offset it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timestamp(DateTime<FixedOffset>);

/// Go's zero `time.Time`, the timestamp of every metadata line.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {0:?}")]
pub struct TimestampError(pub String);

impl Timestamp {
    pub fn parse(text: &str) -> Result<Self, TimestampError> {
        DateTime::parse_from_rfc3339(text)
            .map(Timestamp)
            .map_err(|_| TimestampError(text.to_string()))
    }

    /// A UTC time from milliseconds since the Unix epoch.
    pub fn from_unix_millis(ms: i64) -> Self {
        let utc = Utc
            .timestamp_millis_opt(ms)
            .single()
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
        Timestamp(utc.fixed_offset())
    }

    pub fn unix_millis(&self) -> i64 {
        self.0.timestamp_millis()
    }

    /// Microseconds since the Unix epoch (finer digits are dropped).
    pub fn unix_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// Go's zero time (year 1): what metadata lines carry.
    pub fn is_go_zero(&self) -> bool {
        self.0.year() == 1 && self.0.timestamp_subsec_nanos() == 0 && self.0.ordinal() == 1
    }

    pub fn as_datetime(&self) -> &DateTime<FixedOffset> {
        &self.0
    }

    /// The UTC calendar date `(year, month, day)`, for date directories.
    pub fn utc_date(&self) -> (i32, u32, u32) {
        let u = self.0.with_timezone(&Utc);
        (u.year(), u.month(), u.day())
    }

    /// Appends the Go RFC3339Nano rendering to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.rfc3339().as_bytes());
    }

    /// Go's `time.RFC3339Nano` rendering (what `encoding/json` writes):
    /// `2019-04-02T14:12:37.511Z`, `2019-08-26T19:55:42.754686952-04:00`.
    pub fn rfc3339(&self) -> TimestampText {
        let mut text = TimestampText::new();
        self.push_date_time(&mut text, b'T');
        let offset = self.0.offset().local_minus_utc();
        if offset == 0 {
            text.push(b'Z');
        } else {
            push_offset(&mut text, offset, true);
        }
        text
    }

    /// Go's `time.Time.String()`: `2019-04-02 14:12:37.511 +0000 UTC`; a
    /// zone other than UTC has no name here, so Go repeats its offset
    /// (`-0400 -0400`).
    pub fn go_string(&self) -> TimestampText {
        let mut text = TimestampText::new();
        self.push_date_time(&mut text, b' ');
        text.push(b' ');
        let offset = self.0.offset().local_minus_utc();
        push_offset(&mut text, offset, false);
        text.push(b' ');
        if offset == 0 {
            text.extend(b"UTC");
        } else {
            push_offset(&mut text, offset, false);
        }
        text
    }

    /// `YYYY-MM-DD<sep>hh:mm:ss` and the fraction, trailing zeros dropped.
    fn push_date_time(&self, text: &mut TimestampText, sep: u8) {
        let t = &self.0;
        match u32::try_from(t.year()) {
            Ok(year) if year <= 9999 => text.digits(year, 4),
            // Outside RFC 3339 (only from_unix_millis reaches it).
            _ => {
                use fmt::Write as _;
                let _ = write!(text, "{:04}", t.year());
            }
        }
        text.push(b'-');
        text.digits(t.month(), 2);
        text.push(b'-');
        text.digits(t.day(), 2);
        text.push(sep);
        text.digits(t.hour(), 2);
        text.push(b':');
        text.digits(t.minute(), 2);
        text.push(b':');
        text.digits(t.second(), 2);
        // A leap second is carried in the nanoseconds.
        let mut nanos = t.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let mut width = 9;
            while nanos.is_multiple_of(10) {
                nanos /= 10;
                width -= 1;
            }
            text.push(b'.');
            text.digits(nanos, width);
        }
    }
}

/// `±hh:mm` (RFC 3339) or `±hhmm` (Go's `String`).
fn push_offset(text: &mut TimestampText, offset: i32, colon: bool) {
    text.push(if offset < 0 { b'-' } else { b'+' });
    let abs = offset.unsigned_abs();
    text.digits(abs / 3600, 2);
    if colon {
        text.push(b':');
    }
    text.digits((abs / 60) % 60, 2);
}

/// A rendered timestamp, on the stack: formatting one allocates nothing.
#[derive(Clone, Copy)]
pub struct TimestampText {
    buf: [u8; 64],
    len: usize,
}

impl TimestampText {
    fn new() -> Self {
        TimestampText {
            buf: [0; 64],
            len: 0,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    /// Appends what fits (the longest text is under 50 bytes).
    fn extend(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn push(&mut self, b: u8) {
        self.extend(&[b]);
    }

    /// `v` as exactly `width` decimal digits (zero-padded, high digits cut).
    fn digits(&mut self, mut v: u32, width: usize) {
        let mut digits = [b'0'; 10];
        let width = width.min(digits.len());
        for slot in digits[..width].iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.extend(&digits[..width]);
    }
}

impl fmt::Write for TimestampText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.extend(s.as_bytes());
        Ok(())
    }
}

impl fmt::Display for TimestampText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TimestampText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rfc3339().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats_round_trip_unchanged() {
        for s in [
            "2019-04-02T14:12:37.511Z",
            "2019-08-26T19:55:42.754686952-04:00",
            "2019-04-02T14:12:37.51Z",
            "2019-04-02T14:12:37Z",
            "2019-04-02T14:12:37.000000001+05:30",
            GO_ZERO_TIME,
        ] {
            assert_eq!(Timestamp::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn millis_render_like_go_truncated_time() {
        assert_eq!(
            Timestamp::from_unix_millis(1_554_214_357_510).to_string(),
            "2019-04-02T14:12:37.51Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(1_554_214_357_000).to_string(),
            "2019-04-02T14:12:37Z"
        );
    }

    #[test]
    fn zero_time_is_recognised() {
        assert!(Timestamp::parse(GO_ZERO_TIME).unwrap().is_go_zero());
        assert!(!Timestamp::from_unix_millis(0).is_go_zero());
    }

    #[test]
    fn times_print_like_go_time_string() {
        let t = Timestamp::parse("2019-04-02T14:12:37.511Z").unwrap();
        assert_eq!(
            t.go_string().to_string(),
            "2019-04-02 14:12:37.511 +0000 UTC"
        );
        let t = Timestamp::parse("2019-08-26T19:55:42-04:00").unwrap();
        assert_eq!(t.go_string().to_string(), "2019-08-26 19:55:42 -0400 -0400");
        let t = Timestamp::parse("2019-08-26T19:55:42.000000001+05:30").unwrap();
        assert_eq!(
            t.go_string().as_str(),
            "2019-08-26 19:55:42.000000001 +0530 +0530"
        );
    }

    #[test]
    fn years_beyond_rfc_3339_still_render() {
        let far = Timestamp::from_unix_millis(400_000_000_000_000);
        assert_eq!(far.to_string(), "14645-06-30T15:06:40Z");
        let before = Timestamp::from_unix_millis(-62_200_000_000_000);
        assert_eq!(before.to_string(), "-002-12-17T14:13:20Z");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
