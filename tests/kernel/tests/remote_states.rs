//! Per-peer connection states (`-remote-states`) against real connections:
//! the agent runs in the server namespace of a veth pair, the peer's
//! connections come from the client namespace, and the series follow them
//! through open, closing and closed; peers outside the ranges never show,
//! the cap holds, and without the flag nothing is exported.

use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

use harness::metrics::{Scrape, METRICS_PORT};
use harness::netns::{CLIENT_IP, SERVER_IP};
use harness::traffic::connect_from;
use harness::{wait_for, wait_for_ok, Agent, NetnsPair};

const REMOTE: &str = "tcpinfo_remote_connections";
const DROPPED: &str = "tcpinfo_remote_dropped_series_total";
/// A second client address, outside the ranges the agent is given.
const OUTSIDER_IP: &str = "198.51.100.3";
const SERVER_IP6: &str = "2001:db8::1";
const CLIENT_IP6: &str = "2001:db8::2";

fn start_agent(pair: &NetnsPair, dir: &tempfile::TempDir, extra: &[&str]) -> Agent {
    let prom = format!("-prometheusx.listen-address=127.0.0.1:{METRICS_PORT}");
    let mut args = vec!["-poll-interval=10ms", "-stats-interval=1s", prom.as_str()];
    args.extend_from_slice(extra);
    Agent::start(Some(&pair.server), &dir.path().join("data"), &args)
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// A listener that keeps a handshaken connection as a SYN_RECV request
/// socket until the client sends data (TCP_DEFER_ACCEPT): a SYN_RECV
/// socket that lasts long enough to be seen.
fn deferring_listener(at: SocketAddr) -> TcpListener {
    let listener = TcpListener::bind(at).unwrap();
    let seconds: libc::c_int = 60;
    // SAFETY: a valid socket fd, and an option value of the size given.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(
        rc,
        0,
        "TCP_DEFER_ACCEPT: {}",
        std::io::Error::last_os_error()
    );
    listener
}

/// `{remote → {state → count}}` of every `tcpinfo_remote_connections`
/// series, as `remote state=count` lines sorted (for readable failures).
fn table(scrape: &Scrape) -> Vec<String> {
    let mut rows: Vec<String> = scrape
        .series(REMOTE)
        .map(|s| format!("{} {}={}", s.labels["remote"], s.labels["state"], s.value))
        .collect();
    rows.sort();
    rows
}

fn count(scrape: &Scrape, remote: &str, state: &str) -> Option<f64> {
    scrape.value(REMOTE, &[("remote", remote), ("state", state)])
}

/// Panics if a peer outside the ranges shows up.
fn assert_no_outsider(scrape: &Scrape) {
    let rows = table(scrape);
    assert!(
        rows.iter().all(|r| !r.starts_with(OUTSIDER_IP)),
        "a peer outside the ranges is exported: {rows:#?}"
    );
}

/// Waits until the scraped series satisfy `condition`, checking on every
/// scrape that no outsider appears; returns the satisfying scrape.
fn wait_states(pair: &NetnsPair, what: &str, condition: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = Vec::new();
    wait_for_ok(Duration::from_secs(10), what, || {
        if let Some(s) = pair.server.scrape() {
            assert_no_outsider(&s);
            if condition(&s) {
                return Ok(s);
            }
            last = table(&s);
        }
        Err(format!("series {last:#?}"))
    })
}

