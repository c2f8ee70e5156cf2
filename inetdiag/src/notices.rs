//! Destroy notices: since Linux 4.2 the kernel broadcasts one `inet_diag`
//! message (with `INET_DIAG_INFO`, the socket's final `tcp_info`) for every
//! TCP socket it destroys, on the `NETLINK_SOCK_DIAG` multicast groups
//! `SKNLGRP_INET_TCP_DESTROY` and `SKNLGRP_INET6_TCP_DESTROY` (what `ss -E`
//! listens to). Any process may join them (a notice tells no more than a
//! dump, which any process may ask for).
//!
//! [`NoticeSocket`] reads them without ever blocking; [`NoticeSource`] is
//! the seam the poller reads them through, served by the socket and by a
//! replay of captured datagrams.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};

use netlink_sys::Socket;

use crate::netlink::{walk_datagram, DatagramStats};
use crate::replay::push_addressed;
use crate::{Error, NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY};

/// `SKNLGRP_INET_TCP_DESTROY` (linux/sock_diag.h).
pub const SKNLGRP_INET_TCP_DESTROY: u32 = 1;
/// `SKNLGRP_INET6_TCP_DESTROY` (linux/sock_diag.h).
pub const SKNLGRP_INET6_TCP_DESTROY: u32 = 3;

/// Large enough for any notice datagram (one message each, a few hundred
/// bytes; the kernel may batch several).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Datagrams one [`NoticeSource::notices`] call reads at most: when notices
/// come faster than they are handled, the caller still gets back to its
/// other work (the rest wait in the socket, or overflow it and are counted
/// as lost).
const MAX_DATAGRAMS_PER_READ: usize = 65_536;

/// What one read of the pending notices found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NoticeStats {
    /// Notices handed to the callback.
    pub notices: usize,
    /// The kernel dropped notices since the last read (`ENOBUFS`: the
    /// receive buffer overflowed). Which sockets they were for is unknown.
    pub lost: bool,
}

/// A source of destroy notices.
pub trait NoticeSource {
    /// Hands the notices received so far to `on_notice` (the payload:
    /// `inet_diag_msg` + attributes, as the kernel sent it) and returns at
    /// once when none is left, or after a bounded number; never waits for
    /// one.
    fn notices(&mut self, on_notice: impl FnMut(&[u8])) -> Result<NoticeStats, Error>;
}

/// A `NETLINK_SOCK_DIAG` socket joined to both TCP destroy groups.
pub struct NoticeSocket {
    socket: Socket,
    buffer: Vec<u8>,
}

impl NoticeSocket {
    /// Joins the IPv4 and IPv6 TCP destroy groups with a receive buffer of
    /// (at most, as `net.core.rmem_max` allows) `receive_buffer` bytes.
    /// Fails on a kernel without the groups (before 4.2). No capability is
    /// needed: `NETLINK_SOCK_DIAG` lets any process join, as it lets any
    /// process dump (tests/kernel/tests/destroy_notices.rs shows it).
    pub fn subscribe(receive_buffer: usize) -> Result<Self, Error> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket.bind_auto()?;
        socket.set_non_blocking(true)?;
        let _ = socket.set_rx_buf_sz(receive_buffer.min(i32::MAX as usize) as i32);
        for group in [SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET6_TCP_DESTROY] {
            socket.add_membership(group)?;
        }
        Ok(Self {
            socket,
            buffer: vec![0; RECEIVE_BUFFER],
        })
    }
}

