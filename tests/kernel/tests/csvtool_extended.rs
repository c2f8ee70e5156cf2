//! csvtool's extended columns and Parquet output against the kernel: the
//! agent archives a loopback connection on this kernel (whose `tcp_info`
//! is 280 bytes), and `csvtool -extended` (CSV and Parquet) shows for the
//! newer fields exactly what getsockopt(TCP_INFO) returns for the same
//! sockets once they stand still.
//!
//! The story is made so that those fields are not all zero: ECN is on in
//! the namespace (so the receiver counts ECT(0) bytes in
//! `tcpi_received_e0_bytes`), and the sender's data is dropped on arrival
//! by an iptables rule until at least two retransmission timeouts have fired
//! (`tcpi_total_rto`), then let through (one recovery,
//! `tcpi_total_rto_recoveries`, and its duration, `tcpi_total_rto_time`).
//! Then the connection is idle with nothing in flight: every compared field
//! stands still, which the test checks (two equal reads) before comparing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::agent::csvtool_binary;
use harness::system::{run, tool_path};
use harness::{wait_for, wait_for_ok, Agent, Netns};

const DEADLINE: Duration = Duration::from_secs(30);
const PAYLOAD: usize = 256 << 10;

/// The fields after `tcpi_snd_wnd` in Linux 6.18's `struct tcp_info`,
/// written out here from the header rather than taken from the decoder
/// under test: (column, offset, bytes).
const FIELDS: [(&str, usize, usize); 14] = [
    ("TCP.RcvWnd", 232, 4),
    ("TCP.Rehash", 236, 4),
    ("TCP.TotalRTO", 240, 2),
    ("TCP.TotalRTORecoveries", 242, 2),
    ("TCP.TotalRTOTime", 244, 4),
    ("TCP.ReceivedCE", 248, 4),
    ("TCP.DeliveredE1Bytes", 252, 4),
    ("TCP.DeliveredE0Bytes", 256, 4),
    ("TCP.DeliveredCEBytes", 260, 4),
    ("TCP.ReceivedE1Bytes", 264, 4),
    ("TCP.ReceivedE0Bytes", 268, 4),
    ("TCP.ReceivedCEBytes", 272, 4),
    ("TCP.AccECNFailMode", 276, 2),
    ("TCP.AccECNOptSeen", 278, 2),
];

/// getsockopt(TCP_INFO) on `s`: the bytes the kernel filled in.
fn tcp_info(s: &TcpStream) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is valid for writes of `len` bytes and `len` is a valid
    // socklen_t; the kernel writes at most `len` bytes and stores the
    // number written in `len`. The descriptor is open for the call (`s` is
    // borrowed).
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt: {}", std::io::Error::last_os_error());
    buf[..len as usize].to_vec()
}

fn field(info: &[u8], offset: usize, size: usize) -> u64 {
    let b = &info[offset..offset + size];
    match size {
        2 => u16::from_ne_bytes([b[0], b[1]]).into(),
        4 => u32::from_ne_bytes([b[0], b[1], b[2], b[3]]).into(),
        _ => u64::from_ne_bytes(b.try_into().unwrap()),
    }
}

fn extended(info: &[u8]) -> Vec<(&'static str, u64)> {
    FIELDS
        .iter()
        .map(|&(name, at, size)| (name, field(info, at, size)))
        .collect()
}

const UNACKED: usize = 24;
const BYTES_ACKED: usize = 120;
const CA_STATE: usize = 1;

/// The fields compared, once two reads 100 ms apart agree (nothing moves).
fn settled(s: &TcpStream) -> Option<Vec<(&'static str, u64)>> {
    let a = tcp_info(s);
    std::thread::sleep(Duration::from_millis(100));
    let b = tcp_info(s);
    let idle = field(&b, UNACKED, 4) == 0 && b[CA_STATE] == 0;
    (idle && extended(&a) == extended(&b)).then(|| extended(&b))
}

