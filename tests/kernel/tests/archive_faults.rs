//! What is written stays written, under faults: a disk that fills up
//! (a tmpfs of the test's own) during traffic and at SIGTERM, a restart of
//! the agent while its connections live, links and files planted in the
//! output tree by an unprivileged user, and a descriptor limit that archive
//! files alone would exhaust. In every scenario every file decodes
//! completely (`zstd -t`), holds exactly one metadata line, first, and the
//! agent's counters match the files to the line: queued = written +
//! dropped, and the files hold exactly `written` snapshot lines.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use harness::agent::FAST;
use harness::archive::{archive_files, read_live_segment, read_segment, zstd_cli_accepts};
use harness::disk::Tmpfs;
use harness::metrics::METRICS_PORT;
use harness::system::{run, tool};
use harness::traffic::{socket_cookie, Connection, Pump};
use harness::{wait_until, Agent, Netns, Stats};
use tcpinfo_archive::naming::{segment_path, uuid};
use tcpinfo_archive::Timestamp;

const WAIT: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Checks every archive file in `files`: no empty file, `zstd -t` clean,
/// exactly one metadata line and first; returns the snapshot lines.
fn check_files(files: &[PathBuf]) -> u64 {
    let mut snapshots = 0;
    for path in files {
        let size = fs::metadata(path).unwrap().len();
        assert!(size > 0, "{}: an empty archive file", path.display());
        assert!(zstd_cli_accepts(path), "{}: zstd -t fails", path.display());
        let segment = read_segment(path);
        segment.assert_metadata_first();
        snapshots += segment.snapshots().len() as u64;
    }
    snapshots
}

/// Every file under `out` is sound and the counters of `fin` match them.
fn check_archive(out: &Path, fin: &Stats) -> Vec<PathBuf> {
    let files = archive_files(out);
    assert_eq!(check_files(&files), fin.get("written"), "{fin:?}");
    assert_eq!(
        fin.get("queued"),
        fin.get("written") + fin.get("dropped"),
        "{fin:?}"
    );
    files
}

