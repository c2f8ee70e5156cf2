//! Archives to one Parquet file: the CSV's rows and columns, typed.
//!
//! One row per archive line, as in the CSV (the metadata line included), in
//! input order. A cell is null exactly where the CSV cell is empty (a
//! struct the kernel did not send, the metadata line's missing message,
//! an extended field an older kernel lacks). Integers keep their kernel
//! width, signed where M-Lab's Go declares them signed (so an unset pacing
//! rate is -1 in both); `Timestamp` is a UTC microsecond timestamp (null on
//! the metadata line, whose Go zero time the CSV prints as 2009-05-29);
//! addresses are text as the CSV prints them. Three columns differ from the
//! CSV on purpose: the second `TCP.LastDataRecv` is named `TCP.LastAckRecv`
//! (Parquet needs unique names), `SKMemInfo.Sndbug` is `SKMemInfo.Sndbuf`,
//! `IDM.SockID.Cookie` is the integer (not hex text), and the interface
//! index and class ID are the kernel's values, not Go's misreadings of them.
//!
//! Memory is flat: rows are gathered [`BATCH`] at a time and handed to the
//! writer, which closes a row group every [`ROW_GROUP`] rows.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::{
    Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt16Builder,
    UInt32Builder, UInt64Builder, UInt8Builder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use tcpinfo_archive::csv::{write_go_ip, Columns, HEADER};
use tcpinfo_archive::naming::uuid_from_file_name;
use tcpinfo_archive::{
    ArchiveReader, ConvertError, FieldWidth, RecordBuf, Snapshot, EXTENDED_FIELDS,
};

use crate::inputs::Input;
use crate::job::Failure;

/// Rows gathered before they go to the writer.
pub const BATCH: usize = 8192;
/// Rows per row group: what the writer holds (encoded) before a flush.
pub const ROW_GROUP: usize = 64 * 1024;

/// Why writing the Parquet file failed (not one archive: the output).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{path}: {source}")]
    Create { path: String, source: io::Error },
    #[error("writing Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("building a batch: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
}

#[derive(Clone, Copy)]
enum Kind {
    Ts,
    U8,
    U16,
    U32,
    U64,
    I32,
    I64,
    Str,
}

enum Builder {
    Ts(TimestampMicrosecondBuilder),
    U8(UInt8Builder),
    U16(UInt16Builder),
    U32(UInt32Builder),
    U64(UInt64Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    Str(StringBuilder),
}

impl Builder {
    fn new(kind: Kind) -> Self {
        match kind {
            Kind::Ts => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(BATCH).with_timezone("UTC"))
            }
            Kind::U8 => Builder::U8(UInt8Builder::with_capacity(BATCH)),
            Kind::U16 => Builder::U16(UInt16Builder::with_capacity(BATCH)),
            Kind::U32 => Builder::U32(UInt32Builder::with_capacity(BATCH)),
            Kind::U64 => Builder::U64(UInt64Builder::with_capacity(BATCH)),
            Kind::I32 => Builder::I32(Int32Builder::with_capacity(BATCH)),
            Kind::I64 => Builder::I64(Int64Builder::with_capacity(BATCH)),
            Kind::Str => Builder::Str(StringBuilder::with_capacity(BATCH, BATCH * 16)),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Ts(b) => Arc::new(b.finish()),
            Builder::U8(b) => Arc::new(b.finish()),
            Builder::U16(b) => Arc::new(b.finish()),
            Builder::U32(b) => Arc::new(b.finish()),
            Builder::U64(b) => Arc::new(b.finish()),
            Builder::I32(b) => Arc::new(b.finish()),
            Builder::I64(b) => Arc::new(b.finish()),
            Builder::Str(b) => Arc::new(b.finish()),
        }
    }
}

fn data_type(kind: Kind) -> DataType {
    match kind {
        Kind::Ts => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Kind::U8 => DataType::UInt8,
        Kind::U16 => DataType::UInt16,
        Kind::U32 => DataType::UInt32,
        Kind::U64 => DataType::UInt64,
        Kind::I32 => DataType::Int32,
        Kind::I64 => DataType::Int64,
        Kind::Str => DataType::Utf8,
    }
}

