//! Reading tcp-info archives per connection, for people: `tcp-info
//! summary` (one row per connection) and `tcp-info plot` (one connection's
//! timeline as a picture).
//!
//! - [`inputs`]: paths → connections, each the ordered list of its segment
//!   files (`.00000`, `.00001`, … across date directories).
//! - [`Timeline`]: a connection's snapshots, reduced to the fields read here.
//! - [`Summary`]: one row per connection, as a table, CSV or JSON.
//! - [`plot`]: a timeline drawn as SVG or PNG.
//! - [`cli`]: the two subcommands' flags and runs, which the agent binary
//!   dispatches to.
//!
//! Depends on the archive crate (and its kernel ABI crate) only.

pub mod cli;
mod error;
pub mod inputs;
pub mod plot;
pub mod summary;
mod timeline;

pub use error::AnalysisError;
pub use summary::{Format, Summary};
pub use timeline::{Sample, Timeline, INFINITE_SSTHRESH};
