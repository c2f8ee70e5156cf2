//! Drives the real `csvtool` binary: golden outputs byte for byte, the
//! input forms it accepts, and one-line located errors on broken archives.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const NDT: &str = "ndt-jdczh_1553815964_00000000000003E8.00183";
const FINWAIT2: &str = "finwait2-sample_1554836592_unsafe_000000000135A272.00000";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/mlab")
        .join(name)
}

fn golden(stem: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("{stem}.csv"))).unwrap()
}

fn archive_lines(stem: &str) -> Vec<u8> {
    let raw = std::fs::read(fixture(&format!("{stem}.jsonl.zst"))).unwrap();
    zstd::decode_all(&raw[..]).unwrap()
}

fn csvtool(args: &[&Path], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_csvtool"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn header_and_rows(csv: &[u8]) -> (&[u8], &[u8]) {
    let end = csv.iter().position(|&b| b == b'\n').unwrap() + 1;
    csv.split_at(end)
}

fn zstd_frames(chunks: &[&[u8]]) -> Vec<u8> {
    chunks
        .iter()
        .flat_map(|c| zstd::encode_all(*c, 3).unwrap())
        .collect()
}

#[test]
fn golden_fixtures_convert_byte_for_byte() {
    for stem in [NDT, FINWAIT2] {
        let out = csvtool(&[&fixture(&format!("{stem}.jsonl.zst"))], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty());
        assert!(
            out.stdout == golden(stem),
            "{stem}: output differs from golden CSV"
        );
    }
}

#[test]
fn plain_jsonl_and_stdin_are_detected_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("no-extension");
    std::fs::write(&plain, archive_lines(NDT)).unwrap();
    assert_eq!(csvtool(&[&plain], None).stdout, golden(NDT));

    let zst = std::fs::read(fixture(&format!("{NDT}.jsonl.zst"))).unwrap();
    assert_eq!(csvtool(&[], Some(&zst)).stdout, golden(NDT));
    assert_eq!(
        csvtool(&[Path::new("-")], Some(&archive_lines(NDT))).stdout,
        golden(NDT)
    );
}

#[test]
fn many_frames_convert_like_one() {
    let lines = archive_lines(FINWAIT2);
    let cut = lines.len() / 3;
    let cut = cut + lines[cut..].iter().position(|&b| b == b'\n').unwrap() + 1;
    // Frames need not end on a line boundary either.
    let data = zstd_frames(&[
        &lines[..cut - 7],
        &lines[cut - 7..cut + 5],
        &lines[cut + 5..],
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl.zst");
    std::fs::write(&path, data).unwrap();
    assert_eq!(csvtool(&[&path], None).stdout, golden(FINWAIT2));
}

#[test]
fn files_and_directories_give_one_header_in_order_on_any_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("2019/04/02");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::copy(
        fixture(&format!("{NDT}.jsonl.zst")),
        nested.join("b.jsonl.zst"),
    )
    .unwrap();
    std::fs::copy(
        fixture(&format!("{FINWAIT2}.jsonl.zst")),
        dir.path().join("2019/a.jsonl.zst"),
    )
    .unwrap();
    std::fs::write(dir.path().join("README"), "not an archive").unwrap();

    let ndt = golden(NDT);
    let fin_golden = golden(FINWAIT2);
    let (header, ndt_rows) = header_and_rows(&ndt);
    let (_, fin_rows) = header_and_rows(&fin_golden);
    // Directory entries in path order ("04" < "a.jsonl.zst"), then the
    // explicit file argument.
    let want = [header, ndt_rows, fin_rows, fin_rows].concat();
    let fin = fixture(&format!("{FINWAIT2}.jsonl.zst"));

    for threads in ["1", "2", "3"] {
        let out = Command::new(env!("CARGO_BIN_EXE_csvtool"))
            .arg("-j")
            .arg(threads)
            .arg(dir.path())
            .arg(&fin)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == want, "-j {threads}: wrong rows or order");
    }
}

