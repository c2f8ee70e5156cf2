//! Every signal that would kill the agent by default either stops it the
//! orderly way (exit 0, every file finished with every queued snapshot,
//! the `final stats` line) or is ignored and logged once; SIGHUP reloads
//! the listen policy, and a policy file turned into a FIFO is rejected at
//! once with the previous policy kept.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use harness::agent::FAST;
use harness::archive::{archive_files, assert_complete_archive, output_dir};
use harness::metrics::METRICS_PORT;
use harness::process::Signal;
use harness::traffic::Connection;
use harness::{wait_until, Agent, Netns, Stats};

const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// Loopback connections in `ns` for the agent to archive.
fn connections(ns: &Netns, n: usize) -> (TcpListener, Vec<Connection>) {
    ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns = (0..n).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    })
}

/// An agent archiving everything in `ns`, once it has a file per socket
/// (`files` of them) and has logged its first stats line.
fn archiving_agent(ns: &Netns, out: &Path, files: usize, extra: &[&str]) -> Agent {
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    flags.extend_from_slice(extra);
    let agent = Agent::start(Some(ns), out, &flags);
    wait_until(Duration::from_secs(15), "a file per socket", || {
        archive_files(out).len() >= files
    });
    wait_until(Duration::from_secs(10), "a stats line", || {
        !agent.stats_lines().is_empty()
    });
    agent
}

/// The agent stopped the orderly way: exit 0, a `final stats` line, and
/// every file complete, starting with its metadata, holding exactly what
/// the agent reports queued and written.
fn assert_finished(what: &str, status: ExitStatus, log: &[String], out: &Path, files: usize) {
    assert!(status.success(), "{what}: exited with {status}: {log:#?}");
    let last = log
        .iter()
        .find(|l| l.contains("final stats:"))
        .unwrap_or_else(|| panic!("{what}: no final stats line in {log:#?}"));
    let stats = Stats::parse(last).unwrap();
    let paths = assert_complete_archive(out, &stats, files, what);
    assert_eq!(stats.get("files_closed"), paths.len() as u64, "{what}");
}

#[test]
fn every_stop_signal_finishes_every_file_and_logs_final_stats() {
    let ns = Netns::new();
    let (_listener, _conns) = connections(&ns, 10);
    // Both ends of each connection, and the listener.
    let files = 21;
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGXCPU,
        Signal::SIGPWR,
    ] {
        let tmp = output_dir();
        let out = tmp.path().join("out");
        let mut agent = archiving_agent(&ns, &out, files, &[]);
        let (status, log) = agent.signal_and_wait(signal, EXIT_TIMEOUT);
        let what = signal.as_str();
        assert!(
            log.iter()
                .any(|l| l.ends_with(&format!("{what}: finishing every file and stopping"))),
            "{what}: {log:#?}"
        );
        assert_finished(what, status, &log, &out, files);
    }
}

/// Sends a signal nix has no name for (a real-time one).
fn send_raw(pid: i32, signal: i32) {
    // SAFETY: kill(2) reads no memory of ours; any pid and signal number
    // are valid arguments (at worst it fails with an errno).
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

#[test]
fn ignored_signals_are_logged_once_each_and_archiving_goes_on() {
    let ns = Netns::new();
    let (_listener, _conns) = connections(&ns, 5);
    let files = 11;
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut agent = archiving_agent(&ns, &out, files, &[]);
    let ignored = [
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGALRM,
        Signal::SIGPIPE,
        Signal::SIGVTALRM,
        Signal::SIGPROF,
        Signal::SIGIO,
        Signal::SIGXFSZ,
        Signal::SIGHUP,
    ];
    let realtime = libc::SIGRTMIN() + 1;
    for _ in 0..3 {
        for signal in ignored {
            agent.signal(signal);
        }
        send_raw(agent.pid(), realtime);
    }
    let names: Vec<&str> = ignored
        .iter()
        .map(|s| s.as_str())
        .chain(["SIGRTMIN+1"])
        .collect();
    for name in &names {
        agent.wait_for_log(Duration::from_secs(5), &format!("{name} ignored"));
    }
    // Still polling and writing: more stats lines come.
    let seen = agent.stats_lines().len();
    wait_until(Duration::from_secs(10), "two more stats lines", || {
        agent.stats_lines().len() >= seen + 2
    });
    let (status, log) = agent.signal_and_wait(Signal::SIGTERM, EXIT_TIMEOUT);
    for name in &names {
        let lines: Vec<&String> = log
            .iter()
            .filter(|l| l.contains(&format!(" {name} ignored")))
            .collect();
        assert_eq!(lines.len(), 1, "{name}: {lines:#?}");
    }
    assert!(
        log.iter().any(|l| l.ends_with(
            "SIGHUP ignored (no -listen-policy to reload); SIGTERM, SIGINT or SIGQUIT stop the agent"
        )),
        "{log:#?}"
    );
    assert_finished("after ignored signals", status, &log, &out, files);
}

#[test]
fn sighup_or_reload_of_a_policy_turned_into_a_fifo_is_rejected_at_once_and_the_policy_kept() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[[forbid]]\nport = 23\n").unwrap();
    let mut agent = Agent::builder()
        .netns(&ns)
        .metrics_on(METRICS_PORT)
        .arg(format!("-listen-policy={}", policy.display()))
        .start();
    std::fs::remove_file(&policy).unwrap();
    nix::unistd::mkfifo(&policy, nix::sys::stat::Mode::S_IRWXU).unwrap();

    let started = Instant::now();
    agent.signal(Signal::SIGHUP);
    let line = agent.wait_for_log(Duration::from_secs(5), "reload rejected");
    assert!(
        line.ends_with(&format!(
            "listen policy: reload rejected, keeping the previous policy (1 rules): {}: is a FIFO, not a regular file",
            policy.display()
        )),
        "{line}"
    );
    let addr: SocketAddr = format!("127.0.0.1:{METRICS_PORT}").parse().unwrap();
    let (status, body) = ns.request(addr, "POST", "/-/reload").unwrap();
    assert_eq!(status, 500);
    assert_eq!(
        body,
        format!(
            "reload rejected, previous policy kept: {}: is a FIFO, not a regular file\n",
            policy.display()
        )
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let scrape = ns.scrape().expect("/metrics answers");
    assert_eq!(
        scrape.value("tcpinfo_listening_policy_rules", &[]),
        Some(1.0)
    );
    assert_eq!(
        scrape.value(
            "tcpinfo_listening_policy_reloads_total",
            &[("result", "failure")]
        ),
        Some(2.0)
    );
    let (status, log) = agent.signal_and_wait(Signal::SIGTERM, EXIT_TIMEOUT);
    assert!(status.success(), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("final stats:")), "{log:#?}");
}
