//! The complete archive: every connection's last line is the kernel's
//! destroy notice, with counters no poll could have seen; connections that
//! live less than one poll are archived on request, each exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use harness::agent::FAST;
use harness::archive::csv_rows;
use harness::archive::{
    bytes_received, info_state, live_segments_of, output_dir, read_all, state, Segment,
};
use harness::events::Collector;
use harness::traffic::Connection;
use harness::{wait_until, Agent, Netns};
use tcpinfo_eventsocket::{FlowEvent, TcpEvent};

/// An agent archiving everything (loopback included) in a namespace of
/// its own, with `extra` flags; the directory lives as long as the TempDir.
fn archiving_agent(extra: &[&str]) -> (Netns, tempfile::TempDir, PathBuf, Agent) {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    flags.extend_from_slice(extra);
    let agent = Agent::start(Some(&ns), &out, &flags);
    (ns, tmp, out, agent)
}

#[test]
fn the_last_line_is_the_destroy_notice_with_every_byte_sent() {
    let (ns, _tmp, out, mut agent) = archiving_agent(&[]);

    const CONNECTIONS: usize = 5;
    const SENT: usize = 64_000 + 777;
    // Archived (a poll saw them) before anything is sent.
    let (_listener, conns, server_cookies) = open_archived(&ns, &out, CONNECTIONS);
    for mut conn in conns {
        // Everything goes out right before the close: a 10 ms poll sees
        // at most part of it.
        conn.client.write_all(&[1u8; SENT]).unwrap();
        conn.client.shutdown(Shutdown::Write).unwrap();
        let mut received = Vec::new();
        conn.server.read_to_end(&mut received).unwrap();
        assert_eq!(received.len(), SENT);
    }
    agent.wait_for_stats(Duration::from_secs(10), "the closes", |s| {
        s.get("closed") >= 2 * CONNECTIONS as u64
    });
    agent.terminate();

    let segments = read_all(&out);
    for cookie in server_cookies {
        let seg = segments
            .iter()
            .find(|s| s.cookie() == cookie)
            .unwrap_or_else(|| panic!("an archive for {cookie:#x}"));
        seg.assert_metadata_first();
        let last = seg.snapshots().last().unwrap();
        assert_eq!(info_state(last), state::CLOSE, "{}", seg.uuid);
        // The client's FIN takes one sequence number too.
        assert_eq!(bytes_received(last), SENT as u64 + 1, "{}", seg.uuid);
    }
}

/// 2,000 short connections beside 1,000 long-lived ones; returns the
/// archive's segments, the events, the short connections' counter, and
/// the short connections' server port and client ports.
fn churn(archive_short: bool) -> (Vec<Segment>, Vec<FlowEvent>, f64, u16, BTreeSet<u16>) {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let socket = tmp.path().join("events.sock");
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    if archive_short {
        flags.push("-archive-short-connections");
    }
    let mut agent = Agent::builder()
        .netns(&ns)
        .output(&out)
        .uuid_prefix(harness::agent::UUID_PREFIX)
        .metrics_on(harness::metrics::METRICS_PORT)
        .eventsocket(&socket)
        .args(flags)
        .start();
    let events = Collector::connect(&socket);

    // Long-lived connections beside the churn, as on a busy server.
    let (_listener, _long) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let long: Vec<Connection> = (0..1000).map(|_| Connection::open(&listener)).collect();
        (listener, long)
    });
    let (short_port, short_clients) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for stream in listener.incoming().take(SHORT) {
                let mut stream = stream.unwrap();
                let mut request = [0u8; 4];
                stream.read_exact(&mut request).unwrap();
                stream.write_all(b"pong").unwrap();
            }
        });
        let mut clients = BTreeSet::new();
        for _ in 0..SHORT {
            let mut c = TcpStream::connect(target).unwrap();
            clients.insert(c.local_addr().unwrap().port());
            c.write_all(b"ping").unwrap();
            let mut reply = [0u8; 4];
            c.read_exact(&mut reply).unwrap();
        }
        server.join().unwrap();
        (target.port(), clients)
    });
    // Then nothing more closes for a stats interval.
    wait_until(Duration::from_secs(30), "the churn over", || {
        let closed: Vec<u64> = agent
            .stats_lines()
            .iter()
            .map(|s| s.get("closed"))
            .collect();
        matches!(closed.as_slice(), [.., a, b, c] if a == b && b == c)
    });
    let short = ns
        .scrape()
        .expect("metrics")
        .value(
            "tcpinfo_short_connections_total",
            &[("family", "ipv4"), ("remote_scope", "loopback")],
        )
        .unwrap();
    agent.terminate();
    (
        read_all(&out),
        events.events(),
        short,
        short_port,
        short_clients,
    )
}

