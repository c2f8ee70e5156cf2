//! Every file under `testdata/fuzz/<target>/` (seeds, the corpus AFL
//! minimised, crash reproducers) through its target's body: no panic, and
//! each input done in bounded time. AFL is not needed: these are the same
//! functions the AFL binaries of `fuzz/afl` call.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use tcp_info_fuzz::TARGETS;

/// Far above what any input takes even in a debug build; a hang fails the
/// test instead of stalling it.
const PER_INPUT: Duration = Duration::from_secs(20);

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/fuzz")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files
}

/// Runs `body` on `input` on a thread of its own, failing on a panic or when
/// it takes longer than [`PER_INPUT`].
fn replay(target: &'static str, body: fn(&[u8]), path: PathBuf) {
    let input = std::fs::read(&path).unwrap();
    let (done, finished) = mpsc::channel();
    let name = path.display().to_string();
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| body(&input));
        let _ = done.send(outcome.is_ok());
    });
    match finished.recv_timeout(PER_INPUT) {
        Ok(true) => {}
        Ok(false) => panic!("{target}: {name} panics (message above)"),
        Err(_) => panic!("{target}: {name} takes over {PER_INPUT:?}"),
    }
}

fn replay_target(target: &'static str) {
    let body = tcp_info_fuzz::target(target).unwrap();
    let files = corpus(target);
    assert!(!files.is_empty(), "testdata/fuzz/{target}/ has no inputs");
    for path in files {
        replay(target, body, path);
    }
}

#[test]
fn every_target_has_a_corpus() {
    for (name, _) in TARGETS {
        assert!(!corpus(name).is_empty(), "testdata/fuzz/{name}/ is empty");
    }
}

#[test]
fn archive_corpus() {
    replay_target("archive");
}

#[test]
fn netlink_dump_corpus() {
    replay_target("netlink_dump");
}

#[test]
fn destroy_notice_corpus() {
    replay_target("destroy_notice");
}

#[test]
fn policy_corpus() {
    replay_target("policy");
}

#[test]
fn event_socket_corpus() {
    replay_target("event_socket");
}

#[test]
fn go_flags_corpus() {
    replay_target("go_flags");
}
