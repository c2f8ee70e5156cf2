//! The agent's flags: the Go tool's names, parsed the way Go's `flag` package
//! does (`-name value`, `--name value`, `-name=value`, bare `-bool`), with
//! each flag also read from the environment (`OUTPUT`, `ANONYMIZE_IP`, …) as
//! M-Lab's `flagx.ArgsFromEnv` does.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser};

use crate::address::Cidr;
pub use crate::exclusion::Anonymization;
use crate::exposure::remote::DEFAULT_MAX_SERIES;
pub use crate::log::{Format, Level};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tcp-info",
    version,
    about = "Polls every TCP socket's tcp_info over netlink and archives each connection's history as zstd-compressed JSONL.",
    after_help = "Flags take one or two dashes (-output=DIR, --output DIR); given twice, the last value counts (list flags collect every value). Every flag can also come from the environment: upper-case, with '.' and '-' as '_' (OUTPUT=/data, ANONYMIZE_IP=netblock).\n\nOther commands:\n  tcp-info check -policy FILE   check this host's listeners against a listener policy once (tcp-info check -help)\n  tcp-info ready                exit 0 when the agent on -prometheusx.listen-address answers /-/ready (a container health check)\n  tcp-info help                 this text"
)]
pub struct Config {
    /// Directory under which the YYYY/MM/DD/<UUID>.<seq>.jsonl.zst tree is written.
    #[arg(long = "output", default_value = "data", value_name = "DIR")]
    pub output: PathBuf,

    /// How many polling cycles to run; 0 means until SIGTERM/SIGINT.
    #[arg(long = "reps", default_value_t = 0, value_name = "N")]
    pub reps: u64,

    /// Time between the starts of two polls (Go duration: 10ms, 1s).
    #[arg(long = "poll-interval", default_value = "10ms", value_parser = POLL_INTERVAL.parser(), value_name = "DURATION")]
    pub poll_interval: Duration,

