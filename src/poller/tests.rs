//! The poller on dumps captured from a real kernel and played back
//! (`testdata/netlink/story.dumps`; see inetdiag's `capture_dumps` example
//! for the story): no root, no live socket table.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver};
use inetdiag::notices::{NoticeBatch, NoticeReplay, NoticeSocket, NoticeSource};
use inetdiag::replay::{read_capture, CapturedDump, Replay, Reply};
use inetdiag::{DiagRecord, AF_INET, AF_INET6, AF_UNSPEC};

use super::{NoticeConfig, Poller, PollerConfig};
use crate::exclusion::{Anonymization, Anonymizer, Exclusion};
use crate::saver::{Batch, ItemKind, QueueDepths, ShardGone, ShardQueue};
use crate::stats::Stats;

fn story() -> Vec<CapturedDump> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/netlink/story.dumps");
    read_capture(&std::fs::read(path).expect("captured story")).expect("a valid capture")
}

/// A connection end in the story, by its local and remote port.
type Ends = (u16, u16);
const LISTEN_V4: Ends = (7001, 0);
const LISTEN_V6: Ends = (7002, 0);
const A_CLIENT: Ends = (7101, 7001);
const A_SERVER: Ends = (7001, 7101);
const B_CLIENT: Ends = (7102, 7002);
const B_SERVER: Ends = (7002, 7102);
const C_CLIENT: Ends = (7103, 7001);
const C_SERVER: Ends = (7001, 7103);

fn ends_of(record: &[u8]) -> Ends {
    let msg = DiagRecord::parse(record).expect("kernel bytes").msg();
    (msg.sport(), msg.dport())
}

fn cookie_of(dump: &CapturedDump, ends: Ends) -> u64 {
    dump.records()
        .iter()
        .map(|r| DiagRecord::parse(r).expect("kernel bytes").msg())
        .find(|m| (m.sport(), m.dport()) == ends)
        .map(|m| m.cookie())
        .unwrap_or_else(|| panic!("{ends:?} in the dump"))
}

/// Dump 1 of the story (every connection established), and the same
/// without connection B's two ends.
fn with_and_without_b() -> (CapturedDump, CapturedDump) {
    let all = story()[1].clone();
    let without_b = without(&all, &[B_CLIENT, B_SERVER]);
    (all, without_b)
}

/// `dump` without the sockets at `gone`.
fn without(dump: &CapturedDump, gone: &[Ends]) -> CapturedDump {
    CapturedDump::from_records(
        dump.records()
            .into_iter()
            .filter(|r| !gone.contains(&ends_of(r))),
    )
}

struct Rig<N: NoticeSource = NoticeSocket> {
    poller: Poller<Replay, N>,
    batches: Vec<Receiver<Batch>>,
    stats: Arc<Stats>,
}

fn rig(script: Vec<Reply>, shards: usize) -> Rig {
    let stats = Arc::new(Stats::default());
    let depths = QueueDepths::new(shards, 64);
    let mut queues = Vec::new();
    let mut batches = Vec::new();
    for shard in 0..shards {
        let (tx, rx) = bounded(64);
        let (_recycle_tx, recycle_rx) = unbounded();
        queues.push(ShardQueue::new(shard, tx, recycle_rx, Arc::clone(&depths)));
        batches.push(rx);
    }
    let reps = script.len() as u64;
    let poller = Poller::new(
        PollerConfig {
            poll_interval: Duration::from_millis(1),
            reps,
            stats_interval: Duration::from_secs(3600),
        },
        Replay::new(script),
        // The story runs on loopback.
        Exclusion::new(false, Vec::new(), Vec::new()),
        Anonymizer::new(Anonymization::None),
        queues,
        Vec::new(),
        Arc::clone(&stats),
    );
    Rig {
        poller,
        batches,
        stats,
    }
}

/// What the writers were handed, per cookie: opens, snapshots, closes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Handed {
    opens: usize,
    snapshots: usize,
    closes: usize,
}

impl Rig {
    /// The same rig, reading destroy notices from `notices`.
    fn with_notices(self, notices: Vec<NoticeBatch>, config: NoticeConfig) -> Rig<NoticeReplay> {
        Rig {
            poller: self.poller.with_notices(NoticeReplay::new(notices), config),
            batches: self.batches,
            stats: self.stats,
        }
    }
}

