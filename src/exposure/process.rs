//! Which program owns a listening socket: socket inodes mapped to process
//! names through /proc, cached, with misses cached too.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ahash::{AHashMap, AHashSet};

/// Every name is re-resolved this often: an inode's owner can change (a
/// socket passed to another process, a fork and exec).
const REFRESH: Duration = Duration::from_secs(60);

/// Process names of socket inodes.
pub struct ProcessNames {
    proc_root: PathBuf,
    /// Inode → name; "" when no visible process holds it (negative entry).
    names: AHashMap<u32, Arc<str>>,
    last_full_scan: Option<Instant>,
    empty: Arc<str>,
    scans: u64,
}

impl ProcessNames {
    /// Reads `/proc`-shaped trees under `proc_root` (tests pass a fake one).
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        Self {
            proc_root: proc_root.into(),
            names: AHashMap::new(),
            last_full_scan: None,
            empty: Arc::from(""),
            scans: 0,
        }
    }

    /// Makes sure every inode in `inodes` has a name (possibly empty), and
    /// forgets inodes not in it. Scans /proc only when an inode is new or a
    /// refresh is due.
    pub fn resolve(&mut self, inodes: &AHashSet<u32>, now: Instant) {
        self.names.retain(|inode, _| inodes.contains(inode));
        let refresh = self
            .last_full_scan
            .is_none_or(|t| now.duration_since(t) >= REFRESH);
        let wanted: AHashSet<u32> = if refresh {
            inodes.clone()
        } else {
            inodes
                .iter()
                .copied()
                .filter(|i| !self.names.contains_key(i))
                .collect()
        };
        if wanted.is_empty() {
            return;
        }
        if refresh {
            self.last_full_scan = Some(now);
        }
        self.scans += 1;
        let owners = scan(&self.proc_root, &wanted);
        let mut by_pid: AHashMap<u32, Arc<str>> = AHashMap::new();
        for inode in wanted {
            let name = match owners.get(&inode) {
                Some(&pid) => by_pid
                    .entry(pid)
                    .or_insert_with(|| process_name(&self.proc_root, pid).into())
                    .clone(),
                None => self.empty.clone(),
            };
            self.names.insert(inode, name);
        }
    }

    /// The owning program's name; empty when unknown or not visible.
    pub fn name(&self, inode: u32) -> Arc<str> {
        self.names
            .get(&inode)
            .cloned()
            .unwrap_or_else(|| self.empty.clone())
    }

    /// How many /proc scans ran.
    pub fn scans(&self) -> u64 {
        self.scans
    }
}

/// Walks `/proc/<pid>/fd/*` for sockets whose inode is wanted; returns the
/// lowest pid holding each (a parent before the children it forked).
fn scan(proc_root: &Path, wanted: &AHashSet<u32>) -> AHashMap<u32, u32> {
    let mut pids: Vec<u32> = match fs::read_dir(proc_root) {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return AHashMap::new(),
    };
    pids.sort_unstable();
    let mut found = AHashMap::new();
    let mut fd_dir = proc_root.to_path_buf();
    for pid in pids {
        fd_dir.push(pid.to_string());
        fd_dir.push("fd");
        // A process that exited, or whose fds we may not read, is skipped.
        if let Ok(fds) = fs::read_dir(&fd_dir) {
            for fd in fds.flatten() {
                let Ok(target) = fs::read_link(fd.path()) else {
                    continue;
                };
                if let Some(inode) = socket_inode(target.as_os_str().as_encoded_bytes()) {
                    if wanted.contains(&inode) {
                        found.entry(inode).or_insert(pid);
                    }
                }
            }
        }
        fd_dir.pop();
        fd_dir.pop();
        if found.len() == wanted.len() {
            break;
        }
    }
    found
}

/// The inode of a `socket:[N]` fd link (fs/proc/fd.c, sockfs_dname).
fn socket_inode(link: &[u8]) -> Option<u32> {
    let digits = link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The program's file name (from the `exe` link: not truncated, and not
/// something the process can rewrite), else its `comm`; "" when the
/// process is gone or not visible.
fn process_name(proc_root: &Path, pid: u32) -> String {
    let dir = proc_root.join(pid.to_string());
    if let Ok(exe) = fs::read_link(dir.join("exe")) {
        if let Some(name) = exe.file_name().and_then(|n| n.to_str()) {
            // The kernel appends " (deleted)" when the binary was replaced.
            return name.trim_end_matches(" (deleted)").to_owned();
        }
    }
    fs::read_to_string(dir.join("comm"))
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fake_proc() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let p = root.path();
        for (pid, comm, exe, fds) in [
            (
                10,
                "nginx",
                Some("/usr/sbin/nginx"),
                &["socket:[100]", "/dev/null"][..],
            ),
            (11, "nginx", Some("/usr/sbin/nginx"), &["socket:[100]"][..]),
            (
                20,
                "very-long-name-",
                None,
                &["socket:[200]", "pipe:[5]"][..],
            ),
            (30, "old", Some("/opt/old (deleted)"), &["socket:[300]"][..]),
        ] {
            let dir = p.join(pid.to_string());
            fs::create_dir_all(dir.join("fd")).unwrap();
            fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
            if let Some(exe) = exe {
                symlink(exe, dir.join("exe")).unwrap();
            }
            for (i, target) in fds.iter().enumerate() {
                symlink(target, dir.join("fd").join(i.to_string())).unwrap();
            }
        }
        fs::create_dir_all(p.join("self")).unwrap();
        root
    }

    fn set(inodes: &[u32]) -> AHashSet<u32> {
        inodes.iter().copied().collect()
    }

    #[test]
    fn names_come_from_exe_then_comm_and_misses_are_empty() {
        let root = fake_proc();
        let mut names = ProcessNames::new(root.path());
        let now = Instant::now();
        names.resolve(&set(&[100, 200, 300, 999]), now);
        assert_eq!(&*names.name(100), "nginx");
        assert_eq!(&*names.name(200), "very-long-name-");
        assert_eq!(&*names.name(300), "old");
        assert_eq!(&*names.name(999), "");
        assert_eq!(names.scans(), 1);
    }

    #[test]
    fn known_inodes_and_misses_do_not_rescan_until_refresh() {
        let root = fake_proc();
        let mut names = ProcessNames::new(root.path());
        let t0 = Instant::now();
        names.resolve(&set(&[100, 999]), t0);
        names.resolve(&set(&[100, 999]), t0 + Duration::from_secs(1));
        assert_eq!(names.scans(), 1, "a miss is cached negatively");
        names.resolve(&set(&[100, 999, 200]), t0 + Duration::from_secs(2));
        assert_eq!(names.scans(), 2, "a new inode triggers a scan");
        names.resolve(&set(&[100]), t0 + REFRESH);
        assert_eq!(names.scans(), 3, "refresh is due");
        assert_eq!(&*names.name(200), "", "forgotten once no longer wanted");
    }

    #[test]
    fn socket_links_parse() {
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[12345]"), None);
        assert_eq!(socket_inode(b"socket:[x]"), None);
    }
}
