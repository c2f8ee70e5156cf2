//! Exposure gauges against real sockets: the agent runs in a namespace the
//! test created, and the test's own listeners show up with the right
//! labels, its connections with the right direction and scope, and the
//! 256-series cap holds.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use harness::metrics::{Scrape, METRICS_PORT};
use harness::process::program_name;
use harness::{wait_for, Agent, Netns};

const LISTENING: &str = "tcpinfo_listening_ports";

/// Labels of the `tcpinfo_listening_ports` series on `port`, if present.
fn listening(scrape: &Scrape, proto: &str, port: u16) -> Option<Vec<(String, String)>> {
    let port = port.to_string();
    let s = scrape.series(LISTENING).find(|s| {
        s.labels.get("port") == Some(&port)
            && s.labels.get("proto").map(String::as_str) == Some(proto)
    })?;
    assert_eq!(s.value, 1.0);
    Some(s.labels.clone().into_iter().collect())
}

fn labels(proto: &str, port: u16, family: &str, scope: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("family", family.to_owned()),
        ("port", port.to_string()),
        ("process", program_name()),
        ("proto", proto.to_owned()),
        ("scope", scope.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    v.sort();
    v
}

struct Sockets {
    tcp: Vec<(TcpListener, &'static str, &'static str)>,
    _udp_listener: UdpSocket,
    _udp_connected: UdpSocket,
    client: TcpStream,
}

#[test]
fn real_listeners_appear_with_family_scope_and_process_and_leave_when_closed() {
    let ns = Netns::with_every_scope();
    let agent = Agent::serving_metrics(&ns, &[]);

    let sockets = ns.enter(|| {
        let tcp = [
            ("127.0.0.1:7001", "ipv4", "loopback"),
            ("[::1]:7002", "ipv6", "loopback"),
            ("0.0.0.0:7003", "ipv4", "public"),
            ("[::]:7004", "ipv6", "public"),
            ("198.51.100.1:7005", "ipv4", "public"),
            ("10.77.0.1:7006", "ipv4", "private"),
            ("[fd00::1]:7007", "ipv6", "private"),
            ("100.64.0.1:7008", "ipv4", "private"),
        ]
        .into_iter()
        .map(|(addr, family, scope)| (TcpListener::bind(addr).unwrap(), family, scope))
        .collect();
        let udp_listener = UdpSocket::bind("0.0.0.0:7009").unwrap();
        let udp_connected = UdpSocket::bind("10.77.0.1:7010").unwrap();
        // connect() on UDP only sets the peer: no packet is sent.
        udp_connected.connect("10.77.0.1:9").unwrap();
        // An inbound connection to the private listener on 7006.
        let client = TcpStream::connect("10.77.0.1:7006").unwrap();
        Sockets {
            tcp,
            _udp_listener: udp_listener,
            _udp_connected: udp_connected,
            client,
        }
    });
    let (_accepted, _) = sockets.tcp[5].0.accept().unwrap();
    let client_port = sockets.client.local_addr().unwrap().port();

    let scrape = wait_for(Duration::from_secs(10), "every listener", || {
        let s = ns.scrape()?;
        let all = (7001..=7008).all(|p| listening(&s, "tcp", p).is_some())
            && listening(&s, "udp", 7009).is_some()
            && s.value("tcpinfo_tcp_connections_by_port", &[("port", "7006")]) == Some(1.0);
        all.then_some(s)
    });
    for (listener, family, scope) in &sockets.tcp {
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            listening(&scrape, "tcp", port).unwrap(),
            labels("tcp", port, family, scope),
            "TCP listener on port {port}"
        );
    }
    assert_eq!(
        listening(&scrape, "udp", 7009).unwrap(),
        labels("udp", 7009, "ipv4", "public")
    );
    assert!(
        listening(&scrape, "udp", 7010).is_none(),
        "a connected UDP socket is not listening"
    );
    assert!(listening(&scrape, "udp", client_port).is_none());
    // The agent's own metrics listener is there too, owned by tcp-info.
    let own = listening(&scrape, "tcp", METRICS_PORT).unwrap();
    assert!(own.contains(&("process".to_owned(), "tcp-info".to_owned())));

    // Connections: both ends of 10.77.0.1 ↔ 10.77.0.1:7006 are in the
    // namespace, one inbound (local port 7006 listens), one outbound.
    let established = |direction: &str| {
        scrape.value(
            "tcpinfo_tcp_connections",
            &[
                ("state", "established"),
                ("direction", direction),
                ("remote_scope", "private"),
            ],
        )
    };
    assert_eq!(established("inbound"), Some(1.0));
    assert_eq!(established("outbound"), Some(1.0));
    // Nine TCP listeners: ours and the agent's metrics port.
    assert_eq!(
        scrape.value(
            "tcpinfo_tcp_connections",
            &[
                ("state", "listen"),
                ("direction", "inbound"),
                ("remote_scope", "none")
            ]
        ),
        Some(9.0)
    );
    assert_eq!(
        scrape.value("tcpinfo_tcp_connections_by_port", &[("port", "7003")]),
        Some(0.0)
    );

    // Close the public listener on 198.51.100.1: its series goes within a
    // second.
    let Sockets { mut tcp, .. } = sockets;
    let (closed, _, _) = tcp.remove(4);
    assert_eq!(
        closed.local_addr().unwrap(),
        "198.51.100.1:7005".parse::<SocketAddr>().unwrap()
    );
    drop(closed);
    let closed_at = Instant::now();
    wait_for(
        Duration::from_secs(1),
        "the closed listener's series to go",
        || {
            let s = ns.scrape()?;
            listening(&s, "tcp", 7005).is_none().then_some(())
        },
    );
    eprintln!("series gone {:?} after close", closed_at.elapsed());
    assert!(listening(&ns.scrape().unwrap(), "tcp", 7006).is_some());
    drop(agent);
}

