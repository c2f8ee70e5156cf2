//! The output directory, checked before anything is written into it.
//!
//! The agent usually runs as root and writes wherever `-output` points. If
//! another user can write into that directory (or rename one of the
//! directories above it), that user can plant symlinks or files where the
//! agent is about to write, or swap the whole tree. So every directory on
//! the path, the symlinks it goes through and the directory they lead to
//! must belong to root or to the agent's own user, and must not be
//! writable by anyone else — except with the sticky bit set (`/tmp`):
//! there no one can rename or remove what another user made, and what
//! others plant inside is harmless to the writers, which create every
//! file with `O_EXCL|O_NOFOLLOW` below directories they open with
//! `O_NOFOLLOW` (`saver::tree`).

use std::fs::{self, DirBuilder, Metadata};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// Why the output directory is not used.
#[derive(Debug, thiserror::Error)]
#[error("output directory {dir}: {problem}")]
pub struct OutputDirError {
    dir: String,
    problem: String,
}

/// Creates `dir` (0755, with its parents) when missing, then checks that no
/// other user can write into it or replace it.
pub fn prepare(dir: &Path) -> Result<(), OutputDirError> {
    let refused = |problem: String| OutputDirError {
        dir: dir.display().to_string(),
        problem,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| refused(format!("cannot create it: {e}")))?;
    let me = Owner {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let absolute = std::path::absolute(dir).map_err(|e| refused(e.to_string()))?;
    // The path as given (its symlinks included), then where it leads.
    check_path(&absolute, me).map_err(refused)?;
    let resolved = fs::canonicalize(dir).map_err(|e| refused(e.to_string()))?;
    check_path(&resolved, me).map_err(refused)?;
    if !fs::metadata(&resolved).is_ok_and(|m| m.is_dir()) {
        return Err(refused("is not a directory".into()));
    }
    Ok(())
}

/// Checks that files can be created in `dir` now: creates and removes a
/// probe file. Mode bits do not say it (root ignores them; a read-only
/// mount or a full inode table does not show in them), so the probe is a
/// real `O_CREAT|O_EXCL` and `unlink`.
pub fn probe_writable(dir: &Path) -> Result<(), OutputDirError> {
    let refused = |problem: String| OutputDirError {
        dir: dir.display().to_string(),
        problem,
    };
    let probe = dir.join(format!(".tcp-info-probe.{}", std::process::id()));
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&probe)
        .map_err(|e| refused(format!("cannot create files in it: {e}")))?;
    fs::remove_file(&probe).map_err(|e| refused(format!("cannot remove files from it: {e}")))
}

/// The output directory, locked for the life of the process: two agents
/// writing one tree would interleave records in the same files.
#[derive(Debug)]
pub struct OutputLock {
    _dir: nix::fcntl::Flock<fs::File>,
}

/// Takes an exclusive `flock` on `dir` itself (no lock file is added to the
/// archive); refused, naming the holder's pid when `/proc/locks` tells it,
/// when another process holds it. The lock goes with the process: a
/// killed agent leaves no stale lock behind.
pub fn lock(dir: &Path) -> Result<OutputLock, OutputDirError> {
    use nix::fcntl::{Flock, FlockArg};
    let refused = |problem: String| OutputDirError {
        dir: dir.display().to_string(),
        problem,
    };
    let file = fs::File::open(dir).map_err(|e| refused(format!("cannot open it: {e}")))?;
    let meta = file.metadata().map_err(|e| refused(e.to_string()))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(locked) => Ok(OutputLock { _dir: locked }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
            let holder = fs::read_to_string("/proc/locks")
                .ok()
                .and_then(|locks| flock_holder(&locks, meta.dev(), meta.ino()));
            Err(refused(match holder {
                Some(pid) => format!("is in use by another tcp-info (pid {pid})"),
                None => "is in use by another tcp-info".into(),
            }))
        }
        Err((_, e)) => Err(refused(format!("cannot lock it: {e}"))),
    }
}

/// The pid holding a `FLOCK` on the inode `dev`/`ino`, from the text of
/// `/proc/locks` (`1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`);
/// `None` when absent or when the holder is in another pid namespace (0).
fn flock_holder(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let wanted = format!("{major:02x}:{minor:02x}:{ino}");
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A lock someone waits for is listed with "->"; skip those.
        if fields.get(1) != Some(&"FLOCK") || fields.len() < 6 {
            return None;
        }
        (fields[5] == wanted)
            .then(|| fields[4].parse().ok())
            .flatten()
            .filter(|&pid| pid != 0)
    })
}

/// The user and group the agent runs as.
#[derive(Debug, Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

/// Checks every entry from `/` down to `path` (lstat: a symlink is judged
/// as a symlink); the last one is the output directory itself.
fn check_path(path: &Path, me: Owner) -> Result<(), String> {
    let mut at = PathBuf::new();
    let components: Vec<Component> = path.components().collect();
    for (i, component) in components.iter().enumerate() {
        at.push(component);
        let meta = match fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            // `..` and the like resolve later; canonicalize checks what
            // they lead to.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", at.display())),
        };
        let entry = Entry::of(&meta);
        judge(&entry, i + 1 == components.len(), me)
            .map_err(|problem| format!("{} {problem}", at.display()))?;
    }
    Ok(())
}

/// What the check needs to know about one entry on the path.
#[derive(Debug, Clone, Copy)]
struct Entry {
    uid: u32,
    gid: u32,
    mode: u32,
    is_symlink: bool,
}

impl Entry {
    fn of(meta: &Metadata) -> Entry {
        Entry {
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode(),
            is_symlink: meta.file_type().is_symlink(),
        }
    }
}

