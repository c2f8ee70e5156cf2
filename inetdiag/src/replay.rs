//! Captured dumps and their replay.
//!
//! A capture file holds the datagrams of consecutive dumps exactly as the
//! kernel sent them: an 8-byte magic, then each datagram as a little-endian
//! `u32` length and its bytes. A dump ends with the datagram that holds its
//! `NLMSG_DONE`. `examples/capture_dumps.rs` writes them from a live kernel.
//!
//! [`Replay`] is a [`DumpSource`] that answers each dump request with the
//! next scripted [`Reply`]: a captured dump (cut down to the requested family
//! and states, as the kernel would), a kernel error, or a dump that breaks
//! off before its end.

use std::collections::VecDeque;
use std::io;

use crate::netlink::{
    walk_datagram, DatagramStats, Progress, NLMSG_DONE, NLMSG_HDRLEN, NLM_F_DUMP_INTR, NLM_F_MULTI,
};
use crate::request::DumpRequest;
use crate::source::DumpSource;
use crate::{DumpStats, Error, AF_UNSPEC, TCPDIAG_GETSOCK};

/// The first bytes of a capture file.
pub const CAPTURE_MAGIC: &[u8; 8] = b"NLDIAG01";

/// Why a capture file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    #[error(
        "not a capture file (no {:?} magic)",
        String::from_utf8_lossy(CAPTURE_MAGIC)
    )]
    Magic,
    #[error("datagram at byte {offset}: length {len} runs past the end ({have} bytes left)")]
    Truncated {
        offset: usize,
        len: usize,
        have: usize,
    },
    #[error("datagram at byte {offset}: {problem}")]
    Datagram { offset: usize, problem: String },
    #[error("the last dump ({datagrams} datagrams) has no NLMSG_DONE")]
    Unfinished { datagrams: usize },
}

/// The datagrams one dump request got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturedDump {
    pub datagrams: Vec<Vec<u8>>,
}

/// Sequence number and port id of a datagram's first message.
fn addressing(datagram: &[u8]) -> (u32, u32) {
    let word = |at: usize| {
        datagram
            .get(at..at + 4)
            .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    (word(8), word(12))
}

impl CapturedDump {
    /// One datagram holding `records` (reply payloads) and `NLMSG_DONE`,
    /// laid out as the kernel lays out an all-families dump.
    pub fn from_records<R: AsRef<[u8]>>(records: impl IntoIterator<Item = R>) -> Self {
        Self::from_records_in(records, usize::MAX)
    }

    /// Like [`CapturedDump::from_records`], at most `per_datagram` records
    /// to a datagram (a multi-part dump), `NLMSG_DONE` in the last.
    pub fn from_records_in<R: AsRef<[u8]>>(
        records: impl IntoIterator<Item = R>,
        per_datagram: usize,
    ) -> Self {
        let mut datagrams = vec![Vec::new()];
        let mut in_datagram = 0;
        for record in records {
            if in_datagram == per_datagram.max(1) {
                datagrams.push(Vec::new());
                in_datagram = 0;
            }
            let datagram = datagrams.last_mut().expect("never empty");
            push_message(datagram, TCPDIAG_GETSOCK, NLM_F_MULTI, record.as_ref());
            in_datagram += 1;
        }
        let last = datagrams.last_mut().expect("never empty");
        push_message(last, NLMSG_DONE, NLM_F_MULTI, &0i32.to_ne_bytes());
        Self { datagrams }
    }

    /// Every reply payload, in order.
    pub fn records(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for datagram in &self.datagrams {
            let (seq, port) = addressing(datagram);
            let mut stats = DatagramStats::default();
            let _ = walk_datagram(datagram, seq, port, &mut stats, |p| out.push(p.to_vec()));
        }
        out
    }

    /// Flags every message `NLM_F_DUMP_INTR`, as the kernel does when the
    /// socket table changed during the dump.
    pub fn interrupted(mut self) -> Self {
        for datagram in &mut self.datagrams {
            let mut offset = 0;
            while offset + NLMSG_HDRLEN <= datagram.len() {
                let len = u32::from_ne_bytes(datagram[offset..offset + 4].try_into().unwrap());
                let flags = u16::from_ne_bytes([datagram[offset + 6], datagram[offset + 7]]);
                datagram[offset + 6..offset + 8]
                    .copy_from_slice(&(flags | NLM_F_DUMP_INTR).to_ne_bytes());
                let step = (len as usize + 3) & !3;
                if step == 0 {
                    break;
                }
                offset += step;
            }
        }
        self
    }
}

/// Appends one netlink message (sequence number and port id 1, as a
/// dump's replies to a socket that sent request 1 from port 1).
fn push_message(out: &mut Vec<u8>, kind: u16, flags: u16, payload: &[u8]) {
    push_addressed(out, kind, flags, 1, payload);
}

/// Appends one netlink message with sequence number and port id `seq`.
pub(crate) fn push_addressed(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, payload: &[u8]) {
    out.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(payload);
    out.resize((out.len() + 3) & !3, 0);
}

/// Appends one datagram to a capture (after [`CAPTURE_MAGIC`]).
pub fn write_datagram(out: &mut impl io::Write, datagram: &[u8]) -> io::Result<()> {
    let len = u32::try_from(datagram.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "datagram over 4 GiB"))?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(datagram)
}

