//! Go's `time.ParseDuration`, in integer nanoseconds as Go computes it: a
//! value beyond Go's `Duration` (an `int64` of nanoseconds, about 292
//! years) is an error, never a panic or a wrap.

use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("invalid duration {0:?} (examples: 10ms, 1s, 1m30s)")]
    Invalid(String),
    #[error("missing unit in duration {0:?} (units: ns, us, ms, s, m, h)")]
    MissingUnit(String),
    #[error("unknown unit {unit:?} in duration {text:?} (units: ns, us, ms, s, m, h)")]
    UnknownUnit { unit: String, text: String },
    #[error("duration {0:?} is negative")]
    Negative(String),
    #[error("duration {0:?} is too long (at most 2562047h47m16.854775807s)")]
    TooLong(String),
}

/// The largest magnitude Go's arithmetic carries: `1 << 63` nanoseconds
/// (the most negative `Duration`); positive results stop one below it.
const LIMIT: u64 = 1 << 63;

/// Parses a Go duration: an optionally signed sequence of decimal numbers,
/// each with an optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`,
/// `s`, `m`, `h`), such as `300ms`, `1.5h` or `2h45m`; `0` needs no unit.
/// A negative duration is an error: a `std::time::Duration` cannot hold it.
pub fn parse_go_duration(text: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(text.to_owned());
    let too_long = || DurationError::TooLong(text.to_owned());
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        if !rest.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, after) = split_digits(rest);
        let whole_value = leading_int(whole).ok_or_else(too_long)?;
        rest = after;
        let (mut fraction, mut scale, mut has_fraction) = (0, 1.0, false);
        if let Some(after_point) = rest.strip_prefix('.') {
            let (digits, after) = split_digits(after_point);
            (fraction, scale) = leading_fraction(digits);
            has_fraction = !digits.is_empty();
            rest = after;
        }
        if whole.is_empty() && !has_fraction {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(text.to_owned()));
        }
        let (unit, after) = rest.split_at(unit_len);
        rest = after;
        let per_unit: u64 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(DurationError::UnknownUnit {
                    unit: unit.to_owned(),
                    text: text.to_owned(),
                })
            }
        };
        let mut value = whole_value
            .checked_mul(per_unit)
            .filter(|&v| v <= LIMIT)
            .ok_or_else(too_long)?;
        if fraction > 0 {
            // As Go: a float for the fraction, exact to the nanosecond even
            // for hours; the product is at most 3.6e12, so the cast is exact.
            value += (fraction as f64 * (per_unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(too_long());
            }
        }
        total = total
            .checked_add(value)
            .filter(|&t| t <= LIMIT)
            .ok_or_else(too_long)?;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative(text.to_owned()));
    }
    if total >= LIMIT {
        return Err(too_long());
    }
    Ok(Duration::from_nanos(total))
}

/// The leading ASCII digits of `s`, and the rest.
fn split_digits(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    s.split_at(n)
}

/// The value of `digits`, or `None` beyond [`LIMIT`].
fn leading_int(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |x, d| {
        x.checked_mul(10)
            .and_then(|x| x.checked_add(u64::from(d - b'0')))
            .filter(|&x| x <= LIMIT)
    })
}

/// A fraction's digits as `(value, 10^digits used)`. Like Go, digits past
/// what fits are dropped rather than an error: they are below a nanosecond.
fn leading_fraction(digits: &str) -> (u64, f64) {
    let (mut value, mut scale) = (0u64, 1.0);
    for d in digits.bytes() {
        let next = match value.checked_mul(10) {
            Some(v) if value <= (LIMIT - 1) / 10 => v + u64::from(d - b'0'),
            _ => break,
        };
        if next > LIMIT {
            break;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse_go_duration(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn go_durations() {
        assert_eq!(ok("10ms"), Duration::from_millis(10));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("0"), Duration::ZERO);
        for bad in ["", "10", "ms", "1x", "1..5s", "-1s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5 parsecs").is_err());
    }

    #[test]
    fn every_go_form_is_accepted() {
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("-0s"), Duration::ZERO);
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("1\u{b5}s"), Duration::from_micros(1));
        assert_eq!(ok("1\u{3bc}s"), Duration::from_micros(1));
        assert_eq!(ok("2h45m0.5s7ns"), Duration::new(9900, 500_000_007));
        assert_eq!(ok("1.000000001s"), Duration::new(1, 1));
        // Digits beyond a nanosecond are dropped, as in Go.
        assert_eq!(ok("0.0000000019s"), Duration::from_nanos(1));
        assert_eq!(
            ok("1.00000000000000000000000000001s"),
            Duration::from_secs(1)
        );
        assert_eq!(ok("0.1h"), Duration::from_secs(360));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let err = |t: &str| parse_go_duration(t).unwrap_err();
        assert_eq!(err("5"), DurationError::MissingUnit("5".into()));
        assert_eq!(err("1.5"), DurationError::MissingUnit("1.5".into()));
        assert_eq!(
            err("5 parsecs"),
            DurationError::UnknownUnit {
                unit: " parsecs".into(),
                text: "5 parsecs".into()
            }
        );
        assert_eq!(
            err("1h-5m"),
            DurationError::UnknownUnit {
                unit: "h-".into(),
                text: "1h-5m".into()
            }
        );
        assert_eq!(err("-1s"), DurationError::Negative("-1s".into()));
        for invalid in ["", "+", "-", ".s", "s", "1..5s"] {
            assert!(
                matches!(
                    err(invalid),
                    DurationError::Invalid(_) | DurationError::MissingUnit(_)
                ),
                "{invalid:?}: {:?}",
                err(invalid)
            );
        }
    }

    #[test]
    fn the_largest_go_duration_parses_and_anything_larger_is_an_error() {
        let max = Duration::from_nanos(i64::MAX as u64);
        assert_eq!(ok("9223372036854775807ns"), max);
        assert_eq!(ok("2562047h47m16.854775807s"), max);
        for too_long in [
            "9223372036854775808ns",
            "2562048h",
            "2562047h47m16.854775808s",
            "99999999999999999999999h",
            "99999999999999999999999999999999999999999ns",
            "5124094h5124094h",
            "9223372036854775807ns1ns",
        ] {
            assert!(
                matches!(parse_go_duration(too_long), Err(DurationError::TooLong(_))),
                "{too_long}: {:?}",
                parse_go_duration(too_long)
            );
        }
    }
}