    /// How a poll finds what changed: `dump` asks the kernel for every
    /// socket; `bpf` has a BPF iterator report the sockets that changed and
    /// fetches only those, with a complete dump every -poll.full-interval
    /// (falls back to `dump`, logged, where BPF cannot be loaded).
    #[arg(
        long = "poll.mode",
        value_enum,
        default_value = "dump",
        value_name = "MODE"
    )]
    pub poll_mode: PollMode,

    /// With -poll.mode=bpf: time between complete dumps, the longest a
    /// change the BPF signature cannot see (or a close whose notice was
    /// lost) waits to be archived.
    #[arg(long = "poll.full-interval", default_value = "1s", value_parser = FULL_INTERVAL.parser(), value_name = "DURATION")]
    pub full_interval: Duration,

    /// Longest time a snapshot waits in memory before it is compressed and
    /// appended to its file.
    #[arg(long = "flush-interval", default_value = "1s", value_parser = FLUSH_INTERVAL.parser(), value_name = "DURATION")]
    pub flush_interval: Duration,

    /// Age at which a connection's file is closed and the next segment
    /// (<UUID>.<seq+1>) begins.
    #[arg(long = "rotation-interval", default_value = "10m", value_parser = ROTATION_INTERVAL.parser(), value_name = "DURATION")]
    pub rotation_interval: Duration,

    /// Leave out connections with a loopback, link-local, multicast or
    /// unspecified address at either end (-exclude-local=false keeps them).
    #[arg(long = "exclude-local", default_value_t = true, action = ArgAction::Set, value_parser = goflag::go_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub exclude_local: bool,

    /// Leave out connections from this local port (repeatable, or comma-separated).
    #[arg(long = "exclude-srcport", value_delimiter = ',', value_name = "PORT")]
    pub exclude_srcport: Vec<u16>,

    /// Leave out connections to this remote address (repeatable, or comma-separated).
    #[arg(long = "exclude-dstip", value_delimiter = ',', value_name = "IP")]
    pub exclude_dstip: Vec<IpAddr>,

    /// Anonymize remote addresses in archives and events.
    #[arg(
        long = "anonymize.ip",
        value_enum,
        default_value = "none",
        value_name = "METHOD"
    )]
    pub anonymize_ip: Anonymization,

    /// File whose content is the UUID prefix; default <hostname>_<boot time>_unsafe.
    #[arg(long = "uuid-prefix-file", value_name = "FILE")]
    pub uuid_prefix_file: Option<PathBuf>,

    /// Unix socket on which connection open/close events are served.
    #[arg(long = "tcpinfo.eventsocket", value_name = "PATH")]
    pub eventsocket: Option<PathBuf>,

    /// Permission bits of the event socket, in octal (0660: the owner and
    /// -tcpinfo.eventsocket.group may connect); default 0777 less the umask.
    #[arg(long = "tcpinfo.eventsocket.mode", value_parser = parse_socket_mode, value_name = "OCTAL")]
    pub eventsocket_mode: Option<u32>,

    /// Group (name or gid) given the event socket, so that a sidecar
    /// running as a member can connect (with a mode such as 0660).
    #[arg(long = "tcpinfo.eventsocket.group", value_parser = parse_group, value_name = "GROUP")]
    pub eventsocket_group: Option<u32>,

    /// Address of the Prometheus /metrics server (a bare :port means all addresses).
    #[arg(
        long = "prometheusx.listen-address",
        visible_alias = "prom",
        default_value = ":9990",
        value_name = "ADDR"
    )]
    pub prometheus_listen_address: String,

    /// TLS and basic auth for the metrics server: a file in the format of
    /// prometheus/exporter-toolkit (tls_server_config, basic_auth_users).
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Interval of the summary log line (records, new, changed, closed, errors, polls).
    #[arg(long = "stats-interval", default_value = "1m", value_parser = STATS_INTERVAL.parser(), value_name = "DURATION")]
    pub stats_interval: Duration,

    /// Export per-peer connection states (tcpinfo_remote_connections) for
    /// peers inside these ranges (repeatable, or comma-separated).
    #[arg(long = "remote-states", value_delimiter = ',', value_name = "CIDR")]
    pub remote_states: Vec<Cidr>,

    /// Most tcpinfo_remote_connections series exported; the busiest peers
    /// are kept.
    #[arg(long = "remote-states.max-series", default_value_t = DEFAULT_MAX_SERIES as u32,
          value_parser = clap::value_parser!(u32).range(1..), value_name = "N")]
    pub remote_states_max_series: u32,

    /// Most bytes of archive lines held in memory, all connections together,
    /// while their files cannot be written (a full disk, no descriptors);
    /// past it the oldest are dropped and counted. The default, 32 MiB,
    /// keeps the worst case at 10,000 connections (49 MB measured in
    /// BENCHMARKS.md, plus this) under the 100 MB target, and is several
    /// times what 10,000 connections normally hold between two flushes.
    #[arg(long = "max-pending-bytes", default_value_t = 32 << 20,
          value_parser = clap::value_parser!(u64).range(1..), value_name = "BYTES")]
    pub max_pending_bytes: u64,

    /// Writer threads that format, compress and write archives.
    #[arg(long = "writers", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64), value_name = "N")]
    pub writers: u16,

    /// Close connections on the kernel's destroy notices, each with its
    /// final tcp_info as its last snapshot (-destroy-notices=false: only
    /// when they vanish from a dump, as M-Lab's tool does).
    #[arg(long = "destroy-notices", default_value_t = true, action = ArgAction::Set, value_parser = goflag::go_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub destroy_notices: bool,

    /// Each snapshot line also says how many polls ran and how many
    /// milliseconds passed since the connection's previous line
    /// ("PollGap"), telling "nothing changed" from "nobody looked". M-Lab's
    /// parser ignores the key.
    #[arg(long = "archive-poll-gaps", default_value_t = false, action = ArgAction::Set, value_parser = goflag::go_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub archive_poll_gaps: bool,

    /// Receive buffer for destroy notices, in bytes (about 1 KiB per
    /// notice): a burst of closes between two polls larger than this loses
    /// notices, and those connections close on absence instead.
    #[arg(long = "destroy-notices.buffer", default_value_t = 32 << 20,
          value_parser = clap::value_parser!(u32).range(4096..=1 << 30), value_name = "BYTES")]
    pub destroy_notices_buffer: u32,

    /// With destroy notices: how long a connection may be missing from
    /// dumps before it is closed without its notice (a dump can miss a
    /// live socket; the kernel can drop notices).
    #[arg(long = "close-absent-after", default_value = "1s", value_parser = CLOSE_ABSENT_AFTER.parser(), value_name = "DURATION")]
    pub close_absent_after: Duration,

    /// With destroy notices: archive the connections that opened and closed
    /// between two polls too (one file each: on a busy web server, a flood
    /// of small files). Counted in tcpinfo_short_connections_total either way.
    #[arg(long = "archive-short-connections", default_value_t = false, action = ArgAction::Set, value_parser = goflag::go_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub archive_short_connections: bool,

    /// Listener policy (TOML, or JSON when the name ends in .json) checked
    /// every inventory and exported as tcpinfo_listening_policy_*; re-read
    /// on SIGHUP and POST /-/reload.
    #[arg(long = "listen-policy", value_name = "FILE")]
    pub listen_policy: Option<PathBuf>,

    /// Least severe messages logged: debug, info, warn or error.
    #[arg(
        long = "log.level",
        value_enum,
        default_value = "info",
        value_name = "LEVEL"
    )]
    pub log_level: Level,

    /// Log line format: plain (timestamp and message), logfmt or json.
    #[arg(
        long = "log.format",
        value_enum,
        default_value = "plain",
        value_name = "FORMAT"
    )]
    pub log_format: Format,

    /// Go's debug logging switch (m-lab/go logx): the same as
    /// -log.level=debug.
    #[arg(long = "logx.debug", default_value_t = false, action = ArgAction::Set, value_parser = goflag::go_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub logx_debug: bool,

    /// Accepted for the Go tool's command lines: there it writes a Go
    /// runtime execution trace, which a Rust program has not; here it only
    /// logs that no trace is written.
    #[arg(long = "trace", default_value_t = false, action = ArgAction::Set, value_parser = goflag::go_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub trace: bool,

    /// Every flag's effective value (command line, environment or default),
    /// logged once at start.
    #[arg(skip)]
    pub effective_flags: goflag::FlagValues,
}

