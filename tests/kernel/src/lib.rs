//! The one harness for tests that drive tcp-info: start the real agent
//! binary with flags (in a network namespace or not), wait for conditions
//! with a deadline (never a bare sleep), read back its log, metrics and
//! archive, and stop it with a signal. Everything a test starts (processes,
//! namespaces, temporary directories) is torn down by a `Drop` guard, so a
//! failing test leaves nothing behind.
//!
//! The harness itself needs no privilege; what needs root (namespaces) or a
//! system tool says so in a panic naming what is missing, never by skipping.

pub mod agent;
pub mod archive;
pub mod disk;
pub mod events;
pub mod metrics;
pub mod netns;
pub mod process;
pub mod prometheus;
pub mod svg;
pub mod system;
pub mod traffic;
pub mod wait;

pub use agent::{Agent, Stats};
pub use netns::{Netns, NetnsPair};
pub use process::Process;
pub use wait::{wait_for, wait_for_ok, wait_until};