/// Lines in the complete frames of every file that has any: what must
/// still be there at the end.
fn committed_lines(out: &Path) -> BTreeMap<PathBuf, usize> {
    archive_files(out)
        .into_iter()
        .map(|p| {
            let n = read_live_segment(&p).records.len();
            (p, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// `n` connections to `listener` in `ns`, kept busy.
fn busy_connections(ns: &Netns, listener: &TcpListener, n: usize) -> Pump {
    let conns: Vec<Connection> = ns.enter(|| (0..n).map(|_| Connection::open(listener)).collect());
    Pump::start(conns, 200, Duration::from_millis(10))
}

fn archiving_flags<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    flags.extend_from_slice(extra);
    flags
}

#[test]
fn a_disk_that_fills_up_during_traffic_and_is_freed_keeps_every_committed_frame() {
    let ns = Netns::new();
    let disk = Tmpfs::new("size=4m");
    let out = disk.mount.join("out");
    // A small budget, so that the fault also drops (and counts) lines.
    let flags = archiving_flags(&["-max-pending-bytes=1000000"]);
    let mut agent = Agent::start(Some(&ns), &out, &flags);
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let pump = busy_connections(&ns, &listener, 20);
    wait_until(WAIT, "a file per connection", || {
        archive_files(&out).len() >= 41
    });

    // Committed before the disk fills: must be there, intact, at the end.
    let filler = disk.fill();
    let before = committed_lines(&out);
    let full = agent.wait_for_stats(WAIT, "write errors and drops", |s| {
        s.get("write") > 0 && s.get("dropped") > 0
    });
    // A full disk costs retries at the flush interval with back-off, not a
    // write per poll: 41 files, 200 polls a second.
    let later = agent.wait_for_stats(WAIT, "two more seconds of the full disk", |s| {
        s.get("polls") > full.get("polls") + 200
    });
    let retries = later.get("write") - full.get("write");
    assert!(retries < 41 * 12, "{retries} failed writes in 2 s");

    fs::remove_file(filler).unwrap();
    let freed = agent.stats_lines().pop().unwrap();
    agent.wait_for_stats(WAIT, "writing again once the disk is free", |s| {
        s.get("written") > freed.get("written") + 100
    });
    let conns = pump.stop();
    drop(conns);
    let fin = agent.terminate();
    assert!(fin.get("dropped") > 0, "{fin:?}");
    let files = check_archive(&out, &fin);
    for (path, lines) in before {
        assert!(files.contains(&path), "{} vanished", path.display());
        let now = read_segment(&path).records.len();
        assert!(
            now >= lines,
            "{}: {lines} lines, then {now}",
            path.display()
        );
    }
}

#[test]
fn sigterm_on_a_full_disk_leaves_no_empty_or_metadata_less_file() {
    let ns = Netns::new();
    let disk = Tmpfs::new("size=4m");
    let out = disk.mount.join("out");
    let mut agent = Agent::start(Some(&ns), &out, &archiving_flags(&[]));
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let pump = busy_connections(&ns, &listener, 10);
    wait_until(WAIT, "a file per connection", || {
        archive_files(&out).len() >= 21
    });
    disk.fill();
    let before = committed_lines(&out);
    // New connections on the full disk: their files can be created (an
    // inode) but never written.
    let late = busy_connections(&ns, &listener, 10);
    agent.wait_for_stats(WAIT, "failed writes of the new connections", |s| {
        s.get("write") > 20 && s.get("new") >= 42
    });
    let fin = agent.terminate();
    drop((pump, late));

    assert!(fin.get("dropped") > 0, "{fin:?}");
    let files = check_archive(&out, &fin);
    for (path, lines) in before {
        assert!(files.contains(&path), "{} vanished", path.display());
        assert!(read_segment(&path).records.len() >= lines);
    }
}

/// Size, modification time and content of every archive file.
fn fingerprints(files: &[PathBuf]) -> BTreeMap<PathBuf, (u64, i64, i64, Vec<u8>)> {
    files
        .iter()
        .map(|p| {
            let m = fs::metadata(p).unwrap();
            (
                p.clone(),
                (m.len(), m.mtime(), m.mtime_nsec(), fs::read(p).unwrap()),
            )
        })
        .collect()
}

/// Stops an agent whose 20 connections live on, starts another on the
/// same output (with `fill` the disk full meanwhile): the first run's files
/// are never touched, the second continues in the next sequence numbers.
fn restart_with_live_connections(full_disk: bool) {
    let ns = Netns::new();
    let disk = Tmpfs::new("size=8m");
    let out = disk.mount.join("out");
    let flags = archiving_flags(&[]);
    let mut first = Agent::start(Some(&ns), &out, &flags);
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let pump = busy_connections(&ns, &listener, 20);
    wait_until(WAIT, "a file per connection", || {
        archive_files(&out).len() >= 41
    });
    let fin1 = first.terminate();
    let closed = fingerprints(&archive_files(&out));
    assert_eq!(check_files(&archive_files(&out)), fin1.get("written"));
    if full_disk {
        disk.fill();
    }

    let mut second = Agent::start(Some(&ns), &out, &flags);
    if full_disk {
        second.wait_for_stats(WAIT, "failed writes", |s| s.get("write") > 41);
    } else {
        wait_until(WAIT, "the second run's files", || {
            archive_files(&out).len() >= closed.len() + 41
        });
    }
    let fin2 = second.terminate();
    drop(pump);

    // The first run's files, closed at its exit, are as they were.
    let after = fingerprints(&archive_files(&out));
    for (path, print) in &closed {
        assert_eq!(after.get(path), Some(print), "{} changed", path.display());
    }
    let new: Vec<PathBuf> = after
        .keys()
        .filter(|p| !closed.contains_key(*p))
        .cloned()
        .collect();
    assert_eq!(check_files(&new), fin2.get("written"), "{fin2:?}");
    assert_eq!(
        fin2.get("queued"),
        fin2.get("written") + fin2.get("dropped")
    );
    for path in &new {
        let segment = read_segment(path);
        // Each connection's file of the first run holds sequence 0.
        let previous = segment_path(Path::new(""), (0, 0, 0), &segment.uuid, 0);
        let previous_name = previous.file_name().unwrap();
        if closed.keys().any(|p| p.file_name() == Some(previous_name)) {
            assert!(segment.sequence >= 1, "{} reuses .00000", path.display());
        }
    }
    if full_disk {
        assert!(fin2.get("dropped") > 0, "{fin2:?}");
    } else {
        assert_eq!(new.len(), 41, "one new file per socket: {new:?}");
        assert_eq!(fin2.get("dropped"), 0, "{fin2:?}");
    }
}

#[test]
fn a_restart_with_live_connections_never_touches_the_previous_files() {
    restart_with_live_connections(false);
}

#[test]
fn a_restart_on_a_full_disk_never_touches_the_previous_files() {
    restart_with_live_connections(true);
}

/// Runs `program ARGS` as user nobody.
fn as_nobody(program: &str, args: &[&Path]) {
    run(tool("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            program,
        ])
        .args(args));
}

/// An output directory anyone may create entries in (sticky, like /tmp).
fn shared_output(disk: &Tmpfs) -> PathBuf {
    let out = disk.mount.join("out");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o1777)).unwrap();
    out
}

