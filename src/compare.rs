//! What counts as a significant change between two snapshots of one
//! connection — the rule that decides what is archived (same rule as M-Lab's
//! tcp-info, so archives carry the same records).

use inetdiag::tcp_info::{BUSY_TIME, LAST_DATA_SENT, PMTU};
use inetdiag::{DiagRecord, INET_DIAG_INFO, INET_DIAG_MSG_LEN};
use std::ops::Range;

use twox_hash::XxHash3_64;

/// Why a snapshot is (or is not) worth writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// Only timers, `last_*` ages, queue sizes or expiry moved.
    NoMajorChange,
    /// TCP state differs.
    StateChange,
    /// One side has no `tcp_info`.
    NoTcpInfo,
    /// A counter between `pmtu` and `busy_time` moved.
    Counts,
    /// A field before `last_data_sent` (state, options, rto, mss, …) moved.
    PreCounts,
    NewAttribute,
    LostAttribute,
    AttributeLength,
    /// An attribute other than `INET_DIAG_INFO` changed content.
    Other,
}

impl ChangeType {
    pub fn is_significant(self) -> bool {
        self != ChangeType::NoMajorChange
    }
}

/// `info[start..end]`, clipped to what the kernel sent.
fn span(info: &[u8], start: usize, end: usize) -> &[u8] {
    let len = info.len();
    &info[start.min(len)..end.min(len)]
}

/// A 64-bit hash of what [`compare`] looks at in one reply: the
/// state, every attribute other than `INET_DIAG_INFO` (headers, hence
/// layout and lengths, included), and the parts of tcp_info before
/// `last_data_sent` and from `pmtu` up to `busy_time`. Two replies of one
/// socket with equal fingerprints are no significant change, so the cache
/// keeps 16 bytes (and where the tcp_info was) where it kept the whole last
/// reply (~500 bytes), and the poll reads only the reply it has just
/// received.
///
/// Same rule as [`compare`] for replies whose attributes come in the same
/// order (the kernel's order is fixed); a reordering would count as a
/// change. It also covers bytes the rule skips — attribute padding, a
/// repeated attribute, kinds beyond the parser's mask — which the kernel
/// zeroes or never sends, so for its replies the two agree.
///
/// A change the hash does not see is a snapshot lost: two different
/// inputs collide with probability 2^-64, so at 100,000 significant
/// changes a second (10,000 connections all busy) the first miss is
/// expected after some five million years. A 128-bit hash (three
/// `xxh3_128`) cost 10 ns more per reply, ~0.1 ms of a 10,000-socket poll
/// (`examples/cache_walk.rs`), and bought nothing measurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(u64);

/// Seeds that keep the three hashed parts apart (a part's bytes moved into
/// another part hash differently).
const SEED_COUNTS: u64 = 0x636f_756e_7473;
const SEED_REST: u64 = 0x7265_7374;

impl Fingerprint {
    /// `None` when the reply has no tcp_info: such a snapshot always
    /// counts as a change (`ChangeType::NoTcpInfo`).
    pub fn of(record: &DiagRecord) -> Option<Self> {
        let info = record.attribute_span(INET_DIAG_INFO)?;
        Some(Self::over(record.payload(), record.msg().state(), info))
    }

    /// The fingerprint of a reply with TCP state `state` whose tcp_info
    /// payload is `payload[info]`, without parsing the rest: for a reply
    /// whose layout is known (see `inetdiag::attribute_kind_at`). `info`
    /// lies within `payload`, after inet_diag_msg (as that check ensures).
    pub fn over(payload: &[u8], state: u8, info: Range<usize>) -> Self {
        let at = |offset: usize| info.start + offset.min(info.len());
        let before = &payload[INET_DIAG_MSG_LEN..at(LAST_DATA_SENT)];
        let counts = &payload[at(PMTU)..at(BUSY_TIME)];
        let rest = &payload[info.end..];
        Self(
            XxHash3_64::oneshot_with_seed(u64::from(state), before)
                ^ XxHash3_64::oneshot_with_seed(SEED_COUNTS, counts).rotate_left(21)
                ^ XxHash3_64::oneshot_with_seed(SEED_REST, rest).rotate_left(42),
        )
    }
}

