//! One writer shard: owns the files of the connections whose cookie maps to
//! it, turns snapshots into JSON lines in per-connection buffers, and
//! compresses each buffer into one complete zstd frame appended to the file
//! at least every flush interval, at rotation and at close. One compressor
//! context per shard, not per connection.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::AHashMap;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use inetdiag::{DiagRecord, INET_DIAG_MSG_LEN};
use tcpinfo_archive::naming::{segment_path, uuid};
use tcpinfo_archive::{self as archive, Metadata, Timestamp};

use super::batch::{Batch, Item, ItemKind};
use super::QueueDepths;
use crate::exclusion::{netblock_in_place, AnonymizeMask};
use crate::log::RateLimit;
use crate::stats::{add, Stats};

/// zstd level of the Go tool's `zstd` processes (the CLI default).
const COMPRESSION_LEVEL: i32 = 3;
/// A buffer this large is flushed without waiting for the interval.
const EAGER_FLUSH_BYTES: usize = 256 * 1024;
/// A connection whose file cannot be opened or written keeps its lines
/// for retries, up to this much; beyond it they are dropped and counted.
const MAX_PENDING_BYTES: usize = 8 * 1024 * 1024;

static OPEN_ERRORS: RateLimit = RateLimit::new(10_000);
static WRITE_ERRORS: RateLimit = RateLimit::new(10_000);
static PARSE_ERRORS: RateLimit = RateLimit::new(10_000);
static DROPS: RateLimit = RateLimit::new(10_000);

/// What every shard needs to know.
#[derive(Debug, Clone)]
pub struct SaverConfig {
    pub output: PathBuf,
    pub uuid_prefix: String,
    pub flush_interval: Duration,
    pub rotation_interval: Duration,
}

/// A connection's current segment: its file and the lines not yet in it.
struct ConnectionFile {
    uuid: String,
    start_ms: i64,
    sequence: u32,
    /// A snapshot at or after this time starts the next segment.
    rotate_at_ms: i64,
    date: (i32, u32, u32),
    anonymize: AnonymizeMask,
    file: Option<File>,
    /// Bytes of complete frames in the file: a failed write is cut back to it.
    file_len: u64,
    /// JSON lines not yet compressed (the metadata line first, for a new segment).
    pending: Vec<u8>,
    pending_snapshots: u64,
    /// Already waiting in the flush queue.
    queued: bool,
}

pub struct ShardWriter {
    config: Arc<SaverConfig>,
    stats: Arc<Stats>,
    connections: AHashMap<u64, ConnectionFile>,
    /// Closed connections whose last lines could not be written yet (no
    /// descriptor for the file, or a failed write): retried every tick.
    /// Each keeps its file open until its lines are in: a file is closed
    /// once and never opened again.
    orphans: Vec<ConnectionFile>,
    flush_queue: VecDeque<(Instant, u64)>,
    compressor: zstd::bulk::Compressor<'static>,
    frame: Vec<u8>,
    /// The last timestamp formatted, reused for every record of a dump.
    timestamp_ms: i64,
    timestamp_text: Vec<u8>,
    last_dir: Option<PathBuf>,
}

