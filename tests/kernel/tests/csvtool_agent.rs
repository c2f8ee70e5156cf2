//! End to end: our agent archives a loopback connection, the archive is
//! converted to CSV, and the CSV agrees with what `ss -tin` reported for
//! the same socket at the same time.
//!
//! The connection transfers data and then goes idle; `ss` is read once the
//! sender has nothing unacknowledged, so the kernel's numbers stand still,
//! and the test waits (by polling the archive, with a deadline) until the
//! agent has archived that idle state.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use harness::archive::{archive_files, csv_rows};
use harness::system::tool_path;
use harness::{wait_for, wait_for_ok, Agent, Netns};
use tcpinfo_archive::csv;

const PAYLOAD: usize = 4 << 20;
const DEADLINE: Duration = Duration::from_secs(30);

/// The fields of one `ss -tin` info line this test compares.
#[derive(Debug)]
struct Ss {
    rtt_us: f64,
    cwnd: u64,
    bytes_acked: u64,
    unacked: u64,
}

/// `ss -tin` for the established socket with local port `port`, inside
/// `ns`.
fn ss(ns: &Netns, port: u16) -> Option<Ss> {
    let out = ns
        .command(tool_path("ss"))
        .args([
            "-tinH",
            "state",
            "established",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut rtt_us, mut cwnd, mut bytes_acked, mut unacked) = (None, None, None, 0);
    for token in text.split_whitespace() {
        if let Some(v) = token.strip_prefix("rtt:") {
            let ms: f64 = v.split('/').next()?.parse().ok()?;
            rtt_us = Some(ms * 1000.0);
        } else if let Some(v) = token.strip_prefix("cwnd:") {
            cwnd = v.parse().ok();
        } else if let Some(v) = token.strip_prefix("bytes_acked:") {
            bytes_acked = v.parse().ok();
        } else if let Some(v) = token.strip_prefix("unacked:") {
            unacked = v.parse().ok()?;
        }
    }
    Some(Ss {
        rtt_us: rtt_us?,
        cwnd: cwnd?,
        bytes_acked: bytes_acked?,
        unacked,
    })
}

/// Every archive under `dir` as CSV (one header), skipping files the
/// agent is still in the middle of writing.
fn csv_of(dir: &Path) -> String {
    let mut all = csv::HEADER.as_bytes().to_vec();
    for f in archive_files(dir) {
        let Ok(file) = std::fs::File::open(&f) else {
            continue;
        };
        // A live file may end in an unfinished frame: its rows so far.
        all.extend(csv_rows(&f.display().to_string(), file).0);
    }
    String::from_utf8(all).unwrap()
}

/// The rows of `csv` for the socket with local port `sport`, as maps from
/// column index; with the column indices of the fields compared.
struct Rows {
    sport: usize,
    rtt: usize,
    cwnd: usize,
    bytes_acked: usize,
}

impl Rows {
    fn new() -> Self {
        let header: Vec<&str> = csv::HEADER.trim_end().split(',').collect();
        let col = |name| header.iter().position(|h| *h == name).unwrap();
        Rows {
            sport: col("IDM.SockID.SPort"),
            rtt: col("TCP.RTT"),
            cwnd: col("TCP.SndCwnd"),
            bytes_acked: col("TCP.BytesAcked"),
        }
    }

    /// (rtt µs, cwnd, bytes_acked) of every archived snapshot of `sport`.
    fn of(&self, csv: &str, sport: u16) -> Vec<(f64, u64, u64)> {
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|c| c.len() == 105 && c[self.sport] == sport.to_string())
            .filter_map(|c| {
                Some((
                    c[self.rtt].parse().ok()?,
                    c[self.cwnd].parse().ok()?,
                    c[self.bytes_acked].parse().ok()?,
                ))
            })
            .collect()
    }
}

#[test]
fn archived_connection_converts_and_agrees_with_ss() {
    let ns = Netns::new();
    let mut agent = Agent::builder()
        .netns(&ns)
        .args(["-exclude-local=false", "-flush-interval=50ms"])
        .start();
    let out = agent.output.clone();

    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let mut client = ns.enter(|| TcpStream::connect(addr).unwrap());
    let port = client.local_addr().unwrap().port();
    let chunk = vec![0x5au8; 1 << 16];
    for _ in 0..PAYLOAD / chunk.len() {
        client.write_all(&chunk).unwrap();
    }

    // Idle, and nothing in flight: the kernel's numbers now stand still.
    let seen = wait_for(DEADLINE, "the connection to go idle", || {
        ss(&ns, port).filter(|s| s.unacked == 0 && s.bytes_acked >= PAYLOAD as u64)
    });

    // Wait for the agent to archive that idle state.
    let rows = Rows::new();
    let archived = wait_for_ok(
        DEADLINE,
        &format!(
            "the agent to archive bytes_acked={} for port {port}",
            seen.bytes_acked
        ),
        || {
            let snaps = rows.of(&csv_of(&out), port);
            let last = snaps.iter().rev().find(|s| s.2 == seen.bytes_acked);
            last.copied().ok_or_else(|| format!("{:?}", snaps.last()))
        },
    );
    let (rtt_us, cwnd, bytes_acked) = archived;
    eprintln!("ss: {seen:?}; csv: rtt={rtt_us} cwnd={cwnd} bytes_acked={bytes_acked}");
    assert_eq!(bytes_acked, seen.bytes_acked);
    // ss prints rtt in ms with three decimals.
    assert!(
        (rtt_us - seen.rtt_us).abs() <= 1.0 + seen.rtt_us * 0.01,
        "rtt: csv {rtt_us} µs, ss {} µs",
        seen.rtt_us
    );
    assert_eq!(cwnd, seen.cwnd, "cwnd: csv {cwnd}, ss {}", seen.cwnd);

    drop(client);
    assert_eq!(server.join().unwrap(), PAYLOAD);
    // SIGTERM: the agent flushes and closes its files.
    agent.stop(DEADLINE);
}
