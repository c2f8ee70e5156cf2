//! Dump requests: `SOCK_DIAG_BY_FAMILY` (`struct inet_diag_req_v2`) for one
//! family, or `TCPDIAG_GETSOCK` (`struct inet_diag_req`) for all of them.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::{
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};

use crate::netlink::{NLMSG_HDRLEN, NLM_F_DUMP, NLM_F_REQUEST};
use crate::{AF_INET, AF_UNSPEC, IPPROTO_TCP, TCPDIAG_GETSOCK};

/// What to dump: one address family and protocol, a state mask
/// (bit = 1 << TCP_*), and the `idiag_ext` extension bits.
///
/// `family: AF_UNSPEC` with TCP asks for IPv4 and IPv6 sockets in one dump,
/// through the `TCPDIAG_GETSOCK` request (see its documentation); any other
/// protocol with `AF_UNSPEC` is sent as a `SOCK_DIAG_BY_FAMILY` request,
/// which the kernel refuses with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpRequest {
    pub family: u8,
    pub protocol: u8,
    pub states: u32,
    pub extensions: u8,
}

/// Offset of `nlmsg_seq` in `struct nlmsghdr`.
pub const SEQ_OFFSET: usize = 8;

impl DumpRequest {
    /// The full netlink message (header + `inet_diag_req_v2`) with sequence
    /// number `seq`. Built once per request kind; callers patch the
    /// sequence number at [`SEQ_OFFSET`] for later dumps.
    pub fn to_bytes(&self, seq: u32) -> Vec<u8> {
        if self.is_all_families() {
            return self.compat_bytes(seq);
        }
        let socket_id = if self.family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        };
        let request = InetRequest {
            family: self.family,
            protocol: self.protocol,
            extensions: ExtensionFlags::from_bits_retain(self.extensions),
            states: StateFlags::from_bits_retain(self.states),
            socket_id,
        };
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        header.sequence_number = seq;
        let mut message = NetlinkMessage::new(
            header,
            NetlinkPayload::from(SockDiagMessage::InetRequest(request)),
        );
        message.finalize();
        let mut bytes = vec![0; message.buffer_len()];
        message.serialize(&mut bytes);
        bytes
    }

    /// Whether this is the one-dump-for-every-family request.
    pub fn is_all_families(&self) -> bool {
        self.family == AF_UNSPEC && self.protocol == IPPROTO_TCP
    }

    /// `nlmsghdr` + `struct inet_diag_req`. netlink-packet-sock-diag only
    /// models the v2 request, so this one is laid out here: family, source
    /// and destination prefix lengths, extensions, a wildcard (all-zero)
    /// `inet_diag_sockid`, states, and `idiag_dbs` (unused by the kernel).
    fn compat_bytes(&self, seq: u32) -> Vec<u8> {
        const INET_DIAG_REQ_LEN: usize = 4 + SOCKET_ID_LEN + 4 + 4;
        const SOCKET_ID_LEN: usize = 48;
        let len = NLMSG_HDRLEN + INET_DIAG_REQ_LEN;
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(&(len as u32).to_ne_bytes());
        bytes.extend_from_slice(&TCPDIAG_GETSOCK.to_ne_bytes());
        bytes.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        bytes.extend_from_slice(&seq.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        bytes.extend_from_slice(&[AF_UNSPEC, 0, 0, self.extensions]);
        bytes.extend_from_slice(&[0; SOCKET_ID_LEN]);
        bytes.extend_from_slice(&self.states.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes());
        debug_assert_eq!(bytes.len(), len);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::*;

    #[test]
    fn request_bytes_follow_inet_diag_req_v2() {
        let r = DumpRequest {
            family: AF_INET6,
            protocol: IPPROTO_TCP,
            states: ARCHIVE_STATES,
            extensions: ARCHIVE_EXTENSIONS,
        };
        let b = r.to_bytes(0x01020304);
        assert_eq!(b.len(), 16 + 56);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 72);
        assert_eq!(
            u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            SOCK_DIAG_BY_FAMILY
        );
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 0x01020304);
        assert_eq!(&b[16..20], &[AF_INET6, IPPROTO_TCP, 0xff, 0]);
        assert_eq!(
            u32::from_ne_bytes(b[20..24].try_into().unwrap()),
            ARCHIVE_STATES
        );
        assert!(b[24..].iter().all(|&x| x == 0), "wildcard socket id");
    }

    #[test]
    fn all_families_request_bytes_follow_inet_diag_req() {
        let r = DumpRequest {
            family: AF_UNSPEC,
            protocol: IPPROTO_TCP,
            states: ARCHIVE_STATES,
            extensions: ARCHIVE_EXTENSIONS,
        };
        assert!(r.is_all_families());
        let b = r.to_bytes(9);
        assert_eq!(b.len(), 16 + 60);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 76);
        assert_eq!(
            u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            TCPDIAG_GETSOCK
        );
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 9);
        assert_eq!(&b[16..20], &[AF_UNSPEC, 0, 0, ARCHIVE_EXTENSIONS]);
        assert!(b[20..68].iter().all(|&x| x == 0), "wildcard socket id");
        assert_eq!(
            u32::from_ne_bytes(b[68..72].try_into().unwrap()),
            ARCHIVE_STATES
        );
        assert_eq!(&b[72..76], &[0; 4]);

        let udp = DumpRequest {
            protocol: IPPROTO_UDP,
            ..r
        };
        assert!(!udp.is_all_families());
        assert_eq!(
            u16::from_ne_bytes(udp.to_bytes(1)[4..6].try_into().unwrap()),
            SOCK_DIAG_BY_FAMILY
        );
    }
}
