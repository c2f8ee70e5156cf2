//! The poller's end of a writer shard: a bounded queue of batches, the
//! batch being filled this cycle, and the spent batches coming back for
//! reuse. Nothing else holds a receiver of the queue, so a shard whose
//! thread ends (a return, a panic) disconnects it and the poller learns
//! of it at its next hand-over instead of waiting on a queue no one reads.

use std::mem;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::Batch;
use crate::log::RateLimit;

/// A shard's pending batch is sent with a blocking send once it holds this
/// much: the writers are far behind, and memory must stay bounded.
const MAX_PENDING_BATCH_BYTES: usize = 64 * 1024 * 1024;

static WRITERS_BEHIND: RateLimit = RateLimit::new(10_000);

/// The writer shard behind this queue has ended: its thread returned or
/// panicked. The agent cannot archive that shard's connections any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("writer shard {shard} has stopped")]
pub struct ShardGone {
    pub shard: usize,
}

/// Batches waiting in each shard's queue, for /metrics: counted by the two
/// ends of the queues (sent by the poller, taken by the writer) so that no
/// reader needs a queue handle of its own.
#[derive(Debug)]
pub struct QueueDepths {
    sent: Box<[AtomicUsize]>,
    taken: Box<[AtomicUsize]>,
    capacity: usize,
}

impl QueueDepths {
    pub fn new(shards: usize, capacity: usize) -> Arc<Self> {
        let counters = || (0..shards).map(|_| AtomicUsize::new(0)).collect();
        Arc::new(Self {
            sent: counters(),
            taken: counters(),
            capacity,
        })
    }

    fn sent(&self, shard: usize) {
        self.sent[shard].fetch_add(1, Relaxed);
    }

    /// A writer took a batch off shard `shard`'s queue.
    pub(super) fn taken(&self, shard: usize) {
        self.taken[shard].fetch_add(1, Relaxed);
    }

    /// `(queued batches, capacity)` of every shard, in shard order.
    pub fn read(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.sent.iter().zip(&self.taken).map(move |(sent, taken)| {
            // Read `taken` first: a batch taken between the two loads is
            // then counted as still queued, never as a negative depth.
            let taken = taken.load(Relaxed);
            (sent.load(Relaxed).saturating_sub(taken), self.capacity)
        })
    }
}

/// One writer shard as the poller sees it.
pub struct ShardQueue {
    shard: usize,
    batches: Sender<Batch>,
    recycled: Receiver<Batch>,
    depths: Arc<QueueDepths>,
    /// What this cycle adds for the shard.
    pub pending: Batch,
}

impl ShardQueue {
    pub fn new(
        shard: usize,
        batches: Sender<Batch>,
        recycled: Receiver<Batch>,
        depths: Arc<QueueDepths>,
    ) -> Self {
        Self {
            shard,
            batches,
            recycled,
            depths,
            pending: Batch::default(),
        }
    }

    /// How many spent batches the pool keeps (`None`: all of them).
    #[cfg(test)]
    pub fn pool_capacity(&self) -> Option<usize> {
        self.recycled.capacity()
    }

    /// Hands the pending batch over if the shard has room; otherwise keeps
    /// accumulating (or, past a memory bound, waits).
    pub fn dispatch(&mut self) -> Result<(), ShardGone> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = mem::take(&mut self.pending);
        let kept = match self.batches.try_send(batch) {
            Ok(()) => {
                self.depths.sent(self.shard);
                None
            }
            Err(TrySendError::Full(batch)) if batch.bytes.len() < MAX_PENDING_BATCH_BYTES => {
                warn_limited!(
                    WRITERS_BEHIND,
                    "writers are behind; holding {} snapshots for the next cycle",
                    batch.snapshot_count()
                );
                Some(batch)
            }
            Err(TrySendError::Full(batch)) => {
                warn_limited!(
                    WRITERS_BEHIND,
                    "writers are far behind; polling waits for them"
                );
                if let Err(e) = self.batches.send(batch) {
                    self.pending = e.into_inner();
                    return Err(self.gone());
                }
                self.depths.sent(self.shard);
                None
            }
            Err(TrySendError::Disconnected(batch)) => {
                self.pending = batch;
                return Err(self.gone());
            }
        };
        match kept {
            Some(batch) => self.pending = batch,
            None => self.pending = self.recycled.try_recv().unwrap_or_default(),
        }
        Ok(())
    }

    /// Sends whatever is pending, waiting for room (shutdown).
    pub fn drain(&mut self) -> Result<(), ShardGone> {
        if self.pending.is_empty() {
            return Ok(());
        }
        match self.batches.send(mem::take(&mut self.pending)) {
            Ok(()) => {
                self.depths.sent(self.shard);
                Ok(())
            }
            Err(e) => {
                self.pending = e.into_inner();
                Err(self.gone())
            }
        }
    }

    fn gone(&self) -> ShardGone {
        ShardGone { shard: self.shard }
    }
}