/// `tcp-info check --policy FILE`: checks this host's listeners against a
/// policy once and prints a report.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tcp-info check",
    about = "Checks this network namespace's listeners against a listener policy once, prints a report, and exits 0 (pass), 1 (fail) or 2 (error)."
)]
pub struct CheckConfig {
    /// Listener policy (TOML, or JSON when the name ends in .json).
    #[arg(long = "policy", env = "LISTEN_POLICY", value_name = "FILE")]
    pub policy: PathBuf,
}

/// `tcp-info ready`: exits 0 when the agent on this host answers
/// `/-/ready`, for container health checks (the image has no curl).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "tcp-info ready",
    about = "Asks the agent serving metrics on -prometheusx.listen-address (the agent's flag and variable, so a health check sees what the agent was given through the environment) whether it is ready; exits 0 when /-/ready answers 200, 1 otherwise."
)]
pub struct ReadyConfig {
    /// The agent's metrics address (`:port` and wildcards mean this host's loopback).
    #[arg(
        long = "prometheusx.listen-address",
        alias = "prom",
        default_value = ":9990",
        value_name = "ADDR"
    )]
    pub prometheus_listen_address: String,

    /// Longest wait to connect, send and read the answer.
    #[arg(long = "timeout", default_value = "2s", value_parser = PROBE_TIMEOUT.parser(), value_name = "DURATION")]
    pub timeout: Duration,
}

/// What the command line asks for: the agent, or a subcommand.
#[derive(Debug, Clone)]
pub enum Invocation {
    Agent(Box<Config>),
    Check(CheckConfig),
    Ready(ReadyConfig),
}

impl Invocation {
    /// `check` as the first argument selects the subcommand (whose flags
    /// parse Go-style too); anything else is the agent's command line.
    pub fn try_parse_go_args<I, S>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut args: Vec<String> = args.into_iter().map(Into::into).collect();
        // `tcp-info help [check]`: the help Go prints for -help (exit 0).
        if args.get(1).map(String::as_str) == Some("help") {
            args.truncate(3);
            args.remove(1);
            args.push("-help".into());
        }
        if args.get(1).map(String::as_str) == Some("check") {
            let program = format!("{} check", args[0]);
            let rest = std::iter::once(program).chain(args[2..].iter().cloned());
            return goflag::try_parse_with_env(rest).map(Invocation::Check);
        }
        if args.get(1).map(String::as_str) == Some("ready") {
            let program = format!("{} ready", args[0]);
            let rest = std::iter::once(program).chain(args[2..].iter().cloned());
            return goflag::try_parse_with_env(rest).map(Invocation::Ready);
        }
        Config::try_parse_go_args(args).map(|c| Invocation::Agent(Box::new(c)))
    }
}

