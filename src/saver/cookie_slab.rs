//! A map from socket cookie to a large value (a writer shard's per-connection
//! state, ~220 bytes), kept in a slab indexed by cookie.
//!
//! A hash map holding the values themselves keeps its empty buckets — a
//! third to a half of them at its load factors — at the value's full size,
//! all of them touched and resident: ~2.5 MB of the two shards' maps at
//! 19,000 connections. Boxing each value instead spreads them over the
//! heap between the pending buffers freed and allocated every second, and
//! pins those pages: measured, the steady RSS grew by more than the slack
//! saved. Here the values sit in one vector (its unused tail never
//! touched), the index holds 16-byte buckets, and a slot freed by a
//! removal is the next one taken, so taking a connection out and putting
//! it back (a flush, a rotation) reuses its slot; a snapshot is added in
//! place ([`CookieSlab::place`], [`CookieSlab::at`]).

use ahash::AHashMap;
use slab::Slab;

/// A value's slot in a [`CookieSlab`], and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    slot: usize,
    cookie: u64,
}

#[derive(Debug)]
pub struct CookieSlab<V> {
    slots: Slab<V>,
    index: AHashMap<u64, usize>,
}

impl<V> Default for CookieSlab<V> {
    fn default() -> Self {
        Self {
            slots: Slab::new(),
            index: AHashMap::new(),
        }
    }
}

impl<V> CookieSlab<V> {
    /// Puts `value` under `cookie`; the value it replaces, if any.
    pub fn insert(&mut self, cookie: u64, value: V) -> Option<V> {
        match self.index.get(&cookie) {
            Some(&slot) => Some(std::mem::replace(&mut self.slots[slot], value)),
            None => {
                self.index.insert(cookie, self.slots.insert(value));
                None
            }
        }
    }

    pub fn remove(&mut self, cookie: &u64) -> Option<V> {
        let slot = self.index.remove(cookie)?;
        Some(self.slots.remove(slot))
    }

    pub fn get_mut(&mut self, cookie: &u64) -> Option<&mut V> {
        let slot = *self.index.get(cookie)?;
        self.slots.get_mut(slot)
    }

    /// Where `cookie`'s value is, for [`CookieSlab::at`]: valid until that
    /// cookie is removed.
    pub fn place(&self, cookie: &u64) -> Option<Place> {
        self.index.get(cookie).map(|&slot| Place {
            slot,
            cookie: *cookie,
        })
    }

    /// The value at `place`, found without hashing again. A `place` kept
    /// past the removal of its cookie would name whatever took the slot
    /// next: debug builds check that it is still its cookie's.
    pub fn at(&mut self, place: Place) -> &mut V {
        debug_assert_eq!(
            self.index.get(&place.cookie),
            Some(&place.slot),
            "a stale place"
        );
        &mut self.slots[place.slot]
    }

    /// Every value with its cookie, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&u64, &V)> {
        self.index
            .iter()
            .map(|(cookie, &slot)| (cookie, &self.slots[slot]))
    }

    /// Takes every value out, leaving the map empty.
    pub fn take_all(&mut self) -> impl Iterator<Item = V> {
        self.index.clear();
        std::mem::take(&mut self.slots)
            .into_iter()
            .map(|(_, value)| value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_value_taken_out_and_put_back_takes_its_slot_again() {
        let mut map = CookieSlab::default();
        for cookie in 0..100u64 {
            map.insert(cookie, [cookie; 4]);
        }
        let value = map.remove(&42).unwrap();
        map.insert(42, value);
        assert_eq!(map.slots.len(), 100);
        assert_eq!(map.index[&42], 42, "the slot it left");
    }

    #[derive(Debug, Clone)]
    enum Step {
        Insert(u8, u32),
        Remove(u8),
        Update(u8, u32),
        Drain,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (any::<u8>(), any::<u32>()).prop_map(|(c, v)| Step::Insert(c, v)),
            3 => any::<u8>().prop_map(Step::Remove),
            2 => (any::<u8>(), any::<u32>()).prop_map(|(c, v)| Step::Update(c, v)),
            1 => Just(Step::Drain),
        ]
    }

    proptest! {
        /// It behaves as a hash map of the same steps.
        #[test]
        fn it_holds_what_a_hash_map_would(steps in proptest::collection::vec(step(), 0..200)) {
            let mut map = CookieSlab::default();
            let mut reference = HashMap::new();
            for step in steps {
                match step {
                    Step::Insert(c, v) => {
                        prop_assert_eq!(map.insert(u64::from(c), v), reference.insert(u64::from(c), v));
                    }
                    Step::Remove(c) => {
                        prop_assert_eq!(map.remove(&u64::from(c)), reference.remove(&u64::from(c)));
                    }
                    Step::Update(c, v) => {
                        if let Some(value) = map.get_mut(&u64::from(c)) {
                            *value = v;
                        }
                        if let Some(value) = reference.get_mut(&u64::from(c)) {
                            *value = v;
                        }
                    }
                    Step::Drain => {
                        let mut drained: Vec<_> = map.take_all().collect();
                        let mut expected: Vec<_> = reference.drain().map(|(_, v)| v).collect();
                        drained.sort_unstable();
                        expected.sort_unstable();
                        prop_assert_eq!(drained, expected);
                        prop_assert!(map.slots.is_empty());
                    }
                }
                prop_assert_eq!(map.slots.len(), reference.len());
                let mut held: Vec<_> = map.iter().map(|(c, v)| (*c, *v)).collect();
                let mut expected: Vec<_> = reference.iter().map(|(c, v)| (*c, *v)).collect();
                held.sort_unstable();
                expected.sort_unstable();
                prop_assert_eq!(held, expected);
            }
        }
    }
}
