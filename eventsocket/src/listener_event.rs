//! `ListenerEvent` (`"Event":2`): a listening tuple opened or closed. Sent
//! only to clients that subscribed to [`Subscription::ListenerChange`]:
//!
//! ```text
//! {"Event":2,"Timestamp":"2024-05-01T10:00:00.5Z","UUID":"","ID":null,
//!  "Listener":{"Change":"opened","Proto":"tcp","Family":"ipv4","Addr":"198.51.100.1",
//!              "Port":8080,"Scope":"public","Process":"nginx"}}
//! ```
//!
//! `UUID` and `ID` are there, empty, so that a line decodes as a Go
//! `FlowEvent` too: a Go client that somehow received it would log
//! "Unknown event type: 2" and carry on rather than die on a decode error.
//!
//! [`Subscription::ListenerChange`]: crate::Subscription::ListenerChange

use std::io::Write as _;
use std::net::IpAddr;

use serde::Deserialize;
use tcpinfo_archive::Timestamp;

use crate::event::EventError;
use crate::go_json::{expect_kind, json_line, write_go_string, write_head, GoIp};

/// The protocol's `Event` integer for listener changes.
pub const LISTENER_CHANGE_EVENT: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerChangeKind {
    Opened,
    Closed,
}

impl ListenerChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerChangeKind::Opened => "opened",
            ListenerChangeKind::Closed => "closed",
        }
    }

    fn parse(text: &str) -> Result<Self, EventError> {
        match text {
            "opened" => Ok(ListenerChangeKind::Opened),
            "closed" => Ok(ListenerChangeKind::Closed),
            _ => Err(EventError::UnknownChange(text.to_owned())),
        }
    }
}

/// A listening tuple (proto, family, bound address, port) appeared or
/// vanished between two of the agent's inventories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerEvent {
    /// When the agent noticed (the inventory's time).
    pub timestamp: Timestamp,
    pub change: ListenerChangeKind,
    /// `tcp` or `udp`.
    pub proto: String,
    /// `ipv4` or `ipv6`.
    pub family: String,
    /// The bound address; unspecified for a wildcard bind.
    pub addr: IpAddr,
    pub port: u16,
    /// `loopback`, `private` or `public`, as the exposure gauges' `scope`.
    pub scope: String,
    /// The owning program's name; empty when not visible to the agent.
    pub process: String,
}

impl ListenerEvent {
    /// Appends the event's JSON object (no newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_head(out, LISTENER_CHANGE_EVENT, &self.timestamp, "");
        let _ = write!(
            out,
            "null,\"Listener\":{{\"Change\":\"{}\",\"Proto\":",
            self.change.as_str()
        );
        write_go_string(out, &self.proto);
        out.extend_from_slice(b",\"Family\":");
        write_go_string(out, &self.family);
        let _ = write!(
            out,
            ",\"Addr\":\"{}\",\"Port\":{},\"Scope\":",
            GoIp(self.addr),
            self.port
        );
        write_go_string(out, &self.scope);
        out.extend_from_slice(b",\"Process\":");
        write_go_string(out, &self.process);
        out.extend_from_slice(b"}}");
    }

    /// The event as one protocol line, newline included.
    pub fn to_json_line(&self) -> Vec<u8> {
        json_line(|out| self.write_json(out))
    }

    /// Parses one line whose `Event` is [`LISTENER_CHANGE_EVENT`].
    pub fn from_json(line: &[u8]) -> Result<Self, EventError> {
        let raw: RawListenerEvent = serde_json::from_slice(line)?;
        let timestamp = expect_kind(raw.event, LISTENER_CHANGE_EVENT, &raw.timestamp)?;
        let l = raw.listener;
        Ok(ListenerEvent {
            timestamp,
            change: ListenerChangeKind::parse(&l.change)?,
            proto: l.proto,
            family: l.family,
            addr: l
                .addr
                .parse()
                .map_err(|_| EventError::Address(l.addr.clone()))?,
            port: l.port,
            scope: l.scope,
            process: l.process,
        })
    }
}

#[derive(Deserialize)]
struct RawListenerEvent {
    #[serde(rename = "Event")]
    event: i64,
    #[serde(rename = "Timestamp")]
    timestamp: String,
    #[serde(rename = "Listener")]
    listener: RawListener,
}

#[derive(Deserialize)]
struct RawListener {
    #[serde(rename = "Change")]
    change: String,
    #[serde(rename = "Proto")]
    proto: String,
    #[serde(rename = "Family")]
    family: String,
    #[serde(rename = "Addr")]
    addr: String,
    #[serde(rename = "Port")]
    port: u16,
    #[serde(rename = "Scope")]
    scope: String,
    #[serde(rename = "Process", default)]
    process: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FlowEvent;

    fn sample() -> ListenerEvent {
        ListenerEvent {
            timestamp: Timestamp::parse("2024-05-01T10:00:00.5Z").unwrap(),
            change: ListenerChangeKind::Opened,
            proto: "tcp".into(),
            family: "ipv6".into(),
            addr: "::ffff:198.51.100.1".parse().unwrap(),
            port: 8080,
            scope: "public".into(),
            process: "ng<inx>".into(),
        }
    }

    #[test]
    fn wire_format_is_one_go_style_json_line() {
        assert_eq!(
            String::from_utf8(sample().to_json_line()).unwrap(),
            "{\"Event\":2,\"Timestamp\":\"2024-05-01T10:00:00.5Z\",\"UUID\":\"\",\"ID\":null,\
             \"Listener\":{\"Change\":\"opened\",\"Proto\":\"tcp\",\"Family\":\"ipv6\",\
             \"Addr\":\"198.51.100.1\",\"Port\":8080,\"Scope\":\"public\",\
             \"Process\":\"ng\\u003cinx\\u003e\"}}\n"
        );
    }

    #[test]
    fn round_trips_with_addresses_as_go_prints_them() {
        let ev = sample();
        let back = ListenerEvent::from_json(&ev.to_json_line()).unwrap();
        assert_eq!(back.addr, "198.51.100.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            ListenerEvent {
                addr: ev.addr,
                ..back
            },
            ev
        );
        let closed = ListenerEvent {
            change: ListenerChangeKind::Closed,
            addr: "::".parse().unwrap(),
            process: String::new(),
            ..sample()
        };
        assert_eq!(
            ListenerEvent::from_json(&closed.to_json_line()).unwrap(),
            closed
        );
    }

    /// What Go's `json.Unmarshal` into `FlowEvent` needs: a known-shape
    /// `Timestamp`, a string `UUID`, a null `ID`; the unknown `Event`
    /// integer is then only logged by its client.
    #[test]
    fn the_line_decodes_as_a_flow_event_shape_with_an_unknown_kind() {
        match FlowEvent::from_json(&sample().to_json_line()) {
            Err(EventError::UnknownEvent(2)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_change_and_address_are_typed_errors() {
        let line = String::from_utf8(sample().to_json_line()).unwrap();
        assert!(matches!(
            ListenerEvent::from_json(line.replace("opened", "moved").as_bytes()),
            Err(EventError::UnknownChange(c)) if c == "moved"
        ));
        assert!(matches!(
            ListenerEvent::from_json(line.replace("198.51.100.1", "nope").as_bytes()),
            Err(EventError::Address(_))
        ));
    }
}