/// Splits a capture file into its dumps.
pub fn read_capture(bytes: &[u8]) -> Result<Vec<CapturedDump>, CaptureError> {
    let mut rest = bytes
        .strip_prefix(CAPTURE_MAGIC)
        .ok_or(CaptureError::Magic)?;
    let mut offset = CAPTURE_MAGIC.len();
    let mut dumps = Vec::new();
    let mut current = CapturedDump::default();
    while !rest.is_empty() {
        let Some(header) = rest.get(..4) else {
            return Err(CaptureError::Truncated {
                offset,
                len: 4,
                have: rest.len(),
            });
        };
        let len = u32::from_le_bytes(header.try_into().unwrap()) as usize;
        let Some(datagram) = rest.get(4..4 + len) else {
            return Err(CaptureError::Truncated {
                offset,
                len,
                have: rest.len() - 4,
            });
        };
        let (seq, port) = addressing(datagram);
        let mut stats = DatagramStats::default();
        let progress = walk_datagram(datagram, seq, port, &mut stats, |_| {}).map_err(|e| {
            CaptureError::Datagram {
                offset,
                problem: e.to_string(),
            }
        })?;
        current.datagrams.push(datagram.to_vec());
        if progress == Progress::Done {
            dumps.push(std::mem::take(&mut current));
        }
        rest = &rest[4 + len..];
        offset += 4 + len;
    }
    if !current.datagrams.is_empty() {
        return Err(CaptureError::Unfinished {
            datagrams: current.datagrams.len(),
        });
    }
    Ok(dumps)
}

/// What a [`Replay`] answers to one dump request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// These datagrams, cut down to the requested family and states.
    Dump(CapturedDump),
    /// The kernel refuses the request with this errno before any reply.
    Refuse { errno: i32 },
    /// The first `datagrams` datagrams of the dump arrive, then the socket
    /// fails with this errno (the dump never completes).
    BreakOff {
        dump: CapturedDump,
        datagrams: usize,
        errno: i32,
    },
}

/// A [`DumpSource`] playing scripted replies back, one per dump request.
#[derive(Debug, Default)]
pub struct Replay {
    script: VecDeque<Reply>,
    requests: Vec<DumpRequest>,
}

impl Replay {
    pub fn new(script: impl IntoIterator<Item = Reply>) -> Self {
        Self {
            script: script.into_iter().collect(),
            requests: Vec::new(),
        }
    }

    /// Every request asked so far, in order.
    pub fn requests(&self) -> &[DumpRequest] {
        &self.requests
    }

    /// Replies not yet played.
    pub fn remaining(&self) -> usize {
        self.script.len()
    }
}

fn wanted(request: &DumpRequest, payload: &[u8]) -> bool {
    let (Some(&family), Some(&state)) = (payload.first(), payload.get(1)) else {
        return true;
    };
    let family_ok = request.family == AF_UNSPEC || family == request.family;
    let state_ok = state >= 32 || request.states & (1 << state) != 0;
    family_ok && state_ok
}

impl DumpSource for Replay {
    fn dump(
        &mut self,
        request: &DumpRequest,
        mut on_record: impl FnMut(&[u8]),
    ) -> Result<DumpStats, Error> {
        self.requests.push(*request);
        let (dump, cut) = match self.script.pop_front() {
            None => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "replay: no scripted reply left",
                )))
            }
            Some(Reply::Refuse { errno }) => return Err(Error::Kernel { errno }),
            Some(Reply::Dump(dump)) => (dump, None),
            Some(Reply::BreakOff {
                dump,
                datagrams,
                errno,
            }) => (dump, Some((datagrams, errno))),
        };
        let mut stats = DumpStats::default();
        let take = cut.map_or(dump.datagrams.len(), |(n, _)| n);
        for datagram in dump.datagrams.iter().take(take) {
            let (seq, port) = addressing(datagram);
            let before = stats.records;
            let mut kept = 0;
            let progress = walk_datagram(datagram, seq, port, &mut stats, |payload| {
                if wanted(request, payload) {
                    kept += 1;
                    on_record(payload);
                }
            })?;
            // Count what the requester got, not what the capture held.
            stats.records = before + kept;
            if progress == Progress::Done {
                return Ok(stats);
            }
        }
        let errno = cut.map_or(libc::EBADMSG, |(_, errno)| errno);
        Err(Error::Io(io::Error::from_raw_os_error(errno)))
    }
}
