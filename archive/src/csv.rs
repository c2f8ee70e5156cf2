//! Snapshots as CSV rows, byte-identical to M-Lab's Go `csvtool` (tcp-info
//! commit d72b41f, which marshals `snapshot.Snapshot` with gocsv).
//!
//! What that output looks like, and so what this writes:
//! - The header names come from Go struct tags, typos included: the
//!   `LastAckRecv` column is headed `TCP.LastDataRecv` (so that name appears
//!   twice) and `SKMemInfo.Sndbuf` is spelled `SKMemInfo.Sndbug`.
//! - A record with Go's zero time (the metadata line) is stamped
//!   2009-05-29T23:59:59Z; other times print as RFC 3339 with the offset
//!   and fraction digits they were archived with (trailing zeros dropped).
//! - A struct that is absent (no `inet_diag_msg` on a metadata line, an
//!   attribute the kernel did not send) leaves all its cells empty; an
//!   absent scalar attribute (TOS, mark, …) prints 0.
//! - Ports are read big-endian (network order), and so is the interface
//!   index (a Go quirk; the kernel sends it in host order). The cookie is
//!   upper-case hex. Addresses print as Go's `net.IP` does: IPv4 when only
//!   the first four bytes are set or the address is IPv4-mapped.
//! - ClassID is the first byte of the u32 the kernel sends (Go reads a u8).
//! - `tcpi_pacing_rate`, `tcpi_max_pacing_rate`, the byte counters,
//!   `tcpi_delivery_rate`, the `*_limited`/busy times and BBR bandwidth are
//!   printed signed 64-bit, `tcpi_segs_in/out` signed 32-bit (Go declares
//!   them so for BigQuery), which is why an unset pacing rate shows -1.

use crate::snapshot::Snapshot;
use crate::tcp_info_ext::EXTENDED_FIELDS;
use crate::timestamp::Timestamp;

/// The header line, with its newline.
pub const HEADER: &str = "Timestamp,Observed,NotFullyParsed,\
IDM.Family,IDM.State,IDM.Timer,IDM.Retrans,IDM.SockID.SPort,IDM.SockID.DPort,\
IDM.SockID.Src,IDM.SockID.Dst,IDM.SockID.Interface,IDM.SockID.Cookie,IDM.Expires,\
IDM.Rqueue,IDM.Wqueue,IDM.UID,IDM.Inode,\
CongestionAlgorithm,TOS,TClass,ClassID,Shutdown,Protocol,Mark,\
TCP.State,TCP.CAState,TCP.Retransmits,TCP.Probes,TCP.Backoff,TCP.Options,TCP.WScale,\
TCP.AppLimited,TCP.RTO,TCP.ATO,TCP.SndMSS,TCP.RcvMSS,TCP.Unacked,TCP.Sacked,TCP.Lost,\
TCP.Retrans,TCP.Fackets,TCP.LastDataSent,TCP.LastAckSent,TCP.LastDataRecv,TCP.LastDataRecv,\
TCP.PMTU,TCP.RcvSsThresh,TCP.RTT,TCP.RTTVar,TCP.SndSsThresh,TCP.SndCwnd,TCP.AdvMSS,\
TCP.Reordering,TCP.RcvRTT,TCP.RcvSpace,TCP.TotalRetrans,TCP.PacingRate,TCP.MaxPacingRate,\
TCP.BytesAcked,TCP.BytesReceived,TCP.SegsOut,TCP.SegsIn,TCP.NotsentBytes,TCP.MinRTT,\
TCP.DataSegsIn,TCP.DataSegsOut,TCP.DeliveryRate,TCP.BusyTime,TCP.RWndLimited,\
TCP.SndBufLimited,TCP.Delivered,TCP.DeliveredCE,TCP.BytesSent,TCP.BytesRetrans,\
TCP.DSackDups,TCP.ReordSeen,TCP.RcvOooPack,TCP.SndWnd,\
MemInfo.Rmem,MemInfo.Wmem,MemInfo.Fmem,MemInfo.Tmem,\
SKMemInfo.RmemAlloc,SKMemInfo.Rcvbuf,SKMemInfo.WmemAlloc,SKMemInfo.Sndbug,\
SKMemInfo.FwdAlloc,SKMemInfo.WmemQueued,SKMemInfo.Optmem,SKMemInfo.Backlog,SKMemInfo.Drops,\
Vegas.Enabled,Vegas.RTTCount,Vegas.RTT,Vegas.MinRTT,\
DCTCP.Enabled,DCTCP.CEState,DCTCP.Alpha,DCTCP.ABEcn,DCTCP.ABTot,\
BBR.BW,BBR.MinRTT,BBR.PacingGain,BBR.CwndGain\n";

