//! Malformed netlink input never panics: real `SOCK_DIAG_BY_FAMILY` replies
//! captured from the kernel, truncated and bit-flipped, fed to the
//! datagram walker, the reply parser, the change comparison and the cache —
//! the code the poller runs on every byte the kernel sends.

use std::net::{Shutdown, TcpListener};

use harness::traffic::Connection;
use harness::Netns;
use inetdiag::netlink::{walk_datagram, DatagramStats, NLMSG_HDRLEN};
use inetdiag::request::DumpRequest;
use inetdiag::{tcp_info as layout, DiagRecord, DiagSocket, MAX_ATTRIBUTE_TYPE};
use tcp_info::cache::Cache;
use tcp_info::compare::{compare, ChangeType};

/// A small deterministic PRNG (xorshift64*): failures are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn requests() -> [DumpRequest; 2] {
    [inetdiag::AF_INET6, inetdiag::AF_INET].map(|family| DumpRequest {
        family,
        protocol: inetdiag::IPPROTO_TCP,
        states: inetdiag::ARCHIVE_STATES,
        extensions: inetdiag::ARCHIVE_EXTENSIONS,
    })
}

/// One dump's datagrams exactly as received, with the sequence number and
/// port id they answer.
struct Dump {
    datagrams: Vec<Vec<u8>>,
    seq: u32,
    port: u32,
}

/// Sends `request` on a raw `NETLINK_SOCK_DIAG` socket and keeps every
/// datagram of the reply, up to and including the one with `NLMSG_DONE`.
fn capture_datagrams(request: &DumpRequest, seq: u32) -> Dump {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain netlink socket calls on an fd we own, with correctly
    // sized sockaddr_nl structures and buffers.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let mut addr: libc::sockaddr_nl = std::mem::zeroed();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        assert_eq!(
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                len
            ),
            0
        );
        let mut bound: libc::sockaddr_nl = std::mem::zeroed();
        let mut bound_len = len;
        assert_eq!(
            libc::getsockname(
                fd.as_raw_fd(),
                (&mut bound as *mut libc::sockaddr_nl).cast(),
                &mut bound_len
            ),
            0
        );
        let bytes = request.to_bytes(seq);
        let kernel = addr; // nl_pid 0: the kernel
        let sent = libc::sendto(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            len,
        );
        assert_eq!(sent, bytes.len() as isize);
        let mut datagrams = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0);
            assert!(n > 0, "{}", std::io::Error::last_os_error());
            let datagram = buf[..n as usize].to_vec();
            let mut stats = DatagramStats::default();
            let progress = walk_datagram(&datagram, seq, bound.nl_pid, &mut stats, |_| {})
                .expect("the kernel's own reply walks cleanly");
            datagrams.push(datagram);
            if progress == inetdiag::netlink::Progress::Done {
                break;
            }
        }
        Dump {
            datagrams,
            seq,
            port: bound.nl_pid,
        }
    }
}

/// Real replies from a namespace holding sockets in several states and
/// both families: listening, established with data, half-closed.
fn capture() -> (Vec<Vec<u8>>, Vec<Dump>) {
    let ns = Netns::new();
    ns.enter(|| {
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind("[::1]:0").unwrap();
        let mut conns = Vec::new();
        for l in [&v4, &v6] {
            for i in 0..3 {
                let mut c = Connection::open(l);
                c.exchange(1000 * (i + 1));
                if i == 2 {
                    c.client.shutdown(Shutdown::Write).unwrap();
                }
                conns.push(c);
            }
        }
        let mut payloads = Vec::new();
        let mut socket = DiagSocket::new().unwrap();
        for r in requests() {
            socket.dump(&r, |p| payloads.push(p.to_vec())).unwrap();
        }
        let dumps = requests()
            .iter()
            .enumerate()
            .map(|(i, r)| capture_datagrams(r, 1000 + i as u32))
            .collect();
        drop(conns);
        (payloads, dumps)
    })
}

/// Touches everything a parsed record offers, as the poller and the
/// writer would.
fn exercise(record: &DiagRecord) {
    let m = record.msg();
    let _ = (
        m.family(),
        m.state(),
        m.sport(),
        m.dport(),
        m.src(),
        m.dst(),
    );
    let _ = (m.cookie(), m.interface(), m.inode(), m.as_bytes().len());
    let slots = record.attribute_slots();
    assert!(slots <= MAX_ATTRIBUTE_TYPE as usize + 1);
    for t in 0..=MAX_ATTRIBUTE_TYPE + 2 {
        if let Some(a) = record.attribute(t) {
            assert!(a.len() <= record.payload().len());
        }
    }
    if let Some(info) = record.attribute(inetdiag::INET_DIAG_INFO) {
        for offset in 0..info.len() + 8 {
            let _ = (
                layout::u8_at(info, offset),
                layout::u32_at(info, offset),
                layout::u64_at(info, offset),
            );
        }
    }
    // A record is no change from itself (a missing tcp_info always counts
    // as one, by the archive's rule).
    let expected = match record.attribute(inetdiag::INET_DIAG_INFO) {
        Some(_) => ChangeType::NoMajorChange,
        None => ChangeType::NoTcpInfo,
    };
    assert_eq!(compare(record, record), expected);
}

