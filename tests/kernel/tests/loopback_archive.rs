//! Loopback connections with `-exclude-local=false`: what their archives
//! hold, from the metadata line to the closing states, and when new
//! segments begin. Each test runs the agent in its own network namespace so
//! that it sees exactly the test's sockets.

use std::collections::{BTreeSet, HashMap};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

use harness::agent::{FAST, UUID_PREFIX};
use harness::archive::{
    archive_files, bytes_acked, bytes_received, frames, idm, info_state, live_segments_of,
    output_dir, parse_file_name, read_all, read_segment, state, Segment,
};
use harness::traffic::{socket_cookie, Connection, Pump};
use harness::{wait_until, Agent, Netns};

const LOOPBACK_FLAGS: [&str; 5] = [FAST[0], FAST[1], FAST[2], FAST[3], "-exclude-local=false"];

fn expected_uuid(cookie: u64) -> String {
    format!("{UUID_PREFIX}_{cookie:016X}")
}

/// Rank of a state in a connection's life, for checking that the archived
/// states never go backwards.
fn life_rank(state: u8) -> u8 {
    match state {
        state::SYN_SENT => 0,
        state::ESTABLISHED => 1,
        state::FIN_WAIT1 | state::CLOSE_WAIT => 2,
        state::FIN_WAIT2 | state::CLOSING | state::LAST_ACK => 3,
        // The destroy notice: the socket's final snapshot.
        state::CLOSE => 4,
        other => panic!("unexpected TCP state {other}"),
    }
}

