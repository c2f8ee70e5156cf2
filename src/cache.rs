//! The poller's view of every socket, keyed by socket cookie: the last
//! significant snapshot of each, and which were seen in the current cycle.

use ahash::AHashMap;
use inetdiag::tcp_info::{u64_at, BYTES_ACKED, BYTES_RECEIVED};
use inetdiag::{attribute_kind_at, DiagRecord, InetDiagMsg, INET_DIAG_INFO, INET_DIAG_MSG_LEN};

use crate::compare::Fingerprint;
use crate::exclusion::AnonymizeMask;

/// What the cache keeps per socket: of its last archived reply, only what
/// the change rule and the cache's readers need (~136 bytes in place, no
/// allocation), not the reply itself.
#[derive(Debug)]
pub struct Entry {
    /// What the change rule compares; `None` (no tcp_info) never equals.
    compared: Option<Compared>,
    /// inet_diag_msg: addresses, ports, state, uid and inode for the
    /// exposure inventory.
    msg: [u8; INET_DIAG_MSG_LEN],
    /// `tcpi_bytes_acked` and `tcpi_bytes_received`, for the rates.
    byte_counters: Option<(u64, u64)>,
    last_cycle: u32,
    /// Start of the last cycle that saw it (unix ms).
    seen_ms: i64,
    /// Left out of archives and events (decided once, at first sight).
    pub excluded: bool,
    pub anonymize: AnonymizeMask,
}

/// What the change rule compares in a reply with tcp_info: its
/// fingerprint, and where the tcp_info is. A socket's replies nearly always
/// keep one layout, so the next is fingerprinted there without walking its
/// attributes ([`Cache::file_if_unchanged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Compared {
    fingerprint: Fingerprint,
    info: (u32, u32),
}

impl Compared {
    fn of(record: &DiagRecord) -> Option<Self> {
        let info = record.attribute_span(INET_DIAG_INFO)?;
        Some(Self {
            fingerprint: Fingerprint::over(record.payload(), record.msg().state(), info.clone()),
            info: (info.start as u32, info.end as u32),
        })
    }

    /// Whether `payload` (its inet_diag_msg `msg`) has its tcp_info where
    /// this reply had it, and the same fingerprint there.
    fn matches(&self, payload: &[u8], msg: InetDiagMsg) -> bool {
        let info = self.info.0 as usize..self.info.1 as usize;
        attribute_kind_at(payload, info.clone()) == Some(INET_DIAG_INFO)
            && Fingerprint::over(payload, msg.state(), info) == self.fingerprint
    }
}

impl Entry {
    fn new(record: &DiagRecord, cycle: u32, seen_ms: i64) -> Self {
        let mut entry = Self {
            compared: None,
            msg: [0; INET_DIAG_MSG_LEN],
            byte_counters: None,
            last_cycle: cycle,
            seen_ms,
            excluded: false,
            anonymize: 0,
        };
        entry.keep(record, Compared::of(record));
        entry
    }

    /// `record` is the socket's last archived snapshot now.
    fn keep(&mut self, record: &DiagRecord, compared: Option<Compared>) {
        self.compared = compared;
        self.msg = *record.msg().as_bytes();
        self.byte_counters = record
            .attribute(INET_DIAG_INFO)
            .and_then(|info| Some((u64_at(info, BYTES_ACKED)?, u64_at(info, BYTES_RECEIVED)?)));
    }

    /// inet_diag_msg of the last archived snapshot.
    pub fn msg(&self) -> InetDiagMsg<'_> {
        InetDiagMsg::new(&self.msg)
    }

    /// `(bytes acked, bytes received)` of the last archived snapshot, when
    /// its tcp_info is long enough to carry them.
    pub fn byte_counters(&self) -> Option<(u64, u64)> {
        self.byte_counters
    }
}

/// The outcome of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// A cookie not seen before.
    New,
    /// Significantly different from the cached snapshot, which it replaced.
    Changed,
    Unchanged,
}

