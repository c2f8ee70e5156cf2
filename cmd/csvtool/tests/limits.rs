//! What hostile or degenerate input cannot do to the real `csvtool`: a
//! zstd bomb of newlines costs time in proportion to its decompressed size
//! (a buffer at a time, not a line at a time), tens of thousands of tiny
//! archives do not grow memory with their number, and a closed stderr is
//! an exit status, not a panic.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FINWAIT2: &str = "finwait2-sample_1554836592_unsafe_000000000135A272.00000";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/mlab")
        .join(name)
}

fn csvtool() -> Command {
    Command::new(env!("CARGO_BIN_EXE_csvtool"))
}

/// `mib` MiB of newlines in one zstd frame of a few kilobytes.
fn newline_bomb(mib: usize) -> Vec<u8> {
    let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let newlines = vec![b'\n'; 1 << 20];
    for _ in 0..mib {
        encoder.write_all(&newlines).unwrap();
    }
    encoder.finish().unwrap()
}

#[test]
fn a_zstd_bomb_of_newlines_converts_in_bounded_time_with_exact_line_numbers() {
    const MIB: usize = 192;
    let bomb = newline_bomb(MIB);
    assert!(bomb.len() < 16 << 10, "the bomb is {} bytes", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    // The bomb, then a real archive's lines: converted as the archive alone.
    let good = dir.path().join("good.jsonl.zst");
    let mut data = bomb.clone();
    data.extend(std::fs::read(fixture(&format!("{FINWAIT2}.jsonl.zst"))).unwrap());
    std::fs::write(&good, data).unwrap();
    // The bomb, then a bad line: the error names the line after the bomb.
    let bad = dir.path().join("bad.jsonl.zst");
    let mut data = bomb;
    data.extend(zstd::encode_all(&b"{\"Timestamp\": oops\n"[..], 3).unwrap());
    std::fs::write(&bad, data).unwrap();

    let start = Instant::now();
    let out = csvtool()
        .args(["-j", "1"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    let took = start.elapsed();
    // Line by line, this takes over half a minute in a debug build; a
    // buffer at a time, about three seconds.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_eq!(out.status.code(), Some(1));
    let golden = std::fs::read(fixture(&format!("{FINWAIT2}.csv"))).unwrap();
    assert!(out.stdout == golden, "the good archive's rows, exactly");
    let stderr = String::from_utf8(out.stderr).unwrap();
    let located = format!("{}:{}: ", bad.display(), MIB * (1 << 20) + 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&located), "want {located:?} in {stderr:?}");
}

/// The peak resident set of the largest child this process has waited
/// for, in bytes (`getrusage(RUSAGE_CHILDREN)`): an upper bound on every
/// one of them.
fn peak_rss_of_children() -> u64 {
    use nix::sys::resource::{getrusage, UsageWho};
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap();
    // ru_maxrss is in kilobytes on Linux (getrusage(2)).
    usage.max_rss() as u64 * 1024
}

#[test]
fn thirty_thousand_tiny_archives_on_sixteen_threads_stay_under_256_mib() {
    // The ceiling: far above what the bound allows (16 threads × 2 archives
    // × 5 chunks of 80 KiB at most, plus a decoder per thread: about 12 MiB
    // measured), far below what holding every archive's rows costs (1.2 GiB
    // measured before the bound).
    const CEILING: u64 = 256 << 20;
    const FILES: usize = 30_000;
    let lines =
        zstd::decode_all(&std::fs::read(fixture(&format!("{FINWAIT2}.jsonl.zst"))).unwrap()[..])
            .unwrap();
    // The archive's first three lines: three rows per archive.
    let tiny: Vec<u8> = lines
        .split_inclusive(|&b| b == b'\n')
        .take(3)
        .flatten()
        .copied()
        .collect();
    let tiny = zstd::encode_all(&tiny[..], 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        std::fs::write(dir.path().join(format!("{i:05}.jsonl.zst")), &tiny).unwrap();
    }

    // A slow reader of the output (a pipe into a compressor, a slow disk):
    // the workers are far ahead of the writer, which is where memory
    // would pile up.
    let mut child = csvtool()
        .args(["-j", "16"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut csv = Vec::new();
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        csv.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = csv.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(rows, 1 + 3 * FILES);
    let peak = peak_rss_of_children();
    assert!(
        peak < CEILING,
        "peak resident memory {} MiB, ceiling {} MiB",
        peak >> 20,
        CEILING >> 20
    );
}

/// A pipe whose reading end is already closed: writing to it fails with
/// EPIPE.
fn closed_pipe() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

#[test]
fn a_closed_stderr_or_stdout_is_an_exit_status_not_a_panic() {
    let missing = Path::new("/nonexistent/archive.jsonl.zst");
    // A failure to report, and nowhere to report it.
    let out = csvtool()
        .arg(missing)
        .stderr(closed_pipe())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{:?}", out.status);
    assert!(out.stdout.starts_with(b"Timestamp,"));

    // Nowhere to write the rows either.
    let out = csvtool()
        .arg(missing)
        .arg(fixture(&format!("{FINWAIT2}.jsonl.zst")))
        .stderr(closed_pipe())
        .stdout(closed_pipe())
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(matches!(code, Some(0 | 1)), "{:?}", out.status);
}