#[test]
fn three_hundred_listeners_give_256_series_a_rising_drop_counter_and_one_log_line() {
    let ns = Netns::with_every_scope();
    let agent = Agent::serving_metrics(&ns, &[]);
    let listeners: Vec<TcpListener> = ns.enter(|| {
        (20000..20300)
            .map(|p| TcpListener::bind(("127.0.0.1", p)).unwrap())
            .collect()
    });
    let dropped = |s: &Scrape| {
        s.value(
            "tcpinfo_exposure_dropped_series_total",
            &[("metric", "listening_ports")],
        )
        .unwrap_or(0.0)
    };
    let first = wait_for(Duration::from_secs(10), "the cap to apply", || {
        let s = ns.scrape()?;
        (dropped(&s) > 0.0).then_some(s)
    });
    assert_eq!(first.series(LISTENING).count(), 256);
    // 301 listening tuples (ours and the agent's), the lowest ports kept.
    assert!(listening(&first, "tcp", METRICS_PORT).is_some());
    assert!(listening(&first, "tcp", 20254).is_some());
    assert!(listening(&first, "tcp", 20255).is_none());
    let before = dropped(&first);
    let later = wait_for(Duration::from_secs(10), "the drop counter to rise", || {
        let s = ns.scrape()?;
        (dropped(&s) > before).then_some(s)
    });
    assert_eq!(later.series(LISTENING).count(), 256);
    let log = agent.log_text();
    let lines = log
        .lines()
        .filter(|l| l.contains("only 256 exported"))
        .count();
    assert_eq!(lines, 1, "exactly one log line about the cap:\n{log}");
    drop(listeners);
}

#[test]
fn ready_and_healthy_endpoints_answer() {
    let ns = Netns::with_every_scope();
    let _agent = Agent::serving_metrics(&ns, &[]);
    let (status, body) = ns.http_get(METRICS_PORT, "/-/healthy").unwrap();
    assert_eq!(status, 200, "{body}");
    let (status, _) = ns.http_get(METRICS_PORT, "/-/ready").unwrap();
    assert_eq!(status, 200);
    let (status, _) = ns.http_get(METRICS_PORT, "/nope").unwrap();
    assert_eq!(status, 404);
}