/// What a broken archive must produce: rows before the bad line intact,
/// one stderr line naming the file and line, exit status 1.
fn assert_fails_at(path: &Path, line: u64, why: &str, rows_before: usize) {
    let out = csvtool(&[path], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let located = format!("{}:{line}: ", path.display());
    assert!(stderr.contains(&located), "want {located:?} in {stderr:?}");
    assert!(stderr.contains(why), "want {why:?} in {stderr:?}");
    let golden = golden(NDT);
    let want_len = golden
        .split_inclusive(|&b| b == b'\n')
        .take(rows_before + 1)
        .map(<[u8]>::len)
        .sum();
    assert!(
        out.stdout == golden[..want_len],
        "rows before the failure must be intact"
    );
}

/// The ndt archive's lines with line `n` (1-based) replaced.
fn with_line(n: usize, replacement: &str) -> Vec<u8> {
    let lines = archive_lines(NDT);
    let mut out = Vec::new();
    for (i, l) in lines.split_inclusive(|&b| b == b'\n').enumerate() {
        if i + 1 == n {
            out.extend_from_slice(replacement.as_bytes());
            out.push(b'\n');
        } else {
            out.extend_from_slice(l);
        }
    }
    out
}

#[test]
fn bad_lines_are_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let idm = "CgECACODqfQAAAAAAAAAAAAA///AqA6GAAAAAAAAAAAAAP//wKgOgQAAAADoAwAAAAAAAHD///8AAAAAAAAAAAAAAACvos4D";
    let cases = [
        (
            "not-json",
            "{\"Timestamp\": oops",
            "not a JSON archive record",
        ),
        (
            "bad-base64",
            &format!(
                r#"{{"Timestamp":"2019-04-02T14:12:37Z","RawIDM":"{idm}","Attributes":[null,"A*=="]}}"#
            ),
            "bad base64 in Attributes",
        ),
        (
            "short-idm",
            r#"{"Timestamp":"2019-04-02T14:12:37Z","RawIDM":"AAAA"}"#,
            "RawIDM is 3 bytes",
        ),
        (
            "bad-time",
            r#"{"Timestamp":"yesterday","RawIDM":"AAAA"}"#,
            "timestamp",
        ),
    ];
    for (name, line, why) in cases {
        let path = dir.path().join(format!("{name}.jsonl.zst"));
        std::fs::write(&path, zstd::encode_all(&with_line(5, line)[..], 3).unwrap()).unwrap();
        assert_fails_at(&path, 5, why, 4);
        let plain = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&plain, with_line(5, line)).unwrap();
        assert_fails_at(&plain, 5, why, 4);
    }
}

#[test]
fn truncated_last_frame_is_an_error_not_an_early_end() {
    let lines = archive_lines(NDT);
    let first: usize = lines
        .split_inclusive(|&b| b == b'\n')
        .take(100)
        .map(<[u8]>::len)
        .sum();
    let mut data = zstd_frames(&[&lines[..first], &lines[first..]]);
    data.truncate(data.len() - 10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.jsonl.zst");
    std::fs::write(&path, &data).unwrap();

    let out = csvtool(&[&path], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("truncated zstd stream"), "{stderr}");
    assert!(stderr.contains(&format!("{}:", path.display())), "{stderr}");
    // Every row written is a complete row of the golden output.
    let golden = golden(NDT);
    assert!(golden.starts_with(&out.stdout));
    assert_eq!(out.stdout.last(), Some(&b'\n'));
    let rows = out.stdout.iter().filter(|&&b| b == b'\n').count() - 1;
    assert!(rows >= 100, "only {rows} rows before the truncated frame");
    let line: usize = stderr
        .split(&format!("{}:", path.display()))
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap();
    assert_eq!(line, rows + 1, "the error names the line being read");
}

#[test]
fn corrupt_zstd_stream_is_an_error() {
    let mut data = std::fs::read(fixture(&format!("{NDT}.jsonl.zst"))).unwrap();
    // A frame whose descriptor has its reserved bit set (RFC 8878, 3.1.1.1.1).
    data.extend_from_slice(&[0x28, 0xB5, 0x2F, 0xFD, 0x08]);
    data.extend_from_slice(&[0x55; 64]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl.zst");
    std::fs::write(&path, &data).unwrap();
    let out = csvtool(&[&path], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("{}:152: corrupt zstd stream", path.display())),
        "{stderr}"
    );
    assert_eq!(out.stdout, golden(NDT));
}

#[test]
fn a_failing_archive_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("a.jsonl");
    std::fs::write(&bad, "{}\n").unwrap();
    let good = fixture(&format!("{NDT}.jsonl.zst"));
    let missing = dir.path().join("missing.jsonl.zst");
    for threads in ["1", "2"] {
        let out = Command::new(env!("CARGO_BIN_EXE_csvtool"))
            .args(["-j", threads])
            .arg(&bad)
            .arg(&missing)
            .arg(&good)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 2, "{stderr}");
        assert!(lines[0].contains(&format!("{}:1: record has neither", bad.display())));
        assert!(lines[1].contains(&missing.display().to_string()));
        assert_eq!(out.stdout, golden(NDT));
    }
}
