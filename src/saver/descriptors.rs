//! The descriptor reserve: archive files never take the process's last
//! descriptors, so that the metrics server and the event socket can still
//! accept connections when a connection's file cannot be opened (with tens
//! of thousands of connections, files are what uses descriptors up).
//!
//! Counting the process's open descriptors on every open would cost a walk
//! of /proc/self/fd; instead the saver counts the descriptors it holds
//! itself (segment files and date directories, each behind a [`Claim`])
//! on top of a baseline counted once when the writers start.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use nix::sys::resource::{getrlimit, Resource};

/// Descriptors left to the rest of the process (HTTP clients of /metrics,
/// event-socket clients, /proc reads, the policy file): 64, or a quarter
/// of the limit when the limit is below 256.
pub const RESERVE: usize = 64;

/// Assumed already open when /proc/self/fd cannot be read.
const UNKNOWN_BASELINE: usize = 16;

/// An archive file would eat into the reserve; the open waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{held} archive descriptors held, {baseline} others, limit {limit}: the last {reserve} are kept for /metrics and the event socket")]
pub struct ReserveReached {
    pub held: usize,
    pub baseline: usize,
    pub limit: usize,
    pub reserve: usize,
}

/// The descriptors the archive may hold, shared by every writer shard.
#[derive(Debug)]
pub struct Descriptors {
    held: AtomicUsize,
    baseline: usize,
}

impl Descriptors {
    /// Counts the descriptors the process holds now as its baseline.
    pub fn new() -> Arc<Self> {
        Self::with_baseline(open_descriptors().unwrap_or(UNKNOWN_BASELINE))
    }

    pub fn with_baseline(baseline: usize) -> Arc<Self> {
        Arc::new(Self {
            held: AtomicUsize::new(0),
            baseline,
        })
    }

    /// Descriptors held by the archive now.
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
    }

    /// One more descriptor for the archive, unless it would eat into the
    /// reserve. The limit is read each time (one cheap system call per
    /// file opened), so a limit raised with `prlimit --pid` counts at once.
    pub fn claim(self: &Arc<Self>) -> Result<Claim, ReserveReached> {
        let limit = getrlimit(Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| usize::try_from(soft).unwrap_or(usize::MAX))
            .unwrap_or(usize::MAX);
        let reserve = RESERVE.min(limit / 4);
        let held = self.held.fetch_add(1, Relaxed) + 1;
        if self.baseline.saturating_add(held).saturating_add(reserve) > limit {
            self.held.fetch_sub(1, Relaxed);
            return Err(ReserveReached {
                held: held - 1,
                baseline: self.baseline,
                limit,
                reserve,
            });
        }
        Ok(Claim(Arc::clone(self)))
    }
}

/// One descriptor held by the archive; given back on drop (kept next to
/// the descriptor it stands for, so the two go together).
#[derive(Debug)]
pub struct Claim(Arc<Descriptors>);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Relaxed);
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
        let (soft, _) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        let limit = usize::try_from(soft).unwrap();
        let reserve = RESERVE.min(limit / 4);
        // Room for exactly three claims.
        let descriptors = Descriptors::with_baseline(limit - reserve - 3);
        let claims: Vec<Claim> = (0..3).map(|_| descriptors.claim().unwrap()).collect();
        let refused = descriptors.claim().unwrap_err();
        assert_eq!(refused.held, 3);
        assert_eq!(refused.reserve, reserve);
        drop(claims);
        assert_eq!(descriptors.held(), 0);
        assert!(descriptors.claim().is_ok());
    }

    #[test]
    fn the_baseline_counts_this_process_descriptors() {
        // stdin, stdout and stderr at least.
        assert!(open_descriptors().unwrap() >= 3);
    }
}
