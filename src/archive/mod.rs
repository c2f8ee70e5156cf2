//! The archive format: `ArchivalRecord` JSON lines in zstd files, as M-Lab's
//! Go tcp-info writes them and its parser reads them.

mod record;
mod timestamp;

pub use record::{
    push_base64, write_attributes, write_line_start, write_metadata_line, write_raw_idm,
    ArchivalRecord, Metadata, RecordError,
};
pub use timestamp::{Timestamp, TimestampError, GO_ZERO_TIME};
mod convert;
pub mod csv;
mod reader;
mod record_buf;
mod snapshot;
pub use convert::{ConvertError, CsvConverter};
pub use reader::{ArchiveReader, Encoding, ReadError, ReadErrorKind, MAX_LINE, ZSTD_MAGIC};
pub use record_buf::RecordBuf;
pub use snapshot::{
    attribute_bit, InetDiagMeminfo, SkMeminfo, Snapshot, SnapshotError, TcpBbrInfo, TcpDctcpInfo,
    TcpInfo, TcpVegasInfo, TCP_INFO_LEN,
};
