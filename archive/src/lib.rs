//! The tcp-info archive format as a library: `ArchivalRecord` JSON lines in
//! zstd files, as M-Lab's Go tcp-info writes them and its parser reads them.
//!
//! - [`ArchivalRecord`] / [`Metadata`]: the record model, and the line
//!   encoding the agent's writers use (`write_*`, [`push_base64`]).
//! - [`Timestamp`]: times as Go's `encoding/json` writes `time.Time`.
//! - [`RecordBuf`]: the one decoder of archive lines, with Go's
//!   `encoding/json` semantics, into buffers reused from line to line.
//! - [`ArchiveReader`]: the lines of a plain or zstd (multi-frame) archive.
//! - [`Snapshot`]: a record decoded into typed kernel structs;
//!   [`TcpInfo::extended`] / [`EXTENDED_FIELDS`]: the `tcp_info` fields
//!   newer kernels append after M-Lab's last one.
//! - [`csv`] / [`CsvConverter`]: rows byte-identical to M-Lab's Go csvtool.
//! - [`naming`]: UUIDs and segment file paths.
//!
//! No agent code: an ETL job or csvtool depends on this crate alone.

mod convert;
pub mod csv;
pub mod naming;
mod reader;
mod record;
mod record_buf;
mod snapshot;
mod tcp_info_ext;
mod timestamp;

pub use convert::{ConvertError, CsvConverter};
pub use reader::{ArchiveReader, Encoding, ReadError, ReadErrorKind, MAX_LINE, ZSTD_MAGIC};
pub use record::{
    push_base64, write_attributes, write_line_start, write_metadata_line, write_poll_gap,
    write_raw_idm, ArchivalRecord, Metadata, RecordError,
};
pub use record_buf::RecordBuf;
pub use snapshot::{
    attribute_bit, InetDiagMeminfo, SkMeminfo, Snapshot, SnapshotError, TcpBbrInfo, TcpDctcpInfo,
    TcpInfo, TcpVegasInfo, TCP_INFO_LEN,
};
pub use tcp_info_ext::{
    ExtendedField, FieldWidth, TcpInfoExtended, EXTENDED_FIELDS, TCP_INFO_MAX_LEN,
};
pub use timestamp::{Timestamp, TimestampError, TimestampText, GO_ZERO_TIME};
