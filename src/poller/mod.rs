//! The poller: dump every TCP socket (IPv4 and IPv6 in one dump) every
//! poll interval, file each reply in the cache, and hand the connections that
//! opened, changed or closed to the writer shards — without blocking on them.
//! The kernel is reached through [`DumpSource`]: the netlink socket in the
//! agent, a replay of captured datagrams in tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inetdiag::notices::{NoticeSocket, NoticeSource};
use inetdiag::request::DumpRequest;
use inetdiag::{ChangeSource, DiagRecord, DiagSocket, DumpSource, DumpStats, InetDiagMsg};

use self::recently_closed::RecentlyClosed;
use crate::address::{classify, Scope};
use crate::cache::{Cache, Entry, Update};
use crate::clock::unix_millis as now_ms;
use crate::exclusion::{AnonymizeMask, Anonymizer, Exclusion};
use crate::log::RateLimit;
use crate::saver::{ShardGone, ShardQueue};
use crate::stats::{add, Stats};

/// How often the host's own addresses are re-read for anonymization.
const LOCAL_ADDRESS_REFRESH: Duration = Duration::from_secs(10);

/// `at + d`, or a time that never comes when that is past what an
/// `Instant` holds (the flags bound the intervals; `PollerConfig` is public).
fn later(at: Instant, d: Duration) -> Instant {
    const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    at.checked_add(d)
        .or_else(|| at.checked_add(NEVER))
        .unwrap_or(at)
}

static DUMP_ERRORS: RateLimit = RateLimit::new(10_000);
static INTERRUPTED_DUMPS: RateLimit = RateLimit::new(10_000);
static PARSE_ERRORS: RateLimit = RateLimit::new(10_000);
static NOTICES_LOST: RateLimit = RateLimit::new(10_000);
static NOTICE_ERRORS: RateLimit = RateLimit::new(10_000);
static CHANGE_ERRORS: RateLimit = RateLimit::new(10_000);

/// How long a socket closed on its notice is remembered: its timewait
/// afterlife shows in the very next dump.
const AFTERLIFE_MS: i64 = 3_000;
/// How long a socket closed by its absence is remembered, waiting for a
/// notice that may still come (an application can hold a reset socket,
/// out of every dump, for as long as it likes); forgotten at its notice.
const LATE_NOTICE_MS: i64 = 600_000;

mod local_only;
mod recently_closed;

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

pub struct PollerConfig {
    pub poll_interval: Duration,
    /// Cycles to run; 0 = until stopped.
    pub reps: u64,
    pub stats_interval: Duration,
}

/// How destroy notices are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoticeConfig {
    /// How long a socket may be missing from complete dumps before it is
    /// closed without its notice (a lost notice, or none at all).
    pub close_absent_after: Duration,
    /// Archive the connections known only from their notice: opened and
    /// destroyed between two polls.
    pub archive_short_connections: bool,
}

/// Everything the per-reply handler touches, apart from the socket.
struct Poll {
    cache: Cache,
    exclusion: Exclusion,
    out: Outlets,
    stats: Arc<Stats>,
    timestamp_ms: i64,
    /// Replies of the current dump by family: [IPv4, IPv6].
    family_counts: [usize; 2],
    archive_short_connections: bool,
    /// Sockets closed on their notice: their timewait afterlife (same
    /// cookie) must not open again.
    afterlife: RecentlyClosed,
    /// Sockets closed by their absence from dumps: a notice that still
    /// comes for one must not open it again.
    closed_absent: RecentlyClosed,
    /// The current cycle's number (poll gaps count cycles).
    cycle: u64,
    /// Says once when every connection so far was excluded as local.
    local_only: local_only::LocalOnlyNotice,
}

/// The polling loop over a [`DumpSource`] (the kernel by default), and
/// (when it has one) a [`NoticeSource`] of destroy notices.
pub struct Poller<S: DumpSource = DiagSocket, N: NoticeSource = NoticeSocket> {
    source: S,
    notices: Option<N>,
    /// Absence from complete dumps closes a socket after this long (0
    /// without notices: the first complete dump without it).
    close_absent_after: Duration,
    poll: Poll,
    config: PollerConfig,
    /// The dumps of one cycle: one for every family, or (on a kernel that
    /// refuses it) IPv6 then IPv4.
    requests: Vec<DumpRequest>,
    /// The all-families dump succeeded at least once: a later failure of
    /// it is a failed dump, not a kernel without it.
    all_families_worked: bool,
    /// `-poll.mode=bpf`: most polls read only the sockets that changed.
    changes: Option<Changes>,
}

