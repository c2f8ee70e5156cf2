//! Out of file descriptors, the agent keeps polling, counts the failed
//! opens, retries, and loses nothing once descriptors are available again.
//! (Raising a running agent's limit with `prlimit --pid` is refused on some
//! kernels, so the pressure is relieved by closing connections.)

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

fn archive_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

#[test]
fn running_out_of_descriptors_is_counted_and_retried_without_loss() {
    let out = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    // A limit far below what the connections need: stdio, the netlink
    // socket and a handful of files.
    let mut agent = Command::new("prlimit")
        .args(["--nofile=24:24", "--"])
        .arg(env!("CARGO_BIN_EXE_tcp-info"))
        .args([
            "-exclude-local=false",
            "-flush-interval=100ms",
            "-stats-interval=200ms",
        ])
        .arg(format!("-output={}", out.path().display()))
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit (util-linux) runs the agent");
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let log = Arc::clone(&log);
        let stderr = agent.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap().push(line);
            }
        })
    };
    let last_stats = |prefix: &str| -> Option<String> {
        log.lock()
            .unwrap()
            .iter()
            .rev()
            .find(|l| l.contains(prefix))
            .cloned()
    };
    wait_for("the agent to poll", Duration::from_secs(10), || {
        last_stats("stats: ").is_some()
    });

    // 40 connections: 81 sockets to archive (both ends and the listener).
    let mut pairs = Vec::new();
    for _ in 0..40 {
        let client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (server, _) = listener.accept().unwrap();
        pairs.push((client, server));
    }
    wait_for(
        "failed opens to be counted",
        Duration::from_secs(10),
        || last_stats("stats: ").is_some_and(|l| field(&l, "open=") > 0),
    );
    let polls_then = field(&last_stats("stats: ").unwrap(), "polls=");
    wait_for("polling to go on", Duration::from_secs(10), || {
        field(&last_stats("stats: ").unwrap(), "polls=") > polls_then + 20
    });

    // Closing the connections frees their files' descriptors: the closed
    // connections that never got a file are written then, and nothing is
    // dropped.
    drop(pairs);
    drop(listener);
    wait_for("a file per connection", Duration::from_secs(10), || {
        archive_files(out.path()).len() >= 81
    });

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::SIGTERM,
    )
    .unwrap();
    assert!(agent.wait().unwrap().success());
    reader.join().unwrap();
    let fin = last_stats("final stats: ").expect("final stats line");
    assert_eq!(field(&fin, "dropped="), 0, "{fin}");
    assert_eq!(field(&fin, "queued="), field(&fin, "written="), "{fin}");
    assert!(field(&fin, "open=") > 0, "{fin}");

    // At least ours: the agent sees every loopback socket on the machine.
    let files = archive_files(out.path());
    assert!(files.len() >= 81, "{} files", files.len());
    let mut snapshots = 0;
    for f in &files {
        let mut text = String::new();
        zstd::stream::read::Decoder::new(std::fs::File::open(f).unwrap())
            .unwrap()
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let mut lines = text.lines();
        assert!(
            lines.next().unwrap().contains("\"Metadata\""),
            "{}",
            f.display()
        );
        snapshots += lines.count() as u64;
    }
    assert_eq!(snapshots, field(&fin, "written="));
}