/// Compares a connection's new snapshot with its previous one: the rule
/// as M-Lab's tool writes it, and the reference [`Fingerprint`] is tested
/// against (the agent itself compares fingerprints).
pub fn compare(previous: &DiagRecord, current: &DiagRecord) -> ChangeType {
    if previous.msg().state() != current.msg().state() {
        return ChangeType::StateChange;
    }
    let (Some(a), Some(b)) = (
        previous.attribute(INET_DIAG_INFO),
        current.attribute(INET_DIAG_INFO),
    ) else {
        return ChangeType::NoTcpInfo;
    };
    if span(a, PMTU, BUSY_TIME) != span(b, PMTU, BUSY_TIME) {
        return ChangeType::Counts;
    }
    if span(a, 0, LAST_DATA_SENT) != span(b, 0, LAST_DATA_SENT) {
        return ChangeType::PreCounts;
    }
    let (was, is) = (previous.attribute_mask(), current.attribute_mask());
    if is & !was != 0 {
        return ChangeType::NewAttribute;
    }
    if was & !is != 0 {
        return ChangeType::LostAttribute;
    }
    let mut rest = is;
    while rest != 0 {
        let kind = rest.trailing_zeros() as u16;
        rest &= rest - 1;
        let (x, y) = (previous.attribute(kind), current.attribute(kind));
        let (x, y) = (x.unwrap_or_default(), y.unwrap_or_default());
        if x.len() != y.len() {
            return ChangeType::AttributeLength;
        }
        if kind != INET_DIAG_INFO && x != y {
            return ChangeType::Other;
        }
    }
    ChangeType::NoMajorChange
}

#[cfg(test)]
mod tests {
    use super::*;
    use inetdiag::tcp_info::*;
    use inetdiag::{
        INET_DIAG_CONG, INET_DIAG_MEMINFO, INET_DIAG_SHUTDOWN, TCP_ESTABLISHED, TCP_FIN_WAIT1,
    };

    /// A crafted reply: inet_diag_msg with `state`, then the attributes.
    fn record(state: u8, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut v = vec![0u8; 72];
        v[0] = inetdiag::AF_INET;
        v[1] = state;
        for (kind, payload) in attrs {
            v.extend_from_slice(&((payload.len() + 4) as u16).to_ne_bytes());
            v.extend_from_slice(&kind.to_ne_bytes());
            v.extend_from_slice(payload);
            while !v.len().is_multiple_of(4) {
                v.push(0);
            }
        }
        v
    }

    fn info() -> Vec<u8> {
        (0..232u32).map(|i| i as u8).collect()
    }

    fn with(mut info: Vec<u8>, offset: usize, value: u8) -> Vec<u8> {
        info[offset] ^= value;
        info
    }

    fn base(info: Vec<u8>) -> Vec<u8> {
        record(
            TCP_ESTABLISHED,
            &[
                (INET_DIAG_MEMINFO, vec![1; 16]),
                (INET_DIAG_INFO, info),
                (INET_DIAG_CONG, b"cubic\0".to_vec()),
            ],
        )
    }

    fn same(a: &[u8], b: &[u8]) -> bool {
        let fingerprint = |r: &[u8]| Fingerprint::of(&DiagRecord::parse(r).unwrap());
        let (a, b) = (fingerprint(a), fingerprint(b));
        a.is_some() && a == b
    }

    /// The full rule, cross-checked against the fingerprints: equal
    /// exactly when the rule says "no significant change".
    fn change(a: &[u8], b: &[u8]) -> ChangeType {
        let full = compare(
            &DiagRecord::parse(a).unwrap(),
            &DiagRecord::parse(b).unwrap(),
        );
        assert_eq!(
            same(a, b),
            !full.is_significant(),
            "fingerprints disagree: {full:?}"
        );
        full
    }

    #[test]
    fn fingerprints_see_through_timers_only() {
        let previous = base(info());
        assert!(same(&previous, &base(info())));
        for (offset, expect) in [
            (LAST_DATA_SENT, true),
            (LAST_ACK_RECV + 3, true),
            (BUSY_TIME, true),
            (SND_WND, true),
            (RTO, false),
            (PMTU, false),
            (BUSY_TIME - 1, false),
        ] {
            let current = base(with(info(), offset, 1));
            assert_eq!(same(&previous, &current), expect, "offset {offset}");
        }
    }

    proptest::proptest! {
        /// Whatever bytes are flipped (headers included), equal
        /// fingerprints never hide a significant change; and on an
        /// unchanged layout they are equal exactly when the rule finds no
        /// significant change.
        #[test]
        fn fingerprints_never_hide_a_significant_change(
            flips in proptest::collection::vec((0usize..400, 1u8..=255), 1..4)
        ) {
            let previous = base(info());
            let mut current = previous.clone();
            for (at, x) in flips {
                let at = at % current.len();
                current[at] ^= x;
            }
            if let (Ok(p), Ok(c)) = (DiagRecord::parse(&previous), DiagRecord::parse(&current)) {
                let significant = compare(&p, &c).is_significant();
                if same(&previous, &current) {
                    proptest::prop_assert!(!significant);
                }
                // (The rule skips attribute padding, which the kernel
                // always zeroes; fingerprints include it.)
                let headers_kept = previous.len() == current.len()
                    && [72usize, 92, 328].iter().all(|&h| previous[h..h + 4] == current[h..h + 4])
                    && previous[338..] == current[338..];
                if headers_kept {
                    proptest::prop_assert_eq!(same(&previous, &current), !significant);
                }
            }
        }
    }

