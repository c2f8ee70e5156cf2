//! One writer shard: owns the files of the connections whose cookie maps to
//! it, keeps each connection's snapshots (the kernel's replies, see
//! [`super::pending`]) in a buffer of its own, and at least every flush
//! interval, at rotation and at close, writes them as JSON lines and
//! compresses those into one complete zstd frame appended to the file. One
//! compressor context and one line buffer per shard, not per connection.
//!
//! Under faults: a file is created once (never one that exists, see
//! [`super::tree`]) and only ever grows by complete frames (see
//! [`super::segment_file`]); what cannot be written yet waits for retries,
//! spaced out at the flush interval doubling up to [`MAX_BACKOFF_INTERVALS`]
//! intervals, within one memory budget for all shards (oldest lines dropped
//! first past it); every snapshot handed to a shard ends up counted as
//! either `written` (it is in a file) or `dropped`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use inetdiag::{DiagRecord, INET_DIAG_MSG_LEN};
use tcpinfo_archive::naming::uuid;
use tcpinfo_archive::{self as archive, Metadata, Timestamp};

use super::batch::{Batch, Item, ItemKind};
use super::budget::PendingBudget;
use super::cookie_slab::{CookieSlab, Place};
use super::descriptors::{Descriptors, Purpose};
use super::pending::{self, Record};
use super::previous::PreviousRun;
use super::segment_file::SegmentFile;
use super::tree::{CreateError, OutputTree};
use super::QueueDepths;
use crate::exclusion::{netblock_in_place, AnonymizeMask};
use crate::log::RateLimit;
use crate::stats::{add, Stats};

/// zstd level of the Go tool's `zstd` processes (the CLI default).
const COMPRESSION_LEVEL: i32 = 3;
/// A pending buffer this large (~500 snapshots, ~400 KB of JSON) is
/// flushed without waiting for the interval.
const EAGER_FLUSH_BYTES: usize = 256 * 1024;

/// The shard's line and frame buffers keep at most this much room after a
/// flush (a burst's flush may have grown them far beyond a second's lines;
/// they are outside `-max-pending-bytes`, and hold one connection's flush
/// at a time).
const KEPT_FLUSH_BUFFER_BYTES: usize = 1024 * 1024;

/// Room a recycled batch may always keep (a poll's changes at a few
/// thousand connections).
const MIN_RECYCLED_BATCH_BYTES: usize = 64 * 1024;

/// Batches go back to the poller for reuse with at most this much room
/// (a poll's changes at 19,000 connections, half of them active, need
/// about half of it per shard).
const RECYCLED_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// How often shard 0 gives the allocator's free memory back to the system.
const TRIM_EVERY: Duration = Duration::from_secs(10);

/// A buffer with less room than this left grows before the next snapshot
/// (a reply is ~500 bytes; tcp_info and the attributes of newer kernels
/// make it longer).
const RECORD_ROOM: usize = 640;

/// At most this much of a connection's last flush is reserved at once for
/// the next one (a second of snapshots of a connection that changes at
/// every poll is ~53 KB: more than that grows as it comes, since the
/// memory budget counts the snapshots, not the room).
const MAX_ROOM_FROM_LAST_FLUSH: usize = 16 * 1024;
/// A failed creation or write is retried after one flush interval, then
/// two, four, …, at most this many intervals apart (16 s by default): a
/// full disk costs a few system calls per connection per minute, not one
/// per poll.
pub const MAX_BACKOFF_INTERVALS: u32 = 16;

static OPEN_ERRORS: RateLimit = RateLimit::new(10_000);
static WRITE_ERRORS: RateLimit = RateLimit::new(10_000);
static PARSE_ERRORS: RateLimit = RateLimit::new(10_000);
static DROPS: RateLimit = RateLimit::new(10_000);
static SHEDDING: RateLimit = RateLimit::new(10_000);
static NEXT_SEQUENCE: RateLimit = RateLimit::new(10_000);

/// What every shard needs to know.
#[derive(Debug, Clone)]
pub struct SaverConfig {
    pub output: PathBuf,
    pub uuid_prefix: String,
    pub flush_interval: Duration,
    pub rotation_interval: Duration,
    /// Most bytes of pending snapshots all shards together hold before
    /// they are in files (`-max-pending-bytes`).
    pub max_pending_bytes: usize,
    /// Each snapshot line says how many polls ran and how much time passed
    /// since the connection's previous line (`-archive-poll-gaps`).
    pub poll_gaps: bool,
}

/// What the shards share: the budget for lines not yet written, and the
/// descriptors archive files may take.
#[derive(Debug)]
pub struct Limits {
    pub pending: PendingBudget,
    pub descriptors: Arc<Descriptors>,
    /// Where connections of the previous run continue.
    pub previous: PreviousRun,
}

