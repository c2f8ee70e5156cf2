//! Counters shared by the poller and the writers, and the periodic summary
//! line (M-Lab's `LogCacheStats`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crossbeam_utils::CachePadded;

/// In declaration order (`repr(C)`): the poller's counters, then the
/// writers' (a new counter goes in the half of the thread that counts it
/// most).
#[derive(Debug, Default)]
#[repr(C)]
pub struct Stats {
    /// Complete or partial polling cycles run.
    pub polls: AtomicU64,
    /// Sum of the intervals between poll starts, in microseconds.
    pub poll_interval_us: AtomicU64,
    /// Replies received from the kernel.
    pub records: AtomicU64,
    /// Connections seen for the first time (archived or not).
    pub new: AtomicU64,
    /// Snapshots that differed significantly from the previous one.
    pub changed: AtomicU64,
    /// Connections that vanished from a complete dump.
    pub closed: AtomicU64,
    /// Snapshots handed to the writers.
    pub queued: AtomicU64,
    pub netlink_errors: AtomicU64,
    /// Dumps the kernel flagged as interrupted (`NLM_F_DUMP_INTR`): their
    /// replies were used, but no connection was closed on their account.
    pub interrupted_dumps: AtomicU64,
    /// 1 when the poller reads destroy notices, 0 when it cannot.
    pub destroy_notices_enabled: AtomicU64,
    /// Destroy notices read (each the final snapshot of a socket).
    pub destroy_notices: AtomicU64,
    /// Times the kernel dropped destroy notices (or reading them failed).
    pub destroy_notices_lost: AtomicU64,
    /// With notices: sockets closed because they stayed out of complete
    /// dumps, their notice never read.
    pub absent_closes: AtomicU64,
    /// Connections seen only by their destroy notice (opened and destroyed
    /// between two polls), by [IPv4, IPv6] and remote scope [loopback,
    /// private, public].
    pub short_connections: [[AtomicU64; 3]; 2],
    /// Reply attributes of a type above `inetdiag::MAX_ATTRIBUTE_TYPE`,
    /// left out of archived snapshots (the rest of the reply is kept);
    /// counted in the replies parsed, not in those told unchanged unparsed.
    pub skipped_attributes: AtomicU64,
    pub parse_errors: AtomicU64,
    /// `-poll.mode=bpf`: polls that read only the changed sockets, the
    /// sockets the change detection reported, and the complete dumps run
    /// between them.
    pub change_polls: AtomicU64,
    pub change_reported: AtomicU64,
    pub full_dumps: AtomicU64,
    /// Keeps the writers' counters below off the cache lines of the
    /// poller's above: the poller counts every changed reply, and a line
    /// shared with a writer's counters moved between the two cores at each
    /// count (measured: 7% of the polling thread's user time at 10,000
    /// connections).
    _apart: CachePadded<()>,
    /// Snapshot lines compressed and appended to files.
    pub written: AtomicU64,
    /// Snapshot lines dropped after a file stayed unwritable too long.
    pub dropped: AtomicU64,
    pub files_opened: AtomicU64,
    pub files_closed: AtomicU64,
    pub bytes_written: AtomicU64,
    pub open_errors: AtomicU64,
    pub write_errors: AtomicU64,
}

// The writers' counters start past the gap: a counter moved above it
// would share the poller's lines again.
const _: () = assert!(
    std::mem::offset_of!(Stats, written)
        >= std::mem::offset_of!(Stats, _apart) + std::mem::size_of::<CachePadded<()>>()
);

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

impl Stats {
    pub fn errors(&self) -> u64 {
        self.netlink_errors.load(Relaxed)
            + self.parse_errors.load(Relaxed)
            + self.open_errors.load(Relaxed)
            + self.write_errors.load(Relaxed)
    }

    /// One line of totals; the mean interval covers the polls since
    /// `since` (a previous [`Stats::snapshot_polls`]).
    pub fn summary(&self, since: (u64, u64)) -> String {
        let polls = self.polls.load(Relaxed);
        let interval_us = self.poll_interval_us.load(Relaxed);
        let (p0, i0) = since;
        let intervals = polls.saturating_sub(p0).max(1);
        let mean_ms = interval_us.saturating_sub(i0) as f64 / intervals as f64 / 1000.0;
        let change_polls = self.change_polls.load(Relaxed);
        // Only in -poll.mode=bpf, so that the dump mode's line is as before.
        let changes = if change_polls == 0 {
            String::new()
        } else {
            format!(
                " change_polls={change_polls} change_reported={} full_dumps={}",
                self.change_reported.load(Relaxed),
                self.full_dumps.load(Relaxed)
            )
        };
        format!(
            "stats: polls={polls} mean_interval={mean_ms:.2}ms records={} new={} changed={} closed={} queued={} written={} dropped={} files_opened={} files_closed={} bytes={} errors={} (netlink={} parse={} open={} write={}){changes}",
            self.records.load(Relaxed),
            self.new.load(Relaxed),
            self.changed.load(Relaxed),
            self.closed.load(Relaxed),
            self.queued.load(Relaxed),
            self.written.load(Relaxed),
            self.dropped.load(Relaxed),
            self.files_opened.load(Relaxed),
            self.files_closed.load(Relaxed),
            self.bytes_written.load(Relaxed),
            self.errors(),
            self.netlink_errors.load(Relaxed),
            self.parse_errors.load(Relaxed),
            self.open_errors.load(Relaxed),
            self.write_errors.load(Relaxed),
        )
    }

    /// `(polls, interval sum)` now, the start of the next summary's window.
    pub fn snapshot_polls(&self) -> (u64, u64) {
        (
            self.polls.load(Relaxed),
            self.poll_interval_us.load(Relaxed),
        )
    }
}
