//! Converting one archive: open, sniff, convert, with a one-line failure.

use std::fmt;
use std::io;

use tcpinfo_archive::csv::Columns;
use tcpinfo_archive::{ArchiveReader, ConvertError, CsvConverter};

use crate::inputs::Input;

/// Rows are handed on in chunks of about this many bytes.
pub const CHUNK: usize = 64 << 10;

/// Why an archive was not (fully) converted. Displays as one line that
/// names the archive, and the line when there is one.
#[derive(Debug)]
pub enum Failure {
    Open { name: String, source: io::Error },
    Convert(ConvertError),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            Failure::Open { name, source } => format!("{name}: {source}"),
            Failure::Convert(e) => e.to_string(),
        };
        // One line per failure, whatever the underlying message holds.
        f.write_str(&text.replace(['\n', '\r'], " "))
    }
}

/// Converts `input` with M-Lab's columns and `columns`, passing chunks of whole rows to `flush` (which must
/// empty the buffer). Rows before a failing line are flushed first.
pub fn convert_one(
    input: &Input,
    columns: Columns,
    buf: &mut Vec<u8>,
    flush: impl FnMut(&mut Vec<u8>) -> io::Result<()>,
) -> Result<(), Failure> {
    let name = input.name();
    let file = input.open().map_err(|source| Failure::Open {
        name: name.clone(),
        source,
    })?;
    let mut reader =
        ArchiveReader::new(name, file).map_err(|e| Failure::Convert(ConvertError::Read(e)))?;
    CsvConverter::with_columns(columns)
        .convert(&mut reader, buf, CHUNK, flush)
        .map(|_| ())
        .map_err(Failure::Convert)
}
