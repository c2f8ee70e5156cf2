//! One row per connection: who talked to whom, for how long, how it ended,
//! how much went through, and how the path behaved.

use std::io::{self, Write};

use serde::Serialize;

use crate::timeline::Timeline;

/// A connection's summary. Units are in the names: times RFC 3339 (UTC),
/// RTTs in microseconds, rates in bytes per second, cwnd in packets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub uuid: String,
    pub src: String,
    pub dst: String,
    pub first: String,
    pub last: String,
    pub duration_s: f64,
    /// TCP state of the last snapshot (`ESTABLISHED`, `FIN_WAIT2`, …).
    pub final_state: String,
    pub snapshots: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u64,
    pub segs_in: u64,
    /// `tcpi_total_retrans` at the end: segments retransmitted.
    pub retransmits: u64,
    /// The lowest `tcpi_min_rtt` reported (0 when the kernel never had one).
    pub min_rtt_us: u64,
    /// The mean of the smoothed RTTs (`tcpi_rtt`) over the snapshots.
    pub mean_rtt_us: u64,
    pub max_cwnd: u64,
    /// Median and maximum of the non-zero `tcpi_delivery_rate`s.
    pub median_delivery_rate_bps: u64,
    pub max_delivery_rate_bps: u64,
    pub congestion_control: String,
}

/// The CSV header, in field order.
pub const CSV_HEADER: &str = "uuid,src,dst,first,last,duration_s,final_state,snapshots,bytes_acked,bytes_received,segs_out,segs_in,retransmits,min_rtt_us,mean_rtt_us,max_cwnd,median_delivery_rate_bps,max_delivery_rate_bps,congestion_control";

impl Summary {
    /// `None` for a connection without a single tcp_info snapshot.
    pub fn of(timeline: &Timeline) -> Option<Summary> {
        let samples = &timeline.samples;
        let (first, last) = (samples.first()?, samples.last()?);
        // The counters as last reported (the last snapshot may lack tcp_info).
        let counters = samples.iter().rev().find(|s| s.has_info).unwrap_or(last);
        let mut rtt_sum = 0u64;
        let mut rtt_count = 0u64;
        let mut min_rtt = u32::MAX;
        let mut max_cwnd = 0;
        let mut rates = Vec::with_capacity(samples.len());
        for s in samples.iter().filter(|s| s.has_info) {
            if s.rtt_us > 0 {
                rtt_sum += u64::from(s.rtt_us);
                rtt_count += 1;
            }
            if s.min_rtt_us > 0 {
                min_rtt = min_rtt.min(s.min_rtt_us);
            }
            max_cwnd = max_cwnd.max(s.cwnd);
            if s.delivery_rate > 0 {
                rates.push(s.delivery_rate);
            }
        }
        rates.sort_unstable();
        let show = |a: Option<std::net::SocketAddr>| a.map_or_else(String::new, |a| a.to_string());
        Some(Summary {
            uuid: timeline.uuid.clone(),
            src: show(timeline.src),
            dst: show(timeline.dst),
            first: rfc3339(first.time_us),
            last: rfc3339(last.time_us),
            duration_s: (last.time_us - first.time_us) as f64 / 1e6,
            final_state: inetdiag::state_name(last.state).to_string(),
            snapshots: samples.len() as u64,
            bytes_acked: counters.bytes_acked,
            bytes_received: counters.bytes_received,
            segs_out: counters.segs_out.into(),
            segs_in: counters.segs_in.into(),
            retransmits: counters.total_retrans.into(),
            min_rtt_us: if min_rtt == u32::MAX {
                0
            } else {
                min_rtt.into()
            },
            mean_rtt_us: rtt_sum.checked_div(rtt_count).unwrap_or(0),
            max_cwnd: max_cwnd.into(),
            median_delivery_rate_bps: median(&rates),
            max_delivery_rate_bps: rates.last().copied().unwrap_or(0),
            congestion_control: timeline.congestion.clone().unwrap_or_default(),
        })
    }
}