/// What Go's snapshot reader substitutes for the zero time.
pub const ZERO_TIME_PLACEHOLDER: &str = "2009-05-29T23:59:59Z";

const IDM_COLUMNS: usize = 15;
const TCP_COLUMNS: usize = 54;

/// Columns beyond M-Lab's, each opt-in, written after them in this order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    /// One column per [`EXTENDED_FIELDS`] entry: the `tcp_info` fields
    /// after `tcpi_snd_wnd`, empty where the archived struct is shorter.
    pub extended: bool,
    /// `UUID` and `File`: the connection and the archive a row came from.
    pub source: bool,
}

impl Columns {
    /// The header line for these columns, with its newline.
    pub fn header(&self) -> String {
        let mut h = HEADER.trim_end_matches('\n').to_string();
        if self.extended {
            for f in EXTENDED_FIELDS {
                h.push(',');
                h.push_str(f.column);
            }
        }
        if self.source {
            h.push_str(",UUID,File");
        }
        h.push('\n');
        h
    }
}

/// Where a row came from, for [`Columns::source`].
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub uuid: &'a [u8],
    pub file: &'a [u8],
}

/// Appends one row (with its newline) for `s`.
pub fn write_row(out: &mut Vec<u8>, s: &Snapshot<'_>) {
    let mut row = Row::new(out);
    write_mlab_cells(&mut row, s);
    row.push(b'\n');
    row.finish();
}

/// Appends one row (with its newline) for `s` with the opt-in `columns`;
/// `source` fills the `UUID` and `File` cells.
pub fn write_row_with(out: &mut Vec<u8>, s: &Snapshot<'_>, columns: Columns, source: Source<'_>) {
    let mut row = Row::new(out);
    write_mlab_cells(&mut row, s);
    if columns.extended {
        match &s.tcp_info {
            Some(t) => {
                for v in t.extended().values() {
                    match v {
                        Some(v) => row.num(v),
                        None => row.cell(),
                    }
                }
            }
            None => row.empty(EXTENDED_FIELDS.len()),
        }
    }
    if columns.source {
        row.cell();
        write_go_csv_field(&mut row, source.uuid);
        row.cell();
        write_go_csv_field(&mut row, source.file);
    }
    row.push(b'\n');
    row.finish();
}

