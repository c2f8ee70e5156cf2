//! What the kernel tests need from the machine: root, and a few system
//! tools. A test that lacks one fails at once, saying what is missing and
//! how to get it; it is never skipped. `scripts/test.sh` installs the tools
//! and runs these tests as root.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Debian package that ships each tool the tests run (the list
/// `scripts/test.sh` installs from).
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("iptables", "iptables"),
    ("ss", "iproute2"),
    ("zstd", "zstd"),
    ("inotifywait", "inotify-tools"),
    ("promtool", "prometheus"),
    ("prometheus", "prometheus"),
    ("prlimit", "util-linux"),
    ("buildah", "buildah"),
    ("docker-compose", "docker-compose"),
    ("kubernetes-validate", "none: PyPI's kubernetes-validate"),
    ("cargo-deb", "none: `cargo install cargo-deb --locked`"),
    ("dpkg", "dpkg"),
    ("systemd-analyze", "systemd"),
    ("readelf", "binutils"),
];

/// Panics unless the test runs as root; `why` names what needs it.
pub fn require_root(why: &str) {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "this test needs root ({why}): run it through scripts/test.sh, as root"
    );
}

/// The path of system tool `name`; panics naming its package when it is
/// not installed.
pub fn tool_path(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| is_executable(candidate))
    });
    found.unwrap_or_else(|| {
        let package = PACKAGES
            .iter()
            .find(|(tool, _)| *tool == name)
            .map_or("?", |(_, package)| package);
        panic!(
            "this test needs `{name}` (Debian package {package}), which is not on the PATH: \
             scripts/test.sh installs it"
        )
    })
}

/// A command running system tool `name` (see [`tool_path`]).
pub fn tool(name: &str) -> Command {
    Command::new(tool_path(name))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `cmd`, panicking with its stderr if it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