impl<N: NoticeSource> Rig<N> {
    fn run(&mut self) -> Result<u64, ShardGone> {
        self.poller.run(&AtomicBool::new(false))
    }

    /// Every batch handed over so far, items in order.
    fn items(&self) -> Vec<(u64, ItemKind)> {
        let mut items = Vec::new();
        for rx in &self.batches {
            for batch in rx.try_iter() {
                items.extend(batch.items.iter().map(|i| (i.cookie, i.kind)));
            }
        }
        items
    }

    /// The family of every dump request, in order.
    fn families(&self) -> Vec<u8> {
        let requests = self.poller.source().requests();
        requests.iter().map(|r| r.family).collect()
    }

    fn handed(&self) -> BTreeMap<u64, Handed> {
        let mut by_cookie: BTreeMap<u64, Handed> = BTreeMap::new();
        for (cookie, kind) in self.items() {
            let h = by_cookie.entry(cookie).or_default();
            match kind {
                ItemKind::Open { .. } => h.opens += 1,
                ItemKind::Snapshot => h.snapshots += 1,
                ItemKind::Close => h.closes += 1,
            }
        }
        by_cookie
    }
}

fn replies(dumps: impl IntoIterator<Item = CapturedDump>) -> Vec<Reply> {
    dumps.into_iter().map(Reply::Dump).collect()
}

#[test]
fn the_story_opens_changes_and_closes_what_the_kernel_showed() {
    let dumps = story();
    let mut rig = rig(replies(dumps.clone()), 2);
    assert_eq!(rig.run(), Ok(8));

    let handed = rig.handed();
    let at = |ends| handed[&cookie_of(&dumps[1], ends)];
    assert_eq!(handed.len(), 8, "two listeners and six connection ends");
    for ends in [
        LISTEN_V4, LISTEN_V6, A_CLIENT, A_SERVER, B_CLIENT, B_SERVER, C_CLIENT, C_SERVER,
    ] {
        assert_eq!(at(ends).opens, 1, "{ends:?} opened once");
    }
    // Closed: B (dump 5) and C (dump 6); the listeners and A live on.
    for ends in [B_CLIENT, B_SERVER, C_CLIENT, C_SERVER] {
        assert_eq!(at(ends).closes, 1, "{ends:?} closed once");
    }
    for ends in [LISTEN_V4, LISTEN_V6, A_CLIENT, A_SERVER] {
        assert_eq!(at(ends).closes, 0, "{ends:?} still open");
    }
    // A's transfer is a change at both ends; B's client close (FIN_WAIT2,
    // CLOSE_WAIT) too; the listeners never change.
    assert!(at(A_CLIENT).snapshots >= 2 && at(A_SERVER).snapshots >= 2);
    assert!(at(B_CLIENT).snapshots >= 2 && at(B_SERVER).snapshots >= 2);
    assert_eq!(at(LISTEN_V4).snapshots, 1);
    assert_eq!(at(LISTEN_V6).snapshots, 1);

    let queued: usize = handed.values().map(|h| h.snapshots).sum();
    assert_eq!(rig.stats.queued.load(Relaxed), queued as u64);
    assert_eq!(rig.stats.closed.load(Relaxed), 4);
    assert_eq!(rig.stats.new.load(Relaxed), 8);
    assert!(rig.families().iter().all(|&f| f == AF_UNSPEC));
}

#[test]
fn an_unchanged_dump_hands_nothing_over() {
    let dumps = story();
    let mut rig = rig(replies([dumps[1].clone(), dumps[1].clone()]), 1);
    rig.run().unwrap();
    let items = rig.items();
    assert_eq!(
        items.len(),
        16,
        "8 opens and 8 first snapshots, then nothing"
    );
}