/// Polls of only the changed sockets between complete dumps.
struct Changes {
    source: Box<dyn ChangeSource>,
    /// Time between complete dumps: the longest a change the change
    /// detection cannot see, or a close without a notice, waits.
    full_every: Duration,
    next_full: Instant,
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

impl<S: DumpSource> Poller<S> {
    /// A poller without destroy notices: a socket missing from a complete
    /// dump is closed.
    pub fn new(
        config: PollerConfig,
        source: S,
        exclusion: Exclusion,
        anonymizer: Anonymizer,
        shards: Vec<ShardQueue>,
        observers: Vec<Box<dyn PollObserver>>,
        stats: Arc<Stats>,
    ) -> Self {
        assert!(!shards.is_empty(), "at least one writer shard");
        Self {
            source,
            notices: None,
            close_absent_after: Duration::ZERO,
            poll: Poll {
                cache: Cache::new(),
                exclusion,
                out: Outlets {
                    anonymizer,
                    shards,
                    observers,
                },
                stats,
                timestamp_ms: 0,
                family_counts: [0; 2],
                archive_short_connections: false,
                afterlife: RecentlyClosed::new(AFTERLIFE_MS),
                closed_absent: RecentlyClosed::new(LATE_NOTICE_MS),
                cycle: 0,
                local_only: local_only::LocalOnlyNotice::new(Instant::now()),
            },
            config,
            requests: vec![ALL_FAMILIES],
            all_families_worked: false,
            changes: None,
        }
    }

    /// This poller reading destroy notices from `notices`: a connection
    /// closes on its notice, whose snapshot is its last.
    pub fn with_notices<M: NoticeSource>(self, notices: M, config: NoticeConfig) -> Poller<S, M> {
        let mut poll = self.poll;
        poll.archive_short_connections = config.archive_short_connections;
        Poller {
            source: self.source,
            notices: Some(notices),
            close_absent_after: config.close_absent_after,
            poll,
            config: self.config,
            requests: self.requests,
            all_families_worked: self.all_families_worked,
            changes: self.changes,
        }
    }
}

impl<S: DumpSource, N: NoticeSource> Poller<S, N> {
    /// This poller reading, between complete dumps every `full_every`,
    /// only the sockets `changes` reports. Those polls see some sockets,
    /// not all: they never close a connection for its absence (the
    /// complete dumps and the destroy notices do). The first poll dumps.
    pub fn with_changes(mut self, changes: Box<dyn ChangeSource>, full_every: Duration) -> Self {
        self.changes = Some(Changes {
            source: changes,
            full_every,
            next_full: Instant::now(),
        });
        self
    }

    /// The dump source (a replay's record of requests, in tests).
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Polls until `stop` is set or `reps` cycles ran, then hands every
    /// pending batch to the writers. Returns the number of cycles run, or
    /// the writer shard that stopped: the agent cannot go on without it
    /// (the other shards still get everything pending).
    pub fn run(&mut self, stop: &AtomicBool) -> Result<u64, ShardGone> {
        let polled = self.poll_until(stop);
        let drained = hand_over(&mut self.poll.out.shards, ShardQueue::drain);
        let cycles = polled?;
        drained.map(|()| cycles)
    }

    fn poll_until(&mut self, stop: &AtomicBool) -> Result<u64, ShardGone> {
        let interval = self.config.poll_interval;
        let mut next = Instant::now();
        let mut last_start: Option<Instant> = None;
        let mut cycles = 0u64;
        let mut next_summary = later(Instant::now(), self.config.stats_interval);
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
            next = later(next, interval);
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

            self.cycle(since_last)?;
            cycles += 1;

            if start >= next_refresh {
                self.poll.out.anonymizer.refresh_local_addresses();
                next_refresh = start + LOCAL_ADDRESS_REFRESH;
            }
            if let Some(notice) = self.poll.local_only.due(start, false) {
                log!("{notice}");
            }
            if start >= next_summary {
                log!("{}", self.poll.stats.summary(summary_window));
                summary_window = self.poll.stats.snapshot_polls();
                next_summary = later(start, self.config.stats_interval);
            }
        }
        if let Some(notice) = self.poll.local_only.due(Instant::now(), true) {
            log!("{notice}");
        }
        Ok(cycles)
    }

