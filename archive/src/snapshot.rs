//! `Snapshot`: one archive record decoded into typed kernel structs, with
//! the semantics of M-Lab's Go `snapshot.Decode`.
//!
//! Each attribute the kernel sent (`INET_DIAG_*`, linux/inet_diag.h) sets
//! its bit (`1 << (type - 1)`) in `observed`. Fixed-size structs are decoded
//! field by field; a payload shorter than the struct (an older kernel) is
//! read as far as it goes with the missing fields zero, exactly as Go
//! zero-pads it, and counts as parsed. A payload longer than the struct (a
//! newer kernel), an attribute of an unknown type, or one too short to hold
//! even its one scalar sets its bit in `not_fully_parsed`; its bytes stay
//! available untouched through [`Snapshot::attribute`].
//!
//! "Longer than the struct" uses the sizes of Go's structs, so the
//! `NotFullyParsed` column is the one M-Lab's tools compute: `tcp_info` up to
//! `tcpi_snd_wnd` (232 bytes), and 24 bytes for `tcp_bbr_info` (Go pads its
//! `int64` bandwidth; the kernel sends 20).

use inetdiag::tcp_info as ti;
use inetdiag::{
    InetDiagMsg, INET_DIAG_BBRINFO, INET_DIAG_CLASS_ID, INET_DIAG_CONG, INET_DIAG_DCTCPINFO,
    INET_DIAG_INFO, INET_DIAG_MARK, INET_DIAG_MEMINFO, INET_DIAG_MSG_LEN, INET_DIAG_PROTOCOL,
    INET_DIAG_SHUTDOWN, INET_DIAG_SKMEMINFO, INET_DIAG_TCLASS, INET_DIAG_TOS, INET_DIAG_VEGASINFO,
};

use crate::record::Metadata;
use crate::record_buf::RecordBuf;
use crate::tcp_info_ext::{Tail, TcpInfoExtended, EXTENDED_LEN};
use crate::timestamp::Timestamp;

/// Why a record is not a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("RawIDM is {0} bytes, struct inet_diag_msg is {INET_DIAG_MSG_LEN}")]
    RawIdmSize(usize),
    #[error("record has neither RawIDM nor Metadata")]
    Empty,
}

/// `struct inet_diag_meminfo` (INET_DIAG_MEMINFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InetDiagMeminfo {
    pub rmem: u32,
    pub wmem: u32,
    pub fmem: u32,
    pub tmem: u32,
}

/// The `u32[SK_MEMINFO_VARS]` array of INET_DIAG_SKMEMINFO
/// (linux/sock_diag.h, `SK_MEMINFO_*` order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkMeminfo {
    pub rmem_alloc: u32,
    pub rcvbuf: u32,
    pub wmem_alloc: u32,
    pub sndbuf: u32,
    pub fwd_alloc: u32,
    pub wmem_queued: u32,
    pub optmem: u32,
    pub backlog: u32,
    pub drops: u32,
}

/// `struct tcpvegas_info` (INET_DIAG_VEGASINFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpVegasInfo {
    pub enabled: u32,
    pub rtt_count: u32,
    pub rtt: u32,
    pub min_rtt: u32,
}

/// `struct tcp_dctcp_info` (INET_DIAG_DCTCPINFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpDctcpInfo {
    pub enabled: u16,
    pub ce_state: u16,
    pub alpha: u32,
    pub ab_ecn: u32,
    pub ab_tot: u32,
}

/// `struct tcp_bbr_info` (INET_DIAG_BBRINFO).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpBbrInfo {
    /// `bbr_bw_lo | bbr_bw_hi << 32`, bytes per second.
    pub bw: u64,
    pub min_rtt: u32,
    pub pacing_gain: u32,
    pub cwnd_gain: u32,
}

