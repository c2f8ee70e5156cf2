//! The archive tree under the output directory, reached only through
//! directory descriptors: the date directories are walked and created one
//! component at a time (`mkdirat`, then `openat` with `O_DIRECTORY |
//! O_NOFOLLOW`), and segment files are created with `O_CREAT | O_EXCL |
//! O_NOFOLLOW`. So no symbolic link below the output directory is ever
//! followed, whoever planted it, and no file that already exists (left by
//! a previous run of the agent, or planted) is ever written: the
//! connection continues in the next free sequence number instead.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;
use nix::fcntl::{open, openat, OFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use tcpinfo_archive::naming::segment_path;

use super::descriptors::{Claim, Descriptors, Purpose, ReserveReached};
use super::segment_file::SegmentFile;

/// Names tried per creation before giving up until the next retry: a
/// restart finds one file per connection, so the next name is free; a
/// long run of planted names costs a bounded number of calls per retry.
const MAX_NAMES_PER_TRY: u32 = 16;

/// Why a segment file could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Waiting for descriptors: the last ones are reserved.
    #[error("{0}")]
    Reserve(#[from] ReserveReached),
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

type Date = (i32, u32, u32);

/// A directory descriptor and the claim that counts it.
#[derive(Debug)]
struct Directory {
    fd: OwnedFd,
    _claim: Claim,
}

/// One shard's view of the output tree: the output directory and the date
/// directory it last used, held open.
#[derive(Debug)]
pub struct OutputTree {
    output: PathBuf,
    descriptors: Arc<Descriptors>,
    root: Option<Directory>,
    day: Option<(Date, Directory)>,
}

impl OutputTree {
    pub fn new(output: PathBuf, descriptors: Arc<Descriptors>) -> Self {
        Self {
            output,
            descriptors,
            root: None,
            day: None,
        }
    }

    /// Creates the segment file of `uuid` on `date` with sequence number
    /// `*sequence`, or the next free one (`*sequence` says which);
    /// `purpose` says whether its connection is still live.
    pub fn create_segment(
        &mut self,
        date: Date,
        uuid: &str,
        sequence: &mut u32,
        purpose: Purpose,
    ) -> Result<SegmentFile, CreateError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        for _ in 0..MAX_NAMES_PER_TRY {
            let (relative, name) = names(date, uuid, *sequence)?;
            let claim = self.descriptors.claim(purpose)?;
            let day = self.day(date, &relative)?;
            // Permissions as File::create gives them (0666 less the umask).
            match openat(day, name.as_str(), flags, Mode::from_bits_truncate(0o666)) {
                Ok(fd) => return Ok(SegmentFile::new(File::from(fd), claim)),
                // A file of a previous run, or planted: never written.
                Err(Errno::EEXIST) => *sequence += 1,
                Err(e) => {
                    if e == Errno::ENOENT {
                        // The date directory was removed under us.
                        self.day = None;
                    }
                    return Err(self.error(&relative, e));
                }
            }
        }
        Err(self.error(
            &names(date, uuid, *sequence)?.0,
            io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{MAX_NAMES_PER_TRY} segment files of this connection already exist"),
            ),
        ))
    }

    /// Removes `file`, segment `sequence` of `uuid` on `date`, from its
    /// directory, if that name is still this very file: a file whose first
    /// frame was never committed must not stay behind empty.
    pub fn remove(
        &mut self,
        date: Date,
        uuid: &str,
        sequence: u32,
        file: &SegmentFile,
    ) -> io::Result<()> {
        let (relative, name) = names(date, uuid, sequence).map_err(io::Error::other)?;
        let day = self.day(date, &relative).map_err(|e| match e {
            CreateError::Reserve(e) => io::Error::other(e),
            CreateError::Io { error, .. } => error,
        })?;
        let ours = file.file().metadata()?;
        let there = fstatat(day, name.as_str(), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if there.st_dev != ours.dev() || there.st_ino != ours.ino() {
            return Err(io::Error::other("the name now belongs to another file"));
        }
        unlinkat(day, name.as_str(), UnlinkatFlags::NoRemoveDir)?;
        Ok(())
    }

    /// The date directory of `relative` (`YYYY/MM/DD/…`), created if
    /// missing, one component at a time, following no symbolic link.
    fn day(&mut self, date: Date, relative: &Path) -> Result<BorrowedFd<'_>, CreateError> {
        if self.day.as_ref().is_some_and(|(d, _)| *d == date) {
            return Ok(self.day.as_ref().unwrap().1.fd.as_fd());
        }
        // Its claim goes back before the next day's is taken.
        self.day = None;
        let claim = self.descriptors.claim(Purpose::Directory)?;
        let parent = relative.parent().unwrap_or(Path::new(""));
        self.root()?;
        let root = &self.root.as_ref().expect("opened").fd;
        let fd = walk(root.as_fd(), parent).map_err(|e| self.error(parent, e))?;
        let dir = Directory { fd, _claim: claim };
        Ok(self.day.insert((date, dir)).1.fd.as_fd())
    }

    /// Opens the output directory once. It is the operator's choice of
    /// path, so a link there is followed; nothing below it is.
    fn root(&mut self) -> Result<(), CreateError> {
        if self.root.is_some() {
            return Ok(());
        }
        let claim = self.descriptors.claim(Purpose::Directory)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let opened = match open(&self.output, flags, Mode::empty()) {
            Err(Errno::ENOENT) => std::fs::create_dir_all(&self.output)
                .and_then(|()| Ok(open(&self.output, flags, Mode::empty())?)),
            other => other.map_err(io::Error::from),
        };
        let fd = opened.map_err(|e| self.error(Path::new(""), e))?;
        self.root = Some(Directory { fd, _claim: claim });
        Ok(())
    }

    fn error(&self, relative: &Path, error: impl Into<io::Error>) -> CreateError {
        CreateError::Io {
            path: self.output.join(relative),
            error: error.into(),
        }
    }
}