/// The M-Lab columns of one row, without the newline.
fn write_mlab_cells(row: &mut Row<'_>, s: &Snapshot<'_>) {
    write_timestamp(row, &s.timestamp);
    row.num(s.observed);
    row.num(s.not_fully_parsed);

    match &s.inet_diag_msg {
        Some(m) => {
            let raw = m.as_bytes();
            row.num(m.family());
            row.num(m.state());
            row.num(m.timer());
            row.num(m.retrans());
            row.num(m.sport());
            row.num(m.dport());
            row.cell();
            write_go_ip(row, m.src_bytes());
            row.cell();
            write_go_ip(row, m.dst_bytes());
            row.num(u32::from_be_bytes([raw[40], raw[41], raw[42], raw[43]]));
            row.cell();
            write_upper_hex(row, m.cookie());
            row.num(m.expires());
            row.num(m.rqueue());
            row.num(m.wqueue());
            row.num(m.uid());
            row.num(m.inode());
        }
        None => row.empty(IDM_COLUMNS),
    }

    row.cell();
    write_go_csv_field(row, s.congestion.unwrap_or_default());
    row.num(s.tos.unwrap_or(0));
    row.num(s.tclass.unwrap_or(0));
    row.num(s.class_id.unwrap_or(0) as u8);
    row.num(s.shutdown.unwrap_or(0));
    row.num(s.protocol.unwrap_or(0));
    row.num(s.mark.unwrap_or(0));

    match &s.tcp_info {
        Some(t) => {
            row.nums([
                t.state,
                t.ca_state,
                t.retransmits,
                t.probes,
                t.backoff,
                t.options,
                t.wscale,
                t.app_limited,
            ]);
            row.nums([
                t.rto,
                t.ato,
                t.snd_mss,
                t.rcv_mss,
                t.unacked,
                t.sacked,
                t.lost,
                t.retrans,
                t.fackets,
                t.last_data_sent,
                t.last_ack_sent,
                t.last_data_recv,
                t.last_ack_recv,
                t.pmtu,
                t.rcv_ssthresh,
                t.rtt,
                t.rttvar,
                t.snd_ssthresh,
                t.snd_cwnd,
                t.advmss,
                t.reordering,
                t.rcv_rtt,
                t.rcv_space,
                t.total_retrans,
            ]);
            row.nums(as_go_int64([
                t.pacing_rate,
                t.max_pacing_rate,
                t.bytes_acked,
                t.bytes_received,
            ]));
            row.nums([t.segs_out, t.segs_in].map(|v| v as i32));
            row.nums([t.notsent_bytes, t.min_rtt, t.data_segs_in, t.data_segs_out]);
            row.nums(as_go_int64([
                t.delivery_rate,
                t.busy_time,
                t.rwnd_limited,
                t.sndbuf_limited,
            ]));
            row.nums([t.delivered, t.delivered_ce]);
            row.nums(as_go_int64([t.bytes_sent, t.bytes_retrans]));
            row.nums([t.dsack_dups, t.reord_seen, t.rcv_ooopack, t.snd_wnd]);
        }
        None => row.empty(TCP_COLUMNS),
    }

    match &s.mem_info {
        Some(m) => row.nums([m.rmem, m.wmem, m.fmem, m.tmem]),
        None => row.empty(4),
    }
    match &s.sk_mem_info {
        Some(m) => row.nums([
            m.rmem_alloc,
            m.rcvbuf,
            m.wmem_alloc,
            m.sndbuf,
            m.fwd_alloc,
            m.wmem_queued,
            m.optmem,
            m.backlog,
            m.drops,
        ]),
        None => row.empty(9),
    }
    match &s.vegas_info {
        Some(v) => row.nums([v.enabled, v.rtt_count, v.rtt, v.min_rtt]),
        None => row.empty(4),
    }
    match &s.dctcp_info {
        Some(d) => {
            row.num(d.enabled);
            row.num(d.ce_state);
            row.nums([d.alpha, d.ab_ecn, d.ab_tot]);
        }
        None => row.empty(5),
    }
    match &s.bbr_info {
        Some(b) => {
            row.num(b.bw as i64);
            row.nums([b.min_rtt, b.pacing_gain, b.cwnd_gain]);
        }
        None => row.empty(4),
    }
}

/// Counters Go declares `int64` (see the module comment): the same bits,
/// read signed.
fn as_go_int64<const N: usize>(values: [u64; N]) -> [i64; N] {
    values.map(|v| v as i64)
}

/// Where cells are written: a `Vec`, or a [`Row`].
pub trait Sink {
    fn push(&mut self, b: u8);
    fn extend(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn push(&mut self, b: u8) {
        Vec::push(self, b)
    }
    fn extend(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes)
    }
}

/// Bytes of a row gathered on the stack before going to the output `Vec`
/// in one copy: a row is about a hundred short cells, and per-cell `Vec`
/// appends (capacity check, `memcpy` call) cost more than the formatting.
const ROW_BUF: usize = 2048;

/// One row being written. Cells after the first start with their comma.
struct Row<'o> {
    out: &'o mut Vec<u8>,
    buf: [u8; ROW_BUF],
    pos: usize,
}

impl<'o> Row<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        Row {
            out,
            buf: [0; ROW_BUF],
            pos: 0,
        }
    }

    /// Moves the gathered bytes to the output.
    fn finish(&mut self) {
        self.out.extend_from_slice(&self.buf[..self.pos]);
        self.pos = 0;
    }

    /// Makes room for `n` more bytes in `buf`, if `n` fits at all.
    fn room(&mut self, n: usize) -> bool {
        if self.pos + n > ROW_BUF {
            self.finish();
        }
        n <= ROW_BUF
    }

    fn cell(&mut self) {
        self.push(b',');
    }

    fn num(&mut self, v: impl Into<Decimal>) {
        // ",-" and at most 20 digits.
        self.room(22);
        self.buf[self.pos] = b',';
        self.pos += 1;
        let v = match v.into() {
            Decimal::Unsigned(v) => v,
            Decimal::Signed(v) => {
                if v < 0 {
                    self.buf[self.pos] = b'-';
                    self.pos += 1;
                }
                v.unsigned_abs()
            }
        };
        let len = decimal_len(v);
        write_decimal(&mut self.buf[self.pos..self.pos + len], v);
        self.pos += len;
    }

    fn nums<T: Into<Decimal>>(&mut self, vs: impl IntoIterator<Item = T>) {
        for v in vs {
            self.num(v);
        }
    }

    fn empty(&mut self, n: usize) {
        if self.room(n) {
            self.buf[self.pos..self.pos + n].fill(b',');
            self.pos += n;
        } else {
            self.out.resize(self.out.len() + n, b',');
        }
    }
}