    #[test]
    fn identical_snapshots_are_no_change() {
        assert_eq!(
            change(&base(info()), &base(info())),
            ChangeType::NoMajorChange
        );
    }

    #[test]
    fn state_change_is_significant() {
        let mut b = base(info());
        b[1] = TCP_FIN_WAIT1;
        assert_eq!(change(&base(info()), &b), ChangeType::StateChange);
    }

    #[test]
    fn missing_tcp_info_on_either_side_is_significant() {
        let no_info = record(TCP_ESTABLISHED, &[(INET_DIAG_MEMINFO, vec![1; 16])]);
        assert_eq!(change(&no_info, &base(info())), ChangeType::NoTcpInfo);
        assert_eq!(change(&base(info()), &no_info), ChangeType::NoTcpInfo);
        assert_eq!(change(&no_info, &no_info), ChangeType::NoTcpInfo);
    }

    #[test]
    fn counters_from_pmtu_to_busy_time_are_significant() {
        for offset in [
            PMTU,
            SND_CWND,
            BYTES_ACKED,
            BYTES_RECEIVED,
            DELIVERY_RATE + 7,
            BUSY_TIME - 1,
        ] {
            assert_eq!(
                change(&base(info()), &base(with(info(), offset, 1))),
                ChangeType::Counts,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn fields_before_last_data_sent_are_significant() {
        for offset in [STATE, CA_STATE, RTO, SND_MSS, UNACKED, FACKETS + 3] {
            assert_eq!(
                change(&base(info()), &base(with(info(), offset, 1))),
                ChangeType::PreCounts,
                "offset {offset}"
            );
        }
    }

    #[test]
    fn timers_and_later_fields_are_not_significant() {
        for offset in [
            LAST_DATA_SENT,
            LAST_ACK_SENT,
            LAST_DATA_RECV,
            LAST_ACK_RECV + 3,
            BUSY_TIME,
            RWND_LIMITED,
            BYTES_SENT,
            SND_WND,
        ] {
            assert_eq!(
                change(&base(info()), &base(with(info(), offset, 1))),
                ChangeType::NoMajorChange,
                "offset {offset}"
            );
        }
        // idiag_expires, queues and the like live in inet_diag_msg.
        let mut b = base(info());
        b[52] = 9;
        b[56] = 9;
        assert_eq!(change(&base(info()), &b), ChangeType::NoMajorChange);
    }

    #[test]
    fn attribute_appearing_or_vanishing_is_significant() {
        let mut attrs = vec![
            (INET_DIAG_MEMINFO, vec![1; 16]),
            (INET_DIAG_INFO, info()),
            (INET_DIAG_CONG, b"cubic\0".to_vec()),
        ];
        let a = record(TCP_ESTABLISHED, &attrs);
        attrs.push((INET_DIAG_SHUTDOWN, vec![1]));
        let b = record(TCP_ESTABLISHED, &attrs);
        assert_eq!(change(&a, &b), ChangeType::NewAttribute);
        assert_eq!(change(&b, &a), ChangeType::LostAttribute);
    }

    #[test]
    fn other_attribute_content_or_length_is_significant() {
        let a = base(info());
        let b = record(
            TCP_ESTABLISHED,
            &[
                (INET_DIAG_MEMINFO, vec![2; 16]),
                (INET_DIAG_INFO, info()),
                (INET_DIAG_CONG, b"cubic\0".to_vec()),
            ],
        );
        assert_eq!(change(&a, &b), ChangeType::Other);
        let c = record(
            TCP_ESTABLISHED,
            &[
                (INET_DIAG_MEMINFO, vec![1; 16]),
                (INET_DIAG_INFO, info()),
                (INET_DIAG_CONG, b"bbr\0".to_vec()),
            ],
        );
        assert_eq!(change(&a, &c), ChangeType::AttributeLength);
    }

    #[test]
    fn longer_tcp_info_from_a_newer_kernel_is_a_length_change_not_a_panic() {
        let mut longer = info();
        longer.extend_from_slice(&[0; 16]);
        assert_eq!(
            change(&base(info()), &base(longer)),
            ChangeType::AttributeLength
        );
        let short: Vec<u8> = info()[..100].to_vec();
        assert_eq!(
            change(&base(short.clone()), &base(short.clone())),
            ChangeType::NoMajorChange
        );
        assert_eq!(change(&base(short), &base(info())), ChangeType::Counts);
    }
}
