//! `tcp-info summary …` and `tcp-info plot …` without the agent around
//! them: the same `cli::dispatch` the agent binary calls, in a binary that
//! builds in a fraction of the time (BENCHMARKS.md).
//!
//! Usage: `analyze summary|plot ARGS…`

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    args[0] = "tcp-info".into();
    tcpinfo_analysis::cli::dispatch(&args).unwrap_or_else(|| {
        eprintln!("usage: analyze summary|plot ARGS…");
        ExitCode::from(2)
    })
}
