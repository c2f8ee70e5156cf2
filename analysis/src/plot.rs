//! A connection's timeline as one picture: panels stacked on a shared time
//! axis (RTT, cwnd and ssthresh, delivery and pacing rate, bytes, and
//! retransmissions), TCP state changes marked across every panel, the UUID
//! and endpoints in the title. SVG, or PNG by the file's extension.
//!
//! Every snapshot is a point of every series (no resampling), so the
//! picture shows exactly what the archive holds: one polyline per series,
//! in the series' colour (see the `*_COLOR` constants).

use std::ops::Range;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

use crate::error::AnalysisError;
use crate::timeline::{Sample, Timeline, INFINITE_SSTHRESH};

pub const RTT_COLOR: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
pub const MIN_RTT_COLOR: RGBColor = RGBColor(0x2c, 0xa0, 0x2c);
pub const CWND_COLOR: RGBColor = RGBColor(0xd6, 0x27, 0x28);
pub const SSTHRESH_COLOR: RGBColor = RGBColor(0xff, 0x7f, 0x0e);
pub const DELIVERY_RATE_COLOR: RGBColor = RGBColor(0x94, 0x67, 0xbd);
pub const PACING_RATE_COLOR: RGBColor = RGBColor(0x8c, 0x56, 0x4b);
pub const BYTES_ACKED_COLOR: RGBColor = RGBColor(0x17, 0xbe, 0xcf);
pub const BYTES_RECEIVED_COLOR: RGBColor = RGBColor(0xbc, 0xbd, 0x22);
pub const RETRANSMITS_COLOR: RGBColor = RGBColor(0xe3, 0x77, 0xc2);
pub const STATE_COLOR: RGBColor = RGBColor(0x7f, 0x7f, 0x7f);

/// Picture size in pixels.
pub const SIZE: (u32, u32) = (1200, 1400);

/// DejaVu Sans (its licence beside it in `analysis/fonts/`), built in so that
/// a plot looks the same on every machine and needs no font installed (the
/// container image has none).
const BUILT_IN_FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

const FONT: &str = "sans-serif";

/// The picture's file type, from the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Svg,
    Png,
}

impl ImageFormat {
    pub fn of(path: &Path) -> Result<Self, AnalysisError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => Ok(ImageFormat::Svg),
            Some(e) if e.eq_ignore_ascii_case("png") => Ok(ImageFormat::Png),
            _ => Err(AnalysisError::plot(
                path,
                "the output's name must end in .svg or .png",
            )),
        }
    }
}

/// Loads the text font: `font`, else the built-in DejaVu Sans. Text is
/// measured with it for SVG too (the SVG itself names the family and leaves
/// drawing to the viewer). Once per process.
pub fn load_font(font: Option<&Path>) -> Result<(), AnalysisError> {
    let Some(path) = font else {
        return register_font(FONT, FontStyle::Normal, BUILT_IN_FONT)
            .map_err(|_| AnalysisError::plot(Path::new("built-in font"), "not a TrueType font"));
    };
    let bytes = std::fs::read(path).map_err(|source| AnalysisError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // plotters keeps registered fonts for the life of the process; a CLI
    // registers one, once.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| AnalysisError::plot(path, "not a TrueType/OpenType font"))
}

/// Draws `timeline` into `output` (SVG or PNG by its extension). The font
/// must be loaded ([`load_font`]).
pub fn draw(timeline: &Timeline, output: &Path) -> Result<(), AnalysisError> {
    if timeline.samples.is_empty() {
        return Err(AnalysisError::NoSnapshots);
    }
    let fail = |e: String| AnalysisError::plot(output, e);
    match ImageFormat::of(output)? {
        ImageFormat::Svg => {
            let root = SVGBackend::new(output, SIZE).into_drawing_area();
            draw_on(&root, timeline).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))
        }
        ImageFormat::Png => {
            let root = BitMapBackend::new(output, SIZE).into_drawing_area();
            draw_on(&root, timeline).map_err(fail)?;
            root.present().map_err(|e| fail(e.to_string()))
        }
    }
}

/// One panel: its axis title and series.
struct Panel<'a> {
    y_desc: &'a str,
    series: Vec<Series<'a>>,
}

/// A named line: the runs of consecutive points it has a value for.
struct Series<'a> {
    name: &'a str,
    color: RGBColor,
    runs: Vec<Vec<(f64, f64)>>,
}