/// The median of sorted `values` (the lower middle one for an even count:
/// a rate the kernel actually reported).
fn median(sorted: &[u64]) -> u64 {
    match sorted.len() {
        0 => 0,
        n => sorted[(n - 1) / 2],
    }
}

/// Microseconds since the epoch as RFC 3339 UTC with milliseconds, the
/// archive's own precision.
pub fn rfc3339(time_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(time_us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// How `tcp-info summary` prints its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with human units, for reading on a terminal.
    Table,
    /// One header line, then one line per connection, raw units.
    Csv,
    /// One JSON array of objects, raw units.
    Json,
}

/// Writes `rows` in `format`.
pub fn write(out: &mut impl Write, rows: &[Summary], format: Format) -> io::Result<()> {
    match format {
        Format::Table => write_table(out, rows),
        Format::Csv => write_csv(out, rows),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)
        }
    }
}

fn write_csv(out: &mut impl Write, rows: &[Summary]) -> io::Result<()> {
    writeln!(out, "{CSV_HEADER}")?;
    for r in rows {
        writeln!(
            out,
            "{},{},{},{},{},{:.3},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            csv_field(&r.uuid),
            csv_field(&r.src),
            csv_field(&r.dst),
            r.first,
            r.last,
            r.duration_s,
            r.final_state,
            r.snapshots,
            r.bytes_acked,
            r.bytes_received,
            r.segs_out,
            r.segs_in,
            r.retransmits,
            r.min_rtt_us,
            r.mean_rtt_us,
            r.max_cwnd,
            r.median_delivery_rate_bps,
            r.max_delivery_rate_bps,
            csv_field(&r.congestion_control),
        )?;
    }
    Ok(())
}

/// RFC 4180 quoting, for the fields that come from files (UUIDs are the
/// content of a prefix file, and could hold anything).
fn csv_field(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"")).into()
    } else {
        s.into()
    }
}

/// The table's columns: header, and whether numbers align right.
const TABLE: [(&str, bool); 16] = [
    ("UUID", false),
    ("SRC", false),
    ("DST", false),
    ("FIRST", false),
    ("DURATION", true),
    ("STATE", false),
    ("ACKED", true),
    ("RECEIVED", true),
    ("SEGS OUT/IN", true),
    ("RETRANS", true),
    ("MIN RTT", true),
    ("MEAN RTT", true),
    ("MAX CWND", true),
    ("MEDIAN RATE", true),
    ("MAX RATE", true),
    ("CC", false),
];