impl Sink for Row<'_> {
    fn push(&mut self, b: u8) {
        self.room(1);
        self.buf[self.pos] = b;
        self.pos += 1;
    }
    fn extend(&mut self, bytes: &[u8]) {
        if self.room(bytes.len()) {
            self.buf[self.pos..self.pos + bytes.len()].copy_from_slice(bytes);
            self.pos += bytes.len();
        } else {
            self.out.extend_from_slice(bytes);
        }
    }
}

/// An integer cell, as Go's `strconv` prints it.
enum Decimal {
    Unsigned(u64),
    Signed(i64),
}

macro_rules! decimal_from {
    ($variant:ident: $($t:ty),*) => {$(
        impl From<$t> for Decimal {
            fn from(v: $t) -> Self {
                Decimal::$variant(v.into())
            }
        }
    )*};
}
decimal_from!(Unsigned: u8, u16, u32, u64);
decimal_from!(Signed: i32, i64);

/// Two-digit pairs "00".."99", for writing two digits per division.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

fn decimal_len(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// Writes `v` in decimal into `digits`, which is exactly `decimal_len(v)`
/// long.
fn write_decimal(digits: &mut [u8], mut v: u64) {
    let mut end = digits.len();
    while v >= 100 && end >= 2 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        digits[end - 2..end].copy_from_slice(&PAIRS[pair..pair + 2]);
        end -= 2;
    }
    if v >= 10 && end >= 2 {
        let pair = v as usize * 2;
        digits[end - 2..end].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else if end >= 1 {
        digits[end - 1] = b'0' + (v % 10) as u8;
    }
}

fn push_decimal(out: &mut impl Sink, v: u64) {
    let mut digits = [0u8; 20];
    let len = decimal_len(v);
    write_decimal(&mut digits[..len], v);
    out.extend(&digits[..len]);
}

/// Go's `time.RFC3339Nano`, or the placeholder for the zero time.
fn write_timestamp(out: &mut impl Sink, ts: &Timestamp) {
    if ts.is_go_zero() {
        out.extend(ZERO_TIME_PLACEHOLDER.as_bytes());
    } else {
        out.extend(ts.rfc3339().as_bytes());
    }
}

fn write_upper_hex(out: &mut impl Sink, v: u64) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digits = (64 - v.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xF) as usize]);
    }
}

fn write_lower_hex_u16(out: &mut impl Sink, v: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (16 - v.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xF) as usize]);
    }
}

fn write_ipv4(out: &mut impl Sink, b: [u8; 4]) {
    for (i, octet) in b.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        push_decimal(out, u64::from(*octet));
    }
}

/// An `idiag_src`/`idiag_dst` as M-Lab's Go prints it: IPv4 when bytes
/// 4..16 are zero (whatever the family), else a 16-byte `net.IP`, whose
/// `String` prints IPv4-mapped addresses as IPv4 and the rest per RFC 5952.
pub fn write_go_ip(out: &mut impl Sink, b: &[u8; 16]) {
    if b[4..].iter().all(|&x| x == 0) {
        return write_ipv4(out, [b[0], b[1], b[2], b[3]]);
    }
    if b[..10].iter().all(|&x| x == 0) && b[10] == 0xff && b[11] == 0xff {
        return write_ipv4(out, [b[12], b[13], b[14], b[15]]);
    }
    let groups: [u16; 8] = std::array::from_fn(|i| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]));
    // The first longest run of two or more zero groups becomes "::".
    let (mut best_start, mut best_len) = (8, 0);
    let mut i = 0;
    while i < 8 {
        if groups[i] == 0 {
            let start = i;
            while i < 8 && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                (best_start, best_len) = (start, i - start);
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_start = 8;
    }
    let mut i = 0;
    while i < 8 {
        if i == best_start {
            out.extend(b"::");
            i += best_len;
            continue;
        }
        if i > 0 && i != best_start + best_len {
            out.push(b':');
        }
        write_lower_hex_u16(out, groups[i]);
        i += 1;
    }
}

/// A string cell as Go's `encoding/csv` writes it: quoted when it holds a
/// comma, quote, CR or LF, starts with a Unicode space, or is `\.`.
pub fn write_go_csv_field(out: &mut impl Sink, field: &[u8]) {
    let needs_quotes = !field.is_empty()
        && (field == b"\\."
            || field
                .iter()
                .any(|&c| matches!(c, b',' | b'"' | b'\r' | b'\n'))
            || starts_with_space(field));
    if !needs_quotes {
        out.extend(field);
        return;
    }
    out.push(b'"');
    for &c in field {
        if c == b'"' {
            out.push(b'"');
        }
        out.push(c);
    }
    out.push(b'"');
}