/// The type of each M-Lab column, in `HEADER` order.
fn mlab_kinds() -> Vec<Kind> {
    use Kind::*;
    let mut k = vec![Ts, U32, U32];
    // IDM
    k.extend([
        U8, U8, U8, U8, U16, U16, Str, Str, U32, U64, U32, U32, U32, U32, U32,
    ]);
    // CongestionAlgorithm, TOS, TClass, ClassID, Shutdown, Protocol, Mark
    k.extend([Str, U8, U8, U32, U8, U8, U32]);
    // TCP: 8 bytes, 24 u32, 4 Go int64, segs as int32, 4 u32, 4 int64,
    // delivered(_ce), bytes_sent/retrans, 4 u32.
    k.extend([U8; 8]);
    k.extend([U32; 24]);
    k.extend([I64; 4]);
    k.extend([I32; 2]);
    k.extend([U32; 4]);
    k.extend([I64; 4]);
    k.extend([U32; 2]);
    k.extend([I64; 2]);
    k.extend([U32; 4]);
    // MemInfo, SKMemInfo, Vegas
    k.extend([U32; 4 + 9 + 4]);
    // DCTCP
    k.extend([U16, U16, U32, U32, U32]);
    // BBR
    k.extend([I64, U32, U32, U32]);
    k
}

/// The schema for `columns`: M-Lab's columns (names de-duplicated and the
/// Go typo fixed), then the opt-in ones.
fn schema(columns: Columns) -> (SchemaRef, Vec<Kind>) {
    let mut names: Vec<String> = HEADER.trim_end().split(',').map(String::from).collect();
    // The Go tag puts `TCP.LastDataRecv` on `LastAckRecv` too.
    if let Some(second) = names
        .iter()
        .enumerate()
        .filter(|(_, n)| *n == "TCP.LastDataRecv")
        .map(|(i, _)| i)
        .nth(1)
    {
        names[second] = "TCP.LastAckRecv".into();
    }
    for n in &mut names {
        if n == "SKMemInfo.Sndbug" {
            *n = "SKMemInfo.Sndbuf".into();
        }
    }
    let mut kinds = mlab_kinds();
    debug_assert_eq!(names.len(), kinds.len());
    if columns.extended {
        for f in EXTENDED_FIELDS {
            names.push(f.column.into());
            kinds.push(match f.width {
                FieldWidth::U16 => Kind::U16,
                FieldWidth::U32 => Kind::U32,
            });
        }
    }
    if columns.source {
        names.extend(["UUID".into(), "File".into()]);
        kinds.extend([Kind::Str, Kind::Str]);
    }
    let fields: Vec<Field> = names
        .iter()
        .zip(&kinds)
        .map(|(n, k)| Field::new(n, data_type(*k), true))
        .collect();
    (Arc::new(Schema::new(fields)), kinds)
}

/// Rows being gathered, one builder per column; a row's cells are appended
/// in column order through a cursor.
struct Table {
    builders: Vec<Builder>,
    at: usize,
    rows: usize,
    text: Vec<u8>,
}

macro_rules! cell {
    ($name:ident, $variant:ident, $t:ty) => {
        fn $name(&mut self, v: Option<$t>) {
            match &mut self.builders[self.at] {
                Builder::$variant(b) => b.append_option(v),
                _ => unreachable!("column {} is not {}", self.at, stringify!($t)),
            }
            self.at += 1;
        }
    };
}

impl Table {
    fn new(kinds: &[Kind]) -> Self {
        Table {
            builders: kinds.iter().map(|k| Builder::new(*k)).collect(),
            at: 0,
            rows: 0,
            text: Vec::with_capacity(64),
        }
    }

    cell!(ts, Ts, i64);
    cell!(u8, U8, u8);
    cell!(u16, U16, u16);
    cell!(u32, U32, u32);
    cell!(u64, U64, u64);
    cell!(i32, I32, i32);
    cell!(i64, I64, i64);

    fn str(&mut self, v: Option<&[u8]>) {
        match &mut self.builders[self.at] {
            // Archives are bytes; a congestion name that is not UTF-8 is
            // shown with replacement characters rather than refused.
            Builder::Str(b) => match v {
                Some(v) => b.append_value(String::from_utf8_lossy(v)),
                None => b.append_null(),
            },
            _ => unreachable!("column {} is not text", self.at),
        }
        self.at += 1;
    }

    fn ip(&mut self, b: &[u8; 16]) {
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        write_go_ip(&mut text, b);
        self.str(Some(&text));
        self.text = text;
    }