/// Whether another user could change what `entry` leads to; `last` is the
/// output directory itself.
fn judge(entry: &Entry, last: bool, me: Owner) -> Result<(), String> {
    if entry.uid != 0 && entry.uid != me.uid {
        return Err(format!(
            "is owned by uid {}, neither root nor the agent's user ({})",
            entry.uid, me.uid
        ));
    }
    // A symlink's own mode means nothing; only its owner may replace it.
    if entry.is_symlink {
        return Ok(());
    }
    let sticky = entry.mode & libc::S_ISVTX != 0;
    if sticky {
        return Ok(());
    }
    let mode = entry.mode & 0o7777;
    if entry.mode & 0o002 != 0 {
        return Err(format!(
            "is writable by every user (mode {mode:04o}{})",
            if last { "" } else { ", without the sticky bit" }
        ));
    }
    if entry.mode & 0o020 != 0 && entry.gid != 0 && entry.gid != me.gid {
        return Err(format!(
            "is writable by group {} (mode {mode:04o}), neither root's nor the agent's",
            entry.gid
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const ROOT_AGENT: Owner = Owner { uid: 0, gid: 0 };
    const USER_AGENT: Owner = Owner {
        uid: 1000,
        gid: 1000,
    };

    fn dir(uid: u32, gid: u32, mode: u32) -> Entry {
        Entry {
            uid,
            gid,
            mode: libc::S_IFDIR | mode,
            is_symlink: false,
        }
    }

    #[test]
    fn directories_of_root_or_the_agent_writable_by_them_alone_are_accepted() {
        for (entry, me) in [
            (dir(0, 0, 0o755), ROOT_AGENT),
            (dir(0, 0, 0o775), ROOT_AGENT),
            (dir(0, 0, 0o755), USER_AGENT),
            (dir(1000, 1000, 0o775), USER_AGENT),
            (dir(1000, 50, 0o755), USER_AGENT),
        ] {
            for last in [false, true] {
                assert_eq!(judge(&entry, last, me), Ok(()), "{entry:?} {me:?}");
            }
        }
        // /tmp: shared, but with the sticky bit, above the output directory.
        assert_eq!(judge(&dir(0, 0, 0o1777), false, ROOT_AGENT), Ok(()));
        // A symlink of root's, whatever its mode.
        let link = Entry {
            uid: 0,
            gid: 0,
            mode: libc::S_IFLNK | 0o777,
            is_symlink: true,
        };
        assert_eq!(judge(&link, false, USER_AGENT), Ok(()));
    }

    #[test]
    fn another_users_or_shared_directories_are_refused_with_the_reason() {
        let refused = |entry: Entry, last: bool| judge(&entry, last, ROOT_AGENT).unwrap_err();
        assert_eq!(
            refused(dir(1000, 1000, 0o755), true),
            "is owned by uid 1000, neither root nor the agent's user (0)"
        );
        assert_eq!(
            refused(dir(0, 0, 0o777), false),
            "is writable by every user (mode 0777, without the sticky bit)"
        );
        // Shared with the sticky bit, as the rule has it: what
        // others plant there is never followed nor written.
        assert_eq!(judge(&dir(0, 0, 0o1777), true, ROOT_AGENT), Ok(()));
        assert_eq!(
            refused(dir(0, 100, 0o775), true),
            "is writable by group 100 (mode 0775), neither root's nor the agent's"
        );
        let planted_link = Entry {
            uid: 65534,
            gid: 65534,
            mode: libc::S_IFLNK | 0o777,
            is_symlink: true,
        };
        assert!(refused(planted_link, false).starts_with("is owned by uid 65534"));
    }

    #[test]
    fn a_missing_directory_is_created_0755_and_a_world_writable_one_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("a/b/out");
        prepare(&out).unwrap();
        // 0755 less the umask.
        let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode & !0o755, 0, "{mode:o}");

        fs::set_permissions(&out, fs::Permissions::from_mode(0o777)).unwrap();
        let e = prepare(&out).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "output directory {0}: {0} is writable by every user (mode 0777)",
                out.display()
            )
        );
        // A shared directory above it, through a symlink too.
        fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
        let shared = tmp.path().join("a");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(shared.join("b/out"), &link).unwrap();
        for path in [&out, &link] {
            let e = prepare(path).unwrap_err().to_string();
            assert!(
                e.contains(&format!(
                    "{} is writable by every user (mode 0777, without the sticky bit)",
                    shared.display()
                )),
                "{e}"
            );
        }
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o755)).unwrap();
        prepare(&link).unwrap();
    }

    #[test]
    fn the_holder_of_a_flock_is_found_in_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 99 08:01:42 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 1234 fd:01:42 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 77 fd:01:42 0 EOF\n";
        let dev = libc::makedev(0xfd, 1);
        assert_eq!(flock_holder(locks, dev, 42), Some(1234));
        assert_eq!(flock_holder(locks, dev, 43), None);
        assert_eq!(flock_holder(locks, libc::makedev(8, 1), 42), None);
    }

    #[test]
    fn a_second_lock_on_the_output_directory_is_refused_naming_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let held = lock(tmp.path()).unwrap();
        // flock locks belong to the open file description: a second open
        // in the same process conflicts as another process would.
        let e = lock(tmp.path()).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "output directory {}: is in use by another tcp-info (pid {})",
                tmp.path().display(),
                std::process::id()
            )
        );
        drop(held);
        lock(tmp.path()).unwrap();
        probe_writable(tmp.path()).unwrap();
        assert_eq!(
            fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "the probe is gone"
        );
    }
}
