//! Who may use the event socket: its file gets the mode and group of
//! `-tcpinfo.eventsocket.mode` / `.group`, so a sidecar of another user in
//! that group connects (and one outside it does not); and one user holds at
//! most 64 clients, so it cannot take every slot from the others.

use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use harness::metrics::METRICS_PORT;
use harness::process::Signal;
use harness::{wait_until, Agent, Netns};

/// The unprivileged user and group of most systems (`nobody`, `nogroup`).
const NOBODY: u32 = 65534;

/// The agent's per-uid cap (documented in the README).
const PER_UID: usize = 64;

/// Connects to `path` as `uid`/`gid`, from a thread whose credentials alone
/// change: the kernel records the connecting thread's credentials for
/// SO_PEERCRED and checks them against the socket file's permissions.
fn connect_as(path: &Path, uid: u32, gid: u32) -> io::Result<UnixStream> {
    let path = path.to_path_buf();
    thread::spawn(move || {
        // SAFETY: the raw setresgid/setresuid system calls (not the C
        // library's wrappers, which change every thread) take integers,
        // touch no memory of ours, and change this short-lived thread's
        // credentials only; -1 leaves the real and saved ids as they are.
        let (rg, ru) = unsafe {
            (
                libc::syscall(libc::SYS_setresgid, -1i32, gid, -1i32),
                libc::syscall(libc::SYS_setresuid, -1i32, uid, -1i32),
            )
        };
        assert_eq!((rg, ru), (0, 0), "{}", io::Error::last_os_error());
        UnixStream::connect(&path)
    })
    .join()
    .unwrap()
}

/// Whether the agent closed `stream` (end of file) rather than keeping it.
fn closed_by_agent(stream: &UnixStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    matches!((&*stream).read(&mut [0u8; 1]), Ok(0))
}

fn clients(ns: &Netns) -> Option<f64> {
    ns.scrape()?.value("tcpinfo_eventsocket_clients", &[])
}

/// A directory everyone may search, so the socket's own mode decides.
fn socket_path(dir: &tempfile::TempDir) -> PathBuf {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.path().join("events.sock")
}

#[test]
fn a_group_member_connects_and_one_uid_holds_at_most_64_clients() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    let mut agent = Agent::builder()
        .netns(&ns)
        .metrics_on(METRICS_PORT)
        .eventsocket(&path)
        .arg("-tcpinfo.eventsocket.mode=0660")
        .arg(format!("-tcpinfo.eventsocket.group={NOBODY}"))
        .start();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (0, NOBODY));
    // The harness's readiness probe (client 1, root's) has gone: until
    // then it holds one of root's slots.
    agent.wait_for_log(Duration::from_secs(10), "eventsocket: client 1 hung up");
    assert_eq!(clients(&ns), Some(0.0));

    let root_clients: Vec<UnixStream> = (0..PER_UID)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    wait_until(Duration::from_secs(10), "64 clients", || {
        clients(&ns) == Some(PER_UID as f64)
    });
    let extra = UnixStream::connect(&path).unwrap();
    assert!(closed_by_agent(&extra), "a 65th client of root was kept");
    // (The refusal is logged, but 64 connections have used up the
    // rate-limited log's budget.)

    // Another user, in the socket's group, still gets in.
    let sidecar = connect_as(&path, NOBODY, NOBODY).unwrap();
    wait_until(Duration::from_secs(10), "the sidecar", || {
        clients(&ns) == Some(PER_UID as f64 + 1.0)
    });
    assert!(!closed_by_agent(&sidecar));
    assert!(!closed_by_agent(&root_clients[0]));

    let (status, log) = agent.signal_and_wait(Signal::SIGTERM, Duration::from_secs(15));
    assert!(status.success(), "{log:#?}");
}

#[test]
fn a_user_outside_the_mode_cannot_connect() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let path = socket_path(&dir);
    let mut agent = Agent::builder()
        .netns(&ns)
        .eventsocket(&path)
        .arg("-tcpinfo.eventsocket.mode=0600")
        .start();
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let e = connect_as(&path, NOBODY, NOBODY).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}");
    UnixStream::connect(&path).expect("root connects");
    let (status, log) = agent.signal_and_wait(Signal::SIGTERM, Duration::from_secs(15));
    assert!(status.success(), "{log:#?}");
}