/// Walks (and creates) `dirs` below `root`, one component at a time:
/// `mkdirat`, then `openat` with `O_NOFOLLOW`, so a symbolic link in place
/// of a directory is an error, never followed; and a directory someone
/// else made (in a shared, sticky output directory) is an error too, never
/// written into: its owner could remove or swap what the agent wrote.
fn walk(root: BorrowedFd<'_>, dirs: &Path) -> io::Result<OwnedFd> {
    let mut current: Option<OwnedFd> = None;
    for component in dirs.iter() {
        let parent = current.as_ref().map_or(root, |fd| fd.as_fd());
        match mkdirat(parent, component, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let next = openat(
            parent,
            component,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        ours(&next, component)?;
        // The level above closes here: besides the day's own (claimed)
        // descriptor one more is open at a time, within the reserve.
        current = Some(next);
    }
    current.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no date directory"))
}

/// Fails unless `dir` belongs to root or to the agent's user and no one
/// else may write into it.
fn ours(dir: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<()> {
    let st = nix::sys::stat::fstat(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if (st.st_uid != 0 && st.st_uid != me) || st.st_mode & 0o002 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to uid {} (mode {:04o}): not a directory of the agent's",
                name.to_string_lossy(),
                st.st_uid,
                st.st_mode & 0o7777
            ),
        ));
    }
    Ok(())
}

/// The path of a segment relative to the output directory, and its file
/// name, which must be a single component.
fn names(date: Date, uuid: &str, sequence: u32) -> Result<(PathBuf, String), CreateError> {
    let relative = segment_path(Path::new(""), date, uuid, sequence);
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|_| !uuid.contains('/'))
        .ok_or_else(|| CreateError::Io {
            path: relative.clone(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "not a single file name"),
        })?;
    Ok((relative, name))
}
