//! The exposure gauges' step on the polling thread: every
//! [`INVENTORY_INTERVAL`] one walk of the poller's cache builds the TCP
//! inventory (with the `-remote-states` peers), which is handed to the
//! exposure worker without waiting.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::inventory::{InventoryBuilder, TcpInventory};
use super::peers::PeerFilter;
use super::summary::SummaryCell;
use crate::cache::Cache;
use crate::poller::PollObserver;

/// How often the poller builds a TCP inventory and the worker dumps UDP
/// sockets: a closed listener leaves the gauges within this (plus a poll).
pub const INVENTORY_INTERVAL: Duration = Duration::from_millis(500);

pub struct InventoryObserver {
    builder: InventoryBuilder,
    next_inventory: Instant,
    /// The exposure worker's queue.
    inventories: Sender<TcpInventory>,
    /// Where the time spent walking is counted.
    cell: Arc<SummaryCell>,
}

impl InventoryObserver {
    /// With `peers`, each inventory also collects the sockets whose peer is
    /// inside those ranges (`-remote-states`).
    pub fn new(
        inventories: Sender<TcpInventory>,
        cell: Arc<SummaryCell>,
        peers: Option<PeerFilter>,
    ) -> Self {
        let mut builder = InventoryBuilder::default();
        if let Some(filter) = peers {
            builder.track_peers(filter);
        }
        Self {
            builder,
            next_inventory: Instant::now(),
            inventories,
            cell,
        }
    }
}

impl PollObserver for InventoryObserver {
    fn cycle_finished(&mut self, _interval: Option<Duration>, cache: &Cache) {
        let now = Instant::now();
        if now < self.next_inventory {
            return;
        }
        let inventory = self
            .builder
            .build(cache.iter().map(|(_, entry)| entry.msg()));
        // Full: the worker is still busy with the previous one; a newer
        // inventory follows shortly.
        let _ = self.inventories.try_send(inventory);
        self.cell
            .walk_nanos
            .fetch_add(now.elapsed().as_nanos() as u64, Relaxed);
        self.next_inventory = now + INVENTORY_INTERVAL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inventory_at_once_then_one_per_interval() {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut observer = InventoryObserver::new(tx, Arc::default(), None);
        let cache = Cache::new();
        observer.cycle_finished(None, &cache);
        assert_eq!(rx.try_recv().unwrap(), TcpInventory::default());
        observer.cycle_finished(Some(Duration::from_millis(10)), &cache);
        assert!(
            rx.try_recv().is_err(),
            "the next inventory waits its interval"
        );
    }
}
