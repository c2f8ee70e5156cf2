//! The saver: writer shards that own the archive files.

pub mod batch;
pub mod naming;
pub mod writer;

pub use batch::{Batch, Item, ItemKind};
pub use writer::SaverConfig;