/// `csvtool -extended -uuid` over the agent's output: header and rows (a
/// live file's unfinished last frame only ends that file's rows early).
fn extended_csv(dir: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let out = Command::new(csvtool_binary())
        .args(["-extended", "-uuid"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    (header, rows)
}

struct Columns(Vec<String>);

impl Columns {
    fn at(&self, name: &str) -> usize {
        self.0
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }
}

/// The last archived established-state row of local port `port` whose
/// extended fields equal `want`.
fn archived_row(
    header: &Columns,
    rows: &[Vec<String>],
    port: u16,
    want: &[(&str, u64)],
) -> Result<Vec<String>, String> {
    let (sport, state) = (header.at("IDM.SockID.SPort"), header.at("IDM.State"));
    let ours: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r.len() == header.0.len() && r[sport] == port.to_string() && r[state] == "1")
        .collect();
    let matches = |r: &Vec<String>| {
        want.iter()
            .all(|(name, v)| r[header.at(name)] == v.to_string())
    };
    match ours.iter().rev().find(|r| matches(r)) {
        Some(r) => Ok((*r).clone()),
        None => Err(format!(
            "{} rows for port {port}; last: {:?}",
            ours.len(),
            ours.last().map(|r| FIELDS
                .iter()
                .map(|(n, ..)| format!("{n}={}", r[header.at(n)]))
                .collect::<Vec<_>>())
        )),
    }
}

/// Drops (or stops dropping) what arrives for `port`. On arrival, not on
/// the way out: a packet dropped in OUTPUT is a local send failure, which
/// TCP meets with probes, not retransmission timeouts.
fn iptables(ns: &Netns, op: &str, port: u16) {
    run(ns.command(tool_path("iptables")).args([
        op,
        "INPUT",
        "-p",
        "tcp",
        "--dport",
        &port.to_string(),
        "-j",
        "DROP",
    ]));
}

#[test]
fn extended_columns_match_getsockopt_on_this_kernel_in_csv_and_parquet() {
    let ns = Netns::new();
    // Classic ECN both ways: the receiver's ECT(0) byte counter moves.
    ns.enter(|| std::fs::write("/proc/sys/net/ipv4/tcp_ecn", "1"))
        .unwrap();
    let mut agent = Agent::builder()
        .netns(&ns)
        .args(["-exclude-local=false", "-flush-interval=50ms"])
        .start();
    let out = agent.output.clone();

    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let server_port = listener.local_addr().unwrap().port();
    let mut client = ns.enter(|| TcpStream::connect(("127.0.0.1", server_port)).unwrap());
    let (server, _) = listener.accept().unwrap();
    let mut reader = server.try_clone().unwrap();
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let client_port = client.local_addr().unwrap().port();
    let info = tcp_info(&client);
    assert_eq!(info.len(), 280, "this test expects Linux 6.18's tcp_info");

    client.write_all(&vec![0x5a; PAYLOAD]).unwrap();
    wait_for(DEADLINE, "the payload to be acknowledged", || {
        let i = tcp_info(&client);
        (field(&i, BYTES_ACKED, 8) > PAYLOAD as u64 && field(&i, UNACKED, 4) == 0).then_some(())
    });

    // A blackhole for the client's data: retransmission timeouts.
    iptables(&ns, "-A", server_port);
    client.write_all(b"lost until the rule goes").unwrap();
    wait_for(
        Duration::from_secs(20),
        "two retransmission timeouts",
        || (field(&tcp_info(&client), 240, 2) >= 2).then_some(()),
    );
    iptables(&ns, "-D", server_port);

    let sender = wait_for(DEADLINE, "the sender to recover and idle", || {
        settled(&client)
    });
    let receiver = wait_for(DEADLINE, "the receiver to idle", || settled(&server));
    eprintln!("getsockopt: client {sender:?}\nserver {receiver:?}");
    let get = |v: &[(&str, u64)], name: &str| v.iter().find(|(n, _)| *n == name).unwrap().1;
    assert!(get(&sender, "TCP.TotalRTO") >= 2);
    assert!(get(&sender, "TCP.TotalRTORecoveries") >= 1);
    assert!(get(&sender, "TCP.TotalRTOTime") > 0);
    assert!(get(&sender, "TCP.RcvWnd") > 0);
    assert!(get(&receiver, "TCP.ReceivedE0Bytes") >= PAYLOAD as u64);

    // The agent archives those states (its snapshot after the last change
    // carries them); csvtool -extended shows them.
    let (client_row, server_row, header) = wait_for_ok(
        DEADLINE,
        "the archive to show the settled extended fields",
        || {
            let (header, rows) = extended_csv(&out);
            let header = Columns(header);
            let c = archived_row(&header, &rows, client_port, &sender)?;
            let s = archived_row(&header, &rows, server_port, &receiver)?;
            Ok::<_, String>((c, s, header))
        },
    );
    assert!(client_row[header.at("UUID")].ends_with(&format!(
        "_{:016X}",
        u64::from_str_radix(&client_row[header.at("IDM.SockID.Cookie")], 16).unwrap()
    )));
    assert!(client_row[header.at("File")].ends_with(".jsonl.zst"));
    assert_eq!(
        server_row[header.at("TCP.ReceivedE0Bytes")],
        get(&receiver, "TCP.ReceivedE0Bytes").to_string()
    );

    drop(client);
    assert!(drain.join().unwrap() > PAYLOAD);
    agent.stop(DEADLINE);

    // The same archive as Parquet: the client's settled row, typed.
    let parquet = out.join("conn.parquet");
    let status = Command::new(csvtool_binary())
        .args(["-format=parquet", "-extended", "-o"])
        .arg(&parquet)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let query = format!(
        "import duckdb; print(duckdb.sql(\"\"\"SELECT \"TCP.TotalRTO\", \"TCP.TotalRTORecoveries\", \
         \"TCP.TotalRTOTime\", \"TCP.RcvWnd\", typeof(\"TCP.TotalRTO\") FROM '{}' \
         WHERE \"IDM.SockID.SPort\" = {client_port} AND \"IDM.State\" = 1 \
         ORDER BY \"Timestamp\" DESC LIMIT 1\"\"\").fetchall()[0])",
        parquet.display()
    );
    let py = Command::new(tool_path("python3"))
        .args(["-c", &query])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let want = format!(
        "({}, {}, {}, {}, 'USMALLINT')",
        get(&sender, "TCP.TotalRTO"),
        get(&sender, "TCP.TotalRTORecoveries"),
        get(&sender, "TCP.TotalRTOTime"),
        get(&sender, "TCP.RcvWnd")
    );
    assert_eq!(String::from_utf8_lossy(&py.stdout).trim(), want);
}
