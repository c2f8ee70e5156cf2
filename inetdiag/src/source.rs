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
