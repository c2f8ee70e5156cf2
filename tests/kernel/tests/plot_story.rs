//! A connection with a known story, archived by the agent, then told by
//! `tcp-info summary` and drawn by `tcp-info plot`: slow start through a
//! rate-limited loopback (tbf), a burst with forced losses (an iptables
//! rule dropping every 25th data segment on arrival: this kernel has no sch_netem),
//! an idle second, more data, and a close. The summary must show the
//! retransmits, the duration and the final state the archive holds; the
//! plot must draw every archived snapshot of the cwnd series at its value.
//!
//! With `TCPINFO_STORY_ARCHIVE=DIR` set, the archive is copied to DIR (how
//! the README's example picture was made).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::agent::agent_binary;
use harness::archive::{bytes_acked, idm, read_all, state, tcp_info_of};
use harness::svg::{check_linear, hex, polylines};
use harness::system::{run, tool_path};
use harness::traffic::socket_cookie;
use harness::{wait_until, Agent, Netns};
use inetdiag::tcp_info as layout;

const DEADLINE: Duration = Duration::from_secs(30);
const CHUNK: usize = 64 << 10;
/// How long the connection sits idle mid-story.
const IDLE: Duration = Duration::from_millis(1200);
const UUID_PREFIX: &str = "story";
// The plot's series colours (tcpinfo_analysis::plot).
const CWND: (u8, u8, u8) = (0xd6, 0x27, 0x28);
const SSTHRESH: (u8, u8, u8) = (0xff, 0x7f, 0x0e);

fn send(client: &mut TcpStream, bytes: usize) {
    let chunk = vec![0x5au8; CHUNK];
    for _ in 0..bytes / CHUNK {
        client.write_all(&chunk).unwrap();
    }
}

fn wait_received(received: &AtomicUsize, total: usize) {
    wait_until(
        DEADLINE,
        &format!("the server to receive {total} bytes"),
        || received.load(Ordering::Relaxed) >= total,
    );
}

/// Adds (`-A`) or deletes (`-D`) the loss: every 25th segment to `port`
/// dropped on arrival. (Dropped on the way out, a segment would count as
/// never sent: the sender gets an error and sends it again, no loss.)
fn iptables(ns: &Netns, op: &str, port: u16) {
    run(ns.command(tool_path("iptables")).args([
        op,
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        &port.to_string(),
        "-m",
        "statistic",
        "--mode",
        "nth",
        "--every",
        "25",
        "--packet",
        "0",
        "-j",
        "DROP",
    ]));
}

