//! What the poller hands a writer shard once per cycle: the raw replies of
//! the connections that opened, changed or closed, packed into one buffer so
//! that no record costs an allocation of its own.

use crate::exclusion::AnonymizeMask;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// First sight of a connection; its first snapshot follows as its own
    /// item. `start_ms` is the connection's start time.
    Open {
        start_ms: i64,
        anonymize: AnonymizeMask,
    },
    /// A snapshot to archive: `bytes[start..start + len]` is the reply
    /// payload (inet_diag_msg + attributes) as the kernel sent it.
    Snapshot,
    /// The connection vanished from a complete dump: finish its file.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    pub cookie: u64,
    pub kind: ItemKind,
    /// Milliseconds since the Unix epoch (the dump's timestamp).
    pub timestamp_ms: i64,
    /// The poll (the poller's cycle number) that saw it.
    pub poll: u64,
    pub start: u32,
    pub len: u32,
}

/// A cycle's worth of work for one writer shard.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub items: Vec<Item>,
    /// The poll the items added now belong to (set by the poller at the
    /// start of each cycle; a batch held back spans several).
    pub poll: u64,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }

    /// Gives back memory beyond `bytes` of payload room (and items in
    /// proportion, ~500 bytes each).
    pub fn shrink_to(&mut self, bytes: usize) {
        self.bytes.shrink_to(bytes);
        self.items.shrink_to(bytes / 512);
    }

    pub fn open(&mut self, cookie: u64, timestamp_ms: i64, anonymize: AnonymizeMask) {
        self.items.push(Item {
            cookie,
            kind: ItemKind::Open {
                start_ms: timestamp_ms,
                anonymize,
            },
            timestamp_ms,
            poll: self.poll,
            start: 0,
            len: 0,
        });
    }

    pub fn snapshot(&mut self, cookie: u64, timestamp_ms: i64, payload: &[u8]) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(payload);
        self.items.push(Item {
            cookie,
            kind: ItemKind::Snapshot,
            timestamp_ms,
            poll: self.poll,
            start,
            len: payload.len() as u32,
        });
    }

    pub fn close(&mut self, cookie: u64, timestamp_ms: i64) {
        self.items.push(Item {
            cookie,
            kind: ItemKind::Close,
            timestamp_ms,
            poll: self.poll,
            start: 0,
            len: 0,
        });
    }

    pub fn payload(&self, item: &Item) -> &[u8] {
        &self.bytes[item.start as usize..(item.start + item.len) as usize]
    }

    /// Snapshots in this batch.
    pub fn snapshot_count(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.kind == ItemKind::Snapshot)
            .count()
    }
}