impl Config {
    /// Parses the command line (program name first) Go-style, falling back
    /// to the environment for flags not given.
    pub fn try_parse_go_args<I, S>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::try_parse_go_args_env(args, |name| std::env::var(name).ok())
    }

    /// [`Config::try_parse_go_args`] with the environment looked up through
    /// `env`.
    pub fn try_parse_go_args_env<I, S>(
        args: I,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let (mut config, values): (Config, _) = goflag::try_parse_with_env_values(args, env)?;
        config.effective_flags = values;
        Ok(config)
    }

    /// The log level in force: `-logx.debug` (Go's switch) means debug.
    pub fn effective_log_level(&self) -> Level {
        if self.logx_debug {
            Level::Debug
        } else {
            self.log_level
        }
    }

    /// The effective flags as one command line (`-output=data -reps=0 …`),
    /// for the start-up log line.
    pub fn effective_command_line(&self) -> String {
        self.effective_flags
            .iter()
            .map(|(name, value)| format!("-{name}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Permission bits in octal (`660`, `0660`), at most `0777`.
fn parse_socket_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|&mode| mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not an octal mode from 0 to 0777"))
}

/// A group name, or a numeric gid, as the gid.
fn parse_group(text: &str) -> Result<u32, String> {
    if let Ok(gid) = text.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(text) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("no group named {text:?}")),
        Err(e) => Err(format!("looking up group {text:?}: {e}")),
    }
}

/// The durations a flag accepts: anything outside is refused at start-up,
/// so that no interval can overflow the time arithmetic it feeds, spin a
/// core, or turn every snapshot into a file of its own.
#[derive(Debug, Clone, Copy)]
pub struct DurationRange {
    pub min: Duration,
    pub max: Duration,
    /// The bounds as a Go duration, for messages and the documentation.
    pub text: (&'static str, &'static str),
}

/// `-poll-interval`: a dump at least every hour, never more than 1000 a
/// second.
pub const POLL_INTERVAL: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    text: ("1ms", "1h"),
};

/// `-poll.full-interval`: at least one complete dump an hour.
pub const FULL_INTERVAL: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    text: ("1ms", "1h"),
};

/// The values of `-poll.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PollMode {
    /// Every poll dumps every socket (sock_diag).
    Dump,
    /// A BPF iterator reports the changed sockets; complete dumps every
    /// -poll.full-interval.
    Bpf,
}

/// `-flush-interval`: snapshots wait in memory at most an hour.
pub const FLUSH_INTERVAL: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(3600),
    text: ("1ms", "1h"),
};

/// `-rotation-interval`: a segment lasts at least a second, at most a day.
pub const ROTATION_INTERVAL: DurationRange = DurationRange {
    min: Duration::from_secs(1),
    max: Duration::from_secs(24 * 3600),
    text: ("1s", "24h"),
};

/// `-stats-interval`: tests log every few hundred milliseconds.
pub const STATS_INTERVAL: DurationRange = DurationRange {
    min: Duration::from_millis(100),
    max: Duration::from_secs(24 * 3600),
    text: ("100ms", "24h"),
};

/// `-close-absent-after`: a missed socket comes back in the next dump or
/// two; a minute covers a stalled agent, and no more is ever needed.
pub const CLOSE_ABSENT_AFTER: DurationRange = DurationRange {
    min: Duration::ZERO,
    max: Duration::from_secs(60),
    text: ("0s", "1m"),
};

/// `tcp-info ready -timeout`: a health check gives up within a minute.
pub const PROBE_TIMEOUT: DurationRange = DurationRange {
    min: Duration::from_millis(1),
    max: Duration::from_secs(60),
    text: ("1ms", "1m"),
};

