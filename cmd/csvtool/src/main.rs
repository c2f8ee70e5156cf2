//! `csvtool`: tcp-info archives to CSV, byte-identical to M-Lab's Go
//! csvtool for one archive, and streaming: memory stays flat whatever the
//! input size.
//!
//! Usage: `csvtool [-j N] [FILE|DIR|-]...`. With no argument (or `-`) it
//! reads standard input; directories are walked for `*.jsonl*`. One header,
//! then every archive's rows in argument order. A failing archive gets one
//! line on stderr (`csvtool: <file>:<line>: <why>`), its rows up to that
//! line stay in the output, the other archives are still converted, and the
//! exit status is 1.

mod inputs;
mod job;
mod pool;

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
            eprintln!("csvtool: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
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
        eprintln!("csvtool: {f}");
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
