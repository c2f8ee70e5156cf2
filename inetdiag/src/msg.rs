use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::{ParseError, AF_INET};

/// `sizeof(struct inet_diag_msg)` (linux/inet_diag.h).
pub const INET_DIAG_MSG_LEN: usize = 72;

// Field offsets inside `struct inet_diag_msg`; `id` (struct inet_diag_sockid)
// starts at 4.
const FAMILY: usize = 0;
const STATE: usize = 1;
const TIMER: usize = 2;
const RETRANS: usize = 3;
const SPORT: usize = 4;
const DPORT: usize = 6;
/// First byte of `idiag_src[4]`; IPv4 uses only the first four bytes.
pub(crate) const SRC: usize = 8;
/// First byte of `idiag_dst[4]`.
pub(crate) const DST: usize = 24;
const INTERFACE: usize = 40;
const COOKIE: usize = 44;
const EXPIRES: usize = 52;
const RQUEUE: usize = 56;
const WQUEUE: usize = 60;
const UID: usize = 64;
const INODE: usize = 68;

/// A zero-copy view of `struct inet_diag_msg`, exactly as the kernel sent it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InetDiagMsg<'a> {
    bytes: &'a [u8; INET_DIAG_MSG_LEN],
}

impl<'a> InetDiagMsg<'a> {
    /// Views the first 72 bytes of `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let bytes = bytes
            .get(..INET_DIAG_MSG_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(ParseError::ShortMessage {
                need: INET_DIAG_MSG_LEN,
                have: bytes.len(),
            })?;
        Ok(Self { bytes })
    }

    /// Views 72 bytes kept elsewhere (a copy of an earlier reply's).
    pub fn new(bytes: &'a [u8; INET_DIAG_MSG_LEN]) -> Self {
        Self { bytes }
    }

    /// The 72 raw bytes.
    pub fn as_bytes(&self) -> &'a [u8; INET_DIAG_MSG_LEN] {
        self.bytes
    }

    fn u32_at(&self, offset: usize) -> u32 {
        u32::from_ne_bytes([
            self.bytes[offset],
            self.bytes[offset + 1],
            self.bytes[offset + 2],
            self.bytes[offset + 3],
        ])
    }

    pub fn family(&self) -> u8 {
        self.bytes[FAMILY]
    }
    pub fn state(&self) -> u8 {
        self.bytes[STATE]
    }
    pub fn timer(&self) -> u8 {
        self.bytes[TIMER]
    }
    pub fn retrans(&self) -> u8 {
        self.bytes[RETRANS]
    }
    /// Source port in host order (the kernel sends network order).
    pub fn sport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[SPORT], self.bytes[SPORT + 1]])
    }
    /// Destination port in host order.
    pub fn dport(&self) -> u16 {
        u16::from_be_bytes([self.bytes[DPORT], self.bytes[DPORT + 1]])
    }
    /// The raw 16 bytes of `idiag_src`.
    pub fn src_bytes(&self) -> &'a [u8; 16] {
        self.bytes[SRC..SRC + 16].try_into().expect("16-byte slice")
    }
    /// The raw 16 bytes of `idiag_dst`.
    pub fn dst_bytes(&self) -> &'a [u8; 16] {
        self.bytes[DST..DST + 16].try_into().expect("16-byte slice")
    }
    pub fn src(&self) -> IpAddr {
        address(self.family(), self.src_bytes())
    }
    pub fn dst(&self) -> IpAddr {
        address(self.family(), self.dst_bytes())
    }
    pub fn interface(&self) -> u32 {
        self.u32_at(INTERFACE)
    }
    /// The socket cookie: `idiag_cookie[0] | idiag_cookie[1] << 32`, as the
    /// kernel builds it in `sock_diag_save_cookie` and `ss -e` prints it.
    pub fn cookie(&self) -> u64 {
        u64::from(self.u32_at(COOKIE)) | (u64::from(self.u32_at(COOKIE + 4)) << 32)
    }
    pub fn expires(&self) -> u32 {
        self.u32_at(EXPIRES)
    }
    pub fn rqueue(&self) -> u32 {
        self.u32_at(RQUEUE)
    }
    pub fn wqueue(&self) -> u32 {
        self.u32_at(WQUEUE)
    }
    pub fn uid(&self) -> u32 {
        self.u32_at(UID)
    }
    pub fn inode(&self) -> u32 {
        self.u32_at(INODE)
    }
}

/// Byte range of the source and destination addresses inside the 72 bytes,
/// for callers that rewrite them (anonymization).
pub const SRC_RANGE: std::ops::Range<usize> = SRC..SRC + 16;
pub const DST_RANGE: std::ops::Range<usize> = DST..DST + 16;

fn address(family: u8, bytes: &[u8; 16]) -> IpAddr {
    if family == AF_INET {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }
}

impl std::fmt::Debug for InetDiagMsg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InetDiagMsg")
            .field("family", &self.family())
            .field("state", &crate::state_name(self.state()))
            .field("src", &self.src())
            .field("sport", &self.sport())
            .field("dst", &self.dst())
            .field("dport", &self.dport())
            .field("interface", &self.interface())
            .field("cookie", &format_args!("{:#x}", self.cookie()))
            .field("inode", &self.inode())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `RawIDM` of the first snapshot of M-Lab's ndt-jdczh fixture.
    const NDT_IDM: [u8; 72] = [
        0x0a, 0x01, 0x02, 0x00, 0x23, 0x83, 0xa9, 0xf4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
        0xc0, 0xa8, 0x0e, 0x86, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xc0, 0xa8, 0x0e, 0x81,
        0, 0, 0, 0, 0xe8, 0x03, 0, 0, 0, 0, 0, 0, 0x70, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0xaf, 0xa2, 0xce, 0x03,
    ];

    #[test]
    fn decodes_the_fields_of_a_real_message() {
        let m = InetDiagMsg::parse(&NDT_IDM).unwrap();
        assert_eq!(m.family(), crate::AF_INET6);
        assert_eq!(m.state(), crate::TCP_ESTABLISHED);
        assert_eq!(m.timer(), 2);
        assert_eq!(m.sport(), 9091);
        assert_eq!(m.dport(), 43508);
        assert_eq!(m.src().to_string(), "::ffff:192.168.14.134");
        assert_eq!(m.dst().to_string(), "::ffff:192.168.14.129");
        assert_eq!(m.cookie(), 0x3e8);
        assert_eq!(m.expires(), 4294967152);
        assert_eq!(m.inode(), 63873711);
    }

    #[test]
    fn short_payload_is_an_error() {
        assert_eq!(
            InetDiagMsg::parse(&NDT_IDM[..71]),
            Err(ParseError::ShortMessage { need: 72, have: 71 })
        );
    }
}