/// One socket's place in the slab.
#[derive(Debug)]
struct Slot {
    cookie: u64,
    /// Position in the reply order of the cycle with this parity
    /// (`cycle & 1`): the previous cycle's is read while this one's is
    /// written.
    position: [u32; 2],
    /// False once the socket is gone; the slot waits in the free list for
    /// the next new socket.
    live: bool,
    entry: Entry,
}

/// The kernel dumps sockets in a stable order (hash bucket by bucket, each
/// chain in insertion order), so the cache keeps its entries in a slab and
/// the order in which the last cycle saw them: the next reply is almost
/// always the one after the last, found by one comparison in memory read in
/// sequence. The hash index (a random access, and a cache miss every time:
/// the kernel's walk evicts it between polls) is only consulted when the
/// guess is wrong — a new socket, or one that moved or vanished. (A
/// software prefetch of the next slots' payloads, when slots kept whole
/// replies, was tried and measured no gain: the walk is sequential enough
/// for the hardware prefetcher.)
#[derive(Debug, Default)]
pub struct Cache {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: AHashMap<u64, u32>,
    /// Slots in the order the previous cycle's replies came.
    order: Vec<u32>,
    /// Slots in the order this cycle's replies come.
    next_order: Vec<u32>,
    /// Where in `order` the next reply is expected.
    cursor: usize,
    cycle: u32,
    /// Start of the current cycle (unix ms).
    cycle_ms: i64,
    /// Distinct cookies seen in the current cycle.
    seen: usize,
}

/// Below this many slots the free ones are kept for reuse whatever their
/// share. (Small in unit tests, so that the proptest compacts too.)
const COMPACT_ABOVE: usize = if cfg!(test) { 8 } else { 1024 };

