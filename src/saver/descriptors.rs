//! The descriptor reserve: archive files never take the process's last
//! descriptors, so that the metrics server and the event socket can still
//! accept connections when a connection's file cannot be opened (with tens
//! of thousands of connections, files are what uses descriptors up).
//!
//! Counting the process's open descriptors on every open would cost a walk
//! of /proc/self/fd; instead the saver counts the descriptors it holds
//! itself (segment files and date directories, each behind a [`Claim`])
//! on top of a baseline counted once when the writers start.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use nix::sys::resource::{getrlimit, Resource};

/// Descriptors left to the rest of the process (HTTP clients of /metrics,
/// event-socket clients, /proc reads, the policy file): 64, or a quarter
/// of the limit when the limit is below 256.
pub const RESERVE: usize = 64;

/// Descriptors that live connections' files leave to closed connections'
/// last lines: 8, or one sixteenth of the limit (at least one) when the
/// limit is below 128. A live connection keeps its file open until its
/// segment rotates, so without this lane live files could hold every
/// descriptor the archive has, and a closed connection, which needs one
/// only for an open–write–close, would wait for a rotation.
pub const CLOSING_LANE: usize = 8;

/// Directories each writer shard holds open: the output directory and
/// the date directory it writes into.
const DIRECTORIES_PER_SHARD: usize = 2;

/// Assumed already open when /proc/self/fd cannot be read.
const UNKNOWN_BASELINE: usize = 16;

/// The soft open-files limit now (unlimited if it cannot be read). Read at
/// each claim, so that a limit raised with `prlimit --pid` counts at once.
pub fn open_files_limit() -> usize {
    getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
        .unwrap_or(usize::MAX)
}

/// The [`RESERVE`] under `limit`: a quarter of a small limit.
pub fn reserve_under(limit: usize) -> usize {
    RESERVE.min(limit / 4)
}

/// The [`CLOSING_LANE`] under `limit`: a sixteenth of a small limit, at
/// least one.
pub fn closing_lane_under(limit: usize) -> usize {
    CLOSING_LANE.min(limit / 16).max(1)
}

/// What an archive descriptor is for; files leave room for every
/// shard's directories, and live connections' files also leave the
/// [`CLOSING_LANE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Directory,
    /// A segment file of a connection that has closed (or of any
    /// connection at shutdown): it is written and closed at once.
    ClosingFile,
    /// A segment file that stays open while its connection lives.
    LiveFile,
}

/// An archive descriptor would eat into the reserve (or the closing
/// lane); the open waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{held} archive descriptors held ({directories} directories), {baseline} others, limit {limit}: the last {reserve} are kept for /metrics and the event socket{}", closing_lane_note(*.lane))]
pub struct ReserveReached {
    pub held: usize,
    pub directories: usize,
    pub baseline: usize,
    pub limit: usize,
    pub reserve: usize,
    /// The closing lane a live file left (0 for other purposes).
    pub lane: usize,
}

fn closing_lane_note(lane: usize) -> String {
    if lane == 0 {
        String::new()
    } else {
        format!(", {lane} more for closed connections' last lines")
    }
}

/// The descriptors the archive may hold, shared by every writer shard.
#[derive(Debug)]
pub struct Descriptors {
    /// Under a lock, both counts together: a claim is one per file or
    /// directory opened, next to an `openat` and a `getrlimit`.
    held: Mutex<Held>,
    baseline: usize,
    /// Directories the shards may come to hold: files leave room for them,
    /// so that a shard opening its directories late is never locked out.
    directory_allowance: usize,
}

#[derive(Debug, Default)]
struct Held {
    files: usize,
    directories: usize,
}

impl Descriptors {
    /// For `shards` writer shards; counts the descriptors the process
    /// holds now as its baseline.
    pub fn new(shards: usize) -> Arc<Self> {
        Self::with_baseline(open_descriptors().unwrap_or(UNKNOWN_BASELINE), shards)
    }

    pub fn with_baseline(baseline: usize, shards: usize) -> Arc<Self> {
        Arc::new(Self {
            held: Mutex::default(),
            baseline,
            directory_allowance: shards.saturating_mul(DIRECTORIES_PER_SHARD),
        })
    }