impl DurationRange {
    /// Parses a Go duration within the range; the error says the range.
    pub fn parse(&self, text: &str) -> Result<Duration, String> {
        let out_of_range = || {
            format!(
                "duration {text:?} is out of range ({} to {})",
                self.text.0, self.text.1
            )
        };
        match goflag::parse_go_duration(text) {
            Ok(d) if (self.min..=self.max).contains(&d) => Ok(d),
            Ok(_) | Err(goflag::DurationError::TooLong(_)) => Err(out_of_range()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn parser(self) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
        move |text| self.parse(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        let mut v = vec!["tcp-info"];
        v.extend_from_slice(args);
        Config::try_parse_go_args(v)
    }

    #[test]
    fn go_single_dash_and_equals_forms_parse_alike() {
        let a = parse(&[
            "-output=/tmp/x",
            "-reps",
            "3",
            "-exclude-srcport=22",
            "-exclude-srcport",
            "80",
        ])
        .unwrap();
        let b = parse(&[
            "--output",
            "/tmp/x",
            "--reps=3",
            "--exclude-srcport",
            "22,80",
        ])
        .unwrap();
        assert_eq!(a.output, b.output);
        assert_eq!(a.reps, 3);
        assert_eq!(b.reps, 3);
        assert_eq!(a.exclude_srcport, vec![22, 80]);
        assert_eq!(b.exclude_srcport, vec![22, 80]);
    }

    #[test]
    fn every_flag_reads_its_environment_variable_as_flagx_names_it() {
        let env = |name: &str| {
            let value = match name {
                "OUTPUT" => "/env/out",
                "POLL_INTERVAL" => "20ms",
                "EXCLUDE_LOCAL" => "false",
                "EXCLUDE_SRCPORT" => "22,9990",
                "ANONYMIZE_IP" => "netblock",
                "TCPINFO_EVENTSOCKET" => "/env/ev.sock",
                "PROMETHEUSX_LISTEN_ADDRESS" => "127.0.0.1:9991",
                "REMOTE_STATES_MAX_SERIES" => "7",
                "LISTEN_POLICY" => "/env/p.toml",
                _ => return None,
            };
            Some(value.to_string())
        };
        let c: Config = goflag::try_parse_with_env_from(["tcp-info"], env).unwrap();
        assert_eq!(c.output.to_str(), Some("/env/out"));
        assert_eq!(c.poll_interval, Duration::from_millis(20));
        assert!(!c.exclude_local);
        assert_eq!(c.exclude_srcport, vec![22, 9990]);
        assert_eq!(c.anonymize_ip, Anonymization::Netblock);
        assert_eq!(c.eventsocket.unwrap().to_str(), Some("/env/ev.sock"));
        assert_eq!(c.prometheus_listen_address, "127.0.0.1:9991");
        assert_eq!(c.remote_states_max_series, 7);
        assert_eq!(c.listen_policy.unwrap().to_str(), Some("/env/p.toml"));
        let check: CheckConfig = goflag::try_parse_with_env_from(["check"], env).unwrap();
        assert_eq!(check.policy.to_str(), Some("/env/p.toml"));
        // A flag on the command line wins over its variable.
        let c: Config =
            goflag::try_parse_with_env_from(["tcp-info", "-output=/flag/out"], env).unwrap();
        assert_eq!(c.output.to_str(), Some("/flag/out"));
    }

    #[test]
    fn bool_flags_follow_go() {
        assert!(parse(&[]).unwrap().exclude_local);
        assert!(parse(&["-exclude-local"]).unwrap().exclude_local);
        assert!(!parse(&["-exclude-local=false"]).unwrap().exclude_local);
        // Go's flag package never takes a separate value for a bool flag.
        assert!(parse(&["-exclude-local", "false"]).is_err());
    }

    #[test]
    fn go_tool_flag_names_are_accepted() {
        let c = parse(&[
            "-anonymize.ip=netblock",
            "-tcpinfo.eventsocket=/tmp/ev.sock",
            "-prometheusx.listen-address=127.0.0.1:9991",
            "-uuid-prefix-file=/tmp/prefix",
            "-exclude-dstip=198.51.100.7",
        ])
        .unwrap();
        assert_eq!(c.anonymize_ip, Anonymization::Netblock);
        assert_eq!(c.eventsocket.unwrap().to_str(), Some("/tmp/ev.sock"));
        assert_eq!(c.prometheus_listen_address, "127.0.0.1:9991");
        assert_eq!(
            c.exclude_dstip,
            vec!["198.51.100.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            parse(&["-prom=:9000"]).unwrap().prometheus_listen_address,
            ":9000"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        for bad in [
            &["-reps=many"][..],
            &["-anonymize.ip=everything"],
            &["-poll-interval=0"],
            &["-poll-interval=fast"],
            &["-exclude-dstip=300.1.1.1"],
            &["-no-such-flag"],
            &["stray"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn event_socket_mode_is_octal_and_group_a_name_or_gid() {
        let c = parse(&[
            "-tcpinfo.eventsocket=/run/ev.sock",
            "-tcpinfo.eventsocket.mode=0660",
            "-tcpinfo.eventsocket.group=root",
        ])
        .unwrap();
        assert_eq!(c.eventsocket.unwrap().to_str(), Some("/run/ev.sock"));
        assert_eq!(c.eventsocket_mode, Some(0o660));
        assert_eq!(c.eventsocket_group, Some(0));
        let c = parse(&[
            "-tcpinfo.eventsocket.mode",
            "600",
            "-tcpinfo.eventsocket.group=65534",
        ])
        .unwrap();
        assert_eq!(
            (c.eventsocket_mode, c.eventsocket_group),
            (Some(0o600), Some(65534))
        );
        let c = parse(&[]).unwrap();
        assert_eq!((c.eventsocket_mode, c.eventsocket_group), (None, None));
        for (bad, why) in [
            ("-tcpinfo.eventsocket.mode=0668", "not an octal mode"),
            ("-tcpinfo.eventsocket.mode=1777", "not an octal mode"),
            ("-tcpinfo.eventsocket.mode=rw", "not an octal mode"),
            (
                "-tcpinfo.eventsocket.group=no-such-group-here",
                "no group named",
            ),
        ] {
            let line = goflag::one_line(&parse(&[bad]).unwrap_err());
            assert!(line.contains(why), "{bad}: {line}");
        }
    }

    #[test]
    fn durations_outside_their_flags_range_are_one_line_errors() {
        for (bad, range) in [
            ("-flush-interval=3000000000000000h", "(1ms to 1h)"),
            ("-flush-interval=0", "(1ms to 1h)"),
            ("-flush-interval=61m", "(1ms to 1h)"),
            ("-poll-interval=1ns", "(1ms to 1h)"),
            ("-poll-interval=999us", "(1ms to 1h)"),
            ("-poll-interval=2562048000000000h", "(1ms to 1h)"),
            ("-stats-interval=2562048000000000h", "(100ms to 24h)"),
            ("-stats-interval=99ms", "(100ms to 24h)"),
            ("-rotation-interval=2562047788016h", "(1s to 24h)"),
            ("-rotation-interval=999ms", "(1s to 24h)"),
            ("-rotation-interval=24h1ns", "(1s to 24h)"),
        ] {
            let e = parse(&[bad]).unwrap_err();
            let line = goflag::one_line(&e);
            let (flag, value) = bad.split_once('=').unwrap();
            assert!(
                line.contains(&format!("-{flag}"))
                    && line.contains(&format!("duration {value:?} is out of range {range}")),
                "{bad}: {line}"
            );
            assert!(!line.contains('\n'), "{line:?}");
        }
        // The bounds themselves are accepted.
        let flags = [
            ("poll-interval", POLL_INTERVAL),
            ("flush-interval", FLUSH_INTERVAL),
            ("rotation-interval", ROTATION_INTERVAL),
            ("stats-interval", STATS_INTERVAL),
        ];
        for (flag, range) in flags {
            for (text, bound) in [(range.text.0, range.min), (range.text.1, range.max)] {
                let c = parse(&[&format!("-{flag}={text}")]).unwrap();
                let got = match flag {
                    "poll-interval" => c.poll_interval,
                    "flush-interval" => c.flush_interval,
                    "rotation-interval" => c.rotation_interval,
                    _ => c.stats_interval,
                };
                assert_eq!(got, bound, "-{flag}={text}");
            }
        }
        // Not a duration at all: the parser's own message.
        let line = goflag::one_line(&parse(&["-poll-interval=fast"]).unwrap_err());
        assert!(line.contains("invalid duration \"fast\""), "{line}");
    }

    #[test]
    fn remote_states_ranges_repeat_and_split_on_commas_and_are_off_by_default() {
        let off = parse(&[]).unwrap();
        assert!(off.remote_states.is_empty());
        assert_eq!(off.remote_states_max_series, 256);
        let c = parse(&[
            "-remote-states=198.51.100.0/24,2001:db8::/32",
            "-remote-states",
            "203.0.113.7",
            "-remote-states.max-series",
            "10",
        ])
        .unwrap();
        let ranges: Vec<String> = c.remote_states.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            ranges,
            ["198.51.100.0/24", "2001:db8::/32", "203.0.113.7/32"]
        );
        assert_eq!(c.remote_states_max_series, 10);
        for bad in [
            &["-remote-states=198.51.100.0/33"][..],
            &["-remote-states=example.com/24"],
            &["-remote-states.max-series=0"],
            &["-remote-states.max-series=many"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn check_routes_to_the_subcommand_and_the_agent_keeps_its_flags() {
        let check = |args: &[&str]| {
            let mut v = vec!["tcp-info", "check"];
            v.extend_from_slice(args);
            Invocation::try_parse_go_args(v)
        };
        for form in [
            &["-policy", "/p.toml"][..],
            &["--policy=/p.toml"],
            &["-policy=/p.toml"],
        ] {
            match check(form).unwrap() {
                Invocation::Check(c) => assert_eq!(c.policy.to_str(), Some("/p.toml")),
                other => panic!("{form:?}: {other:?}"),
            }
        }
        assert!(check(&["-policy"]).is_err());
        assert!(check(&["-policy=/p.toml", "-reps=1"]).is_err());
        match Invocation::try_parse_go_args(["tcp-info", "-reps", "2", "-listen-policy=/p.toml"])
            .unwrap()
        {
            Invocation::Agent(c) => {
                assert_eq!(c.reps, 2);
                assert_eq!(c.listen_policy.unwrap().to_str(), Some("/p.toml"));
            }
            other => panic!("{other:?}"),
        }
        // "check" anywhere else is a stray argument, as before.
        assert!(Invocation::try_parse_go_args(["tcp-info", "-reps=1", "check"]).is_err());
    }

    #[test]
    fn ready_routes_to_the_probe_with_the_agents_address_flag() {
        let ready = |args: &[&str]| {
            let mut v = vec!["tcp-info", "ready"];
            v.extend_from_slice(args);
            match Invocation::try_parse_go_args(v) {
                Ok(Invocation::Ready(c)) => Ok(c),
                Ok(other) => panic!("{args:?}: {other:?}"),
                Err(e) => Err(e),
            }
        };
        let c = ready(&[
            "-prometheusx.listen-address=127.0.0.1:9991",
            "-timeout",
            "5s",
        ])
        .unwrap();
        assert_eq!(c.prometheus_listen_address, "127.0.0.1:9991");
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(
            ready(&["-prom=:9000"]).unwrap().prometheus_listen_address,
            ":9000"
        );
        assert!(ready(&["-timeout=2h"]).is_err());
        assert!(ready(&["-output=/x"]).is_err());
    }

    /// Every flag `tcp-info -help` lists for M-Lab's Go tool at d72b41f:
    /// its `main.go` (`-output`, `-reps`, `-trace`, `-exclude-srcport`,
    /// `-exclude-dstip`, `-tcpinfo.eventsocket`) and the packages that
    /// register flags when imported (`anonymize`: `-anonymize.ip`; `uuid`:
    /// `-uuid-prefix-file`; `prometheusx`: `-prometheusx.listen-address`;
    /// `logx`: `-logx.debug`). Each as (name, a value, what Go makes of it).
    type Check = fn(&Config) -> bool;
    const GO_VALUE_FLAGS: &[(&str, &str, Check)] = &[
        ("output", "/var/spool/tcpinfo", |c| {
            c.output.to_str() == Some("/var/spool/tcpinfo")
        }),
        ("reps", "7", |c| c.reps == 7),
        ("exclude-srcport", "9990", |c| c.exclude_srcport == [9990]),
        ("exclude-dstip", "198.51.100.9", |c| {
            c.exclude_dstip == ["198.51.100.9".parse::<IpAddr>().unwrap()]
        }),
        ("anonymize.ip", "netblock", |c| {
            c.anonymize_ip == Anonymization::Netblock
        }),
        ("uuid-prefix-file", "/var/local/uuid/prefix", |c| {
            c.uuid_prefix_file.as_deref().and_then(|p| p.to_str()) == Some("/var/local/uuid/prefix")
        }),
        ("tcpinfo.eventsocket", "/local/tcpinfo.sock", |c| {
            c.eventsocket.as_deref().and_then(|p| p.to_str()) == Some("/local/tcpinfo.sock")
        }),
        ("prometheusx.listen-address", ":9991", |c| {
            c.prometheus_listen_address == ":9991"
        }),
    ];
    const GO_BOOL_FLAGS: &[(&str, Check)] = &[
        ("trace", |c| c.trace),
        ("logx.debug", |c| {
            c.logx_debug && c.effective_log_level() == Level::Debug
        }),
    ];

    #[test]
    fn every_flag_of_the_go_tool_parses_in_every_go_spelling_with_gos_meaning() {
        for &(name, value, holds) in GO_VALUE_FLAGS {
            let eq = format!("-{name}={value}");
            let dd_eq = format!("--{name}={value}");
            let (single, double) = (format!("-{name}"), format!("--{name}"));
            for args in [
                vec![single.as_str(), value],
                vec![eq.as_str()],
                vec![dd_eq.as_str()],
                vec![double.as_str(), value],
            ] {
                let c = parse(&args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
                assert!(holds(&c), "{args:?}: {c:?}");
            }
            // Unset: not what the flag asks for (the check is not vacuous).
            assert!(!holds(&parse(&[]).unwrap()), "-{name} default");
        }
        for &(name, holds) in GO_BOOL_FLAGS {
            for on in [
                format!("-{name}"),
                format!("--{name}"),
                format!("-{name}=true"),
                format!("--{name}=1"),
                format!("-{name}=T"),
            ] {
                let c = parse(&[&on]).unwrap_or_else(|e| panic!("{on}: {e}"));
                assert!(holds(&c), "{on}");
            }
            for off in [
                format!("-{name}=false"),
                format!("--{name}=0"),
                format!("-{name}=F"),
            ] {
                let c = parse(&[&off]).unwrap_or_else(|e| panic!("{off}: {e}"));
                assert!(!holds(&c), "{off}");
            }
            assert!(!holds(&parse(&[]).unwrap()), "-{name} default");
            // As in Go, a boolean never takes the next argument.
            assert!(parse(&[&format!("-{name}"), "false"]).is_err());
        }
        // Go's -h and -help print the usage and exit 0.
        for help in ["-h", "-help", "--help"] {
            let e = parse(&[help]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{help}");
        }
    }

    #[test]
    fn a_repeated_flag_takes_its_last_value_and_lists_collect_as_flagx() {
        let c = parse(&[
            "-reps=1",
            "-reps",
            "2",
            "-anonymize.ip=netblock",
            "--anonymize.ip=none",
            "-trace",
            "-trace=false",
            "-exclude-srcport=22",
            "-exclude-srcport=80",
            "-prom=:1",
            "-prometheusx.listen-address=:2",
        ])
        .unwrap();
        assert_eq!(c.reps, 2);
        assert_eq!(c.anonymize_ip, Anonymization::None);
        assert!(!c.trace);
        assert_eq!(c.exclude_srcport, [22, 80]);
        assert_eq!(c.prometheus_listen_address, ":2");
        // flagx.ArgsFromEnv: the environment only fills flags the command
        // line left unset.
        let env = |name: &str| match name {
            "REPS" => Some("9".to_string()),
            "OUTPUT" => Some("/env".to_string()),
            _ => None,
        };
        let c = Config::try_parse_go_args_env(["tcp-info", "-reps=1", "-reps=3"], env).unwrap();
        assert_eq!((c.reps, c.output.to_str()), (3, Some("/env")));
    }

    #[test]
    fn help_lists_check_and_prom_and_tcp_info_help_is_help() {
        let help = Config::command().render_long_help().to_string();
        assert!(help.contains("tcp-info check -policy FILE"), "{help}");
        assert!(help.contains("[alias: --prom]"), "{help}");
        assert!(
            help.contains("--logx.debug") && help.contains("--trace"),
            "{help}"
        );
        for args in [&["tcp-info", "help"][..], &["tcp-info", "help", "check"]] {
            let e = Invocation::try_parse_go_args(args.iter().copied()).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{args:?}");
        }
        let check = Invocation::try_parse_go_args(["tcp-info", "help", "check"]).unwrap_err();
        assert!(check.to_string().contains("-policy"), "{check}");
    }

    #[test]
    fn log_flags_and_the_effective_command_line() {
        let c = parse(&["-log.level=warn", "-log.format", "json", "-reps=4"]).unwrap();
        assert_eq!(c.effective_log_level(), Level::Warn);
        assert_eq!(c.log_format, Format::Json);
        let d = parse(&[]).unwrap();
        assert_eq!(
            (d.effective_log_level(), d.log_format),
            (Level::Info, Format::Plain)
        );
        assert!(parse(&["-log.level=loud"]).is_err());
        assert!(parse(&["-log.format=xml"]).is_err());
        let line = c.effective_command_line();
        for part in [
            "-output=data",
            "-reps=4",
            "-log.level=warn",
            "-log.format=json",
            "-poll-interval=10ms",
            "-exclude-local=true",
        ] {
            assert!(line.split(' ').any(|p| p == part), "{part} in {line}");
        }
    }
}
