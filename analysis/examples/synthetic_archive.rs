//! Writes a synthetic long connection's archive, for measuring `tcp-info
//! summary` and `tcp-info plot` (BENCHMARKS.md): by default 60,000
//! snapshots over 10 minutes (one every 10 ms, the agent's default poll
//! interval, every one a change), in zstd frames of 100 lines as the
//! agent's flushes leave them, with the 280-byte tcp_info of Linux 6.18.
//!
//! Usage: `cargo run --release -p tcpinfo-analysis --example synthetic_archive -- DIR [SNAPSHOTS]`
//! writes `DIR/2026/01/01/bench_1767225600_0000000000000001.00000.jsonl.zst`.

use std::io::Write;
use std::path::PathBuf;

use inetdiag::tcp_info as ti;
use tcpinfo_archive::{
    naming, write_attributes, write_line_start, write_metadata_line, write_raw_idm, Metadata,
    Timestamp,
};

const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const INFO_LEN: usize = 280;
const LINES_PER_FRAME: u64 = 100;
const AF_INET: u8 = 2;

fn put(info: &mut [u8], at: usize, bytes: &[u8]) {
    info[at..at + bytes.len()].copy_from_slice(bytes);
}

/// `struct inet_diag_msg` (linux/inet_diag.h) of an established IPv4
/// connection 198.51.100.1:443 → 198.51.100.2:50000.
fn inet_diag_msg(cookie: u64) -> [u8; 72] {
    let mut m = [0u8; 72];
    m[0] = AF_INET;
    m[1] = 1; // TCP_ESTABLISHED
    put(&mut m, 4, &443u16.to_be_bytes());
    put(&mut m, 6, &50000u16.to_be_bytes());
    put(&mut m, 8, &[198, 51, 100, 1]);
    put(&mut m, 24, &[198, 51, 100, 2]);
    put(&mut m, 44, &(cookie as u32).to_ne_bytes());
    put(&mut m, 48, &((cookie >> 32) as u32).to_ne_bytes());
    m
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .expect("usage: synthetic_archive DIR [SNAPSHOTS]"),
    );
    let snapshots: u64 = args
        .next()
        .map_or(60_000, |n| n.parse().expect("SNAPSHOTS"));
    let cookie = 1;
    let uuid = naming::uuid("bench_1767225600", cookie);
    let start = Timestamp::from_unix_millis(START_MS);
    let path = naming::segment_path(&dir, start.utc_date(), &uuid, 0);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());

    let idm = inet_diag_msg(cookie);
    let cong = b"cubic\0";
    let mut info = [0u8; INFO_LEN];
    let mut lines = Vec::with_capacity(1 << 20);
    write_metadata_line(
        &mut lines,
        &Metadata {
            uuid: uuid.clone(),
            sequence: 0,
            start_time: start,
        },
    );
    let (mut acked, mut retrans) = (0u64, 0u32);
    for i in 0..snapshots {
        // A sawtooth cwnd with a loss every 2,000 snapshots (20 s), an RTT
        // wobbling around 40 ms, steady progress.
        let phase = (i % 2000) as u32;
        let cwnd = 20 + phase / 10;
        if phase == 0 && i > 0 {
            retrans += 3;
        }
        acked += 1448 * u64::from(cwnd) / 4;
        let rtt = 40_000 + (i * 7919 % 5000) as u32;
        put(&mut info, ti::STATE, &[1]);
        put(&mut info, ti::RTT, &rtt.to_ne_bytes());
        put(&mut info, ti::MIN_RTT, &40_000u32.to_ne_bytes());
        put(&mut info, ti::SND_CWND, &cwnd.to_ne_bytes());
        put(&mut info, ti::SND_SSTHRESH, &(20 + 100u32).to_ne_bytes());
        put(&mut info, ti::TOTAL_RETRANS, &retrans.to_ne_bytes());
        let rate = u64::from(cwnd) * 1448 * 1_000_000 / u64::from(rtt);
        put(&mut info, ti::DELIVERY_RATE, &rate.to_ne_bytes());
        put(&mut info, ti::PACING_RATE, &(rate * 2).to_ne_bytes());
        put(&mut info, ti::BYTES_ACKED, &acked.to_ne_bytes());
        put(
            &mut info,
            ti::SEGS_OUT,
            &((acked / 1448) as u32).to_ne_bytes(),
        );
        put(
            &mut info,
            ti::SEGS_IN,
            &((acked / 2896) as u32).to_ne_bytes(),
        );

        let t = Timestamp::from_unix_millis(START_MS + i as i64 * 10);
        write_line_start(&mut lines, t.rfc3339().as_str());
        write_raw_idm(&mut lines, &idm);
        // INET_DIAG_INFO is type 2, INET_DIAG_CONG type 4.
        let attributes = [None, None, Some(&info[..]), None, Some(&cong[..])];
        write_attributes(&mut lines, attributes.into_iter());
        lines.extend_from_slice(b"}\n");
        if (i + 1).is_multiple_of(LINES_PER_FRAME) || i + 1 == snapshots {
            file.write_all(&zstd::encode_all(&lines[..], 3).unwrap())
                .unwrap();
            lines.clear();
        }
    }
    file.flush().unwrap();
    println!("{}", path.display());
}