    /// The counts; a shard that panicked while holding the lock left them
    /// whole (each change is one statement).
    fn held_now(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Descriptors held by the archive now.
    pub fn held(&self) -> usize {
        let held = self.held_now();
        held.files + held.directories
    }

    /// One more descriptor for the archive, unless it would eat into the
    /// reserve (or, for a live connection's file, into the closing lane).
    /// The limit is read each time (one cheap system call per file
    /// opened), so a limit raised with `prlimit --pid` counts at once.
    pub fn claim(self: &Arc<Self>, purpose: Purpose) -> Result<Claim, ReserveReached> {
        let limit = open_files_limit();
        let reserve = reserve_under(limit);
        let mut held = self.held_now();
        let directory = purpose == Purpose::Directory;
        let counted = if directory {
            held.files + held.directories + 1
        } else {
            // Files count every shard's directories as held, open or not yet.
            held.files + 1 + held.directories.max(self.directory_allowance)
        };
        let lane = if purpose == Purpose::LiveFile {
            closing_lane_under(limit)
        } else {
            0
        };
        let needed = self
            .baseline
            .saturating_add(counted)
            .saturating_add(reserve)
            .saturating_add(lane);
        if needed > limit {
            return Err(ReserveReached {
                held: held.files + held.directories,
                directories: held.directories,
                baseline: self.baseline,
                limit,
                reserve,
                lane,
            });
        }
        if directory {
            held.directories += 1;
        } else {
            held.files += 1;
        }
        Ok(Claim {
            descriptors: Arc::clone(self),
            directory,
        })
    }
}

/// One descriptor held by the archive; given back on drop (kept next to
/// the descriptor it stands for, so the two go together).
#[derive(Debug)]
pub struct Claim {
    descriptors: Arc<Descriptors>,
    directory: bool,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.descriptors.held_now();
        if self.directory {
            held.directories -= 1;
        } else {
            held.files -= 1;
        }
    }
}

/// Descriptors open in this process now (the entries of /proc/self/fd,
/// less the one reading it).
fn open_descriptors() -> Option<usize> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    Some(entries.count().saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_stop_short_of_the_reserve_and_come_back_on_drop() {
        let limit = open_files_limit();
        let reserve = reserve_under(limit);
        // One shard: room for its two directories and exactly three
        // closing files.
        let descriptors = Descriptors::with_baseline(limit - reserve - 5, 1);
        let claims: Vec<Claim> = (0..3)
            .map(|_| descriptors.claim(Purpose::ClosingFile).unwrap())
            .collect();
        let refused = descriptors.claim(Purpose::ClosingFile).unwrap_err();
        assert_eq!(refused.held, 3);
        assert_eq!(refused.reserve, reserve);
        // The directories still fit: the files left room for them.
        let directories: Vec<Claim> = (0..2)
            .map(|_| descriptors.claim(Purpose::Directory).unwrap())
            .collect();
        assert!(descriptors.claim(Purpose::Directory).is_err());
        drop(claims);
        drop(directories);
        assert_eq!(descriptors.held(), 0);
        assert!(descriptors.claim(Purpose::ClosingFile).is_ok());
    }

    #[test]
    fn live_files_leave_the_closing_lane_to_closed_connections() {
        let limit = open_files_limit();
        let reserve = reserve_under(limit);
        let lane = closing_lane_under(limit);
        // Two shards' directories, `lane` closing files and two live ones.
        let descriptors = Descriptors::with_baseline(limit - reserve - 4 - lane - 2, 2);
        let live: Vec<Claim> = (0..2)
            .map(|_| descriptors.claim(Purpose::LiveFile).unwrap())
            .collect();
        let refused = descriptors.claim(Purpose::LiveFile).unwrap_err();
        assert_eq!(refused.lane, lane);
        assert!(
            refused.to_string().contains("closed connections"),
            "{refused}"
        );
        let closing: Vec<Claim> = (0..lane)
            .map(|_| descriptors.claim(Purpose::ClosingFile).unwrap())
            .collect();
        assert!(descriptors.claim(Purpose::ClosingFile).is_err());
        // Opening the directories late takes nothing from the files.
        let directories: Vec<Claim> = (0..4)
            .map(|_| descriptors.claim(Purpose::Directory).unwrap())
            .collect();
        assert_eq!(descriptors.held(), 2 + lane + 4);
        drop((live, closing, directories));
        assert_eq!(descriptors.held(), 0);
    }

    #[test]
    fn the_baseline_counts_this_process_descriptors() {
        // stdin, stdout and stderr at least.
        assert!(open_descriptors().unwrap() >= 3);
    }
}
