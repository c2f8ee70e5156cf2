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

use super::budget::PendingBudget;
use super::descriptors::Descriptors;
use super::previous::PreviousRun;
use super::shard::ShardWriter;
use super::{Batch, Limits, SaverConfig};
use crate::stats::Stats;

const COOKIE: u64 = 0x4a3f;
/// 2023-11-14T22:13:20Z.
const T0: i64 = 1_700_000_000_000;
const ROTATION: Duration = Duration::from_secs(600);
const ROTATION_MS: i64 = 600_000;
const STEP: Duration = Duration::from_secs(60);

/// A connection's reply as the kernel sent it (the story's first
/// connection, from `testdata/netlink/story.dumps`).
fn payload() -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/netlink/story.dumps");
    let dumps = read_capture(&std::fs::read(path).unwrap()).unwrap();
    dumps[1].records().swap_remove(2)
}

struct Shard {
    writer: ShardWriter,
    /// The writer's clock: each step below happens a minute after the
    /// previous one, longer than any retry's back-off and shorter than a
    /// closed connection's patience (a rotation interval).
    now: Instant,
    stats: Arc<Stats>,
    limits: Arc<Limits>,
    payload: Vec<u8>,
    /// The output directory (`out` in the scratch directory).
    output: PathBuf,
    /// The scratch directory, for things outside the output tree.
    dir: tempfile::TempDir,
}

fn shard() -> Shard {
    shard_with(32 << 20, Descriptors::new(1))
}

/// A shard with a budget of `max_pending_bytes` and `descriptors`.
fn shard_with(max_pending_bytes: usize, descriptors: Arc<Descriptors>) -> Shard {
    shard_configured(max_pending_bytes, descriptors, false)
}

fn shard_configured(
    max_pending_bytes: usize,
    descriptors: Arc<Descriptors>,
    poll_gaps: bool,
) -> Shard {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let stats = Arc::new(Stats::default());
    let config = Arc::new(SaverConfig {
        output: output.clone(),
        uuid_prefix: "host_1700000000_unsafe".into(),
        flush_interval: Duration::from_secs(1),
        rotation_interval: ROTATION,
        max_pending_bytes,
        poll_gaps,
    });
    let limits = Arc::new(Limits {
        pending: PendingBudget::new(max_pending_bytes, 1),
        descriptors,
        previous: PreviousRun::scan(&output, "host_1700000000_unsafe", T0),
    });
    Shard {
        writer: ShardWriter::new(config, Arc::clone(&stats), Arc::clone(&limits)).unwrap(),
        now: Instant::now(),
        stats,
        limits,
        payload: payload(),
        output,
        dir,
    }
}

impl Shard {
    fn apply(&mut self, batch: &Batch) {
        self.now += STEP;
        self.writer.apply(batch, self.now);
    }

    fn open(&mut self, at: i64) {
        self.open_of(COOKIE, at);
    }

    fn snapshot(&mut self, at: i64) {
        self.snapshot_of(COOKIE, at);
    }

    fn close(&mut self, at: i64) {
        self.close_of(COOKIE, at);
    }

    /// Connection `cookie` opens at `at` with its first snapshot.
    fn open_of(&mut self, cookie: u64, at: i64) {
        let mut batch = Batch::default();
        batch.open(cookie, at, 0);
        batch.snapshot(cookie, at, &self.payload);
        self.apply(&batch);
    }

    fn snapshot_of(&mut self, cookie: u64, at: i64) {
        let mut batch = Batch::default();
        batch.snapshot(cookie, at, &self.payload);
        self.apply(&batch);
    }

    fn close_of(&mut self, cookie: u64, at: i64) {
        let mut batch = Batch::default();
        batch.close(cookie, at);
        self.apply(&batch);
    }

    /// The flushes and retries due `elapsed` after the last step.
    fn flush_after(&mut self, elapsed: Duration) {
        self.now += elapsed;
        self.writer.flush_due(self.now);
    }

    /// `queued == written + dropped` for `queued` snapshots handed over.
    fn assert_accounted(&self, queued: u64) {
        let written = self.stats.written.load(Relaxed);
        let dropped = self.stats.dropped.load(Relaxed);
        assert_eq!(
            written + dropped,
            queued,
            "written {written} + dropped {dropped}"
        );
        let in_files: usize = self.files().iter().map(|(_, l)| l.len() - 1).sum();
        assert_eq!(in_files as u64, written, "snapshot lines in the files");
    }