fn today() -> (i32, u32, u32) {
    Timestamp::from_unix_millis(now_ms()).utc_date()
}

#[test]
fn links_and_files_planted_by_an_unprivileged_user_are_never_followed_or_written_into() {
    let ns = Netns::new();
    let disk = Tmpfs::new("size=8m");
    let out = shared_output(&disk);
    // A root-only file the links point at.
    let secret = disk.mount.join("secret");
    fs::write(&secret, b"root only").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    let missing = disk.mount.join("created-through-a-link");

    // The connections exist before the agent: nobody learns their cookies
    // (as a local user could, from ss) and plants their file names.
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let conns: Vec<Connection> = ns.enter(|| (0..3).map(|_| Connection::open(&listener)).collect());
    let day = today();
    let name = |c: &Connection| {
        let relative = segment_path(
            Path::new(""),
            day,
            &uuid(harness::agent::UUID_PREFIX, socket_cookie(&c.client)),
            0,
        );
        out.join(relative)
    };
    let (linked, dangling, planted) = (name(&conns[0]), name(&conns[1]), name(&conns[2]));
    as_nobody("mkdir", &[Path::new("-p"), linked.parent().unwrap()]);
    as_nobody("ln", &[Path::new("-s"), &secret, &linked]);
    as_nobody("ln", &[Path::new("-s"), &missing, &dangling]);
    as_nobody("touch", &[&planted]);
    let planted_before = fs::metadata(&planted).unwrap();

    let mut agent = Agent::start(Some(&ns), &out, &archiving_flags(&[]));
    let pump = Pump::start(conns, 100, Duration::from_millis(10));
    // Today's directory is nobody's: the agent refuses to write into it
    // (its owner could remove or swap what the agent wrote there).
    agent.wait_for_stats(WAIT, "refused creations", |s| s.get("open") > 0);
    let _conns = pump.stop();
    let fin = agent.terminate();
    let day_dir = linked.parent().unwrap();
    assert!(
        fs::read_dir(day_dir)
            .unwrap()
            .all(|e| fs::symlink_metadata(e.unwrap().path()).unwrap().uid() != 0),
        "nothing of the agent's in nobody's directory"
    );

    assert_eq!(fs::read(&secret).unwrap(), b"root only");
    assert!(!missing.exists(), "a file was created through a link");
    assert!(linked.is_symlink() && dangling.is_symlink());
    let planted_after = fs::metadata(&planted).unwrap();
    assert_eq!(planted_after.len(), 0);
    assert_eq!(planted_after.mtime(), planted_before.mtime());
    assert_eq!(planted_after.uid(), planted_before.uid());
    // Every archive file is the agent's (nobody's are not *.jsonl.zst
    // files the agent wrote: they are skipped by name below).
    let ours: Vec<PathBuf> = archive_files(&out)
        .into_iter()
        .filter(|p| p != &planted && !p.is_symlink())
        .collect();
    assert_eq!(check_files(&ours), fin.get("written"));
    assert_eq!(fin.get("queued"), fin.get("written") + fin.get("dropped"));
}

