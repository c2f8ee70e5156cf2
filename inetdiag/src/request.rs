//! The `SOCK_DIAG_BY_FAMILY` dump request (`struct inet_diag_req_v2`).

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::{
    inet::{ExtensionFlags, InetRequest, SocketId, StateFlags},
    SockDiagMessage,
};

use crate::netlink::{NLM_F_DUMP, NLM_F_REQUEST};
use crate::AF_INET;

/// What to dump: one address family and protocol, a state mask
/// (bit = 1 << TCP_*), and the `idiag_ext` extension bits.
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
}
