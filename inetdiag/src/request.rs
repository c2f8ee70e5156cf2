//! Dump requests: `SOCK_DIAG_BY_FAMILY` (`struct inet_diag_req_v2`) for one
//! family, or `TCPDIAG_GETSOCK` (`struct inet_diag_req`) for all of them.

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::{
    inet::{ExtensionFlags, InetRequest, SocketId as WildcardId, StateFlags},
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
            WildcardId::new_v4()
        } else {
            WildcardId::new_v6()
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

/// One socket, as `struct inet_diag_sockid` names it: what an exact
/// `SOCK_DIAG_BY_FAMILY` request (no `NLM_F_DUMP`) looks up. The kernel
/// finds the socket by its tuple and bound interface, then refuses it
/// (`ESTALE`) when its cookie is not `cookie`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketId {
    pub family: u8,
    /// Ports in host order.
    pub sport: u16,
    pub dport: u16,
    /// Addresses as the kernel keeps them (network order); IPv4 in the
    /// first four bytes.
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub interface: u32,
    pub cookie: u64,
}

/// Bytes of one exact request (`nlmsghdr` + `inet_diag_req_v2`).
pub const EXACT_REQUEST_LEN: usize = NLMSG_HDRLEN + 56;

impl SocketId {
    /// Appends the exact request for this socket (TCP, `states`,
    /// `extensions`) under sequence number `seq` to `out`.
    pub fn append_request(&self, states: u32, extensions: u8, seq: u32, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&(EXACT_REQUEST_LEN as u32).to_ne_bytes());
        out.extend_from_slice(&crate::SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        out.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&[self.family, IPPROTO_TCP, extensions, 0]);
        out.extend_from_slice(&states.to_ne_bytes());
        out.extend_from_slice(&self.sport.to_be_bytes());
        out.extend_from_slice(&self.dport.to_be_bytes());
        out.extend_from_slice(&self.src);
        out.extend_from_slice(&self.dst);
        out.extend_from_slice(&self.interface.to_ne_bytes());
        out.extend_from_slice(&(self.cookie as u32).to_ne_bytes());
        out.extend_from_slice(&((self.cookie >> 32) as u32).to_ne_bytes());
        debug_assert_eq!(out.len() - start, EXACT_REQUEST_LEN);
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
    fn exact_request_bytes_carry_the_tuple_and_cookie() {
        let id = SocketId {
            family: AF_INET,
            sport: 0x1234,
            dport: 80,
            src: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dst: [127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            interface: 3,
            cookie: 0x0102_0304_0506_0708,
        };
        let mut b = vec![9];
        id.append_request(ARCHIVE_STATES, ARCHIVE_EXTENSIONS, 77, &mut b);
        let b = &b[1..];
        assert_eq!(b.len(), EXACT_REQUEST_LEN);
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()), 72);
        assert_eq!(
            u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            SOCK_DIAG_BY_FAMILY
        );
        // A request, not a dump.
        assert_eq!(u16::from_ne_bytes(b[6..8].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 77);
        assert_eq!(&b[16..20], &[AF_INET, IPPROTO_TCP, ARCHIVE_EXTENSIONS, 0]);
        assert_eq!(&b[24..28], &[0x12, 0x34, 0, 80]);
        assert_eq!(&b[28..32], &[127, 0, 0, 1]);
        assert_eq!(&b[44..48], &[127, 0, 0, 2]);
        assert_eq!(u32::from_ne_bytes(b[60..64].try_into().unwrap()), 3);
        assert_eq!(
            u32::from_ne_bytes(b[64..68].try_into().unwrap()),
            0x0506_0708
        );
        assert_eq!(
            u32::from_ne_bytes(b[68..72].try_into().unwrap()),
            0x0102_0304
        );
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
