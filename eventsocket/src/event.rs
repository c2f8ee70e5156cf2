//! `FlowEvent`: one line of the event socket protocol, and its JSON encoding
//! exactly as Go's `encoding/json` writes M-Lab's `eventsocket.FlowEvent`:
//!
//! ```text
//! {"Event":0,"Timestamp":"2019-04-02T14:12:37.511Z","UUID":"host_1554214357_unsafe_000000000000A1B2",
//!  "ID":{"SPort":443,"DPort":52100,"SrcIP":"10.0.0.1","DstIP":"10.0.0.2","Interface":0,"Cookie":41394}}
//! {"Event":1,"Timestamp":"2019-04-02T14:12:39Z","UUID":"host_1554214357_unsafe_000000000000A1B2","ID":null}
//! ```
//!
//! Field order is the Go struct's declaration order. `Cookie` is Go's
//! `int64(cookie)`: the kernel's unsigned cookie reinterpreted as signed.

use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use tcpinfo_archive::{Timestamp, TimestampError};

use crate::go_json::{json_line, write_head, GoIp};

/// What happened to a connection. Serialized as its integer value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpEvent {
    /// The agent saw the connection's cookie for the first time.
    Open = 0,
    /// The connection's cookie is no longer in the kernel's dump.
    Close = 1,
}

impl TcpEvent {
    /// The protocol's integer for `code`, or `None` for a kind this version
    /// does not know.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(TcpEvent::Open),
            1 => Some(TcpEvent::Close),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        self as i64
    }
}

impl fmt::Display for TcpEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The names Go's `stringer` gives the constants.
        f.write_str(match self {
            TcpEvent::Open => "Open",
            TcpEvent::Close => "Close",
        })
    }
}

/// A connection's identity, as Go's `inetdiag.SockID`: host-order ports,
/// addresses, interface index and the kernel's socket cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SockId {
    pub sport: u16,
    pub dport: u16,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub interface: u32,
    pub cookie: u64,
}

impl SockId {
    /// The identity of the socket a sock_diag reply describes.
    pub fn from_msg(msg: &inetdiag::InetDiagMsg<'_>) -> Self {
        SockId {
            sport: msg.sport(),
            dport: msg.dport(),
            src_ip: msg.src(),
            dst_ip: msg.dst(),
            interface: msg.interface(),
            cookie: msg.cookie(),
        }
    }

    /// The cookie as the protocol carries it: Go's `int64(cookie)`, so
    /// BigQuery (which has no unsigned integers) can store it.
    pub fn signed_cookie(&self) -> i64 {
        self.cookie as i64
    }
}

/// One event: a connection opened or closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowEvent {
    pub event: TcpEvent,
    pub timestamp: Timestamp,
    /// The connection's UUID: the archive file name without sequence and
    /// extension.
    pub uuid: String,
    /// Present on open events; `null` on close events.
    pub id: Option<SockId>,
}

/// Why a line is not a `FlowEvent`.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a JSON flow event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event type {0}")]
    UnknownEvent(i64),
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
    #[error("invalid IP address {0:?}")]
    Address(String),
    #[error("unknown listener change {0:?} (expected opened or closed)")]
    UnknownChange(String),
}

impl FlowEvent {
    pub fn open(timestamp: Timestamp, uuid: impl Into<String>, id: SockId) -> Self {
        FlowEvent {
            event: TcpEvent::Open,
            timestamp,
            uuid: uuid.into(),
            id: Some(id),
        }
    }

    pub fn close(timestamp: Timestamp, uuid: impl Into<String>) -> Self {
        FlowEvent {
            event: TcpEvent::Close,
            timestamp,
            uuid: uuid.into(),
            id: None,
        }
    }

    /// Appends the event's JSON object (no newline) to `out`, byte for byte
    /// what Go's `json.Marshal` produces for the same event.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_head(out, self.event.code(), &self.timestamp, &self.uuid);
        match &self.id {
            None => out.extend_from_slice(b"null"),
            Some(id) => {
                let _ = write!(
                    out,
                    "{{\"SPort\":{},\"DPort\":{},\"SrcIP\":\"{}\",\"DstIP\":\"{}\",\"Interface\":{},\"Cookie\":{}}}",
                    id.sport,
                    id.dport,
                    GoIp(id.src_ip),
                    GoIp(id.dst_ip),
                    id.interface,
                    id.signed_cookie()
                );
            }
        }
        out.push(b'}');
    }

    /// The event as one protocol line, newline included.
    pub fn to_json_line(&self) -> Vec<u8> {
        json_line(|out| self.write_json(out))
    }

    /// Parses one protocol line (a trailing newline is allowed).
    pub fn from_json(line: &[u8]) -> Result<Self, EventError> {
        let raw: RawEvent = serde_json::from_slice(line)?;
        let event = TcpEvent::from_code(raw.event).ok_or(EventError::UnknownEvent(raw.event))?;
        let timestamp = Timestamp::parse(&raw.timestamp)?;
        let id = match raw.id {
            None => None,
            Some(raw) => Some(SockId {
                sport: raw.sport,
                dport: raw.dport,
                src_ip: parse_ip(&raw.src_ip)?,
                dst_ip: parse_ip(&raw.dst_ip)?,
                interface: raw.interface,
                cookie: raw.cookie.0,
            }),
        };
        Ok(FlowEvent {
            event,
            timestamp,
            uuid: raw.uuid,
            id,
        })
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, EventError> {
    text.parse()
        .map_err(|_| EventError::Address(text.to_string()))
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Event")]
    event: i64,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "UUID")]
    uuid: String,
    #[serde(rename = "ID", default)]
    id: Option<RawSockId>,
}

