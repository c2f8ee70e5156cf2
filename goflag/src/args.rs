//! Go's flag syntax rewritten into the form clap parses.
//!
//! Go's `flag` package reads `-name`, `--name` (the same), `-name=value`
//! and `-name value`, except that a boolean never takes the next argument
//! (`-verbose false` is the flag and then a stray argument). Parsing stops
//! at `--` or at the first argument that is not a flag; the rest is left
//! as it is. Every flag is rewritten to clap's `--name` / `--name=value`,
//! the separate value joined to its flag so that a value starting with `-`
//! stays a value, as in Go.

use clap::{Arg, Command, Parser};

use crate::parse_go_bool;

/// Parses `args` (program name first) Go-style into `P`.
pub fn try_parse<P: Parser>(
    args: impl IntoIterator<Item = impl Into<String>>,
) -> Result<P, clap::Error> {
    let command = go_command::<P>();
    parse_rewritten(command.clone(), go_style_args(command, args))
}

/// `P`'s definitions with Go's rule for a flag given twice: the last value
/// wins (a list flag, `ArgAction::Append`, still collects every value).
pub fn go_command<P: Parser>() -> Command {
    let mut command = P::command().args_override_self(true);
    command.build();
    command
}

/// Parses arguments already rewritten by [`go_style_args`].
fn parse_rewritten<P: Parser>(command: Command, args: Vec<String>) -> Result<P, clap::Error> {
    parse_rewritten_with_values(command, args).map(|(p, _)| p)
}

/// Every flag's effective value, as `(name, value)` in definition order:
/// from the command line, the environment or the default; list values
/// joined with commas. Flags without a value (unset, no default) are left
/// out.
pub type FlagValues = Vec<(String, String)>;

fn parse_rewritten_with_values<P: Parser>(
    command: Command,
    args: Vec<String>,
) -> Result<(P, FlagValues), clap::Error> {
    let mut matches = command.clone().try_get_matches_from(args)?;
    let values = command
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let raw = matches.get_raw(arg.get_id().as_str())?;
            let joined: Vec<String> = raw.map(|v| v.to_string_lossy().into_owned()).collect();
            Some((long.to_owned(), joined.join(",")))
        })
        .collect();
    P::from_arg_matches_mut(&mut matches).map(|p| (p, values))
}

/// Like [`try_parse`], then every flag not given on the command line is
/// taken from the process environment under its [`env_name`], as M-Lab's
/// `flagx.ArgsFromEnv` does for Go tools.
pub fn try_parse_with_env<P: Parser>(
    args: impl IntoIterator<Item = impl Into<String>>,
) -> Result<P, clap::Error> {
    try_parse_with_env_from(args, |name| std::env::var(name).ok())
}

