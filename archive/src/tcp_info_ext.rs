//! The `struct tcp_info` fields newer kernels append after `tcpi_snd_wnd`
//! (where M-Lab's Go decoder, and so its CSV, stops), as of Linux 6.18's
//! include/uapi/linux/tcp.h:
//!
//! | offset | field                        | type  | since |
//! |-------:|------------------------------|-------|-------|
//! |    232 | `tcpi_rcv_wnd`               | `u32` | 6.2   |
//! |    236 | `tcpi_rehash`                | `u32` | 6.2   |
//! |    240 | `tcpi_total_rto`             | `u16` | 6.7   |
//! |    242 | `tcpi_total_rto_recoveries`  | `u16` | 6.7   |
//! |    244 | `tcpi_total_rto_time`        | `u32` | 6.7   |
//! |    248 | `tcpi_received_ce`           | `u32` | 6.18  |
//! |    252 | `tcpi_delivered_e1_bytes`    | `u32` | 6.18  |
//! |    256 | `tcpi_delivered_e0_bytes`    | `u32` | 6.18  |
//! |    260 | `tcpi_delivered_ce_bytes`    | `u32` | 6.18  |
//! |    264 | `tcpi_received_e1_bytes`     | `u32` | 6.18  |
//! |    268 | `tcpi_received_e0_bytes`     | `u32` | 6.18  |
//! |    272 | `tcpi_received_ce_bytes`     | `u32` | 6.18  |
//! |    276 | `tcpi_accecn_fail_mode`      | `u16` | 6.18  |
//! |    278 | `tcpi_accecn_opt_seen`       | `u16` | 6.18  |
//!
//! 280 bytes in all, with no padding (every field sits at a multiple of its
//! size). A field is present when the kernel sent all of its bytes: a
//! 248-byte struct (6.7 to 6.17) has the RTO fields and no AccECN ones.
//! Later kernels repack the last word as bit fields (`tcpi_ecn_mode:2`,
//! `tcpi_accecn_opt_seen:2`, `tcpi_accecn_fail_mode:4`, `tcpi_options2:24`);
//! this decoder reads it as 6.18 defines it.

use crate::snapshot::TCP_INFO_LEN;

/// Bytes of `struct tcp_info` after `tcpi_snd_wnd` that this decoder knows.
pub const EXTENDED_LEN: usize = TCP_INFO_MAX_LEN - TCP_INFO_LEN;

/// Size of `struct tcp_info` as of Linux 6.18.
pub const TCP_INFO_MAX_LEN: usize = 280;

/// The bytes after `tcpi_snd_wnd`, zero-padded (kept in [`TcpInfo`] for
/// [`TcpInfo::extended`]).
///
/// [`TcpInfo`]: crate::TcpInfo
/// [`TcpInfo::extended`]: crate::TcpInfo::extended
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail(pub(crate) [u8; EXTENDED_LEN]);

impl Default for Tail {
    fn default() -> Self {
        Tail([0; EXTENDED_LEN])
    }
}

/// How wide a field is in the kernel struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldWidth {
    U16,
    U32,
}

/// One field after `tcpi_snd_wnd`: where it is and what the CSV and
/// Parquet columns call it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedField {
    /// Column name, in the style of the M-Lab columns (`TCP.RcvWnd`).
    pub column: &'static str,
    /// The kernel's name (`tcpi_rcv_wnd`).
    pub kernel_name: &'static str,
    /// Byte offset in `struct tcp_info`.
    pub offset: usize,
    pub width: FieldWidth,
    /// The first Linux release that sends it.
    pub since: &'static str,
}

const fn field(
    column: &'static str,
    kernel_name: &'static str,
    offset: usize,
    width: FieldWidth,
    since: &'static str,
) -> ExtendedField {
    ExtendedField {
        column,
        kernel_name,
        offset,
        width,
        since,
    }
}

use FieldWidth::{U16, U32};

