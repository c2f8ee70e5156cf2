//! `csvtool`: tcp-info archives to CSV, byte-identical to M-Lab's Go
//! csvtool for one archive, and streaming: memory is bounded by `-j` and
//! the chunk size, whatever the size or number of the inputs (see `pool`),
//! and the work by the input's size (runs of blank lines, as in a zstd bomb
//! of newlines, are passed over a buffer at a time).
//!
//! Usage: `csvtool [-j N] [-extended] [-uuid] [-format=csv|parquet]
//! [-o FILE] [FILE|DIR|-]...` (flags the Go way: `-flag`, `--flag`,
//! `-flag=value`). With no argument (or `-`) it reads standard input;
//! directories are walked for `*.jsonl*`. One header, then every archive's
//! rows in argument order. `-extended` and `-uuid` add columns after
//! M-Lab's (without them the output is the Go tool's, byte for byte);
//! `-format=parquet` writes the same rows, typed, to the `-o` file (see
//! `parquet`). When stderr is a terminal a long run shows its progress
//! there; an input without a single record is a warning. A failing archive gets one
//! line on stderr (`csvtool: <file>:<line>: <why>`), its rows up to that
//! line stay in the output, the other archives are still converted, and the
//! exit status is 1. A closed or failing stderr loses the messages, not
//! the exit status.

mod inputs;
mod job;
mod parquet;
mod pool;
mod progress;

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use tcpinfo_archive::csv::Columns;

use crate::inputs::Input;
use crate::job::{convert_one, Failure, CHUNK};
use crate::progress::{rows_in, Progress};

#[derive(Parser, Debug)]
#[command(
    name = "csvtool",
    version,
    about = "Converts tcp-info archives (.jsonl or .jsonl.zst) to CSV on stdout, or to Parquet"
)]
struct Args {
    /// Archives or directories (walked for *.jsonl*); none or `-` reads stdin.
    inputs: Vec<String>,
    /// Archives converted in parallel (default: available cores; CSV only).
    #[arg(short = 'j', long = "threads")]
    threads: Option<usize>,
    /// Adds a column for every tcp_info field after M-Lab's last one
    /// (tcpi_rcv_wnd .. tcpi_accecn_opt_seen), empty where the archived
    /// struct is shorter.
    #[arg(long)]
    extended: bool,
    /// Adds the connection's UUID and the archive's file name as columns.
    #[arg(long)]
    uuid: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Csv)]
    format: Format,
    /// Output file (default for CSV: stdout; required for Parquet).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Csv,
    Parquet,
}

fn main() -> ExitCode {
    let args = match goflag::try_parse::<Args>(attached_short_values(std::env::args())) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            warn(format_args!("{}", format!("{e:#}").replace('\n', " ")));
            ExitCode::FAILURE
        }
    }
}

/// `-j4` as `-j 4`: Go-style parsing reads a one-dash word as a long flag,
/// and `-j4` has always meant four threads here.
fn attached_short_values(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = Vec::new();
    for arg in args {
        match arg.strip_prefix("-j") {
            Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                out.push("-j".into());
                out.push(n.into());
            }
            _ => out.push(arg),
        }
    }
    out
}

/// One `csvtool: ` line on stderr. Unlike `eprintln!`, a closed or full
/// stderr is not a panic: the message is lost, the exit status still says
/// what happened.
fn warn(message: fmt::Arguments) {
    let _ = writeln!(io::stderr().lock(), "csvtool: {message}");
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let inputs = inputs::expand(&args.inputs)?;
    let columns = Columns {
        extended: args.extended,
        source: args.uuid,
    };
    let (records, failed) = match args.format {
        Format::Csv => run_csv(args, &inputs, columns)?,
        Format::Parquet => run_parquet(args, &inputs, columns)?,
    };
    if records == 0 && !failed {
        warn(format_args!(
            "no records in the input ({} archive{})",
            inputs.len(),
            if inputs.len() == 1 { "" } else { "s" }
        ));
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the CSV; returns the records written (when it matters: zero or
/// not, and the progress line) and whether an archive failed.
fn run_csv(args: &Args, inputs: &[Input], columns: Columns) -> anyhow::Result<(u64, bool)> {
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let stdout = io::stdout();
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(File::create(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => Box::new(stdout.lock()),
    };
    out.write_all(columns.header().as_bytes())?;

    let mut progress = Progress::new(inputs.len());
    // Bytes of rows written: whether there was any record at all.
    let mut written = 0u64;
    let mut failed = false;
    let mut write = |rows: &[u8], progress: &mut Progress| {
        written += rows.len() as u64;
        if progress.enabled() {
            progress.records(rows_in(rows));
        }
        out.write_all(rows)
    };
    if threads == 1 || inputs.len() == 1 || inputs.contains(&Input::Stdin) {
        let mut buf = Vec::with_capacity(CHUNK + CHUNK / 4);
        for input in inputs {
            let result = convert_one(input, columns, &mut buf, |rows| {
                write(rows, &mut progress)?;
                rows.clear();
                Ok(())
            });
            match result {
                Err(Failure::Convert(tcpinfo_archive::ConvertError::Output(e))) => {
                    return Err(e.into())
                }
                Err(f) => {
                    failed = true;
                    warn(format_args!("{f}"));
                }
                Ok(()) => {}
            }
            progress.file_done();
        }
    } else {
        let progress = std::cell::RefCell::new(&mut progress);
        pool::run(
            inputs,
            threads,
            columns,
            |rows| write(rows, &mut progress.borrow_mut()),
            |result| {
                if let Err(f) = result {
                    failed = true;
                    warn(format_args!("{f}"));
                }
                progress.borrow_mut().file_done();
            },
        )?;
    }
    progress.finish();
    out.flush()?;
    Ok((written, failed))
}

fn run_parquet(args: &Args, inputs: &[Input], columns: Columns) -> anyhow::Result<(u64, bool)> {
    let Some(path) = &args.output else {
        anyhow::bail!("-format=parquet needs -o FILE (Parquet is not written to stdout)");
    };
    let mut out = parquet::ParquetOut::create(path, columns)?;
    let mut progress = Progress::new(inputs.len());
    let mut failed = false;
    for input in inputs {
        let before = out.rows();
        let mut added = 0;
        let result = out.add(input, &mut |n| {
            added += n;
            progress.records(n);
        })?;
        progress.records(out.rows() - before - added);
        if let Err(f) = result {
            failed = true;
            warn(format_args!("{f}"));
        }
        progress.file_done();
    }
    progress.finish();
    let rows = out.finish()?;
    Ok((rows, failed))
}