    fn nulls(&mut self, n: usize) {
        for _ in 0..n {
            match &mut self.builders[self.at] {
                Builder::Ts(b) => b.append_null(),
                Builder::U8(b) => b.append_null(),
                Builder::U16(b) => b.append_null(),
                Builder::U32(b) => b.append_null(),
                Builder::U64(b) => b.append_null(),
                Builder::I32(b) => b.append_null(),
                Builder::I64(b) => b.append_null(),
                Builder::Str(b) => b.append_null(),
            }
            self.at += 1;
        }
    }

    fn row(&mut self, s: &Snapshot<'_>, columns: Columns, uuid: &[u8], file: &[u8]) {
        self.at = 0;
        let ts = &s.timestamp;
        self.ts((!ts.is_go_zero()).then(|| ts.unix_micros()));
        self.u32(Some(s.observed));
        self.u32(Some(s.not_fully_parsed));
        match &s.inet_diag_msg {
            Some(m) => {
                self.u8(Some(m.family()));
                self.u8(Some(m.state()));
                self.u8(Some(m.timer()));
                self.u8(Some(m.retrans()));
                self.u16(Some(m.sport()));
                self.u16(Some(m.dport()));
                self.ip(m.src_bytes());
                self.ip(m.dst_bytes());
                self.u32(Some(m.interface()));
                self.u64(Some(m.cookie()));
                for v in [m.expires(), m.rqueue(), m.wqueue(), m.uid(), m.inode()] {
                    self.u32(Some(v));
                }
            }
            None => self.nulls(15),
        }
        self.str(Some(s.congestion.unwrap_or_default()));
        self.u8(Some(s.tos.unwrap_or(0)));
        self.u8(Some(s.tclass.unwrap_or(0)));
        self.u32(Some(s.class_id.unwrap_or(0)));
        self.u8(Some(s.shutdown.unwrap_or(0)));
        self.u8(Some(s.protocol.unwrap_or(0)));
        self.u32(Some(s.mark.unwrap_or(0)));
        match &s.tcp_info {
            Some(t) => {
                for v in [
                    t.state,
                    t.ca_state,
                    t.retransmits,
                    t.probes,
                    t.backoff,
                    t.options,
                    t.wscale,
                    t.app_limited,
                ] {
                    self.u8(Some(v));
                }
                for v in [
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
                ] {
                    self.u32(Some(v));
                }
                for v in [
                    t.pacing_rate,
                    t.max_pacing_rate,
                    t.bytes_acked,
                    t.bytes_received,
                ] {
                    self.i64(Some(v as i64));
                }
                self.i32(Some(t.segs_out as i32));
                self.i32(Some(t.segs_in as i32));
                for v in [t.notsent_bytes, t.min_rtt, t.data_segs_in, t.data_segs_out] {
                    self.u32(Some(v));
                }
                for v in [
                    t.delivery_rate,
                    t.busy_time,
                    t.rwnd_limited,
                    t.sndbuf_limited,
                ] {
                    self.i64(Some(v as i64));
                }
                self.u32(Some(t.delivered));
                self.u32(Some(t.delivered_ce));
                self.i64(Some(t.bytes_sent as i64));
                self.i64(Some(t.bytes_retrans as i64));
                for v in [t.dsack_dups, t.reord_seen, t.rcv_ooopack, t.snd_wnd] {
                    self.u32(Some(v));
                }
            }
            None => self.nulls(54),
        }
        match &s.mem_info {
            Some(m) => [m.rmem, m.wmem, m.fmem, m.tmem]
                .into_iter()
                .for_each(|v| self.u32(Some(v))),
            None => self.nulls(4),
        }
        match &s.sk_mem_info {
            Some(m) => [
                m.rmem_alloc,
                m.rcvbuf,
                m.wmem_alloc,
                m.sndbuf,
                m.fwd_alloc,
                m.wmem_queued,
                m.optmem,
                m.backlog,
                m.drops,
            ]
            .into_iter()
            .for_each(|v| self.u32(Some(v))),
            None => self.nulls(9),
        }
        match &s.vegas_info {
            Some(v) => [v.enabled, v.rtt_count, v.rtt, v.min_rtt]
                .into_iter()
                .for_each(|v| self.u32(Some(v))),
            None => self.nulls(4),
        }
        match &s.dctcp_info {
            Some(d) => {
                self.u16(Some(d.enabled));
                self.u16(Some(d.ce_state));
                [d.alpha, d.ab_ecn, d.ab_tot]
                    .into_iter()
                    .for_each(|v| self.u32(Some(v)));
            }
            None => self.nulls(5),
        }
        match &s.bbr_info {
            Some(b) => {
                self.i64(Some(b.bw as i64));
                [b.min_rtt, b.pacing_gain, b.cwnd_gain]
                    .into_iter()
                    .for_each(|v| self.u32(Some(v)));
            }
            None => self.nulls(4),
        }
        if columns.extended {
            match &s.tcp_info {
                Some(t) => {
                    let values = t.extended().values();
                    for (f, v) in EXTENDED_FIELDS.iter().zip(values) {
                        match f.width {
                            FieldWidth::U16 => self.u16(v.map(|v| v as u16)),
                            FieldWidth::U32 => self.u32(v),
                        }
                    }
                }
                None => self.nulls(EXTENDED_FIELDS.len()),
            }
        }
        if columns.source {
            self.str(Some(uuid));
            self.str(Some(file));
        }
        self.rows += 1;
    }