    /// One poll: every dump of the cycle, the destroy notices, then (only
    /// when every dump was complete and consistent) the closes of what is
    /// gone, then the hand-over to the writers.
    fn cycle(&mut self, since_last: Option<Duration>) -> Result<(), ShardGone> {
        let now = Instant::now();
        let changes_only = match &mut self.changes {
            Some(changes) if now < changes.next_full => true,
            Some(changes) => {
                changes.next_full = later(now, changes.full_every);
                false
            }
            None => false,
        };
        let poll = &mut self.poll;
        if changes_only {
            // Not a new cycle for the cache: the sockets not reported keep
            // their place and their last sighting, so the next complete
            // dump walks in order and measures absences as before.
            poll.cache.continue_cycle_at(now_ms());
        } else {
            poll.cache.begin_cycle_at(now_ms());
        }
        poll.cycle += 1;
        for shard in &mut poll.out.shards {
            shard.pending.poll = poll.cycle;
        }
        let complete = if changes_only {
            self.read_changes();
            false
        } else {
            if let Some(changes) = &mut self.changes {
                add(&self.poll.stats.full_dumps, 1);
                // The change detection's own bookkeeping shows in the
                // sockets it sees (socket storage counts in SKMEMINFO's
                // optmem): it sees the sockets first, so that the dump
                // archives them with it rather than a change poll later.
                // A failure here costs nothing the dump does not cover.
                if let Err(e) = changes.source.resync() {
                    log_limited!(CHANGE_ERRORS, "change detection failed: {e}");
                }
            }
            self.dump_all()
        };
        let poll = &mut self.poll;
        // Notices after the dumps: a socket a dump showed and then was
        // destroyed gets its final snapshot after its last dumped one.
        if let Some(notices) = &mut self.notices {
            poll.read_notices(notices);
        }
        // Only a complete, consistent cycle proves a connection gone (and
        // with notices, only an absence longer than a grace period).
        if complete {
            poll.close_absent(self.close_absent_after, self.notices.is_some());
        }
        add(&poll.stats.polls, 1);
        let handed = hand_over(&mut poll.out.shards, ShardQueue::dispatch);
        for o in &mut poll.out.observers {
            o.cycle_finished(since_last, &poll.cache);
        }
        handed
    }

    /// Reads the sockets the change detection reports, like replies of a
    /// dump; when it fails, the next poll is a complete dump.
    fn read_changes(&mut self) {
        let Some(changes) = &mut self.changes else {
            return;
        };
        let poll = &mut self.poll;
        poll.begin_read();
        add(&poll.stats.change_polls, 1);
        match changes.source.changed(&mut |payload| poll.handle(payload)) {
            Ok(read) => {
                add(&poll.stats.change_reported, read.reported as u64);
                add(&poll.stats.records, read.records as u64);
            }
            Err(e) => {
                changes.next_full = Instant::now();
                log_limited!(
                    CHANGE_ERRORS,
                    "reading the changed sockets failed: {e}; the next poll dumps every socket"
                );
                poll.read_failed(&e);
            }
        }
    }

    /// Runs the cycle's dumps (falling back to one per family on a kernel
    /// that refuses the all-families dump); whether every one was complete
    /// and consistent.
    fn dump_all(&mut self) -> bool {
        let poll = &mut self.poll;
        let mut complete = true;
        let mut next = 0;
        while let Some(&request) = self.requests.get(next) {
            next += 1;
            poll.begin_read();
            let started = Instant::now();
            let result = self.source.dump(&request, |payload| poll.handle(payload));
            let elapsed = started.elapsed();
            match result {
                Ok(dump) => {
                    self.all_families_worked |= request.is_all_families();
                    complete &= poll.dump_finished(&request, &dump, elapsed);
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
                    warn_limited!(DUMP_ERRORS, "dump of family {} failed: {e}", request.family);
                    poll.read_failed(&e);
                }
            }
        }
        complete
    }
}

/// Hands every shard its pending batch with `send` (dispatch or drain);
/// a stopped shard does not keep the others from getting theirs. Returns
/// the first stopped shard.
fn hand_over(
    shards: &mut [ShardQueue],
    send: fn(&mut ShardQueue) -> Result<(), ShardGone>,
) -> Result<(), ShardGone> {
    let mut first = Ok(());
    for shard in shards {
        let sent = send(shard);
        if first.is_ok() {
            first = sent;
        }
    }
    first
}

/// Where the poller's findings go: the writer shards and the observers,
/// with the anonymization both see.
struct Outlets {
    anonymizer: Anonymizer,
    shards: Vec<ShardQueue>,
    observers: Vec<Box<dyn PollObserver>>,
}

