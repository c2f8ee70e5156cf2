//! Archives written by M-Lab's Go tcp-info survive our reader and writer
//! unchanged: parsing every line into an `ArchivalRecord` and writing it
//! back reproduces the decompressed file byte for byte.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use tcpinfo_archive::{ArchivalRecord, ArchiveReader};

fn round_trip(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/mlab")
        .join(name);
    let mut original = Vec::new();
    zstd::stream::read::Decoder::new(File::open(&path).unwrap())
        .unwrap()
        .read_to_end(&mut original)
        .unwrap();

    let mut reader = ArchiveReader::new(name, File::open(&path).unwrap()).unwrap();
    let mut rewritten = Vec::with_capacity(original.len());
    let mut lines = 0;
    while let Some(line) = reader.next_line().unwrap() {
        let record = ArchivalRecord::from_json(line)
            .unwrap_or_else(|e| panic!("{name}:{}: {e}", reader.line_number()));
        record.write_json(&mut rewritten);
        lines += 1;
    }
    assert!(lines > 50, "{name}: only {lines} lines");
    if rewritten != original {
        let first = original
            .split(|&b| b == b'\n')
            .zip(rewritten.split(|&b| b == b'\n'))
            .position(|(a, b)| a != b);
        panic!("{name}: first differing line {first:?}");
    }
}

#[test]
fn ndt_fixture_round_trips_byte_for_byte() {
    round_trip("ndt-jdczh_1553815964_00000000000003E8.00183.jsonl.zst");
}

#[test]
fn finwait2_fixture_with_offsets_and_nanoseconds_round_trips_byte_for_byte() {
    round_trip("finwait2-sample_1554836592_unsafe_000000000135A272.00000.jsonl.zst");
}
