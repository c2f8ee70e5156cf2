//! Announces the exposure worker's listener changes on the event socket,
//! to the clients that subscribed to them.

use tcpinfo_archive::Timestamp;
use tcpinfo_eventsocket::{ListenerChangeKind, ListenerEvent};

use crate::eventsocket::Publisher;
use crate::exposure::changes::{Change, ChangeObserver, ListenerChange};
use crate::exposure::inventory::family_label;

pub struct ListenerEventObserver {
    publisher: Publisher,
}

impl ListenerEventObserver {
    pub fn new(publisher: Publisher) -> Self {
        Self { publisher }
    }
}

/// The event for `change`, noticed at `timestamp_ms`.
pub fn listener_event(change: &ListenerChange, timestamp_ms: i64) -> ListenerEvent {
    let t = &change.tuple;
    ListenerEvent {
        timestamp: Timestamp::from_unix_millis(timestamp_ms),
        change: match change.change {
            Change::Opened => ListenerChangeKind::Opened,
            Change::Closed => ListenerChangeKind::Closed,
        },
        proto: t.proto.label().to_owned(),
        family: family_label(t.family).to_owned(),
        addr: t.addr,
        port: t.port,
        scope: t.scope().label().to_owned(),
        process: change.process.to_string(),
    }
}

impl ChangeObserver for ListenerEventObserver {
    fn listeners_changed(&mut self, changes: &[ListenerChange], timestamp_ms: i64) {
        if self.publisher.clients() == 0 {
            return;
        }
        for change in changes {
            self.publisher
                .publish_listener_change(&listener_event(change, timestamp_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::changes::ListenerTuple;
    use crate::exposure::inventory::Proto;

    #[test]
    fn a_change_becomes_an_event_with_the_gauges_label_values() {
        let change = ListenerChange {
            change: Change::Closed,
            tuple: ListenerTuple {
                proto: Proto::Udp,
                family: inetdiag::AF_INET6,
                addr: "fd00::1".parse().unwrap(),
                port: 5353,
            },
            process: "avahi".into(),
        };
        let ev = listener_event(&change, 1_700_000_000_000);
        assert_eq!(ev.change, ListenerChangeKind::Closed);
        assert_eq!(
            (ev.proto.as_str(), ev.family.as_str(), ev.scope.as_str()),
            ("udp", "ipv6", "private")
        );
        assert_eq!((ev.addr, ev.port), (change.tuple.addr, 5353));
        assert_eq!(ev.process, "avahi");
        assert_eq!(ev.timestamp.unix_millis(), 1_700_000_000_000);
    }
}
