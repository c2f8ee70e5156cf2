//! Locking that outlives a panic.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, ignoring poisoning. Every update the agent makes under a lock
/// is a single assignment or insertion, so a thread that panicked while
/// holding one left a complete value behind; polling, scrapes and reloads
/// go on with it rather than panic in turn.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
