//! The polling loop: dump every TCP socket (IPv4 and IPv6 in one dump) every
//! poll interval, file each reply in the cache, and hand the connections that
//! opened, changed or closed to the writer shards — without blocking on them.

use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use inetdiag::request::DumpRequest;
use inetdiag::{DiagRecord, DiagSocket, InetDiagMsg};

use crate::cache::{Cache, Entry, Update};
use crate::clock::unix_millis as now_ms;
use crate::exclusion::{AnonymizeMask, Anonymizer, Exclusion};
use crate::log::RateLimit;
use crate::saver::Batch;
use crate::stats::{add, Stats};

/// A shard's pending batch is sent with a blocking send once it holds this
/// much: the writers are far behind, and memory must stay bounded.
const MAX_PENDING_BATCH_BYTES: usize = 64 * 1024 * 1024;
/// How often the host's own addresses are re-read for anonymization.
const LOCAL_ADDRESS_REFRESH: Duration = Duration::from_secs(10);

static DUMP_ERRORS: RateLimit = RateLimit::new(10_000);
static PARSE_ERRORS: RateLimit = RateLimit::new(10_000);
static WRITERS_BEHIND: RateLimit = RateLimit::new(10_000);

/// Hooks for whoever else wants to know what the poller sees (event socket,
/// metrics). Called on the polling thread: implementations must not block.
pub trait PollObserver: Send {
    /// An archived connection appeared (not called for excluded ones).
    fn connection_opened(
        &mut self,
        _cookie: u64,
        _msg: &InetDiagMsg,
        _anonymize: AnonymizeMask,
        _timestamp_ms: i64,
    ) {
    }
    /// An archived connection vanished from a complete dump.
    fn connection_closed(&mut self, _cookie: u64, _timestamp_ms: i64) {}
    /// Any socket (archived or excluded) vanished from a complete dump;
    /// `entry` holds its last significant snapshot.
    fn socket_gone(&mut self, _cookie: u64, _entry: &Entry) {}
    /// A dump finished.
    fn dump_finished(&mut self, _dump: &DumpReport) {}
    /// A dump failed; `kind` is a short stable label.
    fn error(&mut self, _kind: &'static str) {}
    /// A cycle ended. `interval` is the time since the previous cycle began.
    fn cycle_finished(&mut self, _interval: Option<Duration>, _cache: &Cache) {}
}

/// One finished dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpReport {
    /// The family requested: `AF_UNSPEC` for the one dump of every family.
    pub family: u8,
    pub elapsed: Duration,
    /// Replies by address family.
    pub ipv4: usize,
    pub ipv6: usize,
}

pub struct CollectorConfig {
    pub poll_interval: Duration,
    /// Cycles to run; 0 = until stopped.
    pub reps: u64,
    pub stats_interval: Duration,
}

/// One writer shard as the poller sees it.
pub struct ShardQueue {
    pub batches: Sender<Batch>,
    pub recycled: Receiver<Batch>,
    pending: Batch,
}

impl ShardQueue {
    pub fn new(batches: Sender<Batch>, recycled: Receiver<Batch>) -> Self {
        Self {
            batches,
            recycled,
            pending: Batch::default(),
        }
    }

    /// Hands the pending batch over if the shard has room; otherwise keeps
    /// accumulating (or, past a memory bound, waits).
    fn dispatch(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let batch = mem::take(&mut self.pending);
        let batch = match self.batches.try_send(batch) {
            Ok(()) => None,
            Err(TrySendError::Full(batch)) if batch.bytes.len() < MAX_PENDING_BATCH_BYTES => {
                log_limited!(
                    WRITERS_BEHIND,
                    "writers are behind; holding {} snapshots for the next cycle",
                    batch.snapshot_count()
                );
                Some(batch)
            }
            Err(TrySendError::Full(batch)) => {
                log_limited!(
                    WRITERS_BEHIND,
                    "writers are far behind; polling waits for them"
                );
                self.batches.send(batch).err().map(|e| e.into_inner())
            }
            Err(TrySendError::Disconnected(batch)) => Some(batch),
        };
        match batch {
            Some(kept) => self.pending = kept,
            None => self.pending = self.recycled.try_recv().unwrap_or_default(),
        }
    }

