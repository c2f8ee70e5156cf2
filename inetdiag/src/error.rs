use std::io;

/// A reply that does not fit the `inet_diag` ABI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("inet_diag_msg needs {need} bytes, payload has {have}")]
    ShortMessage { need: usize, have: usize },
    #[error("attribute at offset {offset}: header needs 4 bytes, {have} left")]
    ShortAttributeHeader { offset: usize, have: usize },
    #[error("attribute at offset {offset}: length {len} is outside 4..={have}")]
    BadAttributeLength {
        offset: usize,
        len: usize,
        have: usize,
    },
}

/// Why a dump failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink socket: {0}")]
    Io(#[from] io::Error),
    /// The kernel answered `NLMSG_ERROR` with this (positive) errno.
    #[error("kernel refused the dump: {}", io::Error::from_raw_os_error(*errno))]
    Kernel { errno: i32 },
    #[error("truncated netlink message at offset {offset} of a {len}-byte datagram")]
    Truncated { offset: usize, len: usize },
    #[error("netlink datagram of {len} bytes was larger than the receive buffer")]
    DatagramTruncated { len: usize },
    #[error("unexpected netlink message type {kind} in a sock_diag dump")]
    UnexpectedType { kind: u16 },
    #[error("the kernel interrupted the dump (NLM_F_DUMP_INTR): socket table changed")]
    Interrupted,
}

impl Error {
    /// A short, stable label for metrics (`tcpinfo_error_total{type}`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io(_) => "io",
            Error::Kernel { .. } => "kernel",
            Error::Truncated { .. } | Error::DatagramTruncated { .. } => "truncated",
            Error::UnexpectedType { .. } => "unexpected_type",
            Error::Interrupted => "interrupted",
        }
    }
}