#[test]
fn a_failed_dump_closes_nothing() {
    let (all, without_b) = with_and_without_b();
    let script = vec![
        Reply::Dump(all.clone()),
        // Half the sockets arrive, then the socket fails.
        Reply::BreakOff {
            dump: CapturedDump::from_records_in(without_b.records(), 3),
            datagrams: 1,
            errno: libc::ENOBUFS,
        },
        Reply::BreakOff {
            dump: without_b,
            datagrams: 0,
            errno: libc::EIO,
        },
        Reply::Dump(all),
    ];
    let mut rig = rig(script, 1);
    assert_eq!(rig.run(), Ok(4));
    let handed = rig.handed();
    assert!(handed.values().all(|h| h.opens == 1 && h.closes == 0));
    assert_eq!(rig.stats.netlink_errors.load(Relaxed), 2);
    assert_eq!(rig.stats.closed.load(Relaxed), 0);
}

#[test]
fn an_interrupted_dump_closes_nothing_and_a_later_complete_one_does() {
    let (all, without_b) = with_and_without_b();
    let script = replies([
        all.clone(),
        // NLM_F_DUMP_INTR: the table changed under the dump, B was missed.
        without_b.clone().interrupted(),
        all.clone(),
        // A complete, consistent dump without B: now B is gone.
        without_b,
    ]);
    let mut rig = rig(script, 1);
    rig.run().unwrap();
    let handed = rig.handed();
    let b_client = handed[&cookie_of(&all, B_CLIENT)];
    let b_server = handed[&cookie_of(&all, B_SERVER)];
    assert_eq!(
        b_client,
        Handed {
            opens: 1,
            snapshots: 1,
            closes: 1
        }
    );
    assert_eq!(b_server, b_client);
    assert_eq!(rig.stats.interrupted_dumps.load(Relaxed), 1);
    assert_eq!(rig.stats.closed.load(Relaxed), 2);
}