/// The wall clock, in Unix milliseconds.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Limits {
    /// For `shards` shards of `config`, with the process's descriptors
    /// open now as the baseline.
    pub fn new(config: &SaverConfig, shards: usize) -> Arc<Self> {
        Arc::new(Self {
            pending: PendingBudget::new(config.max_pending_bytes, shards),
            descriptors: Descriptors::new(shards),
            previous: PreviousRun::scan(&config.output, &config.uuid_prefix, now_ms()),
        })
    }
}

/// When a failed creation or write is tried again.
#[derive(Debug, Clone, Copy, Default)]
struct Retry {
    at: Option<Instant>,
    failures: u32,
}

impl Retry {
    fn due(&self, now: Instant) -> bool {
        self.at.is_none_or(|at| now >= at)
    }

    /// Another failure: the wait doubles, up to [`MAX_BACKOFF_INTERVALS`].
    fn failed(&mut self, now: Instant, interval: Duration) {
        let factor = 1u32 << self.failures.min(MAX_BACKOFF_INTERVALS.ilog2());
        self.failures = self.failures.saturating_add(1);
        self.at = Some(now + interval.saturating_mul(factor));
    }

    /// Waiting for a descriptor: nothing was tried, so the wait does not
    /// grow (descriptors come back as other files close).
    fn wait(&mut self, now: Instant, interval: Duration) {
        self.at = Some(now + interval);
    }
}

/// A connection's current segment: its file and the snapshots not yet in it.
struct ConnectionFile {
    /// The socket cookie; the UUID (`<prefix>_<cookie>`) is made from it
    /// when needed (a file's creation, its metadata line, a log line)
    /// rather than kept per connection.
    cookie: u64,
    start_ms: i64,
    sequence: u32,
    /// A snapshot at or after this time starts the next segment.
    rotate_at_ms: i64,
    date: (i32, u32, u32),
    anonymize: AnonymizeMask,
    /// Created at the segment's first flush, so that it never exists
    /// without its metadata line.
    file: Option<SegmentFile>,
    /// The snapshots not yet in the file ([`pending`] records).
    pending: Vec<u8>,
    /// Bytes of the pending buffer its last flush wrote: a connection's
    /// buffer is freed at every flush and most connections send at a steady
    /// pace, so the next buffer is allocated at that size at once, not
    /// grown by doubling (which left a third of an active connection's
    /// buffer empty on average, and reallocated it ~12 times a second).
    flushed_len: u32,
    /// The segment's metadata line is not in its file yet: the next flush
    /// writes it first. It is made then, from the cookie, the segment
    /// number and the start time, not kept: at start-up every connection
    /// opens at once, and ~350 bytes of line each added ~6.5 MB to the
    /// peak at 19,000 connections.
    header_pending: bool,
    pending_snapshots: u64,
    /// Dump time of the oldest snapshot in `pending`: the budget drops
    /// the oldest lines first.
    oldest_pending_ms: i64,
    /// Already waiting in the flush queue.
    queued: bool,
    retry: Retry,
    /// Set when the connection closes (or the agent stops): a closed
    /// connection still waiting for its last lines to be written gives up
    /// at this time (one rotation interval after its close).
    give_up_at: Option<Instant>,
    /// Poll and time of the connection's previous line, for poll gaps.
    last_line: Option<(u64, i64)>,
    /// The same for its last line in the file: when the budget drops the
    /// lines after it, the next line's gap is measured from there.
    written_line: Option<(u64, i64)>,
}

impl ConnectionFile {
    /// Starts a segment (its buffer is empty): its metadata line goes
    /// first into the file, which is created at the segment's first flush
    /// so that it never exists without a complete frame holding that line.
    fn begin_segment(&mut self) {
        debug_assert!(self.pending.is_empty());
        self.header_pending = true;
    }

    /// Closed, or the agent is stopping: a file created now is written
    /// and closed at once, so it may take the descriptors live files leave.
    fn closing(&self) -> bool {
        self.give_up_at.is_some()
    }
}

/// A connection whose pending lines the budget may drop.
#[derive(Debug, Clone, Copy)]
enum Victim {
    Live(u64),
    Closed(usize),
}

pub struct ShardWriter {
    config: Arc<SaverConfig>,
    stats: Arc<Stats>,
    limits: Arc<Limits>,
    tree: OutputTree,
    connections: CookieSlab<ConnectionFile>,
    /// Closed connections whose last lines could not be written yet: each
    /// keeps its file open (a file is closed once and never opened again)
    /// and is retried with back-off, until its lines are in, the budget
    /// drops them, or it gives up (a rotation interval after its close).
    /// Their files count among the archive's descriptors, so they never
    /// take the reserve.
    orphans: Vec<ConnectionFile>,
    /// `(when, cookie)` of every connection with lines to write, earliest
    /// first.
    flush_queue: BinaryHeap<Reverse<(Instant, u64)>>,
    compressor: zstd::bulk::Compressor<'static>,
    /// The JSON lines of the flush being written.
    lines: Vec<u8>,
    frame: Vec<u8>,
    /// The last timestamp formatted, reused while the records have that
    /// dump time (a connection's records each have their own, so this
    /// saves most where several are flushed from the same dump, at close
    /// or rotation).
    timestamp_ms: i64,
    timestamp_text: Vec<u8>,
    /// Bytes in this shard's pending buffers.
    pending_bytes: usize,
    /// What the budget last heard of `pending_bytes`.
    published: usize,
    /// Scratch list for the budget: `(oldest pending line, connection)`.
    victims: Vec<(i64, Victim)>,
}

