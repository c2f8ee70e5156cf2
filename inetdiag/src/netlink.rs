//! Walking the `struct nlmsghdr`s of one received datagram (linux/netlink.h).

use crate::{Error, SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK};

pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
/// Set by the kernel when the table changed while it was being dumped: the
/// dump may have missed or repeated entries.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;

/// Where a dump stands after one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More datagrams follow.
    More,
    /// `NLMSG_DONE` seen: the dump is complete.
    Done,
}

/// Counts for one datagram or one whole dump.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DatagramStats {
    /// `SOCK_DIAG_BY_FAMILY` (or `TCPDIAG_GETSOCK`) replies handed to the
    /// callback.
    pub records: usize,
    /// Messages with another sequence number or port id: leftovers of an
    /// earlier, abandoned dump. Skipped.
    pub stale: usize,
    /// The kernel flagged the dump as interrupted (`NLM_F_DUMP_INTR`).
    pub interrupted: bool,
}

/// Walks one datagram of the reply to dump `seq` sent from port `port_id`,
/// handing each reply payload (`SOCK_DIAG_BY_FAMILY`, or `TCPDIAG_GETSOCK`
/// for an all-families dump) to `on_record` in place.
pub fn walk_datagram(
    data: &[u8],
    seq: u32,
    port_id: u32,
    stats: &mut DatagramStats,
    mut on_record: impl FnMut(&[u8]),
) -> Result<Progress, Error> {
    let mut offset = 0;
    while offset < data.len() {
        let (message, next) = split_message(data, offset)?;
        offset = next;
        let Message {
            kind,
            flags,
            seq: msg_seq,
            port: msg_port,
            payload,
        } = message;

        if msg_seq != seq || !from_kernel_to(msg_port, port_id) {
            stats.stale += 1;
            continue;
        }
        if flags & NLM_F_DUMP_INTR != 0 {
            stats.interrupted = true;
        }
        match kind {
            SOCK_DIAG_BY_FAMILY | TCPDIAG_GETSOCK => {
                stats.records += 1;
                on_record(payload);
            }
            NLMSG_DONE => {
                // A dump may end with a negative errno in place of 0
                // (netlink_dump_done in net/netlink/af_netlink.c).
                let errno = errno_of(payload);
                if errno != 0 {
                    return Err(Error::Kernel { errno });
                }
                return Ok(Progress::Done);
            }
            NLMSG_ERROR => {
                let errno = errno_of(payload);
                // errno 0 is an acknowledgement, not a failure.
                if errno != 0 {
                    return Err(Error::Kernel { errno });
                }
            }
            NLMSG_NOOP => {}
            other => return Err(Error::UnexpectedType { kind: other }),
        }
    }
    Ok(Progress::More)
}

/// One `struct nlmsghdr` and its payload.
pub(crate) struct Message<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub port: u32,
    pub payload: &'a [u8],
}

/// The message at `offset` in datagram `data`, and where the next one
/// starts (NLMSG_ALIGN: on a 4-byte boundary).
pub(crate) fn split_message(data: &[u8], offset: usize) -> Result<(Message<'_>, usize), Error> {
    let truncated = Error::Truncated {
        offset,
        len: data.len(),
    };
    let rest = &data[offset..];
    let Some(h) = rest.get(..NLMSG_HDRLEN) else {
        return Err(truncated);
    };
    let u32_at = |at: usize| u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let len = u32_at(0) as usize;
    if len < NLMSG_HDRLEN || len > rest.len() {
        return Err(truncated);
    }
    let message = Message {
        kind: u16::from_ne_bytes([h[4], h[5]]),
        flags: u16::from_ne_bytes([h[6], h[7]]),
        seq: u32_at(8),
        port: u32_at(12),
        payload: &rest[NLMSG_HDRLEN..len],
    };
    Ok((message, offset + ((len + 3) & !3)))
}

/// Whether a message with port id `port` is the kernel's answer to the
/// socket bound to `port_id`: port id 0 is the kernel's answer to an
/// unbound (auto-bound) socket on some kernels; anything else must be ours.
pub(crate) fn from_kernel_to(port: u32, port_id: u32) -> bool {
    port == port_id || port == 0
}

