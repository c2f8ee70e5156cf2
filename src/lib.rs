//! tcp-info: polls every TCP socket's `tcp_info` over netlink and archives
//! each connection's history as zstd-compressed JSONL, compatible with
//! M-Lab's Go tcp-info.
//!
//! Layers: a module depends only on modules of later layers (no cycles).
//!
//! 1. `main` (wiring), `config` (flags).
//! 2. `metrics`: renders what the layers below published; the HTTP server.
//! 3. `policy`, `listener_events`.
//! 4. `exposure`, `flow_events`: observers of the poll, publishing immutable
//!    summaries.
//! 5. `poller`: the polling loop, over inetdiag's `DumpSource` seam.
//! 6. `saver`, `output` (the directory's safety), `cache`, `eventsocket`
//!    (the server).
//! 7. `log`, `signals`, `exclusion`, `compare`.
//! 8. `address`, `clock`, `http_peer`, `lock`, `series_cap`, `small_file`,
//!    `stats`; then the crates `tcpinfo_eventsocket` (protocol),
//!    `tcpinfo_archive` (format) and `inetdiag` (kernel ABI).

pub mod address;
pub mod clock;
pub mod compare;
pub mod config;
pub mod eventsocket;
pub mod exclusion;
pub mod lock;
#[macro_use]
pub mod log;
pub mod cache;
pub mod exposure;
pub mod flow_events;
pub mod http_peer;
pub mod listener_events;
pub mod metrics;
pub mod output;
pub mod policy;
pub mod poller;
pub mod saver;
pub mod series_cap;
pub mod signals;
pub mod small_file;
pub mod stats;
