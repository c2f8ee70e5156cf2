//! The tcp-info event socket protocol: on a Unix stream socket the agent
//! announces each connection it starts tracking (open) and each one that
//! disappears (close), one JSON line per event, in the protocol of M-Lab's
//! Go `tcp-info` so that existing sidecars (packet capture, traceroute) work
//! unchanged.
//!
//! - [`FlowEvent`] / [`SockId`] / [`TcpEvent`]: the protocol's data and its
//!   byte-exact Go JSON encoding.
//! - [`ListenerEvent`] / [`Subscription`] / [`Subscribed`]: kinds beyond
//!   the Go protocol, sent only to clients that wrote a subscription
//!   request; [`Event`] is a line of any kind.
//! - [`client`]: connecting, reading events, a [`client::Handler`] trait.
//!
//! The server is the agent's (`tcp_info::eventsocket`); nothing here
//! depends on it.

pub mod client;
mod event;
mod go_json;
mod line;
mod listener_event;
mod subscription;

pub use event::{EventError, FlowEvent, SockId, TcpEvent};
pub use go_json::GoIp;
pub use line::Event;
pub use listener_event::{ListenerChangeKind, ListenerEvent, LISTENER_CHANGE_EVENT};
pub use subscription::{
    subscription_request, Subscribed, Subscription, SubscriptionRequest, SUBSCRIBED_EVENT,
};
/// The protocol's time type (`"Timestamp"`), so that clients need no other
/// crate.
pub use tcpinfo_archive::{Timestamp, TimestampError};
