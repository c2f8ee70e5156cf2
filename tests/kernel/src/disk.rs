//! A disk of the test's own: a tmpfs it can fill and free, or mount
//! read-only.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use crate::system::{require_root, run, tool};

/// A tmpfs mounted on a private directory of the test, unmounted on drop.
pub struct Tmpfs {
    pub mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (`size=4m`, `ro,size=1m`), mode 0755.
    pub fn new(options: &str) -> Tmpfs {
        require_root("it mounts a tmpfs");
        let dir = tempfile::Builder::new()
            .prefix("tcp-info-it-")
            .tempdir()
            .unwrap();
        let mount = dir.path().join("disk");
        fs::create_dir(&mount).unwrap();
        run(tool("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("{options},mode=0755"))
            .arg("tcpinfo-test")
            .arg(&mount));
        Tmpfs { mount, _dir: dir }
    }

    /// Writes a file until the disk is full (ENOSPC, nothing else); returns
    /// it.
    pub fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut file = fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                break;
            }
        }
        // The last pages too: what a partial chunk could not take.
        while file.write_all(&chunk[..512]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = tool("umount").arg(&self.mount).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = tool("umount").arg("-l").arg(&self.mount).status();
        }
    }
}
