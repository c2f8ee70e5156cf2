//! A writer shard on real files, fed with replies captured from a real
//! kernel. Write failures come from the kernel too: `RLIMIT_FSIZE` makes
//! every append past a size fail with `EFBIG`, as a full disk would, with
//! no root and no special file system. The limit holds for a whole process,
//! so those tests run in a process of their own (the test binary again,
//! told which single test to run).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use inetdiag::replay::read_capture;
use serde_json::Value;

use super::shard::ShardWriter;
use super::{Batch, SaverConfig};
use crate::stats::Stats;

const COOKIE: u64 = 0x4a3f;
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const ROTATION: Duration = Duration::from_secs(600);
const ROTATION_MS: i64 = 600_000;

/// A connection's reply as the kernel sent it (the story's first
/// connection, from `testdata/netlink/story.dumps`).
fn payload() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/netlink/story.dumps");
    let dumps = read_capture(&std::fs::read(path).unwrap()).unwrap();
    dumps[1].records().swap_remove(2)
}

struct Shard {
    writer: ShardWriter,
    stats: Arc<Stats>,
    payload: Vec<u8>,
    output: PathBuf,
    _dir: tempfile::TempDir,
}

fn shard() -> Shard {
    let dir = tempfile::tempdir().unwrap();
    let stats = Arc::new(Stats::default());
    let config = Arc::new(SaverConfig {
        output: dir.path().to_path_buf(),
        uuid_prefix: "host_1700000000_unsafe".into(),
        flush_interval: Duration::from_secs(1),
        rotation_interval: ROTATION,
    });
    Shard {
        writer: ShardWriter::new(config, Arc::clone(&stats)).unwrap(),
        stats,
        payload: payload(),
        output: dir.path().to_path_buf(),
        _dir: dir,
    }
}

impl Shard {
    fn open(&mut self, at: i64) {
        let mut batch = Batch::default();
        batch.open(COOKIE, at, 0);
        batch.snapshot(COOKIE, at, &self.payload);
        self.writer.apply(&batch);
    }

    fn snapshot(&mut self, at: i64) {
        let mut batch = Batch::default();
        batch.snapshot(COOKIE, at, &self.payload);
        self.writer.apply(&batch);
    }

    fn close(&mut self, at: i64) {
        let mut batch = Batch::default();
        batch.close(COOKIE, at);
        self.writer.apply(&batch);
    }

    /// Every flush that is due by then, and the closed files' retries.
    fn flush_all(&mut self) {
        self.writer
            .flush_due(Instant::now() + Duration::from_secs(3600));
    }

    /// `(file name, lines)` of every archive file, in name order.
    fn files(&self) -> Vec<(String, Vec<Value>)> {
        let mut paths = Vec::new();
        collect(&self.output, &mut paths);
        paths.sort();
        paths
            .iter()
            .map(|p| {
                let data = zstd::decode_all(std::fs::File::open(p).unwrap())
                    .unwrap_or_else(|e| panic!("{} decodes completely: {e}", p.display()));
                let lines = data
                    .split(|&b| b == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice(l).unwrap())
                    .collect();
                (p.file_name().unwrap().to_string_lossy().into_owned(), lines)
            })
            .collect()
    }

    /// The connection's first frame is written; then the disk is full.
    fn open_then_fill_the_disk(&mut self) {
        self.open(T0);
        self.flush_all();
        limit_file_size(self.file_len(0));
    }

    fn file_len(&self, sequence: u32) -> u64 {
        let mut paths = Vec::new();
        collect(&self.output, &mut paths);
        let suffix = format!(".{sequence:05}.jsonl.zst");
        let path = paths
            .iter()
            .find(|p| p.to_string_lossy().ends_with(&suffix))
            .expect("the segment's file");
        std::fs::metadata(path).unwrap().len()
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A segment file's lines: its metadata line's sequence number, then the
/// unix-ms timestamps of its snapshots.
fn segment(lines: &[Value]) -> (u64, Vec<i64>) {
    let sequence = lines[0]["Metadata"]["Sequence"]
        .as_u64()
        .expect("a metadata line first");
    let times = lines[1..]
        .iter()
        .map(|l| {
            assert!(l.get("Metadata").is_none(), "one metadata line per file");
            let text = l["Timestamp"].as_str().unwrap();
            tcpinfo_archive::Timestamp::parse(text)
                .unwrap()
                .unix_millis()
        })
        .collect();
    (sequence, times)
}

#[test]
fn a_connection_rotates_into_numbered_segments_each_with_its_metadata_line() {
    let mut shard = shard();
    shard.open(T0);
    shard.snapshot(T0 + 1000);
    shard.flush_all();
    shard.snapshot(T0 + ROTATION_MS);
    shard.close(T0 + ROTATION_MS + 5);
    shard.writer.finish();

    let files = shard.files();
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "host_1700000000_unsafe_0000000000004A3F.00000.jsonl.zst",
            "host_1700000000_unsafe_0000000000004A3F.00001.jsonl.zst"
        ]
    );
    assert_eq!(segment(&files[0].1), (0, vec![T0, T0 + 1000]));
    assert_eq!(segment(&files[1].1), (1, vec![T0 + ROTATION_MS]));
    assert_eq!(shard.stats.files_opened.load(Relaxed), 2);
    assert_eq!(shard.stats.files_closed.load(Relaxed), 2);
    assert_eq!(shard.stats.written.load(Relaxed), 3);
}