const SHORT: usize = 2_000;

/// The short connections' ends in `segments`: (client ends, server ends).
fn short_ends<'a>(
    segments: &'a [Segment],
    port: u16,
    clients: &BTreeSet<u16>,
) -> (Vec<&'a Segment>, Vec<&'a Segment>) {
    let ends = |client: bool| {
        segments
            .iter()
            .filter(|seg| {
                let idm = harness::archive::idm(&seg.snapshots()[0]);
                let (ours, theirs) = if client {
                    (idm.dport(), idm.sport())
                } else {
                    (idm.sport(), idm.dport())
                };
                // The 4-tuple, not the port alone: a long-lived connection
                // may share a client port with a short one.
                ours == port && clients.contains(&theirs)
            })
            .collect::<Vec<_>>()
    };
    (ends(true), ends(false))
}

#[test]
fn short_connections_are_archived_once_each_with_their_final_snapshot() {
    let (segments, events, _, port, clients) = churn(true);
    let mut files_per_cookie: BTreeMap<u64, usize> = BTreeMap::new();
    for seg in &segments {
        seg.assert_metadata_first();
        assert_eq!(seg.sequence, 0, "{}", seg.uuid);
        *files_per_cookie.entry(seg.cookie()).or_default() += 1;
    }
    assert!(
        files_per_cookie.values().all(|&n| n == 1),
        "one file per connection, never a second .00000"
    );
    let (client_ends, _) = short_ends(&segments, port, &clients);
    assert!(
        client_ends.len() * 100 >= SHORT * 99,
        "{} of {SHORT} short connections archived",
        client_ends.len()
    );
    let mut by_uuid: BTreeMap<&str, Vec<TcpEvent>> = BTreeMap::new();
    for event in &events {
        by_uuid.entry(&event.uuid).or_default().push(event.event);
    }
    for seg in client_ends {
        let last = seg.snapshots().last().unwrap();
        assert_eq!(info_state(last), state::CLOSE, "{}", seg.uuid);
        assert_eq!(
            by_uuid.get(seg.uuid.as_str()).map(Vec::as_slice),
            Some(&[TcpEvent::Open, TcpEvent::Close][..]),
            "{}: one open, then one close",
            seg.uuid
        );
    }
    let opened_twice: Vec<(&&str, &Vec<TcpEvent>)> = by_uuid
        .iter()
        .filter(|(_, kinds)| kinds.iter().filter(|k| **k == TcpEvent::Open).count() != 1)
        .collect();
    assert!(
        opened_twice.is_empty(),
        "every connection announced open exactly once: {opened_twice:?}"
    );
}

#[test]
fn without_archiving_them_short_connections_are_counted() {
    let (segments, _, short, port, clients) = churn(false);
    let (client_ends, server_ends) = short_ends(&segments, port, &clients);
    // Every end of every short connection is either archived (a poll saw
    // it) or counted as short: both ends live in this namespace. (The
    // harness's own HTTP requests to /-/ready and /metrics are a few short
    // loopback connections more.)
    let accounted = short as usize + client_ends.len() + server_ends.len();
    assert!(
        (2 * SHORT..=2 * SHORT + 8).contains(&accounted),
        "short {short}, archived {} + {}",
        client_ends.len(),
        server_ends.len()
    );
    assert!(short as usize >= SHORT, "most ends were short: {short}");
}

/// Opens `n` loopback connections in `ns` and waits until the agent
/// archived them all (a poll saw them); returns the listener, the
/// connections and their server ends' cookies.
fn open_archived(
    ns: &Netns,
    out: &std::path::Path,
    n: usize,
) -> (TcpListener, Vec<Connection>, Vec<u64>) {
    let (listener, conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..n).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    });
    let cookies: Vec<u64> = conns
        .iter()
        .map(|c| harness::traffic::socket_cookie(&c.server))
        .collect();
    wait_until(Duration::from_secs(20), "the connections' files", || {
        cookies
            .iter()
            .all(|&c| !live_segments_of(out, c).is_empty())
    });
    (listener, conns, cookies)
}

/// [`open_archived`], then every connection closes at once.
fn open_archived_then_close_all(ns: &Netns, out: &std::path::Path, n: usize) -> Vec<u64> {
    open_archived(ns, out, n).2
}