    /// Every flush that is due by then, and the closed files' retries.
    fn flush_all(&mut self) {
        self.now += STEP;
        self.writer.flush_due(self.now);
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
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_symlink() {
            continue;
        }
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

#[test]
fn a_first_frame_that_failed_is_written_on_its_retry_with_one_metadata_line() {
    in_own_process(
        "saver::tests::a_first_frame_that_failed_is_written_on_its_retry_with_one_metadata_line",
        || {
            let mut shard = shard();
            // The file is created, its first frame (metadata line and
            // snapshot) fails.
            limit_file_size(0);
            shard.open(T0);
            shard.flush_all();
            assert!(shard.stats.write_errors.load(Relaxed) >= 1);
            unlimit_file_size();
            shard.snapshot(T0 + 1000);
            // The retry (one flush interval later) writes the line once.
            shard.flush_after(Duration::from_secs(2));
            let files = shard.files();
            assert_eq!(files.len(), 1);
            assert_eq!(segment(&files[0].1), (0, vec![T0, T0 + 1000]));
            shard.close(T0 + 2000);
            shard.writer.finish();
            assert_eq!(segment(&shard.files()[0].1), (0, vec![T0, T0 + 1000]));
            assert_eq!(shard.stats.files_opened.load(Relaxed), 1);
            shard.assert_accounted(2);
        },
    );
}

#[test]
fn a_segment_whose_snapshots_were_dropped_before_its_file_existed_gets_its_metadata_line_later() {
    const A: u64 = 0xa;
    const B: u64 = 0xb;
    let mut shard = shard_with_room_for(2);
    shard.open_of(A, T0 + 100);
    shard.open_of(B, T0 + 200);
    // The third line is one too many: A's, the oldest, goes, before A's
    // file was ever created.
    shard.snapshot_of(B, T0 + 300);
    assert_eq!(shard.stats.dropped.load(Relaxed), 1);
    assert_eq!(shard.stats.files_opened.load(Relaxed), 0);
    // A's next line: now B's two are the oldest, and go.
    shard.snapshot_of(A, T0 + 400);
    assert_eq!(shard.stats.dropped.load(Relaxed), 3);
    shard.writer.finish();

    let files = shard.files();
    assert_eq!(files.len(), 1, "B never had a line written");
    assert!(files[0].0.contains("_000000000000000A."));
    assert_eq!(segment(&files[0].1), (0, vec![T0 + 400]));
    shard.assert_accounted(4);
}

#[test]
fn each_shard_keeps_a_few_spent_batches_for_reuse_not_every_batch_ever_made() {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(SaverConfig {
        output: dir.path().join("out"),
        uuid_prefix: "host_1700000000_unsafe".into(),
        flush_interval: Duration::from_secs(1),
        rotation_interval: ROTATION,
        max_pending_bytes: 32 << 20,
        poll_gaps: false,
    });
    let (queues, saver) = super::spawn(config, Arc::new(Stats::default()), 2).unwrap();
    for queue in &queues {
        assert_eq!(queue.pool_capacity(), Some(super::RECYCLED_BATCHES));
    }
    drop(queues);
    assert!(saver.join().is_empty());
}

/// The date directory of `T0`, and the name of `COOKIE`'s segment `seq`.
const DAY: &str = "2023/11/14";
fn segment_name(sequence: u32) -> String {
    format!("host_1700000000_unsafe_0000000000004A3F.{sequence:05}.jsonl.zst")
}

#[test]
fn a_file_whose_first_frame_never_commits_is_removed_when_the_connection_is_given_up() {
    in_own_process(
        "saver::tests::a_file_whose_first_frame_never_commits_is_removed_when_the_connection_is_given_up",
        || {
            let mut shard = shard();
            // No byte fits: the file is created, its first frame fails.
            limit_file_size(0);
            shard.open(T0);
            shard.flush_all();
            assert_eq!(shard.stats.files_opened.load(Relaxed), 1);
            assert!(shard.stats.write_errors.load(Relaxed) >= 1);
            let path = shard.output.join(DAY).join(segment_name(0));
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "cut back");
            shard.close(T0 + 1000);
            // Shutdown while the disk is still full.
            shard.writer.finish();

            assert!(!path.exists(), "an empty file was left behind");
            assert!(shard.files().is_empty());
            assert_eq!(shard.stats.files_closed.load(Relaxed), 1);
            assert_eq!(shard.stats.dropped.load(Relaxed), 1);
            shard.assert_accounted(1);
        },
    );
}

#[test]
fn a_closed_connection_gives_up_after_a_rotation_interval_and_frees_its_descriptor() {
    in_own_process(
        "saver::tests::a_closed_connection_gives_up_after_a_rotation_interval_and_frees_its_descriptor",
        || {
            let mut shard = shard();
            shard.open_then_fill_the_disk();
            let held = shard.limits.descriptors.held();
            shard.snapshot(T0 + 1000);
            shard.close(T0 + 2000);
            // Still waiting, file open, just before its patience runs out.
            shard.flush_after(ROTATION - Duration::from_secs(1));
            assert_eq!(shard.stats.files_closed.load(Relaxed), 0);
            shard.flush_after(Duration::from_secs(2));
            assert_eq!(shard.stats.files_closed.load(Relaxed), 1);
            assert_eq!(shard.limits.descriptors.held(), held - 1);
            assert_eq!(shard.stats.dropped.load(Relaxed), 1);
            unlimit_file_size();
            shard.writer.finish();

            // What was committed is intact.
            let files = shard.files();
            assert_eq!(files.len(), 1);
            assert_eq!(segment(&files[0].1), (0, vec![T0]));
            shard.assert_accounted(2);
        },
    );
}

#[test]
fn failed_writes_are_retried_with_growing_back_off_not_every_tick() {
    in_own_process(
        "saver::tests::failed_writes_are_retried_with_growing_back_off_not_every_tick",
        || {
            let mut shard = shard();
            shard.open_then_fill_the_disk();
            shard.snapshot(T0 + 1000);
            let before = shard.stats.write_errors.load(Relaxed);
            // A minute of 100 ms ticks, the flush interval being 1 s: the
            // retries come 1, 2, 4, 8, 16, 16 s apart.
            for _ in 0..600 {
                shard.flush_after(Duration::from_millis(100));
            }
            let retries = shard.stats.write_errors.load(Relaxed) - before;
            assert!((5..=8).contains(&retries), "{retries} retries in a minute");
            unlimit_file_size();
            shard.flush_after(Duration::from_secs(16));
            shard.writer.finish();
            let files = shard.files();
            assert_eq!(segment(&files[0].1), (0, vec![T0, T0 + 1000]));
            shard.assert_accounted(2);
        },
    );
}

#[test]
fn after_a_restart_a_connection_continues_in_the_next_sequence_and_never_writes_the_old_file() {
    let mut shard = shard();
    // The previous run's file of this very connection (same cookie, same
    // boot: same UUID), closed at its shutdown.
    let day = shard.output.join(DAY);
    std::fs::create_dir_all(&day).unwrap();
    let old = day.join(segment_name(0));
    std::fs::write(&old, b"the previous run's archive").unwrap();
    let old_before = std::fs::metadata(&old).unwrap();

    shard.open(T0);
    shard.snapshot(T0 + 1000);
    shard.flush_all();
    shard.snapshot(T0 + 2000);
    shard.close(T0 + 3000);
    shard.writer.finish();

    assert_eq!(std::fs::read(&old).unwrap(), b"the previous run's archive");
    let old_after = std::fs::metadata(&old).unwrap();
    assert_eq!(
        old_after.modified().unwrap(),
        old_before.modified().unwrap()
    );
    let new = read_one(&day.join(segment_name(1)));
    assert_eq!(segment(&new), (1, vec![T0, T0 + 1000, T0 + 2000]));
    assert_eq!(shard.stats.files_opened.load(Relaxed), 1);
    assert_eq!(shard.stats.written.load(Relaxed), 3);
}

/// A run started at T0 (2023-11-14) after one that ran on the two days
/// before: a connection of that run continues after its last sequence,
/// in today's directory, and no earlier file is touched.
#[test]
fn after_a_restart_on_a_later_day_a_connection_continues_after_its_last_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out");
    let mut previous = Vec::new();
    for (day, sequences) in [("2023/11/12", &[0, 1][..]), ("2023/11/13", &[2, 3])] {
        std::fs::create_dir_all(output.join(day)).unwrap();
        for &seq in sequences {
            let path = output.join(day).join(segment_name(seq));
            std::fs::write(&path, b"the previous run's archive").unwrap();
            previous.push(path);
        }
    }
    // Another connection's file, and another boot's, the same day.
    let other = output.join("2023/11/13/host_1700000000_unsafe_0000000000000001.00009.jsonl.zst");
    std::fs::write(&other, b"x").unwrap();
    let stats = Arc::new(Stats::default());
    let config = Arc::new(SaverConfig {
        output: output.clone(),
        uuid_prefix: "host_1700000000_unsafe".into(),
        flush_interval: Duration::from_secs(1),
        rotation_interval: ROTATION,
        max_pending_bytes: 32 << 20,
        poll_gaps: false,
    });
    let limits = Arc::new(Limits {
        pending: PendingBudget::new(32 << 20, 1),
        descriptors: Descriptors::new(1),
        previous: PreviousRun::scan(&output, "host_1700000000_unsafe", T0),
    });
    let mut shard = Shard {
        writer: ShardWriter::new(config, Arc::clone(&stats), Arc::clone(&limits)).unwrap(),
        now: Instant::now(),
        stats,
        limits,
        payload: payload(),
        output: output.clone(),
        dir,
    };
    shard.open(T0);
    shard.snapshot(T0 + ROTATION_MS);
    shard.close(T0 + ROTATION_MS + 1000);
    shard.writer.finish();