/// Appends an attribute of type `kind` to a reply.
fn with_attribute(record: &[u8], kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = record.to_vec();
    out.resize((out.len() + 3) & !3, 0);
    out.extend_from_slice(&((payload.len() + 4) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn an_attribute_type_above_63_keeps_the_rest_of_the_record() {
    let dumps = story();
    let future = |dump: &CapturedDump| {
        CapturedDump::from_records(dump.records().into_iter().map(|r| {
            if ends_of(&r) == A_CLIENT {
                with_attribute(&r, 70, &[0xab; 8])
            } else {
                r
            }
        }))
    };
    let mut rig = rig(replies([future(&dumps[1]), future(&dumps[2])]), 1);
    rig.run().unwrap();
    let a = rig.handed()[&cookie_of(&dumps[1], A_CLIENT)];
    assert_eq!(
        a,
        Handed {
            opens: 1,
            snapshots: 1,
            closes: 0
        }
    );
    assert_eq!(rig.stats.parse_errors.load(Relaxed), 0);
    // Seen in both dumps, archived from the first only (the second is no
    // change): counted where a snapshot lost it.
    assert_eq!(rig.stats.skipped_attributes.load(Relaxed), 1);
}

#[test]
fn a_refused_all_families_dump_falls_back_to_one_dump_per_family() {
    let all = story()[1].clone();
    let mut script = vec![Reply::Refuse {
        errno: libc::EINVAL,
    }];
    script.extend(replies([all.clone(), all.clone(), all.clone(), all]));
    let mut rig = rig(script, 1);
    // Five replies, two cycles: the refusal is not a cycle of its own.
    rig.poller.config.reps = 2;
    rig.run().unwrap();
    assert_eq!(
        rig.families(),
        [AF_UNSPEC, AF_INET6, AF_INET, AF_INET6, AF_INET],
        "IPv6 then IPv4, as M-Lab's tool asks"
    );
    let handed = rig.handed();
    assert_eq!(handed.len(), 8);
    assert!(handed
        .values()
        .all(|h| h.opens == 1 && h.snapshots == 1 && h.closes == 0));
    assert_eq!(rig.stats.netlink_errors.load(Relaxed), 0);
}

#[test]
fn a_refusal_after_the_all_families_dump_worked_is_a_failed_dump() {
    let dumps = story();
    let all = dumps[1].clone();
    let script = vec![
        Reply::Dump(all.clone()),
        Reply::Refuse {
            errno: libc::EINVAL,
        },
        Reply::Dump(all),
    ];
    let mut rig = rig(script, 1);
    rig.run().unwrap();
    assert!(rig.families().iter().all(|&f| f == AF_UNSPEC));
    assert_eq!(rig.stats.netlink_errors.load(Relaxed), 1);
    assert_eq!(rig.stats.closed.load(Relaxed), 0);
}

/// Dumps that alternate between before and after A's transfer: every cycle
/// has two changed connections to hand over.
fn flapping(cycles: usize) -> Vec<Reply> {
    let dumps = story();
    (0..cycles)
        .map(|i| Reply::Dump(dumps[2 + i % 2].clone()))
        .collect()
}

#[test]
fn writers_that_fall_behind_never_stall_polling_or_lose_a_snapshot() {
    let cycles = 200;
    let stats = Arc::new(Stats::default());
    let depths = QueueDepths::new(1, 4);
    let (tx, rx) = bounded(4);
    let (_recycle_tx, recycle_rx) = unbounded();
    let mut poller = Poller::new(
        PollerConfig {
            poll_interval: Duration::from_micros(100),
            reps: cycles as u64,
            stats_interval: Duration::from_secs(3600),
        },
        Replay::new(flapping(cycles)),
        Exclusion::new(false, Vec::new(), Vec::new()),
        Anonymizer::new(Anonymization::None),
        vec![ShardQueue::new(0, tx, recycle_rx, Arc::clone(&depths))],
        Vec::new(),
        Arc::clone(&stats),
    );
    let polling = std::thread::spawn(move || poller.run(&AtomicBool::new(false)));
    // Nobody reads the queue (4 batches) while all 200 cycles run.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats.polls.load(Relaxed) < cycles as u64 {
        assert!(Instant::now() < deadline, "polling stalled on a full queue");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(depths.read().next(), Some((4, 4)), "the queue is full");
    // Now the writer catches up: nothing was lost on the way.
    let mut snapshots = 0;
    let mut batches = 0;
    loop {
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(batch) => {
                batches += 1;
                snapshots += batch.snapshot_count();
            }
            Err(_) if polling.is_finished() && rx.is_empty() => break,
            Err(_) => assert!(Instant::now() < deadline, "the poller never finished"),
        }
    }
    assert_eq!(polling.join().unwrap(), Ok(cycles as u64));
    assert!(
        batches <= 6,
        "held snapshots travel together ({batches} batches)"
    );
    assert_eq!(snapshots as u64, stats.queued.load(Relaxed));
    assert_eq!(stats.queued.load(Relaxed), 8 + 2 * (cycles as u64 - 1));
}

/// The story's cookies fall on both of two shards (`cookie % 2`).
fn assert_both_shards_have_connections(dump: &CapturedDump) {
    let odd = dump
        .records()
        .iter()
        .filter(|r| DiagRecord::parse(r).unwrap().msg().cookie() % 2 == 1)
        .count();
    assert!(odd > 0 && odd < dump.records().len(), "{odd} odd cookies");
}

#[test]
fn a_stopped_shard_does_not_keep_the_others_from_their_batches() {
    let dumps = story();
    assert_both_shards_have_connections(&dumps[1]);
    let mut rig = rig(replies([dumps[1].clone(), dumps[2].clone()]), 2);
    // Shard 0's writer is gone before the first hand-over.
    drop(rig.batches.remove(0));
    assert_eq!(rig.run(), Err(ShardGone { shard: 0 }));
    let handed = rig.handed();
    let on_shard_1: Vec<u64> = dumps[1]
        .records()
        .iter()
        .map(|r| DiagRecord::parse(r).unwrap().msg().cookie())
        .filter(|c| c % 2 == 1)
        .collect();
    assert_eq!(handed.len(), on_shard_1.len());
    for cookie in on_shard_1 {
        assert_eq!(
            handed[&cookie],
            Handed {
                opens: 1,
                snapshots: 1,
                closes: 0
            },
            "shard 1 got cookie {cookie:#x}"
        );
    }
}

#[test]
fn a_stopped_writer_stops_the_poller_instead_of_hanging_it() {
    assert_both_shards_have_connections(&story()[2]);
    let stats = Arc::new(Stats::default());
    let depths = QueueDepths::new(2, 4);
    let (tx0, rx0) = bounded(4);
    let (tx1, rx1) = bounded::<Batch>(4);
    let (_r0, recycle0) = unbounded();
    let (_r1, recycle1) = unbounded();
    // Shard 1's thread takes one batch, then dies.
    let dying = std::thread::spawn(move || {
        let _ = rx1.recv();
        panic!("writer shard dies");
    });
    let mut poller = Poller::new(
        PollerConfig {
            poll_interval: Duration::from_micros(100),
            // Until stopped: only the dead shard can end it.
            reps: 0,
            stats_interval: Duration::from_secs(3600),
        },
        Replay::new(flapping(10_000)),
        Exclusion::new(false, Vec::new(), Vec::new()),
        Anonymizer::new(Anonymization::None),
        vec![
            ShardQueue::new(0, tx0, recycle0, Arc::clone(&depths)),
            ShardQueue::new(1, tx1, recycle1, Arc::clone(&depths)),
        ],
        Vec::new(),
        Arc::clone(&stats),
    );
    let started = Instant::now();
    let (done_tx, done_rx) = bounded(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(poller.run(&AtomicBool::new(false)));
    });
    // Shard 0 keeps reading, as a healthy writer would.
    let result = loop {
        if let Ok(result) = done_rx.try_recv() {
            break result;
        }
        let _ = rx0.recv_timeout(Duration::from_millis(1));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the poller hangs on a dead writer"
        );
    };
    assert!(dying.join().is_err());
    assert_eq!(result, Err(ShardGone { shard: 1 }));
}