/// Every field after `tcpi_snd_wnd`, in struct order (the order of the
/// extended columns).
pub const EXTENDED_FIELDS: [ExtendedField; 14] = [
    field("TCP.RcvWnd", "tcpi_rcv_wnd", 232, U32, "6.2"),
    field("TCP.Rehash", "tcpi_rehash", 236, U32, "6.2"),
    field("TCP.TotalRTO", "tcpi_total_rto", 240, U16, "6.7"),
    field(
        "TCP.TotalRTORecoveries",
        "tcpi_total_rto_recoveries",
        242,
        U16,
        "6.7",
    ),
    field("TCP.TotalRTOTime", "tcpi_total_rto_time", 244, U32, "6.7"),
    field("TCP.ReceivedCE", "tcpi_received_ce", 248, U32, "6.18"),
    field(
        "TCP.DeliveredE1Bytes",
        "tcpi_delivered_e1_bytes",
        252,
        U32,
        "6.18",
    ),
    field(
        "TCP.DeliveredE0Bytes",
        "tcpi_delivered_e0_bytes",
        256,
        U32,
        "6.18",
    ),
    field(
        "TCP.DeliveredCEBytes",
        "tcpi_delivered_ce_bytes",
        260,
        U32,
        "6.18",
    ),
    field(
        "TCP.ReceivedE1Bytes",
        "tcpi_received_e1_bytes",
        264,
        U32,
        "6.18",
    ),
    field(
        "TCP.ReceivedE0Bytes",
        "tcpi_received_e0_bytes",
        268,
        U32,
        "6.18",
    ),
    field(
        "TCP.ReceivedCEBytes",
        "tcpi_received_ce_bytes",
        272,
        U32,
        "6.18",
    ),
    field(
        "TCP.AccECNFailMode",
        "tcpi_accecn_fail_mode",
        276,
        U16,
        "6.18",
    ),
    field(
        "TCP.AccECNOptSeen",
        "tcpi_accecn_opt_seen",
        278,
        U16,
        "6.18",
    ),
];

/// The fields after `tcpi_snd_wnd`, each `None` when the archived struct is
/// too short to hold it (an older kernel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfoExtended {
    pub rcv_wnd: Option<u32>,
    pub rehash: Option<u32>,
    pub total_rto: Option<u16>,
    pub total_rto_recoveries: Option<u16>,
    pub total_rto_time: Option<u32>,
    pub received_ce: Option<u32>,
    pub delivered_e1_bytes: Option<u32>,
    pub delivered_e0_bytes: Option<u32>,
    pub delivered_ce_bytes: Option<u32>,
    pub received_e1_bytes: Option<u32>,
    pub received_e0_bytes: Option<u32>,
    pub received_ce_bytes: Option<u32>,
    pub accecn_fail_mode: Option<u16>,
    pub accecn_opt_seen: Option<u16>,
}

impl TcpInfoExtended {
    /// Decodes from `tail`, the bytes after `tcpi_snd_wnd` (zero-padded),
    /// of a struct the kernel sent `len` bytes of.
    pub(crate) fn decode(len: usize, tail: &Tail) -> Self {
        let tail = &tail.0;
        let v = |i: usize| field_value(&EXTENDED_FIELDS[i], len, tail);
        let v16 = |i: usize| v(i).map(|x| x as u16);
        TcpInfoExtended {
            rcv_wnd: v(0),
            rehash: v(1),
            total_rto: v16(2),
            total_rto_recoveries: v16(3),
            total_rto_time: v(4),
            received_ce: v(5),
            delivered_e1_bytes: v(6),
            delivered_e0_bytes: v(7),
            delivered_ce_bytes: v(8),
            received_e1_bytes: v(9),
            received_e0_bytes: v(10),
            received_ce_bytes: v(11),
            accecn_fail_mode: v16(12),
            accecn_opt_seen: v16(13),
        }
    }