impl<'a> Series<'a> {
    /// A line through every sample where `value` is `Some`; a `None` breaks
    /// it (ssthresh before the first loss).
    fn of(
        name: &'a str,
        color: RGBColor,
        samples: &[Sample],
        t0: i64,
        value: impl Fn(&Sample) -> Option<f64>,
    ) -> Self {
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for s in samples {
            match value(s).filter(|_| s.has_info) {
                Some(v) => run.push((seconds(s.time_us, t0), v)),
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        Series { name, color, runs }
    }

    fn max(&self) -> f64 {
        self.runs.iter().flatten().map(|p| p.1).fold(0.0, f64::max)
    }
}

fn seconds(time_us: i64, t0: i64) -> f64 {
    (time_us - t0) as f64 / 1e6
}

fn panels(samples: &[Sample], t0: i64) -> Vec<Panel<'static>> {
    let mbit = |bytes_per_s: u64| bytes_per_s as f64 * 8.0 / 1e6;
    let ms = |us: u32| f64::from(us) / 1e3;
    vec![
        Panel {
            y_desc: "RTT (ms)",
            series: vec![
                Series::of("smoothed RTT", RTT_COLOR, samples, t0, |s| {
                    Some(ms(s.rtt_us))
                }),
                Series::of("min RTT", MIN_RTT_COLOR, samples, t0, |s| {
                    Some(ms(s.min_rtt_us))
                }),
            ],
        },
        Panel {
            y_desc: "window (packets)",
            series: vec![
                Series::of("cwnd", CWND_COLOR, samples, t0, |s| Some(f64::from(s.cwnd))),
                Series::of("ssthresh", SSTHRESH_COLOR, samples, t0, |s| {
                    (s.ssthresh > 0 && s.ssthresh < INFINITE_SSTHRESH)
                        .then_some(f64::from(s.ssthresh))
                }),
            ],
        },
        Panel {
            y_desc: "rate (Mbit/s)",
            series: vec![
                Series::of("delivery rate", DELIVERY_RATE_COLOR, samples, t0, |s| {
                    Some(mbit(s.delivery_rate))
                }),
                Series::of("pacing rate", PACING_RATE_COLOR, samples, t0, |s| {
                    Some(mbit(s.pacing_rate))
                }),
            ],
        },
        Panel {
            y_desc: "bytes (MB)",
            series: vec![
                Series::of("acked", BYTES_ACKED_COLOR, samples, t0, |s| {
                    Some(s.bytes_acked as f64 / 1e6)
                }),
                Series::of("received", BYTES_RECEIVED_COLOR, samples, t0, |s| {
                    Some(s.bytes_received as f64 / 1e6)
                }),
            ],
        },
        Panel {
            y_desc: "retransmitted (segments)",
            series: vec![Series::of(
                "total retransmits",
                RETRANSMITS_COLOR,
                samples,
                t0,
                |s| Some(f64::from(s.total_retrans)),
            )],
        },
    ]
}

/// `(seconds since the first sample, state)` wherever the TCP state
/// differs from the sample before (and at the first).
pub fn state_changes(samples: &[Sample]) -> Vec<(f64, u8)> {
    let t0 = samples.first().map_or(0, |s| s.time_us);
    let mut changes: Vec<(f64, u8)> = Vec::new();
    for s in samples {
        if changes.last().is_none_or(|&(_, state)| state != s.state) {
            changes.push((seconds(s.time_us, t0), s.state));
        }
    }
    changes
}

fn title(timeline: &Timeline) -> String {
    let end =
        |a: Option<std::net::SocketAddr>| a.map_or_else(|| "?".to_string(), |a| a.to_string());
    format!(
        "{}   {} → {}{}",
        timeline.uuid,
        end(timeline.src),
        end(timeline.dst),
        timeline
            .congestion
            .as_deref()
            .map(|cc| format!("   ({cc})"))
            .unwrap_or_default()
    )
}

fn draw_on<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    timeline: &Timeline,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let samples = &timeline.samples;
    let t0 = samples[0].time_us;
    let start = crate::summary::rfc3339(t0);
    let end = seconds(samples[samples.len() - 1].time_us, t0);
    let x_range = 0.0..end.max(0.001);
    let area = root.titled(&title(timeline), (FONT, 20)).map_err(err)?;
    let changes = state_changes(samples);
    let panels = panels(samples, t0);
    let areas = area.split_evenly((panels.len(), 1));
    for (i, (panel, area)) in panels.iter().zip(&areas).enumerate() {
        let x_desc = format!("time since {start} (s)");
        draw_panel(area, panel, x_range.clone(), &x_desc, &changes, i == 0).map_err(err)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel,
    x_range: Range<f64>,
    x_desc: &str,
    changes: &[(f64, u8)],
    label_states: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let y_max = panel.series.iter().map(Series::max).fold(0.0, f64::max);
    let y_max = if y_max > 0.0 { y_max * 1.12 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(20)
        .margin_top(if label_states { 18 } else { 6 })
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(x_range, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(panel.y_desc)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    // State changes: a vertical line across every panel; named on the top one.
    for &(t, _) in changes.iter().skip(1) {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(t, 0.0), (t, y_max)],
            STATE_COLOR.stroke_width(1),
        )))?;
    }
    if label_states {
        let end = chart.x_range().end;
        for &(t, state) in changes {
            // Names near the right edge end at their line, not past the edge.
            let h = if t > end * 0.85 {
                HPos::Right
            } else {
                HPos::Left
            };
            chart.draw_series(std::iter::once(Text::new(
                inetdiag::state_name(state),
                (t, y_max),
                (FONT, 12)
                    .into_font()
                    .color(&STATE_COLOR)
                    .pos(Pos::new(h, VPos::Bottom)),
            )))?;
        }
    }
    for series in &panel.series {
        let color = series.color;
        for (n, run) in series.runs.iter().enumerate() {
            let drawn =
                chart.draw_series(LineSeries::new(run.iter().copied(), color.stroke_width(2)))?;
            if n == 0 {
                drawn.label(series.name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    Ok(())
}