/// Go's `unicode.IsSpace` on the first UTF-8 character (invalid UTF-8 is
/// U+FFFD, not a space).
fn starts_with_space(field: &[u8]) -> bool {
    let len = match field[0] {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    let first = field.get(..len).and_then(|b| std::str::from_utf8(b).ok());
    match first.and_then(|s| s.chars().next()) {
        Some(c) => {
            matches!(
                c,
                '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
            ) || (c > '\u{ff}' && c.is_whitespace())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(b: [u8; 16]) -> String {
        let mut v = Vec::new();
        write_go_ip(&mut v, &b);
        String::from_utf8(v).unwrap()
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn addresses_print_like_go_net_ip() {
        assert_eq!(ip(v6("::ffff:192.168.14.134")), "192.168.14.134");
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[100, 101, 236, 52]);
        assert_eq!(ip(v4), "100.101.236.52");
        assert_eq!(ip([0; 16]), "0.0.0.0");
        // Only the first four bytes set: Go takes it for IPv4.
        assert_eq!(ip(v6("2001:db8::")), "32.1.13.184");
        assert_eq!(ip(v6("1::")), "0.1.0.0");
        for s in [
            "::1",
            "2001:db8::1",
            "2001:db8:0:1:1:1:1:1",
            "2001:0:0:1::1",
            "fe80::1:2",
            "1:2:3:4:5:6:7:8",
            "::102:304",
            "1::1",
        ] {
            assert_eq!(ip(v6(s)), s);
        }
    }

    #[test]
    fn strings_are_quoted_like_go_encoding_csv() {
        let q = |s: &[u8]| {
            let mut v = Vec::new();
            write_go_csv_field(&mut v, s);
            v
        };
        assert_eq!(q(b"cubic"), b"cubic");
        assert_eq!(q(b""), b"");
        assert_eq!(q(b"a,b"), b"\"a,b\"");
        assert_eq!(q(b"say \"hi\""), b"\"say \"\"hi\"\"\"");
        assert_eq!(q(b" x"), b"\" x\"");
        assert_eq!(q("\u{3000}x".as_bytes()), "\"\u{3000}x\"".as_bytes());
        assert_eq!(q(b"\\."), b"\"\\.\"");
        assert_eq!(q(b"\xffx"), b"\xffx");
    }

    #[test]
    fn timestamps_keep_offset_and_precision() {
        for s in [
            "2019-04-02T14:12:37.511Z",
            "2019-08-26T19:55:42.754686952-04:00",
            "2019-04-02T14:12:37Z",
            "2019-04-02T14:12:37.000000001+05:30",
        ] {
            let mut v = Vec::new();
            write_timestamp(&mut v, &Timestamp::parse(s).unwrap());
            assert_eq!(String::from_utf8(v).unwrap(), s);
        }
        let mut v = Vec::new();
        write_timestamp(
            &mut v,
            &Timestamp::parse("2019-04-02T14:12:37.510+00:00").unwrap(),
        );
        assert_eq!(v, b"2019-04-02T14:12:37.51Z");
        v.clear();
        write_timestamp(&mut v, &Timestamp::parse("0001-01-01T00:00:00Z").unwrap());
        assert_eq!(v, ZERO_TIME_PLACEHOLDER.as_bytes());
    }

    #[test]
    fn header_has_go_column_count() {
        assert_eq!(HEADER.trim_end().split(',').count(), 105);
    }

    #[test]
    fn decimals_match_std_formatting() {
        let mut v = Vec::new();
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            4294967295,
            u64::MAX,
            10_000_000_000_000_000_000,
        ] {
            v.clear();
            push_decimal(&mut v, n);
            assert_eq!(String::from_utf8(v.clone()).unwrap(), n.to_string());
        }
        v.clear();
        let mut row = Row::new(&mut v);
        row.num(-1i64);
        row.num(i64::MIN);
        row.num(-5i32);
        row.num(7u8);
        row.num(u64::MAX);
        row.finish();
        assert_eq!(v, format!(",-1,{},-5,7,{}", i64::MIN, u64::MAX).as_bytes());
    }

    #[test]
    fn cookie_is_upper_hex() {
        let mut v = Vec::new();
        write_upper_hex(&mut v, 0x135a272);
        write_upper_hex(&mut v, 0);
        assert_eq!(v, b"135A2720");
    }
}
