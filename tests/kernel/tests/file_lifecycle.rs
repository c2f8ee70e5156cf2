//! A segment file is created, opened and closed once: upload sidecars pick
//! files up on close-after-write, so a file closed and reopened between
//! flushes would be shipped half-written. Watched from outside the agent
//! with inotify (inotify-tools' `inotifywait`).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::agent::FAST;
use harness::archive::{
    archive_files, frames, output_dir, parse_file_name, read_segment, zstd_cli_accepts,
};
use harness::system::tool;
use harness::traffic::{Connection, Pump};
use harness::{wait_until, Agent, Netns};
use tcpinfo_archive::Timestamp;

/// `inotifywait -m -r` over a directory, its output lines collected.
struct Watch {
    child: Child,
    events: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(dir: &Path) -> Watch {
        let mut child = tool("inotifywait")
            .args([
                "-m",
                "-r",
                "-e",
                "create,close_write,open",
                "--format",
                "%e %w%f",
            ])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("inotifywait (Debian package inotify-tools)");
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // Watches are in place once inotifywait says so on stderr.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let n = stderr.read_line(&mut line).unwrap();
            assert!(n > 0, "inotifywait exited before establishing watches");
            if line.contains("Watches established") {
                break;
            }
        }
        thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        Watch { child, events }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn date_dir(out: &Path, unix_ms: i64) -> PathBuf {
    let (y, m, d) = Timestamp::from_unix_millis(unix_ms).utc_date();
    out.join(format!("{y:04}/{m:02}/{d:02}"))
}

#[test]
fn each_segment_file_is_created_opened_and_closed_exactly_once() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    // The agent's date directories exist before the watch starts, so no
    // event can slip by while inotifywait adds a watch on a new directory.
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for day in [now_ms, now_ms + 86_400_000] {
        std::fs::create_dir_all(date_dir(&out, day)).unwrap();
    }
    let watch = Watch::start(&out);

    let mut flags = FAST.to_vec();
    flags.extend(["-exclude-local=false", "-rotation-interval=1s"]);
    let mut agent = Agent::start(Some(&ns), &out, &flags);

    let (listener, busy, mut short) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy: Vec<Connection> = (0..3).map(|_| Connection::open(&listener)).collect();
        let short = Connection::open(&listener);
        (listener, busy, short)
    });
    let _idle = ns.enter(|| Connection::open(&listener));
    let pump = Pump::start(busy, 1000, Duration::from_millis(10));
    short.exchange(1000);
    // Files are not read while the watch runs: a read is an OPEN too.
    // Progress is judged by names and the agent's counters only.
    wait_until(
        Duration::from_secs(10),
        "files of the first connections",
        || archive_files(&out).len() >= 9,
    );
    drop(short);
    wait_until(
        Duration::from_secs(10),
        "the short connection's close",
        || {
            agent
                .stats_lines()
                .last()
                .is_some_and(|s| s.get("closed") >= 2)
        },
    );
    wait_until(Duration::from_secs(10), "rotation to .00001 files", || {
        archive_files(&out)
            .iter()
            .filter(|p| parse_file_name(p).1 == 1)
            .count()
            >= 6
    });
    let _conns = pump.stop();
    agent.terminate();

    // Everything the agent did is queued before this sentinel's events.
    let sentinel = out.join("sentinel");
    std::fs::write(&sentinel, b"done").unwrap();
    let sentinel_close = format!("CLOSE_WRITE,CLOSE {}", sentinel.display());
    wait_until(
        Duration::from_secs(10),
        "the sentinel's CLOSE_WRITE",
        || watch.events().contains(&sentinel_close),
    );
    let events = watch.events();
    drop(watch);

    let mut per_file: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &events {
        let (kinds, path) = e.split_once(' ').unwrap();
        if path.ends_with(".jsonl.zst") {
            per_file
                .entry(path.to_string())
                .or_default()
                .push(kinds.to_string());
        }
    }
    let files = archive_files(&out);
    let on_disk: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(
        per_file.keys().cloned().collect::<Vec<_>>(),
        on_disk,
        "every file seen by inotify, and only those"
    );
    for (path, kinds) in &per_file {
        let count = |k: &str| {
            kinds
                .iter()
                .filter(|e| e.split(',').any(|p| p == k))
                .count()
        };
        assert_eq!(count("CREATE"), 1, "{path}: {kinds:?}");
        assert_eq!(count("OPEN"), 1, "{path}: opened more than once: {kinds:?}");
        assert_eq!(count("CLOSE_WRITE"), 1, "{path}: {kinds:?}");
        assert!(
            kinds.last().unwrap().contains("CLOSE_WRITE"),
            "{path}: touched after its CLOSE_WRITE: {kinds:?}"
        );
    }

    // The run did what it was meant to: several flushes appended to files
    // that stayed open, and segments rotated.
    let max_frames = files
        .iter()
        .map(|p| frames(&std::fs::read(p).unwrap()).0.len())
        .max()
        .unwrap();
    assert!(max_frames >= 3, "at most {max_frames} frames in a file");
    for p in &files {
        assert!(zstd_cli_accepts(p), "{}", p.display());
        read_segment(p).assert_metadata_first();
    }
}
