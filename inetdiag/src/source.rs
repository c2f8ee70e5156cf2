//! The seam between the kernel and whoever polls it: "run this dump, hand
//! me each reply". [`crate::DiagSocket`] is the kernel;
//! [`crate::replay::Replay`] plays captured datagrams back, so that
//! everything above it runs in tests without root or a live socket table.

use crate::request::DumpRequest;
use crate::{DumpStats, Error};

/// A source of `inet_diag` dumps.
pub trait DumpSource {
    /// Runs one dump of `request`, calling `on_record` with every reply
    /// payload (`inet_diag_msg` + attributes) in the order the kernel sent
    /// them. An `Err` means the dump did not complete: the replies already
    /// handed over are genuine, but sockets may be missing.
    fn dump(
        &mut self,
        request: &DumpRequest,
        on_record: impl FnMut(&[u8]),
    ) -> Result<DumpStats, Error>;
}

/// Sockets that may have changed since the previous call, with their
/// replies: a poll that skips the sockets known to be unchanged. Not a
/// census: a socket it does not mention may still be gone, which only a
/// complete dump proves.
pub trait ChangeSource: Send {
    /// Calls `on_record` with the reply payload (`inet_diag_msg` +
    /// attributes, as a dump carries it) of every socket that is new,
    /// changed state or may have changed since the previous call. An `Err`
    /// means some may have been missed: the caller should dump in full.
    fn changed(&mut self, on_record: &mut dyn FnMut(&[u8])) -> Result<ChangeStats, Error>;

    /// Takes note of every socket as it is now without reporting any: the
    /// caller is about to read them all with a complete dump.
    fn resync(&mut self) -> Result<(), Error>;
}

/// Totals for one [`ChangeSource::changed`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStats {
    /// Sockets the change detection reported.
    pub reported: usize,
    /// Replies handed over.
    pub records: usize,
    /// Reported sockets gone before their reply was asked for.
    pub gone: usize,
}
