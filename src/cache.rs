//! The poller's view of every socket, keyed by socket cookie: the last
//! significant snapshot of each, and which were seen in the current cycle.

use std::collections::hash_map::Entry as MapEntry;

use ahash::AHashMap;
use inetdiag::DiagRecord;

use crate::compare::{compare, unchanged_fast, ChangeType};
use crate::exclusion::AnonymizeMask;

/// What the cache keeps per socket.
#[derive(Debug)]
pub struct Entry {
    /// The last archived reply (inet_diag_msg + attributes).
    payload: Vec<u8>,
    last_cycle: u32,
    /// Left out of archives and events (decided once, at first sight).
    pub excluded: bool,
    pub anonymize: AnonymizeMask,
}

impl Entry {
    /// The last significant snapshot. Entries only hold replies that parsed.
    pub fn record(&self) -> Option<DiagRecord<'_>> {
        DiagRecord::parse(&self.payload).ok()
    }
}

/// The outcome of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// A cookie not seen before.
    New,
    /// Significantly different from the cached snapshot, which it replaced.
    Changed(ChangeType),
    Unchanged,
}

#[derive(Debug, Default)]
pub struct Cache {
    entries: AHashMap<u64, Entry>,
    cycle: u32,
    /// Distinct cookies seen in the current cycle.
    seen: usize,
}

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn begin_cycle(&mut self) {
        self.cycle = self.cycle.wrapping_add(1);
        self.seen = 0;
    }

    /// Files one reply under its cookie.
    pub fn update(&mut self, record: &DiagRecord) -> (Update, &mut Entry) {
        let cycle = self.cycle;
        match self.entries.entry(record.msg().cookie()) {
            MapEntry::Occupied(slot) => {
                let entry = slot.into_mut();
                if entry.last_cycle != cycle {
                    entry.last_cycle = cycle;
                    self.seen += 1;
                }
                if unchanged_fast(&entry.payload, record) {
                    return (Update::Unchanged, entry);
                }
                let change = match entry.record() {
                    Some(previous) => compare(&previous, record),
                    None => ChangeType::Other,
                };
                if !change.is_significant() {
                    return (Update::Unchanged, entry);
                }
                entry.payload.clear();
                entry.payload.extend_from_slice(record.payload());
                (Update::Changed(change), entry)
            }
            MapEntry::Vacant(slot) => {
                self.seen += 1;
                let entry = slot.insert(Entry {
                    payload: record.payload().to_vec(),
                    last_cycle: cycle,
                    excluded: false,
                    anonymize: 0,
                });
                (Update::New, entry)
            }
        }
    }

    /// Ends a complete cycle: every cookie not seen in it is gone, and is
    /// handed to `on_close` before it is forgotten.
    pub fn end_cycle(&mut self, mut on_close: impl FnMut(u64, &Entry)) -> usize {
        if self.seen == self.entries.len() {
            return 0;
        }
        let cycle = self.cycle;
        let before = self.entries.len();
        self.entries.retain(|&cookie, entry| {
            let alive = entry.last_cycle == cycle;
            if !alive {
                on_close(cookie, entry);
            }
            alive
        });
        before - self.entries.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.entries.iter().map(|(&c, e)| (c, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(cookie: u64, state: u8, info_byte: u8) -> Vec<u8> {
        let mut v = vec![0u8; 72];
        v[0] = inetdiag::AF_INET;
        v[1] = state;
        v[44..52].copy_from_slice(&cookie.to_le_bytes());
        let info = vec![info_byte; 200];
        v.extend_from_slice(&((info.len() + 4) as u16).to_ne_bytes());
        v.extend_from_slice(&inetdiag::INET_DIAG_INFO.to_ne_bytes());
        v.extend_from_slice(&info);
        v
    }

    fn update(cache: &mut Cache, bytes: &[u8]) -> Update {
        cache.update(&DiagRecord::parse(bytes).unwrap()).0
    }

    #[test]
    fn first_sight_then_change_then_quiet() {
        let mut c = Cache::new();
        c.begin_cycle();
        assert_eq!(update(&mut c, &reply(1, 1, 0)), Update::New);
        assert_eq!(c.end_cycle(|_, _| panic!("nothing closed")), 0);
        c.begin_cycle();
        assert_eq!(update(&mut c, &reply(1, 1, 0)), Update::Unchanged);
        c.begin_cycle();
        assert_eq!(
            update(&mut c, &reply(1, 1, 9)),
            Update::Changed(ChangeType::Counts)
        );
        c.begin_cycle();
        assert_eq!(
            update(&mut c, &reply(1, 4, 9)),
            Update::Changed(ChangeType::StateChange)
        );
    }

    #[test]
    fn a_cookie_missing_from_a_complete_cycle_is_closed() {
        let mut c = Cache::new();
        c.begin_cycle();
        update(&mut c, &reply(1, 1, 0));
        update(&mut c, &reply(2, 1, 0));
        c.end_cycle(|_, _| {});
        c.begin_cycle();
        update(&mut c, &reply(2, 1, 0));
        let mut closed = Vec::new();
        assert_eq!(c.end_cycle(|cookie, _| closed.push(cookie)), 1);
        assert_eq!(closed, vec![1]);
        assert_eq!(c.len(), 1);
    }
}