impl Outlets {
    /// Opens an archived connection on writer shard `shard`: its file's
    /// first item, and the open announced to the observers. Returns how
    /// its addresses are anonymized.
    fn open(&mut self, shard: usize, msg: &InetDiagMsg, timestamp_ms: i64) -> AnonymizeMask {
        let cookie = msg.cookie();
        let anonymize = self.anonymizer.mask_for(msg);
        self.shards[shard]
            .pending
            .open(cookie, timestamp_ms, anonymize);
        for o in &mut self.observers {
            o.connection_opened(cookie, msg, anonymize, timestamp_ms);
        }
        anonymize
    }

    /// Closes an archived connection: its file's last item, and the close
    /// announced to the observers.
    fn close(&mut self, cookie: u64, timestamp_ms: i64) {
        let shard = shard_of(cookie, self.shards.len());
        self.shards[shard].pending.close(cookie, timestamp_ms);
        for o in &mut self.observers {
            o.connection_closed(cookie, timestamp_ms);
        }
    }
}

/// Counts a connection seen only by its destroy notice, by family and the
/// scope of its remote address.
fn count_short_connection(stats: &Stats, msg: &InetDiagMsg) {
    // A socket that never connected (bound, then closed) is no connection.
    if msg.dport() == 0 {
        return;
    }
    let family = usize::from(msg.family() == inetdiag::AF_INET6);
    let scope = match classify(msg.dst()) {
        Scope::Loopback => 0,
        Scope::Private => 1,
        Scope::Public => 2,
    };
    add(&stats.short_connections[family][scope], 1);
}

/// The writer shard that owns connection `cookie`.
fn shard_of(cookie: u64, shards: usize) -> usize {
    (cookie % shards as u64) as usize
}

impl Poll {
    /// Accounts for a dump that completed; whether it was consistent (the
    /// kernel did not flag it interrupted).
    fn dump_finished(
        &mut self,
        request: &DumpRequest,
        dump: &DumpStats,
        elapsed: Duration,
    ) -> bool {
        // The socket table changed under the dump: its replies are
        // genuine, but a live socket may be missing.
        if dump.interrupted {
            add(&self.stats.interrupted_dumps, 1);
            warn_limited!(
                INTERRUPTED_DUMPS,
                "the kernel interrupted a dump (NLM_F_DUMP_INTR); no connection is closed this cycle"
            );
        }
        add(&self.stats.records, dump.records as u64);
        let [ipv4, ipv6] = self.family_counts;
        let report = DumpReport {
            family: request.family,
            elapsed,
            ipv4,
            ipv6,
        };
        for o in &mut self.out.observers {
            o.dump_finished(&report);
        }
        !dump.interrupted
    }

    /// Closes the connections missing from dumps: at once without destroy
    /// notices, after `grace` with them (a notice closes the others).
    fn close_absent(&mut self, grace: Duration, with_notices: bool) {
        let timestamp_ms = now_ms();
        let Poll {
            cache,
            out,
            stats,
            afterlife,
            closed_absent,
            ..
        } = self;
        cache.end_cycle_absent_for(grace.as_millis() as i64, |cookie, entry| {
            // A destroyed socket's afterlife leaving the dumps: that socket
            // was counted and closed on its notice.
            if afterlife.contains(cookie) {
                return;
            }
            add(&stats.closed, 1);
            if with_notices {
                closed_absent.insert(cookie, timestamp_ms);
            }
            for o in out.observers.iter_mut() {
                o.socket_gone(cookie, entry);
            }
            if entry.excluded {
                return;
            }
            if with_notices {
                add(&stats.absent_closes, 1);
            }
            out.close(cookie, timestamp_ms);
        });
    }

    /// Reads every destroy notice that arrived, without waiting for one.
    fn read_notices(&mut self, notices: &mut impl NoticeSource) {
        let timestamp_ms = now_ms();
        self.afterlife.expire(timestamp_ms);
        self.closed_absent.expire(timestamp_ms);
        match notices.notices(|payload| self.notice(payload, timestamp_ms)) {
            Ok(read) => {
                add(&self.stats.destroy_notices, read.notices as u64);
                if read.lost {
                    add(&self.stats.destroy_notices_lost, 1);
                    warn_limited!(
                        NOTICES_LOST,
                        "the kernel dropped destroy notices (receive buffer full); those connections close when they stay out of dumps"
                    );
                }
            }
            Err(e) => {
                add(&self.stats.destroy_notices_lost, 1);
                warn_limited!(NOTICE_ERRORS, "reading destroy notices failed: {e}");
            }
        }
    }

