//! Opting in to event kinds beyond open/close. M-Lab's Go clients never
//! write to the socket, and receive exactly the open/close stream. A client
//! that wants more writes one request line, any time after connecting:
//!
//! ```text
//! {"Subscribe":["ListenerChange"]}
//! ```
//!
//! and the server answers, on the event stream, with the acknowledgement
//! (`"Event":3`) listing the kinds now granted; events of those kinds follow
//! it, never precede it. A later request replaces the set (an empty list
//! returns to the plain open/close stream). Unknown kind names are left
//! out of the acknowledgement; a line that is not a request is logged and
//! ignored, and the client keeps the stream it had.

use std::io::Write as _;

use serde::Deserialize;
use tcpinfo_archive::Timestamp;

use crate::event::EventError;
use crate::go_json::{expect_kind, json_line, write_head};

/// The protocol's `Event` integer for a subscription acknowledgement.
pub const SUBSCRIBED_EVENT: i64 = 3;

/// An event kind a client may opt in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subscription {
    /// [`crate::ListenerEvent`]s: listening tuples opened and closed.
    ListenerChange,
}

impl Subscription {
    pub const ALL: [Subscription; 1] = [Subscription::ListenerChange];

    /// The kind's name in requests and acknowledgements.
    pub fn name(self) -> &'static str {
        match self {
            Subscription::ListenerChange => "ListenerChange",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The kind's bit in a set of subscriptions.
    pub fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The request line (newline included) that subscribes to `kinds`.
pub fn subscription_request(kinds: &[Subscription]) -> Vec<u8> {
    let mut out = b"{\"Subscribe\":".to_vec();
    write_names(&mut out, kinds);
    out.extend_from_slice(b"}\n");
    out
}

/// `["ListenerChange",…]`.
fn write_names(out: &mut Vec<u8>, kinds: &[Subscription]) {
    out.push(b'[');
    for (i, kind) in kinds.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "\"{}\"", kind.name());
    }
    out.push(b']');
}

/// A parsed request: the known kinds asked for, and the names not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionRequest {
    pub kinds: Vec<Subscription>,
    pub unknown: Vec<String>,
}

impl SubscriptionRequest {
    /// Parses one line a client wrote; `None` when it is not a request.
    pub fn parse(line: &[u8]) -> Option<Self> {
        let raw: RawRequest = serde_json::from_slice(line).ok()?;
        let mut request = SubscriptionRequest {
            kinds: Vec::new(),
            unknown: Vec::new(),
        };
        for name in raw.subscribe {
            match Subscription::from_name(&name) {
                Some(kind) if !request.kinds.contains(&kind) => request.kinds.push(kind),
                Some(_) => {}
                None => request.unknown.push(name),
            }
        }
        Some(request)
    }

    /// The set as bits.
    pub fn bits(&self) -> u8 {
        self.kinds.iter().fold(0, |bits, k| bits | k.bit())
    }
}

#[derive(Deserialize)]
struct RawRequest {
    #[serde(rename = "Subscribe")]
    subscribe: Vec<String>,
}

/// The server's acknowledgement of a request: the kinds now granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    pub timestamp: Timestamp,
    /// Kind names this client version knows; others are left out.
    pub kinds: Vec<Subscription>,
}

impl Subscribed {
    /// Appends the acknowledgement's JSON object (no newline) to `out`.
    /// `UUID` and `ID` are there so the line has a Go `FlowEvent`'s shape.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_head(out, SUBSCRIBED_EVENT, &self.timestamp, "");
        out.extend_from_slice(b"null,\"Subscribed\":");
        write_names(out, &self.kinds);
        out.push(b'}');
    }

    /// The acknowledgement as one protocol line, newline included.
    pub fn to_json_line(&self) -> Vec<u8> {
        json_line(|out| self.write_json(out))
    }

    /// Parses one line whose `Event` is [`SUBSCRIBED_EVENT`].
    pub fn from_json(line: &[u8]) -> Result<Self, EventError> {
        let raw: RawSubscribed = serde_json::from_slice(line)?;
        Ok(Subscribed {
            timestamp: expect_kind(raw.event, SUBSCRIBED_EVENT, &raw.timestamp)?,
            kinds: raw
                .subscribed
                .iter()
                .filter_map(|n| Subscription::from_name(n))
                .collect(),
        })
    }
}

#[derive(Deserialize)]
struct RawSubscribed {
    #[serde(rename = "Event")]
    event: i64,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "Subscribed", default)]
    subscribed: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_round_trip_and_unknown_kinds_are_kept_apart() {
        let line = subscription_request(&[Subscription::ListenerChange]);
        assert_eq!(line, b"{\"Subscribe\":[\"ListenerChange\"]}\n");
        let r = SubscriptionRequest::parse(&line).unwrap();
        assert_eq!(r.kinds, [Subscription::ListenerChange]);
        assert_eq!(r.bits(), 1);
        let r = SubscriptionRequest::parse(
            br#"{"Subscribe":["Teleport","ListenerChange","ListenerChange"],"Extra":1}"#,
        )
        .unwrap();
        assert_eq!(r.kinds, [Subscription::ListenerChange]);
        assert_eq!(r.unknown, ["Teleport"]);
        let empty = SubscriptionRequest::parse(br#"{"Subscribe":[]}"#).unwrap();
        assert_eq!(empty.bits(), 0);
    }

    #[test]
    fn anything_else_is_not_a_request() {
        for junk in [
            &b"hello"[..],
            b"{}",
            b"{\"Subscribe\":\"ListenerChange\"}",
            b"[\"ListenerChange\"]",
            b"{\"Subscribe\":[1]}",
        ] {
            assert_eq!(SubscriptionRequest::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn acknowledgements_round_trip() {
        let ack = Subscribed {
            timestamp: Timestamp::parse("2024-05-01T10:00:00Z").unwrap(),
            kinds: vec![Subscription::ListenerChange],
        };
        let line = ack.to_json_line();
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "{\"Event\":3,\"Timestamp\":\"2024-05-01T10:00:00Z\",\"UUID\":\"\",\"ID\":null,\"Subscribed\":[\"ListenerChange\"]}\n"
        );
        assert_eq!(Subscribed::from_json(&line).unwrap(), ack);
    }
}
