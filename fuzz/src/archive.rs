//! Archive files: the reader (plain or zstd, multi-frame), the line
//! decoder (`RecordBuf`), the snapshot decoder and the CSV rows, as
//! csvtool and the ETL run them.

use tcpinfo_archive::{ArchiveReader, ConvertError, CsvConverter, RecordBuf, Snapshot};

use crate::assert_one_line;

/// Lines, and bytes of lines, decoded per input at most: a small zstd
/// input can stand for millions of lines of megabytes each, and the fuzzer
/// wants many inputs a second. (Bounding csvtool's work on such inputs is
/// csvtool's business, not this target's.)
const MAX_LINES: usize = 2_000;
const MAX_LINE_BYTES: usize = 32 << 20;

/// One input is one archive file.
pub fn archive(data: &[u8]) {
    if decode_lines(data) {
        convert(data);
    }
}

/// Every line through `RecordBuf` and `Snapshot`, as readers of the format
/// do; false when the archive is larger than the budget.
fn decode_lines(data: &[u8]) -> bool {
    let Ok(mut reader) = ArchiveReader::new("fuzz", data) else {
        return true;
    };
    let mut record = RecordBuf::new();
    let mut bytes = 0;
    for _ in 0..MAX_LINES {
        let line = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => return true,
            Err(e) => {
                assert_one_line("archive read", &e.to_string());
                return true;
            }
        };
        bytes += line.len();
        if bytes > MAX_LINE_BYTES {
            return false;
        }
        if let Err(e) = record.parse(line) {
            assert_one_line("record", &e.to_string());
            continue;
        }
        let _ = record.to_record();
        let _ = record.metadata();
        for (kind, bytes) in record.attributes() {
            assert_eq!(record.attribute(kind), Some(bytes));
        }
        match Snapshot::decode(&record) {
            Ok(snapshot) => {
                let _ = snapshot.unparsed_attributes().count();
            }
            Err(e) => assert_one_line("snapshot", &e.to_string()),
        }
    }
    false
}

/// csvtool's conversion (of an archive within the budget): every row
/// whole, an error names the input on one line.
fn convert(data: &[u8]) {
    let Ok(mut reader) = ArchiveReader::new("fuzz", data) else {
        return;
    };
    let mut out = Vec::new();
    let mut rows = Vec::new();
    let result = CsvConverter::new().convert(&mut reader, &mut out, 1 << 10, |chunk| {
        rows.extend_from_slice(chunk);
        chunk.clear();
        Ok(())
    });
    match result {
        Ok(_) => {}
        Err(ConvertError::Output(e)) => panic!("writing into memory failed: {e}"),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.starts_with("fuzz:"),
                "error does not name the input: {text}"
            );
            assert_one_line("csv", &text);
        }
    }
    assert_whole_rows(&rows);
}

/// Each row is complete and has the header's cells, reading quoted cells
/// (a congestion name may hold commas, quotes and newlines) as CSV.
fn assert_whole_rows(rows: &[u8]) {
    let header_cells = tcpinfo_archive::csv::HEADER.trim_end().split(',').count();
    assert!(
        rows.is_empty() || rows.ends_with(b"\n"),
        "a row is cut short"
    );
    let (mut cells, mut quoted) = (1, false);
    for &b in rows {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => cells += 1,
            b'\n' if !quoted => {
                assert_eq!(cells, header_cells, "{}", String::from_utf8_lossy(rows));
                cells = 1;
            }
            _ => {}
        }
    }
    assert!(!quoted, "unterminated quoted cell");
}
