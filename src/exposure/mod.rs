//! Exposure gauges: what is listening on this host, and who it talks to,
//! by scope. Derived from every socket the poller sees (archived or
//! excluded), plus UDP listeners and /proc process names.
//!
//! - [`observer`]: the poller's step: a cache walk every inventory interval.
//! - [`inventory`]: listening sockets and connection counts.
//! - [`process`]: socket inode → owning program, through /proc.
//! - [`changes`]: listening tuples opened and closed between inventories.
//! - [`summary`]: the immutable, capped summary /metrics renders, and the
//!   cell it is published through.
//! - [`worker`]: the thread that does the I/O and publishes summaries.
//! - [`peers`], [`remote`]: per-peer connection states (`-remote-states`).

pub mod changes;
pub mod inventory;
pub mod observer;
pub mod peers;
pub mod process;
pub mod remote;
pub mod summary;
pub mod worker;

pub use inventory::{InventoryBuilder, TcpInventory};
pub use observer::InventoryObserver;
pub use summary::{ExposureSummary, SummaryCell};
pub use worker::ExposureWorker;
