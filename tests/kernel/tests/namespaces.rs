//! The agent with default flags inside a network namespace, talking to
//! another namespace over a veth pair (198.51.100.0/24, RFC 5737): what is
//! archived, what is excluded, and how addresses are anonymized.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use harness::agent::FAST;
use harness::archive::{bytes_received, idm, live_segments_of, output_dir, read_all};
use harness::netns::{CLIENT_IP, SERVER_IP};
use harness::traffic::{socket_cookie, Connection};
use harness::{wait_until, Agent, NetnsPair};

fn cookies_on_disk(out: &std::path::Path) -> BTreeSet<u64> {
    read_all(out).iter().map(|s| s.cookie()).collect()
}

/// Waits until the agent has seen at least `n` sockets (archived or not):
/// after that, whatever it was going to archive of them is queued.
fn wait_for_new(agent: &Agent, n: u64) {
    wait_until(
        Duration::from_secs(10),
        &format!("the agent to see {n} sockets"),
        || {
            agent
                .stats_lines()
                .last()
                .is_some_and(|s| s.get("new") >= n)
        },
    );
}

fn server_addr(port: u16) -> SocketAddr {
    SocketAddr::from((SERVER_IP.parse::<Ipv4Addr>().unwrap(), port))
}

#[test]
fn connections_between_namespaces_are_archived_and_loopback_ones_beside_them_are_not() {
    let pair = NetnsPair::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut agent = Agent::start(Some(&pair.server), &out, &FAST);

    let listener = pair
        .server
        .enter(|| TcpListener::bind("0.0.0.0:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let mut remote: Vec<Connection> = pair.client.enter(|| {
        (0..2)
            .map(|_| Connection::open_to(&listener, server_addr(port), None))
            .collect()
    });
    let mut local: Vec<Connection> = pair.server.enter(|| {
        (0..2)
            .map(|_| Connection::open_to(&listener, ([127, 0, 0, 1], port).into(), None))
            .collect()
    });
    for c in remote.iter_mut().chain(local.iter_mut()) {
        c.exchange(5000);
    }
    // 2 remote (server ends), 2 × 2 loopback ends, the listener.
    wait_for_new(&agent, 7);
    let remote_cookies: BTreeSet<u64> = remote.iter().map(|c| socket_cookie(&c.server)).collect();
    wait_until(
        Duration::from_secs(10),
        "the remote connections' data on disk",
        || {
            remote_cookies.iter().all(|&cookie| {
                live_segments_of(&out, cookie)
                    .first()
                    .is_some_and(|s| s.snapshots().iter().any(|r| bytes_received(r) >= 5000))
            })
        },
    );
    let stats = agent.terminate();
    drop((remote, local));

    assert_eq!(
        cookies_on_disk(&out),
        remote_cookies,
        "only the veth connections"
    );
    for seg in read_all(&out) {
        seg.assert_metadata_first();
        for r in seg.snapshots() {
            let m = idm(r);
            assert_eq!(m.src().to_string(), SERVER_IP);
            assert_eq!(m.dst().to_string(), CLIENT_IP);
            assert_eq!(m.sport(), port);
        }
    }
    assert_eq!(stats.get("errors"), 0);
}

#[test]
fn exclude_srcport_and_exclude_dstip_leave_out_the_connections_they_name() {
    let pair = NetnsPair::new();
    pair.add_client_address("198.51.100.3");
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let (excluded_port, kept_port) = pair.server.enter(|| {
        let a = TcpListener::bind(server_addr(0)).unwrap();
        let b = TcpListener::bind(server_addr(0)).unwrap();
        (a, b)
    });
    let excluded = excluded_port.local_addr().unwrap().port();
    let kept = kept_port.local_addr().unwrap().port();
    let srcport_flag = format!("-exclude-srcport={excluded}");
    let mut flags = FAST.to_vec();
    flags.extend([srcport_flag.as_str(), "-exclude-dstip=198.51.100.3"]);
    let mut agent = Agent::start(Some(&pair.server), &out, &flags);

    let conns = pair.client.enter(|| {
        [
            // Excluded by source port (the server end's local port).
            Connection::open_to(&excluded_port, server_addr(excluded), None),
            // Kept.
            Connection::open_to(&kept_port, server_addr(kept), None),
            // Excluded by destination address (the server end's peer).
            Connection::open_to(&kept_port, server_addr(kept), Some("198.51.100.3")),
            // Excluded by both.
            Connection::open_to(&excluded_port, server_addr(excluded), Some("198.51.100.3")),
        ]
    });
    // 4 server ends and 2 listeners.
    wait_for_new(&agent, 6);
    let kept_cookie = socket_cookie(&conns[1].server);
    wait_until(
        Duration::from_secs(10),
        "the kept connection on disk",
        || !live_segments_of(&out, kept_cookie).is_empty(),
    );
    agent.terminate();
    drop(conns);

    assert_eq!(cookies_on_disk(&out), BTreeSet::from([kept_cookie]));
    let seg = &read_all(&out)[0];
    seg.assert_metadata_first();
    let m = idm(&seg.snapshots()[0]);
    assert_eq!((m.sport(), m.dst().to_string().as_str()), (kept, CLIENT_IP));
}

#[test]
fn anonymize_netblock_zeroes_the_remote_address_to_its_24_and_keeps_the_local_one() {
    let pair = NetnsPair::new();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut flags = FAST.to_vec();
    flags.push("-anonymize.ip=netblock");
    let mut agent = Agent::start(Some(&pair.server), &out, &flags);

    let listener = pair
        .server
        .enter(|| TcpListener::bind(server_addr(0)).unwrap());
    let port = listener.local_addr().unwrap().port();
    let mut conn = pair
        .client
        .enter(|| Connection::open_to(&listener, server_addr(port), None));
    conn.exchange(3000);
    let cookie = socket_cookie(&conn.server);
    let client_port = conn.client.local_addr().unwrap().port();
    wait_until(
        Duration::from_secs(10),
        "the connection's data on disk",
        || {
            live_segments_of(&out, cookie)
                .first()
                .is_some_and(|s| s.snapshots().iter().any(|r| bytes_received(r) >= 3000))
        },
    );
    agent.terminate();
    drop(conn);

    let segs = read_all(&out);
    assert_eq!(segs.len(), 1);
    let seg = &segs[0];
    seg.assert_metadata_first();
    for r in seg.snapshots() {
        let raw = &r.raw_idm;
        assert_eq!(raw[0], inetdiag::AF_INET);
        let src = &raw[inetdiag::address_ranges::SRC];
        let dst = &raw[inetdiag::address_ranges::DST];
        // The host's own address stays; the peer's loses its host byte.
        assert_eq!(&src[..4], &[198, 51, 100, 1], "local address kept");
        assert_eq!(
            &dst[..4],
            &[198, 51, 100, 0],
            "remote address zeroed to /24"
        );
        assert!(src[4..].iter().chain(&dst[4..]).all(|&b| b == 0));
        // Nothing else in the message is touched.
        let m = idm(r);
        assert_eq!((m.sport(), m.dport()), (port, client_port));
        assert_eq!(m.cookie(), cookie);
    }
}