/// The positive errno of an `NLMSG_ERROR` / `NLMSG_DONE` payload (which
/// carries it negated); a payload too short to hold one is `EBADMSG`.
pub(crate) fn errno_of(payload: &[u8]) -> i32 {
    match payload.get(..4) {
        Some(b) => i32::from_ne_bytes([b[0], b[1], b[2], b[3]]).wrapping_neg(),
        None => libc::EBADMSG,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, flags: u16, seq: u32, port: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&port.to_ne_bytes());
        v.extend_from_slice(payload);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    fn walk(data: &[u8]) -> (Result<Progress, Error>, Vec<Vec<u8>>, DatagramStats) {
        let mut got = Vec::new();
        let mut stats = DatagramStats::default();
        let r = walk_datagram(data, 7, 99, &mut stats, |p| got.push(p.to_vec()));
        (r, got, stats)
    }

    #[test]
    fn hands_over_records_and_finishes_on_done() {
        let mut d = message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, 7, 99, &[1; 72]);
        d.extend(message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, 7, 99, &[2; 80]));
        d.extend(message(NLMSG_DONE, NLM_F_MULTI, 7, 99, &0i32.to_ne_bytes()));
        let (r, got, stats) = walk(&d);
        assert_eq!(r.unwrap(), Progress::Done);
        assert_eq!(got, vec![vec![1; 72], vec![2; 80]]);
        assert_eq!(stats.records, 2);
    }

    #[test]
    fn a_datagram_without_done_asks_for_more() {
        let d = message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, 7, 99, &[1; 72]);
        assert_eq!(walk(&d).0.unwrap(), Progress::More);
    }

    #[test]
    fn kernel_error_surfaces_its_errno() {
        let d = message(NLMSG_ERROR, 0, 7, 99, &(-libc::EPERM).to_ne_bytes());
        match walk(&d).0 {
            Err(Error::Kernel { errno }) => assert_eq!(errno, libc::EPERM),
            other => panic!("expected a kernel error, got {other:?}"),
        }
    }

    #[test]
    fn done_with_errno_is_an_error() {
        let d = message(NLMSG_DONE, 0, 7, 99, &(-libc::EINTR).to_ne_bytes());
        assert!(matches!(walk(&d).0, Err(Error::Kernel { errno }) if errno == libc::EINTR));
    }

    #[test]
    fn stale_sequence_and_foreign_port_are_skipped() {
        let mut d = message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, 6, 99, &[1; 72]);
        d.extend(message(SOCK_DIAG_BY_FAMILY, NLM_F_MULTI, 7, 1234, &[1; 72]));
        d.extend(message(NLMSG_DONE, NLM_F_MULTI, 6, 99, &0i32.to_ne_bytes()));
        let (r, got, stats) = walk(&d);
        assert_eq!(r.unwrap(), Progress::More);
        assert!(got.is_empty());
        assert_eq!(stats.stale, 3);
    }

    #[test]
    fn truncated_header_and_overlong_length_are_errors() {
        let d = message(SOCK_DIAG_BY_FAMILY, 0, 7, 99, &[1; 72]);
        assert!(matches!(
            walk(&d[..10]).0,
            Err(Error::Truncated { offset: 0, len: 10 })
        ));
        assert!(matches!(
            walk(&d[..50]).0,
            Err(Error::Truncated { offset: 0, len: 50 })
        ));
        let mut zero = d.clone();
        zero[..4].copy_from_slice(&0u32.to_ne_bytes());
        assert!(matches!(walk(&zero).0, Err(Error::Truncated { .. })));
    }

    #[test]
    fn interrupted_dump_is_flagged() {
        let d = message(
            SOCK_DIAG_BY_FAMILY,
            NLM_F_MULTI | NLM_F_DUMP_INTR,
            7,
            99,
            &[1; 72],
        );
        assert!(walk(&d).2.interrupted);
    }

    #[test]
    fn unexpected_type_is_an_error() {
        let d = message(NLMSG_OVERRUN, 0, 7, 99, &[]);
        assert!(matches!(
            walk(&d).0,
            Err(Error::UnexpectedType {
                kind: NLMSG_OVERRUN
            })
        ));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let mut stats = DatagramStats::default();
            let _ = walk_datagram(&data, 7, 99, &mut stats, |p| {
                let _ = crate::DiagRecord::parse(p);
            });
        }
    }
}
