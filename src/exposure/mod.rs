//! Exposure gauges: what is listening on this host, and who it talks to,
//! by scope. Derived from every socket the poller sees (archived or
//! excluded), plus UDP listeners and /proc process names.
//!
//! - [`changes`]: listening tuples opened and closed between inventories.
//! - [`scope`]: loopback / private / public classification of addresses.
//! - [`inventory`]: listening sockets and connection counts.
//! - [`process`]: socket inode → owning program, through /proc.
//! - [`summary`]: the immutable, capped summary /metrics renders.
//! - [`worker`]: the thread that does the I/O and publishes summaries.
//! - [`cidr`], [`remote`]: per-peer connection states (`-remote-states`).

pub mod changes;
pub mod cidr;
pub mod inventory;
pub mod process;
pub mod remote;
pub mod scope;
pub mod summary;
pub mod worker;

pub use inventory::{InventoryBuilder, TcpInventory};
pub use scope::{classify, Scope};
pub use summary::{ExposureSummary, SummaryCell, MAX_SERIES};
pub use worker::{ExposureWorker, INVENTORY_INTERVAL};