#[test]
fn connections_from_a_peer_go_open_closing_closed_and_outsiders_never_appear() {
    let pair = NetnsPair::new();
    pair.add_client_address(OUTSIDER_IP);
    pair.add_ipv6(SERVER_IP6, CLIENT_IP6);
    let dir = tempfile::tempdir().unwrap();
    let _agent = start_agent(
        &pair,
        &dir,
        &[&format!("-remote-states={CLIENT_IP}/32,{CLIENT_IP6}/128")],
    );

    // Server side: a listener per scenario. 8080: the peer closes first;
    // 8081: we close first (TIME_WAIT on our side); 8082: handshakes stay
    // SYN_RECV; 8083: IPv6; 8084: dual-stack, reached over IPv4.
    let listeners = pair.server.enter(|| {
        [
            TcpListener::bind(addr(SERVER_IP, 8080)).unwrap(),
            TcpListener::bind(addr(SERVER_IP, 8081)).unwrap(),
            deferring_listener(addr(SERVER_IP, 8082)),
            TcpListener::bind(addr(SERVER_IP6, 8083)).unwrap(),
            TcpListener::bind("[::]:8084").unwrap(),
        ]
    });
    // Client side: a service the server connects out to.
    let service = pair
        .client
        .enter(|| TcpListener::bind("0.0.0.0:9443").unwrap());
    let client: IpAddr = CLIENT_IP.parse().unwrap();
    let outsider: IpAddr = OUTSIDER_IP.parse().unwrap();
    let (a, b, _c, _d, _e, _outsiders) = pair.client.enter(|| {
        (
            connect_from(client, addr(SERVER_IP, 8080)),
            connect_from(client, addr(SERVER_IP, 8081)),
            connect_from(client, addr(SERVER_IP, 8082)),
            connect_from(CLIENT_IP6.parse().unwrap(), addr(SERVER_IP6, 8083)),
            connect_from(client, addr(SERVER_IP, 8084)),
            [8080, 8081, 8082, 8084].map(|p| connect_from(outsider, addr(SERVER_IP, p))),
        )
    });
    let (outbound, outbound_outsider) = pair.server.enter(|| {
        (
            TcpStream::connect(addr(CLIENT_IP, 9443)).unwrap(),
            TcpStream::connect(addr(OUTSIDER_IP, 9443)).unwrap(),
        )
    });
    // Connections need no accept() to be established; these two are
    // accepted to be closed from our side. The peer's connect came first.
    let (server_a, from_a) = listeners[0].accept().unwrap();
    let (server_b, from_b) = listeners[1].accept().unwrap();
    assert_eq!((from_a.ip(), from_b.ip()), (client, client));

    let peer = |port: u16| format!("{CLIENT_IP}:{port}");
    let first = wait_states(&pair, "every connection open", |s| {
        count(s, &peer(8080), "open") == Some(1.0)
            && count(s, &peer(8081), "open") == Some(1.0)
            && count(s, &peer(8082), "opening") == Some(1.0)
            && count(s, &format!("[{CLIENT_IP6}]:8083"), "open") == Some(1.0)
            && count(s, &peer(8084), "open") == Some(1.0)
            && count(s, &peer(9443), "open") == Some(1.0)
    });
    // Exactly those: inbound keyed by our listening port (never the peer's
    // ephemeral one), outbound by the peer's service port, the IPv4 client
    // of the dual-stack listener as a dotted quad.
    assert_eq!(
        table(&first),
        [
            "198.51.100.2:8080 open=1",
            "198.51.100.2:8081 open=1",
            "198.51.100.2:8082 opening=1",
            "198.51.100.2:8084 open=1",
            "198.51.100.2:9443 open=1",
            "[2001:db8::2]:8083 open=1",
        ]
    );
    assert_eq!(first.value(DROPPED, &[]), Some(0.0));
    assert_eq!(
        first.value("tcpinfo_remote_dump_errors_total", &[]),
        Some(0.0)
    );

    // We close first: FIN_WAIT2 (closing) until the peer closes, then our
    // side is a TIME_WAIT socket (closed), from the agent's own dump.
    server_b.shutdown(Shutdown::Write).unwrap();
    wait_states(&pair, "our closed connection closing", |s| {
        count(s, &peer(8081), "closing") == Some(1.0) && count(s, &peer(8081), "open").is_none()
    });
    drop(server_b);
    drop(b);
    wait_states(&pair, "our closed connection in TIME_WAIT", |s| {
        count(s, &peer(8081), "closed") == Some(1.0) && count(s, &peer(8081), "closing").is_none()
    });

    // The peer closes first: our side waits in CLOSE_WAIT (closing), and
    // once we close too it goes through LAST_ACK and is gone (closed).
    a.shutdown(Shutdown::Write).unwrap();
    wait_states(&pair, "the peer-closed connection closing", |s| {
        count(s, &peer(8080), "closing") == Some(1.0) && count(s, &peer(8080), "open").is_none()
    });
    drop(server_a);
    wait_states(&pair, "the peer-closed connection closed", |s| {
        count(s, &peer(8080), "closed") == Some(1.0) && count(s, &peer(8080), "closing").is_none()
    });

    // A vanished connection stays closed for 10 s; a TIME_WAIT one for as
    // long as the kernel keeps it (60 s). The TIME_WAIT came first, so were
    // it counted as vanished it would have expired first: still being
    // closed now, it comes from the dump of TIME_WAIT sockets.
    let later = wait_for(
        Duration::from_secs(20),
        "the closed retention to end",
        || {
            let s = pair.server.scrape()?;
            count(&s, &peer(8080), "closed").is_none().then_some(s)
        },
    );
    assert_eq!(count(&later, &peer(8081), "closed"), Some(1.0));
    assert_no_outsider(&later);
    drop((outbound, outbound_outsider, a, listeners, service));
}

