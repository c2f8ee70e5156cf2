//! In-kernel change detection for TCP sockets (`tcp-info -poll.mode=bpf`).
//!
//! A BPF iterator over TCP sockets (`iter/tcp`, Linux ≥ 5.9 with BTF)
//! keeps, in socket storage, a 64-bit signature of each socket's fields
//! that the archive's change rule reads (and the fields they are computed
//! from), and reports only the sockets that are new to it, changed state,
//! or whose signature moved since the previous scan. [`BpfChanges`] then
//! asks sock_diag for exactly those sockets (exact requests by tuple and
//! cookie, batched), so every archived byte is still the kernel's own
//! `inet_diag` reply.
//!
//! What the signature cannot see (so the agent's slower full dump catches
//! it, within its interval): the `INET_DIAG_SOCKOPT` flags (IP_RECVERR,
//! IP_FREEBIND, IP_TRANSPARENT, … set on an idle socket), `INET_DIAG_ULP_INFO`
//! (kTLS/MPTCP state), `INET_DIAG_MD5SIG` keys, the cgroup and net_cls class
//! ids, and the `tcpi_options`/window-scale/ECN, `delivery_rate_app_limited`
//! and `fastopen_client_fail` bits when they change without any packet,
//! counter, timer or memory field moving with them. A
//! hash collision (2⁻⁶⁴ per change) would hide a change the same way.
//! Sockets fetched by tuple that the kernel's lookup cannot single out
//! (several `SO_REUSEPORT` listeners on one tuple: another one's cookie
//! answers, `ESTALE`) are counted as gone and also left to the full dump.

use std::io::Read;

use inetdiag::{ChangeSource, ChangeStats, DiagSocket, Error, SocketId};
use libbpf_rs::{Iter, Link, Object, ObjectBuilder};

/// The BPF object, built by build.rs from src/bpf/changescan.bpf.c.
const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/changescan.bpf.o"));

/// Bytes of one `struct changed` in the iterator's output.
const CHANGED_LEN: usize = 56;

/// Why a socket was reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not seen by an earlier scan.
    New,
    /// Its TCP state changed.
    State,
    /// Its signature moved.
    Signature,
}

/// One reported socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Changed {
    pub id: SocketId,
    pub state: u8,
    pub reason: Reason,
}

impl Changed {
    /// Reads one `struct changed` (see the BPF source).
    fn parse(b: &[u8; CHANGED_LEN]) -> Self {
        let u32_at = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let reason = match b[10] {
            1 => Reason::New,
            2 => Reason::State,
            _ => Reason::Signature,
        };
        let mut src = [0; 16];
        let mut dst = [0; 16];
        src.copy_from_slice(&b[24..40]);
        dst.copy_from_slice(&b[40..56]);
        Changed {
            id: SocketId {
                family: b[8],
                sport: u16::from_ne_bytes([b[16], b[17]]),
                dport: u16::from_be_bytes([b[18], b[19]]),
                src,
                dst,
                interface: u32_at(12),
                cookie: u64::from_ne_bytes(b[..8].try_into().expect("8 bytes")),
            },
            state: b[9],
            reason,
        }
    }
}

