//! The example client binary against a real event socket server.

use std::process::{Command, ExitStatus};
use std::time::Duration;

use harness::process::Signal;
use harness::{wait_until, Process};
use tcp_info::eventsocket::Server;
use tcpinfo_eventsocket::Timestamp;
use tcpinfo_eventsocket::{FlowEvent, ListenerChangeKind, ListenerEvent, SockId};

const DEADLINE: Duration = Duration::from_secs(20);

/// The client binary, its log read as it comes; killed on drop.
struct Client(Process);

impl Client {
    fn spawn(args: &[&str]) -> Client {
        Client(Process::spawn(
            Command::new(env!("CARGO_BIN_EXE_example-eventsocket-client"))
                .args(args)
                .env_remove("TCPINFO_EVENTSOCKET"),
        ))
    }

    /// Waits for the next log line containing `needle`; returns it.
    fn expect_line(&mut self, needle: &str) -> String {
        self.0.expect_line(DEADLINE, needle)
    }

    fn wait_exit(&mut self) -> ExitStatus {
        self.0.wait_exit(DEADLINE).0
    }
}

fn sample_open() -> FlowEvent {
    FlowEvent::open(
        Timestamp::parse("2019-04-02T14:12:37.511Z").unwrap(),
        "host_1554214357_unsafe_00000000000000AB",
        SockId {
            sport: 8080,
            dport: 40000,
            src_ip: "127.0.0.1".parse().unwrap(),
            dst_ip: "127.0.0.1".parse().unwrap(),
            interface: 0,
            cookie: 0xAB,
        },
    )
}

#[test]
fn logs_events_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let server = Server::start(&path).unwrap();
    let arg = format!("-tcpinfo.eventsocket={}", path.display());
    let mut client = Client::spawn(&[&arg]);
    wait_until(DEADLINE, "client connected", || server.clients() == 1);

    let publisher = server.publisher();
    publisher.publish(&sample_open());
    publisher.publish(&FlowEvent::close(
        Timestamp::parse("2019-04-02T14:12:38Z").unwrap(),
        "host_1554214357_unsafe_00000000000000AB",
    ));
    let open = client.expect_line("open ");
    assert!(
        open.ends_with(
            "open  host_1554214357_unsafe_00000000000000AB 2019-04-02 14:12:37.511 +0000 UTC &{8080 40000 127.0.0.1 127.0.0.1 0 171}"
        ),
        "{open}"
    );
    let close = client.expect_line("close ");
    assert!(
        close.ends_with(
            "close host_1554214357_unsafe_00000000000000AB 2019-04-02 14:12:38 +0000 UTC"
        ),
        "{close}"
    );

    client.0.signal(Signal::SIGTERM);
    client.expect_line("shutdown");
    assert!(client.wait_exit().success());
    server.shutdown();
}

#[test]
fn listener_changes_flag_subscribes_and_logs_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let server = Server::start(&path).unwrap();
    let arg = format!("-tcpinfo.eventsocket={}", path.display());
    let mut client = Client::spawn(&[&arg, "-listener-changes"]);
    // Events granted by the subscription follow its acknowledgement.
    client.expect_line("subscribed to [ListenerChange]");
    server.publisher().publish_listener_change(&ListenerEvent {
        timestamp: Timestamp::parse("2024-05-01T10:00:00.5Z").unwrap(),
        change: ListenerChangeKind::Opened,
        proto: "tcp".into(),
        family: "ipv4".into(),
        addr: "198.51.100.1".parse().unwrap(),
        port: 8080,
        scope: "public".into(),
        process: "nginx".into(),
    });
    let line = client.expect_line("listener ");
    assert!(
        line.ends_with(
            "listener opened tcp ipv4 198.51.100.1:8080 (public) by nginx 2024-05-01 10:00:00.5 +0000 UTC"
        ),
        "{line}"
    );
    server.shutdown();
    assert!(client.wait_exit().success());
}

#[test]
fn exits_with_a_clear_message_when_the_server_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let server = Server::start(&path).unwrap();
    let mut client = Client::spawn(&["-tcpinfo.eventsocket", path.to_str().unwrap()]);
    wait_until(DEADLINE, "client connected", || server.clients() == 1);
    server.shutdown();
    client.expect_line("tcp-info closed the event socket");
    assert!(client.wait_exit().success());
}

#[test]
fn waits_for_the_socket_to_appear() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.sock");
    let mut client = Client::spawn(&[&format!("-tcpinfo.eventsocket={}", path.display())]);
    client.expect_line("waiting up to");
    let server = Server::start(&path).unwrap();
    wait_until(DEADLINE, "client connected", || server.clients() == 1);
    server.shutdown();
    assert!(client.wait_exit().success());
}

#[test]
fn unreachable_socket_fails_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.sock");
    let mut client = Client::spawn(&[
        &format!("-tcpinfo.eventsocket={}", path.display()),
        "-connect-timeout=0",
    ]);
    let line = client.expect_line("error:");
    assert!(line.contains("missing.sock"), "{line}");
    assert_eq!(client.wait_exit().code(), Some(1));
}

#[test]
fn missing_socket_flag_is_a_usage_error() {
    let mut client = Client::spawn(&[]);
    client.expect_line("-tcpinfo.eventsocket path is required");
    assert_eq!(client.wait_exit().code(), Some(2));
}

/// Once a panic in the duration arithmetic (`Duration::from_secs_f64`).
#[test]
fn an_overlong_connect_timeout_is_a_usage_error() {
    let mut client = Client::spawn(&[
        "-tcpinfo.eventsocket=/nonexistent.sock",
        "-connect-timeout=99999999999999999999999h",
    ]);
    let line = client.expect_line("99999999999999999999999h");
    assert!(line.starts_with("example-eventsocket-client: "), "{line}");
    assert!(!line.contains("panicked"), "{line}");
    assert_eq!(client.wait_exit().code(), Some(2));
}