#[test]
fn loopback_connections_get_one_archive_each_from_metadata_through_closing_states() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut agent = Agent::start(Some(&ns), &out, &LOOPBACK_FLAGS);

    let (listener, mut conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..3).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    });

    // The kernel's cookies, as `ss` reports them while the connections are
    // open, must be what the UUIDs carry.
    let ss = ns.ss_cookies();
    let mut client_cookies = Vec::new();
    let mut server_cookies = Vec::new();
    for c in &conns {
        let (local, peer) = (
            c.client.local_addr().unwrap(),
            c.client.peer_addr().unwrap(),
        );
        let client = ss[&(local, peer)];
        let server = ss[&(peer, local)];
        assert_eq!(
            client,
            socket_cookie(&c.client),
            "ss and SO_COOKIE disagree"
        );
        assert_eq!(
            server,
            socket_cookie(&c.server),
            "ss and SO_COOKIE disagree"
        );
        client_cookies.push(client);
        server_cookies.push(server);
    }

    // Data in rounds; after each, wait until the archive shows it, so that
    // the counters are seen growing snapshot by snapshot.
    const ROUND: usize = 20_000;
    const ROUNDS: usize = 3;
    for round in 1..=ROUNDS {
        for c in &mut conns {
            c.exchange(ROUND);
        }
        let want = (round * ROUND) as u64;
        wait_until(
            Duration::from_secs(10),
            "the round's bytes in the archive",
            || {
                server_cookies.iter().all(|&cookie| {
                    live_segments_of(&out, cookie)
                        .first()
                        .is_some_and(|s| s.snapshots().iter().any(|r| bytes_received(r) >= want))
                })
            },
        );
    }

    // Half-close from the client: FIN_WAIT2 there, CLOSE_WAIT on the server.
    for c in &conns {
        c.client.shutdown(Shutdown::Write).unwrap();
    }
    wait_until(
        Duration::from_secs(10),
        "the half-close in the archive",
        || {
            let seen = |cookie: u64, st: u8| {
                live_segments_of(&out, cookie)
                    .first()
                    .is_some_and(|s| s.snapshots().iter().any(|r| info_state(r) == st))
            };
            client_cookies.iter().all(|&c| seen(c, state::FIN_WAIT2))
                && server_cookies.iter().all(|&c| seen(c, state::CLOSE_WAIT))
        },
    );
    drop(conns);
    // Every connection socket is gone (the clients sit in TIME_WAIT, which
    // is not dumped): the agent closes their files.
    wait_until(Duration::from_secs(10), "the agent to see 6 closes", || {
        agent
            .stats_lines()
            .last()
            .is_some_and(|s| s.get("closed") >= 6)
    });
    let listener_cookie = socket_cookie(&listener);
    let final_stats = agent.terminate();
    assert_eq!(final_stats.get("errors"), 0);

    let segments = read_all(&out);
    let files: BTreeSet<u64> = segments.iter().map(|s| s.cookie()).collect();
    let expected: BTreeSet<u64> = client_cookies
        .iter()
        .chain(&server_cookies)
        .copied()
        .chain([listener_cookie])
        .collect();
    assert_eq!(files, expected, "one archive per socket, none other");
    assert_eq!(segments.len(), expected.len(), "one segment per socket");

    let by_cookie: HashMap<u64, &Segment> = segments.iter().map(|s| (s.cookie(), s)).collect();
    let total = (ROUNDS * ROUND) as u64;
    for (&cookie, is_client) in client_cookies
        .iter()
        .map(|c| (c, true))
        .chain(server_cookies.iter().map(|c| (c, false)))
    {
        let seg = by_cookie[&cookie];
        seg.assert_metadata_first();
        assert_eq!(seg.sequence, 0);
        assert_eq!(seg.uuid, expected_uuid(cookie));
        let snaps = seg.snapshots();
        assert!(
            snaps.len() >= 4,
            "{}: only {} snapshots",
            seg.uuid,
            snaps.len()
        );
        assert_eq!(info_state(&snaps[0]), state::ESTABLISHED);
        let mut rank = 0;
        let mut counter = 0;
        for r in snaps {
            assert_eq!(idm(r).cookie(), cookie, "RawIDM carries the cookie");
            assert_eq!(idm(r).state(), info_state(r));
            let now = life_rank(info_state(r));
            assert!(now >= rank, "{}: states went backwards", seg.uuid);
            rank = now;
            let c = if is_client {
                bytes_acked(r)
            } else {
                bytes_received(r)
            };
            assert!(c >= counter, "{}: byte counter went backwards", seg.uuid);
            counter = c;
        }
        let established: Vec<u64> = snaps
            .iter()
            .filter(|r| info_state(r) == state::ESTABLISHED)
            .map(|r| {
                if is_client {
                    bytes_acked(r)
                } else {
                    bytes_received(r)
                }
            })
            .collect();
        let distinct: BTreeSet<u64> = established.iter().copied().collect();
        assert!(
            distinct.len() >= ROUNDS,
            "{}: counters seen at {distinct:?}",
            seg.uuid
        );
        // bytes_acked counts the SYN; bytes_received does not.
        let last = *established.last().unwrap();
        assert!(last >= total, "{}: last counter {last} < {total}", seg.uuid);
        // The last line is the kernel's destroy notice: the final tcp_info,
        // every byte counted.
        let last_line = snaps.last().unwrap();
        assert_eq!(info_state(last_line), state::CLOSE, "{}", seg.uuid);
        let final_counter = if is_client {
            bytes_acked(last_line)
        } else {
            bytes_received(last_line)
        };
        assert!(
            final_counter >= total,
            "{}: final {final_counter}",
            seg.uuid
        );
        let closing: BTreeSet<u8> = snaps.iter().map(info_state).filter(|&s| s != 1).collect();
        if is_client {
            assert!(
                closing.contains(&state::FIN_WAIT2),
                "{}: {closing:?}",
                seg.uuid
            );
        } else {
            assert!(
                closing.contains(&state::CLOSE_WAIT),
                "{}: {closing:?}",
                seg.uuid
            );
        }
    }
    let listener_seg = by_cookie[&listener_cookie];
    listener_seg.assert_metadata_first();
    assert!(listener_seg
        .snapshots()
        .iter()
        .all(|r| idm(r).state() == state::LISTEN));
}

