use std::io;

use netlink_sys::{Socket, SocketAddr};

use crate::netlink::{
    errno_of, from_kernel_to, split_message, walk_datagram, DatagramStats, Message, Progress,
    NLMSG_ERROR,
};
use crate::request::{DumpRequest, SocketId, SEQ_OFFSET};
use crate::source::DumpSource;
use crate::{Error, NETLINK_SOCK_DIAG};

/// Large enough for any dump datagram: the kernel sizes dump skbs up to the
/// reader's buffer, capped near 32 KiB (netlink_dump, af_netlink.c).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Exact requests sent in one `sendmsg`. The kernel answers each within
/// that call (one reply or one error per request, queued on this socket),
/// so a batch must fit the receive buffer: ~2.5 KiB of skb per reply
/// (a 2 KiB allocation each), against the 416 KiB the kernel gives without
/// privilege (twice the default `net.core.rmem_max`) for the 1 MiB asked
/// for below. Overflowing it fails the fetch (`ENOBUFS`): the caller dumps.
const FETCH_BATCH: usize = 64;

/// Totals for one dump.
pub type DumpStats = DatagramStats;

/// What a [`DiagSocket::fetch`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    /// Replies handed over.
    pub records: usize,
    /// Sockets the kernel no longer has under that tuple and cookie
    /// (`ENOENT`, `ESTALE`), or has in a state outside the asked ones.
    pub gone: usize,
}

impl DumpStats {
    /// These totals, or [`Error::Interrupted`] when the kernel flagged the
    /// dump (`NLM_F_DUMP_INTR`): for callers that need a consistent view
    /// and retry rather than use a dump that may have missed sockets.
    pub fn consistent(self) -> Result<Self, Error> {
        if self.interrupted {
            Err(Error::Interrupted)
        } else {
            Ok(self)
        }
    }
}

/// A `NETLINK_SOCK_DIAG` socket with its own reusable receive buffer.
pub struct DiagSocket {
    socket: Socket,
    port_id: u32,
    seq: u32,
    buffer: Vec<u8>,
    /// Encoded requests by kind, reused with a patched sequence number.
    requests: Vec<(DumpRequest, Vec<u8>)>,
    /// A batch of exact requests, rebuilt for every batch.
    batch: Vec<u8>,
}

impl DiagSocket {
    pub fn new() -> Result<Self, Error> {
        let mut socket = Socket::new(NETLINK_SOCK_DIAG)?;
        let addr = socket.bind_auto()?;
        let mut bound = SocketAddr::new(0, 0);
        socket.get_address(&mut bound)?;
        let port_id = if bound.port_number() != 0 {
            bound.port_number()
        } else {
            addr.port_number()
        };
        // A large socket buffer lets the kernel run ahead of us within a dump.
        let _ = socket.set_rx_buf_sz(1 << 20);
        Ok(Self {
            socket,
            port_id,
            seq: 0,
            buffer: vec![0; RECEIVE_BUFFER],
            requests: Vec::new(),
            batch: Vec::new(),
        })
    }

    /// Dumps every socket matching `request`, calling `on_record` with each
    /// reply payload (`inet_diag_msg` + attributes) borrowed from the
    /// receive buffer. Nothing is allocated per record.
    pub fn dump(
        &mut self,
        request: &DumpRequest,
        on_record: impl FnMut(&[u8]),
    ) -> Result<DumpStats, Error> {
        self.dump_datagrams(request, |_| {}, on_record)
    }

    /// Like [`DiagSocket::dump`], also handing every datagram, whole and
    /// as received, to `on_datagram` before its records (capturing dumps
    /// for replay).
    pub fn dump_datagrams(
        &mut self,
        request: &DumpRequest,
        mut on_datagram: impl FnMut(&[u8]),
        mut on_record: impl FnMut(&[u8]),
    ) -> Result<DumpStats, Error> {
        let seq = self.send(request)?;
        let mut stats = DumpStats::default();
        loop {
            let mut window = &mut self.buffer[..];
            // MSG_TRUNC makes recv report the datagram's real length, so a
            // datagram larger than the buffer is detected, never half-read.
            let n = match self.socket.recv(&mut window, libc::MSG_TRUNC) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n > self.buffer.len() {
                return Err(Error::DatagramTruncated { len: n });
            }
            on_datagram(&self.buffer[..n]);
            let progress = walk_datagram(
                &self.buffer[..n],
                seq,
                self.port_id,
                &mut stats,
                &mut on_record,
            )?;
            if progress == Progress::Done {
                return Ok(stats);
            }
        }
    }

