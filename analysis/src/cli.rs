//! `tcp-info summary` and `tcp-info plot`: flags (parsed Go-style, like the
//! agent's), runs, exit statuses. 0: done; 1: an archive could not be read
//! (the others still are, and the rest of the output stands); 2: the
//! command line or the output is unusable.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::error::AnalysisError;
use crate::inputs::{self, ConnectionFiles};
use crate::plot;
use crate::summary::{self, Format, Summary};
use crate::timeline::Timeline;

/// `tcp-info summary [-format=table|csv|json] ARCHIVE|DIR…`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tcp-info summary",
    about = "Prints one row per connection of the archives given (files, or directories walked for *.jsonl*): endpoints, times, final state, bytes, segments, retransmits, RTT, cwnd, delivery rate, congestion control. Segments of one connection join into one row."
)]
pub struct SummaryArgs {
    /// Output format: an aligned table (human units), CSV or JSON (raw units).
    #[arg(long = "format", value_enum, default_value = "table")]
    pub format: Format,
    /// Archives, or directories holding them.
    #[arg(required = true, value_name = "ARCHIVE|DIR")]
    pub inputs: Vec<PathBuf>,
}

/// `tcp-info plot [-uuid UUID] ARCHIVE|DIR… -o FILE.svg|FILE.png`
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tcp-info plot",
    about = "Draws one connection's timeline (RTT, cwnd and ssthresh, delivery and pacing rate, bytes, retransmits, state changes) as SVG or PNG. Segments of one connection join into one timeline."
)]
pub struct PlotArgs {
    /// The picture to write; .svg or .png.
    #[arg(short = 'o', long = "output", value_name = "FILE.svg|FILE.png")]
    pub output: PathBuf,
    /// The connection to draw, when the inputs hold several.
    #[arg(long = "uuid", value_name = "UUID")]
    pub uuid: Option<String>,
    /// TrueType font for the text (default: DejaVu Sans or Liberation Sans
    /// from the system's font directories).
    #[arg(long = "font", value_name = "FILE.ttf")]
    pub font: Option<PathBuf>,
    /// Archives (the segments of one connection), or directories.
    #[arg(required = true, value_name = "ARCHIVE|DIR")]
    pub inputs: Vec<PathBuf>,
}

/// How a run ended, as an exit status: 0, 1 or 2 (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Some archive could not be read (fully); the output covers the rest.
    ArchiveFailed,
    /// Nothing usable: bad command line, unusable inputs or output.
    Unusable,
}

impl From<Outcome> for ExitCode {
    fn from(o: Outcome) -> ExitCode {
        match o {
            Outcome::Done => ExitCode::SUCCESS,
            Outcome::ArchiveFailed => ExitCode::FAILURE,
            Outcome::Unusable => ExitCode::from(2),
        }
    }
}

/// Runs `summary` or `plot` when `args[1]` names one (program name first);
/// `None` for any other command line.
pub fn dispatch(args: &[String]) -> Option<ExitCode> {
    let sub = args.get(1)?.as_str();
    if sub != "summary" && sub != "plot" {
        return None;
    }
    let program = format!("{} {sub}", args[0]);
    let argv = std::iter::once(program.clone()).chain(args[2..].iter().cloned());
    let name = format!("tcp-info {sub}");
    Some(if sub == "summary" {
        match goflag::try_parse::<SummaryArgs>(argv) {
            Ok(a) => run_summary(&a, &mut io::stdout().lock()).into(),
            Err(e) => goflag::report(&name, &e),
        }
    } else {
        match goflag::try_parse::<PlotArgs>(argv) {
            Ok(a) => run_plot(&a).into(),
            Err(e) => goflag::report(&name, &e),
        }
    })
}

fn warn(program: &str, message: impl std::fmt::Display) {
    let _ = writeln!(io::stderr().lock(), "{program}: {message}");
}

/// The summaries of every connection in the inputs, earliest first, and
/// the errors met reading them.
pub fn summarize(connections: &[ConnectionFiles]) -> (Vec<Summary>, Vec<AnalysisError>) {
    let mut rows = Vec::with_capacity(connections.len());
    let mut errors = Vec::new();
    for c in connections {
        let (timeline, mut failed) = Timeline::read(c);
        errors.append(&mut failed);
        rows.extend(Summary::of(&timeline));
    }
    rows.sort_by(|a, b| (&a.first, &a.uuid).cmp(&(&b.first, &b.uuid)));
    (rows, errors)
}

