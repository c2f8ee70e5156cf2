//! The Debian package, on this machine: `cargo deb` builds it from the
//! metadata in Cargo.toml, `dpkg -i` installs it into the real /usr and
//! /etc, the installed unit passes `systemd-analyze verify`, the installed
//! binaries run, the installed unit's command line and settings file parse
//! with the installed agent, and `dpkg -r` then `dpkg --purge` leave /usr
//! and /etc exactly as they were. A guard purges the package whatever
//! happens, so a failing test leaves nothing installed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::system::{require_root, run, tool, tool_path};

const PACKAGE: &str = "tcp-info";
const UNIT: &str = "/usr/lib/systemd/system/tcp-info.service";
const SETTINGS: &str = "/etc/default/tcp-info";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<exe>")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into()));
    cmd.current_dir(repo())
        .env("CARGO_TARGET_DIR", target_dir());
    cmd
}

/// Every path under `roots` (files, links and directories).
fn tree(roots: &[&str]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<PathBuf> = roots.iter().map(PathBuf::from).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path.clone());
            }
            out.insert(path);
        }
    }
    out
}

fn installed() -> bool {
    tool("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

/// Purges the package when dropped: the test installs into the real system.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = tool("dpkg").args(["--purge", PACKAGE]).output();
    }
}

#[test]
fn the_deb_installs_verifies_runs_and_uninstalls_cleanly() {
    require_root("dpkg installs into /usr and /etc");
    assert!(
        !installed(),
        "a {PACKAGE} package is already installed here; this test will not touch it"
    );
    tool_path("cargo-deb");
    run(cargo().args(["build", "--release", "--bins"]).args([
        "-p",
        "tcp-info",
        "-p",
        "csvtool",
        "-p",
        "example-eventsocket-client",
    ]));
    let out_dir = tempfile::tempdir().unwrap();
    let deb = out_dir.path().join("tcp-info.deb");
    run(cargo()
        .args(["deb", "-p", PACKAGE, "--no-build", "--fast", "--output"])
        .arg(&deb));

    let roots = ["/usr", "/etc"];
    let before = tree(&roots);
    let _purge = Purge;
    run(tool("dpkg").arg("-i").arg(&deb));

    let listed = tool("dpkg").args(["-L", PACKAGE]).output().unwrap();
    let files: BTreeSet<PathBuf> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    let alerts = std::fs::read_dir(repo().join("deploy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with("-alerts.yml"))
        .map(|n| PathBuf::from(format!("/usr/share/tcp-info/prometheus/{n}")));
    let expected: BTreeSet<PathBuf> = [
        "/usr/bin/tcp-info",
        "/usr/bin/csvtool",
        "/usr/bin/example-eventsocket-client",
        UNIT,
        SETTINGS,
        "/usr/share/tcp-info/grafana/tcp-info.json",
    ]
    .into_iter()
    .map(PathBuf::from)
    .chain(alerts)
    .collect();
    let missing: Vec<_> = expected.difference(&files).collect();
    assert!(
        missing.is_empty(),
        "not installed: {missing:?}; installed: {files:?}"
    );

    let verify = tool("systemd-analyze")
        .args(["verify", UNIT])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    for bin in ["tcp-info", "csvtool", "example-eventsocket-client"] {
        run(Command::new(format!("/usr/bin/{bin}")).arg("--help"));
    }
    // The unit's ExecStart with the installed settings, as systemd runs it.
    let unit = std::fs::read_to_string(UNIT).unwrap();
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let settings = std::fs::read_to_string(SETTINGS).unwrap();
    let env = settings
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_once('=').expect("KEY=VALUE"));
    let mut argv = exec.split_whitespace();
    run(Command::new(argv.next().unwrap())
        .args(argv)
        .arg("--help")
        .env_clear()
        .envs(env));

    run(tool("dpkg").args(["-r", PACKAGE]));
    let left: Vec<&PathBuf> = files.iter().filter(|p| p.exists()).collect();
    assert_eq!(
        left,
        [&PathBuf::from(SETTINGS)],
        "dpkg -r keeps only the conffile"
    );
    run(tool("dpkg").args(["--purge", PACKAGE]));
    assert!(!installed());
    let after = tree(&roots);
    let added: Vec<_> = after.difference(&before).collect();
    let removed: Vec<_> = before.difference(&after).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "purge left the system changed: added {added:?}, removed {removed:?}"
    );
}
