//! The event socket server's opt-in kinds, against the library server: a
//! client that never writes (as M-Lab's Go clients) gets exactly the
//! open/close stream; a client that subscribes gets the acknowledgement,
//! then listener changes too; junk and over-long lines leave a client on
//! its stream.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tcp_info::eventsocket::Server;
use tcpinfo_archive::Timestamp;
use tcpinfo_eventsocket::client;
use tcpinfo_eventsocket::{
    subscription_request, Event, FlowEvent, ListenerChangeKind, ListenerEvent, SockId, Subscription,
};

const DEADLINE: Duration = Duration::from_secs(20);

fn ts() -> Timestamp {
    Timestamp::parse("2024-05-01T10:00:00.5Z").unwrap()
}

fn open_event() -> FlowEvent {
    FlowEvent::open(
        ts(),
        "u_1",
        SockId {
            sport: 8080,
            dport: 40000,
            src_ip: "198.51.100.1".parse().unwrap(),
            dst_ip: "198.51.100.2".parse().unwrap(),
            interface: 0,
            cookie: 1,
        },
    )
}

fn listener_event() -> ListenerEvent {
    ListenerEvent {
        timestamp: ts(),
        change: ListenerChangeKind::Opened,
        proto: "tcp".into(),
        family: "ipv4".into(),
        addr: "198.51.100.1".parse().unwrap(),
        port: 8080,
        scope: "public".into(),
        process: "nginx".into(),
    }
}

/// A library client reading every line of any kind into a list.
struct Reader {
    events: Arc<Mutex<Vec<Event>>>,
    thread: JoinHandle<()>,
}

impl Reader {
    fn start(mut conn: client::Connection) -> Reader {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&events);
        let thread = thread::spawn(move || {
            while let Some(ev) = conn.next_any().unwrap() {
                sink.lock().unwrap().push(ev);
            }
        });
        Reader { events, thread }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn acks(&self) -> Vec<Vec<Subscription>> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Subscribed(s) => Some(s.kinds),
                _ => None,
            })
            .collect()
    }

    /// Every line, once the server has closed the stream.
    fn finish(self) -> Vec<Event> {
        self.thread.join().unwrap();
        Arc::try_unwrap(self.events).unwrap().into_inner().unwrap()
    }
}

/// Reads a raw stream to its end in the background.
fn read_to_end(mut stream: UnixStream) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
}

fn start(dir: &Path) -> Server {
    Server::start(&dir.join("events.sock")).unwrap()
}

#[test]
fn a_client_that_never_writes_gets_only_open_and_close_while_a_subscriber_gets_changes_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let plain = UnixStream::connect(server.path()).unwrap();
    let plain = read_to_end(plain);
    let mut conn = client::connect(server.path()).unwrap();
    conn.subscribe(&[Subscription::ListenerChange]).unwrap();
    let subscriber = Reader::start(conn);
    harness::wait_until(DEADLINE, "the acknowledgement", || {
        subscriber.acks() == [vec![Subscription::ListenerChange]]
    });
    assert_eq!(server.clients(), 2);

    let publisher = server.publisher();
    let close = FlowEvent::close(ts(), "u_1");
    publisher.publish(&open_event());
    publisher.publish_listener_change(&listener_event());
    publisher.publish(&close);
    server.shutdown();

    // Byte for byte the Go protocol: the open line and the close line.
    let expected = [open_event().to_json_line(), close.to_json_line()].concat();
    assert_eq!(plain.join().unwrap(), String::from_utf8(expected).unwrap());
    let events = subscriber.finish();
    assert_eq!(events.len(), 4, "{events:?}");
    assert!(matches!(&events[0], Event::Subscribed(_)));
    assert_eq!(events[1], Event::Flow(open_event()));
    assert_eq!(events[2], Event::Listener(listener_event()));
    assert_eq!(events[3], Event::Flow(close));
}

#[test]
fn junk_and_overlong_lines_leave_a_client_on_the_open_close_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut raw = UnixStream::connect(server.path()).unwrap();
    raw.write_all(b"hello\n").unwrap();
    raw.write_all(&[b'{'; 5000]).unwrap();
    // The empty subscription is acknowledged: proof that everything before
    // it was read, and that the client is still served.
    raw.write_all(b"\n{\"Subscribe\":[\"Teleport\"]}\n")
        .unwrap();
    let mut conn_lines = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + DEADLINE;
    while !conn_lines.ends_with(b"\n") {
        assert!(Instant::now() < deadline, "no acknowledgement");
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "disconnected");
        conn_lines.extend_from_slice(&buf[..n]);
    }
    let ack = String::from_utf8(conn_lines).unwrap();
    assert!(
        ack.contains("\"Event\":3") && ack.contains("\"Subscribed\":[]"),
        "{ack}"
    );

    let publisher = server.publisher();
    publisher.publish_listener_change(&listener_event());
    publisher.publish(&open_event());
    let rest = read_to_end(raw);
    server.shutdown();
    assert_eq!(
        rest.join().unwrap(),
        String::from_utf8(open_event().to_json_line()).unwrap()
    );
}

#[test]
fn an_empty_subscription_returns_to_the_plain_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut writer = UnixStream::connect(server.path()).unwrap();
    let mut lines = BufReader::new(writer.try_clone().unwrap());
    let mut next = || {
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        Event::from_json(line.as_bytes()).unwrap()
    };
    let publisher = server.publisher();

    writer
        .write_all(&subscription_request(&[Subscription::ListenerChange]))
        .unwrap();
    assert!(matches!(next(), Event::Subscribed(s) if s.kinds == [Subscription::ListenerChange]));
    publisher.publish_listener_change(&listener_event());
    assert_eq!(next(), Event::Listener(listener_event()));

    writer.write_all(&subscription_request(&[])).unwrap();
    assert!(matches!(next(), Event::Subscribed(s) if s.kinds.is_empty()));
    publisher.publish_listener_change(&listener_event());
    publisher.publish(&open_event());
    assert_eq!(next(), Event::Flow(open_event()));
    server.shutdown();
}