/// [`try_parse_with_env`] with the environment looked up through `env`. A
/// flag that names its own variable (`#[arg(env = "…")]`) is looked up under
/// that name; an empty value counts as unset; a boolean's value is read as
/// Go's `strconv.ParseBool` reads it.
pub fn try_parse_with_env_from<P: Parser>(
    args: impl IntoIterator<Item = impl Into<String>>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<P, clap::Error> {
    try_parse_with_env_values(args, env).map(|(p, _)| p)
}

/// [`try_parse_with_env_from`], and every flag's effective value (for the
/// start-up log line: what the agent actually runs with).
pub fn try_parse_with_env_values<P: Parser>(
    args: impl IntoIterator<Item = impl Into<String>>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(P, FlagValues), clap::Error> {
    let command = go_command::<P>();
    let mut args = go_style_args(command.clone(), args);
    let given: Vec<&str> = args
        .iter()
        .skip(1)
        .take_while(|a| a.starts_with("--") && a.len() > 2)
        .filter_map(|a| long_arg(&command, a[2..].split('=').next().unwrap_or("")))
        .filter_map(Arg::get_long)
        .collect();
    let mut from_env = Vec::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if matches!(long, "help" | "version") || given.contains(&long) {
            continue;
        }
        let name = arg
            .get_env()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_else(|| env_name(long));
        let Some(value) = env(&name).filter(|v| !v.is_empty()) else {
            continue;
        };
        if !arg.get_action().takes_values() {
            match parse_go_bool(&value) {
                Some(true) => from_env.push(format!("--{long}")),
                Some(false) => {}
                None => {
                    return Err(clap::Error::raw(
                        clap::error::ErrorKind::InvalidValue,
                        format!("{name}={value:?}: not a boolean (true, false, 1, 0)\n"),
                    ))
                }
            }
        } else {
            from_env.push(format!("--{long}={value}"));
        }
    }
    // After the program name: before any `--` or positional argument.
    args.splice(1.min(args.len())..1.min(args.len()), from_env);
    parse_rewritten_with_values(command, args)
}

/// The environment variable of flag `long`: upper-case, `.` and `-` as `_`
/// (`anonymize.ip` → `ANONYMIZE_IP`).
pub fn env_name(long: &str) -> String {
    long.chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

/// Rewrites `args` (program name first) for `command`. A boolean is a flag
/// whose action takes no value (`SetTrue`, help, version), or whose one
/// optional value must be attached with `=` (`num_args(0..=1)` with
/// `require_equals`, for `-flag=false`).
pub fn go_style_args(
    mut command: Command,
    args: impl IntoIterator<Item = impl Into<String>>,
) -> Vec<String> {
    // Building adds clap's own flags (help, version) to the definitions.
    command.build();
    let mut args = args.into_iter().map(Into::into);
    let mut out: Vec<String> = args.next().into_iter().collect();
    while let Some(arg) = args.next() {
        if arg == "--" || arg.len() < 2 || !arg.starts_with('-') {
            out.push(arg);
            out.extend(args);
            break;
        }
        let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (body, None),
        };
        if name.is_empty() || name.starts_with('-') {
            // Go's "bad flag syntax"; clap rejects it unchanged.
            out.push(arg);
            continue;
        }
        if !arg.starts_with("--") && name.chars().count() == 1 {
            // A one-letter flag is clap's short form (-h, -V): left as it is.
            let short = name.chars().next();
            let separate = value.is_none()
                && command
                    .get_arguments()
                    .find(|a| a.get_short() == short)
                    .is_some_and(|a| !is_boolean(a));
            out.push(arg);
            if separate {
                out.extend(args.next());
            }
            continue;
        }
        let value = match value {
            Some(value) => Some(value.to_owned()),
            None if long_arg(&command, name).is_some_and(|a| !is_boolean(a)) => args.next(),
            None => None,
        };
        out.push(match value {
            Some(value) => format!("--{name}={value}"),
            None => format!("--{name}"),
        });
    }
    out
}

/// The argument `--name` refers to, by its long name or an alias.
fn long_arg<'c>(command: &'c Command, name: &str) -> Option<&'c Arg> {
    command.get_arguments().find(|a| {
        a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|all| all.contains(&name))
    })
}