/// `tcp-info summary`, writing to `out`.
pub fn run_summary(args: &SummaryArgs, out: &mut impl Write) -> Outcome {
    const NAME: &str = "tcp-info summary";
    let connections = match inputs::connections(&args.inputs) {
        Ok(c) => c,
        Err(e) => {
            warn(NAME, e);
            return Outcome::Unusable;
        }
    };
    let (rows, errors) = summarize(&connections);
    for e in &errors {
        warn(NAME, e);
    }
    if rows.is_empty() {
        warn(NAME, AnalysisError::NoSnapshots);
    }
    let mut buffered = BufWriter::new(out);
    let written = summary::write(&mut buffered, &rows, args.format).and_then(|()| buffered.flush());
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Outcome::Done,
        Err(e) => {
            warn(NAME, format_args!("writing the summary: {e}"));
            Outcome::Unusable
        }
        Ok(()) if errors.is_empty() => Outcome::Done,
        Ok(()) => Outcome::ArchiveFailed,
    }
}

/// `tcp-info plot`.
pub fn run_plot(args: &PlotArgs) -> Outcome {
    const NAME: &str = "tcp-info plot";
    let (timeline, errors) = match plot_timeline(args) {
        Ok(t) => t,
        Err(e) => {
            warn(NAME, e);
            return Outcome::Unusable;
        }
    };
    for e in &errors {
        warn(NAME, e);
    }
    let drawn =
        plot::load_font(args.font.as_deref()).and_then(|()| plot::draw(&timeline, &args.output));
    match drawn {
        Err(e) => {
            warn(NAME, e);
            Outcome::Unusable
        }
        Ok(()) if errors.is_empty() => Outcome::Done,
        Ok(()) => Outcome::ArchiveFailed,
    }
}

/// The one connection `args` names, read; with the errors met reading it.
fn plot_timeline(args: &PlotArgs) -> Result<(Timeline, Vec<AnalysisError>), AnalysisError> {
    plot::ImageFormat::of(&args.output)?;
    let mut connections = inputs::connections(&args.inputs)?;
    if let Some(uuid) = &args.uuid {
        connections.retain(|c| &c.key == uuid);
        if connections.is_empty() {
            return Err(AnalysisError::NoSuchConnection(uuid.clone()));
        }
    }
    if connections.len() > 1 {
        return Err(AnalysisError::SeveralConnections(connections.len()));
    }
    let (timeline, errors) = Timeline::read(&connections[0]);
    if timeline.samples.is_empty() {
        return match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Err(AnalysisError::NoSnapshots),
        };
    }
    Ok((timeline, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_go_style_and_plot_takes_its_output_after_the_archives() {
        let s: SummaryArgs = goflag::try_parse(["s", "-format=csv", "a", "b"]).unwrap();
        assert_eq!(s.format, Format::Csv);
        assert_eq!(s.inputs, [PathBuf::from("a"), PathBuf::from("b")]);
        let s: SummaryArgs = goflag::try_parse(["s", "--format", "json", "a"]).unwrap();
        assert_eq!(s.format, Format::Json);
        let s: SummaryArgs = goflag::try_parse(["s", "a"]).unwrap();
        assert_eq!(s.format, Format::Table);
        assert!(goflag::try_parse::<SummaryArgs>(["s", "-format=xml", "a"]).is_err());
        assert!(goflag::try_parse::<SummaryArgs>(["s"]).is_err());

        let p: PlotArgs = goflag::try_parse(["p", "a.00000.jsonl.zst", "-o", "x.svg"]).unwrap();
        assert_eq!(p.output, PathBuf::from("x.svg"));
        let p: PlotArgs = goflag::try_parse(["p", "-uuid", "u", "-output=x.png", "d"]).unwrap();
        assert_eq!(
            (p.uuid.as_deref(), p.output.to_str()),
            (Some("u"), Some("x.png"))
        );
    }

    #[test]
    fn other_command_lines_are_the_agents() {
        assert!(dispatch(&["tcp-info".into(), "-reps=1".into()]).is_none());
        assert!(dispatch(&["tcp-info".into(), "check".into()]).is_none());
        assert!(dispatch(&["tcp-info".into()]).is_none());
    }
}
