//! Reading back what the agent archived: the files under an output
//! directory, decoded whole or (for a file still being written) up to its
//! last complete zstd frame, and the snapshot fields tests check.

use std::fs;
use std::path::{Path, PathBuf};

use inetdiag::tcp_info as layout;
use tcpinfo_archive::ArchivalRecord;

use crate::system::tool;

/// One archive file, decoded.
#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    pub uuid: String,
    pub sequence: u32,
    pub records: Vec<ArchivalRecord>,
}

impl Segment {
    /// The socket cookie in the UUID (its last `_` field, 16 hex digits).
    pub fn cookie(&self) -> u64 {
        let hex = self.uuid.rsplit('_').next().unwrap();
        assert_eq!(hex.len(), 16, "{}", self.uuid);
        u64::from_str_radix(hex, 16).unwrap()
    }

    /// The lines after the metadata line.
    pub fn snapshots(&self) -> &[ArchivalRecord] {
        self.records.get(1..).unwrap_or(&[])
    }

    /// Panics unless the first line is the metadata record for this file.
    pub fn assert_metadata_first(&self) {
        let first = self.records.first().expect("an empty archive");
        let m = first
            .metadata
            .as_ref()
            .unwrap_or_else(|| panic!("{}: first line is not metadata", self.path.display()));
        assert!(first.raw_idm.is_empty(), "{}", self.path.display());
        assert_eq!(m.uuid, self.uuid, "{}", self.path.display());
        assert_eq!(
            m.sequence,
            u64::from(self.sequence),
            "{}",
            self.path.display()
        );
        for r in self.snapshots() {
            assert!(
                r.metadata.is_none(),
                "{}: metadata after line 1",
                self.path.display()
            );
            assert_eq!(r.raw_idm.len(), 72, "{}", self.path.display());
        }
    }
}

/// Every `*.jsonl.zst` under `dir`, sorted.
pub fn archive_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".jsonl.zst") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// `(uuid, sequence)` from `<uuid>.<seq>.jsonl.zst`.
pub fn parse_file_name(path: &Path) -> (String, u32) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let stem = name.strip_suffix(".jsonl.zst").expect("archive name");
    let (uuid, seq) = stem.rsplit_once('.').expect("<uuid>.<seq>");
    assert_eq!(seq.len(), 5, "{name}");
    (uuid.to_string(), seq.parse().unwrap())
}

/// Splits `bytes` into JSON lines and parses each; panics on any bad line.
pub fn parse_lines(path: &Path, text: &[u8]) -> Vec<ArchivalRecord> {
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "{}: does not end with a complete line",
        path.display()
    );
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            ArchivalRecord::from_json(l).unwrap_or_else(|e| {
                panic!(
                    "{} line {}: {e}: {}",
                    path.display(),
                    i + 1,
                    String::from_utf8_lossy(l)
                )
            })
        })
        .collect()
}

/// Decodes a whole (multi-frame) archive file and parses every line.
pub fn read_segment(path: &Path) -> Segment {
    let bytes = fs::read(path).unwrap();
    let text =
        zstd::stream::decode_all(&bytes[..]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    segment_of(path, &text)
}

/// A segment from the decompressed text of the file at `path`.
pub fn segment_of(path: &Path, text: &[u8]) -> Segment {
    let (uuid, sequence) = parse_file_name(path);
    Segment {
        path: path.to_path_buf(),
        uuid,
        sequence,
        records: parse_lines(path, text),
    }
}

/// Like [`read_segment`], for a file the agent may be appending to: decodes
/// the complete frames only.
pub fn read_live_segment(path: &Path) -> Segment {
    let bytes = fs::read(path).unwrap_or_default();
    let (complete, _) = frames(&bytes);
    let mut text = Vec::new();
    for frame in complete {
        text.extend(zstd::stream::decode_all(frame).unwrap());
    }
    segment_of(path, &text)
}

/// The segments (complete frames so far) of the connection with `cookie`,
/// by sequence.
pub fn live_segments_of(dir: &Path, cookie: u64) -> Vec<Segment> {
    let suffix = format!("_{cookie:016X}");
    let mut segs: Vec<Segment> = archive_files(dir)
        .iter()
        .filter(|p| parse_file_name(p).0.ends_with(&suffix))
        .map(|p| read_live_segment(p))
        .collect();
    segs.sort_by_key(|s| s.sequence);
    segs
}

/// Every archive under `dir`, decoded.
pub fn read_all(dir: &Path) -> Vec<Segment> {
    archive_files(dir).iter().map(|p| read_segment(p)).collect()
}

/// The complete zstd frames of `bytes`, and whether an incomplete frame
/// follows them.
pub fn frames(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match zstd::zstd_safe::find_frame_compressed_size(rest) {
            Ok(n) if n <= rest.len() => {
                out.push(&rest[..n]);
                rest = &rest[n..];
            }
            _ => return (out, true),
        }
    }
    (out, false)
}