/// `struct tcp_info` (INET_DIAG_INFO, include/uapi/linux/tcp.h) through
/// `tcpi_snd_wnd`. Fields the kernel did not send are zero; `len` says how
/// many bytes it sent. The fields newer kernels append after `tcpi_snd_wnd`
/// are read through [`TcpInfo::extended`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub len: usize,
    /// The bytes after `tcpi_snd_wnd` up to the newest known field, zero
    /// where the kernel sent none; decoded only on demand, so the
    /// M-Lab-compatible paths pay a copy and nothing more.
    tail: Tail,
    pub state: u8,
    pub ca_state: u8,
    pub retransmits: u8,
    pub probes: u8,
    pub backoff: u8,
    pub options: u8,
    /// `tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4`, as one byte.
    pub wscale: u8,
    /// `tcpi_delivery_rate_app_limited : 1, tcpi_fastopen_client_fail : 2`.
    pub app_limited: u8,
    pub rto: u32,
    pub ato: u32,
    pub snd_mss: u32,
    pub rcv_mss: u32,
    pub unacked: u32,
    pub sacked: u32,
    pub lost: u32,
    pub retrans: u32,
    pub fackets: u32,
    pub last_data_sent: u32,
    pub last_ack_sent: u32,
    pub last_data_recv: u32,
    pub last_ack_recv: u32,
    pub pmtu: u32,
    pub rcv_ssthresh: u32,
    pub rtt: u32,
    pub rttvar: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    pub advmss: u32,
    pub reordering: u32,
    pub rcv_rtt: u32,
    pub rcv_space: u32,
    pub total_retrans: u32,
    pub pacing_rate: u64,
    pub max_pacing_rate: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u32,
    pub segs_in: u32,
    pub notsent_bytes: u32,
    pub min_rtt: u32,
    pub data_segs_in: u32,
    pub data_segs_out: u32,
    pub delivery_rate: u64,
    pub busy_time: u64,
    pub rwnd_limited: u64,
    pub sndbuf_limited: u64,
    pub delivered: u32,
    pub delivered_ce: u32,
    pub bytes_sent: u64,
    pub bytes_retrans: u64,
    pub dsack_dups: u32,
    pub reord_seen: u32,
    pub rcv_ooopack: u32,
    pub snd_wnd: u32,
}

/// Size of M-Lab's Go `tcp.LinuxTCPInfo`: `struct tcp_info` through
/// `tcpi_snd_wnd` (Linux 5.4).
pub const TCP_INFO_LEN: usize = ti::SND_WND + 4;
const MEMINFO_LEN: usize = 16;
const SKMEMINFO_LEN: usize = 36;
const VEGAS_LEN: usize = 16;
const DCTCP_LEN: usize = 16;
/// Go's `BBRInfo` has an `int64` first, so it is padded to 24 bytes.
const BBR_GO_LEN: usize = 24;

/// A payload copied into its struct's size: bytes the kernel did not send
/// read as zero (Go's zero-padding of older kernels' shorter structs), and
/// every field read below is a fixed offset into a fixed-size array.
struct Fields<const N: usize>([u8; N]);

impl<const N: usize> Fields<N> {
    fn new(b: &[u8]) -> Self {
        let mut padded = [0u8; N];
        let n = b.len().min(N);
        padded[..n].copy_from_slice(&b[..n]);
        Fields(padded)
    }
    fn u8(&self, at: usize) -> u8 {
        self.0[at]
    }
    fn u16(&self, at: usize) -> u16 {
        u16::from_ne_bytes([self.0[at], self.0[at + 1]])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_ne_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }
    fn u64(&self, at: usize) -> u64 {
        let b = &self.0;
        u64::from_ne_bytes([
            b[at],
            b[at + 1],
            b[at + 2],
            b[at + 3],
            b[at + 4],
            b[at + 5],
            b[at + 6],
            b[at + 7],
        ])
    }
}

