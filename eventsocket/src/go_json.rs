//! What every kind of event line shares, written as Go's `encoding/json`
//! writes M-Lab's `FlowEvent`: the head `{"Event":N,"Timestamp":"…",
//! "UUID":"…","ID":` in the Go struct's field order, strings escaped the Go
//! way, and addresses as Go's `net.IP` prints them.

use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;

use tcpinfo_archive::Timestamp;

use crate::event::EventError;

/// `{"Event":<code>,"Timestamp":"<time>","UUID":<uuid>,"ID":`: the fields
/// of Go's `FlowEvent` up to the value of `ID`, which the caller writes.
pub(crate) fn write_head(out: &mut Vec<u8>, code: i64, timestamp: &Timestamp, uuid: &str) {
    let _ = write!(out, "{{\"Event\":{code},\"Timestamp\":\"");
    timestamp.write_to(out);
    out.extend_from_slice(b"\",\"UUID\":");
    write_go_string(out, uuid);
    out.extend_from_slice(b",\"ID\":");
}

/// One protocol line: what `write` writes, and the newline.
pub(crate) fn json_line(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(&mut out);
    out.push(b'\n');
    out
}

/// The time of a decoded line whose `Event` must be `expected`.
pub(crate) fn expect_kind(
    event: i64,
    expected: i64,
    timestamp: &str,
) -> Result<Timestamp, EventError> {
    if event != expected {
        return Err(EventError::UnknownEvent(event));
    }
    Ok(Timestamp::parse(timestamp)?)
}

/// An address printed as Go's `net.IP.String()` prints the `net.IP` that
/// `inetdiag` builds: dotted quad for IPv4 and for IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`), RFC 5952 text otherwise. Rust's own `Display` keeps
/// the `::ffff:` prefix, which Go drops.
///
/// One Go quirk is deliberately not reproduced: Go's `inetdiag` also prints
/// an AF_INET6 address whose last 12 bytes are zero (e.g. `2001:db8::`) as an
/// IPv4 address made of its first 4 bytes, which would point sidecars at the
/// wrong host.
pub struct GoIp(pub IpAddr);

impl fmt::Display for GoIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => v4.fmt(f),
                None => v6.fmt(f),
            },
        }
    }
}

/// Writes `s` as a JSON string the way Go's `encoding/json` does: besides
/// what JSON requires, it escapes `<`, `>` and `&` (HTML safety) and U+2028 /
/// U+2029 (JavaScript safety), and uses `\b`, `\f`, `\n`, `\r`, `\t` short
/// forms (Go 1.22+) and `\u00XX` for other control characters.
pub(crate) fn write_go_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '\u{8}' => Some(b"\\b"),
            '\u{c}' => Some(b"\\f"),
            _ => None,
        };
        let needs_hex = matches!(
            c,
            '\0'..='\u{1f}' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}'
        );
        if escape.is_none() && !needs_hex {
            continue;
        }
        out.extend_from_slice(&s.as_bytes()[start..i]);
        match escape {
            Some(e) => out.extend_from_slice(e),
            None => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.extend_from_slice(&s.as_bytes()[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_like_go_net_ip_string() {
        for (input, go) in [
            ("127.0.0.1", "127.0.0.1"),
            ("::ffff:192.0.2.7", "192.0.2.7"),
            ("::1", "::1"),
            ("::", "::"),
            ("::1.2.3.4", "::102:304"),
            ("fe80::1:0:0:1", "fe80::1:0:0:1"),
            ("2001:db8:0:1:0:0:0:1", "2001:db8:0:1::1"),
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),
            ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
            ("FE80::ABCD", "fe80::abcd"),
        ] {
            let ip: IpAddr = input.parse().unwrap();
            assert_eq!(GoIp(ip).to_string(), go, "{input}");
        }
    }

    #[test]
    fn uuid_strings_are_escaped_like_go() {
        let mut out = Vec::new();
        write_go_string(&mut out, "a<b>&c\"d\\e\n\u{1}\u{2028}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#""a\u003cb\u003e\u0026c\"d\\e\n\u0001\u2028é""#
        );
    }
}