    /// Sends whatever is pending, waiting if needed (shutdown).
    fn drain(&mut self) {
        if !self.pending.is_empty() {
            let _ = self.batches.send(mem::take(&mut self.pending));
        }
    }
}

/// Everything the per-reply handler touches, apart from the socket.
struct Poll {
    cache: Cache,
    exclusion: Exclusion,
    anonymizer: Anonymizer,
    shards: Vec<ShardQueue>,
    observers: Vec<Box<dyn PollObserver>>,
    stats: Arc<Stats>,
    timestamp_ms: i64,
    /// Replies of the current dump by family: [IPv4, IPv6].
    family_counts: [usize; 2],
}

pub struct Collector {
    socket: DiagSocket,
    poll: Poll,
    config: CollectorConfig,
    /// The dumps of one cycle: one for every family, or (on a kernel that
    /// refuses it) IPv6 then IPv4.
    requests: Vec<DumpRequest>,
    /// The all-families dump succeeded at least once: a later failure of
    /// it is a failed dump, not a kernel without it.
    all_families_worked: bool,
}

/// The archive's dump of every family in one walk of the socket tables
/// (see [`inetdiag::TCPDIAG_GETSOCK`]).
const ALL_FAMILIES: DumpRequest = DumpRequest {
    family: inetdiag::AF_UNSPEC,
    protocol: inetdiag::IPPROTO_TCP,
    states: inetdiag::ARCHIVE_STATES,
    extensions: inetdiag::ARCHIVE_EXTENSIONS,
};

/// What M-Lab's tool sends: IPv6 then IPv4, each walking the tables.
fn per_family_requests() -> Vec<DumpRequest> {
    [inetdiag::AF_INET6, inetdiag::AF_INET]
        .map(|family| DumpRequest {
            family,
            ..ALL_FAMILIES
        })
        .to_vec()
}

impl Collector {
    pub fn new(
        config: CollectorConfig,
        exclusion: Exclusion,
        anonymizer: Anonymizer,
        shards: Vec<ShardQueue>,
        observers: Vec<Box<dyn PollObserver>>,
        stats: Arc<Stats>,
    ) -> Result<Self, inetdiag::Error> {
        assert!(!shards.is_empty(), "at least one writer shard");
        Ok(Self {
            socket: DiagSocket::new()?,
            poll: Poll {
                cache: Cache::new(),
                exclusion,
                anonymizer,
                shards,
                observers,
                stats,
                timestamp_ms: 0,
                family_counts: [0; 2],
            },
            config,
            requests: vec![ALL_FAMILIES],
            all_families_worked: false,
        })
    }

