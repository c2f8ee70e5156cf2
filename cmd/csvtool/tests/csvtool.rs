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

fn csvtool_with(args: &[&str], files: &[&Path], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_csvtool"))
        .args(args)
        .args(files)
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
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// A snapshot line whose `tcp_info` is `len` bytes, each field after
/// `tcpi_snd_wnd` holding its offset (u16 fields) or offset × 1000 (u32).
fn line_with_tcp_info(len: usize) -> String {
    let mut info = vec![0u8; 280];
    for f in tcpinfo_archive::EXTENDED_FIELDS {
        match f.width {
            tcpinfo_archive::FieldWidth::U16 => {
                info[f.offset..f.offset + 2].copy_from_slice(&(f.offset as u16).to_ne_bytes())
            }
            tcpinfo_archive::FieldWidth::U32 => info[f.offset..f.offset + 4]
                .copy_from_slice(&(f.offset as u32 * 1000).to_ne_bytes()),
        }
    }
    info.truncate(len);
    let mut b64 = Vec::new();
    tcpinfo_archive::push_base64(&mut b64, &info);
    format!(
        "{{\"Timestamp\":\"2019-04-02T14:12:37.511Z\",\"RawIDM\":\"CgECACODqfQAAAAAAAAAAAAA///AqA6GAAAAAAAAAAAAAP//wKgOgQAAAADoAwAAAAAAAHD///8AAAAAAAAAAAAAAACvos4D\",\"Attributes\":[null,null,\"{}\"]}}\n",
        String::from_utf8(b64).unwrap()
    )
}

#[test]
fn extended_and_uuid_columns_follow_the_mlab_columns_unchanged() {
    let path = fixture(&format!("{NDT}.jsonl.zst"));
    let out = csvtool_with(&["-extended", "-uuid"], &[&path], None);
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
    let text = String::from_utf8(out.stdout).unwrap();
    let golden = String::from_utf8(golden(NDT)).unwrap();
    let extra = 14 + 2;
    for (i, (got, want)) in text.lines().zip(golden.lines()).enumerate() {
        let cells: Vec<&str> = got.split(',').collect();
        assert_eq!(cells.len(), 105 + extra, "line {i}");
        assert_eq!(cells[..105].join(","), want, "line {i}");
        if i == 0 {
            assert_eq!(cells[105], "TCP.RcvWnd");
            assert_eq!(cells[118], "TCP.AccECNOptSeen");
            assert_eq!(&cells[119..], ["UUID", "File"]);
        } else {
            // 2019's kernel sent no field after tcpi_snd_wnd.
            assert!(cells[105..119].iter().all(|c| c.is_empty()), "line {i}");
            assert_eq!(cells[119], "ndt-jdczh_1553815964_00000000000003E8");
            assert_eq!(cells[120], path.display().to_string());
        }
    }
    assert_eq!(text.lines().count(), golden.lines().count());
}

#[test]
fn extended_columns_show_what_each_kernel_generation_sent() {
    let input = [280, 248, 232].map(line_with_tcp_info).concat();
    let out = csvtool_with(&["--extended"], &[], Some(input.as_bytes()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let ext = |r: &Vec<&str>| r[105..].join(",");
    assert_eq!(
        ext(&rows[0]),
        "232000,236000,240,242,244000,248000,252000,256000,260000,264000,268000,272000,276,278"
    );
    assert_eq!(ext(&rows[1]), "232000,236000,240,242,244000,,,,,,,,,");
    assert_eq!(ext(&rows[2]), ",,,,,,,,,,,,,");
    // The M-Lab columns do not change with the flag.
    let plain = csvtool_with(&[], &[], Some(input.as_bytes()));
    for (got, want) in text
        .lines()
        .zip(String::from_utf8(plain.stdout).unwrap().lines())
    {
        assert!(got.starts_with(want));
    }
}

#[test]
fn version_empty_input_and_attached_thread_count() {
    let out = csvtool_with(&["--version"], &[], None);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("csvtool {}", env!("CARGO_PKG_VERSION"))
    );

    // No records: the header, a warning, and success.
    let out = csvtool_with(&[], &[], Some(b""));
    assert!(out.status.success());
    assert_eq!(out.stdout, tcpinfo_archive::csv::HEADER.as_bytes());
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "csvtool: no records in the input (1 archive)\n"
    );

    let fin = fixture(&format!("{FINWAIT2}.jsonl.zst"));
    let out = csvtool_with(&["-j2"], &[&fin, &fin], None);
    assert!(out.status.success());
    let fin_golden = golden(FINWAIT2);
    let (_, rows) = header_and_rows(&fin_golden);
    assert_eq!(
        out.stdout.len(),
        tcpinfo_archive::csv::HEADER.len() + 2 * rows.len()
    );

    let out = csvtool_with(&["-format=parquet"], &[&fin], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs -o FILE"));
}

#[test]
fn parquet_has_a_typed_row_per_csv_row_in_bounded_row_groups() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType, UInt32Type};
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.parquet");
    let ndt = fixture(&format!("{NDT}.jsonl.zst"));
    let fin = fixture(&format!("{FINWAIT2}.jsonl.zst"));
    let out = csvtool_with(
        &["-format=parquet", "-extended", "-o", file.to_str().unwrap()],
        &[&ndt, &fin],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());

    let csv = [golden(NDT), header_and_rows(&golden(FINWAIT2)).1.to_vec()].concat();
    let csv = String::from_utf8(csv).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();

    let builder =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap()).unwrap();
    let meta = builder.metadata().clone();
    assert!(meta
        .row_groups()
        .iter()
        .all(|g| g.num_rows() as usize <= 64 * 1024));
    let schema = builder.schema().clone();
    assert_eq!(schema.fields().len(), 105 + 14);
    let col = |name: &str| schema.index_of(name).unwrap();
    let (ts, rtt, pacing) = (col("Timestamp"), col("TCP.RTT"), col("TCP.PacingRate"));
    let csv_col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let mut at = 0;
    for batch in builder.build().unwrap() {
        let batch = batch.unwrap();
        let ts_a = batch.column(ts).as_primitive::<TimestampMicrosecondType>();
        let rtt_a = batch.column(rtt).as_primitive::<UInt32Type>();
        let pacing_a = batch.column(pacing).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            let row = &rows[at];
            let cell = |name| row[csv_col(name)];
            if cell("Timestamp") == "2009-05-29T23:59:59Z" {
                assert!(ts_a.is_null(i));
            } else {
                let want = tcpinfo_archive::Timestamp::parse(cell("Timestamp")).unwrap();
                assert_eq!(ts_a.value(i), want.unix_micros());
            }
            match cell("TCP.RTT") {
                "" => assert!(rtt_a.is_null(i) && pacing_a.is_null(i)),
                v => {
                    assert_eq!(rtt_a.value(i).to_string(), v);
                    assert_eq!(pacing_a.value(i).to_string(), cell("TCP.PacingRate"));
                }
            }
            at += 1;
        }
    }
    assert_eq!(at, rows.len());
}
