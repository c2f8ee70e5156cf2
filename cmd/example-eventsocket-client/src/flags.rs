//! The example client's flags, Go-style as in M-Lab's client
//! (`-tcpinfo.eventsocket PATH`, `-tcpinfo.eventsocket=PATH`, or the
//! `TCPINFO_EVENTSOCKET` environment variable).
//!
//! Only `clap`, `goflag` and `std` here: the deployment test compiles this
//! very file to check the docker-compose command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "example-eventsocket-client",
    version,
    about = "Connects to tcp-info's event socket and logs every connection open and close event.",
    after_help = "Flags take one or two dashes (-tcpinfo.eventsocket=PATH). Each flag can also come from the environment: upper-case, with '.' and '-' as '_' (TCPINFO_EVENTSOCKET=/run/tcpinfo/events.sock)."
)]
pub struct Flags {
    /// The tcp-info event socket (Unix stream socket) to read events from.
    #[arg(long = "tcpinfo.eventsocket", value_name = "PATH")]
    pub eventsocket: Option<PathBuf>,

    /// How long to wait for the socket to accept connections at start
    /// (e.g. 500ms, 30s, 2m; 0 tries once).
    #[arg(long = "connect-timeout", value_name = "DURATION", value_parser = goflag::parse_go_duration)]
    pub connect_timeout: Option<Duration>,

    /// Also subscribe to listener changes (listening ports opened and
    /// closed) and log them; needs this project's tcp-info, not Go's.
    #[arg(long = "listener-changes")]
    pub listener_changes: bool,

    /// Accepted as M-Lab's client accepts it (none or netblock): the Go
    /// client registers it through a package it imports and never uses it.
    /// Anonymization is the agent's job (its -anonymize.ip); events arrive
    /// already anonymized.
    #[arg(long = "anonymize.ip", default_value = "none", value_name = "METHOD",
          value_parser = clap::builder::PossibleValuesParser::new(["none", "netblock"]))]
    pub anonymize_ip: String,
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Flags {
    /// Parses `args` (program name first) Go-style; flags not given are
    /// looked up with `env` under their environment names.
    pub fn parse_go_args<I, S>(
        args: I,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let flags: Flags = goflag::try_parse_with_env_from(args, env)?;
        if flags.eventsocket.is_none() {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingRequiredArgument,
                "-tcpinfo.eventsocket path is required\n",
            ));
        }
        Ok(flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn go_style_flags_parse_like_double_dash() {
        for args in [
            vec!["c", "-tcpinfo.eventsocket=/x.sock"],
            vec!["c", "-tcpinfo.eventsocket", "/x.sock"],
            vec!["c", "--tcpinfo.eventsocket=/x.sock"],
        ] {
            let flags = Flags::parse_go_args(args, no_env).unwrap();
            assert_eq!(flags.eventsocket, Some(PathBuf::from("/x.sock")));
        }
    }

    #[test]
    fn environment_fills_missing_flags() {
        let flags = Flags::parse_go_args(["c"], |name| match name {
            "TCPINFO_EVENTSOCKET" => Some("/env.sock".into()),
            "CONNECT_TIMEOUT" => Some("1m30s".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(flags.eventsocket, Some(PathBuf::from("/env.sock")));
        assert_eq!(flags.connect_timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn listener_changes_are_opt_in_by_flag_or_environment() {
        let off = Flags::parse_go_args(["c", "-tcpinfo.eventsocket=/x"], no_env).unwrap();
        assert!(!off.listener_changes);
        let on = Flags::parse_go_args(
            ["c", "-tcpinfo.eventsocket=/x", "-listener-changes"],
            no_env,
        )
        .unwrap();
        assert!(on.listener_changes);
        let env = |name: &str| (name == "LISTENER_CHANGES").then(|| "true".to_string());
        assert!(
            Flags::parse_go_args(["c", "-tcpinfo.eventsocket=/x"], env)
                .unwrap()
                .listener_changes
        );
        let bad = |name: &str| (name == "LISTENER_CHANGES").then(|| "sure".to_string());
        assert!(Flags::parse_go_args(["c", "-tcpinfo.eventsocket=/x"], bad).is_err());
    }

    #[test]
    fn gos_anonymize_ip_is_accepted_in_every_go_spelling() {
        for args in [
            vec!["c", "-tcpinfo.eventsocket=/x", "-anonymize.ip", "netblock"],
            vec!["c", "-tcpinfo.eventsocket=/x", "-anonymize.ip=netblock"],
            vec!["c", "-tcpinfo.eventsocket=/x", "--anonymize.ip=netblock"],
            vec!["c", "-tcpinfo.eventsocket=/x", "--anonymize.ip", "netblock"],
        ] {
            let flags = Flags::parse_go_args(args.clone(), no_env).unwrap();
            assert_eq!(flags.anonymize_ip, "netblock", "{args:?}");
        }
        let env = |name: &str| (name == "ANONYMIZE_IP").then(|| "netblock".to_string());
        let flags = Flags::parse_go_args(["c", "-tcpinfo.eventsocket=/x"], env).unwrap();
        assert_eq!(flags.anonymize_ip, "netblock");
        let flags = Flags::parse_go_args(["c", "-tcpinfo.eventsocket=/x"], no_env).unwrap();
        assert_eq!(flags.anonymize_ip, "none");
        assert!(Flags::parse_go_args(
            ["c", "-tcpinfo.eventsocket=/x", "-anonymize.ip=all"],
            no_env
        )
        .is_err());
    }

    #[test]
    fn socket_path_is_required() {
        assert!(Flags::parse_go_args(["c"], no_env).is_err());
        assert!(Flags::parse_go_args(["c", "-bogus"], no_env).is_err());
    }

    #[test]
    fn an_overlong_timeout_is_an_error_not_a_panic() {
        let huge = "99999999999999999999999h";
        let flag = format!("-connect-timeout={huge}");
        let err =
            Flags::parse_go_args(["c", "-tcpinfo.eventsocket=/x", &flag], no_env).unwrap_err();
        assert!(goflag::one_line(&err).contains(huge), "{err}");
        let env = |name: &str| (name == "CONNECT_TIMEOUT").then(|| huge.to_string());
        assert!(Flags::parse_go_args(["c", "-tcpinfo.eventsocket=/x"], env).is_err());
    }

    #[test]
    fn a_value_after_a_flag_is_never_a_flag() {
        let flags = Flags::parse_go_args(
            [
                "c",
                "-tcpinfo.eventsocket",
                "-events.sock",
                "-listener-changes",
            ],
            no_env,
        )
        .unwrap();
        assert_eq!(flags.eventsocket, Some(PathBuf::from("-events.sock")));
        assert!(flags.listener_changes);
    }
}