    for path in &previous {
        assert_eq!(std::fs::read(path).unwrap(), b"the previous run's archive");
    }
    let today = output.join(DAY);
    assert!(!today.join(segment_name(0)).exists(), ".00000 again");
    assert_eq!(
        segment(&read_one(&today.join(segment_name(4)))),
        (4, vec![T0])
    );
    // The rotation goes on from there.
    assert_eq!(segment(&read_one(&today.join(segment_name(5)))).0, 5);

    // A connection opened long after the start is new: from .00000.
    let late = T0 + 2 * super::previous::RELEVANT_FOR_MS;
    assert_eq!(shard.limits.previous.first_sequence(COOKIE, late), 0);
}

#[test]
fn a_symlink_planted_at_a_segment_path_is_never_followed() {
    let mut shard = shard();
    let day = shard.output.join(DAY);
    std::fs::create_dir_all(&day).unwrap();
    // Someone else's file, and a link to it where the agent will write.
    let victim = shard.dir.path().join("victim");
    std::fs::write(&victim, b"secret").unwrap();
    std::os::unix::fs::symlink(&victim, day.join(segment_name(0))).unwrap();
    // A dangling link too: O_CREAT alone would create its target.
    let target = shard.dir.path().join("created-through-a-link");
    std::os::unix::fs::symlink(&target, day.join(segment_name(1))).unwrap();

    shard.open(T0);
    shard.close(T0 + 1000);
    shard.writer.finish();

    assert_eq!(std::fs::read(&victim).unwrap(), b"secret");
    assert!(!target.exists(), "a file was created through a link");
    assert!(day.join(segment_name(0)).is_symlink());
    let new = read_one(&day.join(segment_name(2)));
    assert_eq!(segment(&new), (2, vec![T0]));
    shard.assert_accounted(1);
}

