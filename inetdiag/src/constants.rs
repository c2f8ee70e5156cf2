//! Constants of `linux/inet_diag.h`, `linux/tcp.h` and `linux/sock_diag.h`.

pub use netlink_packet_sock_diag::constants::{
    INET_DIAG_BBRINFO, INET_DIAG_CLASS_ID, INET_DIAG_CONG, INET_DIAG_DCTCPINFO, INET_DIAG_INFO,
    INET_DIAG_LOCALS, INET_DIAG_MARK, INET_DIAG_MD5SIG, INET_DIAG_MEMINFO, INET_DIAG_NONE,
    INET_DIAG_PAD, INET_DIAG_PEERS, INET_DIAG_PROTOCOL, INET_DIAG_SHUTDOWN, INET_DIAG_SKMEMINFO,
    INET_DIAG_SKV6ONLY, INET_DIAG_TCLASS, INET_DIAG_TOS, INET_DIAG_VEGASINFO, SOCK_DIAG_BY_FAMILY,
    TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING, TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2,
    TCP_LAST_ACK, TCP_LISTEN, TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT,
};

/// `NETLINK_SOCK_DIAG` from `linux/netlink.h`.
pub const NETLINK_SOCK_DIAG: isize = 4;

/// As a [`crate::request::DumpRequest`] family: both IPv4 and IPv6 in one
/// dump (TCP only, see [`TCPDIAG_GETSOCK`]).
pub const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
pub const AF_INET: u8 = libc::AF_INET as u8;
pub const AF_INET6: u8 = libc::AF_INET6 as u8;
pub const IPPROTO_TCP: u8 = libc::IPPROTO_TCP as u8;
pub const IPPROTO_UDP: u8 = libc::IPPROTO_UDP as u8;

/// `TCPDIAG_GETSOCK` (linux/inet_diag.h): the `inet_diag` request type that
/// predates `SOCK_DIAG_BY_FAMILY`. The kernel still serves it
/// (`inet_diag_rcv_msg_compat`), as a dump of *every* family: it sets
/// `sdiag_family = AF_UNSPEC` for it, so one walk of the socket tables answers
/// what would otherwise take an IPv6 and an IPv4 dump, each walking the whole
/// established hash. Replies carry this type and the same `inet_diag_msg`
/// and attributes as `SOCK_DIAG_BY_FAMILY` replies.
pub const TCPDIAG_GETSOCK: u16 = 18;

/// `TCP_NEW_SYN_RECV` (linux/tcp_states.h): request sockets, never full sockets.
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// Every TCP state bit the kernel knows (`TCPF_ALL` in `linux/tcp_states.h`).
pub const ALL_STATES: u32 = 0xfff;

/// The states M-Lab's tcp-info asks for: everything but SYN_RECV, TIME_WAIT
/// and CLOSE (short-lived or socket-less states that carry no `tcp_info`
/// worth archiving and would churn the cache).
pub const ARCHIVE_STATES: u32 =
    ALL_STATES & !((1 << TCP_SYN_RECV) | (1 << TCP_TIME_WAIT) | (1 << TCP_CLOSE));

/// Whether TCP state `state` is in the state mask `states` (bit =
/// 1 << TCP_*); a state past the mask's 32 bits is in none.
pub fn state_in(states: u32, state: u8) -> bool {
    1u32.checked_shl(u32::from(state))
        .is_some_and(|bit| states & bit != 0)
}

/// The `idiag_ext` bit that asks for attribute `attr`: the kernel numbers the
/// bits from `INET_DIAG_MEMINFO` = bit 0 (`linux/inet_diag.h`).
pub const fn ext_bit(attr: u16) -> u8 {
    1 << (attr - 1)
}

/// MEMINFO, INFO, VEGASINFO (the kernel answers this bit with BBR or DCTCP
/// info too, depending on the congestion control), CONG, TOS, TCLASS,
/// SKMEMINFO and SHUTDOWN: what M-Lab's tcp-info requests.
pub const ARCHIVE_EXTENSIONS: u8 = ext_bit(INET_DIAG_MEMINFO)
    | ext_bit(INET_DIAG_INFO)
    | ext_bit(INET_DIAG_VEGASINFO)
    | ext_bit(INET_DIAG_CONG)
    | ext_bit(INET_DIAG_TOS)
    | ext_bit(INET_DIAG_TCLASS)
    | ext_bit(INET_DIAG_SKMEMINFO)
    | ext_bit(INET_DIAG_SHUTDOWN);

/// Upper-case TCP state name as `ss` and the kernel sources spell it.
pub fn state_name(state: u8) -> &'static str {
    match state {
        TCP_ESTABLISHED => "ESTABLISHED",
        TCP_SYN_SENT => "SYN_SENT",
        TCP_SYN_RECV => "SYN_RECV",
        TCP_FIN_WAIT1 => "FIN_WAIT1",
        TCP_FIN_WAIT2 => "FIN_WAIT2",
        TCP_TIME_WAIT => "TIME_WAIT",
        TCP_CLOSE => "CLOSE",
        TCP_CLOSE_WAIT => "CLOSE_WAIT",
        TCP_LAST_ACK => "LAST_ACK",
        TCP_LISTEN => "LISTEN",
        TCP_CLOSING => "CLOSING",
        TCP_NEW_SYN_RECV => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_in_a_mask_by_its_bit_and_no_state_past_32_bits_is() {
        assert!(state_in(ARCHIVE_STATES, TCP_ESTABLISHED));
        assert!(!state_in(ARCHIVE_STATES, TCP_TIME_WAIT));
        assert!(!state_in(u32::MAX, 32));
        assert!(!state_in(u32::MAX, 255));
    }

    #[test]
    fn archive_request_matches_go_tcp_info() {
        assert_eq!(ARCHIVE_EXTENSIONS, 0xff);
        assert_eq!(ARCHIVE_STATES, 0xf37);
    }
}