/// `zstd -t FILE` succeeds: the reference implementation reads the file.
pub fn zstd_cli_accepts(path: &Path) -> bool {
    tool("zstd")
        .args(["-q", "-t"])
        .arg(path)
        .status()
        .expect("running zstd")
        .success()
}

// ---- decoding snapshots ----

/// The snapshot's `inet_diag_msg`, through the inetdiag crate's view.
pub fn idm(r: &ArchivalRecord) -> inetdiag::InetDiagMsg<'_> {
    inetdiag::InetDiagMsg::parse(&r.raw_idm).expect("RawIDM is an inet_diag_msg")
}

/// The snapshot's `INET_DIAG_INFO` payload (`struct tcp_info`).
pub fn tcp_info_of(r: &ArchivalRecord) -> &[u8] {
    r.attributes
        .get(inetdiag::INET_DIAG_INFO as usize)
        .and_then(|a| a.as_deref())
        .expect("snapshot without tcp_info")
}

pub fn info_state(r: &ArchivalRecord) -> u8 {
    layout::u8_at(tcp_info_of(r), layout::STATE).unwrap()
}
pub fn bytes_acked(r: &ArchivalRecord) -> u64 {
    layout::u64_at(tcp_info_of(r), layout::BYTES_ACKED).unwrap()
}
pub fn bytes_received(r: &ArchivalRecord) -> u64 {
    layout::u64_at(tcp_info_of(r), layout::BYTES_RECEIVED).unwrap()
}

/// TCP states (include/net/tcp_states.h).
pub mod state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
    /// A destroyed socket: the state of its destroy notice.
    pub const CLOSE: u8 = 7;
}

/// A fresh temporary directory for one test's archives.
pub fn output_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tcp-info-it-")
        .tempdir()
        .unwrap()
}

/// After a clean stop with final counters `stats`: `files` archive files
/// under `out`, each passing `zstd -t` with its metadata line first, that
/// hold exactly the snapshots counted queued and written, none dropped.
/// Returns the files.
pub fn assert_complete_archive(
    out: &Path,
    stats: &crate::Stats,
    files: usize,
    what: &str,
) -> Vec<PathBuf> {
    let paths = archive_files(out);
    assert_eq!(paths.len(), files, "{what}");
    let mut snapshots = 0;
    for p in &paths {
        let complete = zstd_cli_accepts(p);
        assert!(complete, "{what}: zstd -t fails on {}", p.display());
        let seg = read_segment(p);
        seg.assert_metadata_first();
        snapshots += seg.snapshots().len() as u64;
    }
    assert_eq!(snapshots, stats.get("queued"), "{what}: {stats:?}");
    assert_eq!(snapshots, stats.get("written"), "{what}: {stats:?}");
    assert_eq!(stats.get("dropped"), 0, "{what}");
    paths
}

/// The CSV rows M-Lab's csvtool makes of `archive` (plain or zstd JSON
/// lines, named `name` in errors), and the error that ended the conversion
/// early, if any (a live file's unfinished frame, say).
pub fn csv_rows(name: &str, archive: impl std::io::Read) -> (Vec<u8>, Option<String>) {
    let mut reader = match tcpinfo_archive::ArchiveReader::new(name.to_string(), archive) {
        Ok(reader) => reader,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut rows = Vec::new();
    let mut out = Vec::new();
    let converted =
        tcpinfo_archive::CsvConverter::new().convert(&mut reader, &mut out, 1 << 16, |chunk| {
            rows.extend_from_slice(chunk);
            chunk.clear();
            Ok(())
        });
    (rows, converted.err().map(|e| e.to_string()))
}