/// `record` as its destroy notice would carry it: the same socket, in
/// TCP_CLOSE (the kernel's notices are ordinary inet_diag replies).
fn destroyed(record: &[u8]) -> Vec<u8> {
    let mut notice = record.to_vec();
    notice[1] = inetdiag::TCP_CLOSE;
    notice
}

/// The notices of the sockets at `ends` in `dump`.
fn notices_of(dump: &CapturedDump, ends: &[Ends]) -> NoticeBatch {
    NoticeBatch::from_records(
        dump.records()
            .iter()
            .filter(|r| ends.contains(&ends_of(r)))
            .map(|r| destroyed(r)),
    )
}

const NOTICES: NoticeConfig = NoticeConfig {
    close_absent_after: Duration::from_secs(3600),
    archive_short_connections: false,
};

#[test]
fn a_destroy_notice_is_the_last_snapshot_and_closes_the_connection_at_once() {
    let (all, without_b) = with_and_without_b();
    let mut rig = rig(replies([all.clone(), without_b.clone(), without_b]), 1).with_notices(
        vec![
            NoticeBatch::default(),
            notices_of(&all, &[B_CLIENT, B_SERVER]),
        ],
        NOTICES,
    );
    rig.run().unwrap();
    let items = rig.items();
    for ends in [B_CLIENT, B_SERVER] {
        let cookie = cookie_of(&all, ends);
        let kinds: Vec<&'static str> = items
            .iter()
            .filter(|(c, _)| *c == cookie)
            .map(|(_, kind)| match kind {
                ItemKind::Open { .. } => "open",
                ItemKind::Snapshot => "snapshot",
                ItemKind::Close => "close",
            })
            .collect();
        assert_eq!(
            kinds,
            ["open", "snapshot", "snapshot", "close"],
            "{ends:?}: the notice's snapshot (a state change) is the last, then the close"
        );
    }
    assert_eq!(rig.stats.destroy_notices.load(Relaxed), 2);
    assert_eq!(rig.stats.closed.load(Relaxed), 2);
    assert_eq!(rig.stats.absent_closes.load(Relaxed), 0);
}