    /// One destroy notice: the socket's final snapshot (written when it is
    /// a change, like any other), then its close, at the notice's time.
    fn notice(&mut self, payload: &[u8], timestamp_ms: i64) {
        let Some(record) = self.parse(payload, "destroy notice") else {
            return;
        };
        let msg = record.msg();
        let cookie = msg.cookie();
        // Closed already: on its absence (this is its late notice), or on
        // an earlier notice.
        if self.closed_absent.remove(cookie) || self.afterlife.contains(cookie) {
            return;
        }
        let known = self.cache.contains(cookie);
        let (update, entry) = self.cache.update(&record);
        let shard = shard_of(cookie, self.out.shards.len());
        let archived = match update {
            Update::New => {
                // Opened and destroyed between two polls.
                entry.excluded = self.exclusion.excludes(&msg);
                count_short_connection(&self.stats, &msg);
                if entry.excluded || !self.archive_short_connections {
                    false
                } else {
                    entry.anonymize = self.out.open(shard, &msg, timestamp_ms);
                    self.out.shards[shard]
                        .pending
                        .snapshot(cookie, timestamp_ms, payload);
                    add(&self.stats.queued, 1);
                    true
                }
            }
            Update::Changed if !entry.excluded => {
                add(&self.stats.changed, 1);
                self.out.shards[shard]
                    .pending
                    .snapshot(cookie, timestamp_ms, payload);
                add(&self.stats.queued, 1);
                true
            }
            Update::Changed | Update::Unchanged => !entry.excluded,
        };
        for o in &mut self.out.observers {
            o.socket_gone(cookie, entry);
        }
        if archived {
            self.out.close(cookie, timestamp_ms);
        }
        if known || archived {
            add(&self.stats.closed, 1);
        }
        self.cache.remove(cookie);
        self.afterlife.insert(cookie, timestamp_ms);
    }

    /// A read of replies (a dump, or the changed sockets) begins: they carry
    /// this time, and are counted by family afresh.
    fn begin_read(&mut self) {
        self.timestamp_ms = now_ms();
        self.family_counts = [0; 2];
    }

    /// A read of replies failed: counted, and the observers told.
    fn read_failed(&mut self, e: &inetdiag::Error) {
        add(&self.stats.netlink_errors, 1);
        for o in &mut self.out.observers {
            o.error(e.kind());
        }
    }

    /// `payload` as a reply, or `None` (counted, logged) when it is not one.
    fn parse<'a>(&self, payload: &'a [u8], what: &str) -> Option<DiagRecord<'a>> {
        match DiagRecord::parse(payload) {
            Ok(record) => {
                let skipped = record.skipped_attributes();
                if skipped != 0 {
                    add(&self.stats.skipped_attributes, u64::from(skipped));
                }
                Some(record)
            }
            Err(e) => {
                add(&self.stats.parse_errors, 1);
                warn_limited!(PARSE_ERRORS, "skipping malformed {what}: {e}");
                None
            }
        }
    }

    fn handle(&mut self, payload: &[u8]) {
        // Most replies are of known sockets and no significant change:
        // those are told apart before the attribute walk, which was as
        // much of the polling thread's user time as all the rest.
        if self.cache.file_if_unchanged(payload) {
            self.family_counts[usize::from(payload[0] == inetdiag::AF_INET6)] += 1;
            return;
        }
        let Some(record) = self.parse(payload, "sock_diag reply") else {
            return;
        };
        let timestamp_ms = self.timestamp_ms;
        self.family_counts[usize::from(record.msg().family() == inetdiag::AF_INET6)] += 1;
        let (update, entry) = self.cache.update(&record);
        let cookie = record.msg().cookie();
        let shard = shard_of(cookie, self.out.shards.len());
        match update {
            Update::Unchanged => return,
            Update::New => {
                add(&self.stats.new, 1);
                let msg = record.msg();
                // A destroyed socket's timewait mini-socket, under its
                // cookie: tracked, never opened again.
                entry.excluded = self.afterlife.contains(cookie)
                    || self.closed_absent.contains(cookie)
                    || self.exclusion.excludes(&msg);
                self.local_only
                    .seen(entry.excluded && self.exclusion.excludes_as_local(&msg));
                if entry.excluded {
                    return;
                }
                entry.anonymize = self.out.open(shard, &msg, timestamp_ms);
            }
            Update::Changed => {
                add(&self.stats.changed, 1);
                if entry.excluded {
                    return;
                }
            }
        }
        self.out.shards[shard]
            .pending
            .snapshot(cookie, timestamp_ms, payload);
        add(&self.stats.queued, 1);
    }
}

#[cfg(test)]
mod tests;
