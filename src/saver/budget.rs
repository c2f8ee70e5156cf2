//! One memory budget for the snapshots every writer shard holds that are
//! not in a file yet (`-max-pending-bytes`). While files can be written the
//! snapshots wait at most a flush interval and the budget is never near;
//! when they cannot (a full disk, no descriptors), they wait for retries,
//! and past the budget the oldest are dropped and counted, so a long fault
//! costs a bounded amount of memory, whatever the number of connections.
//!
//! Each shard publishes its own total (once per batch, not per snapshot); a
//! shard over its share sheds its own oldest snapshots, down to a low-water
//! mark below the limit, so that shedding happens in rounds, not per
//! snapshot.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

#[derive(Debug)]
pub struct PendingBudget {
    used: AtomicUsize,
    limit: usize,
    shards: usize,
}

impl PendingBudget {
    pub fn new(limit: usize, shards: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            limit,
            shards: shards.max(1),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Pending bytes of all shards, as last published.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// A shard's total went from `before` to `after`.
    pub fn publish(&self, before: usize, after: usize) {
        if after > before {
            self.used.fetch_add(after - before, Relaxed);
        } else if before > after {
            self.used.fetch_sub(before - after, Relaxed);
        }
    }

    pub fn exceeded(&self) -> bool {
        self.used() > self.limit
    }

    /// Whether a shard holding `own` bytes should shed more: the whole is
    /// above the low-water mark, and this shard holds more than its share
    /// of it (a shard holding less leaves the shedding to those holding
    /// more, whose oldest lines are older).
    pub fn should_shed(&self, own: usize) -> bool {
        let low_water = self.limit - self.limit / 8;
        self.used() > low_water && own > low_water / self.shards
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shedding_goes_down_to_the_low_water_mark_of_the_shard_share() {
        let budget = PendingBudget::new(800, 2);
        budget.publish(0, 500);
        budget.publish(0, 400);
        assert!(budget.exceeded());
        // Low water 700; a share is 350.
        assert!(budget.should_shed(500));
        assert!(!budget.should_shed(300));
        budget.publish(500, 250);
        assert!(!budget.exceeded());
        assert!(!budget.should_shed(400));
    }
}