#[test]
fn a_notice_flood_loses_no_close_and_every_file_completes() {
    // A receive buffer of a few notices: a burst of 400 closes overflows it.
    let (ns, _tmp, out, mut agent) = archiving_agent(&["-destroy-notices.buffer=4096"]);
    const N: usize = 200;
    let cookies = open_archived_then_close_all(&ns, &out, N);
    // Closed by notice or, for those whose notice was lost, by absence.
    agent.wait_for_stats(Duration::from_secs(20), "the closes", |s| {
        s.get("closed") >= 2 * N as u64
    });
    let log = agent.log_text();
    assert!(
        log.contains("the kernel dropped destroy notices"),
        "the flood overflowed the buffer: {log}"
    );
    let stats = agent.terminate();
    assert_eq!(stats.get("queued"), stats.get("written"));
    let segments = read_all(&out);
    for cookie in cookies {
        let seg = segments.iter().find(|s| s.cookie() == cookie).unwrap();
        seg.assert_metadata_first();
    }
    assert!(segments.iter().all(|s| s.sequence == 0));
}

#[test]
fn without_destroy_notices_connections_close_on_their_absence_as_before() {
    let (ns, _tmp, out, mut agent) = archiving_agent(&["-destroy-notices=false"]);
    let cookies = open_archived_then_close_all(&ns, &out, 3);
    agent.wait_for_stats(Duration::from_secs(10), "the closes", |s| {
        s.get("closed") >= 6
    });
    assert!(agent.log_text().contains("destroy notices off"));
    agent.terminate();
    let segments = read_all(&out);
    for cookie in cookies {
        let seg = segments.iter().find(|s| s.cookie() == cookie).unwrap();
        let last = seg.snapshots().last().unwrap();
        assert_ne!(
            info_state(last),
            state::CLOSE,
            "{}: no destroy notice, no TCP_CLOSE line",
            seg.uuid
        );
    }
}

/// The CSV M-Lab's tool makes of `archive` (plain or zstd JSON lines).
fn csv_of(name: &str, archive: &[u8]) -> Vec<u8> {
    let (rows, error) = csv_rows(name, archive);
    assert_eq!(error, None, "{name}");
    rows
}

#[test]
fn poll_gaps_count_the_polls_and_leave_the_csv_unchanged() {
    let (ns, _tmp, out, mut agent) = archiving_agent(&["-archive-poll-gaps"]);
    let (_listener, mut conn) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = Connection::open(&listener);
        (listener, conn)
    });
    let cookie = harness::traffic::socket_cookie(&conn.server);
    // Changes far apart: a quiet stretch between them is many polls.
    for round in 1..=3u64 {
        conn.exchange(1000);
        wait_until(Duration::from_secs(10), "the round in the archive", || {
            live_segments_of(&out, cookie).first().is_some_and(|s| {
                s.snapshots()
                    .iter()
                    .any(|r| bytes_received(r) >= 1000 * round)
            })
        });
        std::thread::sleep(Duration::from_millis(150));
    }
    drop(conn);
    agent.wait_for_stats(Duration::from_secs(10), "the closes", |s| {
        s.get("closed") >= 2
    });
    agent.terminate();

    let seg = read_all(&out)
        .into_iter()
        .find(|s| s.cookie() == cookie)
        .unwrap();
    let bytes = std::fs::read(&seg.path).unwrap();
    let text = zstd::decode_all(&bytes[..]).unwrap();
    let lines: Vec<serde_json::Value> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let time = |l: &serde_json::Value| {
        tcpinfo_archive::Timestamp::parse(l["Timestamp"].as_str().unwrap())
            .unwrap()
            .unix_millis()
    };
    assert!(lines[1].get("PollGap").is_none(), "none before the first");
    assert!(lines.len() >= 5, "{} lines", lines.len());
    let mut quiet = 0;
    for pair in lines[1..].windows(2) {
        let gap = &pair[1]["PollGap"];
        let polls = gap["Polls"].as_i64().expect("every later line has one");
        let ms = gap["Milliseconds"].as_i64().unwrap();
        assert_eq!(ms, time(&pair[1]) - time(&pair[0]), "{gap}");
        // Polls start 10 ms apart at the soonest (later when the machine
        // is busy): the time covers at least the polls counted.
        assert!(polls >= 1 && ms + 2 >= 10 * (polls - 1), "{gap}");
        if polls >= 10 {
            quiet += 1;
        }
    }
    assert!(quiet >= 2, "the quiet stretches show as many polls");

    // M-Lab's CSV of the file is the same with the key as without it.
    let plain: Vec<u8> = lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l.as_object_mut().unwrap().remove("PollGap");
            serde_json::to_string(&l).unwrap()
        })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes();
    let with_gaps = csv_of("with gaps", &text);
    assert!(with_gaps.len() > 100);
    assert_eq!(with_gaps, csv_of("without", &plain));
}
