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
        use std::io::Write;
        let t = &self.0;
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let mut nanos = t.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let mut digits = 9;
            while nanos.is_multiple_of(10) {
                nanos /= 10;
                digits -= 1;
            }
            let _ = write!(out, ".{:0width$}", nanos, width = digits);
        }
        let offset = t.offset().local_minus_utc();
        if offset == 0 {
            out.push(b'Z');
        } else {
            let sign = if offset < 0 { '-' } else { '+' };
            let abs = offset.unsigned_abs();
            let _ = write!(out, "{}{:02}:{:02}", sign, abs / 3600, (abs / 60) % 60);
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::with_capacity(40);
        self.write_to(&mut v);
        f.write_str(std::str::from_utf8(&v).map_err(|_| fmt::Error)?)
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
    fn garbage_is_an_error() {
        assert!(Timestamp::parse("yesterday").is_err());
    }
}
