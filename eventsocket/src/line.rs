//! One line of the event stream, whatever its kind: the Go protocol's
//! open/close [`FlowEvent`]s, and the kinds a client subscribed to.

use serde::Deserialize;

use crate::event::{EventError, FlowEvent};
use crate::listener_event::{ListenerEvent, LISTENER_CHANGE_EVENT};
use crate::subscription::{Subscribed, SUBSCRIBED_EVENT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `"Event":0` (open) or `1` (close).
    Flow(FlowEvent),
    /// `"Event":2`: a listener opened or closed (subscribers only).
    Listener(ListenerEvent),
    /// `"Event":3`: the server granted a subscription request.
    Subscribed(Subscribed),
}

impl Event {
    /// Parses one protocol line; a kind this version does not know is
    /// [`EventError::UnknownEvent`].
    pub fn from_json(line: &[u8]) -> Result<Self, EventError> {
        #[derive(Deserialize)]
        struct Kind {
            #[serde(rename = "Event")]
            event: i64,
        }
        let kind: Kind = serde_json::from_slice(line)?;
        match kind.event {
            0 | 1 => FlowEvent::from_json(line).map(Event::Flow),
            LISTENER_CHANGE_EVENT => ListenerEvent::from_json(line).map(Event::Listener),
            SUBSCRIBED_EVENT => Subscribed::from_json(line).map(Event::Subscribed),
            code => Err(EventError::UnknownEvent(code)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_decodes_to_its_variant() {
        let close = br#"{"Event":1,"Timestamp":"2019-04-02T14:12:38Z","UUID":"a","ID":null}"#;
        assert!(matches!(Event::from_json(close), Ok(Event::Flow(_))));
        let ack = br#"{"Event":3,"Timestamp":"2019-04-02T14:12:38Z","UUID":"","ID":null,"Subscribed":["ListenerChange"]}"#;
        assert!(matches!(Event::from_json(ack), Ok(Event::Subscribed(_))));
        let change = br#"{"Event":2,"Timestamp":"2019-04-02T14:12:38Z","UUID":"","ID":null,"Listener":{"Change":"closed","Proto":"udp","Family":"ipv4","Addr":"0.0.0.0","Port":53,"Scope":"public","Process":""}}"#;
        match Event::from_json(change) {
            Ok(Event::Listener(ev)) => assert_eq!((ev.proto.as_str(), ev.port), ("udp", 53)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Event::from_json(br#"{"Event":9}"#),
            Err(EventError::UnknownEvent(9))
        ));
        assert!(matches!(
            Event::from_json(b"nope"),
            Err(EventError::Json(_))
        ));
    }
}
