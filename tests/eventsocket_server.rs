//! The event socket server and client library over real Unix sockets.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tcp_info::eventsocket::{Server, ServerOptions};
use tcpinfo_archive::Timestamp;
use tcpinfo_eventsocket::client::{self, ClientError, End, Handler};
use tcpinfo_eventsocket::{FlowEvent, SockId, TcpEvent};

const DEADLINE: Duration = Duration::from_secs(20);

fn open_event(n: u64) -> FlowEvent {
    FlowEvent::open(
        Timestamp::from_unix_millis(1_554_214_357_000 + n as i64),
        format!("test_{n:016X}"),
        SockId {
            sport: 40000 + (n % 1000) as u16,
            dport: 443,
            src_ip: "127.0.0.1".parse().unwrap(),
            dst_ip: "127.0.0.2".parse().unwrap(),
            interface: 1,
            cookie: u64::MAX - n,
        },
    )
}

fn close_event(n: u64) -> FlowEvent {
    FlowEvent::close(
        Timestamp::from_unix_millis(1_554_214_358_000 + n as i64),
        format!("test_{n:016X}"),
    )
}

fn start(dir: &Path) -> Server {
    Server::start(&dir.join("events.sock")).unwrap()
}

#[test]
fn every_client_gets_every_event_in_publish_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let publisher = server.publisher();
    let mut a = client::connect(server.path()).unwrap();
    let mut b = client::connect(server.path()).unwrap();
    harness::wait_until(DEADLINE, "two clients", || server.clients() == 2);

    let mut sent = Vec::new();
    for n in 0..500 {
        sent.push(open_event(n));
        sent.push(close_event(n));
    }
    for ev in &sent {
        publisher.publish(ev);
    }
    for conn in [&mut a, &mut b] {
        for want in &sent {
            assert_eq!(&conn.next_event().unwrap().unwrap(), want);
        }
    }
    server.shutdown();
    assert!(a.next_event().unwrap().is_none());
    assert_eq!(a.end(), End::ServerClosed);
}

#[test]
fn wire_format_is_go_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let stream = UnixStream::connect(server.path()).unwrap();
    harness::wait_until(DEADLINE, "client", || server.clients() == 1);
    let id = SockId {
        sport: 8080,
        dport: 51234,
        src_ip: "::ffff:127.0.0.1".parse().unwrap(),
        dst_ip: "fe80::1".parse().unwrap(),
        interface: 3,
        cookie: 0x8000_0000_0000_0001,
    };
    let ts = Timestamp::parse("2019-04-02T14:12:37.511Z").unwrap();
    server
        .publisher()
        .publish(&FlowEvent::open(ts, "host_1_unsafe_8000000000000001", id));
    server
        .publisher()
        .publish(&FlowEvent::close(ts, "host_1_unsafe_8000000000000001"));
    let mut lines = BufReader::new(stream).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        r#"{"Event":0,"Timestamp":"2019-04-02T14:12:37.511Z","UUID":"host_1_unsafe_8000000000000001","ID":{"SPort":8080,"DPort":51234,"SrcIP":"127.0.0.1","DstIP":"fe80::1","Interface":3,"Cookie":-9223372036854775807}}"#
    );
    assert_eq!(
        lines.next().unwrap().unwrap(),
        r#"{"Event":1,"Timestamp":"2019-04-02T14:12:37.511Z","UUID":"host_1_unsafe_8000000000000001","ID":null}"#
    );
}

#[test]
fn client_joining_mid_stream_gets_events_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let publisher = server.publisher();
    let mut early = client::connect(server.path()).unwrap();
    harness::wait_until(DEADLINE, "first client", || server.clients() == 1);
    publisher.publish(&open_event(1));
    assert_eq!(early.next_event().unwrap().unwrap(), open_event(1));

    let mut late = client::connect(server.path()).unwrap();
    harness::wait_until(DEADLINE, "second client", || server.clients() == 2);
    publisher.publish(&close_event(1));
    assert_eq!(early.next_event().unwrap().unwrap(), close_event(1));
    assert_eq!(late.next_event().unwrap().unwrap(), close_event(1));
}

