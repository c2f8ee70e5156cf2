//! Byte offsets of `struct tcp_info` (include/uapi/linux/tcp.h).
//!
//! The kernel only ever appends fields, and sends as many bytes as it knows;
//! a reader must check the payload length before reading a field (older
//! kernels send fewer bytes, newer ones more).

pub const STATE: usize = 0;
pub const CA_STATE: usize = 1;
pub const RETRANSMITS: usize = 2;
pub const PROBES: usize = 3;
pub const BACKOFF: usize = 4;
pub const OPTIONS: usize = 5;
/// `tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4`.
pub const WSCALE: usize = 6;
/// `tcpi_delivery_rate_app_limited:1, tcpi_fastopen_client_fail:2`.
pub const APP_LIMITED: usize = 7;
pub const RTO: usize = 8;
pub const ATO: usize = 12;
pub const SND_MSS: usize = 16;
pub const RCV_MSS: usize = 20;
pub const UNACKED: usize = 24;
pub const SACKED: usize = 28;
pub const LOST: usize = 32;
pub const RETRANS: usize = 36;
pub const FACKETS: usize = 40;
pub const LAST_DATA_SENT: usize = 44;
pub const LAST_ACK_SENT: usize = 48;
pub const LAST_DATA_RECV: usize = 52;
pub const LAST_ACK_RECV: usize = 56;
pub const PMTU: usize = 60;
pub const RCV_SSTHRESH: usize = 64;
pub const RTT: usize = 68;
pub const RTTVAR: usize = 72;
pub const SND_SSTHRESH: usize = 76;
pub const SND_CWND: usize = 80;
pub const ADVMSS: usize = 84;
pub const REORDERING: usize = 88;
pub const RCV_RTT: usize = 92;
pub const RCV_SPACE: usize = 96;
pub const TOTAL_RETRANS: usize = 100;
pub const PACING_RATE: usize = 104;
pub const MAX_PACING_RATE: usize = 112;
pub const BYTES_ACKED: usize = 120;
pub const BYTES_RECEIVED: usize = 128;
pub const SEGS_OUT: usize = 136;
pub const SEGS_IN: usize = 140;
pub const NOTSENT_BYTES: usize = 144;
pub const MIN_RTT: usize = 148;
pub const DATA_SEGS_IN: usize = 152;
pub const DATA_SEGS_OUT: usize = 156;
pub const DELIVERY_RATE: usize = 160;
pub const BUSY_TIME: usize = 168;
pub const RWND_LIMITED: usize = 176;
pub const SNDBUF_LIMITED: usize = 184;
pub const DELIVERED: usize = 192;
pub const DELIVERED_CE: usize = 196;
pub const BYTES_SENT: usize = 200;
pub const BYTES_RETRANS: usize = 208;
pub const DSACK_DUPS: usize = 216;
pub const REORD_SEEN: usize = 220;
pub const RCV_OOOPACK: usize = 224;
pub const SND_WND: usize = 228;
pub const RCV_WND: usize = 232;
pub const REHASH: usize = 236;

/// Reads a `u8` field, `None` when the kernel did not send it.
pub fn u8_at(info: &[u8], offset: usize) -> Option<u8> {
    info.get(offset).copied()
}

/// Reads a native-endian `u32` field, `None` when the kernel did not send it.
pub fn u32_at(info: &[u8], offset: usize) -> Option<u32> {
    let bytes = info.get(offset..offset + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// Reads a native-endian `u64` field, `None` when the kernel did not send it.
pub fn u64_at(info: &[u8], offset: usize) -> Option<u64> {
    let bytes = info.get(offset..offset + 8)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}
