//! Malformed netlink input never panics: real sock_diag replies captured
//! from the kernel (`testdata/netlink/`), truncated and bit-flipped, fed to the
//! datagram walker, the reply parser, the change comparison and the cache —
//! the code the poller runs on every byte the kernel sends.

use inetdiag::netlink::{walk_datagram, DatagramStats, NLMSG_HDRLEN};
use inetdiag::replay::read_capture;
use inetdiag::{tcp_info as layout, DiagRecord, MAX_ATTRIBUTE_TYPE};
use tcp_info::cache::{Cache, Update};
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

/// One dump's datagrams exactly as received, with the sequence number and
/// port id they answer.
struct Dump {
    datagrams: Vec<Vec<u8>>,
    seq: u32,
    port: u32,
}

/// Real replies, captured from a namespace holding sockets in several
/// states and both families — listening, established with data,
/// half-closed, closing (`testdata/netlink/story.dumps`, written by
/// inetdiag's `capture_dumps` example) — and the datagrams they came in.
fn capture() -> (Vec<Vec<u8>>, Vec<Dump>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/netlink/story.dumps");
    let dumps = read_capture(&std::fs::read(path).expect("captured story")).expect("a capture");
    let payloads = dumps.iter().flat_map(|d| d.records()).collect();
    let dumps = dumps
        .into_iter()
        .map(|d| {
            let header = &d.datagrams[0];
            let word = |at: usize| u32::from_ne_bytes(header[at..at + 4].try_into().unwrap());
            Dump {
                seq: word(8),
                port: word(12),
                datagrams: d.datagrams,
            }
        })
        .collect();
    (payloads, dumps)
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
    // Two listeners and six connection ends, in every state they went
    // through; all with tcp_info but the orphaned FIN_WAIT2 end (a
    // timewait mini-socket, which has no tcp_info: the NoTcpInfo case).
    let with_info = payloads
        .iter()
        .filter(|p| {
            let r = DiagRecord::parse(p).expect("a real reply parses");
            r.attribute(inetdiag::INET_DIAG_INFO).is_some()
        })
        .count();
    assert!(
        with_info >= 14,
        "captured {with_info} replies with tcp_info"
    );
    assert!(with_info < payloads.len(), "and one without");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut cache = Cache::new();
    let (mut parsed, mut rejected) = (0usize, 0usize);
    for original in &payloads {
        let good = DiagRecord::parse(original).expect("a real reply parses");
        exercise(&good);
        cache.begin_cycle();
        cache.update(&good);
        for bad in mutations(original, 400, &mut rng) {
            // The poller's first look, before any parse: against the
            // cached layout of this very socket.
            cache.begin_cycle();
            let told_unchanged = cache.file_if_unchanged(&bad);
            match DiagRecord::parse(&bad) {
                Ok(record) => {
                    parsed += 1;
                    exercise(&record);
                    let _ = compare(&good, &record);
                    let _ = compare(&record, &good);
                    let update = cache.update(&record).0;
                    assert!(!told_unchanged || update == Update::Unchanged);
                }
                Err(_) => {
                    assert!(
                        !told_unchanged,
                        "a reply that does not parse told unchanged"
                    );
                    rejected += 1;
                }
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
