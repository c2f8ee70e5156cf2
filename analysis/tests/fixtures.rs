//! `summary` and `plot` on archives written by M-Lab's Go tcp-info
//! (testdata/mlab), checked against the CSV M-Lab's own csvtool printed for
//! the same files: an independent decoding of the same snapshots.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use harness::svg::{check_linear, hex, polylines};
use plotters::style::RGBColor;
use tcpinfo_analysis::cli::{run_plot, run_summary, summarize, Outcome, PlotArgs, SummaryArgs};
use tcpinfo_analysis::inputs::connections;
use tcpinfo_analysis::plot::{CWND_COLOR, RTT_COLOR};
use tcpinfo_analysis::{Format, Summary};

const FINWAIT2: &str = "finwait2-sample_1554836592_unsafe_000000000135A272.00000";
const NDT: &str = "ndt-jdczh_1553815964_00000000000003E8.00183";

fn fixture(name: &str, ext: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../testdata/mlab/{name}.{ext}"))
}

/// The golden CSV's snapshot rows (the metadata row has no IDM.State),
/// as (header, rows).
fn golden(name: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(fixture(name, "csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let state = column(&header, "IDM.State");
    let rows = rows.into_iter().filter(|r| !r[state].is_empty()).collect();
    (header, rows)
}

fn column(header: &[String], name: &str) -> usize {
    header.iter().position(|h| h == name).unwrap()
}

/// The non-empty values of `name`, in row order.
fn values(name: &str, column_name: &str) -> Vec<f64> {
    let (header, rows) = golden(name);
    let c = column(&header, column_name);
    rows.iter()
        .filter(|r| !r[c].is_empty())
        .map(|r| r[c].parse().unwrap())
        .collect()
}

fn summary_of(paths: &[PathBuf]) -> Vec<Summary> {
    let (rows, errors) = summarize(&connections(paths).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    rows
}

#[test]
fn summary_of_each_fixture_agrees_with_go_csvtool() {
    for name in [FINWAIT2, NDT] {
        let rows = summary_of(&[fixture(name, "jsonl.zst")]);
        assert_eq!(rows.len(), 1, "{name}");
        let s = &rows[0];
        let (header, golden_rows) = golden(name);
        let last_of = |col: &str| -> u64 {
            let c = column(&header, col);
            golden_rows.iter().rev().find(|r| !r[c].is_empty()).unwrap()[c]
                .parse()
                .unwrap()
        };
        let times: Vec<_> = golden_rows
            .iter()
            .map(|r| chrono::DateTime::parse_from_rfc3339(&r[0]).unwrap())
            .collect();
        let duration = (times[times.len() - 1] - times[0]).num_milliseconds() as f64 / 1e3;
        assert!((s.duration_s - duration).abs() < 0.001, "{name}: {s:?}");
        assert_eq!(s.snapshots, golden_rows.len() as u64, "{name}");
        let state: u8 = golden_rows.last().unwrap()[column(&header, "IDM.State")]
            .parse()
            .unwrap();
        assert_eq!(s.final_state, inetdiag::state_name(state), "{name}");
        assert_eq!(s.bytes_acked, last_of("TCP.BytesAcked"), "{name}");
        assert_eq!(s.bytes_received, last_of("TCP.BytesReceived"), "{name}");
        assert_eq!(s.segs_out, last_of("TCP.SegsOut"), "{name}");
        assert_eq!(s.segs_in, last_of("TCP.SegsIn"), "{name}");
        assert_eq!(s.retransmits, last_of("TCP.TotalRetrans"), "{name}");
        let min_rtt = values(name, "TCP.MinRTT").into_iter().filter(|&v| v > 0.0);
        assert_eq!(
            s.min_rtt_us as f64,
            min_rtt.fold(f64::MAX, f64::min),
            "{name}"
        );
        let rtts: Vec<f64> = values(name, "TCP.RTT")
            .into_iter()
            .filter(|&v| v > 0.0)
            .collect();
        let mean = rtts.iter().sum::<f64>() / rtts.len() as f64;
        assert_eq!(s.mean_rtt_us, mean as u64, "{name}");
        let max_cwnd = values(name, "TCP.SndCwnd").into_iter().fold(0.0, f64::max);
        assert_eq!(s.max_cwnd as f64, max_cwnd, "{name}");
        let mut rates: Vec<f64> = values(name, "TCP.DeliveryRate")
            .into_iter()
            .filter(|&v| v > 0.0)
            .collect();
        rates.sort_by(f64::total_cmp);
        assert_eq!(
            s.max_delivery_rate_bps as f64,
            *rates.last().unwrap(),
            "{name}"
        );
        assert_eq!(
            s.median_delivery_rate_bps as f64,
            rates[(rates.len() - 1) / 2]
        );
        assert_eq!(s.congestion_control, "cubic");
    }
    // The FIN_WAIT2 connection's last snapshot has no tcp_info: its state
    // and time count, the counters are the last reported.
    let s = &summary_of(&[fixture(FINWAIT2, "jsonl.zst")])[0];
    assert_eq!(s.final_state, "FIN_WAIT2");
    assert_eq!(
        (s.src.as_str(), s.dst.as_str()),
        ("100.101.236.52:34018", "216.239.32.41:443")
    );
}

/// The fixture's lines, decompressed.
fn lines(name: &str) -> Vec<String> {
    let mut text = String::new();
    zstd::Decoder::new(std::fs::File::open(fixture(name, "jsonl.zst")).unwrap())
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(String::from).collect()
}

/// The NDT fixture cut into three segments in three date directories, as
/// the agent's rotation leaves a long connection; returns the directory.
fn segmented(dir: &Path) -> usize {
    let lines = lines(NDT);
    let (metadata, snapshots) = lines.split_first().unwrap();
    let parts: Vec<&[String]> = snapshots.chunks(snapshots.len().div_ceil(3)).collect();
    for (seq, part) in parts.iter().enumerate() {
        let day = dir.join(format!("2019/04/0{}", seq + 2));
        std::fs::create_dir_all(&day).unwrap();
        let path = day.join(format!(
            "ndt-jdczh_1553815964_00000000000003E8.{seq:05}.jsonl"
        ));
        let mut f = std::fs::File::create(path).unwrap();
        writeln!(
            f,
            "{}",
            metadata.replace("\"Sequence\":183", &format!("\"Sequence\":{seq}"))
        )
        .unwrap();
        for line in *part {
            writeln!(f, "{line}").unwrap();
        }
    }
    parts.len()
}

#[test]
fn segments_across_date_directories_join_into_one_row() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(segmented(dir.path()), 3);
    let joined = summary_of(&[dir.path().to_path_buf()]);
    let whole = summary_of(&[fixture(NDT, "jsonl.zst")]);
    assert_eq!(joined, whole);
}

fn plot(inputs: &[PathBuf], output: &Path, uuid: Option<&str>) -> Outcome {
    run_plot(&PlotArgs {
        output: output.to_path_buf(),
        uuid: uuid.map(String::from),
        font: None,
        inputs: inputs.to_vec(),
    })
}

/// The first polyline drawn in `color` (legends come after their series).
fn series(svg: &str, color: RGBColor) -> Vec<(i32, i32)> {
    let stroke = hex((color.0, color.1, color.2));
    polylines(svg)
        .into_iter()
        .find(|p| p.stroke == stroke)
        .unwrap_or_else(|| panic!("no polyline in {stroke}"))
        .points
}

#[test]
fn plot_draws_every_snapshot_of_the_joined_segments_at_its_value() {
    let dir = tempfile::tempdir().unwrap();
    segmented(dir.path());
    let svg = dir.path().join("ndt.svg");
    assert_eq!(plot(&[dir.path().to_path_buf()], &svg, None), Outcome::Done);
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(
        svg.contains("ndt-jdczh_1553815964_00000000000003E8"),
        "title names the UUID"
    );
    assert!(
        svg.contains("192.168.14.134:9091"),
        "title names the endpoints"
    );
    for unit in [
        "RTT (ms)",
        "window (packets)",
        "rate (Mbit/s)",
        "bytes (MB)",
        "(segments)",
        "(s)",
    ] {
        assert!(svg.contains(unit), "no axis titled {unit}");
    }

    let cwnd = series(&svg, CWND_COLOR);
    let ys: Vec<i32> = cwnd.iter().map(|p| p.1).collect();
    check_linear(&ys, &values(NDT, "TCP.SndCwnd")).unwrap();
    let rtt = series(&svg, RTT_COLOR);
    let ys: Vec<i32> = rtt.iter().map(|p| p.1).collect();
    check_linear(&ys, &values(NDT, "TCP.RTT")).unwrap();
    // Time runs left to right with the snapshots' timestamps.
    let (_, rows) = golden(NDT);
    let t: Vec<f64> = rows
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(&r[0])
                .unwrap()
                .timestamp_millis() as f64
        })
        .collect();
    let xs: Vec<i32> = rtt.iter().map(|p| p.0).collect();
    check_linear(&xs, &t).unwrap();
}