#[test]
fn idle_connection_adds_no_lines_across_flushes() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut agent = Agent::start(Some(&ns), &out, &LOOPBACK_FLAGS);

    let (_listener, mut idle, busy) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let idle = Connection::open(&listener);
        let busy = Connection::open(&listener);
        (listener, idle, busy)
    });
    idle.exchange(1000);
    let idle_cookie = socket_cookie(&idle.server);
    let busy_cookie = socket_cookie(&busy.server);
    // The busy connection's file gains a frame at every flush: it is the
    // clock that proves flushes happened.
    let pump = Pump::start(vec![busy], 1000, Duration::from_millis(5));
    let frames_of = |cookie: u64| -> usize {
        archive_files(&out)
            .iter()
            .find(|p| parse_file_name(p).0.ends_with(&format!("_{cookie:016X}")))
            .map(|p| frames(&std::fs::read(p).unwrap()).0.len())
            .unwrap_or(0)
    };
    let lines_of = |cookie: u64| -> usize {
        live_segments_of(&out, cookie)
            .first()
            .map_or(0, |s| s.records.len())
    };
    let wait_flushes = |n: usize| {
        let start = frames_of(busy_cookie);
        wait_until(Duration::from_secs(10), "busy connection flushes", || {
            frames_of(busy_cookie) >= start + n
        });
    };

    // Let the exchange and its delayed ACK settle into the archive.
    wait_until(
        Duration::from_secs(10),
        "idle connection's data archived",
        || {
            live_segments_of(&out, idle_cookie)
                .first()
                .is_some_and(|s| s.snapshots().iter().any(|r| bytes_received(r) >= 1000))
        },
    );
    wait_flushes(2);
    let settled_lines = lines_of(idle_cookie);
    let settled_frames = frames_of(idle_cookie);
    assert!(settled_lines >= 2, "metadata and at least one snapshot");

    wait_flushes(4);
    assert_eq!(
        lines_of(idle_cookie),
        settled_lines,
        "an idle connection must not add lines"
    );
    assert_eq!(
        frames_of(idle_cookie),
        settled_frames,
        "an idle connection must not add frames"
    );
    assert!(
        lines_of(busy_cookie) > settled_lines,
        "the busy one keeps writing"
    );
    drop(pump);
    let stats = agent.terminate();
    // ~100 polls a second saw the idle connection; few were written.
    assert!(stats.get("polls") > 50, "{stats:?}");
    assert!(stats.get("records") > stats.get("queued"), "{stats:?}");
}

#[test]
fn rotation_starts_numbered_segments_each_with_its_metadata_line() {
    let ns = Netns::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = LOOPBACK_FLAGS.to_vec();
    flags.push("-rotation-interval=1s");
    let mut agent = Agent::start(Some(&ns), &out, &flags);

    let (_listener, conn) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conn = Connection::open(&listener);
        (listener, conn)
    });
    let cookie = socket_cookie(&conn.client);
    let pump = Pump::start(vec![conn], 2000, Duration::from_millis(10));
    wait_until(
        Duration::from_secs(10),
        "a second segment with data",
        || {
            live_segments_of(&out, cookie)
                .get(1)
                .is_some_and(|s| s.records.len() >= 2)
        },
    );
    let conn = pump.stop();
    agent.terminate();
    drop(conn);

    let segments: Vec<Segment> = live_segments_of(&out, cookie);
    assert!(segments.len() >= 2, "{} segments", segments.len());
    let mut last_ts = None;
    for (i, seg) in segments.iter().enumerate() {
        // Segments are complete on disk: the strict reader must agree.
        let strict = read_segment(&seg.path);
        assert_eq!(strict.records.len(), seg.records.len());
        assert_eq!(
            seg.sequence, i as u32,
            "segments numbered from 0 without gaps"
        );
        assert_eq!(seg.uuid, expected_uuid(cookie));
        seg.assert_metadata_first();
        let snaps = seg.snapshots();
        assert!(!snaps.is_empty(), "{}: no snapshots", seg.path.display());
        let first = snaps.first().unwrap().timestamp.unix_millis();
        let last = snaps.last().unwrap().timestamp.unix_millis();
        if i + 1 < segments.len() {
            assert!(
                last - first < 1000,
                "segment {i} spans {}ms, beyond the rotation interval",
                last - first
            );
        }
        if let Some(prev) = last_ts {
            assert!(
                first >= prev,
                "segment {i} starts before the previous ended"
            );
        }
        last_ts = Some(last);
    }
    let names: Vec<String> = segments
        .iter()
        .map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names[0].ends_with(".00000.jsonl.zst"), "{names:?}");
    assert!(names[1].ends_with(".00001.jsonl.zst"), "{names:?}");
}