/// Why the BPF program cannot run here.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("no kernel BTF (/sys/kernel/btf/vmlinux is missing)")]
    NoBtf,
    #[error("loading the BPF program failed: {0}")]
    Load(#[source] libbpf_rs::Error),
    #[error("attaching the iter/tcp program failed: {0}")]
    Attach(#[source] libbpf_rs::Error),
    #[error("the iter/tcp iterator cannot be read: {0}")]
    FirstScan(#[source] std::io::Error),
    #[error("no sock_diag socket for the fetches: {0}")]
    Socket(#[source] Error),
}

/// The loaded iterator.
pub struct Scanner {
    link: Link,
    /// Keeps the program and its signature map loaded.
    _object: Object,
    /// The last scan's output, reused.
    output: Vec<u8>,
}

impl Scanner {
    /// Loads and attaches the iterator, and runs one scan so that every
    /// socket alive now has its signature (the next scan reports changes
    /// only). Needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) and BTF.
    pub fn open() -> Result<Self, Unavailable> {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            return Err(Unavailable::NoBtf);
        }
        let object = ObjectBuilder::default()
            .open_memory(OBJECT)
            .and_then(|open| open.load())
            .map_err(Unavailable::Load)?;
        let link = {
            let program = object
                .progs_mut()
                .find(|p| p.name() == "scan")
                .expect("the object has the scan program");
            program.attach().map_err(Unavailable::Attach)?
        };
        let mut scanner = Scanner {
            link,
            _object: object,
            output: Vec::with_capacity(64 * 1024),
        };
        scanner.scan(|_| {}).map_err(Unavailable::FirstScan)?;
        Ok(scanner)
    }

    /// Walks every TCP socket in the kernel (in the network namespace the
    /// iterator was created in) and calls `on_changed` for those reported.
    pub fn scan(&mut self, mut on_changed: impl FnMut(&Changed)) -> std::io::Result<usize> {
        let mut iter = Iter::new(&self.link).map_err(std::io::Error::other)?;
        self.output.clear();
        iter.read_to_end(&mut self.output)?;
        let mut reported = 0;
        for chunk in self.output.chunks_exact(CHANGED_LEN) {
            let record: &[u8; CHANGED_LEN] = chunk.try_into().expect("exact chunks");
            on_changed(&Changed::parse(record));
            reported += 1;
        }
        Ok(reported)
    }
}

/// The BPF change detection with sock_diag fetches: a [`ChangeSource`].
pub struct BpfChanges {
    scanner: Scanner,
    socket: DiagSocket,
    states: u32,
    extensions: u8,
    /// The sockets of the current scan, reused.
    ids: Vec<SocketId>,
}

impl BpfChanges {
    /// The change detection for sockets in `states` (bit = 1 << TCP_*),
    /// fetched with `extensions`.
    pub fn open(states: u32, extensions: u8) -> Result<Self, Unavailable> {
        let scanner = Scanner::open()?;
        let socket = DiagSocket::new().map_err(Unavailable::Socket)?;
        Ok(BpfChanges {
            scanner,
            socket,
            states,
            extensions,
            ids: Vec::new(),
        })
    }
}

impl ChangeSource for BpfChanges {
    fn changed(&mut self, on_record: &mut dyn FnMut(&[u8])) -> Result<ChangeStats, Error> {
        self.ids.clear();
        let states = self.states;
        let ids = &mut self.ids;
        let reported = self.scanner.scan(|changed| {
            if inetdiag::state_in(states, changed.state) {
                ids.push(changed.id);
            }
        })?;
        // A socket that moved on to a state the dumps leave out (TIME_WAIT)
        // since the scan is counted as gone by the fetch.
        let fetched = self
            .socket
            .fetch(&self.ids, states, self.extensions, on_record)?;
        Ok(ChangeStats {
            reported,
            records: fetched.records,
            gone: fetched.gone,
        })
    }

    fn resync(&mut self) -> Result<(), Error> {
        self.scanner.scan(|_| {})?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_bpf_record_layout() {
        let mut b = [0u8; CHANGED_LEN];
        b[..8].copy_from_slice(&0x1122_3344_5566_7788u64.to_ne_bytes());
        b[8] = inetdiag::AF_INET6;
        b[9] = 1;
        b[10] = 3;
        b[12..16].copy_from_slice(&7u32.to_ne_bytes());
        b[16..18].copy_from_slice(&8080u16.to_ne_bytes());
        b[18..20].copy_from_slice(&443u16.to_be_bytes());
        b[24] = 0x20;
        b[55] = 9;
        let c = Changed::parse(&b);
        assert_eq!(c.id.cookie, 0x1122_3344_5566_7788);
        assert_eq!(c.id.family, inetdiag::AF_INET6);
        assert_eq!(c.state, 1);
        assert_eq!(c.reason, Reason::Signature);
        assert_eq!(c.id.interface, 7);
        assert_eq!((c.id.sport, c.id.dport), (8080, 443));
        assert_eq!(c.id.src[0], 0x20);
        assert_eq!(c.id.dst[15], 9);
    }

    #[test]
    fn the_object_is_an_embedded_bpf_elf() {
        assert_eq!(&OBJECT[..4], b"\x7fELF");
        // EM_BPF
        assert_eq!(u16::from_le_bytes([OBJECT[18], OBJECT[19]]), 247);
    }
}
