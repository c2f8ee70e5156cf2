//! Listener change detection against the real agent in a namespace: real
//! TCP and UDP listeners opening and closing move
//! `tcpinfo_listening_port_changes_total`, are logged once each, and reach
//! the event socket client that subscribed, while a client speaking the Go
//! protocol (it never writes) sees exactly the open/close events it knows.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use harness::metrics::Scrape;
use harness::process::program_name;
use harness::{wait_for, Agent, Netns};
use tcpinfo_eventsocket::client;
use tcpinfo_eventsocket::{
    Event, FlowEvent, ListenerChangeKind, ListenerEvent, Subscription, TcpEvent,
};

const CHANGES: &str = "tcpinfo_listening_port_changes_total";
const DEADLINE: Duration = Duration::from_secs(10);

fn changes(s: &Scrape, proto: &str, change: &str) -> f64 {
    s.value(
        CHANGES,
        &[
            ("proto", proto),
            ("family", "ipv4"),
            ("scope", "public"),
            ("change", change),
        ],
    )
    .unwrap_or_else(|| panic!("no {CHANGES} series for {proto} {change}"))
}

/// Lines of a stream, read in the background until it ends.
fn lines_of(stream: UnixStream) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            sink.lock().unwrap().push(line);
        }
    });
    lines
}

/// Every line of any kind a library client reads, in the background.
fn events_of(mut conn: client::Connection) -> Arc<Mutex<Vec<Event>>> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    thread::spawn(move || {
        while let Ok(Some(ev)) = conn.next_any() {
            sink.lock().unwrap().push(ev);
        }
    });
    events
}