#[test]
fn a_symlink_planted_at_a_date_directory_is_never_followed() {
    let mut shard = shard();
    // 2023/11 is a link to a directory outside the tree.
    let elsewhere = shard.dir.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("14")).unwrap();
    std::fs::create_dir_all(shard.output.join("2023")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, shard.output.join("2023/11")).unwrap();

    shard.open(T0);
    shard.flush_all();
    assert!(shard.stats.open_errors.load(Relaxed) >= 1);
    shard.close(T0 + 1000);
    shard.writer.finish();

    assert_eq!(std::fs::read_dir(elsewhere.join("14")).unwrap().count(), 0);
    assert_eq!(shard.stats.files_opened.load(Relaxed), 0);
    assert_eq!(shard.stats.dropped.load(Relaxed), 1);
    shard.assert_accounted(1);
}

/// A shard whose budget holds `records` snapshot records and half of one
/// more: the next record is one too many.
fn shard_with_room_for(records: usize) -> Shard {
    let record = record_size();
    shard_with(records * record + record / 2, Descriptors::new(1))
}

/// The size of a snapshot record in a pending buffer, as the budget
/// counts it (a segment's metadata line is made at its first flush, not
/// kept: it counts nothing).
fn record_size() -> usize {
    let mut probe = shard();
    probe.open_of(0xa, T0 + 100);
    let first = probe.limits.pending.used();
    probe.snapshot_of(0xa, T0 + 200);
    let record = probe.limits.pending.used() - first;
    assert_eq!(first, record, "the metadata line counts nothing");
    record
}

