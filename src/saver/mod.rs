//! The saver: writer shards that own the archive files. The poller hands
//! each shard one [`Batch`] per cycle through its [`ShardQueue`]; a shard
//! ([`shard::ShardWriter`]) keeps each connection's snapshots as the
//! kernel's replies ([`pending`]) until its flush, writes them as JSON
//! lines, compresses those into zstd frames and appends them to the
//! connections' segment files, which it creates in the output tree without
//! following links or touching existing files ([`tree`]) and only ever
//! grows by complete frames ([`segment_file`]); a connection that outlived
//! the previous run continues its sequence numbers across date directories
//! ([`previous`]). The shards share one memory budget for snapshots not
//! yet written ([`budget`]) and keep the process's last descriptors free
//! for /metrics and the event socket ([`descriptors`]).

pub mod batch;
pub mod budget;
mod cookie_slab;
pub mod descriptors;
pub mod naming;
pub mod pending;
pub mod previous;
mod queue;
pub mod segment_file;
pub mod shard;
pub mod tree;

use std::io;
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use crossbeam_channel::bounded;

pub use batch::{Batch, Item, ItemKind};
pub use queue::{QueueDepths, ShardGone, ShardQueue};
pub use shard::{Limits, SaverConfig};

use crate::stats::Stats;

/// Batches a shard may have queued before the poller holds on to them.
pub const SHARD_QUEUE: usize = 16;

/// Spent batches a shard keeps for the poller to refill; more are freed.
/// The pool used to keep every batch ever made: after the writers fell
/// behind once (at start-up, while every connection's file is created) it
/// held ~17 per shard, each with the room of its last use, used in turn,
/// so never given back. A steady poll needs one per shard, two when a
/// batch is in flight while the next fills.
pub const RECYCLED_BATCHES: usize = 4;

/// The running writer shards.
pub struct Saver {
    threads: Vec<JoinHandle<io::Result<()>>>,
    depths: Arc<QueueDepths>,
}

/// Starts `shards` writer threads; returns their queues (for the poller)
/// and the handle that waits for them.
pub fn spawn(
    config: Arc<SaverConfig>,
    stats: Arc<Stats>,
    shards: usize,
) -> io::Result<(Vec<ShardQueue>, Saver)> {
    let depths = QueueDepths::new(shards, SHARD_QUEUE);
    let limits = Limits::new(&config, shards);
    let mut queues = Vec::with_capacity(shards);
    let mut threads = Vec::with_capacity(shards);
    for i in 0..shards {
        let (batch_tx, batch_rx) = bounded(SHARD_QUEUE);
        let (recycle_tx, recycle_rx) = bounded(RECYCLED_BATCHES);
        let (config, stats, limits, shard_depths) = (
            Arc::clone(&config),
            Arc::clone(&stats),
            Arc::clone(&limits),
            Arc::clone(&depths),
        );
        threads.push(
            thread::Builder::new()
                .name(format!("writer-{i}"))
                .spawn(move || {
                    shard::run(i, config, stats, limits, batch_rx, recycle_tx, shard_depths)
                })?,
        );
        queues.push(ShardQueue::new(
            i,
            batch_tx,
            recycle_rx,
            Arc::clone(&depths),
        ));
    }
    Ok((queues, Saver { threads, depths }))
}

/// How a writer shard ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ShardFailure {
    #[error("writer shard {shard} failed: {error}")]
    Failed { shard: usize, error: io::Error },
    #[error("writer shard {shard} panicked")]
    Panicked { shard: usize },
}

impl Saver {
    /// Queue depths for /metrics.
    pub fn depths(&self) -> Arc<QueueDepths> {
        Arc::clone(&self.depths)
    }

    /// Waits for every shard to finish its files (the poller has dropped
    /// its queues); returns the shards that failed.
    pub fn join(self) -> Vec<ShardFailure> {
        join_shards(self.threads)
    }
}

fn join_shards(threads: Vec<JoinHandle<io::Result<()>>>) -> Vec<ShardFailure> {
    let mut failures = Vec::new();
    for (shard, thread) in threads.into_iter().enumerate() {
        match thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failures.push(ShardFailure::Failed { shard, error }),
            Err(_) => failures.push(ShardFailure::Panicked { shard }),
        }
    }
    failures
}

#[cfg(test)]
mod tests;