#[test]
fn stuck_client_is_dropped_and_counted_without_delaying_others() {
    let dir = tempfile::tempdir().unwrap();
    let capacity = 256;
    let server = Server::start_with(
        &dir.path().join("events.sock"),
        ServerOptions {
            queue_capacity: capacity,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let publisher = server.publisher();
    // Connects and never reads.
    let stuck = UnixStream::connect(server.path()).unwrap();
    let reader = client::connect(server.path()).unwrap();
    harness::wait_until(DEADLINE, "two clients", || server.clients() == 2);

    let total = 20_000u64;
    let progress = Arc::new(AtomicU64::new(0));
    let consumer = {
        let progress = Arc::clone(&progress);
        thread::spawn(move || {
            let mut reader = reader;
            let mut got = 0u64;
            while got < total {
                let ev = reader.next_event().unwrap().expect("stream ended early");
                assert_eq!(ev, open_event(got));
                got += 1;
                progress.store(got, Ordering::Relaxed);
            }
            // Kept open: the server notices a hang-up, and the count of
            // clients below must still include this one.
            (got, reader)
        })
    };
    let mut slowest = Duration::ZERO;
    for n in 0..total {
        let started = Instant::now();
        publisher.publish(&open_event(n));
        slowest = slowest.max(started.elapsed());
        if n % 100 == 99 {
            // Let the healthy reader keep up (bursts stay under its queue
            // capacity); the stuck one cannot.
            harness::wait_until(DEADLINE, "reader progress", || {
                progress.load(Ordering::Relaxed) > n
            });
        }
    }
    let (got, _reader) = consumer.join().unwrap();
    assert_eq!(got, total);
    assert_eq!(server.clients_dropped(), 1);
    assert_eq!(publisher.clients_dropped(), 1);
    assert_eq!(server.clients(), 1);
    assert!(
        slowest < Duration::from_millis(50),
        "publish took {slowest:?}"
    );
    // The stuck client sees a bounded prefix and then the end of the stream.
    let mut stuck_bytes = Vec::new();
    (&stuck).read_to_end(&mut stuck_bytes).unwrap();
    let lines = stuck_bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    for (n, line) in lines.enumerate() {
        if line.ends_with(b"}") {
            assert_eq!(FlowEvent::from_json(line).unwrap(), open_event(n as u64));
        }
    }
}

#[test]
fn a_dead_socket_is_replaced_and_removed_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    // A socket left by a previous run: nobody accepts on it.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Server::start(&path).unwrap();
    client::connect(&path).unwrap();
    server.shutdown();
    assert!(!path.exists());

    let server = Server::start(&path).unwrap();
    client::connect(&path).unwrap();
    drop(server);
    assert!(!path.exists(), "dropping the server removes the socket too");
    // Nothing but the socket was ever left in the directory.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_live_socket_or_anything_but_a_socket_at_the_path_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let refusal = |path: &std::path::Path| match Server::start(path) {
        Ok(_) => panic!("started over {}", path.display()),
        Err(e) => e.to_string(),
    };

    // Another agent serving events there.
    let live = Server::start(&path).unwrap();
    assert_eq!(
        refusal(&path),
        "is a live socket (another tcp-info is serving events there); refusing to replace it"
    );
    client::connect(&path).unwrap();
    live.shutdown();

    std::fs::write(&path, b"precious").unwrap();
    assert_eq!(
        refusal(&path),
        "exists and is not a socket; refusing to replace it"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();

    std::fs::create_dir(&path).unwrap();
    assert_eq!(refusal(&path), "is a directory; refusing to replace it");
    std::fs::remove_dir(&path).unwrap();

    // A link to a dead socket elsewhere: not followed, not replaced.
    let target = dir.path().join("elsewhere.sock");
    drop(UnixListener::bind(&target).unwrap());
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert_eq!(refusal(&path), "is a symbolic link; refusing to replace it");
    assert!(std::fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(target.exists());
    // No private binding directory is left behind by a refusal.
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["elsewhere.sock", "events.sock"]);
}

#[test]
fn shutdown_leaves_a_file_that_replaced_ours_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let server = Server::start(&path).unwrap();
    // Another agent instance took the path over.
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    server.shutdown();
    assert!(path.exists());
    drop(other);
}

#[test]
fn shutdown_delivers_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let publisher = server.publisher();
    let conn = client::connect(server.path()).unwrap();
    harness::wait_until(DEADLINE, "client", || server.clients() == 1);
    for n in 0..100 {
        publisher.publish(&open_event(n));
    }
    server.shutdown();
    // Publishing after shutdown is a no-op, not an error.
    publisher.publish(&open_event(100));
    let got: Vec<FlowEvent> = conn.map(Result::unwrap).collect();
    assert_eq!(got, (0..100).map(open_event).collect::<Vec<_>>());
}

#[derive(Default)]
struct Recorder {
    opens: Vec<String>,
    closes: Vec<String>,
    unknown: Vec<i64>,
}

impl Handler for Recorder {
    fn open(&mut self, ev: &FlowEvent) {
        assert!(ev.id.is_some());
        self.opens.push(ev.uuid.clone());
    }
    fn close(&mut self, ev: &FlowEvent) {
        self.closes.push(ev.uuid.clone());
    }
    fn unknown(&mut self, code: i64, _line: &str) {
        self.unknown.push(code);
    }
}

