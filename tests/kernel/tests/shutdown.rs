//! Stopping the agent with hundreds of live connections: SIGTERM finishes
//! every file with everything queued; SIGKILL leaves files that hold whole
//! zstd frames of whole lines, including everything reported written.

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use harness::agent::FAST;
use harness::archive::{
    archive_files, frames, output_dir, parse_lines, read_segment, segment_of, zstd_cli_accepts,
};
use harness::process::Signal;
use harness::traffic::{Connection, Pump};
use harness::{wait_until, Agent, Netns, Stats};

/// Opens `n` loopback connections in `ns` and keeps data flowing on the
/// first `busy` of them.
fn connections(ns: &Netns, n: usize, busy: usize) -> (TcpListener, Pump, Vec<Connection>) {
    let (listener, mut conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..n).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    });
    let rest = conns.split_off(busy);
    (
        listener,
        Pump::start(conns, 1000, Duration::from_millis(5)),
        rest,
    )
}

/// Waits for `n` more periodic stats lines: `n` stats intervals, several
/// flush intervals each.
fn wait_stats_lines(agent: &Agent, n: usize) -> Stats {
    let seen = agent.stats_lines().len();
    wait_until(Duration::from_secs(10), "more stats lines", || {
        agent.stats_lines().len() >= seen + n
    });
    agent.stats_lines().pop().unwrap()
}

/// An agent archiving everything in `ns` (loopback included) into a fresh
/// directory; the TempDir keeps the directory alive.
fn start_agent(ns: &Netns) -> (tempfile::TempDir, std::path::PathBuf, Agent) {
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    let agent = Agent::start(Some(ns), &out, &flags);
    (tmp, out, agent)
}

#[test]
fn sigterm_with_200_live_connections_exits_0_with_every_queued_snapshot_on_disk() {
    let ns = Netns::new();
    let (_tmp, out, mut agent) = start_agent(&ns);

    let (_listener, pump, _idle) = connections(&ns, 200, 40);
    // Both ends of each connection, and the listener.
    wait_until(Duration::from_secs(15), "a file per socket", || {
        archive_files(&out).len() > 400
    });
    wait_stats_lines(&agent, 1);
    // Data is still flowing when the signal arrives.
    let final_stats = agent.terminate();
    drop(pump);

    let files = archive_files(&out);
    assert_eq!(files.len(), 401);
    let mut snapshots = 0u64;
    for p in &files {
        assert!(zstd_cli_accepts(p), "zstd -t fails on {}", p.display());
        let seg = read_segment(p);
        seg.assert_metadata_first();
        assert!(!seg.snapshots().is_empty(), "{}", p.display());
        snapshots += seg.snapshots().len() as u64;
    }
    assert_eq!(snapshots, final_stats.get("queued"), "{final_stats:?}");
    assert_eq!(snapshots, final_stats.get("written"), "{final_stats:?}");
    assert_eq!(final_stats.get("dropped"), 0);
    assert_eq!(final_stats.get("errors"), 0);
    assert_eq!(final_stats.get("files_opened"), files.len() as u64);
    assert_eq!(final_stats.get("files_closed"), files.len() as u64);
}

#[test]
fn sigkill_after_flushes_leaves_whole_frames_holding_all_reported_written_lines() {
    let ns = Netns::new();
    let (_tmp, out, mut agent) = start_agent(&ns);

    let (_listener, pump, _idle) = connections(&ns, 50, 20);
    wait_until(Duration::from_secs(10), "a file per socket", || {
        archive_files(&out).len() > 100
    });
    // Several flush intervals pass; what the agent then reports as
    // written must survive the kill.
    let before = wait_stats_lines(&agent, 2);
    let (status, _) = agent.signal_and_wait(Signal::SIGKILL, Duration::from_secs(10));
    drop(pump);
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let reported_written = before.get("written");
    assert!(reported_written > 0);

    let files = archive_files(&out);
    assert_eq!(files.len(), 101);
    let mut snapshots = 0u64;
    let mut multi_frame_files = 0;
    for p in &files {
        let bytes = std::fs::read(p).unwrap();
        let (complete, truncated_tail) = frames(&bytes);
        // Every file was flushed at least once long before the kill.
        assert!(!complete.is_empty(), "{}: no complete frame", p.display());
        if complete.len() > 1 {
            multi_frame_files += 1;
        }
        // Each complete frame decodes, and holds whole lines only.
        let mut text = Vec::new();
        for frame in &complete {
            let lines = zstd::stream::decode_all(*frame)
                .unwrap_or_else(|e| panic!("{}: bad frame: {e}", p.display()));
            parse_lines(p, &lines);
            text.extend(lines);
        }
        let seg = segment_of(p, &text);
        seg.assert_metadata_first();
        snapshots += seg.snapshots().len() as u64;
        // The zstd CLI agrees, unless the kill cut the last frame short.
        if !truncated_tail {
            assert!(zstd_cli_accepts(p), "zstd -t fails on {}", p.display());
        }
    }
    assert!(multi_frame_files > 0, "no file was flushed more than once");
    assert!(
        snapshots >= reported_written,
        "{snapshots} snapshot lines on disk, {reported_written} reported written"
    );
}
