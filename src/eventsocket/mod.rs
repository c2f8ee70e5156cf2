//! The event socket server: serves the `tcpinfo_eventsocket` protocol to
//! any number of clients, each isolated behind its own bounded queue so a
//! stuck client never delays polling or the other clients.
//!
//! - [`Server`] / [`Publisher`]: accepting clients, publishing events.
//! - [`requests`]: the lines a client writes (subscription requests), cut to
//!   a bounded length; part of serving, so it lives with the server (public
//!   for the fuzz target that feeds it what clients could write).

pub mod requests;
mod server;

pub use server::MAX_REQUEST;
pub use server::{
    Publisher, Server, ServerOptions, DEFAULT_MAX_CLIENTS, DEFAULT_MAX_CLIENTS_PER_UID,
    DEFAULT_QUEUE_CAPACITY,
};