#[test]
fn with_notices_an_absence_closes_only_after_the_grace_period() {
    let (all, without_b) = with_and_without_b();
    let mut script = replies([all.clone()]);
    // Far more cycles than the grace period needs, at 1 ms each.
    script.extend((0..400).map(|_| Reply::Dump(without_b.clone())));
    let mut rig = rig(script, 1).with_notices(
        Vec::new(),
        NoticeConfig {
            close_absent_after: Duration::from_millis(50),
            ..NOTICES
        },
    );
    let started = Instant::now();
    rig.run().unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    let b_client = cookie_of(&all, B_CLIENT);
    let mut open_ms = None;
    let mut close_ms = None;
    for rx in &rig.batches {
        for batch in rx.try_iter() {
            for item in batch.items.iter().filter(|i| i.cookie == b_client) {
                match item.kind {
                    ItemKind::Open { .. } => open_ms = Some(item.timestamp_ms),
                    ItemKind::Close => close_ms = Some(item.timestamp_ms),
                    ItemKind::Snapshot => {}
                }
            }
        }
    }
    let waited = close_ms.expect("closed in the end") - open_ms.unwrap();
    assert!(waited >= 50, "closed after {waited} ms of absence");
    assert_eq!(rig.stats.absent_closes.load(Relaxed), 2);
}

#[test]
fn a_notice_after_an_absence_close_opens_nothing() {
    let (all, without_b) = with_and_without_b();
    let mut rig = rig(replies([all.clone(), without_b.clone(), without_b]), 1).with_notices(
        vec![
            NoticeBatch::default(),
            NoticeBatch::default(),
            notices_of(&all, &[B_CLIENT, B_SERVER]),
        ],
        NoticeConfig {
            close_absent_after: Duration::ZERO,
            archive_short_connections: true,
        },
    );
    rig.run().unwrap();
    let handed = rig.handed();
    for ends in [B_CLIENT, B_SERVER] {
        assert_eq!(
            handed[&cookie_of(&all, ends)],
            Handed {
                opens: 1,
                snapshots: 1,
                closes: 1
            },
            "{ends:?}"
        );
    }
    assert_eq!(rig.stats.short_connections[0][0].load(Relaxed), 0);
}

#[test]
fn short_connections_are_counted_and_archived_only_when_asked() {
    let dumps = story();
    let listeners_only = dumps[0].clone();
    let c_ends = [C_CLIENT, C_SERVER];
    let short = || notices_of(&dumps[1], &c_ends);
    for archive in [false, true] {
        let mut rig = rig(replies([listeners_only.clone(), listeners_only.clone()]), 1)
            .with_notices(
                vec![NoticeBatch::default(), short()],
                NoticeConfig {
                    archive_short_connections: archive,
                    ..NOTICES
                },
            );
        rig.run().unwrap();
        // IPv4, loopback.
        assert_eq!(rig.stats.short_connections[0][0].load(Relaxed), 2);
        let handed = rig.handed();
        for ends in c_ends {
            let cookie = cookie_of(&dumps[1], ends);
            let expected = archive.then_some(Handed {
                opens: 1,
                snapshots: 1,
                closes: 1,
            });
            assert_eq!(handed.get(&cookie).copied(), expected, "{ends:?}");
        }
        assert_eq!(rig.poller.poll.cache.len(), 2, "only the listeners stay");
    }
}

#[test]
fn the_timewait_afterlife_of_a_destroyed_socket_opens_nothing() {
    let dumps = story();
    let all = dumps[1].clone();
    // Dump 4 shows B's client, closed first, as a FIN_WAIT2 timewait
    // mini-socket: same cookie, no tcp_info.
    let afterlife = dumps[4].clone();
    let b_client = cookie_of(&all, B_CLIENT);
    assert!(afterlife.records().iter().any(|r| {
        let r = DiagRecord::parse(r).unwrap();
        r.msg().cookie() == b_client && r.attribute(inetdiag::INET_DIAG_INFO).is_none()
    }));
    let mut rig = rig(replies([all.clone(), afterlife.clone(), afterlife]), 1)
        .with_notices(vec![notices_of(&all, &[B_CLIENT])], NOTICES);
    rig.run().unwrap();
    assert_eq!(
        rig.handed()[&b_client],
        Handed {
            opens: 1,
            snapshots: 2,
            closes: 1
        },
        "opened once, its notice last, never opened again"
    );
}

#[test]
fn an_interval_past_what_an_instant_holds_is_a_time_that_never_comes_not_a_panic() {
    let now = Instant::now();
    assert_eq!(
        super::later(now, Duration::from_secs(1)),
        now + Duration::from_secs(1)
    );
    let never = super::later(now, Duration::MAX);
    assert!(never > now + Duration::from_secs(365 * 24 * 3600));
}

