//! One open segment file, append-only: it only ever grows by complete zstd
//! frames. The end of the last complete frame is its committed length; a
//! write that fails (a full disk, `EFBIG`) or stops halfway is cut back to
//! that length, so the file never holds a partial frame (the ETL drops a
//! file with one) and never loses a committed one.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::descriptors::Claim;

#[derive(Debug)]
pub struct SegmentFile {
    file: File,
    /// Bytes of complete frames in the file.
    committed: u64,
    /// A failed write left bytes past `committed` that could not be cut
    /// back yet: nothing is appended before they are.
    torn: bool,
    _claim: Claim,
}

impl SegmentFile {
    /// A file just created (empty).
    /// (Its name is not kept: it follows from the connection's cookie and
    /// segment number, and is needed only to remove a file never written.)
    pub fn new(file: File, claim: Claim) -> Self {
        Self {
            file,
            committed: 0,
            torn: false,
            _claim: claim,
        }
    }

    /// Bytes of complete frames in the file.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// The file itself (to compare it with what a name points to now).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Appends one complete frame at the committed length; on failure the
    /// file is cut back to that length (now, or before the next append if
    /// the cut fails too).
    pub fn append_frame(&mut self, frame: &[u8]) -> io::Result<()> {
        if self.torn {
            self.cut_back()?;
        }
        // Written at the committed offset rather than in append mode: what
        // a failed write left is overwritten even if the cut failed.
        match self.file.write_all_at(frame, self.committed) {
            Ok(()) => {
                self.committed += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.torn = true;
                // Shrinking needs no space, so this only fails on a dying
                // disk; then it is retried before the next append.
                let _ = self.cut_back();
                Err(e)
            }
        }
    }

    /// Whether a failed write left bytes past the committed length (a cut
    /// that failed too).
    pub fn is_torn(&self) -> bool {
        self.torn
    }

    /// Cuts the file back to its committed length (`ftruncate`).
    pub fn cut_back(&mut self) -> io::Result<()> {
        self.file.set_len(self.committed)?;
        self.torn = false;
        Ok(())
    }
}
