//! The hostile reviewer's stop trials, kept as regression tests: SIGKILL at
//! random moments under load leaves every file readable up to its last
//! complete frame, metadata first; SIGTERM under load leaves every file
//! complete with every queued snapshot in it.

use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use harness::agent::FAST;
use harness::archive::{
    archive_files, assert_complete_archive, frames, output_dir, parse_lines, segment_of,
};
use harness::process::Signal;
use harness::traffic::{Connection, Pump};
use harness::{wait_until, Agent, Netns};

/// Room for thousands of sockets in this test process.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// `n` loopback connections in `ns`; the first `busy` send `chunk` bytes
/// every `period`.
fn load(
    ns: &Netns,
    n: usize,
    busy: usize,
    chunk: usize,
    period: Duration,
) -> (TcpListener, Pump, Vec<Connection>) {
    raise_open_files_limit();
    let (listener, mut conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..n).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    });
    let idle = conns.split_off(busy);
    let pump = Pump::start(conns, chunk, period);
    (listener, pump, idle)
}

fn archiving_flags() -> Vec<&'static str> {
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    flags
}

/// A small deterministic PRNG (xorshift64*): the kill times repeat.
fn kill_delays(trials: usize) -> Vec<Duration> {
    let mut state = 0x5eed_0000_0000_0016u64;
    (0..trials)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            Duration::from_millis(100 + r % 1400)
        })
        .collect()
}

#[test]
fn twenty_sigkills_at_random_moments_leave_every_file_readable() {
    let ns = Netns::new();
    let (_listener, pump, _idle) = load(&ns, 500, 250, 500, Duration::from_millis(5));
    let (mut files, mut lines) = (0, 0);
    for delay in kill_delays(20) {
        let tmp = output_dir();
        let out = tmp.path().join("out");
        let mut agent = Agent::start(Some(&ns), &out, &archiving_flags());
        std::thread::sleep(delay);
        let (status, _) = agent.signal_and_wait(Signal::SIGKILL, Duration::from_secs(10));
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        for path in archive_files(&out) {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.is_empty() {
                // Created, killed before its first frame: nothing lost.
                continue;
            }
            files += 1;
            let (complete, _) = frames(&bytes);
            assert!(!complete.is_empty(), "{}: no whole frame", path.display());
            let mut text = Vec::new();
            for frame in complete {
                let decoded = zstd::stream::decode_all(frame)
                    .unwrap_or_else(|e| panic!("{}: bad frame: {e}", path.display()));
                parse_lines(&path, &decoded);
                text.extend(decoded);
            }
            let segment = segment_of(&path, &text);
            segment.assert_metadata_first();
            lines += segment.snapshots().len();
        }
    }
    drop(pump);
    assert!(files > 1000, "the trials wrote {files} files");
    assert!(lines >= files, "{lines} snapshot lines in {files} files");
}

#[test]
fn sigterm_under_load_completes_every_file_with_every_queued_snapshot() {
    let ns = Netns::new();
    // The benchmark's traffic: a tenth of the connections send 16 bytes
    // every 100 ms (heavier traffic than the writers can take on this
    // machine is dropped, oldest first, and counted: -max-pending-bytes).
    let (_listener, pump, _idle) = load(&ns, 2000, 200, 16, Duration::from_millis(100));
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut agent = Agent::start(Some(&ns), &out, &archiving_flags());
    // Both ends of each connection and the listener.
    wait_until(Duration::from_secs(30), "a file per socket", || {
        archive_files(&out).len() > 4000
    });
    let stats = agent.terminate();
    drop(pump);
    assert_complete_archive(&out, &stats, 4001, "SIGTERM under load");
}
