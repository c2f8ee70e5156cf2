//! Archive → CSV rows: the read, decode, format loop, with errors that
//! name the archive and line.

use std::io::{self, Read};

use crate::csv::{write_row, write_row_with, Columns, Source};
use crate::naming::uuid_from_file_name;
use crate::reader::{ArchiveReader, ReadError};
use crate::record::RecordError;
use crate::record_buf::RecordBuf;
use crate::snapshot::{Snapshot, SnapshotError};

/// Why converting an archive stopped. Every variant but `Output` names the
/// archive and the line, and displays as one line: `<name>:<line>: <why>`.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{name}:{line}: {source}")]
    Record {
        name: String,
        line: u64,
        source: RecordError,
    },
    #[error("{name}:{line}: {source}")]
    Snapshot {
        name: String,
        line: u64,
        source: SnapshotError,
    },
    #[error("writing CSV: {0}")]
    Output(#[source] io::Error),
}

/// Converts archives to CSV rows, reusing its buffers from one record (and
/// one archive) to the next.
#[derive(Debug, Default)]
pub struct CsvConverter {
    record: RecordBuf,
    columns: Columns,
    /// The connection of the archive being converted, for the `UUID`
    /// column: its metadata line's, else its file name's.
    uuid: Vec<u8>,
}

impl CsvConverter {
    /// M-Lab's columns only: rows byte-identical to the Go csvtool's.
    pub fn new() -> Self {
        Self::default()
    }

    /// M-Lab's columns, then the opt-in `columns` (see
    /// [`Columns::header`]).
    pub fn with_columns(columns: Columns) -> Self {
        CsvConverter {
            columns,
            ..Self::default()
        }
    }

    /// Appends one row per record of `reader` to `out` (no header), handing
    /// `out` to `flush` whenever it holds `chunk` bytes or more, and once at
    /// the end. `flush` must leave `out` empty (or keep whole rows). When a
    /// line fails, every row before it has been flushed, and the error says
    /// which line. Returns the number of rows.
    pub fn convert<R: Read>(
        &mut self,
        reader: &mut ArchiveReader<R>,
        out: &mut Vec<u8>,
        chunk: usize,
        mut flush: impl FnMut(&mut Vec<u8>) -> io::Result<()>,
    ) -> Result<u64, ConvertError> {
        let mut rows = 0;
        let with_columns = self.columns != Columns::default();
        self.uuid.clear();
        if self.columns.source {
            let from_name = uuid_from_file_name(reader.name()).unwrap_or_default();
            self.uuid.extend_from_slice(from_name.as_bytes());
        }
        let result = loop {
            let snapshot = match reader.next_snapshot(&mut self.record) {
                Ok(Some(snapshot)) => snapshot,
                Ok(None) => break Ok(rows),
                Err(e) => break Err(e),
            };
            if self.columns.source {
                if let Some(m) = snapshot.metadata() {
                    self.uuid.clear();
                    self.uuid.extend_from_slice(m.uuid.as_bytes());
                }
            }
            if with_columns {
                let source = Source {
                    uuid: &self.uuid,
                    file: reader.name().as_bytes(),
                };
                write_row_with(out, &snapshot, self.columns, source);
            } else {
                write_row(out, &snapshot);
            }
            rows += 1;
            if out.len() >= chunk {
                flush(out).map_err(ConvertError::Output)?;
            }
        };
        if !out.is_empty() {
            flush(out).map_err(ConvertError::Output)?;
        }
        result
    }
}

impl<R: Read> ArchiveReader<R> {
    /// Decodes the next line into `record`: its snapshot, or `None` at the
    /// end of the archive. An error names the archive and the line.
    pub fn next_snapshot<'b>(
        &mut self,
        record: &'b mut RecordBuf,
    ) -> Result<Option<Snapshot<'b>>, ConvertError> {
        let Some(line) = self.next_line()? else {
            return Ok(None);
        };
        if let Err(source) = record.parse(line) {
            return Err(ConvertError::Record {
                name: self.name().to_string(),
                line: self.line_number(),
                source,
            });
        }
        let record: &'b RecordBuf = record;
        Snapshot::decode(record)
            .map(Some)
            .map_err(|source| ConvertError::Snapshot {
                name: self.name().to_string(),
                line: self.line_number(),
                source,
            })
    }
}
