//! Reading a small configuration file (a policy, the UUID prefix) that an
//! operator names on the command line: it must be a regular file no larger
//! than a limit. A FIFO, a device such as `/dev/zero` or a directory is
//! refused at once instead of blocking the reader or eating memory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a small file was not read.
#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    #[error("{0}")]
    Io(io::Error),
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    #[error("is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("is not UTF-8 text")]
    NotText,
}

impl SmallFileError {
    /// The `io::ErrorKind` closest to the problem, for callers that
    /// report through `io::Error`.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            SmallFileError::Io(e) => e.kind(),
            _ => io::ErrorKind::InvalidData,
        }
    }
}

/// The content of the regular file at `path` as text, at most `limit`
/// bytes.
///
/// The file is opened non-blocking, so opening a FIFO without a writer
/// returns at once, and its type is taken from the open descriptor, so it
/// cannot be swapped between the check and the read. At most `limit + 1`
/// bytes are read, whatever size the file claims (files in /proc claim 0,
/// and a file may grow while it is read).
pub fn read_text(path: &Path, limit: u64) -> Result<String, SmallFileError> {
    let file = OpenOptions::new()
        .read(true)
        // O_CLOEXEC is the standard library's default.
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(SmallFileError::Io)?;
    let kind = file.metadata().map_err(SmallFileError::Io)?.file_type();
    if !kind.is_file() {
        return Err(SmallFileError::NotRegular(describe(kind)));
    }
    read_limited(file, limit)
}

fn read_limited(file: File, limit: u64) -> Result<String, SmallFileError> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(SmallFileError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(SmallFileError::TooLarge { limit });
    }
    String::from_utf8(bytes).map_err(|_| SmallFileError::NotText)
}

fn describe(kind: std::fs::FileType) -> &'static str {
    if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn refusal(path: &Path) -> String {
        let started = Instant::now();
        let e = read_text(path, 1024).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path:?} blocked"
        );
        e.to_string()
    }

    #[test]
    fn a_regular_file_within_the_limit_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x".repeat(1024)).unwrap();
        assert_eq!(read_text(&path, 1024).unwrap().len(), 1024);
    }

    #[test]
    fn fifos_devices_directories_and_big_files_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(refusal(&fifo), "is a FIFO, not a regular file");
        assert_eq!(
            refusal(Path::new("/dev/zero")),
            "is a character device, not a regular file"
        );
        assert_eq!(refusal(dir.path()), "is a directory, not a regular file");
        let big = dir.path().join("big");
        std::fs::write(&big, "x".repeat(1025)).unwrap();
        assert_eq!(refusal(&big), "is larger than 1024 bytes");
        let binary = dir.path().join("binary");
        std::fs::write(&binary, [0xff, 0xfe]).unwrap();
        assert_eq!(refusal(&binary), "is not UTF-8 text");
        assert!(refusal(&dir.path().join("missing")).starts_with("No such file"));
    }
}
