//! `csvtool`: tcp-info archives to CSV, byte-identical to M-Lab's Go
//! csvtool for one archive, and streaming: memory is bounded by `-j` and
//! the chunk size, whatever the size or number of the inputs (see `pool`),
//! and the work by the input's size (runs of blank lines, as in a zstd bomb
//! of newlines, are passed over a buffer at a time).
//!
//! Usage: `csvtool [-j N] [FILE|DIR|-]...`. With no argument (or `-`) it
//! reads standard input; directories are walked for `*.jsonl*`. One header,
//! then every archive's rows in argument order. A failing archive gets one
//! line on stderr (`csvtool: <file>:<line>: <why>`), its rows up to that
//! line stay in the output, the other archives are still converted, and the
//! exit status is 1. A closed or failing stderr loses the messages, not
//! the exit status.

mod inputs;
mod job;
mod pool;

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::Parser;
use tcpinfo_archive::csv::HEADER;

use crate::inputs::Input;
use crate::job::{convert_one, Failure, CHUNK};

#[derive(Parser, Debug)]
#[command(
    name = "csvtool",
    about = "Converts tcp-info archives (.jsonl or .jsonl.zst) to CSV on stdout"
)]
struct Args {
    /// Archives or directories (walked for *.jsonl*); none or `-` reads stdin.
    inputs: Vec<String>,
    /// Archives converted in parallel (default: available cores).
    #[arg(short = 'j', long = "threads")]
    threads: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
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
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    out.write_all(HEADER.as_bytes())?;

    let mut failed = false;
    let mut report = |f: Failure| {
        failed = true;
        warn(format_args!("{f}"));
    };
    if threads == 1 || inputs.len() == 1 || inputs.contains(&Input::Stdin) {
        let mut buf = Vec::with_capacity(CHUNK + CHUNK / 4);
        for input in &inputs {
            let written = convert_one(input, &mut buf, |rows| {
                out.write_all(rows)?;
                rows.clear();
                Ok(())
            });
            match written {
                Err(Failure::Convert(tcpinfo_archive::ConvertError::Output(e))) => {
                    return Err(e.into())
                }
                Err(f) => report(f),
                Ok(()) => {}
            }
        }
    } else {
        pool::run(&inputs, threads, |rows| out.write_all(rows), &mut report)?;
    }
    out.flush()?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
