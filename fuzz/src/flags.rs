//! Go-style command lines (the `goflag` crate) with the agent's flags and
//! those of `tcp-info check`.

use std::collections::HashMap;

use clap::error::ErrorKind;
use tcp_info::config::{CheckConfig, Config};

/// One input is an argument vector without the program name, each argument
/// ended by a NUL byte (as in `/proc/PID/cmdline`; the last NUL may be
/// left out). An argument `$NAME=value` is not an argument but the
/// environment variable the flags fall back to; the process environment is
/// left out, so that the outcome depends on the input alone.
pub fn go_flags(data: &[u8]) {
    let data = data.strip_suffix(&[0]).unwrap_or(data);
    let (env, args): (Vec<String>, Vec<String>) = data
        .split(|&b| b == 0)
        .filter(|_| !data.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .partition(|a| a.starts_with('$'));
    let env: HashMap<String, String> = env
        .iter()
        .filter_map(|e| e[1..].split_once('='))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    for arg in &args {
        let value = arg.split_once('=').map_or(arg.as_str(), |(_, v)| v);
        let _ = goflag::parse_go_duration(value);
        let _ = goflag::parse_go_bool(value);
    }
    let env = |name: &str| env.get(name).cloned();
    if args.first().map(String::as_str) == Some("check") {
        let argv = std::iter::once("tcp-info check".to_string()).chain(args[1..].iter().cloned());
        if let Err(e) = goflag::try_parse_with_env_from::<CheckConfig>(argv, env) {
            report(&e);
        }
    } else {
        let argv = std::iter::once("tcp-info".to_string()).chain(args.iter().cloned());
        if let Err(e) = goflag::try_parse_with_env_from::<Config>(argv, env) {
            report(&e);
        }
    }
}

/// The line `tcp-info` would print for a refused command line: one line
/// that says something (help and version are printed whole instead).
fn report(e: &clap::Error) {
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return;
    }
    let line = goflag::one_line(e);
    assert!(!line.contains('\n'), "flag error spans lines: {line:?}");
    assert!(!line.trim().is_empty(), "an empty error for {:?}", e.kind());
}