#[test]
fn over_the_budget_the_oldest_pending_lines_are_dropped_first_and_counted() {
    const A: u64 = 0xa;
    const B: u64 = 0xb;
    const C: u64 = 0xc;
    let line = record_size();
    let mut shard = shard_with_room_for(4);
    shard.open_of(A, T0 + 100);
    shard.open_of(B, T0 + 200);
    shard.open_of(C, T0 + 300);
    shard.snapshot_of(C, T0 + 400);
    assert_eq!(shard.stats.dropped.load(Relaxed), 0);
    // The fifth line is one too many: A's and B's lines, the oldest, go
    // (down to the low-water mark, 7/8 of the budget); C's stay.
    shard.snapshot_of(C, T0 + 500);
    assert_eq!(shard.stats.dropped.load(Relaxed), 2);
    assert_eq!(shard.limits.pending.used(), 3 * line);
    shard.writer.finish();

    let files = shard.files();
    assert_eq!(files.len(), 1, "only C has lines to write");
    assert!(files[0].0.contains("_000000000000000C."));
    assert_eq!(
        segment(&files[0].1),
        (0, vec![T0 + 300, T0 + 400, T0 + 500])
    );
    shard.assert_accounted(5);
    assert_eq!(shard.limits.pending.used(), 0);
}

#[test]
fn live_files_wait_for_descriptors_and_closed_connections_take_the_closing_lane() {
    use super::descriptors::{closing_lane_under, open_files_limit, reserve_under};
    let limit = open_files_limit();
    let reserve = reserve_under(limit);
    let lane = closing_lane_under(limit);
    // Room for the output and date directories, one live file and the
    // closing lane.
    let baseline = limit - reserve - 2 - 1 - lane;
    let mut shard = shard_with(32 << 20, Descriptors::with_baseline(baseline, 1));
    const A: u64 = 0xa;
    const B: u64 = 0xb;
    const C: u64 = 0xc;
    shard.open_of(A, T0);
    shard.open_of(B, T0);
    shard.flush_all();
    assert_eq!(shard.stats.files_opened.load(Relaxed), 1);
    assert_eq!(shard.stats.open_errors.load(Relaxed), 1);
    // B closes while A lives on (and keeps its file): B's last lines take
    // a descriptor of the closing lane at once.
    shard.close_of(B, T0 + 1000);
    assert_eq!(shard.stats.files_opened.load(Relaxed), 2);
    assert_eq!(shard.stats.files_closed.load(Relaxed), 1);
    // C, live, still waits; its close lets it in too.
    shard.open_of(C, T0 + 1000);
    shard.flush_all();
    assert_eq!(shard.stats.open_errors.load(Relaxed), 2);
    shard.close_of(C, T0 + 2000);
    assert_eq!(shard.stats.files_opened.load(Relaxed), 3);
    shard.close_of(A, T0 + 2000);
    shard.writer.finish();
    assert_eq!(shard.files().len(), 3);
    assert_eq!(shard.stats.dropped.load(Relaxed), 0);
    shard.assert_accounted(3);
}