/// Runs shard `shard` until `batches` is closed, then finishes every file.
pub fn run(
    shard: usize,
    config: Arc<SaverConfig>,
    stats: Arc<Stats>,
    limits: Arc<Limits>,
    batches: Receiver<Batch>,
    recycle: Sender<Batch>,
    depths: Arc<QueueDepths>,
) -> io::Result<()> {
    let mut writer = ShardWriter::new(config, stats, limits)?;
    let tick = (writer.config.flush_interval / 4)
        .clamp(Duration::from_millis(5), Duration::from_millis(250));
    let mut next_trim = Instant::now() + TRIM_EVERY;
    loop {
        match batches.recv_timeout(tick) {
            Ok(mut batch) => {
                depths.taken(shard);
                writer.apply(&batch, Instant::now());
                ready_for_reuse(&mut batch);
                // The pool is full, or the poller has gone: then the
                // batch is simply freed.
                let _ = recycle.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let now = Instant::now();
        writer.flush_due(now);
        if shard == 0 && now >= next_trim {
            give_back_free_memory();
            next_trim = now + TRIM_EVERY;
        }
    }
    writer.finish();
    Ok(())
}

/// How long a connection's first snapshot waits for its flush: a share of
/// the flush interval that the cookie picks, spread evenly over the
/// interval. Connections opened together — every one of a busy host at
/// start — would otherwise all come due together a whole interval later,
/// each holding its first snapshot and an interval of changes, and their
/// files would all be created in one go while the poller's batches waited.
/// Spread, the start-up's peak of private memory at 19,000 connections
/// went from 46–49 MB to 33 MB (`scripts/bench/memory.sh`).
fn first_flush_wait(interval: Duration, cookie: u64) -> Duration {
    // Fibonacci hashing: consecutive cookies land far apart.
    let share = (cookie.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64;
    interval.mul_f64(share)
}

/// Frees a flush buffer grown past [`KEPT_FLUSH_BUFFER_BYTES`] (a burst's
/// flush); a smaller one keeps its room for the next flush.
fn let_go_if_grown(buffer: &mut Vec<u8>) {
    if buffer.capacity() > KEPT_FLUSH_BUFFER_BYTES {
        *buffer = Vec::new();
    }
}

/// Empties a batch for the poller's pool. A batch grown by a burst (every
/// connection's first snapshot at start, a backlog while the writers were
/// behind) does not keep that size there: once it has room for four times
/// what it just carried, it goes back with room for twice that (and never
/// more than [`RECYCLED_BATCH_BYTES`]). At 10,000 connections the start-up
/// burst's batches held ~5 MB of the steady RSS (BENCHMARKS.md, "Memory
/// per connection").
fn ready_for_reuse(batch: &mut Batch) {
    let used = batch.bytes.len();
    batch.clear();
    let mut room = batch.bytes.capacity();
    if room > 4 * used + MIN_RECYCLED_BATCH_BYTES {
        room = 2 * used + MIN_RECYCLED_BATCH_BYTES;
    }
    batch.shrink_to(room.min(RECYCLED_BATCH_BYTES));
}

/// Returns the allocator's free memory to the system. A burst (every
/// connection of a busy host opening at start, a backlog of lines while
/// files are created) leaves glibc's heaps at their high-water mark for
/// good: 49.7 MB of RSS at 10,000 connections whose steady state needs
/// about half of that (BENCHMARKS.md, "Memory per connection").
fn give_back_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointer and only walks glibc's own
    // heaps under their locks; it is safe to call from any thread at any
    // time.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl ShardWriter {
    pub fn new(
        config: Arc<SaverConfig>,
        stats: Arc<Stats>,
        limits: Arc<Limits>,
    ) -> io::Result<Self> {
        Ok(Self {
            tree: OutputTree::new(config.output.clone(), Arc::clone(&limits.descriptors)),
            config,
            stats,
            limits,
            connections: CookieSlab::default(),
            orphans: Vec::new(),
            flush_queue: BinaryHeap::new(),
            compressor: zstd::bulk::Compressor::new(COMPRESSION_LEVEL)?,
            lines: Vec::new(),
            frame: Vec::new(),
            timestamp_ms: i64::MIN,
            timestamp_text: Vec::new(),
            pending_bytes: 0,
            published: 0,
            victims: Vec::new(),
        })
    }

    /// Takes in a batch at `now` (the time retries are judged by).
    pub fn apply(&mut self, batch: &Batch, now: Instant) {
        for item in &batch.items {
            match item.kind {
                ItemKind::Open {
                    start_ms,
                    anonymize,
                } => self.open(item.cookie, start_ms, anonymize, now),
                ItemKind::Snapshot => self.snapshot(item, batch.payload(item), now),
                ItemKind::Close => self.close(item.cookie, now),
            }
        }
        self.enforce_budget();
    }

    fn open(&mut self, cookie: u64, start_ms: i64, anonymize: AnonymizeMask, now: Instant) {
        let start = Timestamp::from_unix_millis(start_ms);
        let mut conn = ConnectionFile {
            cookie,
            start_ms,
            sequence: self.limits.previous.first_sequence(cookie, start_ms),
            rotate_at_ms: start_ms.saturating_add(self.rotation_ms()),
            date: start.utc_date(),
            anonymize,
            file: None,
            pending: Vec::new(),
            flushed_len: 0,
            header_pending: false,
            pending_snapshots: 0,
            oldest_pending_ms: start_ms,
            queued: false,
            retry: Retry::default(),
            give_up_at: None,
            last_line: None,
            written_line: None,
        };
        conn.begin_segment();
        if let Some(previous) = self.connections.insert(cookie, conn) {
            // The poller opens a cookie once; should it ever repeat, the
            // first connection's file is finished, not lost.
            self.finish_connection(previous, now);
        }
    }

    fn rotation_ms(&self) -> i64 {
        i64::try_from(self.config.rotation_interval.as_millis()).unwrap_or(i64::MAX)
    }

    /// Creates the segment's file; false (and a retry scheduled) if it
    /// cannot be created now.
    fn create_file(&mut self, conn: &mut ConnectionFile, now: Instant) -> bool {
        let asked = conn.sequence;
        let id = uuid(&self.config.uuid_prefix, conn.cookie);
        let purpose = if conn.closing() {
            Purpose::ClosingFile
        } else {
            Purpose::LiveFile
        };
        let created = self
            .tree
            .create_segment(conn.date, &id, &mut conn.sequence, purpose);
        if conn.sequence != asked {
            warn_limited!(
                NEXT_SEQUENCE,
                "{}: segment .{asked:05} already exists (a previous run, or planted); continuing at .{:05}",
                id,
                conn.sequence
            );
        }
        match created {
            Ok(file) => {
                conn.file = Some(file);
                add(&self.stats.files_opened, 1);
                true
            }
            Err(e) => {
                add(&self.stats.open_errors, 1);
                warn_limited!(OPEN_ERRORS, "cannot create {id}: {e}; will retry");
                match e {
                    CreateError::Reserve(_) => conn.retry.wait(now, self.config.flush_interval),
                    CreateError::Io { .. } => conn.retry.failed(now, self.config.flush_interval),
                }
                false
            }
        }
    }

    fn snapshot(&mut self, item: &Item, payload: &[u8], now: Instant) {
        // The connection is worked on in its slot: taking it out and
        // putting it back (~220 bytes moved twice, three hash operations)
        // was a fifth of the writers' time at 10,000 connections. Only the
        // rare steps that need the whole writer — a rotation, an eager
        // flush — take it out.
        let Some(mut place) = self.connections.place(&item.cookie) else {
            // No connection to write it to (the poller opens every cookie
            // before its snapshots): counted, so that queued = written +
            // dropped holds.
            add(&self.stats.dropped, 1);
            return;
        };
        if item.timestamp_ms >= self.connections.at(place).rotate_at_ms {
            place = self.rotate_if_written(item, now);
        }
        let conn = self.connections.at(place);
        let first = conn.last_line.is_none();
        let before = conn.pending.len();
        make_room(conn.flushed_len, &mut conn.pending);
        let gap = match conn.last_line {
            Some((poll, ms)) if self.config.poll_gaps => {
                Some((item.poll.saturating_sub(poll), item.timestamp_ms - ms))
            }
            _ => None,
        };
        let record = Record {
            timestamp_ms: item.timestamp_ms,
            poll_gap: gap,
            payload,
        };
        if pending::push(&mut conn.pending, record) {
            conn.last_line = Some((item.poll, item.timestamp_ms));
            if conn.pending_snapshots == 0 {
                conn.oldest_pending_ms = item.timestamp_ms;
            }
            conn.pending_snapshots += 1;
        } else {
            add(&self.stats.dropped, 1);
        }
        self.pending_bytes += conn.pending.len() - before;
        if conn.pending.len() >= EAGER_FLUSH_BYTES && conn.retry.due(now) {
            place = self.flush_taken_out(item.cookie, now);
        }
        let conn = self.connections.at(place);
        if conn.pending_snapshots > 0 && !conn.queued {
            conn.queued = true;
            let wait = if first {
                first_flush_wait(self.config.flush_interval, item.cookie)
            } else {
                self.config.flush_interval
            };
            let at = conn.retry.at.unwrap_or(now).max(now + wait);
            self.flush_queue.push(Reverse((at, item.cookie)));
        }
    }

    /// The segment of `item`'s connection is over: it ends, and the next
    /// begins, once everything it holds is in its file; until then it
    /// stays open (and `item` joins it), so that a failed flush never
    /// leaves lines behind for a closed file.
    fn rotate_if_written(&mut self, item: &Item, now: Instant) -> Place {
        let mut conn = self.take(item.cookie);
        if conn.pending_snapshots > 0 && conn.retry.due(now) {
            self.flush(&mut conn, now);
        }
        if conn.pending_snapshots == 0 {
            self.rotate(&mut conn, item.timestamp_ms);
        }
        self.put_back(item.cookie, conn)
    }

    /// Flushes the connection of `cookie` now, out of its slot (`flush`
    /// needs the whole writer).
    fn flush_taken_out(&mut self, cookie: u64, now: Instant) -> Place {
        let mut conn = self.take(cookie);
        self.flush(&mut conn, now);
        self.put_back(cookie, conn)
    }

    /// The connection of `cookie`, which the caller has just found.
    fn take(&mut self, cookie: u64) -> ConnectionFile {
        self.connections
            .remove(&cookie)
            .expect("the caller found this connection")
    }

    fn put_back(&mut self, cookie: u64, conn: ConnectionFile) -> Place {
        self.connections.insert(cookie, conn);
        self.connections
            .place(&cookie)
            .expect("inserted just above")
    }

    /// Ends the segment (everything it holds is written) and begins the
    /// next one at `at_ms`.
    fn rotate(&mut self, conn: &mut ConnectionFile, at_ms: i64) {
        self.finish_file(conn);
        conn.sequence += 1;
        conn.date = Timestamp::from_unix_millis(at_ms).utc_date();
        conn.rotate_at_ms = at_ms.saturating_add(self.rotation_ms());
        conn.begin_segment();
    }

    /// Writes the connection's pending buffer as JSON lines into
    /// `self.lines`: the segment's metadata line if its file does not have
    /// it yet, then a line per snapshot; how many snapshot lines.
    fn write_lines(&mut self, conn: &ConnectionFile) -> u64 {
        let mut lines = std::mem::take(&mut self.lines);
        lines.clear();
        if conn.header_pending {
            archive::write_metadata_line(&mut lines, &metadata(&self.config.uuid_prefix, conn));
        }
        let mut written = 0;
        for record in pending::records(&conn.pending) {
            written += u64::from(self.format_line(&mut lines, record, conn.anonymize));
        }
        self.lines = lines;
        written
    }

    /// Appends one snapshot line; false if the payload is not a valid
    /// reply (the poller hands over only replies it parsed, so this is the
    /// writer not trusting its input, not an expected case).
    fn format_line(
        &mut self,
        out: &mut Vec<u8>,
        record: Record<'_>,
        anonymize: AnonymizeMask,
    ) -> bool {
        let Ok(reply) = DiagRecord::parse(record.payload) else {
            return false;
        };
        if record.timestamp_ms != self.timestamp_ms {
            self.timestamp_ms = record.timestamp_ms;
            self.timestamp_text.clear();
            Timestamp::from_unix_millis(record.timestamp_ms).write_to(&mut self.timestamp_text);
        }
        // Go's JSON encoding of the timestamp never needs escaping.
        let ts = std::str::from_utf8(&self.timestamp_text).unwrap_or(archive::GO_ZERO_TIME);
        archive::write_line_start(out, ts);
        let mut idm = [0u8; INET_DIAG_MSG_LEN];
        idm.copy_from_slice(reply.msg().as_bytes());
        if anonymize != 0 {
            netblock_in_place(&mut idm, anonymize);
        }
        archive::write_raw_idm(out, &idm);
        archive::write_attributes(
            out,
            (0..reply.attribute_slots() as u16).map(|t| reply.attribute(t)),
        );
        if let Some((polls, milliseconds)) = record.poll_gap {
            archive::write_poll_gap(out, polls, milliseconds);
        }
        out.extend_from_slice(b"}\n");
        true
    }

    fn close(&mut self, cookie: u64, now: Instant) {
        if let Some(conn) = self.connections.remove(&cookie) {
            self.finish_connection(conn, now);
        }
    }

    /// Writes what is pending and closes the file; a connection whose
    /// lines cannot be written now waits among the orphans.
    fn finish_connection(&mut self, mut conn: ConnectionFile, now: Instant) {
        conn.give_up_at = Some(now + self.config.rotation_interval);
        // Only waiting for a descriptor (no failure yet): as a closing file
        // it may take one of the lane's, so it tries now.
        if conn.retry.failures == 0 {
            conn.retry = Retry::default();
        }
        if conn.pending_snapshots > 0 && conn.retry.due(now) {
            self.flush(&mut conn, now);
        }
        if conn.pending_snapshots == 0 {
            self.retire(conn);
        } else {
            self.orphans.push(conn);
        }
    }

    /// Retries the orphans that are due; gives up those that waited a
    /// rotation interval.
    fn retry_orphans(&mut self, now: Instant) {
        let orphans = std::mem::take(&mut self.orphans);
        for mut conn in orphans {
            if conn.retry.due(now) {
                self.flush(&mut conn, now);
            }
            if conn.pending_snapshots == 0 {
                self.retire(conn);
            } else if conn.give_up_at.is_some_and(|at| now >= at) {
                self.give_up(
                    conn,
                    "its file stayed unwritable for a rotation interval after its close",
                );
            } else {
                self.orphans.push(conn);
            }
        }
    }

    /// Flushes connections whose oldest pending line is older than the
    /// flush interval, and retries those whose retry is due.
    pub fn flush_due(&mut self, now: Instant) {
        if !self.orphans.is_empty() {
            self.retry_orphans(now);
        }
        while let Some(&Reverse((at, cookie))) = self.flush_queue.peek() {
            if at > now {
                break;
            }
            self.flush_queue.pop();
            let Some(mut conn) = self.connections.remove(&cookie) else {
                continue;
            };
            if conn.pending_snapshots > 0 && conn.retry.due(now) {
                self.flush(&mut conn, now);
            }
            if conn.pending_snapshots > 0 {
                let at = conn.retry.at.unwrap_or(now + self.config.flush_interval);
                self.flush_queue.push(Reverse((at, cookie)));
            } else {
                conn.queued = false;
            }
            self.connections.insert(cookie, conn);
        }
        self.enforce_budget();
    }

    /// Writes the pending snapshots as lines, compresses them into one
    /// complete frame and appends it; true when nothing is left pending.
    /// On failure a retry is scheduled and the snapshots stay.
    fn flush(&mut self, conn: &mut ConnectionFile, now: Instant) -> bool {
        if conn.pending_snapshots == 0 {
            return true;
        }
        if conn.file.is_none() && !self.create_file(conn, now) {
            return false;
        }
        let formatted = self.write_lines(conn);
        let file = conn.file.as_mut().expect("created above");
        self.frame.clear();
        self.frame
            .reserve(zstd::zstd_safe::compress_bound(self.lines.len()));
        let result = self
            .compressor
            .compress_to_buffer(&self.lines, &mut self.frame)
            .and_then(|_| file.append_frame(&self.frame));
        let frame_len = self.frame.len();
        let_go_if_grown(&mut self.lines);
        let_go_if_grown(&mut self.frame);
        match result {
            Ok(()) => {
                add(&self.stats.bytes_written, frame_len as u64);
                // Counted once the frame is in, not at each try.
                let malformed = conn.pending_snapshots.saturating_sub(formatted);
                if malformed > 0 {
                    add(&self.stats.parse_errors, malformed);
                    warn_limited!(
                        PARSE_ERRORS,
                        "writer: dropped {malformed} malformed snapshots of {}",
                        uuid(&self.config.uuid_prefix, conn.cookie)
                    );
                }
                add(&self.stats.written, formatted);
                add(&self.stats.dropped, malformed);
                self.pending_bytes -= conn.pending.len();
                conn.flushed_len = u32::try_from(conn.pending.len()).unwrap_or(u32::MAX);
                conn.written_line = conn.last_line;
                // Idle connections hold no buffer between flushes.
                conn.pending = Vec::new();
                conn.header_pending = false;
                conn.pending_snapshots = 0;
                conn.retry = Retry::default();
                true
            }
            Err(e) => {
                add(&self.stats.write_errors, 1);
                warn_limited!(
                    WRITE_ERRORS,
                    "cannot write {}: {e}; will retry",
                    uuid(&self.config.uuid_prefix, conn.cookie)
                );
                conn.retry.failed(now, self.config.flush_interval);
                false
            }
        }
    }

    /// Closes the segment's file. A file whose first frame was never
    /// committed is removed: no file is left without its metadata line.
    fn finish_file(&mut self, conn: &mut ConnectionFile) {
        let Some(mut file) = conn.file.take() else {
            return;
        };
        add(&self.stats.files_closed, 1);
        if file.is_torn() {
            if let Err(e) = file.cut_back() {
                log!(
                    "{}: cannot cut segment .{:05} back to its last complete frame: {e}",
                    uuid(&self.config.uuid_prefix, conn.cookie),
                    conn.sequence
                );
            }
        }
        if file.committed() == 0 {
            let id = uuid(&self.config.uuid_prefix, conn.cookie);
            if let Err(e) = self.tree.remove(conn.date, &id, conn.sequence, &file) {
                log_warn!(
                    "{id}: cannot remove the empty segment .{:05}: {e}",
                    conn.sequence
                );
            }
        }
    }

    /// A connection that is done (nothing left pending): its file closed.
    fn retire(&mut self, mut conn: ConnectionFile) {
        // A buffer is empty exactly when it holds no snapshot (a segment's
        // metadata line is made at its flush): nothing of the budget goes
        // with it.
        debug_assert!(conn.pending.is_empty() && conn.pending_snapshots == 0);
        self.finish_file(&mut conn);
    }

    /// Drops (and counts) the connection's lines, then retires it.
    fn give_up(&mut self, mut conn: ConnectionFile, why: &str) {
        let (snapshots, _) = self.drop_pending(&mut conn);
        warn_limited!(
            DROPS,
            "{}: dropped {snapshots} snapshots: {why}",
            uuid(&self.config.uuid_prefix, conn.cookie)
        );
        self.retire(conn);
    }

    /// Drops (and counts) the connection's snapshots; `(snapshots, bytes)`.
    fn drop_pending(&mut self, conn: &mut ConnectionFile) -> (u64, usize) {
        let dropped = shed(conn);
        add(&self.stats.dropped, dropped.0);
        self.pending_bytes -= dropped.1;
        dropped
    }

    /// Tells the budget this shard's total; past the budget, drops the
    /// oldest pending lines of this shard until the whole is back under
    /// its low-water mark (or this shard holds no more than its share).
    fn enforce_budget(&mut self) {
        self.limits
            .pending
            .publish(self.published, self.pending_bytes);
        self.published = self.pending_bytes;
        if !self.limits.pending.exceeded() {
            return;
        }
        let mut victims = std::mem::take(&mut self.victims);
        victims.clear();
        victims.extend(
            self.connections
                .iter()
                .filter(|(_, c)| c.pending_snapshots > 0)
                .map(|(cookie, c)| (c.oldest_pending_ms, Victim::Live(*cookie))),
        );
        victims.extend(
            self.orphans
                .iter()
                .enumerate()
                .filter(|(_, c)| c.pending_snapshots > 0)
                .map(|(i, c)| (c.oldest_pending_ms, Victim::Closed(i))),
        );
        victims.sort_unstable_by_key(|(oldest, _)| *oldest);
        let (mut snapshots, mut connections) = (0, 0);
        for &(_, victim) in &victims {
            if !self.limits.pending.should_shed(self.pending_bytes) {
                break;
            }
            let conn = match victim {
                Victim::Live(cookie) => self.connections.get_mut(&cookie),
                Victim::Closed(i) => self.orphans.get_mut(i),
            };
            let Some(conn) = conn else { continue };
            let (n, bytes) = shed(conn);
            add(&self.stats.dropped, n);
            self.pending_bytes -= bytes;
            snapshots += n;
            connections += 1;
            self.limits
                .pending
                .publish(self.published, self.pending_bytes);
            self.published = self.pending_bytes;
        }
        self.victims = victims;
        if connections > 0 {
            warn_limited!(
                SHEDDING,
                "pending archive data over -max-pending-bytes={}: dropped the oldest {snapshots} snapshots of {connections} connections",
                self.limits.pending.limit()
            );
            // Closed connections with nothing left to write are done.
            let orphans = std::mem::take(&mut self.orphans);
            for conn in orphans {
                if conn.pending_snapshots == 0 {
                    self.retire(conn);
                } else {
                    self.orphans.push(conn);
                }
            }
        }
    }

    /// Flushes and closes every file (shutdown); what still cannot be
    /// written is dropped, counted and logged. Connections holding a file
    /// go first: closing them frees descriptors for those still without one.
    pub fn finish(&mut self) {
        let now = Instant::now();
        let mut connections: Vec<ConnectionFile> = self.connections.take_all().collect();
        connections.append(&mut self.orphans);
        connections.sort_by_key(|c| c.file.is_none());
        let (mut snapshots, mut lost) = (0, 0);
        for mut conn in connections {
            conn.give_up_at.get_or_insert(now);
            if conn.pending_snapshots > 0 {
                self.flush(&mut conn, now);
            }
            if conn.pending_snapshots > 0 {
                snapshots += self.drop_pending(&mut conn).0;
                lost += 1;
            }
            self.retire(conn);
        }
        if lost > 0 {
            log_error!("at shutdown {snapshots} snapshots of {lost} connections could not be written: dropped");
        }
        self.flush_queue.clear();
        self.enforce_budget();
    }
}

/// The segment's metadata record.
fn metadata(prefix: &str, conn: &ConnectionFile) -> Metadata {
    Metadata {
        uuid: uuid(prefix, conn.cookie),
        sequence: u64::from(conn.sequence),
        start_time: Timestamp::from_unix_millis(conn.start_ms),
    }
}

/// Makes room in `pending` for the next line: as much as the last flush
/// wrote and a line more, or, past that, half again what it holds (so a
/// burst still grows it geometrically).
fn make_room(flushed_len: u32, pending: &mut Vec<u8>) {
    let len = pending.len();
    if pending.capacity() - len >= RECORD_ROOM {
        return;
    }
    let last = (flushed_len as usize).min(MAX_ROOM_FROM_LAST_FLUSH);
    let want = if len < last {
        last + RECORD_ROOM
    } else {
        len + RECORD_ROOM.max(len / 2)
    };
    pending.reserve_exact(want - len);
}

/// Empties the connection's buffer of snapshots and frees the memory;
/// `(snapshots, bytes)` dropped (the caller counts them). A segment not
/// yet written stays so (`header_pending`): its next flush writes the
/// metadata line first.
fn shed(conn: &mut ConnectionFile) -> (u64, usize) {
    let snapshots = std::mem::take(&mut conn.pending_snapshots);
    conn.last_line = conn.written_line;
    let bytes = std::mem::take(&mut conn.pending).len();
    (snapshots, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_flushes_wait_a_share_of_the_interval_spread_evenly_by_cookie() {
        let interval = Duration::from_secs(1);
        let mut per_tenth = [0; 10];
        // Consecutive cookies, as the kernel hands them out.
        for cookie in 0x4000..0x4000 + 10_000 {
            let wait = first_flush_wait(interval, cookie);
            assert!(wait < interval);
            assert_eq!(
                wait,
                first_flush_wait(interval, cookie),
                "the same each time"
            );
            per_tenth[(wait.as_millis() / 100) as usize] += 1;
        }
        for (tenth, n) in per_tenth.iter().enumerate() {
            assert!((900..=1100).contains(n), "{n} in tenth {tenth}");
        }
    }

    /// Appends `lines` lines of `line` bytes as `snapshot` does; returns
    /// the buffer and how many times it was allocated.
    fn fill(flushed_len: u32, lines: usize, line: usize) -> (Vec<u8>, usize) {
        let mut pending = Vec::new();
        let mut allocations = 0;
        for _ in 0..lines {
            let capacity = pending.capacity();
            make_room(flushed_len, &mut pending);
            pending.extend(std::iter::repeat_n(b'x', line));
            allocations += usize::from(pending.capacity() != capacity);
        }
        (pending, allocations)
    }

    fn batch_carrying(bytes: usize) -> Batch {
        let mut batch = Batch::default();
        batch.bytes.resize(bytes, 0);
        batch
    }

    #[test]
    fn a_batch_grown_by_a_burst_goes_back_to_the_pool_with_room_for_what_it_last_carried() {
        // The start-up burst: 6 MB in one batch, kept at the cap.
        let mut batch = batch_carrying(6 << 20);
        ready_for_reuse(&mut batch);
        assert!(batch.is_empty());
        assert_eq!(batch.bytes.capacity(), RECYCLED_BATCH_BYTES);
        // Then steady polls of 50 KB: room for twice that and the floor.
        batch.bytes.resize(50_000, 0);
        ready_for_reuse(&mut batch);
        assert_eq!(batch.bytes.capacity(), 100_000 + MIN_RECYCLED_BATCH_BYTES);
        // Polls that vary within the slack keep the room: no reallocation.
        for used in [30_000, 90_000, 26_000] {
            batch.bytes.resize(used, 0);
            ready_for_reuse(&mut batch);
            assert_eq!(batch.bytes.capacity(), 100_000 + MIN_RECYCLED_BATCH_BYTES);
        }
    }

    #[test]
    fn a_steady_connection_gets_its_buffer_in_one_allocation_of_the_size_it_needs() {
        let (first, allocations) = fill(0, 10, 800);
        assert!(allocations > 1, "first flush: grown as it comes");
        let (steady, allocations) = fill(first.len() as u32, 10, 800);
        assert_eq!(allocations, 1);
        assert_eq!(steady.capacity(), first.len() + RECORD_ROOM);
        // Doubling would have left 16,384 - 8,000 bytes empty.
        assert!(first.capacity() < 8000 * 3 / 2 + RECORD_ROOM);
    }

    #[test]
    fn a_burst_grows_geometrically_and_the_next_buffer_starts_no_larger_than_the_cap() {
        let (burst, allocations) = fill(8000, 1000, 800);
        assert_eq!(burst.len(), 800_000);
        assert!(
            allocations < 20,
            "{allocations} allocations for 1,000 lines"
        );
        let (quiet, _) = fill(burst.len() as u32, 1, 800);
        assert_eq!(quiet.capacity(), MAX_ROOM_FROM_LAST_FLUSH + RECORD_ROOM);
    }
}
