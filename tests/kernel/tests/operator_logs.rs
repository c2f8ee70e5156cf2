//! What an operator reads at start and on a first run: the version and
//! every effective flag, once; the structured formats; and, when only
//! local connections exist, which flag would archive them.

use harness::agent::{agent_binary, FAST};
use harness::archive::output_dir;
use harness::traffic::Connection;
use harness::{Agent, Netns};
use std::net::TcpListener;

const NOTICE: &str = "-exclude-local=false archives them";

/// Only loopback connections: the default `-exclude-local` leaves them out,
/// and the agent says so once (here when it stops, before its 10 s).
#[test]
fn only_local_connections_are_named_once_with_the_flag_that_archives_them() {
    let ns = Netns::new();
    let tmp = output_dir();
    let (_listener, _conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..2).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    });
    let mut agent = Agent::start(Some(&ns), &tmp.path().join("a"), &FAST);
    agent.terminate();
    let log = agent.log_text();
    assert_eq!(log.matches(NOTICE).count(), 1, "{log}");
    // Two connections (both ends), their listener and the agent's own
    // metrics listener: every one local.
    assert!(
        log.contains(" sockets seen so far were excluded as local"),
        "{log}"
    );

    // Archived: nothing to explain.
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    let mut agent = Agent::start(Some(&ns), &tmp.path().join("b"), &flags);
    agent.terminate();
    assert!(!agent.log_text().contains(NOTICE), "{}", agent.log_text());
}

/// `-log.format=json`: every line one JSON object with `ts` (fixed width),
/// `level` and `msg`; the version and the effective flags logged once; Go's
/// `-logx.debug` and `-trace` accepted.
#[test]
fn json_logs_name_the_version_and_every_effective_flag_once() {
    let ns = Netns::new();
    let tmp = output_dir();
    let mut flags = FAST.to_vec();
    flags.extend(["-log.format=json", "-logx.debug", "-trace", "-reps=0"]);
    let mut agent = Agent::start(Some(&ns), &tmp.path().join("out"), &flags);
    agent.terminate();
    let lines = agent.log();
    let mut messages = Vec::new();
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-30T01:30:40.123Z".len(), "{line}");
        assert!(["debug", "info", "warn", "error"].contains(&v["level"].as_str().unwrap()));
        messages.push(v["msg"].as_str().unwrap().to_owned());
    }
    let version = format!("tcp-info {} (commit ", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        messages.iter().filter(|m| m.starts_with(&version)).count(),
        1,
        "{messages:#?}"
    );
    let flag_lines: Vec<&String> = messages
        .iter()
        .filter(|m| m.starts_with("flags: "))
        .collect();
    assert_eq!(flag_lines.len(), 1, "{messages:#?}");
    for part in [
        "-logx.debug=true",
        "-trace=true",
        "-log.level=info",
        "-poll-interval=10ms",
        "-exclude-local=true",
        "-prometheusx.listen-address=:9990",
    ] {
        assert!(
            flag_lines[0].split(' ').any(|p| p == part),
            "{part} in {}",
            flag_lines[0]
        );
    }
    assert!(
        messages.iter().any(|m| m.starts_with("-trace: ")),
        "{messages:#?}"
    );
}

/// `-log.level=warn` leaves out the info lines (the start-up lines too);
/// `-log.format=logfmt` writes `ts=… level=… msg=…`.
#[test]
fn log_level_warn_leaves_out_info_lines() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let output = ns
        .command(agent_binary())
        .args(FAST)
        .arg(format!("-output={}", out.display()))
        .args(["-reps=5", "-log.level=warn", "-log.format=logfmt", "-trace"])
        .output()
        .unwrap();
    let log = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{log}");
    assert!(!log.is_empty(), "the -trace warning is logged");
    for line in log.lines() {
        assert!(
            line.starts_with("ts=") && line.contains(" level=warn msg="),
            "{line}"
        );
    }
}