/// Every way of corrupting `original` this test tries: all truncations,
/// then `flips` random corruptions (bit flips, 0x00/0xff bytes, and
/// 16-bit length-field overwrites at random offsets).
fn mutations(original: &[u8], flips: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..original.len())
        .map(|n| original[..n].to_vec())
        .collect();
    for _ in 0..flips {
        let mut m = original.to_vec();
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(m.len());
            match rng.below(4) {
                0 | 1 => m[at] ^= 1 << rng.below(8),
                2 => m[at] = if rng.below(2) == 0 { 0 } else { 0xff },
                _ => {
                    let v = [0u16, 1, 3, 4, 5, 0xfff, 0xffff][rng.below(7)];
                    let end = (at + 2).min(m.len());
                    m[at..end].copy_from_slice(&v.to_ne_bytes()[..end - at]);
                }
            }
        }
        out.push(m);
    }
    out
}

#[test]
fn corrupted_copies_of_real_replies_never_panic_the_parser_comparison_or_cache() {
    let (payloads, _) = capture();
    // 1 + 1 listeners and 2 × 6 connection ends.
    assert!(payloads.len() >= 14, "captured {} replies", payloads.len());
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut cache = Cache::new();
    let (mut parsed, mut rejected) = (0usize, 0usize);
    for original in &payloads {
        let good = DiagRecord::parse(original).expect("a real reply parses");
        assert!(good.attribute(inetdiag::INET_DIAG_INFO).is_some());
        exercise(&good);
        cache.begin_cycle();
        cache.update(&good);
        for bad in mutations(original, 400, &mut rng) {
            match DiagRecord::parse(&bad) {
                Ok(record) => {
                    parsed += 1;
                    exercise(&record);
                    let _ = compare(&good, &record);
                    let _ = compare(&record, &good);
                    let _ = cache.update(&record).0;
                }
                Err(_) => rejected += 1,
            }
        }
        cache.end_cycle(|_, _| {});
    }
    // Both outcomes were exercised.
    assert!(
        parsed > 1000 && rejected > 1000,
        "parsed {parsed}, rejected {rejected}"
    );
}

#[test]
fn corrupted_copies_of_real_dump_datagrams_never_panic_the_walker() {
    let (_, dumps) = capture();
    let mut rng = Rng(0x5eed_1234_abcd_0002);
    let mut outcomes = [0usize; 2];
    for dump in &dumps {
        let mut records = 0;
        for datagram in &dump.datagrams {
            let mut stats = DatagramStats::default();
            walk_datagram(datagram, dump.seq, dump.port, &mut stats, |p| {
                exercise(&DiagRecord::parse(p).expect("a real reply parses"));
            })
            .unwrap();
            records += stats.records;

            // Cuts at and around every message boundary, and random ones.
            let mut cuts = Vec::new();
            let mut offset = 0;
            while offset + NLMSG_HDRLEN <= datagram.len() {
                let len = u32::from_ne_bytes(datagram[offset..offset + 4].try_into().unwrap());
                for d in [0usize, 1, 3, 4, 15, 16, 17, 72, 73] {
                    cuts.push(offset + d);
                }
                offset += (len as usize + 3) & !3;
            }
            cuts.extend((0..200).map(|_| rng.below(datagram.len())));
            let mut corrupted: Vec<Vec<u8>> = cuts
                .into_iter()
                .filter(|&c| c < datagram.len())
                .map(|c| datagram[..c].to_vec())
                .collect();
            for _ in 0..400 {
                let mut m = datagram.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(m.len());
                    m[at] ^= 1 << rng.below(8);
                }
                corrupted.push(m);
            }
            for bad in corrupted {
                let mut stats = DatagramStats::default();
                let result = walk_datagram(&bad, dump.seq, dump.port, &mut stats, |p| {
                    if let Ok(r) = DiagRecord::parse(p) {
                        exercise(&r);
                    }
                });
                outcomes[result.is_ok() as usize] += 1;
            }
        }
        assert!(records > 0, "a dump without replies");
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "ok/err: {outcomes:?}");
}