fn write_table(out: &mut impl Write, rows: &[Summary]) -> io::Result<()> {
    let cells: Vec<[String; 16]> = rows
        .iter()
        .map(|r| {
            [
                r.uuid.clone(),
                r.src.clone(),
                r.dst.clone(),
                r.first.clone(),
                format!("{:.3}s", r.duration_s),
                r.final_state.clone(),
                bytes(r.bytes_acked),
                bytes(r.bytes_received),
                format!("{}/{}", r.segs_out, r.segs_in),
                r.retransmits.to_string(),
                millis(r.min_rtt_us),
                millis(r.mean_rtt_us),
                r.max_cwnd.to_string(),
                rate(r.median_delivery_rate_bps),
                rate(r.max_delivery_rate_bps),
                r.congestion_control.clone(),
            ]
        })
        .collect();
    let mut widths = TABLE.map(|(h, _)| h.len());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, row: &[&str]| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in row.iter().enumerate() {
            let (w, right) = (widths[i], TABLE[i].1);
            if i > 0 {
                text.push_str("  ");
            }
            if right {
                text.push_str(&format!("{cell:>w$}"));
            } else {
                text.push_str(&format!("{cell:<w$}"));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &TABLE.map(|(h, _)| h))?;
    for row in &cells {
        line(out, &row.each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// Bytes with a binary-free SI unit (B, kB, MB, GB), as transfer sizes
/// are usually quoted.
fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.2} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.1} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

fn millis(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1e3)
}

/// Bytes per second as bits per second, the unit links are sold in.
fn rate(bytes_per_s: u64) -> String {
    let bits = bytes_per_s as f64 * 8.0;
    match bits {
        b if b >= 1e9 => format!("{:.2} Gbit/s", b / 1e9),
        b if b >= 1e6 => format!("{:.2} Mbit/s", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kbit/s", b / 1e3),
        b => format!("{b} bit/s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Sample;

    fn sample(time_us: i64, rtt_us: u32, rate: u64, retrans: u32, state: u8) -> Sample {
        Sample {
            time_us,
            state,
            has_info: true,
            rtt_us,
            min_rtt_us: rtt_us,
            cwnd: rtt_us / 10,
            ssthresh: 0,
            delivery_rate: rate,
            pacing_rate: 0,
            bytes_acked: time_us as u64,
            bytes_received: 7,
            segs_out: 3,
            segs_in: 4,
            total_retrans: retrans,
        }
    }

    #[test]
    fn summary_takes_last_counters_extremes_mean_and_lower_median() {
        let timeline = Timeline {
            uuid: "u".into(),
            src: Some("198.51.100.1:80".parse().unwrap()),
            dst: Some("198.51.100.2:5000".parse().unwrap()),
            congestion: Some("cubic".into()),
            samples: vec![
                sample(1_000_000, 300, 0, 0, 1),
                sample(1_500_000, 100, 50, 2, 1),
                sample(2_000_000, 200, 10, 2, 1),
                sample(3_250_000, 400, 30, 5, 4),
                sample(3_500_000, 0, 20, 5, 5),
                // A last snapshot without tcp_info: state and time only.
                Sample {
                    has_info: false,
                    ..sample(4_000_000, 0, 0, 0, 7)
                },
            ],
        };
        let s = Summary::of(&timeline).unwrap();
        assert_eq!(s.first, "1970-01-01T00:00:01.000Z");
        assert_eq!(s.last, "1970-01-01T00:00:04.000Z");
        assert_eq!(s.duration_s, 3.0);
        assert_eq!(s.final_state, "CLOSE");
        assert_eq!(s.snapshots, 6);
        assert_eq!(s.bytes_acked, 3_500_000);
        assert_eq!(s.retransmits, 5);
        assert_eq!(s.min_rtt_us, 100);
        assert_eq!(s.mean_rtt_us, 250);
        assert_eq!(s.max_cwnd, 40);
        // Rates 10, 20, 30, 50 (the zero is "no sample yet").
        assert_eq!(s.median_delivery_rate_bps, 20);
        assert_eq!(s.max_delivery_rate_bps, 50);
        assert_eq!(s.congestion_control, "cubic");
        assert!(Summary::of(&Timeline::default()).is_none());
    }

    #[test]
    fn table_columns_align_and_csv_quotes_odd_uuids() {
        let timeline = Timeline {
            uuid: "odd,\"uuid\"".into(),
            samples: vec![sample(0, 1000, 125_000, 1, 1)],
            ..Timeline::default()
        };
        let row = Summary::of(&timeline).unwrap();
        let mut csv = Vec::new();
        write(&mut csv, std::slice::from_ref(&row), Format::Csv).unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert!(csv.starts_with(CSV_HEADER), "{csv}");
        assert!(csv.contains("\n\"odd,\"\"uuid\"\"\",,,"), "{csv}");

        let mut table = Vec::new();
        write(&mut table, &[row.clone(), row], Format::Table).unwrap();
        let table = String::from_utf8(table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let at = lines[0].find("MEDIAN RATE").unwrap() + "MEDIAN RATE".len();
        // Right-aligned under its header: 125,000 B/s is 1 Mbit/s.
        assert_eq!(&lines[1][..at][at - "1.00 Mbit/s".len()..], "1.00 Mbit/s");
        assert_eq!(lines[1], lines[2]);
    }
}
