//! Per-reply cost of the poller's cache with cold CPU caches, as between two
//! 10 ms polls (the kernel's dump walk evicts our data in between).
//!
//! Takes one real reply from the kernel (a loopback connection, the
//! archive's extensions) as a template, makes N replies with distinct
//! cookies laid out back to back as in a netlink buffer, and per cycle:
//! evicts the CPU caches, changes a tenth of the replies' byte counters,
//! then times, datagram by datagram (32 KiB copied into a receive buffer),
//! the poller's filing of every reply (`Cache::file_if_unchanged`, and parse +
//! `Cache::update` for those it does not tell apart) and `end_cycle`, less
//! the time of the copy alone (it stands for the kernel's, which warms the
//! buffer).
//!
//!     cargo run --release --example cache_walk [N...]    (default 1000 5000 10000)

use std::hint::black_box;
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use inetdiag::request::DumpRequest;
use inetdiag::tcp_info as layout;
use inetdiag::{DiagRecord, DiagSocket};
use tcp_info::cache::Cache;

const CYCLES: usize = 60;
/// Larger than the last-level cache of any machine this runs on.
const EVICT_BYTES: usize = 64 << 20;

fn template() -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let _server = listener.accept().unwrap();
    let mut socket = DiagSocket::new().unwrap();
    let mut found = None;
    let request = DumpRequest {
        family: inetdiag::AF_INET,
        protocol: inetdiag::IPPROTO_TCP,
        states: inetdiag::ARCHIVE_STATES,
        extensions: inetdiag::ARCHIVE_EXTENSIONS,
    };
    socket
        .dump(&request, |payload| {
            let record = DiagRecord::parse(payload).unwrap();
            if record.msg().dport() == port && record.attribute(inetdiag::INET_DIAG_INFO).is_some()
            {
                found = Some(payload.to_vec());
            }
        })
        .unwrap();
    found.expect("our loopback connection in the dump")
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N"))
        .collect();
    let counts = if counts.is_empty() {
        vec![1000, 5000, 10000]
    } else {
        counts
    };
    let template = template();
    let stride = (template.len() + 3) & !3;
    let info = DiagRecord::parse(&template)
        .unwrap()
        .attribute_span(inetdiag::INET_DIAG_INFO)
        .unwrap();
    let mut evict = vec![0u8; EVICT_BYTES];
    // The kernel fills dump datagrams up to about 32 KiB.
    let per_datagram = (32 << 10) / stride;
    let mut datagram = vec![0u8; 64 << 10];
    for n in counts {
        let mut replies = vec![0u8; n * stride];
        for i in 0..n {
            let r = &mut replies[i * stride..][..template.len()];
            r.copy_from_slice(&template);
            r[44..52].copy_from_slice(&(0x1000 + i as u64).to_le_bytes());
        }
        let mut cache = Cache::new();
        let mut ns_per_reply = Vec::with_capacity(CYCLES);
        for cycle in 0..CYCLES {
            for i in (cycle % 10..n).step_by(10) {
                let at = i * stride + info.start + layout::BYTES_ACKED;
                replies[at..at + 8].copy_from_slice(&(cycle as u64).to_ne_bytes());
            }
            for b in evict.iter_mut().step_by(64) {
                *b = b.wrapping_add(1);
            }
            black_box(&evict);
            let start = Instant::now();
            cache.begin_cycle();
            // As from the socket: a datagram's worth of replies is copied
            // into the receive buffer (warm), then walked.
            for chunk in replies.chunks(per_datagram * stride) {
                datagram[..chunk.len()].copy_from_slice(chunk);
                for reply in datagram[..chunk.len()].chunks(stride) {
                    // As the poller files a reply: told unchanged
                    // unparsed where it can be, else parsed.
                    let reply = &reply[..template.len()];
                    if !cache.file_if_unchanged(reply) {
                        let record = DiagRecord::parse(reply).unwrap();
                        black_box(cache.update(&record).0);
                    }
                }
            }
            cache.end_cycle(|_, _| {});
            let elapsed = start.elapsed();
            // The copy alone, from equally cold memory, is subtracted.
            for b in evict.iter_mut().step_by(64) {
                *b = b.wrapping_add(1);
            }
            black_box(&evict);
            let start = Instant::now();
            for chunk in replies.chunks(per_datagram * stride) {
                datagram[..chunk.len()].copy_from_slice(chunk);
                black_box(&datagram);
            }
            let copy = start.elapsed();
            ns_per_reply.push(elapsed.saturating_sub(copy).as_nanos() as f64 / n as f64);
        }
        // The first cycles insert; the rest are the steady state.
        let mut steady = ns_per_reply[2..].to_vec();
        steady.sort_by(f64::total_cmp);
        println!(
            "n={n} reply={} B  cold ns/reply (cache work): median {:.0}  p10 {:.0}  p90 {:.0}  (first cycle {:.0})",
            template.len(),
            steady[steady.len() / 2],
            steady[steady.len() / 10],
            steady[steady.len() * 9 / 10],
            ns_per_reply[0],
        );
    }
}