/// Runs `body` in a process of its own: this test binary, asked to run
/// only the test `name`, with `TCPINFO_OWN_PROCESS` set.
fn in_own_process(name: &str, body: impl FnOnce()) {
    if std::env::var_os("TCPINFO_OWN_PROCESS").is_some() {
        body();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env("TCPINFO_OWN_PROCESS", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{name} in its own process: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("1 passed"),
        "{name} ran in its own process"
    );
}

/// From now on, no file of this process grows past `bytes` (`EFBIG`).
fn limit_file_size(bytes: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    // Without a handler SIGXFSZ would end the process instead of failing
    // the write.
    signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .unwrap();
    let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
    setrlimit(Resource::RLIMIT_FSIZE, bytes, hard).unwrap();
}

fn unlimit_file_size() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
    setrlimit(Resource::RLIMIT_FSIZE, hard, hard).unwrap();
}

#[test]
fn a_failed_flush_at_rotation_never_reopens_the_closed_segment() {
    in_own_process(
        "saver::tests::a_failed_flush_at_rotation_never_reopens_the_closed_segment",
        || {
            let mut shard = shard();
            shard.open_then_fill_the_disk();
            shard.snapshot(T0 + 1000);
            shard.flush_all();
            // Rotation is due, but segment 0's last line is not in yet.
            shard.snapshot(T0 + ROTATION_MS);
            assert!(shard.stats.write_errors.load(Relaxed) >= 2);
            unlimit_file_size();
            shard.snapshot(T0 + ROTATION_MS + 1000);
            shard.close(T0 + ROTATION_MS + 2000);
            shard.writer.finish();

            let files = shard.files();
            assert_eq!(files.len(), 2);
            assert_eq!(
                segment(&files[0].1),
                (0, vec![T0, T0 + 1000, T0 + ROTATION_MS])
            );
            assert_eq!(segment(&files[1].1), (1, vec![T0 + ROTATION_MS + 1000]));
            // One open and one close per file: none was opened twice.
            assert_eq!(shard.stats.files_opened.load(Relaxed), 2);
            assert_eq!(shard.stats.files_closed.load(Relaxed), 2);
            assert_eq!(shard.stats.written.load(Relaxed), 4);
            assert_eq!(shard.stats.dropped.load(Relaxed), 0);
        },
    );
}

#[test]
fn a_closed_connection_whose_last_write_failed_keeps_its_file_until_it_is_written() {
    in_own_process(
        "saver::tests::a_closed_connection_whose_last_write_failed_keeps_its_file_until_it_is_written",
        || {
            let mut shard = shard();
            shard.open_then_fill_the_disk();
            shard.snapshot(T0 + 1000);
            shard.close(T0 + 2000);
            assert_eq!(shard.stats.files_closed.load(Relaxed), 0);
            // Still failing: retried, not given up, not reopened.
            shard.flush_all();
            unlimit_file_size();
            shard.flush_all();
            assert_eq!(shard.stats.files_closed.load(Relaxed), 1);

            let files = shard.files();
            assert_eq!(files.len(), 1);
            assert_eq!(segment(&files[0].1), (0, vec![T0, T0 + 1000]));
            assert_eq!(shard.stats.files_opened.load(Relaxed), 1);
            assert_eq!(shard.stats.written.load(Relaxed), 2);
            assert!(shard.stats.write_errors.load(Relaxed) >= 2);
        },
    );
}

#[test]
fn shards_that_failed_or_panicked_are_reported_by_number() {
    let threads = vec![
        std::thread::spawn(|| Ok(())),
        std::thread::spawn(|| Err(std::io::Error::other("disk on fire"))),
        std::thread::spawn(|| panic!("writer shard dies")),
    ];
    let failures: Vec<String> = super::join_shards(threads)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        failures,
        [
            "writer shard 1 failed: disk on fire",
            "writer shard 2 panicked"
        ]
    );
}