fn tcp_info(args: &[&str]) -> std::process::Output {
    let out = Command::new(agent_binary()).args(args).output().unwrap();
    eprintln!(
        "tcp-info {}: {}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn summary_and_plot_tell_a_connections_story() {
    let ns = Netns::new();
    // Reno, the textbook story: slow start, then a finite ssthresh and
    // additive increase after each loss. (Namespaces other than the first
    // may only pick from tcp_allowed_congestion_control, which always has
    // reno; this host's default may be BBR, which has no ssthresh story.)
    run(ns.command("sh").args([
        "-c",
        "echo reno > /proc/sys/net/ipv4/tcp_congestion_control",
    ]));
    // Ethernet-sized segments, and a 40 Mbit/s bottleneck whose queue
    // (30 ms) shows in the RTT and overflows in slow start.
    run(ns
        .command(tool_path("ip"))
        .args(["link", "set", "lo", "mtu", "1500"]));
    run(ns.command(tool_path("tc")).args([
        "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "40mbit", "burst", "20kb", "latency",
        "30ms",
    ]));
    let mut agent = Agent::builder()
        .netns(&ns)
        .uuid_prefix(UUID_PREFIX)
        .args(["-exclude-local=false", "-flush-interval=50ms"])
        .start();
    let out = agent.output.clone();

    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let server_port = listener.local_addr().unwrap().port();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    });
    let addr = format!("127.0.0.1:{server_port}");
    let mut client = ns.enter(|| TcpStream::connect(&addr).unwrap());
    let uuid = format!("{UUID_PREFIX}_{:016X}", socket_cookie(&client));

    // Slow start.
    let mut total = 2 << 20;
    send(&mut client, total);
    wait_received(&received, total);
    // Losses.
    iptables(&ns, "-A", server_port);
    send(&mut client, 2 << 20);
    total += 2 << 20;
    wait_received(&received, total);
    iptables(&ns, "-D", server_port);
    // The idle period is part of the story being recorded, not a wait for
    // something to happen.
    std::thread::sleep(IDLE);
    send(&mut client, 1 << 20);
    total += 1 << 20;
    client.shutdown(Shutdown::Write).unwrap();
    server.join().unwrap();
    assert_eq!(received.load(Ordering::Relaxed), total);
    drop(client);

    // The agent archives the close (destroy notice, or absence), and
    // closes the file: wait for a snapshot past ESTABLISHED.
    wait_until(DEADLINE, "the agent to archive the client's close", || {
        read_all(&out).iter().any(|s| {
            s.uuid == uuid
                && s.snapshots()
                    .last()
                    .is_some_and(|r| idm(r).state() != state::ESTABLISHED)
        })
    });
    assert!(agent.stop(DEADLINE).success());

    if let Some(keep) = std::env::var_os("TCPINFO_STORY_ARCHIVE") {
        run(Command::new("cp").arg("-r").arg(out.join(".")).arg(&keep));
    }

    let segments: Vec<_> = read_all(&out)
        .into_iter()
        .filter(|s| s.uuid == uuid)
        .collect();
    let snapshots: Vec<_> = segments.iter().flat_map(|s| s.snapshots()).collect();
    let with_info: Vec<_> = snapshots
        .iter()
        .filter(|r| {
            r.attributes
                .get(inetdiag::INET_DIAG_INFO as usize)
                .is_some_and(Option::is_some)
        })
        .collect();
    let cwnds: Vec<f64> = with_info
        .iter()
        .map(|r| f64::from(layout::u32_at(tcp_info_of(r), layout::SND_CWND).unwrap()))
        .collect();
    let last_retrans = layout::u32_at(
        tcp_info_of(with_info.last().unwrap()),
        layout::TOTAL_RETRANS,
    )
    .unwrap();

    // The summary.
    let dir = out.to_str().unwrap();
    let summary = tcp_info(&["summary", "-format=json", dir]);
    assert!(summary.status.success());
    let rows: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["uuid"] == uuid.as_str())
        .unwrap_or_else(|| panic!("no row for {uuid}: {rows}"));
    eprintln!("{row}");
    let first = snapshots.first().unwrap().timestamp.unix_millis();
    let last = snapshots.last().unwrap().timestamp.unix_millis();
    assert_eq!(row["snapshots"], snapshots.len());
    assert!(
        row["retransmits"].as_u64().unwrap() > 0,
        "no retransmits: {row}"
    );
    assert_eq!(row["retransmits"], last_retrans);
    let duration = row["duration_s"].as_f64().unwrap();
    assert!(
        (duration - (last - first) as f64 / 1e3).abs() < 0.002,
        "{row}"
    );
    assert!(duration >= IDLE.as_secs_f64(), "{row}");
    let final_state = inetdiag::state_name(idm(snapshots.last().unwrap()).state());
    assert_eq!(row["final_state"], final_state);
    assert_ne!(final_state, "ESTABLISHED");
    let acked = row["bytes_acked"].as_u64().unwrap();
    // The summary's count is the last archived one; the last snapshot may
    // be taken in FIN_WAIT1 with the final megabyte still in flight, but
    // what was sent before the idle period was acked by then. At most every
    // byte sent and the sequence numbers of the FINs.
    assert_eq!(acked, bytes_acked(with_info.last().unwrap()), "{row}");
    assert!(
        (total as u64 * 4 / 5..=total as u64 + 2).contains(&acked),
        "{row}"
    );
    assert_eq!(
        row["src"],
        format!("127.0.0.1:{}", idm(snapshots[0]).sport())
    );
    assert_eq!(row["dst"], format!("127.0.0.1:{server_port}"));
    assert_eq!(row["congestion_control"], "reno");
    assert_eq!(
        row["max_cwnd"],
        cwnds.iter().copied().fold(0.0, f64::max) as u64
    );

    // The plot, as SVG and PNG.
    let pictures = tempfile::tempdir().unwrap();
    let svg = pictures.path().join("story.svg");
    let png = pictures.path().join("story.png");
    for picture in [&svg, &png] {
        let p = picture.to_str().unwrap();
        assert!(tcp_info(&["plot", "-uuid", &uuid, dir, "-o", p])
            .status
            .success());
        assert!(
            picture.metadata().unwrap().len() > 10_000,
            "{p} is nearly empty"
        );
    }
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains(&uuid) && svg.contains(&format!("127.0.0.1:{server_port}")));
    assert!(
        svg.contains(final_state),
        "the close is marked on the time axis"
    );
    let lines = polylines(&svg);
    let cwnd = &lines
        .iter()
        .find(|l| l.stroke == hex(CWND))
        .expect("a cwnd line")
        .points;
    let ys: Vec<i32> = cwnd.iter().map(|p| p.1).collect();
    check_linear(&ys, &cwnds).unwrap();
    // After the losses ssthresh is a number, and drawn.
    assert!(lines
        .iter()
        .any(|l| l.stroke == hex(SSTHRESH) && l.points.len() > 1));
}