impl TcpInfo {
    pub fn parse(b: &[u8]) -> Self {
        let f = Fields::<TCP_INFO_LEN>::new(b);
        let mut tail = Tail::default();
        if let Some(rest) = b.get(TCP_INFO_LEN..) {
            let n = rest.len().min(EXTENDED_LEN);
            tail.0[..n].copy_from_slice(&rest[..n]);
        }
        TcpInfo {
            len: b.len(),
            tail,
            state: f.u8(ti::STATE),
            ca_state: f.u8(ti::CA_STATE),
            retransmits: f.u8(ti::RETRANSMITS),
            probes: f.u8(ti::PROBES),
            backoff: f.u8(ti::BACKOFF),
            options: f.u8(ti::OPTIONS),
            wscale: f.u8(ti::WSCALE),
            app_limited: f.u8(ti::APP_LIMITED),
            rto: f.u32(ti::RTO),
            ato: f.u32(ti::ATO),
            snd_mss: f.u32(ti::SND_MSS),
            rcv_mss: f.u32(ti::RCV_MSS),
            unacked: f.u32(ti::UNACKED),
            sacked: f.u32(ti::SACKED),
            lost: f.u32(ti::LOST),
            retrans: f.u32(ti::RETRANS),
            fackets: f.u32(ti::FACKETS),
            last_data_sent: f.u32(ti::LAST_DATA_SENT),
            last_ack_sent: f.u32(ti::LAST_ACK_SENT),
            last_data_recv: f.u32(ti::LAST_DATA_RECV),
            last_ack_recv: f.u32(ti::LAST_ACK_RECV),
            pmtu: f.u32(ti::PMTU),
            rcv_ssthresh: f.u32(ti::RCV_SSTHRESH),
            rtt: f.u32(ti::RTT),
            rttvar: f.u32(ti::RTTVAR),
            snd_ssthresh: f.u32(ti::SND_SSTHRESH),
            snd_cwnd: f.u32(ti::SND_CWND),
            advmss: f.u32(ti::ADVMSS),
            reordering: f.u32(ti::REORDERING),
            rcv_rtt: f.u32(ti::RCV_RTT),
            rcv_space: f.u32(ti::RCV_SPACE),
            total_retrans: f.u32(ti::TOTAL_RETRANS),
            pacing_rate: f.u64(ti::PACING_RATE),
            max_pacing_rate: f.u64(ti::MAX_PACING_RATE),
            bytes_acked: f.u64(ti::BYTES_ACKED),
            bytes_received: f.u64(ti::BYTES_RECEIVED),
            segs_out: f.u32(ti::SEGS_OUT),
            segs_in: f.u32(ti::SEGS_IN),
            notsent_bytes: f.u32(ti::NOTSENT_BYTES),
            min_rtt: f.u32(ti::MIN_RTT),
            data_segs_in: f.u32(ti::DATA_SEGS_IN),
            data_segs_out: f.u32(ti::DATA_SEGS_OUT),
            delivery_rate: f.u64(ti::DELIVERY_RATE),
            busy_time: f.u64(ti::BUSY_TIME),
            rwnd_limited: f.u64(ti::RWND_LIMITED),
            sndbuf_limited: f.u64(ti::SNDBUF_LIMITED),
            delivered: f.u32(ti::DELIVERED),
            delivered_ce: f.u32(ti::DELIVERED_CE),
            bytes_sent: f.u64(ti::BYTES_SENT),
            bytes_retrans: f.u64(ti::BYTES_RETRANS),
            dsack_dups: f.u32(ti::DSACK_DUPS),
            reord_seen: f.u32(ti::REORD_SEEN),
            rcv_ooopack: f.u32(ti::RCV_OOOPACK),
            snd_wnd: f.u32(ti::SND_WND),
        }
    }

    /// The fields after `tcpi_snd_wnd`, each `None` when the kernel that
    /// wrote the archive did not send it.
    pub fn extended(&self) -> TcpInfoExtended {
        TcpInfoExtended::decode(self.len, &self.tail)
    }
}

impl InetDiagMeminfo {
    pub fn parse(b: &[u8]) -> Self {
        let f = Fields::<MEMINFO_LEN>::new(b);
        InetDiagMeminfo {
            rmem: f.u32(0),
            wmem: f.u32(4),
            fmem: f.u32(8),
            tmem: f.u32(12),
        }
    }
}

impl SkMeminfo {
    pub fn parse(b: &[u8]) -> Self {
        let f = Fields::<SKMEMINFO_LEN>::new(b);
        SkMeminfo {
            rmem_alloc: f.u32(0),
            rcvbuf: f.u32(4),
            wmem_alloc: f.u32(8),
            sndbuf: f.u32(12),
            fwd_alloc: f.u32(16),
            wmem_queued: f.u32(20),
            optmem: f.u32(24),
            backlog: f.u32(28),
            drops: f.u32(32),
        }
    }
}

impl TcpVegasInfo {
    pub fn parse(b: &[u8]) -> Self {
        let f = Fields::<VEGAS_LEN>::new(b);
        TcpVegasInfo {
            enabled: f.u32(0),
            rtt_count: f.u32(4),
            rtt: f.u32(8),
            min_rtt: f.u32(12),
        }
    }
}