#[derive(Deserialize)]
struct RawSockId {
    #[serde(rename = "SPort")]
    sport: u16,
    #[serde(rename = "DPort")]
    dport: u16,
    #[serde(rename = "SrcIP")]
    src_ip: String,
    #[serde(rename = "DstIP")]
    dst_ip: String,
    #[serde(rename = "Interface")]
    interface: u32,
    #[serde(rename = "Cookie")]
    cookie: Cookie,
}

/// A cookie on the wire: signed as Go writes it, but an unsigned value (a
/// non-Go server) is accepted too.
struct Cookie(u64);

impl<'de> Deserialize<'de> for Cookie {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CookieVisitor;
        impl Visitor<'_> for CookieVisitor {
            type Value = Cookie;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 64-bit integer socket cookie")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cookie, E> {
                Ok(Cookie(v as u64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cookie, E> {
                Ok(Cookie(v))
            }
        }
        deserializer.deserialize_i64(CookieVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn sample_id() -> SockId {
        SockId {
            sport: 443,
            dport: 52100,
            src_ip: "10.0.0.1".parse().unwrap(),
            dst_ip: "2001:db8::2".parse().unwrap(),
            interface: 2,
            cookie: 0xFFFF_FFFF_FFFF_FFFE,
        }
    }

    #[test]
    fn open_event_has_go_field_names_order_and_signed_cookie() {
        let ev = FlowEvent::open(
            ts("2019-04-02T14:12:37.511Z"),
            "host_1554214357_unsafe_FFFFFFFFFFFFFFFE",
            sample_id(),
        );
        assert_eq!(
            String::from_utf8(ev.to_json_line()).unwrap(),
            "{\"Event\":0,\"Timestamp\":\"2019-04-02T14:12:37.511Z\",\
             \"UUID\":\"host_1554214357_unsafe_FFFFFFFFFFFFFFFE\",\
             \"ID\":{\"SPort\":443,\"DPort\":52100,\"SrcIP\":\"10.0.0.1\",\
             \"DstIP\":\"2001:db8::2\",\"Interface\":2,\"Cookie\":-2}}\n"
        );
    }

    #[test]
    fn close_event_carries_null_id() {
        let ev = FlowEvent::close(ts("2019-08-26T19:55:42.754686952-04:00"), "u");
        assert_eq!(
            String::from_utf8(ev.to_json_line()).unwrap(),
            "{\"Event\":1,\"Timestamp\":\"2019-08-26T19:55:42.754686952-04:00\",\"UUID\":\"u\",\"ID\":null}\n"
        );
    }

    #[test]
    fn events_round_trip_through_json() {
        let open = FlowEvent::open(ts("2019-04-02T14:12:37.511Z"), "x<y", sample_id());
        let close = FlowEvent::close(ts("2019-04-02T14:12:38Z"), "x<y");
        for ev in [open, close] {
            assert_eq!(FlowEvent::from_json(&ev.to_json_line()).unwrap(), ev);
        }
    }

    #[test]
    fn unsigned_cookie_and_missing_id_are_accepted() {
        let ev = FlowEvent::from_json(
            br#"{"Event":0,"Timestamp":"2019-04-02T14:12:37Z","UUID":"u","ID":{"SPort":1,"DPort":2,"SrcIP":"::ffff:1.2.3.4","DstIP":"::1","Interface":0,"Cookie":18446744073709551615}}"#,
        )
        .unwrap();
        assert_eq!(ev.id.unwrap().cookie, u64::MAX);
        let ev =
            FlowEvent::from_json(br#"{"Event":1,"Timestamp":"2019-04-02T14:12:37Z","UUID":"u"}"#)
                .unwrap();
        assert_eq!(ev.id, None);
    }

    #[test]
    fn malformed_lines_are_typed_errors() {
        assert!(matches!(
            FlowEvent::from_json(b"not json"),
            Err(EventError::Json(_))
        ));
        assert!(matches!(
            FlowEvent::from_json(
                br#"{"Event":7,"Timestamp":"2019-04-02T14:12:37Z","UUID":"u","ID":null}"#
            ),
            Err(EventError::UnknownEvent(7))
        ));
        assert!(matches!(
            FlowEvent::from_json(br#"{"Event":0,"Timestamp":"soon","UUID":"u","ID":null}"#),
            Err(EventError::Timestamp(_))
        ));
        assert!(matches!(
            FlowEvent::from_json(br#"{"Event":0,"Timestamp":"2019-04-02T14:12:37Z","UUID":"u","ID":{"SPort":1,"DPort":2,"SrcIP":"nope","DstIP":"::1","Interface":0,"Cookie":1}}"#),
            Err(EventError::Address(_))
        ));
    }
}