#[test]
fn a_date_directory_replaced_by_a_link_is_never_followed() {
    let ns = Netns::new();
    let disk = Tmpfs::new("size=8m");
    let out = shared_output(&disk);
    let root_only = disk.mount.join("root-only");
    fs::create_dir(&root_only).unwrap();
    fs::set_permissions(&root_only, fs::Permissions::from_mode(0o700)).unwrap();
    // Today's month directory is nobody's link to the root-only directory.
    let day = today();
    let relative = segment_path(Path::new(""), day, "x", 0);
    let day_dir = out.join(relative.parent().unwrap());
    let month = day_dir.parent().unwrap();
    as_nobody("mkdir", &[month.parent().unwrap()]);
    as_nobody("ln", &[Path::new("-s"), &root_only, month]);

    let mut agent = Agent::start(Some(&ns), &out, &archiving_flags(&[]));
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let pump = busy_connections(&ns, &listener, 3);
    agent.wait_for_stats(WAIT, "refused creations", |s| s.get("open") > 0);
    drop(pump);
    let fin = agent.terminate();

    assert_eq!(fs::read_dir(&root_only).unwrap().count(), 0);
    assert_eq!(fin.get("written"), 0, "{fin:?}");
    assert!(fin.get("dropped") > 0, "{fin:?}");
    check_archive(&out, &fin);
}

#[test]
fn with_descriptors_exhausted_metrics_still_answer_and_nothing_is_lost() {
    let ns = Netns::new();
    let mut agent = Agent::builder()
        .netns(&ns)
        .wrapped_in("prlimit", &["--nofile=64:64", "--"])
        .metrics_on(METRICS_PORT)
        .args([
            "-exclude-local=false",
            "-exclude-srcport=9990",
            "-flush-interval=100ms",
            "-stats-interval=200ms",
        ])
        .start();
    let out = agent.output.clone();
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    // 60 connections: 121 sockets to archive, far more than 64 descriptors.
    let pump = busy_connections(&ns, &listener, 60);
    agent.wait_for_stats(WAIT, "creations waiting for descriptors", |s| {
        s.get("open") > 0
    });
    for i in 0..8 {
        match ns.http_get(METRICS_PORT, "/metrics") {
            Ok((200, body)) => {
                // The refused creations are visible where they matter.
                let open_errors = body
                    .lines()
                    .find_map(|l| l.strip_prefix("tcpinfo_error_total{type=\"open\"} "))
                    .and_then(|v| v.parse::<f64>().ok());
                assert!(open_errors.is_some_and(|n| n > 0.0), "scrape {i}: {body}");
            }
            other => panic!("scrape {i} while descriptors ran out: {other:?}"),
        }
    }
    // Closing the connections gives the descriptors back: every one is
    // written, none dropped.
    let conns = pump.stop();
    drop(conns);
    drop(listener);
    wait_until(WAIT, "a file per socket", || {
        archive_files(&out).len() >= 121
    });
    let fin = agent.terminate();
    assert_eq!(fin.get("dropped"), 0, "{fin:?}");
    check_archive(&out, &fin);
}

#[test]
fn the_tmpfs_guard_unmounts() {
    let disk = Tmpfs::new("size=1m");
    let mount = disk.mount.clone();
    drop(disk);
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&*mount.to_string_lossy()));
}