/// A fake server that writes `text` to its first client and closes.
fn serve_text(path: &Path, text: &'static str) -> thread::JoinHandle<()> {
    let listener = UnixListener::bind(path).unwrap();
    thread::spawn(move || {
        use std::io::Write;
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(text.as_bytes()).unwrap();
    })
}

#[test]
fn handler_sees_opens_and_closes_and_skips_unknown_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let fake = serve_text(
        &path,
        concat!(
            r#"{"Event":0,"Timestamp":"2019-04-02T14:12:37Z","UUID":"a","ID":{"SPort":1,"DPort":2,"SrcIP":"1.2.3.4","DstIP":"::1","Interface":0,"Cookie":-1}}"#,
            "\n",
            r#"{"Event":9,"Timestamp":"2019-04-02T14:12:37Z","UUID":"a","ID":null}"#,
            "\n",
            r#"{"Event":1,"Timestamp":"2019-04-02T14:12:38Z","UUID":"a","ID":null}"#,
            "\n"
        ),
    );
    let mut recorder = Recorder::default();
    let end = client::connect(&path).unwrap().run(&mut recorder).unwrap();
    fake.join().unwrap();
    assert_eq!(end, End::ServerClosed);
    assert_eq!(recorder.opens, ["a"]);
    assert_eq!(recorder.closes, ["a"]);
    assert_eq!(recorder.unknown, [9]);
}

#[test]
fn malformed_line_ends_run_with_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.sock");
    let fake = serve_text(&path, "{\"Event\":0,\"Timestamp\":\n");
    let err = client::connect(&path)
        .unwrap()
        .run(&mut Recorder::default())
        .unwrap_err();
    fake.join().unwrap();
    assert!(
        matches!(err, ClientError::Malformed { line_number: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn stopper_ends_a_blocked_read_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let mut conn = client::connect(server.path()).unwrap();
    let stopper = conn.stopper().unwrap();
    let reader = thread::spawn(move || {
        let end = conn.run(&mut Recorder::default());
        end.unwrap()
    });
    harness::wait_until(DEADLINE, "client", || server.clients() == 1);
    stopper.stop();
    assert_eq!(reader.join().unwrap(), End::Stopped);
}

#[test]
fn connecting_to_a_missing_socket_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = client::connect(dir.path().join("nothing.sock"))
        .err()
        .unwrap();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing.sock"));
}

#[test]
fn disabled_publisher_accepts_events_silently() {
    let publisher = tcp_info::eventsocket::Publisher::disabled();
    publisher.publish(&open_event(1));
    assert_eq!(publisher.clients_dropped(), 0);
    let ev = open_event(2);
    assert_eq!(ev.event, TcpEvent::Open);
}

/// Whether the server closed `stream` (end of file) rather than keeping it.
fn closed_by_server(stream: &UnixStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    matches!((&*stream).read(&mut byte), Ok(0))
}

#[test]
fn one_user_gets_at_most_its_cap_of_clients() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        &dir.path().join("events.sock"),
        ServerOptions {
            max_clients_per_uid: 3,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let kept: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(server.path()).unwrap())
        .collect();
    harness::wait_until(DEADLINE, "three clients", || server.clients() == 3);
    for _ in 0..2 {
        let extra = UnixStream::connect(server.path()).unwrap();
        assert!(closed_by_server(&extra), "a fourth client was kept");
    }
    assert_eq!(server.clients(), 3);
    for stream in &kept {
        assert!(!closed_by_server(stream));
    }
    // A slot freed is a slot again.
    drop(kept);
    harness::wait_until(DEADLINE, "the clients to go", || server.clients() == 0);
    let again = UnixStream::connect(server.path()).unwrap();
    harness::wait_until(DEADLINE, "a client", || server.clients() == 1);
    assert!(!closed_by_server(&again));
}

#[test]
fn the_socket_file_gets_the_mode_and_group_asked_for() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    // The agent's own group: changing to it needs no privilege.
    let gid = nix::unistd::getegid().as_raw();
    for mode in [0o660, 0o600, 0o666] {
        let server = Server::start_with(
            &dir.path().join("events.sock"),
            ServerOptions {
                mode: Some(mode),
                group: Some(gid),
                ..ServerOptions::default()
            },
        )
        .unwrap();
        let meta = std::fs::metadata(server.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, mode);
        assert_eq!(meta.gid(), gid);
        let _client = UnixStream::connect(server.path()).unwrap();
        harness::wait_until(DEADLINE, "a client", || server.clients() == 1);
        server.shutdown();
    }
}