    fn take_batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let arrays = self.builders.iter_mut().map(Builder::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(schema.clone(), arrays)
    }
}

/// One Parquet file being written from any number of archives.
pub struct ParquetOut {
    writer: ArrowWriter<File>,
    schema: SchemaRef,
    table: Table,
    columns: Columns,
    record: RecordBuf,
    uuid: Vec<u8>,
    rows: u64,
}

impl ParquetOut {
    pub fn create(path: &Path, columns: Columns) -> Result<Self, OutputError> {
        let file = File::create(path).map_err(|source| OutputError::Create {
            path: path.display().to_string(),
            source,
        })?;
        let (schema, kinds) = schema(columns);
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
            .set_max_row_group_size(ROW_GROUP)
            .set_created_by(concat!("tcp-info csvtool ", env!("CARGO_PKG_VERSION")).into())
            .build();
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props))?;
        Ok(ParquetOut {
            writer,
            schema,
            table: Table::new(&kinds),
            columns,
            record: RecordBuf::new(),
            uuid: Vec::new(),
            rows: 0,
        })
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Appends every record of `input`. An archive failure (its rows up
    /// to the failing line are kept) is `Ok(Err(failure))`; an output
    /// failure is `Err`. `progress` is called now and then with the rows
    /// added since its last call.
    pub fn add(
        &mut self,
        input: &Input,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Result<(), Failure>, OutputError> {
        let name = input.name();
        let file = match input.open() {
            Ok(f) => f,
            Err(source) => return Ok(Err(Failure::Open { name, source })),
        };
        let mut reader = match ArchiveReader::new(name, file) {
            Ok(r) => r,
            Err(e) => return Ok(Err(Failure::Convert(ConvertError::Read(e)))),
        };
        self.uuid.clear();
        if self.columns.source {
            let from_name = uuid_from_file_name(reader.name()).unwrap_or_default();
            self.uuid.extend_from_slice(from_name.as_bytes());
        }
        loop {
            let snapshot = match reader.next_snapshot(&mut self.record) {
                Ok(Some(snapshot)) => snapshot,
                Ok(None) => return Ok(Ok(())),
                Err(e) => return Ok(Err(Failure::Convert(e))),
            };
            if self.columns.source {
                if let Some(m) = snapshot.metadata() {
                    self.uuid.clear();
                    self.uuid.extend_from_slice(m.uuid.as_bytes());
                }
            }
            self.table.row(
                &snapshot,
                self.columns,
                &self.uuid,
                reader.name().as_bytes(),
            );
            self.rows += 1;
            if self.table.rows >= BATCH {
                self.flush_batch()?;
                progress(BATCH as u64);
            }
        }
    }

    fn flush_batch(&mut self) -> Result<(), OutputError> {
        if self.table.rows == 0 {
            return Ok(());
        }
        let batch = self.table.take_batch(&self.schema)?;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Writes what is gathered and the file's footer.
    pub fn finish(mut self) -> Result<u64, OutputError> {
        self.flush_batch()?;
        self.writer.close()?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_unique_and_typed_for_every_column_set() {
        for (extended, source) in [(false, false), (true, false), (false, true), (true, true)] {
            let columns = Columns { extended, source };
            let (schema, kinds) = schema(columns);
            assert_eq!(schema.fields().len(), kinds.len());
            let header_cells = columns.header().trim_end().split(',').count();
            assert_eq!(kinds.len(), header_cells);
            let mut names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), kinds.len(), "duplicate column names");
        }
    }
}