/// Runs shard `shard` until `batches` is closed, then finishes every file.
pub fn run(
    shard: usize,
    config: Arc<SaverConfig>,
    stats: Arc<Stats>,
    batches: Receiver<Batch>,
    recycle: Sender<Batch>,
    depths: Arc<QueueDepths>,
) -> io::Result<()> {
    let mut writer = ShardWriter::new(config, stats)?;
    let tick = (writer.config.flush_interval / 4)
        .clamp(Duration::from_millis(5), Duration::from_millis(250));
    loop {
        match batches.recv_timeout(tick) {
            Ok(mut batch) => {
                depths.taken(shard);
                writer.apply(&batch);
                batch.clear();
                // The poller may have gone: then the buffer is simply freed.
                let _ = recycle.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        writer.flush_due(Instant::now());
    }
    writer.finish();
    Ok(())
}

impl ShardWriter {
    pub fn new(config: Arc<SaverConfig>, stats: Arc<Stats>) -> io::Result<Self> {
        Ok(Self {
            config,
            stats,
            connections: AHashMap::new(),
            orphans: Vec::new(),
            flush_queue: VecDeque::new(),
            compressor: zstd::bulk::Compressor::new(COMPRESSION_LEVEL)?,
            frame: Vec::new(),
            timestamp_ms: i64::MIN,
            timestamp_text: Vec::new(),
            last_dir: None,
        })
    }

    pub fn apply(&mut self, batch: &Batch) {
        for item in &batch.items {
            match item.kind {
                ItemKind::Open {
                    start_ms,
                    anonymize,
                } => self.open(item.cookie, start_ms, anonymize),
                ItemKind::Snapshot => self.snapshot(item, batch.payload(item)),
                ItemKind::Close => self.close(item.cookie),
            }
        }
    }

    fn open(&mut self, cookie: u64, start_ms: i64, anonymize: AnonymizeMask) {
        let start = Timestamp::from_unix_millis(start_ms);
        let mut conn = ConnectionFile {
            uuid: uuid(&self.config.uuid_prefix, cookie),
            start_ms,
            sequence: 0,
            rotate_at_ms: start_ms.saturating_add(self.config.rotation_interval.as_millis() as i64),
            date: start.utc_date(),
            anonymize,
            file: None,
            file_len: 0,
            pending: Vec::new(),
            pending_snapshots: 0,
            queued: false,
        };
        self.begin_segment(&mut conn);
        self.connections.insert(cookie, conn);
    }

    /// Queues the segment's metadata line. The file itself is created at
    /// the first flush, so that it never exists without a complete frame
    /// (a 0-byte file left by a crash is rejected by the ETL).
    fn begin_segment(&mut self, conn: &mut ConnectionFile) {
        archive::write_metadata_line(
            &mut conn.pending,
            &Metadata {
                uuid: conn.uuid.clone(),
                sequence: u64::from(conn.sequence),
                start_time: Timestamp::from_unix_millis(conn.start_ms),
            },
        );
    }

    fn open_file(&mut self, conn: &mut ConnectionFile) {
        let path = segment_path(&self.config.output, conn.date, &conn.uuid, conn.sequence);
        match self.create(&path) {
            Ok(file) => {
                conn.file = Some(file);
                conn.file_len = 0;
                add(&self.stats.files_opened, 1);
            }
            Err(e) => {
                add(&self.stats.open_errors, 1);
                log_limited!(
                    OPEN_ERRORS,
                    "cannot create {}: {e}; will retry",
                    path.display()
                );
            }
        }
    }

    fn create(&mut self, path: &Path) -> io::Result<File> {
        let dir = path.parent().unwrap_or(Path::new("."));
        if self.last_dir.as_deref() != Some(dir) {
            fs::create_dir_all(dir)?;
            self.last_dir = Some(dir.to_path_buf());
        }
        OpenOptions::new().create(true).append(true).open(path)
    }

    fn snapshot(&mut self, item: &Item, payload: &[u8]) {
        let Some(mut conn) = self.connections.remove(&item.cookie) else {
            return;
        };
        if item.timestamp_ms >= conn.rotate_at_ms {
            self.flush(&mut conn);
            // The segment ends only once everything it holds is in its
            // file; until then it stays open (and this line joins it), so
            // a failed flush never leaves lines behind for a closed file.
            if conn.pending.is_empty() {
                self.finish_file(&mut conn);
                conn.sequence += 1;
                conn.date = Timestamp::from_unix_millis(item.timestamp_ms).utc_date();
                conn.rotate_at_ms = item
                    .timestamp_ms
                    .saturating_add(self.config.rotation_interval.as_millis() as i64);
                self.begin_segment(&mut conn);
            }
        }
        if self.format_line(
            &mut conn.pending,
            item.timestamp_ms,
            payload,
            conn.anonymize,
        ) {
            conn.pending_snapshots += 1;
        }
        if conn.pending.len() >= EAGER_FLUSH_BYTES {
            self.flush(&mut conn);
        } else if !conn.queued {
            conn.queued = true;
            self.flush_queue
                .push_back((Instant::now() + self.config.flush_interval, item.cookie));
        }
        self.connections.insert(item.cookie, conn);
    }

    /// Appends one snapshot line; false (and counted) if the payload is not
    /// a valid reply, which the poller should never let through.
    fn format_line(
        &mut self,
        out: &mut Vec<u8>,
        timestamp_ms: i64,
        payload: &[u8],
        anonymize: AnonymizeMask,
    ) -> bool {
        let record = match DiagRecord::parse(payload) {
            Ok(r) => r,
            Err(e) => {
                add(&self.stats.parse_errors, 1);
                log_limited!(PARSE_ERRORS, "writer: dropping malformed snapshot: {e}");
                return false;
            }
        };
        if timestamp_ms != self.timestamp_ms {
            self.timestamp_ms = timestamp_ms;
            self.timestamp_text.clear();
            Timestamp::from_unix_millis(timestamp_ms).write_to(&mut self.timestamp_text);
        }
        // Go's JSON encoding of the timestamp never needs escaping.
        let ts = std::str::from_utf8(&self.timestamp_text).unwrap_or(archive::GO_ZERO_TIME);
        archive::write_line_start(out, ts);
        let mut idm = [0u8; INET_DIAG_MSG_LEN];
        idm.copy_from_slice(record.msg().as_bytes());
        if anonymize != 0 {
            netblock_in_place(&mut idm, anonymize);
        }
        archive::write_raw_idm(out, &idm);
        archive::write_attributes(
            out,
            (0..record.attribute_slots() as u16).map(|t| record.attribute(t)),
        );
        out.extend_from_slice(b"}\n");
        true
    }

    fn close(&mut self, cookie: u64) {
        if let Some(conn) = self.connections.remove(&cookie) {
            self.finish_connection(conn);
        }
    }

    /// Writes what is pending and closes the file; a connection whose lines
    /// cannot be written now waits among the orphans, its file (if it has
    /// one) still open.
    fn finish_connection(&mut self, mut conn: ConnectionFile) {
        self.flush(&mut conn);
        if conn.pending.is_empty() {
            self.finish_file(&mut conn);
        } else {
            self.orphans.push(conn);
        }
    }

    /// Retries the orphans; with `last_chance`, drops (and counts) those
    /// that still fail.
    fn retry_orphans(&mut self, last_chance: bool) {
        let orphans = std::mem::take(&mut self.orphans);
        for mut conn in orphans {
            self.flush(&mut conn);
            if !conn.pending.is_empty() && !last_chance {
                self.orphans.push(conn);
                continue;
            }
            if !conn.pending.is_empty() {
                self.drop_pending(&mut conn, "its file could not be written before shutdown");
            }
            self.finish_file(&mut conn);
        }
    }

    /// Flushes connections whose oldest pending line is older than the
    /// flush interval.
    pub fn flush_due(&mut self, now: Instant) {
        if !self.orphans.is_empty() {
            self.retry_orphans(false);
        }
        while let Some(&(deadline, cookie)) = self.flush_queue.front() {
            if deadline > now {
                break;
            }
            self.flush_queue.pop_front();
            if let Some(mut conn) = self.connections.remove(&cookie) {
                conn.queued = false;
                self.flush(&mut conn);
                if !conn.pending.is_empty() {
                    // The file could not be written: try again next interval.
                    conn.queued = true;
                    self.flush_queue
                        .push_back((now + self.config.flush_interval, cookie));
                }
                self.connections.insert(cookie, conn);
            }
        }
    }

    /// Compresses the pending lines into one complete frame and appends it.
    fn flush(&mut self, conn: &mut ConnectionFile) {
        if conn.pending.is_empty() {
            return;
        }
        if conn.file.is_none() {
            self.open_file(conn);
        }
        let Some(file) = conn.file.as_mut() else {
            if conn.pending.len() > MAX_PENDING_BYTES {
                self.drop_pending(conn, "file could not be created");
            }
            return;
        };
        self.frame.clear();
        self.frame
            .reserve(zstd::zstd_safe::compress_bound(conn.pending.len()));
        let result = self
            .compressor
            .compress_to_buffer(&conn.pending, &mut self.frame)
            .and_then(|_| file.write_all(&self.frame));
        match result {
            Ok(()) => {
                conn.file_len += self.frame.len() as u64;
                add(&self.stats.bytes_written, self.frame.len() as u64);
                add(&self.stats.written, conn.pending_snapshots);
                conn.pending_snapshots = 0;
                // Idle connections hold no buffer between flushes.
                conn.pending = Vec::new();
            }
            Err(e) => {
                add(&self.stats.write_errors, 1);
                log_limited!(WRITE_ERRORS, "cannot write {}: {e}; will retry", conn.uuid);
                // Never leave half a frame behind: the ETL drops a file
                // with an incomplete frame.
                let _ = file.set_len(conn.file_len);
                if conn.pending.len() > MAX_PENDING_BYTES {
                    self.drop_pending(conn, "file could not be written");
                }
            }
        }
    }

    fn finish_file(&mut self, conn: &mut ConnectionFile) {
        if conn.file.take().is_some() {
            add(&self.stats.files_closed, 1);
        }
    }

    fn drop_pending(&mut self, conn: &mut ConnectionFile, why: &str) {
        add(&self.stats.dropped, conn.pending_snapshots);
        log_limited!(
            DROPS,
            "{}: dropped {} snapshots: {why}",
            conn.uuid,
            conn.pending_snapshots
        );
        conn.pending = Vec::new();
        conn.pending_snapshots = 0;
    }

    /// Flushes and closes every file (shutdown). Connections holding a file
    /// go first: closing them frees descriptors for those still without one.
    pub fn finish(&mut self) {
        let mut connections: Vec<ConnectionFile> =
            self.connections.drain().map(|(_, c)| c).collect();
        connections.sort_by_key(|c| c.file.is_none());
        for conn in connections {
            self.finish_connection(conn);
        }
        self.retry_orphans(true);
        self.flush_queue.clear();
    }
}