fn listener_events(events: &Mutex<Vec<Event>>) -> Vec<ListenerEvent> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Listener(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

/// Waits until the counter of `proto` `change` reads `n` and the
/// subscriber has received the matching event for `port`.
fn wait_change(
    ns: &Netns,
    events: &Mutex<Vec<Event>>,
    proto: &str,
    change: ListenerChangeKind,
    port: u16,
    n: f64,
) -> ListenerEvent {
    wait_for(DEADLINE, &format!("{proto} {change:?} counted"), || {
        let s = ns.scrape()?;
        (changes(&s, proto, change.as_str()) == n).then_some(())
    });
    wait_for(DEADLINE, &format!("{proto} {change:?} event"), || {
        listener_events(events)
            .into_iter()
            .find(|e| e.proto == proto && e.change == change && e.port == port)
    })
}

#[test]
fn listeners_opening_and_closing_are_counted_logged_and_sent_only_to_subscribers() {
    let ns = Netns::with_every_scope();
    // Listening before the agent starts: the baseline, never "opened".
    let _early = ns.enter(|| TcpListener::bind("198.51.100.1:7000").unwrap());
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("events.sock");
    let agent = Agent::serving_metrics(
        &ns,
        &[&format!("-tcpinfo.eventsocket={}", socket.display())],
    );

    let plain = lines_of(UnixStream::connect(&socket).unwrap());
    let mut conn = client::connect(&socket).unwrap();
    conn.subscribe(&[Subscription::ListenerChange]).unwrap();
    let events = events_of(conn);
    wait_for(DEADLINE, "the subscription's acknowledgement", || {
        let events = events.lock().unwrap();
        events
            .iter()
            .any(|e| matches!(e, Event::Subscribed(s) if s.kinds == [Subscription::ListenerChange]))
            .then_some(())
    });
    let first = wait_for(DEADLINE, "both clients registered", || {
        let s = ns.scrape()?;
        (s.value("tcpinfo_eventsocket_clients", &[]) == Some(2.0)).then_some(s)
    });
    // Every label combination is there from the start, at 0: the agent's
    // own metrics listener and the early listener are not changes.
    assert_eq!(first.series(CHANGES).count(), 24);
    assert!(first.series(CHANGES).all(|s| s.value == 0.0));

    let program = program_name();
    let listener = ns.enter(|| TcpListener::bind("198.51.100.1:8080").unwrap());
    let opened = wait_change(&ns, &events, "tcp", ListenerChangeKind::Opened, 8080, 1.0);
    assert_eq!(
        (
            opened.family.as_str(),
            opened.addr.to_string(),
            opened.scope.as_str(),
            opened.process.as_str()
        ),
        (
            "ipv4",
            "198.51.100.1".to_string(),
            "public",
            program.as_str()
        )
    );

    // One connection while both clients listen: one Open and one Close
    // per socket on the plain stream.
    let client = ns.enter(|| TcpStream::connect("198.51.100.1:8080").unwrap());
    let (server, _) = listener.accept().unwrap();
    let client_port = client.local_addr().unwrap().port();
    wait_for(DEADLINE, "two opens", || {
        (plain.lock().unwrap().len() == 2).then_some(())
    });
    drop((client, server));
    wait_for(DEADLINE, "two closes", || {
        (plain.lock().unwrap().len() == 4).then_some(())
    });

    // Closed and bound again at once, well within one inventory: no change.
    let listener = ns.enter(move || {
        drop(listener);
        TcpListener::bind("198.51.100.1:8080").unwrap()
    });

    let udp = ns.enter(|| UdpSocket::bind("198.51.100.1:5353").unwrap());
    wait_change(&ns, &events, "udp", ListenerChangeKind::Opened, 5353, 1.0);
    drop(udp);
    wait_change(&ns, &events, "udp", ListenerChangeKind::Closed, 5353, 1.0);
    drop(listener);
    wait_change(&ns, &events, "tcp", ListenerChangeKind::Closed, 8080, 1.0);

    let last = ns.scrape().unwrap();
    assert_eq!(
        changes(&last, "tcp", "opened"),
        1.0,
        "the rebind was no change"
    );
    assert_eq!(
        last.series(CHANGES).map(|s| s.value).sum::<f64>(),
        4.0,
        "{}",
        last.text
    );
    let changes_seen: Vec<(String, ListenerChangeKind, u16)> = listener_events(&events)
        .into_iter()
        .map(|e| (e.proto, e.change, e.port))
        .collect();
    assert_eq!(
        changes_seen,
        [
            ("tcp".into(), ListenerChangeKind::Opened, 8080),
            ("udp".into(), ListenerChangeKind::Opened, 5353),
            ("udp".into(), ListenerChangeKind::Closed, 5353),
            ("tcp".into(), ListenerChangeKind::Closed, 8080),
        ]
    );

    // A last connection, announced after every change: once the plain
    // client has its opens, anything published before them has reached it.
    let canary_listener = ns.enter(|| TcpListener::bind("198.51.100.1:9000").unwrap());
    let canary = ns.enter(|| TcpStream::connect("198.51.100.1:9000").unwrap());
    let _canary_server = canary_listener.accept().unwrap();
    wait_for(DEADLINE, "the canary's opens", || {
        (plain.lock().unwrap().len() >= 6).then_some(())
    });
    let lines = plain.lock().unwrap().clone();
    let flows: Vec<FlowEvent> = lines
        .iter()
        .map(|l| FlowEvent::from_json(l.as_bytes()).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(flows.len(), 6, "{lines:#?}");
    let kinds: Vec<TcpEvent> = flows.iter().map(|f| f.event).collect();
    use TcpEvent::{Close, Open};
    assert_eq!(kinds, [Open, Open, Close, Close, Open, Open], "{lines:#?}");
    let mut ports: Vec<(u16, u16)> = flows[..2]
        .iter()
        .map(|f| f.id.map(|id| (id.sport, id.dport)).unwrap())
        .collect();
    ports.sort();
    let mut want = vec![(client_port, 8080), (8080, client_port)];
    want.sort();
    assert_eq!(ports, want);
    let mut opened: Vec<&str> = flows[..2].iter().map(|f| f.uuid.as_str()).collect();
    let mut closed: Vec<&str> = flows[2..4].iter().map(|f| f.uuid.as_str()).collect();
    opened.sort();
    closed.sort();
    assert_eq!(opened, closed, "each socket's open has its close");
    let canary_port = canary.local_addr().unwrap().port();
    assert!(flows[4..].iter().all(|f| {
        let id = f.id.unwrap();
        id.sport == canary_port || id.dport == canary_port
    }));

    // Each change logged once, on one line.
    let log = agent.log_text();
    for line in [
        format!("listener opened: tcp ipv4 198.51.100.1:8080 (public) by {program}"),
        format!("listener closed: tcp ipv4 198.51.100.1:8080 (public) by {program}"),
        format!("listener opened: udp ipv4 198.51.100.1:5353 (public) by {program}"),
        format!("listener closed: udp ipv4 198.51.100.1:5353 (public) by {program}"),
    ] {
        assert_eq!(log.matches(&line).count(), 1, "{line:?} in\n{log}");
    }
    assert_eq!(log.matches("listener opened").count(), 2, "{log}");
    assert!(
        log.contains("eventsocket: client 2 subscribed to [ListenerChange]"),
        "{log}"
    );
    drop(agent);
}

#[test]
fn a_client_writing_junk_is_logged_and_keeps_the_plain_stream() {
    use std::io::Write;
    let ns = Netns::with_every_scope();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("events.sock");
    let agent = Agent::serving_metrics(
        &ns,
        &[&format!("-tcpinfo.eventsocket={}", socket.display())],
    );
    let mut junk = UnixStream::connect(&socket).unwrap();
    junk.write_all(b"GET / HTTP/1.0\n").unwrap();
    let lines = lines_of(junk.try_clone().unwrap());
    let logged = wait_for(DEADLINE, "the junk to be logged", || {
        let log = agent.log_text();
        log.lines()
            .find(|l| l.contains("not a subscription request"))
            .map(str::to_owned)
    });
    assert!(
        logged.contains("eventsocket: client 1 wrote \"GET / HTTP/1.0\""),
        "{logged}"
    );

    let listener = ns.enter(|| TcpListener::bind("198.51.100.1:8080").unwrap());
    wait_for(DEADLINE, "the change to be counted", || {
        let s = ns.scrape()?;
        (changes(&s, "tcp", "opened") == 1.0).then_some(())
    });
    let client = ns.enter(|| TcpStream::connect("198.51.100.1:8080").unwrap());
    let _server = listener.accept().unwrap();
    // The connection's two opens, and nothing about the listener.
    wait_for(DEADLINE, "two opens", || {
        (lines.lock().unwrap().len() >= 2).then_some(())
    });
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for line in &lines {
        let ev = FlowEvent::from_json(line.as_bytes()).unwrap();
        assert_eq!(ev.event, TcpEvent::Open, "{line}");
    }
    drop(client);
    drop(agent);
}
