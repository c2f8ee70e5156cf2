use std::io;

use netlink_sys::{Socket, SocketAddr};

use crate::netlink::{walk_datagram, DatagramStats, Progress};
use crate::request::{DumpRequest, SEQ_OFFSET};
use crate::source::DumpSource;
use crate::{Error, NETLINK_SOCK_DIAG};

/// Large enough for any dump datagram: the kernel sizes dump skbs up to the
/// reader's buffer, capped near 32 KiB (netlink_dump, af_netlink.c).
const RECEIVE_BUFFER: usize = 64 * 1024;

/// Totals for one dump.
pub type DumpStats = DatagramStats;

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

impl DumpSource for DiagSocket {
    fn dump(
        &mut self,
        request: &DumpRequest,
        on_record: impl FnMut(&[u8]),
    ) -> Result<DumpStats, Error> {
        DiagSocket::dump(self, request, on_record)
    }
}
