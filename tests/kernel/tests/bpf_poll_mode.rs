//! `-poll.mode=bpf` against the real kernel: on one scripted workload
//! (connections that send, go idle, leave data unread, change a socket
//! option, half-close and close), an agent in BPF mode and one in dump
//! mode, side by side in one namespace, archive the same settled snapshots;
//! the change the BPF signature cannot see (an `INET_DIAG_SOCKOPT` flag set
//! on an idle socket) reaches the BPF agent's archive through its complete
//! dump, within -poll.full-interval. And without the privileges BPF needs,
//! the agent says so in one line and polls with dumps.
//!
//! The BPF agent's socket storage shows in every socket it has seen
//! (SKMEMINFO's optmem grows by it), so the dump agent beside it archives
//! one more snapshot per connection, when the BPF agent first sees it: the
//! two archives are compared on what they hold once each step settled,
//! not line by line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use harness::agent::FAST;
use harness::archive::{idm, output_dir, read_all, tcp_info_of};
use harness::traffic::{socket_cookie, Connection};
use harness::{wait_until, Agent, Netns};
use inetdiag::tcp_info::{BUSY_TIME, LAST_DATA_SENT, PMTU};
use nix::sys::socket::{setsockopt, sockopt};
use tcpinfo_archive::ArchivalRecord;

/// `INET_DIAG_SOCKOPT` (linux/inet_diag.h) and its `freebind` bit.
const INET_DIAG_SOCKOPT: usize = 22;
const FREEBIND: u8 = 1 << 2;

/// How often the BPF agent dumps in full in these tests.
const FULL_INTERVAL_MS: i64 = 500;

/// Time for every change of a step to reach both archives (thirty polls).
const SETTLE: Duration = Duration::from_millis(300);

fn flags(mode: &str) -> Vec<String> {
    let mut f: Vec<String> = FAST.iter().map(|s| s.to_string()).collect();
    f.push("-exclude-local=false".into());
    f.push(format!("-poll.mode={mode}"));
    f.push(format!("-poll.full-interval={FULL_INTERVAL_MS}ms"));
    f
}

