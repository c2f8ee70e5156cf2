//! The metrics port under a flood of idle connections: the agent holds at
//! most its cap of HTTP connections (closing the oldest for a newcomer), so
//! a peer holding thousands of idle connections neither exhausts its
//! descriptors nor keeps a scraper out, and archives are still written; a
//! client that stalls mid-request, or idles on a kept-alive connection, is
//! closed after the header timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use harness::agent::{FAST, UUID_PREFIX};
use harness::archive::{live_segments_of, output_dir, read_all};
use harness::metrics::METRICS_PORT;
use harness::traffic::{socket_cookie, Connection};
use harness::{wait_until, Agent, Netns};

/// The agent's cap on HTTP connections (`metrics::server::MAX_CONNECTIONS`).
const MAX_CONNECTIONS: usize = 32;
/// The agent's header and idle timeout (`metrics::server::HEADER_TIMEOUT`).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The descriptor limit the agent runs under: far fewer than the flood's
/// connections, so that without the cap it would run out.
const NOFILE: &str = "--nofile=512:512";

fn metrics_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], METRICS_PORT))
}

/// Open descriptors of process `pid`.
fn descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/fd: {e}"))
        .count()
}

/// Lets this test process hold thousands of sockets.
fn raise_own_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard >= 10_000,
        "the test needs RLIMIT_NOFILE >= 10000, hard limit is {hard}"
    );
}

/// `n` connections to the metrics port that never send a byte.
fn idle_connections(ns: &Netns, n: usize) -> Vec<TcpStream> {
    ns.enter(|| {
        (0..n)
            .map(|i| {
                TcpStream::connect_timeout(&metrics_addr(), Duration::from_secs(5))
                    .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
            })
            .collect()
    })
}

fn agent_under_limit(ns: &Netns, out: &Path) -> Agent {
    Agent::builder()
        .netns(ns)
        .wrapped_in("prlimit", &[NOFILE, "--"])
        .output(out)
        .uuid_prefix(UUID_PREFIX)
        .metrics_on(METRICS_PORT)
        .args(FAST)
        .start()
}

#[test]
fn an_idle_connection_flood_leaves_metrics_answering_and_archives_written() {
    raise_own_descriptor_limit();
    let ns = Netns::with_every_scope();
    let tmp = output_dir();
    let out = tmp.path().join("out");
    let mut agent = agent_under_limit(&ns, &out);
    let pid = agent.pid();
    let before = descriptors(pid);

    let mut flood = idle_connections(&ns, 2_000);
    for round in 0..10 {
        // The flood goes on: more idle connections before every scrape.
        flood.extend(idle_connections(&ns, 200));
        let start = Instant::now();
        let scrape = ns.scrape();
        let took = start.elapsed();
        assert!(
            scrape.is_some(),
            "round {round}: /metrics did not answer 200 with {} idle connections held: {}",
            flood.len(),
            agent.log_text()
        );
        assert!(
            took < Duration::from_secs(2),
            "round {round}: scrape took {took:?}"
        );
        let now = descriptors(pid);
        assert!(
            now <= before + MAX_CONNECTIONS + 8,
            "round {round}: {now} descriptors open, {before} before the flood"
        );
    }

    // A connection in the namespace (public address, so archived by
    // default) gets its file while the flood is held.
    let (listener, conn) = ns.enter(|| {
        let listener = TcpListener::bind("198.51.100.1:0").unwrap();
        let conn = Connection::open(&listener);
        (listener, conn)
    });
    let cookie = socket_cookie(&conn.client);
    wait_until(
        Duration::from_secs(10),
        "the new connection's archive",
        || {
            live_segments_of(&out, cookie)
                .first()
                .is_some_and(|s| !s.snapshots().is_empty())
        },
    );
    assert!(descriptors(pid) <= before + MAX_CONNECTIONS + 8);

    drop((conn, listener, flood));
    agent.terminate();
    let segments = read_all(&out);
    assert!(segments.iter().any(|s| s.cookie() == cookie));
    for s in &segments {
        s.assert_metadata_first();
    }
}

/// Reads from `s` until the agent closes it; how long that took.
fn time_to_close(s: &mut TcpStream) -> Duration {
    s.set_read_timeout(Some(HEADER_TIMEOUT * 3)).unwrap();
    let start = Instant::now();
    let mut buf = [0; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("the agent kept the connection open: {e}"),
        }
    }
}

#[test]
fn a_stalled_request_and_an_idle_keep_alive_are_closed_after_the_header_timeout() {
    let ns = Netns::new();
    let tmp = output_dir();
    let _agent = agent_under_limit(&ns, &tmp.path().join("out"));
    let (mut stalled, mut kept_alive) = ns.enter(|| {
        let connect = || TcpStream::connect(metrics_addr()).unwrap();
        (connect(), connect())
    });
    // Half a request line, then nothing.
    stalled.write_all(b"GET /metr").unwrap();
    // A whole request on a kept-alive connection, answered, then nothing.
    kept_alive
        .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: agent\r\n\r\n")
        .unwrap();
    let mut response = [0; 1024];
    let n = kept_alive.read(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response[..n]);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let (stalled_for, idle_for) = std::thread::scope(|scope| {
        let stalled = scope.spawn(|| time_to_close(&mut stalled));
        let idle = scope.spawn(|| time_to_close(&mut kept_alive));
        (stalled.join().unwrap(), idle.join().unwrap())
    });
    let late = HEADER_TIMEOUT + Duration::from_secs(5);
    let early = HEADER_TIMEOUT - Duration::from_secs(1);
    assert!(
        (early..late).contains(&stalled_for),
        "stalled request closed after {stalled_for:?}"
    );
    assert!(
        (early..late).contains(&idle_for),
        "idle keep-alive closed after {idle_for:?}"
    );
}