#[test]
fn three_hundred_peers_keep_exactly_max_series_and_count_the_rest() {
    let pair = NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(&pair, &dir, &["-remote-states=198.51.100.0/24"]);
    // 300 listening ports on our side, one inbound connection each from
    // the same peer: 300 distinct remote keys (never accepted: the
    // connections wait, established, in the accept queues).
    let ports = 20000..20300u16;
    let listeners: Vec<TcpListener> = pair.server.enter(|| {
        ports
            .clone()
            .map(|p| TcpListener::bind(addr(SERVER_IP, p)).unwrap())
            .collect()
    });
    let client: IpAddr = CLIENT_IP.parse().unwrap();
    let connections: Vec<TcpStream> = pair.client.enter(|| {
        ports
            .clone()
            .map(|p| connect_from(client, addr(SERVER_IP, p)))
            .collect()
    });
    let capped = wait_for(Duration::from_secs(10), "the cap to apply", || {
        let s = pair.server.scrape()?;
        (s.value(DROPPED, &[]).unwrap_or(0.0) > 0.0).then_some(s)
    });
    assert_eq!(capped.series(REMOTE).count(), 256);
    // Every peer has one connection: the lowest keys win.
    assert_eq!(
        count(&capped, &format!("{CLIENT_IP}:20255"), "open"),
        Some(1.0)
    );
    assert_eq!(count(&capped, &format!("{CLIENT_IP}:20256"), "open"), None);
    let before = capped.value(DROPPED, &[]).unwrap();
    let later = wait_for(Duration::from_secs(10), "the drop counter to rise", || {
        let s = pair.server.scrape()?;
        (s.value(DROPPED, &[]).unwrap() > before).then_some(s)
    });
    assert_eq!(later.series(REMOTE).count(), 256);
    let lines = agent
        .log()
        .iter()
        .filter(|l| l.contains("remote-states: 300 series, only 256 exported"))
        .count();
    assert_eq!(lines, 1, "one log line about the cap: {:#?}", agent.log());
    drop((connections, listeners));
}

#[test]
fn smaller_max_series_is_honoured() {
    let pair = NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    let _agent = start_agent(
        &pair,
        &dir,
        &["-remote-states", CLIENT_IP, "-remote-states.max-series=2"],
    );
    let listeners: Vec<TcpListener> = pair.server.enter(|| {
        (8080..8083)
            .map(|p| TcpListener::bind(addr(SERVER_IP, p)).unwrap())
            .collect()
    });
    let client: IpAddr = CLIENT_IP.parse().unwrap();
    // Two connections to 8082 make it the busiest peer, kept first.
    let _connections: Vec<TcpStream> = pair.client.enter(|| {
        [8080, 8081, 8082, 8082]
            .map(|p| connect_from(client, addr(SERVER_IP, p)))
            .into()
    });
    let s = wait_for(Duration::from_secs(10), "the cap to apply", || {
        let s = pair.server.scrape()?;
        (s.value(DROPPED, &[]).unwrap_or(0.0) > 0.0).then_some(s)
    });
    assert_eq!(
        table(&s),
        ["198.51.100.2:8080 open=1", "198.51.100.2:8082 open=2"]
    );
    drop(listeners);
}

#[test]
fn without_the_flag_nothing_is_exported() {
    let pair = NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    let _agent = start_agent(&pair, &dir, &[]);
    let listener = pair
        .server
        .enter(|| TcpListener::bind(addr(SERVER_IP, 8080)).unwrap());
    let client: IpAddr = CLIENT_IP.parse().unwrap();
    let _connection = pair
        .client
        .enter(|| connect_from(client, addr(SERVER_IP, 8080)));
    // Once the exposure gauges count the connection, the inventory that
    // would have carried it was built.
    let s = wait_for(
        Duration::from_secs(10),
        "the connection in the gauges",
        || {
            let s = pair.server.scrape()?;
            (s.value("tcpinfo_tcp_connections_by_port", &[("port", "8080")]) == Some(1.0))
                .then_some(s)
        },
    );
    assert!(
        !s.text.contains("tcpinfo_remote_"),
        "remote-states metrics without the flag:\n{}",
        s.text
    );
    drop(listener);
}