impl TcpDctcpInfo {
    pub fn parse(b: &[u8]) -> Self {
        let f = Fields::<DCTCP_LEN>::new(b);
        TcpDctcpInfo {
            enabled: f.u16(0),
            ce_state: f.u16(2),
            alpha: f.u32(4),
            ab_ecn: f.u32(8),
            ab_tot: f.u32(12),
        }
    }
}

impl TcpBbrInfo {
    pub fn parse(b: &[u8]) -> Self {
        let f = Fields::<20>::new(b);
        TcpBbrInfo {
            bw: u64::from(f.u32(0)) | u64::from(f.u32(4)) << 32,
            min_rtt: f.u32(8),
            pacing_gain: f.u32(12),
            cwnd_gain: f.u32(16),
        }
    }
}

/// One record, decoded. Borrows the raw bytes from the [`RecordBuf`].
#[derive(Debug, Clone)]
pub struct Snapshot<'a> {
    record: &'a RecordBuf,
    pub timestamp: Timestamp,
    /// Bit `type - 1` for every attribute present (types 1..=32).
    pub observed: u32,
    /// Bit `type - 1` for every attribute not fully decoded.
    pub not_fully_parsed: u32,
    /// `None` on a metadata-only line.
    pub inet_diag_msg: Option<InetDiagMsg<'a>>,
    pub tcp_info: Option<TcpInfo>,
    pub mem_info: Option<InetDiagMeminfo>,
    pub sk_mem_info: Option<SkMeminfo>,
    pub vegas_info: Option<TcpVegasInfo>,
    pub dctcp_info: Option<TcpDctcpInfo>,
    pub bbr_info: Option<TcpBbrInfo>,
    /// INET_DIAG_CONG without its terminating byte.
    pub congestion: Option<&'a [u8]>,
    pub tos: Option<u8>,
    pub tclass: Option<u8>,
    pub class_id: Option<u32>,
    pub shutdown: Option<u8>,
    pub protocol: Option<u8>,
    pub mark: Option<u32>,
}

/// Bit of attribute `kind` in the `Observed`/`NotFullyParsed` masks; types
/// outside 1..=32 have none (Go shifts them out of its `uint32`).
pub fn attribute_bit(kind: usize) -> u32 {
    match kind {
        1..=32 => 1 << (kind - 1),
        _ => 0,
    }
}

/// A one-byte attribute into its field; whether there was a byte.
fn first_byte(field: &mut Option<u8>, raw: &[u8]) -> bool {
    *field = raw.first().copied();
    field.is_some()
}

