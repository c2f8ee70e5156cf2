//! The event socket: a Unix stream socket on which the agent announces each
//! connection it starts tracking (open) and each one that disappears
//! (close), one JSON line per event, in the protocol of M-Lab's Go
//! `tcp-info` so that existing sidecars (packet capture, traceroute) work
//! unchanged.
//!
//! - [`FlowEvent`] / [`SockId`] / [`TcpEvent`]: the protocol's data and its
//!   byte-exact Go JSON encoding.
//! - [`Server`] / [`Publisher`]: serving events to any number of clients,
//!   each isolated behind its own bounded queue so a stuck client never
//!   delays polling or the other clients.
//! - [`ListenerEvent`] / [`Subscription`] / [`Subscribed`]: kinds beyond
//!   the Go protocol, sent only to clients that wrote a subscription
//!   request; [`Event`] is a line of any kind.
//! - [`client`]: connecting, reading events, a [`client::Handler`] trait.

pub mod client;
mod event;
mod line;
mod listener_event;
mod requests;
mod server;
mod subscription;

pub use event::{EventError, FlowEvent, SockId, TcpEvent};
pub use line::Event;
pub use listener_event::{ListenerChangeKind, ListenerEvent, LISTENER_CHANGE_EVENT};
pub use server::{Publisher, Server, ServerOptions, DEFAULT_MAX_CLIENTS, DEFAULT_QUEUE_CAPACITY};
pub use subscription::{
    subscription_request, Subscribed, Subscription, SubscriptionRequest, SUBSCRIBED_EVENT,
};
