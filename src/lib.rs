//! tcp-info: polls every TCP socket's `tcp_info` over netlink and archives
//! each connection's history as zstd-compressed JSONL, compatible with
//! M-Lab's Go tcp-info.
//!
//! Layers (each depends only on those below it):
//! `main` → `collector` / `saver` / `metrics` → `policy` → `exposure` → `cache` /
//! `compare` / `exclusion` → the `tcpinfo_archive` (format) and
//! `tcpinfo_eventsocket` (protocol) crates → `inetdiag`.

pub mod compare;
pub mod config;
pub mod eventsocket;
pub mod exclusion;
#[macro_use]
pub mod log;
pub mod cache;
pub mod exposure;
pub mod flow_events;
pub mod listener_events;
pub mod metrics;
pub mod policy;
pub mod poller;
pub mod saver;
pub mod stats;
