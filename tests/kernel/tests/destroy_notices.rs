//! Destroy notices from the real kernel: every TCP socket the kernel
//! destroys is announced with its final `tcp_info`, bytes sent in the last
//! moment included; no capability is needed to receive them.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::time::Duration;

use harness::traffic::Connection;
use harness::{wait_until, Netns};
use inetdiag::notices::{NoticeSocket, NoticeSource};
use inetdiag::tcp_info::{u64_at, BYTES_RECEIVED};
use inetdiag::{DiagRecord, INET_DIAG_INFO};

/// `(local port, remote port, state, tcpi_bytes_received)` of a notice.
fn summary(payload: &[u8]) -> (u16, u16, u8, Option<u64>) {
    let record = DiagRecord::parse(payload).expect("a notice parses");
    let msg = record.msg();
    let received = record
        .attribute(INET_DIAG_INFO)
        .and_then(|info| u64_at(info, BYTES_RECEIVED));
    (msg.sport(), msg.dport(), msg.state(), received)
}

#[test]
fn every_closed_connection_is_announced_with_its_final_tcp_info() {
    let ns = Netns::new();
    let seen = ns.enter(|| {
        let mut notices = NoticeSocket::subscribe(1 << 20).expect("root may subscribe");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut conn = Connection::open(&listener);
        let (client_port, server_port) = (
            conn.client.local_addr().unwrap().port(),
            listener.local_addr().unwrap().port(),
        );
        // The last bytes go out right before the close: no poll sees them.
        conn.client.write_all(&[7u8; 123_457]).unwrap();
        conn.client.shutdown(Shutdown::Write).unwrap();
        let mut sink = Vec::new();
        conn.server.read_to_end(&mut sink).unwrap();
        assert_eq!(sink.len(), 123_457);
        drop(conn);
        let mut seen = Vec::new();
        wait_until(Duration::from_secs(10), "both ends' notices", || {
            notices.notices(|p| seen.push(summary(p))).unwrap();
            let ends = |a: u16, b: u16| seen.iter().any(|s| (s.0, s.1) == (a, b));
            ends(client_port, server_port) && ends(server_port, client_port)
        });
        (seen, client_port, server_port)
    });
    let (seen, client_port, server_port) = seen;
    let server_end = seen
        .iter()
        .find(|s| (s.0, s.1) == (server_port, client_port))
        .unwrap();
    assert_eq!(server_end.2, inetdiag::TCP_CLOSE, "destroyed in TCP_CLOSE");
    assert_eq!(
        server_end.3,
        Some(123_457 + 1),
        "the final tcp_info counts every byte the client sent (and its FIN, one sequence number)"
    );
}

/// Subscribes, opens and closes one loopback connection, and returns the
/// `(local port, remote port)` of the notices that arrive for it (both ends).
fn notices_for_one_connection() -> Vec<(u16, u16)> {
    let mut notices = NoticeSocket::subscribe(1 << 20).expect("subscribed");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let conn = Connection::open(&listener);
    let client_port = conn.client.local_addr().unwrap().port();
    drop(conn);
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(10), "both ends' notices", || {
        notices
            .notices(|p| {
                let (local, remote, _, _) = summary(p);
                if local == client_port || remote == client_port {
                    seen.push((local, remote));
                }
            })
            .unwrap();
        seen.len() >= 2
    });
    seen
}

/// Linux (6.18 here) lets any process join the TCP destroy groups, as it
/// lets any process dump sockets: `NETLINK_SOCK_DIAG` is created with
/// `NL_CFG_F_NONROOT_RECV`. The agent needs no capability for notices.
#[test]
fn a_process_without_any_capability_receives_notices() {
    if std::env::var_os("TCPINFO_NOTICES_UNPRIVILEGED").is_some() {
        assert_eq!(notices_for_one_connection().len(), 2);
        return;
    }
    let ns = Netns::new();
    let output = ns
        .command("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_process_without_any_capability_receives_notices",
            "--nocapture",
        ])
        .env("TCPINFO_NOTICES_UNPRIVILEGED", "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the unprivileged run: {stdout}{stderr}"
    );
}