    /// The fields in [`EXTENDED_FIELDS`] order, `u16`s widened.
    pub fn values(&self) -> [Option<u32>; 14] {
        let w = |x: Option<u16>| x.map(u32::from);
        [
            self.rcv_wnd,
            self.rehash,
            w(self.total_rto),
            w(self.total_rto_recoveries),
            self.total_rto_time,
            self.received_ce,
            self.delivered_e1_bytes,
            self.delivered_e0_bytes,
            self.delivered_ce_bytes,
            self.received_e1_bytes,
            self.received_e0_bytes,
            self.received_ce_bytes,
            w(self.accecn_fail_mode),
            w(self.accecn_opt_seen),
        ]
    }
}

fn field_value(f: &ExtendedField, len: usize, tail: &[u8; EXTENDED_LEN]) -> Option<u32> {
    let size = match f.width {
        U16 => 2,
        U32 => 4,
    };
    if len < f.offset + size {
        return None;
    }
    let at = f.offset - TCP_INFO_LEN;
    Some(match f.width {
        U16 => u32::from(u16::from_ne_bytes([tail[at], tail[at + 1]])),
        U32 => u32::from_ne_bytes([tail[at], tail[at + 1], tail[at + 2], tail[at + 3]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::TcpInfo;

    #[test]
    fn fields_tile_the_struct_without_gaps() {
        let mut at = TCP_INFO_LEN;
        for f in EXTENDED_FIELDS {
            let size = if f.width == U16 { 2 } else { 4 };
            assert_eq!(f.offset, at, "{}", f.kernel_name);
            assert_eq!(f.offset % size, 0, "{} is misaligned", f.kernel_name);
            at += size;
        }
        assert_eq!(at, TCP_INFO_MAX_LEN);
        assert_eq!(inetdiag::tcp_info::RCV_WND, EXTENDED_FIELDS[0].offset);
        assert_eq!(inetdiag::tcp_info::REHASH, EXTENDED_FIELDS[1].offset);
    }

    /// A struct whose every field holds a value derived from its offset.
    fn struct_of(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; TCP_INFO_MAX_LEN];
        for f in EXTENDED_FIELDS {
            match f.width {
                U16 => b[f.offset..f.offset + 2].copy_from_slice(&(f.offset as u16).to_ne_bytes()),
                U32 => b[f.offset..f.offset + 4]
                    .copy_from_slice(&(f.offset as u32 * 1000).to_ne_bytes()),
            }
        }
        b.truncate(len);
        b
    }

    #[test]
    fn each_kernel_generation_decodes_what_it_sent() {
        let full = TcpInfo::parse(&struct_of(280)).extended();
        assert_eq!(full.rcv_wnd, Some(232_000));
        assert_eq!(full.rehash, Some(236_000));
        assert_eq!(full.total_rto, Some(240));
        assert_eq!(full.total_rto_recoveries, Some(242));
        assert_eq!(full.total_rto_time, Some(244_000));
        assert_eq!(full.received_ce, Some(248_000));
        assert_eq!(full.received_ce_bytes, Some(272_000));
        assert_eq!(full.accecn_fail_mode, Some(276));
        assert_eq!(full.accecn_opt_seen, Some(278));

        // 6.7 .. 6.17: the RTO counters, no AccECN.
        let v6_7 = TcpInfo::parse(&struct_of(248)).extended();
        assert_eq!(v6_7.total_rto_time, Some(244_000));
        assert_eq!(v6_7.received_ce, None);
        // 5.4 (M-Lab's Go): nothing after snd_wnd.
        assert_eq!(
            TcpInfo::parse(&struct_of(232)).extended(),
            TcpInfoExtended::default()
        );
        // A torn field is absent, not half read.
        let torn = TcpInfo::parse(&struct_of(242)).extended();
        assert_eq!(
            (torn.total_rto, torn.total_rto_recoveries),
            (Some(240), None)
        );
        // A kernel newer than this decoder: known fields still decode.
        let mut newer = struct_of(280);
        newer.extend_from_slice(&[0xff; 16]);
        assert_eq!(TcpInfo::parse(&newer).extended(), full);
        assert_eq!(full.values()[2..5], [Some(240), Some(242), Some(244_000)]);
    }
}