/// The lines of one archive file.
fn read_one(path: &Path) -> Vec<Value> {
    let data = zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap();
    data.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn with_poll_gaps_each_line_after_the_first_says_how_many_polls_and_ms_passed() {
    let mut shard = shard_configured(32 << 20, Descriptors::new(1), true);
    let mut batch = Batch {
        poll: 7,
        ..Batch::default()
    };
    batch.open(COOKIE, T0, 0);
    batch.snapshot(COOKIE, T0, &shard.payload);
    shard.apply(&batch);
    // Three polls and 30 ms later, the next change.
    let mut batch = Batch {
        poll: 10,
        ..Batch::default()
    };
    batch.snapshot(COOKIE, T0 + 30, &shard.payload);
    batch.close(COOKIE, T0 + 30);
    shard.apply(&batch);
    shard.writer.finish();

    let files = shard.files();
    let lines = &files[0].1;
    assert_eq!(lines.len(), 3);
    assert!(
        lines[1].get("PollGap").is_none(),
        "no gap before the first line"
    );
    assert_eq!(
        lines[2]["PollGap"],
        serde_json::json!({"Polls": 3, "Milliseconds": 30})
    );
    // Everything else on the line is as without the flag.
    let mut without = lines[2].clone();
    without.as_object_mut().unwrap().remove("PollGap");
    assert_eq!(without.as_object().unwrap().len(), 3);
}

#[test]
fn a_poll_gap_after_dropped_lines_is_measured_from_the_last_line_in_the_file() {
    const A: u64 = 0xa;
    const B: u64 = 0xb;
    let at_poll = |poll: u64, fill: &dyn Fn(&mut Batch)| {
        let mut batch = Batch {
            poll,
            ..Batch::default()
        };
        fill(&mut batch);
        batch
    };
    let payload = payload();
    let line = record_size();
    let mut shard = shard_configured(2 * line - 1, Descriptors::new(1), true);
    shard.apply(&at_poll(1, &|b| {
        b.open(A, T0, 0);
        b.snapshot(A, T0, &payload);
    }));
    shard.flush_all();
    // A's line of poll 2 is dropped: B's first lines take the budget.
    shard.apply(&at_poll(2, &|b| b.snapshot(A, T0 + 10, &payload)));
    shard.apply(&at_poll(3, &|b| {
        b.open(B, T0 + 20, 0);
        b.snapshot(B, T0 + 20, &payload);
    }));
    assert_eq!(shard.stats.dropped.load(Relaxed), 1);
    shard.apply(&at_poll(4, &|b| {
        b.snapshot(A, T0 + 30, &payload);
        b.close(A, T0 + 30);
        b.close(B, T0 + 30);
    }));
    shard.writer.finish();

    let files = shard.files();
    let a = &files
        .iter()
        .find(|(name, _)| name.contains("_000000000000000A."))
        .unwrap()
        .1;
    assert_eq!(a.len(), 3, "metadata, poll 1, poll 4");
    assert_eq!(
        a[2]["PollGap"],
        serde_json::json!({"Polls": 3, "Milliseconds": 30}),
        "from poll 1, the last line written, not from the dropped one"
    );
    shard.assert_accounted(4);
}

#[test]
fn a_malformed_snapshot_is_counted_as_a_parse_error_and_dropped_when_its_frame_is_written() {
    const A: u64 = 0xa;
    let mut shard = shard();
    shard.open_of(A, T0);
    let mut batch = Batch::default();
    // An inet_diag_msg cut short: not a reply the poller would hand over.
    batch.snapshot(A, T0 + 100, &shard.payload[..20]);
    batch.snapshot(A, T0 + 200, &shard.payload.clone());
    shard.apply(&batch);
    shard.close_of(A, T0 + 300);
    shard.writer.finish();

    assert_eq!(shard.stats.parse_errors.load(Relaxed), 1);
    assert_eq!(shard.stats.dropped.load(Relaxed), 1);
    let files = shard.files();
    assert_eq!(segment(&files[0].1), (0, vec![T0, T0 + 200]));
    shard.assert_accounted(3);
}

#[test]
fn connections_opened_together_have_their_first_flush_spread_over_the_interval() {
    let mut shard = shard();
    let mut batch = Batch::default();
    for cookie in 1..=200 {
        batch.open(cookie, T0, 0);
        batch.snapshot(cookie, T0, &shard.payload);
    }
    shard.apply(&batch);
    // A tenth of the flush interval at a time: about a tenth of the
    // connections have their first frame written each time, none waits
    // longer than the interval.
    let mut written = 0;
    for tenth in 1..=10 {
        shard.flush_after(Duration::from_millis(100));
        let now = shard.stats.written.load(Relaxed);
        assert!(
            (8..=32).contains(&(now - written)),
            "{} first frames in tenth {tenth} of the interval",
            now - written
        );
        written = now;
    }
    assert_eq!(written, 200);
    assert_eq!(shard.stats.files_opened.load(Relaxed), 200);
    // Their later snapshots wait the whole interval, as before.
    shard.snapshot_of(7, T0 + 1_000);
    shard.flush_after(Duration::from_millis(999));
    assert_eq!(shard.stats.written.load(Relaxed), 200);
    shard.flush_after(Duration::from_millis(2));
    assert_eq!(shard.stats.written.load(Relaxed), 201);
    shard.assert_accounted(201);
}
