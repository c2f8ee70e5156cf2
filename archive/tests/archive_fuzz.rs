//! Property tests: the archive reader, record decoder, snapshot decoder and
//! CSV writer never panic, whatever the bytes, and every row they do write
//! is a whole CSV row. Inputs that once broke them are kept under
//! `testdata/fuzz/archive/` and replayed first.

use std::io::Read;
use std::path::Path;

use proptest::prelude::*;
use tcpinfo_archive::{csv, ArchiveReader, CsvConverter};

/// Runs the whole pipeline on `input`; returns (rows, failed).
fn convert(input: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut reader = match ArchiveReader::new("fuzz", input) {
        Ok(r) => r,
        Err(_) => return (out, true),
    };
    let mut rows = Vec::new();
    let result = CsvConverter::new().convert(&mut reader, &mut out, 1 << 10, |chunk| {
        rows.extend_from_slice(chunk);
        chunk.clear();
        Ok(())
    });
    if let Err(e) = &result {
        let text = e.to_string();
        assert!(
            text.starts_with("fuzz:"),
            "error does not name the input: {text}"
        );
        assert!(!text.contains('\n'), "error spans lines: {text:?}");
    }
    (rows, result.is_err())
}

/// Each row is complete and has the header's 105 cells, reading quoted
/// cells (a congestion name may hold commas, quotes and newlines) as CSV.
fn assert_whole_rows(rows: &[u8]) {
    assert!(rows.is_empty() || rows.ends_with(b"\n"));
    let (mut cells, mut quoted) = (1, false);
    for &b in rows {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => cells += 1,
            b'\n' if !quoted => {
                assert_eq!(cells, 105, "{}", String::from_utf8_lossy(rows));
                cells = 1;
            }
            _ => {}
        }
    }
    assert!(!quoted, "unterminated quoted cell");
}

fn fixture_lines() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/mlab/ndt-jdczh_1553815964_00000000000003E8.00183.jsonl.zst");
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(path).unwrap())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn b64(bytes: &[u8]) -> String {
    let mut v = Vec::new();
    tcpinfo_archive::push_base64(&mut v, bytes);
    String::from_utf8(v).unwrap()
}

#[test]
fn regression_corpus_does_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fuzz/archive");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            continue;
        }
        let (rows, _) = convert(&std::fs::read(&path).unwrap());
        assert_whole_rows(&rows);
        seen += 1;
    }
    assert!(seen > 0, "no corpus files in {}", dir.display());
}

/// One JSON value for a snapshot field: mostly well-formed, sometimes not.
fn attribute() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("null".to_string()),
        6 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(|b| format!("\"{}\"", b64(&b))),
        1 => "[A-Za-z0-9+/=*]{0,12}".prop_map(|s| format!("\"{s}\"")),
        1 => prop_oneof![Just("1".to_string()), Just("{}".to_string()), Just("[]".to_string())],
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"2019-04-02T14:12:37.511Z\"".to_string()),
        Just("\"0001-01-01T00:00:00Z\"".to_string()),
        Just("\"2019-08-26T19:55:42.754686952-04:00\"".to_string()),
        Just("null".to_string()),
        "[0-9:TZ.+-]{0,30}".prop_map(|s| format!("\"{s}\"")),
    ]
}

fn raw_idm() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 72).prop_map(|b| Some(format!("\"{}\"", b64(&b)))),
        1 => proptest::collection::vec(any::<u8>(), 0..100).prop_map(|b| Some(format!("\"{}\"", b64(&b)))),
        1 => Just(None),
        1 => Just(Some("null".to_string())),
    ]
}

fn record_line() -> impl Strategy<Value = String> {
    (
        timestamp(),
        raw_idm(),
        proptest::collection::vec(attribute(), 0..40),
        any::<bool>(),
    )
        .prop_map(|(ts, idm, attrs, meta)| {
            let mut line = format!("{{\"Timestamp\":{ts}");
            if let Some(idm) = idm {
                line += &format!(",\"RawIDM\":{idm}");
            }
            line += &format!(",\"Attributes\":[{}]", attrs.join(","));
            if meta {
                line += r#","Metadata":{"UUID":"x","Sequence":1,"StartTime":"2019-04-01T07:42:37.371Z"}"#;
            }
            line + "}"
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let (rows, _) = convert(&bytes);
        assert_whole_rows(&rows);
    }

    #[test]
    fn arbitrary_bytes_behind_zstd_magic_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut input = tcpinfo_archive::ZSTD_MAGIC.to_vec();
        input.extend_from_slice(&bytes);
        let (rows, _) = convert(&input);
        assert_whole_rows(&rows);
    }

    #[test]
    fn generated_records_never_panic(lines in proptest::collection::vec(record_line(), 1..8)) {
        let text = lines.join("\n");
        let (rows, _) = convert(text.as_bytes());
        assert_whole_rows(&rows);
        let (zrows, _) = convert(&zstd::encode_all(text.as_bytes(), 1).unwrap());
        prop_assert_eq!(rows, zrows);
    }

    #[test]
    fn mutated_fixture_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut lines = fixture_lines();
        lines.truncate(20_000);
        for (at, byte) in edits {
            let i = at.index(lines.len());
            lines[i] = byte;
        }
        let (rows, _) = convert(&lines);
        assert_whole_rows(&rows);

        let mut z = zstd::encode_all(&lines[..], 3).unwrap();
        z.truncate(cut.index(z.len() + 1));
        let (rows, _) = convert(&z);
        assert_whole_rows(&rows);
    }
}

#[test]
fn header_matches_the_row_width() {
    assert_eq!(csv::HEADER.trim_end().split(',').count(), 105);
}