#[test]
fn plot_writes_png_by_extension_and_refuses_other_names() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("finwait2.png");
    assert_eq!(
        plot(&[fixture(FINWAIT2, "jsonl.zst")], &png, None),
        Outcome::Done
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 10_000);

    let gif = dir.path().join("x.gif");
    assert_eq!(
        plot(&[fixture(FINWAIT2, "jsonl.zst")], &gif, None),
        Outcome::Unusable
    );
    assert!(!gif.exists());
}

#[test]
fn plot_of_several_connections_needs_a_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("one.svg");
    let both = [fixture(FINWAIT2, "jsonl.zst"), fixture(NDT, "jsonl.zst")];
    assert_eq!(plot(&both, &svg, None), Outcome::Unusable);
    assert!(!svg.exists());
    let uuid = "ndt-jdczh_1553815964_00000000000003E8";
    assert_eq!(plot(&both, &svg, Some(uuid)), Outcome::Done);
    assert!(std::fs::read_to_string(&svg).unwrap().contains(uuid));
    assert_eq!(plot(&both, &svg, Some("nope")), Outcome::Unusable);
}

#[test]
fn a_truncated_archive_fails_the_run_and_the_others_are_summarized() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(fixture(NDT, "jsonl.zst")).unwrap();
    let cut = dir.path().join("cut_1.00000.jsonl.zst");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let args = SummaryArgs {
        format: Format::Csv,
        inputs: vec![cut, fixture(FINWAIT2, "jsonl.zst")],
    };
    let mut out = Vec::new();
    assert_eq!(run_summary(&args, &mut out), Outcome::ArchiveFailed);
    let out = String::from_utf8(out).unwrap();
    // The cut archive's error is on stderr; the other archive's row stands.
    assert!(out.starts_with("uuid,"), "{out}");
    assert!(out.contains("gfr14.nyc.corp.google.com_1554836592_unsafe_000000000135A272"));
}