    /// Asks for exactly the sockets `ids` (TCP, their replies filtered by
    /// `states`, with `extensions`), several requests per `sendmsg`, and
    /// calls `on_record` with each reply payload — the same bytes a dump
    /// carries for that socket. A socket that is gone, whose tuple now
    /// belongs to another socket (another cookie), or that moved on to a
    /// state outside `states` since it was named (the kernel does not
    /// apply the state mask to an exact request: it is applied here) is
    /// counted, not an error.
    pub fn fetch(
        &mut self,
        ids: &[SocketId],
        states: u32,
        extensions: u8,
        mut on_record: impl FnMut(&[u8]),
    ) -> Result<FetchStats, Error> {
        let mut stats = FetchStats::default();
        for batch in ids.chunks(FETCH_BATCH) {
            let first = self.seq.wrapping_add(1);
            self.batch.clear();
            for id in batch {
                self.seq = self.seq.wrapping_add(1);
                id.append_request(states, extensions, self.seq, &mut self.batch);
            }
            loop {
                match self.socket.send(&self.batch, 0) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let mut answered = 0;
            while answered < batch.len() {
                let n = match self.socket.recv(&mut &mut self.buffer[..], libc::MSG_TRUNC) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.into()),
                };
                if n > self.buffer.len() {
                    return Err(Error::DatagramTruncated { len: n });
                }
                let mut offset = 0;
                while offset < n {
                    let (message, next) = split_message(&self.buffer[..n], offset)?;
                    offset = next;
                    let Message {
                        kind,
                        seq,
                        port,
                        payload,
                        ..
                    } = message;
                    // Left over from an earlier, failed exchange.
                    if seq.wrapping_sub(first) as usize >= batch.len()
                        || !from_kernel_to(port, self.port_id)
                    {
                        continue;
                    }
                    answered += 1;
                    match kind {
                        crate::SOCK_DIAG_BY_FAMILY if in_states(payload, states) => {
                            stats.records += 1;
                            on_record(payload);
                        }
                        crate::SOCK_DIAG_BY_FAMILY => stats.gone += 1,
                        NLMSG_ERROR => match errno_of(payload) {
                            libc::ENOENT | libc::ESTALE => stats.gone += 1,
                            errno => return Err(Error::Kernel { errno }),
                        },
                        other => return Err(Error::UnexpectedType { kind: other }),
                    }
                }
            }
        }
        Ok(stats)
    }

    /// Sends `request` under the next sequence number, which it returns.
    fn send(&mut self, request: &DumpRequest) -> Result<u32, Error> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let index = match self.requests.iter().position(|(r, _)| r == request) {
            Some(i) => i,
            None => {
                self.requests.push((*request, request.to_bytes(seq)));
                self.requests.len() - 1
            }
        };
        let bytes = &mut self.requests[index].1;
        bytes[SEQ_OFFSET..SEQ_OFFSET + 4].copy_from_slice(&seq.to_ne_bytes());
        loop {
            match self.socket.send(bytes, 0) {
                Ok(_) => return Ok(seq),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Whether the reply `payload` (inet_diag_msg first: family, then state)
/// is of a socket in one of `states` (bit = 1 << TCP_*).
fn in_states(payload: &[u8], states: u32) -> bool {
    payload
        .get(1)
        .is_some_and(|&state| crate::state_in(states, state))
}

impl DumpSource for DiagSocket {
    fn dump(
        &mut self,
        request: &DumpRequest,
        on_record: impl FnMut(&[u8]),
    ) -> Result<DumpStats, Error> {
        DiagSocket::dump(self, request, on_record)
    }
}
