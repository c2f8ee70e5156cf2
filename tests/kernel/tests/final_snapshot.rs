//! The complete archive: every connection's last line is the kernel's
//! destroy notice, with counters no poll could have seen; connections that
//! live less than one poll are archived on request, each exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use harness::agent::FAST;
use harness::archive::{bytes_received, info_state, live_segments_of, output_dir, read_all, state};
use harness::traffic::Connection;
use harness::{wait_until, Agent, Netns};

#[test]
fn the_last_line_is_the_destroy_notice_with_every_byte_sent() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    flags.push("-exclude-local=false");
    let mut agent = Agent::start(Some(&ns), &out, &flags);

    const CONNECTIONS: usize = 5;
    const SENT: usize = 64_000 + 777;
    let (_listener, conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..CONNECTIONS)
            .map(|_| Connection::open(&listener))
            .collect();
        (listener, conns)
    });
    let server_cookies: Vec<u64> = conns
        .iter()
        .map(|c| harness::traffic::socket_cookie(&c.server))
        .collect();
    // Archived (a poll saw them) before anything is sent.
    wait_until(Duration::from_secs(10), "the connections' files", || {
        server_cookies
            .iter()
            .all(|&c| !live_segments_of(&out, c).is_empty())
    });
    for mut conn in conns {
        // Everything goes out right before the close: a 10 ms poll sees
        // at most part of it.
        conn.client.write_all(&[1u8; SENT]).unwrap();
        conn.client.shutdown(Shutdown::Write).unwrap();
        let mut received = Vec::new();
        conn.server.read_to_end(&mut received).unwrap();
        assert_eq!(received.len(), SENT);
    }
    wait_until(Duration::from_secs(10), "every connection closed", || {
        agent
            .stats_lines()
            .last()
            .is_some_and(|s| s.get("closed") >= 2 * CONNECTIONS as u64)
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

#[test]
fn short_connections_are_archived_once_each_with_their_final_snapshot() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    flags.extend(["-exclude-local=false", "-archive-short-connections"]);
    let mut agent = Agent::start(Some(&ns), &out, &flags);

    // Long-lived connections beside the churn, as on a busy server.
    let (_listener, _long) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let long: Vec<Connection> = (0..50).map(|_| Connection::open(&listener)).collect();
        (listener, long)
    });
    const SHORT: usize = 2_000;
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
    // Each short connection is a client and a server socket; the churn's
    // listener closes too. Then nothing more closes for a stats interval.
    wait_until(Duration::from_secs(30), "the churn closed", || {
        let closed: Vec<u64> = agent
            .stats_lines()
            .iter()
            .map(|s| s.get("closed"))
            .collect();
        matches!(closed.as_slice(), [.., a, b] if a == b && *b >= 2 * SHORT as u64)
    });
    agent.terminate();

    let segments = read_all(&out);
    let mut files_per_cookie: BTreeMap<u64, usize> = BTreeMap::new();
    let mut archived_clients = 0;
    for seg in &segments {
        seg.assert_metadata_first();
        assert_eq!(seg.sequence, 0, "{}", seg.uuid);
        *files_per_cookie.entry(seg.cookie()).or_default() += 1;
        let first = &seg.snapshots()[0];
        let idm = harness::archive::idm(first);
        // A client end of the churn (its port may also serve a long-lived
        // connection to another address: the 4-tuple is what is unique).
        if idm.dport() == short_port && short_clients.contains(&idm.sport()) {
            let last = seg.snapshots().last().unwrap();
            assert_eq!(info_state(last), state::CLOSE, "{}", seg.uuid);
            archived_clients += 1;
        }
    }
    assert!(
        files_per_cookie.values().all(|&n| n == 1),
        "one file per connection, never a second .00000"
    );
    assert!(
        archived_clients * 100 >= SHORT * 99,
        "{archived_clients} of {SHORT} short connections archived"
    );
}

/// Opens `n` loopback connections in `ns`, waits until the agent archived
/// them all, then closes them all at once; returns the server cookies.
fn open_archived_then_close_all(ns: &Netns, out: &std::path::Path, n: usize) -> Vec<u64> {
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
    drop(conns);
    drop(listener);
    cookies
}

#[test]
fn a_notice_flood_loses_no_close_and_every_file_completes() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    // A receive buffer of a few notices: a burst of 400 closes overflows it.
    flags.extend(["-exclude-local=false", "-destroy-notices.buffer=4096"]);
    let mut agent = Agent::start(Some(&ns), &out, &flags);
    const N: usize = 200;
    let cookies = open_archived_then_close_all(&ns, &out, N);
    // Closed by notice or, for those whose notice was lost, by absence.
    wait_until(Duration::from_secs(20), "every connection closed", || {
        agent
            .stats_lines()
            .last()
            .is_some_and(|s| s.get("closed") >= 2 * N as u64)
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
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    flags.extend(["-exclude-local=false", "-destroy-notices=false"]);
    let mut agent = Agent::start(Some(&ns), &out, &flags);
    let cookies = open_archived_then_close_all(&ns, &out, 3);
    wait_until(Duration::from_secs(10), "every connection closed", || {
        agent
            .stats_lines()
            .last()
            .is_some_and(|s| s.get("closed") >= 6)
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
    let mut reader = tcpinfo_archive::ArchiveReader::new(name.to_string(), archive).unwrap();
    let mut all = Vec::new();
    let mut out = Vec::new();
    tcpinfo_archive::CsvConverter::new()
        .convert(&mut reader, &mut out, 1 << 16, |rows| {
            all.extend_from_slice(rows);
            rows.clear();
            Ok(())
        })
        .unwrap();
    all
}

#[test]
fn poll_gaps_count_the_polls_and_leave_the_csv_unchanged() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    flags.extend(["-exclude-local=false", "-archive-poll-gaps"]);
    let mut agent = Agent::start(Some(&ns), &out, &flags);
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
    wait_until(Duration::from_secs(10), "the close", || {
        agent
            .stats_lines()
            .last()
            .is_some_and(|s| s.get("closed") >= 2)
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
        // One poll every 10 ms: the count and the time agree.
        assert!(polls >= 1 && (ms - 10 * polls).abs() <= 10 + polls, "{gap}");
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