impl<'a> Snapshot<'a> {
    /// The metadata of a metadata line (its first line, in an archive).
    pub fn metadata(&self) -> Option<&'a Metadata> {
        self.record.metadata()
    }

    /// Decodes the record held in `record`.
    pub fn decode(record: &'a RecordBuf) -> Result<Self, SnapshotError> {
        let inet_diag_msg = match record.raw_idm() {
            Some(raw) if raw.len() == INET_DIAG_MSG_LEN => {
                Some(InetDiagMsg::parse(raw).map_err(|_| SnapshotError::RawIdmSize(raw.len()))?)
            }
            Some(raw) => return Err(SnapshotError::RawIdmSize(raw.len())),
            None if record.has_metadata() => None,
            None => return Err(SnapshotError::Empty),
        };
        let mut s = Snapshot {
            record,
            timestamp: *record.timestamp(),
            observed: 0,
            not_fully_parsed: 0,
            inet_diag_msg,
            tcp_info: None,
            mem_info: None,
            sk_mem_info: None,
            vegas_info: None,
            dctcp_info: None,
            bbr_info: None,
            congestion: None,
            tos: None,
            tclass: None,
            class_id: None,
            shutdown: None,
            protocol: None,
            mark: None,
        };
        for (kind, raw) in record.attributes() {
            let fits = |go_len: usize| raw.len() <= go_len;
            let parsed = match u16::try_from(kind).unwrap_or(u16::MAX) {
                INET_DIAG_MEMINFO => {
                    s.mem_info = Some(InetDiagMeminfo::parse(raw));
                    fits(MEMINFO_LEN)
                }
                INET_DIAG_INFO => {
                    s.tcp_info = Some(TcpInfo::parse(raw));
                    fits(TCP_INFO_LEN)
                }
                INET_DIAG_VEGASINFO => {
                    s.vegas_info = Some(TcpVegasInfo::parse(raw));
                    fits(VEGAS_LEN)
                }
                INET_DIAG_CONG => match raw.split_last() {
                    // The kernel sends the name NUL-terminated.
                    Some((_, name)) => {
                        s.congestion = Some(name);
                        true
                    }
                    None => false,
                },
                INET_DIAG_TOS => first_byte(&mut s.tos, raw),
                INET_DIAG_TCLASS => first_byte(&mut s.tclass, raw),
                INET_DIAG_SKMEMINFO => {
                    s.sk_mem_info = Some(SkMeminfo::parse(raw));
                    fits(SKMEMINFO_LEN)
                }
                INET_DIAG_SHUTDOWN => first_byte(&mut s.shutdown, raw),
                INET_DIAG_DCTCPINFO => {
                    s.dctcp_info = Some(TcpDctcpInfo::parse(raw));
                    fits(DCTCP_LEN)
                }
                INET_DIAG_PROTOCOL => first_byte(&mut s.protocol, raw),
                INET_DIAG_MARK => match <[u8; 4]>::try_from(raw) {
                    Ok(b) => {
                        s.mark = Some(u32::from_ne_bytes(b));
                        true
                    }
                    Err(_) => false,
                },
                INET_DIAG_BBRINFO => {
                    s.bbr_info = Some(TcpBbrInfo::parse(raw));
                    fits(BBR_GO_LEN)
                }
                INET_DIAG_CLASS_ID => {
                    // A u32; Go's tools read only its first byte and accept
                    // any non-empty payload.
                    s.class_id = (!raw.is_empty()).then(|| Fields::<4>::new(raw).u32(0));
                    !raw.is_empty()
                }
                // SKV6ONLY, LOCALS, PEERS, PAD, MD5SIG, ULP_INFO, and types
                // newer than this decoder: kept raw, not parsed.
                _ => false,
            };
            let bit = attribute_bit(kind);
            s.observed |= bit;
            if !parsed {
                s.not_fully_parsed |= bit;
            }
        }
        Ok(s)
    }

    /// The raw payload of attribute `kind`, exactly as archived.
    pub fn attribute(&self, kind: usize) -> Option<&'a [u8]> {
        self.record.attribute(kind)
    }

    /// Attributes this decoder did not fully map to fields, with their raw
    /// bytes: unknown types, and payloads longer than their struct.
    pub fn unparsed_attributes(&self) -> impl Iterator<Item = (usize, &'a [u8])> + 'a {
        let mask = self.not_fully_parsed;
        self.record.attributes().filter(move |&(kind, _)| {
            let bit = attribute_bit(kind);
            bit == 0 || bit & mask != 0
        })
    }

    /// Whether this row came from a metadata line (no `inet_diag_msg`).
    pub fn is_metadata(&self) -> bool {
        self.inet_diag_msg.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(line: &str) -> (RecordBuf, Result<(u32, u32), SnapshotError>) {
        let mut b = RecordBuf::new();
        b.parse(line.as_bytes()).unwrap();
        let r = Snapshot::decode(&b).map(|s| (s.observed, s.not_fully_parsed));
        (b, r)
    }

    const IDM: &str = "CgECACODqfQAAAAAAAAAAAAA///AqA6GAAAAAAAAAAAAAP//wKgOgQAAAADoAwAAAAAAAHD///8AAAAAAAAAAAAAAACvos4D";

    fn b64(bytes: &[u8]) -> String {
        let mut v = Vec::new();
        crate::push_base64(&mut v, bytes);
        String::from_utf8(v).unwrap()
    }

    fn line_with(attrs: &[Option<Vec<u8>>]) -> String {
        let a: Vec<String> = attrs
            .iter()
            .map(|a| match a {
                Some(b) => format!("\"{}\"", b64(b)),
                None => "null".into(),
            })
            .collect();
        format!(
            r#"{{"Timestamp":"2019-04-02T14:12:37.511Z","RawIDM":"{IDM}","Attributes":[{}]}}"#,
            a.join(",")
        )
    }

    #[test]
    fn short_tcp_info_is_zero_padded_and_counts_as_parsed() {
        let mut info = vec![0u8; 100];
        info[ti::RTT..ti::RTT + 4].copy_from_slice(&1234u32.to_ne_bytes());
        let line = line_with(&[None, None, Some(info)]);
        let mut b = RecordBuf::new();
        b.parse(line.as_bytes()).unwrap();
        let s = Snapshot::decode(&b).unwrap();
        let t = s.tcp_info.unwrap();
        assert_eq!((t.len, t.rtt, t.snd_wnd, t.bytes_acked), (100, 1234, 0, 0));
        assert_eq!((s.observed, s.not_fully_parsed), (0b10, 0));
    }

    #[test]
    fn long_tcp_info_is_parsed_flagged_and_kept() {
        let info = vec![7u8; 248];
        let line = line_with(&[None, None, Some(info.clone())]);
        let mut b = RecordBuf::new();
        b.parse(line.as_bytes()).unwrap();
        let s = Snapshot::decode(&b).unwrap();
        assert_eq!(s.tcp_info.unwrap().snd_wnd, 0x0707_0707);
        assert_eq!(s.not_fully_parsed, 0b10);
        assert_eq!(s.attribute(2), Some(&info[..]));
        assert_eq!(s.unparsed_attributes().count(), 1);
    }

    #[test]
    fn unknown_and_unusable_attributes_are_flagged() {
        let mut attrs = vec![None; 24];
        attrs[4] = Some(vec![]); // empty CONG
        attrs[5] = Some(vec![]); // empty TOS
        attrs[15] = Some(vec![1, 2, 3]); // MARK must be 4 bytes
        attrs[23] = Some(vec![9]); // beyond what this decoder knows
        let (_, r) = decode(&line_with(&attrs));
        let bits = (1 << 3) | (1 << 4) | (1 << 14) | (1 << 22);
        assert_eq!(r.unwrap(), (bits, bits));
    }

    #[test]
    fn scalars_and_small_structs_decode() {
        let mut attrs = vec![None; 18];
        attrs[4] = Some(b"bbr\0".to_vec());
        attrs[5] = Some(vec![0x10]);
        attrs[15] = Some(42u32.to_ne_bytes().to_vec());
        attrs[16] = Some(
            [5u32, 1, 300, 256, 512]
                .iter()
                .flat_map(|v| v.to_ne_bytes())
                .collect(),
        );
        attrs[17] = Some(0x0001_0002u32.to_ne_bytes().to_vec());
        let line = line_with(&attrs);
        let mut b = RecordBuf::new();
        b.parse(line.as_bytes()).unwrap();
        let s = Snapshot::decode(&b).unwrap();
        assert_eq!(s.congestion, Some(&b"bbr"[..]));
        assert_eq!(
            (s.tos, s.mark, s.class_id),
            (Some(0x10), Some(42), Some(0x0001_0002))
        );
        let bbr = s.bbr_info.unwrap();
        assert_eq!(
            (bbr.bw, bbr.min_rtt, bbr.pacing_gain),
            ((1 << 32) | 5, 300, 256)
        );
        assert_eq!(s.not_fully_parsed, 0);
        let idm = s.inet_diag_msg.unwrap();
        assert_eq!((idm.sport(), idm.cookie()), (9091, 0x3e8));
    }

    #[test]
    fn metadata_line_is_a_snapshot_without_a_message() {
        let (b, r) = decode(r#"{"Timestamp":"0001-01-01T00:00:00Z","Metadata":{"UUID":"u"}}"#);
        assert_eq!(r.unwrap(), (0, 0));
        assert!(Snapshot::decode(&b).unwrap().is_metadata());
    }

    #[test]
    fn bad_records_are_errors() {
        let (_, r) = decode(r#"{"Timestamp":"2019-04-02T14:12:37Z"}"#);
        assert_eq!(r, Err(SnapshotError::Empty));
        let (_, r) = decode(r#"{"RawIDM":"AAAA"}"#);
        assert_eq!(r, Err(SnapshotError::RawIdmSize(3)));
    }

    #[test]
    fn attribute_bits_follow_go() {
        assert_eq!(attribute_bit(0), 0);
        assert_eq!(attribute_bit(1), 1);
        assert_eq!(attribute_bit(32), 1 << 31);
        assert_eq!(attribute_bit(33), 0);
    }
}
