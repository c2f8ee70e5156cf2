//! Kernel replies: a datagram of a `SOCK_DIAG_BY_FAMILY` dump, and a
//! datagram of destroy notices, through the parsers, the poller's cache
//! and change rule, and the archive line the writers make of a record.

use inetdiag::netlink::{walk_datagram, DatagramStats, NLMSG_HDRLEN};
use inetdiag::notices::walk_notices;
use inetdiag::{DiagRecord, MAX_ATTRIBUTE_TYPE};
use tcp_info::cache::{Cache, Update};
use tcp_info::compare::{compare, Fingerprint};
use tcpinfo_archive::RecordBuf;

use crate::assert_one_line;

/// One input is one datagram of a dump's reply. The dump's sequence number
/// and port id are taken from its first message, so that the walk does
/// not skip everything as stale.
pub fn netlink_dump(data: &[u8]) {
    let (seq, port) = match data.get(..NLMSG_HDRLEN) {
        Some(h) => (
            u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        ),
        None => (0, 0),
    };
    let mut payloads = Vec::new();
    let mut stats = DatagramStats::default();
    let walked = walk_datagram(data, seq, port, &mut stats, |p| payloads.push(p.to_vec()));
    if let Err(e) = walked {
        assert_one_line("netlink", &e.to_string());
    }
    assert_eq!(stats.records, payloads.len());
    records(&payloads);
}

/// One input is one datagram received on the destroy-notice groups.
pub fn destroy_notice(data: &[u8]) {
    let mut payloads = Vec::new();
    match walk_notices(data, &mut |p: &[u8]| payloads.push(p.to_vec())) {
        Ok(n) => assert_eq!(n, payloads.len()),
        Err(e) => assert_one_line("notice", &e.to_string()),
    }
    records(&payloads);
}

/// What the agent does with each reply or notice payload: parse it, cache
/// it (compare with the cached one), and write its archive line, which must
/// decode back to the bytes the kernel sent.
fn records(payloads: &[Vec<u8>]) {
    let mut cache = Cache::new();
    let mut previous: Option<&[u8]> = None;
    let mut line = Vec::new();
    let mut decoded = RecordBuf::new();
    for payload in payloads {
        cache.begin_cycle();
        // The poller's first look, before any parse.
        let told_unchanged = cache.file_if_unchanged(payload);
        let record = match DiagRecord::parse(payload) {
            Ok(record) => record,
            Err(e) => {
                assert!(
                    !told_unchanged,
                    "a reply that does not parse told unchanged"
                );
                assert_one_line("record", &e.to_string());
                continue;
            }
        };
        let msg = record.msg();
        let _ = (msg.src(), msg.dst(), msg.cookie(), msg.interface());
        let _ = inetdiag::state_name(msg.state());
        assert!(record.attribute_slots() <= usize::from(MAX_ATTRIBUTE_TYPE) + 1);
        for kind in 0..=MAX_ATTRIBUTE_TYPE {
            if let Some(span) = record.attribute_span(kind) {
                assert_eq!(record.attribute(kind), payload.get(span));
            }
        }
        if let Some(prev) = previous.and_then(|p| DiagRecord::parse(p).ok()) {
            // Equal fingerprints never hide a change the rule sees.
            let same = Fingerprint::of(&prev).is_some_and(|f| Some(f) == Fingerprint::of(&record));
            assert!(
                !(same && compare(&prev, &record).is_significant()),
                "equal fingerprints for a significant change"
            );
        }
        let update = cache.update(&record).0;
        assert!(
            !told_unchanged || update == Update::Unchanged,
            "told unchanged unparsed, {update:?} parsed"
        );
        // The same reply again, as from the next dump: unchanged, unparsed,
        // whenever it has a tcp_info to compare.
        cache.begin_cycle();
        assert_eq!(
            cache.file_if_unchanged(payload),
            Fingerprint::of(&record).is_some(),
            "the same reply again"
        );
        previous = Some(payload);

        line.clear();
        tcpinfo_archive::write_line_start(&mut line, "2019-04-02T14:12:37.511Z");
        tcpinfo_archive::write_raw_idm(&mut line, msg.as_bytes());
        tcpinfo_archive::write_attributes(
            &mut line,
            (0..record.attribute_slots() as u16).map(|t| record.attribute(t)),
        );
        line.extend_from_slice(b"}");
        decoded
            .parse(&line)
            .unwrap_or_else(|e| panic!("the archive line of a parsed record does not decode: {e}"));
        assert_eq!(decoded.raw_idm(), Some(&msg.as_bytes()[..]));
        for kind in 0..record.attribute_slots() {
            assert_eq!(
                decoded.attribute(kind),
                record.attribute(kind as u16),
                "attribute {kind} changed on its way through the archive line"
            );
        }
    }
    let _ = cache.end_cycle(|_, _| {});
}