/// A change detection that reports, at each call, the next of `polls`
/// (record payloads), then nothing; or fails when the entry is `None`.
struct ScriptedChanges {
    polls: std::collections::VecDeque<Option<Vec<Vec<u8>>>>,
}

impl inetdiag::ChangeSource for ScriptedChanges {
    fn changed(
        &mut self,
        on_record: &mut dyn FnMut(&[u8]),
    ) -> Result<inetdiag::ChangeStats, inetdiag::Error> {
        match self.polls.pop_front() {
            Some(Some(records)) => {
                for r in &records {
                    on_record(r);
                }
                Ok(inetdiag::ChangeStats {
                    reported: records.len(),
                    records: records.len(),
                    gone: 0,
                })
            }
            Some(None) => Err(inetdiag::Error::Kernel {
                errno: libc::ENOBUFS,
            }),
            None => Ok(inetdiag::ChangeStats::default()),
        }
    }

    fn resync(&mut self) -> Result<(), inetdiag::Error> {
        Ok(())
    }
}

fn records_of(dump: &CapturedDump, ends: &[Ends]) -> Vec<Vec<u8>> {
    dump.records()
        .into_iter()
        .filter(|r| ends.contains(&ends_of(r)))
        .map(|r| r.to_vec())
        .collect()
}

#[test]
fn change_only_polls_archive_what_they_report_and_close_nothing() {
    let (all, without_b) = with_and_without_b();
    let without_c = without(&all, &[C_CLIENT, C_SERVER]);
    // One complete dump (without C), then four polls of changes only: C
    // appears, A is reported unchanged, then nothing — B is never reported
    // again, and must stay open.
    let changes = ScriptedChanges {
        polls: [
            Some(records_of(&all, &[C_CLIENT, C_SERVER])),
            Some(records_of(&all, &[A_CLIENT])),
            Some(Vec::new()),
            Some(Vec::new()),
        ]
        .into(),
    };
    let mut rig = rig(replies([without_c, without_b]), 1);
    rig.poller = rig
        .poller
        .with_changes(Box::new(changes), Duration::from_secs(3600));
    rig.poller.config.reps = 5;
    assert_eq!(rig.run(), Ok(5));
    let handed = rig.handed();
    assert_eq!(rig.families(), [AF_UNSPEC], "one complete dump");
    assert!(handed.values().all(|h| h.closes == 0), "{handed:?}");
    for ends in [C_CLIENT, C_SERVER] {
        let h = handed[&cookie_of(&all, ends)];
        assert_eq!(
            (h.opens, h.snapshots),
            (1, 1),
            "{ends:?} opened by a change poll"
        );
    }
    // Reported, but unchanged: nothing more written.
    assert_eq!(handed[&cookie_of(&all, A_CLIENT)].snapshots, 1);
    assert_eq!(rig.stats.change_polls.load(Relaxed), 4);
    assert_eq!(rig.stats.full_dumps.load(Relaxed), 1);
    assert_eq!(rig.stats.closed.load(Relaxed), 0);
}

#[test]
fn complete_dumps_between_change_polls_close_what_is_gone() {
    let (all, without_b) = with_and_without_b();
    // Every other poll is a complete dump (the interval is zero after a
    // failed change poll): dump, failed change poll, dump without B.
    let changes = ScriptedChanges {
        polls: [None].into(),
    };
    let mut rig = rig(replies([all.clone(), without_b]), 1);
    rig.poller = rig
        .poller
        .with_changes(Box::new(changes), Duration::from_secs(3600));
    rig.poller.config.reps = 3;
    assert_eq!(rig.run(), Ok(3));
    assert_eq!(rig.families(), [AF_UNSPEC, AF_UNSPEC]);
    let handed = rig.handed();
    for ends in [B_CLIENT, B_SERVER] {
        assert_eq!(handed[&cookie_of(&all, ends)].closes, 1, "{ends:?}");
    }
    assert_eq!(rig.stats.netlink_errors.load(Relaxed), 1);
    assert_eq!(rig.stats.full_dumps.load(Relaxed), 2);
}