fn start(ns: &Netns, out: &Path, mode: &str) -> Agent {
    let mut flags = flags(mode);
    // Two agents in one namespace: the BPF one serves metrics on a port of
    // its own, left out of the archives like the default one.
    if mode == "bpf" {
        flags.push("-prometheusx.listen-address=127.0.0.1:9991".into());
        flags.push("-exclude-srcport=9991".into());
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Agent::start(Some(ns), out, &flags)
}

/// What the change rule compares in a snapshot: the TCP state, tcp_info
/// up to `last_data_sent` and from `pmtu` up to `busy_time`, and every
/// other attribute whole.
type Compared = (u8, Vec<u8>, Vec<u8>, Vec<(usize, Vec<u8>)>);

fn compared(r: &ArchivalRecord) -> Compared {
    let info = tcp_info_of(r);
    let others = r
        .attributes
        .iter()
        .enumerate()
        .filter(|&(kind, _)| kind != inetdiag::INET_DIAG_INFO as usize)
        .filter_map(|(kind, a)| Some((kind, a.clone()?)))
        .collect();
    (
        idm(r).state(),
        info[..LAST_DATA_SENT].to_vec(),
        info[PMTU..BUSY_TIME.min(info.len())].to_vec(),
        others,
    )
}

/// Every connection's snapshots, by cookie.
fn snapshots_by_cookie(dir: &Path) -> BTreeMap<u64, Vec<ArchivalRecord>> {
    let mut by_cookie: BTreeMap<u64, Vec<ArchivalRecord>> = BTreeMap::new();
    for segment in read_all(dir) {
        segment.assert_metadata_first();
        by_cookie
            .entry(segment.cookie())
            .or_default()
            .extend(segment.snapshots().iter().cloned());
    }
    by_cookie
}

/// The connection's last snapshot at or before `at_ms`.
fn latest_at(records: &[ArchivalRecord], at_ms: i64) -> Option<&ArchivalRecord> {
    records
        .iter()
        .filter(|r| r.timestamp.unix_millis() <= at_ms)
        .max_by_key(|r| r.timestamp.unix_millis())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn bpf_mode_archives_the_changes_the_dump_mode_archives() {
    let ns = Netns::new();
    let tmp = output_dir();
    let (dump_out, bpf_out) = (tmp.path().join("dump"), tmp.path().join("bpf"));
    let mut dump = start(&ns, &dump_out, "dump");
    let mut bpf = start(&ns, &bpf_out, "bpf");
    // BPF must load here (root, kernel 6.18 with BTF): a fallback would
    // make this test compare the dump mode with itself.
    let line = bpf.wait_for_log(Duration::from_secs(10), "poll mode bpf");
    assert!(line.contains("poll mode bpf: a BPF iterator"), "{line}");

    let (listener, mut conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..3).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    });
    // The workload's connection ends (the agents' own start-up probes of
    // their metrics ports are connections too, not compared here).
    let workload: BTreeSet<u64> = conns
        .iter()
        .flat_map(|c| [socket_cookie(&c.client), socket_cookie(&c.server)])
        .collect();
    // The end of every step, once its changes settled: (name, unix ms).
    let mut marks: Vec<(&str, i64)> = Vec::new();
    let mut mark = |name: &'static str| {
        std::thread::sleep(SETTLE);
        marks.push((name, now_ms()));
    };
    mark("opened");

    // Data both ways through connection 0.
    conns[0].exchange(20_000);
    conns[0].server.write_all(&[7; 3_000]).unwrap();
    let mut back = [0; 3_000];
    conns[0].client.read_exact(&mut back).unwrap();
    mark("sent and received");

    // Connection 1: data left unread (receive queue, memory), then read.
    conns[1].client.write_all(&[1; 50_000]).unwrap();
    mark("left unread");
    let mut unread = vec![0; 50_000];
    conns[1].server.read_exact(&mut unread).unwrap();
    mark("read");

    // A TOS change on an idle socket (INET_DIAG_TOS): the signature sees it.
    setsockopt(&conns[0].client, sockopt::Ipv4Tos, &0x10).unwrap();
    mark("tos");

    // IP_FREEBIND on an idle socket: only INET_DIAG_SOCKOPT moves, which
    // the signature does not cover; the complete dump catches it.
    let freebind_cookie = socket_cookie(&conns[2].client);
    setsockopt(&conns[2].client, sockopt::IpFreebind, &true).unwrap();
    std::thread::sleep(Duration::from_millis(FULL_INTERVAL_MS as u64 * 2));
    mark("freebind");

    // Connection 1 half-closes (FIN_WAIT2 / CLOSE_WAIT), connection 0
    // closes (destroy notices).
    conns[1].client.shutdown(Shutdown::Write).unwrap();
    mark("half-closed");
    let closed = conns.remove(0);
    let closed_cookies = [socket_cookie(&closed.client), socket_cookie(&closed.server)];
    drop(closed);
    mark("closed");

    let dump_stats = dump.terminate();
    let bpf_stats = bpf.terminate();
    drop((listener, conns));

    let mut from_dump = snapshots_by_cookie(&dump_out);
    let mut from_bpf = snapshots_by_cookie(&bpf_out);
    from_dump.retain(|cookie, _| workload.contains(cookie));
    from_bpf.retain(|cookie, _| workload.contains(cookie));
    assert_eq!(from_dump.len(), 6, "three connections, two ends each");
    assert_eq!(
        from_dump.keys().collect::<BTreeSet<_>>(),
        from_bpf.keys().collect::<BTreeSet<_>>(),
        "the two modes archived different connections"
    );

    if std::env::var_os("BPF_TEST_DEBUG").is_some() {
        eprintln!("marks: {marks:?}");
        for (cookie, records) in &from_dump {
            for (mode, rs) in [("dump", records), ("bpf", &from_bpf[cookie])] {
                let line: Vec<_> = rs
                    .iter()
                    .map(|r| {
                        (
                            r.timestamp.unix_millis(),
                            idm(r).state(),
                            harness::archive::bytes_acked(r),
                            harness::archive::bytes_received(r),
                        )
                    })
                    .collect();
                eprintln!("{cookie:#x} {mode}: {line:?}");
            }
        }
    }
    // At the end of every step, every connection's last snapshot holds
    // what the change rule compares, identically in both archives. (A
    // snapshot's time is its poll's start, which on a loaded machine can
    // be some milliseconds before its reply was read: look a little before
    // the mark, well after the step's changes settled.)
    const GUARD_MS: i64 = 100;
    for (name, at) in &marks {
        for (cookie, records) in &from_dump {
            let d = latest_at(records, at - GUARD_MS);
            let b = latest_at(&from_bpf[cookie], at - GUARD_MS);
            match (d, b) {
                (None, None) => {}
                (Some(d), Some(b)) => assert_eq!(
                    compared(d),
                    compared(b),
                    "step {name:?}, connection {cookie:#x}: the settled snapshots differ"
                ),
                _ => panic!("step {name:?}, connection {cookie:#x}: archived by one mode only ({d:?} / {b:?})"),
            }
        }
    }
    // Both closed connections end on their destroy notice (state CLOSE).
    for cookie in closed_cookies {
        for (mode, archive) in [("dump", &from_dump), ("bpf", &from_bpf)] {
            let last = archive[&cookie].last().unwrap();
            assert_eq!(idm(last).state(), 7, "{mode}: {cookie:#x} did not close");
        }
    }

    // The change the signature cannot see: archived by the dump mode within
    // a poll or two, by the BPF mode within one full-dump interval.
    let first_freebind = |archive: &BTreeMap<u64, Vec<ArchivalRecord>>| {
        archive[&freebind_cookie]
            .iter()
            .find(|r| {
                r.attributes
                    .get(INET_DIAG_SOCKOPT)
                    .and_then(|a| a.as_deref())
                    .is_some_and(|a| a.first().is_some_and(|b| b & FREEBIND != 0))
            })
            .map(|r| r.timestamp.unix_millis())
            .expect("the freebind change archived")
    };
    let (seen_by_dump, seen_by_bpf) = (first_freebind(&from_dump), first_freebind(&from_bpf));
    let delay = seen_by_bpf - seen_by_dump;
    assert!(
        delay <= FULL_INTERVAL_MS + 100,
        "the BPF mode archived the SOCKOPT change {delay} ms after the dump mode (full dumps every {FULL_INTERVAL_MS} ms)"
    );

    let count = |a: &BTreeMap<u64, Vec<ArchivalRecord>>| a.values().map(Vec::len).sum::<usize>();
    eprintln!(
        "snapshots written: dump mode {}, bpf mode {}; SOCKOPT change delayed {delay} ms; bpf polls: {} change-only, {} complete, {} sockets reported",
        count(&from_dump),
        count(&from_bpf),
        bpf_stats.get("change_polls"),
        bpf_stats.get("full_dumps"),
        bpf_stats.get("change_reported"),
    );
    assert!(bpf_stats.get("change_polls") > 0);
    assert!(bpf_stats.get("full_dumps") > 0);
    assert_eq!(bpf_stats.get("errors"), 0, "{:?}", bpf_stats.0);
    assert_eq!(dump_stats.get("errors"), 0, "{:?}", dump_stats.0);
}