impl Cache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn begin_cycle(&mut self) {
        self.begin_cycle_at(0);
    }

    /// Begins a cycle that started at `now_ms` (unix ms), the time an
    /// absence is measured from.
    pub fn begin_cycle_at(&mut self, now_ms: i64) {
        self.cycle_ms = now_ms;
        self.cycle = self.cycle.wrapping_add(1);
        self.seen = 0;
        self.cursor = 0;
        std::mem::swap(&mut self.order, &mut self.next_order);
        self.next_order.clear();
    }

    /// Goes on with the current cycle at `now_ms` (unix ms) for a poll that
    /// reads only some sockets: their updates neither reorder the cycle
    /// nor count as sightings, and a socket first seen now is seen from
    /// `now_ms`. The next [`Cache::begin_cycle_at`] follows on as if this
    /// poll's replies had come in the last complete one.
    pub fn continue_cycle_at(&mut self, now_ms: i64) {
        self.cycle_ms = now_ms;
    }

    /// The slot of `cookie`: the one the previous cycle had next, or else
    /// from the index (and the cursor moves to just after it).
    fn find(&mut self, cookie: u64) -> Option<u32> {
        let previous = (self.cycle.wrapping_sub(1) & 1) as usize;
        if let Some(&slot) = self.order.get(self.cursor) {
            let s = &self.slots[slot as usize];
            if s.cookie == cookie && s.live {
                self.cursor += 1;
                return Some(slot);
            }
        }
        let slot = *self.index.get(&cookie)?;
        let position = self.slots[slot as usize].position[previous] as usize;
        if self.order.get(position) == Some(&slot) {
            self.cursor = position + 1;
        }
        Some(slot)
    }

    /// Counts `slot` as seen in this cycle, at its place in the order.
    fn see(&mut self, slot: u32) {
        let cycle = self.cycle;
        let Slot {
            position, entry, ..
        } = &mut self.slots[slot as usize];
        if entry.last_cycle != cycle {
            entry.last_cycle = cycle;
            entry.seen_ms = self.cycle_ms;
            self.seen += 1;
            position[(cycle & 1) as usize] = self.next_order.len() as u32;
            self.next_order.push(slot);
        }
    }

    /// True when `payload`, a reply not yet parsed, is of a known socket,
    /// laid out as its last archived reply, and no significant change from
    /// it: then it is filed as seen and needs nothing more. Otherwise
    /// nothing is filed, and the caller parses it and files it with
    /// [`Cache::update`] (a reply that does not parse leaves its socket
    /// unseen, as before).
    ///
    /// Sound without the parse: equal fingerprints mean the same bytes
    /// around the tcp_info (attribute headers included) as a reply that
    /// parsed, so this one would parse alike.
    pub fn file_if_unchanged(&mut self, payload: &[u8]) -> bool {
        let Some(head) = payload.first_chunk::<INET_DIAG_MSG_LEN>() else {
            return false;
        };
        let msg = InetDiagMsg::new(head);
        let cursor = self.cursor;
        let Some(slot) = self.find(msg.cookie()) else {
            return false;
        };
        let unchanged = self.slots[slot as usize]
            .entry
            .compared
            .is_some_and(|compared| compared.matches(payload, msg));
        if unchanged {
            self.see(slot);
        } else {
            // `update` finds it again where this did, without the index.
            self.cursor = cursor;
        }
        unchanged
    }

    /// Files one reply under its cookie.
    pub fn update(&mut self, record: &DiagRecord) -> (Update, &mut Entry) {
        let cookie = record.msg().cookie();
        let slot = match self.find(cookie) {
            Some(slot) => slot,
            None => return self.insert(cookie, record),
        };
        self.see(slot);
        let entry = &mut self.slots[slot as usize].entry;
        let compared = Compared::of(record);
        if compared.is_some() && compared == entry.compared {
            return (Update::Unchanged, entry);
        }
        entry.keep(record, compared);
        (Update::Changed, entry)
    }

    fn insert(&mut self, cookie: u64, record: &DiagRecord) -> (Update, &mut Entry) {
        let cycle = self.cycle;
        let order_position = self.next_order.len() as u32;
        let slot = match self.free.pop() {
            Some(slot) => {
                let s = &mut self.slots[slot as usize];
                s.cookie = cookie;
                s.live = true;
                s.entry = Entry::new(record, cycle, self.cycle_ms);
                slot
            }
            None => {
                self.slots.push(Slot {
                    cookie,
                    position: [0; 2],
                    live: true,
                    entry: Entry::new(record, cycle, self.cycle_ms),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(cookie, slot);
        self.seen += 1;
        let s = &mut self.slots[slot as usize];
        s.position[(cycle & 1) as usize] = order_position;
        self.next_order.push(slot);
        (Update::New, &mut s.entry)
    }

    /// Ends a complete cycle: every cookie not seen in it is gone, and is
    /// handed to `on_close` before it is forgotten.
    pub fn end_cycle(&mut self, on_close: impl FnMut(u64, &Entry)) -> usize {
        self.end_cycle_absent_for(0, on_close)
    }

    /// Ends a complete cycle: every cookie not seen by a cycle for at least
    /// `grace_ms` (unix ms, measured from this cycle's start) is gone, and
    /// is handed to `on_close` before it is forgotten. (One complete dump
    /// is no proof: a multi-part dump can miss a live socket whose hash
    /// chain changed between two reads.)
    pub fn end_cycle_absent_for(
        &mut self,
        grace_ms: i64,
        mut on_close: impl FnMut(u64, &Entry),
    ) -> usize {
        if self.seen == self.index.len() {
            return 0;
        }
        let (cycle, now_ms) = (self.cycle, self.cycle_ms);
        let mut closed = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.live
                && slot.entry.last_cycle != cycle
                && now_ms.saturating_sub(slot.entry.seen_ms) >= grace_ms
            {
                on_close(slot.cookie, &slot.entry);
                slot.live = false;
                self.index.remove(&slot.cookie);
                self.free.push(i as u32);
                closed += 1;
            }
        }
        if self.free.len() > self.index.len() && self.slots.len() >= COMPACT_ABOVE {
            self.compact();
        }
        closed
    }

    /// Drops the free slots once they
    /// outnumber the live ones, so that a surge of connections does not
    /// leave its peak in memory, and in every later `end_cycle` and `iter`.
    /// Runs at the end of a complete cycle: the only order still needed is
    /// this cycle's, whose positions do not change.
    fn compact(&mut self) {
        let mut renumbered = vec![u32::MAX; self.slots.len()];
        let mut kept = Vec::with_capacity(self.index.len());
        for (old, slot) in std::mem::take(&mut self.slots).into_iter().enumerate() {
            if slot.live {
                renumbered[old] = kept.len() as u32;
                kept.push(slot);
            }
        }
        self.slots = kept;
        self.free = Vec::new();
        for slot in self.index.values_mut() {
            *slot = renumbered[*slot as usize];
        }
        // A slot removed this cycle (a destroy notice) may still stand in
        // this cycle's order: it goes, and the positions after it are
        // only a guess from now on, as `find` allows.
        self.next_order
            .retain(|&slot| renumbered[slot as usize] != u32::MAX);
        for slot in &mut self.next_order {
            *slot = renumbered[*slot as usize];
        }
        self.index.shrink_to_fit();
        self.order = Vec::new();
    }

    /// Forgets `cookie` at once (its socket was destroyed); false if it
    /// was not known.
    pub fn remove(&mut self, cookie: u64) -> bool {
        let Some(slot) = self.index.remove(&cookie) else {
            return false;
        };
        let s = &mut self.slots[slot as usize];
        s.live = false;
        if s.entry.last_cycle == self.cycle {
            self.seen -= 1;
        }
        self.free.push(slot);
        true
    }

    pub fn contains(&self, cookie: u64) -> bool {
        self.index.contains_key(&cookie)
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Entry)> {
        self.slots
            .iter()
            .filter(|s| s.live)
            .map(|s| (s.cookie, &s.entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::compare;

    /// A reply; with `info_byte` 2 its tcp_info comes after another
    /// attribute (another layout), and with 3 it has no tcp_info.
    fn reply(cookie: u64, state: u8, info_byte: u8) -> Vec<u8> {
        let mut v = vec![0u8; 72];
        v[0] = inetdiag::AF_INET;
        v[1] = state;
        v[44..52].copy_from_slice(&cookie.to_le_bytes());
        if info_byte >= 2 {
            v.extend_from_slice(&20u16.to_ne_bytes());
            v.extend_from_slice(&inetdiag::INET_DIAG_MEMINFO.to_ne_bytes());
            v.extend_from_slice(&[info_byte; 16]);
        }
        if info_byte == 3 {
            return v;
        }
        let info = vec![info_byte; 200];
        v.extend_from_slice(&((info.len() + 4) as u16).to_ne_bytes());
        v.extend_from_slice(&inetdiag::INET_DIAG_INFO.to_ne_bytes());
        v.extend_from_slice(&info);
        v
    }

    /// As the poller files a reply: unparsed if it can be, else parsed.
    fn update(cache: &mut Cache, bytes: &[u8]) -> Update {
        if cache.file_if_unchanged(bytes) {
            return Update::Unchanged;
        }
        parsed(cache, bytes)
    }

    /// Always parsed (as destroy notices are).
    fn parsed(cache: &mut Cache, bytes: &[u8]) -> Update {
        cache.update(&DiagRecord::parse(bytes).unwrap()).0
    }

    #[test]
    fn an_unchanged_reply_is_told_apart_without_a_parse_and_any_other_is_not() {
        let mut c = Cache::new();
        c.begin_cycle();
        assert!(!c.file_if_unchanged(&reply(1, 1, 0)), "unknown");
        assert_eq!(parsed(&mut c, &reply(1, 1, 0)), Update::New);
        c.begin_cycle();
        assert!(c.file_if_unchanged(&reply(1, 1, 0)));
        assert_eq!(c.seen, 1, "seen in this cycle");
        assert!(!c.file_if_unchanged(&reply(1, 4, 0)), "another state");
        assert!(!c.file_if_unchanged(&reply(1, 1, 9)), "other counters");
        assert!(!c.file_if_unchanged(&reply(1, 1, 2)), "another layout");
        assert!(!c.file_if_unchanged(&reply(1, 1, 0)[..100]), "cut short");
        assert!(
            !c.file_if_unchanged(&reply(1, 1, 0)[..40]),
            "not even an inet_diag_msg"
        );
        assert_eq!(parsed(&mut c, &reply(1, 1, 2)), Update::Changed);
        assert!(c.file_if_unchanged(&reply(1, 1, 2)), "its new layout");
        c.begin_cycle();
        assert!(!c.file_if_unchanged(&reply(1, 1, 9)));
        assert_eq!(c.seen, 0, "a changed reply is left for the parse to file");
        assert_eq!(parsed(&mut c, &reply(1, 1, 3)), Update::Changed);
        assert!(
            !c.file_if_unchanged(&reply(1, 1, 3)),
            "no tcp_info: never unchanged"
        );
        assert_eq!(c.seen, 1);
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
        assert_eq!(update(&mut c, &reply(1, 1, 9)), Update::Changed);
        c.begin_cycle();
        assert_eq!(update(&mut c, &reply(1, 4, 9)), Update::Changed);
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

    #[test]
    fn a_surge_that_goes_away_leaves_no_slots_behind() {
        let mut c = Cache::new();
        c.begin_cycle();
        for cookie in 0..20 {
            update(&mut c, &reply(cookie, 1, 0));
        }
        c.end_cycle(|_, _| {});
        c.begin_cycle();
        for cookie in [3, 17, 5, 11, 2] {
            update(&mut c, &reply(cookie, 1, 0));
        }
        assert_eq!(c.end_cycle(|_, _| {}), 15);
        assert_eq!((c.slots.len(), c.free.len(), c.len()), (5, 0, 5));
        c.begin_cycle();
        for cookie in [3, 17, 5, 11, 2] {
            assert_eq!(update(&mut c, &reply(cookie, 1, 0)), Update::Unchanged);
        }
        assert_eq!(c.cursor, 5, "the kept order still guides the walk");
        assert_eq!(update(&mut c, &reply(40, 1, 0)), Update::New);
        assert_eq!(c.end_cycle(|_, _| panic!("nothing closed")), 0);
        let mut live: Vec<u64> = c.iter().map(|(cookie, _)| cookie).collect();
        live.sort_unstable();
        assert_eq!(live, [2, 3, 5, 11, 17, 40]);
    }

    /// The cache's behaviour without the dump-order cursor: a map from
    /// cookie to last significant payload.
    #[derive(Default)]
    struct Model {
        /// Cookie → (last significant payload, when last seen).
        entries: std::collections::HashMap<u64, (Vec<u8>, i64)>,
        now_ms: i64,
    }

    impl Model {
        fn begin_cycle(&mut self, now_ms: i64) {
            self.now_ms = now_ms;
        }

        fn update(&mut self, bytes: &[u8]) -> Update {
            let record = DiagRecord::parse(bytes).unwrap();
            let cookie = record.msg().cookie();
            let Some((payload, seen)) = self.entries.get_mut(&cookie) else {
                self.entries.insert(cookie, (bytes.to_vec(), self.now_ms));
                return Update::New;
            };
            *seen = self.now_ms;
            let change = compare(&DiagRecord::parse(payload).unwrap(), &record);
            if !change.is_significant() {
                return Update::Unchanged;
            }
            *payload = bytes.to_vec();
            Update::Changed
        }

        fn end_cycle(&mut self, grace_ms: i64) -> Vec<u64> {
            let now = self.now_ms;
            let gone = |seen: i64| seen != now && now - seen >= grace_ms;
            let mut closed: Vec<u64> = self
                .entries
                .iter()
                .filter(|(_, (_, seen))| gone(*seen))
                .map(|(&c, _)| c)
                .collect();
            self.entries.retain(|_, (_, seen)| !gone(*seen));
            closed.sort_unstable();
            closed
        }
    }

    proptest::proptest! {
        /// Whatever the order of replies from cycle to cycle (stable,
        /// shuffled, sockets appearing, vanishing, repeated, incomplete
        /// cycles, destroyed between replies, closed at once or after an
        /// absence), the cursor gives what a plain map gives.
        #[test]
        fn the_dump_order_walk_matches_a_plain_map(
            cycles in proptest::collection::vec(
                (
                    proptest::collection::vec((0u64..24, proptest::sample::select(vec![1u8, 4]), 0u8..4), 0..40),
                    proptest::bool::weighted(0.9),
                    proptest::bool::ANY,
                    proptest::collection::vec(0u64..24, 0..3),
                ),
                1..30,
            ),
            grace_ms in proptest::sample::select(vec![0i64, 20, 50]),
        ) {
            let mut cache = Cache::new();
            let mut model = Model::default();
            let mut previous: Vec<(u64, u8, u8)> = Vec::new();
            for (cycle, (replies, complete, repeat_previous, destroyed)) in cycles.into_iter().enumerate() {
                // Half the cycles replay the previous order with some
                // changes, as the kernel's stable dump order does.
                let replies = if repeat_previous && !previous.is_empty() {
                    let mut r = previous.clone();
                    for (i, extra) in replies.into_iter().enumerate() {
                        if i % 3 == 0 && !r.is_empty() {
                            r.remove(i % r.len());
                        } else {
                            r.insert(i % (r.len() + 1), extra);
                        }
                    }
                    r
                } else {
                    replies
                };
                let now_ms = cycle as i64 * 10;
                cache.begin_cycle_at(now_ms);
                model.begin_cycle(now_ms);
                for &(cookie, state, info) in &replies {
                    let bytes = reply(cookie, state, info);
                    // Half the cycles file every reply parsed, as destroy
                    // notices are; the rest as dumped replies are.
                    let update = if cycle % 2 == 0 { update } else { parsed };
                    proptest::prop_assert_eq!(update(&mut cache, &bytes), model.update(&bytes));
                }
                for cookie in destroyed {
                    proptest::prop_assert_eq!(
                        cache.remove(cookie),
                        model.entries.remove(&cookie).is_some()
                    );
                }
                if complete {
                    let mut closed = Vec::new();
                    let count = cache.end_cycle_absent_for(grace_ms, |cookie, _| closed.push(cookie));
                    closed.sort_unstable();
                    proptest::prop_assert_eq!(count, closed.len());
                    proptest::prop_assert_eq!(closed, model.end_cycle(grace_ms));
                }
                proptest::prop_assert_eq!(cache.len(), model.entries.len());
                // What the cache kept of each socket's last significant
                // snapshot is what the model's copy gives.
                let kept = |c: u64, msg: &[u8], fingerprint, counters| {
                    (c, msg.to_vec(), format!("{fingerprint:?}"), counters)
                };
                let mut live: Vec<_> = cache
                    .iter()
                    .map(|(c, e)| {
                        let fingerprint = e.compared.map(|compared| compared.fingerprint);
                        kept(c, e.msg().as_bytes(), fingerprint, e.byte_counters())
                    })
                    .collect();
                live.sort();
                let mut expected: Vec<_> = model
                    .entries
                    .iter()
                    .map(|(&c, (p, _))| {
                        let record = DiagRecord::parse(p).unwrap();
                        let counters = record.attribute(INET_DIAG_INFO).and_then(|info| {
                            Some((u64_at(info, BYTES_ACKED)?, u64_at(info, BYTES_RECEIVED)?))
                        });
                        kept(c, &p[..INET_DIAG_MSG_LEN], Fingerprint::of(&record), counters)
                    })
                    .collect();
                expected.sort();
                proptest::prop_assert_eq!(live, expected);
                previous = replies;
            }
        }
    }
}