impl AsFd for NoticeSocket {
    /// For socket options this type does not set (`SO_RCVBUFFORCE`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl NoticeSource for NoticeSocket {
    fn notices(&mut self, mut on_notice: impl FnMut(&[u8])) -> Result<NoticeStats, Error> {
        let mut stats = NoticeStats::default();
        for _ in 0..MAX_DATAGRAMS_PER_READ {
            let mut window = &mut self.buffer[..];
            let n = match self.socket.recv(&mut window, libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => return Ok(stats),
                    Some(libc::EINTR) => continue,
                    // The overflow is reported once; reading goes on with
                    // what the buffer still holds.
                    Some(libc::ENOBUFS) => {
                        stats.lost = true;
                        continue;
                    }
                    _ => return Err(e.into()),
                },
            };
            if n > self.buffer.len() {
                return Err(Error::DatagramTruncated { len: n });
            }
            stats.notices += walk_notices(&self.buffer[..n], &mut on_notice)?;
        }
        Ok(stats)
    }
}

/// Walks one notice datagram (broadcasts carry sequence number and port 0),
/// handing each notice's payload to `on_notice`; returns how many.
pub fn walk_notices(datagram: &[u8], on_notice: &mut impl FnMut(&[u8])) -> Result<usize, Error> {
    let mut stats = DatagramStats::default();
    walk_datagram(datagram, 0, 0, &mut stats, on_notice)?;
    Ok(stats.records)
}

/// Notices played back: each [`NoticeSource::notices`] call hands over the
/// next scripted batch of datagrams (none when the script is done).
#[derive(Debug, Default)]
pub struct NoticeReplay {
    script: VecDeque<NoticeBatch>,
}

/// What one read of a [`NoticeReplay`] finds.
#[derive(Debug, Clone, Default)]
pub struct NoticeBatch {
    pub datagrams: Vec<Vec<u8>>,
    /// The kernel reported lost notices before these.
    pub lost: bool,
}

impl NoticeBatch {
    /// One datagram of notices for `records` (reply payloads), laid out as
    /// the kernel broadcasts them (`SOCK_DIAG_BY_FAMILY`, sequence 0, port 0).
    pub fn from_records<R: AsRef<[u8]>>(records: impl IntoIterator<Item = R>) -> Self {
        let mut datagram = Vec::new();
        for record in records {
            push_addressed(&mut datagram, SOCK_DIAG_BY_FAMILY, 0, 0, record.as_ref());
        }
        Self {
            datagrams: vec![datagram],
            lost: false,
        }
    }
}

impl NoticeReplay {
    pub fn new(script: impl IntoIterator<Item = NoticeBatch>) -> Self {
        Self {
            script: script.into_iter().collect(),
        }
    }
}

impl NoticeSource for NoticeReplay {
    fn notices(&mut self, mut on_notice: impl FnMut(&[u8])) -> Result<NoticeStats, Error> {
        let Some(batch) = self.script.pop_front() else {
            return Ok(NoticeStats::default());
        };
        let mut stats = NoticeStats {
            notices: 0,
            lost: batch.lost,
        };
        for datagram in &batch.datagrams {
            stats.notices += walk_notices(datagram, &mut on_notice)?;
        }
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_hands_over_its_batches_then_nothing() {
        let notice = |port: u8| {
            let mut record = vec![0u8; crate::INET_DIAG_MSG_LEN];
            record[0] = crate::AF_INET;
            record[1] = crate::TCP_CLOSE;
            record[5] = port;
            record
        };
        let mut replay = NoticeReplay::new([
            NoticeBatch::from_records([notice(1), notice(2)]),
            NoticeBatch {
                lost: true,
                ..NoticeBatch::from_records([notice(3)])
            },
        ]);
        let mut ports = Vec::new();
        let read = |replay: &mut NoticeReplay, ports: &mut Vec<u16>| {
            replay
                .notices(|p| ports.push(crate::InetDiagMsg::parse(p).unwrap().sport()))
                .unwrap()
        };
        let first = read(&mut replay, &mut ports);
        assert_eq!(
            first,
            NoticeStats {
                notices: 2,
                lost: false
            }
        );
        assert!(read(&mut replay, &mut ports).lost);
        assert_eq!(read(&mut replay, &mut ports), NoticeStats::default());
        assert_eq!(ports, [1, 2, 3]);
    }
}
