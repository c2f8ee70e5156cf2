//! The Linux `NETLINK_SOCK_DIAG` / `inet_diag` ABI, and nothing else.
//!
//! - [`request`]: the `SOCK_DIAG_BY_FAMILY` dump request bytes.
//! - [`DiagSocket`]: the netlink socket and a receive loop that walks multi-part
//!   dumps, hands every reply payload to a callback without copying, and
//!   surfaces `NLMSG_ERROR` as a typed error.
//! - [`DumpSource`]: the seam "run this dump, hand me each reply", served by
//!   [`DiagSocket`] and by [`replay::Replay`] (captured datagrams played back).
//! - [`notices`]: destroy notices (the final `tcp_info` of every TCP socket
//!   the kernel destroys), through the [`notices::NoticeSource`] seam.
//! - [`DiagRecord`] / [`InetDiagMsg`]: bounds-checked, zero-copy views of one
//!   reply (`struct inet_diag_msg` followed by `rtattr`s).
//! - [`tcp_info`]: byte offsets of `struct tcp_info` fields.
//!
//! No policy lives here: what to request, how often, and what to do with the
//! replies is the caller's business.

pub mod constants;
mod error;
mod msg;
pub mod netlink;
pub mod notices;
mod record;
pub mod replay;
pub mod request;
mod socket;
mod source;
pub mod tcp_info;

pub use constants::*;
pub use error::{Error, ParseError};
pub use msg::{InetDiagMsg, INET_DIAG_MSG_LEN};
pub use record::{attribute_kind_at, AttributeIter, DiagRecord, MAX_ATTRIBUTE_TYPE};
pub use request::SocketId;
pub use socket::{DiagSocket, DumpStats, FetchStats};
pub use source::{ChangeSource, ChangeStats, DumpSource};

/// Byte ranges of the addresses inside `struct inet_diag_msg`, for callers
/// that rewrite them in a copy (anonymization).
pub mod address_ranges {
    pub use crate::msg::{DST_RANGE as DST, SRC_RANGE as SRC};
}