/// Without CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN the program cannot load:
/// one log line says so, and the agent archives with complete dumps.
#[test]
fn bpf_mode_without_bpf_privileges_falls_back_to_dumps_with_one_log_line() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let flags = flags("bpf");
    let mut agent = Agent::builder()
        .netns(&ns)
        .output(&out)
        .uuid_prefix(harness::agent::UUID_PREFIX)
        .wrapped_in(
            "setpriv",
            &[
                "--inh-caps=-bpf,-perfmon,-sys_admin",
                "--bounding-set=-bpf,-perfmon,-sys_admin",
                "--",
            ],
        )
        .args(&flags)
        .start();
    let line = agent.wait_for_log(Duration::from_secs(10), "poll mode bpf");
    assert!(
        line.contains("poll mode bpf unavailable (")
            && line.ends_with("polling with complete dumps"),
        "{line}"
    );

    let (listener, mut conn) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = Connection::open(&listener);
        (listener, conn)
    });
    conn.exchange(10_000);
    let cookie = socket_cookie(&conn.client);
    let started = Instant::now();
    wait_until(Duration::from_secs(10), "the connection archived", || {
        snapshots_by_cookie(&out)
            .get(&cookie)
            .is_some_and(|r| r.iter().any(|r| harness::archive::bytes_acked(r) >= 10_000))
    });
    let stats = agent.terminate();
    let log = agent.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("poll mode bpf")).count(),
        1,
        "{log:#?}"
    );
    assert!(!stats.0.contains_key("change_polls"), "{:?}", stats.0);
    assert_eq!(stats.get("errors"), 0);
    drop((listener, conn, started));
}
