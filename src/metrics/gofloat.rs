//! Numbers in the text exposition exactly as Go's Prometheus client writes
//! them, so that `le` label values (which recording rules, dashboards and
//! `histogram_quantile` selectors match as strings) are the Go tool's.
//!
//! Go writes a float with `strconv.FormatFloat(v, 'g', -1, 64)`: the
//! shortest decimal that reads back as the same float, in exponent form
//! (`1e+06`, `1.58e+09`, `1e-05`) when the decimal exponent is below -4 or
//! 6 and more. Rust's `Display` picks the same shortest digits but never
//! uses an exponent (`1000000`).

/// `v` as Go's `strconv.FormatFloat(v, 'g', -1, 64)` (and the client's
/// `+Inf`, `-Inf`, `NaN`).
pub fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `1.58e9`.
    let sci = format!("{:e}", v.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if v < 0.0 { "-" } else { "" };
    // Go: %e when the exponent is below -4 or at least 6.
    if !(-4..6).contains(&exp) {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        format!("{sign}{first}{point}{rest}e{exp_sign}{:02}", exp.abs())
    } else if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        format!("{sign}0.{zeros}{digits}")
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            let (int, frac) = digits.split_at(int_len);
            format!("{sign}{int}.{frac}")
        }
    }
}

/// Go's `prometheus.LinearBuckets`: each bound is the previous one plus
/// `width`, accumulated in floating point as Go does (so the tenth of
/// `LinearBuckets(0, .001, 30)` is `0.010000000000000002`, not `0.01`).
pub fn go_linear_buckets(start: f64, width: f64, count: usize) -> Vec<f64> {
    let mut next = start;
    (0..count)
        .map(|_| {
            let bound = next;
            next += width;
            bound
        })
        .collect()
}

/// Rewrites every `le="…"` label value of rendered exposition text into
/// Go's spelling. The encoder always puts `le` last, after `{` or `,`; a
/// quote inside another label's value is escaped (`\"`), so the pattern
/// cannot start inside one.
pub fn go_le_labels(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 16);
    let mut rest = text;
    while let Some(at) = find_le(rest) {
        let value_start = at + LE.len();
        let Some(len) = rest[value_start..].iter().position(|&b| b == b'"') else {
            break;
        };
        out.extend_from_slice(&rest[..value_start]);
        let value = &rest[value_start..value_start + len];
        match std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
        {
            Some(bound) => out.extend_from_slice(go_float(bound).as_bytes()),
            None => out.extend_from_slice(value),
        }
        rest = &rest[value_start + len..];
    }
    out.extend_from_slice(rest);
    out
}

const LE: &[u8] = b"le=\"";

/// The index of the next `le="` preceded by `{` or `,`.
fn find_le(text: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].windows(LE.len()).position(|w| w == LE) {
        let at = from + i;
        if at > 0 && matches!(text[at - 1], b'{' | b',') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_spelled_as_go_strconv_g_shortest() {
        for (v, go) in [
            (0.0, "0"),
            (1.0, "1"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.00125, "0.00125"),
            (12.5, "12.5"),
            (100000.0, "100000"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (1.58e6, "1.58e+06"),
            (1.26e9, "1.26e+09"),
            (1e10, "1e+10"),
            (1e7, "1e+07"),
            (123456.5, "123456.5"),
            (1.5e-7, "1.5e-07"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (-2.5, "-2.5"),
            (-1e6, "-1e+06"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(go_float(v), go, "{v:?}");
        }
    }

    #[test]
    fn linear_buckets_accumulate_like_go() {
        let b = go_linear_buckets(0.0, 0.001, 30);
        assert_eq!(b.len(), 30);
        assert_eq!(go_float(b[10]), "0.010000000000000002");
        assert_eq!(go_float(b[3]), "0.003");
    }

    #[test]
    fn only_le_label_values_are_rewritten() {
        let text = b"x_bucket{af=\"ipv4\",le=\"1000000\"} 1000000\nx_bucket{le=\"+Inf\"} 3\ny{rule=\"le=\\\"5000000\\\"\"} 1\nz{file=\"1e6\",le=\"0.5\"} 2\n";
        let out = String::from_utf8(go_le_labels(text)).unwrap();
        assert_eq!(
            out,
            "x_bucket{af=\"ipv4\",le=\"1e+06\"} 1000000\nx_bucket{le=\"+Inf\"} 3\ny{rule=\"le=\\\"5000000\\\"\"} 1\nz{file=\"1e6\",le=\"0.5\"} 2\n"
        );
    }
}
