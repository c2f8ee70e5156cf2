//! Listener policy: which listeners must exist (optionally owned by a
//! given program), which must not, and how many there may be — asserted
//! against the same listener inventory the exposure gauges use.
//!
//! - [`file`]: the TOML/JSON policy file, strictly validated.
//! - [`rule`]: the validated rules and what they select.
//! - [`evaluate`]: a policy against one inventory.
//! - [`report`]: the tstconfig-style text report of `tcp-info check`.
//! - [`check`]: `tcp-info check --policy FILE` (one inventory, one report).
//! - [`active`]: the agent's live policy (`-listen-policy`), reloadable.
//! - [`reload`]: `POST /-/reload`, the route the metrics server serves.

pub mod active;
pub mod check;
pub mod evaluate;
pub mod file;
pub mod reload;
pub mod report;
pub mod rule;

pub use active::ActivePolicy;
pub use evaluate::{evaluate, Evaluation, Observed, ViolationKind};
pub use file::PolicyError;
pub use rule::Policy;