/// A Go boolean (see [`go_style_args`]): never takes the next argument.
fn is_boolean(arg: &Arg) -> bool {
    let optional_attached =
        arg.is_require_equals_set() && arg.get_num_args().is_some_and(|n| n.min_values() == 0);
    !arg.get_action().takes_values() || optional_attached
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ArgAction;

    fn command() -> Command {
        Command::new("prog")
            .arg(Arg::new("output").long("output"))
            .arg(Arg::new("prom").long("listen").alias("prom"))
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("exclude")
                    .long("exclude")
                    .action(ArgAction::Set)
                    .num_args(0..=1)
                    .require_equals(true)
                    .default_missing_value("true"),
            )
            .arg(Arg::new("level").short('l'))
    }

    fn rewrite(args: &[&str]) -> Vec<String> {
        let mut all = vec!["prog"];
        all.extend_from_slice(args);
        go_style_args(command(), all)
    }

    #[test]
    fn every_go_form_becomes_clap_long_form() {
        for args in [
            &["-output=x"][..],
            &["-output", "x"],
            &["--output", "x"],
            &["--output=x"],
        ] {
            assert_eq!(rewrite(args), ["prog", "--output=x"], "{args:?}");
        }
        assert_eq!(rewrite(&["-prom", ":9000"]), ["prog", "--prom=:9000"]);
        // A separate value is taken whatever it looks like, as Go does.
        assert_eq!(rewrite(&["-output", "-x"]), ["prog", "--output=-x"]);
        assert_eq!(rewrite(&["-output", "--"]), ["prog", "--output=--"]);
        assert_eq!(rewrite(&["-output"]), ["prog", "--output"]);
    }

    #[test]
    fn booleans_come_from_the_definitions_and_never_take_the_next_argument() {
        let cmd = {
            let mut c = command();
            c.build();
            c
        };
        let boolean = |name: &str| is_boolean(long_arg(&cmd, name).unwrap());
        assert!(boolean("verbose") && boolean("exclude") && boolean("help"));
        assert!(!boolean("output") && !boolean("prom"));
        assert_eq!(
            rewrite(&["-verbose", "-exclude=false", "-output", "o"]),
            ["prog", "--verbose", "--exclude=false", "--output=o"]
        );
        assert_eq!(
            rewrite(&["-exclude", "false", "-output=o"]),
            ["prog", "--exclude", "false", "-output=o"]
        );
        assert_eq!(rewrite(&["-help"]), ["prog", "--help"]);
    }

    #[test]
    fn rewriting_stops_at_double_dash_or_the_first_non_flag() {
        assert_eq!(
            rewrite(&["-verbose", "--", "-output=x"]),
            ["prog", "--verbose", "--", "-output=x"]
        );
        assert_eq!(
            rewrite(&["stray", "-output=x"]),
            ["prog", "stray", "-output=x"]
        );
        assert_eq!(rewrite(&["-", "-output=x"]), ["prog", "-", "-output=x"]);
    }

    #[test]
    fn short_flags_and_bad_syntax_pass_through() {
        assert_eq!(rewrite(&["-h"]), ["prog", "-h"]);
        assert_eq!(
            rewrite(&["-l", "-3", "-verbose"]),
            ["prog", "-l", "-3", "--verbose"]
        );
        assert_eq!(rewrite(&["---x", "-=y"]), ["prog", "---x", "-=y"]);
        assert_eq!(rewrite(&["-nope", "v"]), ["prog", "--nope", "v"]);
    }

    #[test]
    fn environment_names_follow_flagx() {
        assert_eq!(env_name("anonymize.ip"), "ANONYMIZE_IP");
        assert_eq!(
            env_name("prometheusx.listen-address"),
            "PROMETHEUSX_LISTEN_ADDRESS"
        );
        assert_eq!(env_name("output"), "OUTPUT");
    }

    #[derive(Debug, clap::Parser)]
    struct EnvFlags {
        #[arg(long = "poll-interval", default_value = "10ms")]
        poll_interval: String,
        #[arg(long = "policy", env = "LISTEN_POLICY")]
        policy: Option<String>,
        #[arg(long = "verbose")]
        verbose: bool,
        #[arg(long = "port", value_delimiter = ',')]
        ports: Vec<u16>,
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value_as_go_does_and_lists_collect_every_value() {
        let none = |_: &str| None;
        let f: EnvFlags = try_parse_with_env_from(
            [
                "prog",
                "-poll-interval=1s",
                "--poll-interval",
                "2s",
                "-verbose",
                "-verbose",
                "-port=1",
                "-port",
                "2,3",
            ],
            none,
        )
        .unwrap();
        assert_eq!(f.poll_interval, "2s");
        assert!(f.verbose);
        assert_eq!(f.ports, [1, 2, 3]);
        let f: EnvFlags = try_parse(["prog", "-policy=/a", "-policy=/b"]).unwrap();
        assert_eq!(f.policy.as_deref(), Some("/b"));
        // The environment fills only what the command line left unset, even
        // when the command line repeats a flag.
        let env = |name: &str| (name == "POLL_INTERVAL").then(|| "9s".to_string());
        let f: EnvFlags =
            try_parse_with_env_from(["prog", "-poll-interval=1s", "-poll-interval=3s"], env)
                .unwrap();
        assert_eq!(f.poll_interval, "3s");
    }

    #[test]
    fn flags_not_given_come_from_the_environment_as_flagx_sets_them() {
        let env = |name: &str| match name {
            "POLL_INTERVAL" => Some("1s".to_string()),
            "LISTEN_POLICY" => Some("/p.toml".to_string()),
            "VERBOSE" => Some("T".to_string()),
            "PORT" => Some("22,80".to_string()),
            _ => None,
        };
        let f: EnvFlags = try_parse_with_env_from(["prog"], env).unwrap();
        assert_eq!(f.poll_interval, "1s");
        assert_eq!(f.policy.as_deref(), Some("/p.toml"));
        assert!(f.verbose);
        assert_eq!(f.ports, [22, 80]);
        // The command line wins, whichever spelling it uses.
        let f: EnvFlags =
            try_parse_with_env_from(["prog", "-poll-interval", "5ms", "--port=7"], env).unwrap();
        assert_eq!(f.poll_interval, "5ms");
        assert_eq!(f.ports, [7]);
        // Unset, empty and false leave the default.
        let f: EnvFlags = try_parse_with_env_from(["prog"], |name: &str| match name {
            "VERBOSE" => Some("false".to_string()),
            "POLL_INTERVAL" => Some(String::new()),
            _ => None,
        })
        .unwrap();
        assert_eq!(f.poll_interval, "10ms");
        assert!(!f.verbose);
        let bad = |name: &str| (name == "VERBOSE").then(|| "sure".to_string());
        let e = try_parse_with_env_from::<EnvFlags>(["prog"], bad).unwrap_err();
        assert!(e.to_string().contains("VERBOSE=\"sure\""), "{e}");
    }
}