    /// Polls until `stop` is set or `reps` cycles ran, then hands every
    /// pending batch to the writers. Returns the number of cycles run.
    pub fn run(&mut self, stop: &AtomicBool) -> u64 {
        let interval = self.config.poll_interval;
        let mut next = Instant::now();
        let mut last_start: Option<Instant> = None;
        let mut cycles = 0u64;
        let mut next_summary = Instant::now() + self.config.stats_interval;
        let mut summary_window = self.poll.stats.snapshot_polls();
        let mut next_refresh = Instant::now() + LOCAL_ADDRESS_REFRESH;

        while !stop.load(Ordering::Relaxed) && (self.config.reps == 0 || cycles < self.config.reps)
        {
            // Sleep in short steps so a stop request is honoured promptly
            // even with long intervals.
            loop {
                let now = Instant::now();
                if now >= next || stop.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep((next - now).min(Duration::from_millis(100)));
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let start = Instant::now();
            next += interval;
            if next < start {
                // Fell behind (a dump took longer than the interval): poll
                // again at once, without trying to catch up missed ticks.
                next = start;
            }
            let since_last = last_start.map(|t| start - t);
            last_start = Some(start);
            if let Some(d) = since_last {
                add(&self.poll.stats.poll_interval_us, d.as_micros() as u64);
            }

            self.cycle(since_last);
            cycles += 1;

            if start >= next_refresh {
                self.poll.anonymizer.refresh_local_addresses();
                next_refresh = start + LOCAL_ADDRESS_REFRESH;
            }
            if start >= next_summary {
                log!("{}", self.poll.stats.summary(summary_window));
                summary_window = self.poll.stats.snapshot_polls();
                next_summary = start + self.config.stats_interval;
            }
        }
        for shard in &mut self.poll.shards {
            shard.drain();
        }
        cycles
    }

    fn cycle(&mut self, since_last: Option<Duration>) {
        let poll = &mut self.poll;
        poll.cache.begin_cycle();
        let mut complete = true;
        let mut next = 0;
        while let Some(&request) = self.requests.get(next) {
            next += 1;
            poll.timestamp_ms = now_ms();
            poll.family_counts = [0; 2];
            let started = Instant::now();
            let result = self.socket.dump(&request, |payload| poll.handle(payload));
            let elapsed = started.elapsed();
            match result {
                Ok(dump) => {
                    self.all_families_worked |= request.is_all_families();
                    add(&poll.stats.records, dump.records as u64);
                    let [ipv4, ipv6] = poll.family_counts;
                    let report = DumpReport {
                        family: request.family,
                        elapsed,
                        ipv4,
                        ipv6,
                    };
                    for o in &mut poll.observers {
                        o.dump_finished(&report);
                    }
                }
                // The kernel's answer to a request type it does not serve
                // (sock_diag_rcv_msg, inet_diag_rcv_msg_compat), before any
                // reply; any other failure is a failed dump like any other.
                Err(inetdiag::Error::Kernel { errno })
                    if request.is_all_families()
                        && !self.all_families_worked
                        && poll.family_counts == [0; 2]
                        && matches!(errno, libc::EINVAL | libc::EOPNOTSUPP | libc::ENOENT) =>
                {
                    log!(
                        "the kernel refuses the all-families TCP dump ({}); dumping IPv6 and IPv4 separately",
                        std::io::Error::from_raw_os_error(errno)
                    );
                    self.requests = per_family_requests();
                    next = 0;
                }
                Err(e) => {
                    complete = false;
                    add(&poll.stats.netlink_errors, 1);
                    log_limited!(DUMP_ERRORS, "dump of family {} failed: {e}", request.family);
                    for o in &mut poll.observers {
                        o.error(e.kind());
                    }
                }
            }
        }
        // Only a complete cycle proves a connection gone.
        if complete {
            let timestamp_ms = now_ms();
            let Poll {
                cache,
                shards,
                observers,
                stats,
                ..
            } = poll;
            let closed = cache.end_cycle(|cookie, entry| {
                for o in observers.iter_mut() {
                    o.socket_gone(cookie, entry);
                }
                if entry.excluded {
                    return;
                }
                let shard = (cookie % shards.len() as u64) as usize;
                shards[shard].pending.close(cookie, timestamp_ms);
                for o in observers.iter_mut() {
                    o.connection_closed(cookie, timestamp_ms);
                }
            });
            add(&stats.closed, closed as u64);
        }
        add(&poll.stats.polls, 1);
        for shard in &mut poll.shards {
            shard.dispatch();
        }
        for o in &mut poll.observers {
            o.cycle_finished(since_last, &poll.cache);
        }
    }
}

impl Poll {
    fn handle(&mut self, payload: &[u8]) {
        let record = match DiagRecord::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                add(&self.stats.parse_errors, 1);
                log_limited!(PARSE_ERRORS, "skipping malformed sock_diag reply: {e}");
                return;
            }
        };
        let timestamp_ms = self.timestamp_ms;
        self.family_counts[usize::from(record.msg().family() == inetdiag::AF_INET6)] += 1;
        let (update, entry) = self.cache.update(&record);
        let cookie = record.msg().cookie();
        let shard = (cookie % self.shards.len() as u64) as usize;
        match update {
            Update::Unchanged => return,
            Update::New => {
                add(&self.stats.new, 1);
                let msg = record.msg();
                entry.excluded = self.exclusion.excludes(&msg);
                if entry.excluded {
                    return;
                }
                entry.anonymize = self.anonymizer.mask_for(&msg);
                self.shards[shard]
                    .pending
                    .open(cookie, timestamp_ms, entry.anonymize);
                for o in &mut self.observers {
                    o.connection_opened(cookie, &msg, entry.anonymize, timestamp_ms);
                }
            }
            Update::Changed(_) => {
                add(&self.stats.changed, 1);
                if entry.excluded {
                    return;
                }
            }
        }
        self.shards[shard]
            .pending
            .snapshot(cookie, timestamp_ms, payload);
        add(&self.stats.queued, 1);
    }
}
