//! Out of file descriptors, the agent keeps polling, counts the failed
//! opens, retries, and loses nothing once descriptors are available again.
//! (Raising a running agent's limit with `prlimit --pid` is refused on some
//! kernels, so the pressure is relieved by closing connections.)

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use harness::archive::archive_files;
use harness::traffic::Connection;
use harness::{wait_for_ok, wait_until, Agent, Netns};

fn field(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {line:?}"))
}

#[test]
fn running_out_of_descriptors_is_counted_and_retried_without_loss() {
    let ns = Netns::new();
    // A limit far below what the connections need: stdio, the netlink
    // socket and a handful of files.
    let mut agent = Agent::builder()
        .netns(&ns)
        .wrapped_in("prlimit", &["--nofile=24:24", "--"])
        .args([
            "-exclude-local=false",
            "-flush-interval=100ms",
            "-stats-interval=200ms",
        ])
        .start();
    let out = agent.output.clone();
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let last_stats = |agent: &Agent, prefix: &str| -> Option<String> {
        agent.log().into_iter().rev().find(|l| l.contains(prefix))
    };
    wait_until(Duration::from_secs(10), "the agent to poll", || {
        last_stats(&agent, "stats: ").is_some()
    });

    // 40 connections: 81 sockets to archive (both ends and the listener).
    let pairs: Vec<Connection> =
        ns.enter(|| (0..40).map(|_| Connection::open(&listener)).collect());
    wait_until(
        Duration::from_secs(10),
        "failed opens to be counted",
        || last_stats(&agent, "stats: ").is_some_and(|l| field(&l, "open=") > 0),
    );
    let polls_then = field(&last_stats(&agent, "stats: ").unwrap(), "polls=");
    wait_until(Duration::from_secs(10), "polling to go on", || {
        field(&last_stats(&agent, "stats: ").unwrap(), "polls=") > polls_then + 20
    });

    // Closing the connections frees their files' descriptors: the closed
    // connections that never got a file are written then, and nothing is
    // dropped.
    drop(pairs);
    drop(listener);
    wait_for_ok(Duration::from_secs(30), "a file per connection", || {
        let files = archive_files(&out).len();
        if files >= 81 {
            return Ok(());
        }
        let log = agent.log();
        let warnings: Vec<&String> = log.iter().filter(|l| !l.contains("stats: ")).collect();
        Err(format!(
            "{files} files; {}; last warnings: {:?}",
            last_stats(&agent, "stats: ").unwrap_or_default(),
            &warnings[warnings.len().saturating_sub(8)..]
        ))
    });

    assert!(agent.stop(Duration::from_secs(15)).success());
    let fin = last_stats(&agent, "final stats: ").expect("final stats line");
    assert_eq!(field(&fin, "dropped="), 0, "{fin}");
    assert_eq!(field(&fin, "queued="), field(&fin, "written="), "{fin}");
    assert!(field(&fin, "open=") > 0, "{fin}");

    // At least ours: the agent sees every loopback socket in its namespace.
    let files = archive_files(&out);
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
