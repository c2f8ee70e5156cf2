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

#[derive(Debug, Clone, Parser)]
#[command(
    name = "tcp-info",
    version,
    about = "Polls every TCP socket's tcp_info over netlink and archives each connection's history as zstd-compressed JSONL.",
    after_help = "Flags take one or two dashes (-output=DIR, --output DIR). Every flag can also come from the environment: upper-case, with '.' and '-' as '_' (OUTPUT=/data, ANONYMIZE_IP=netblock)."
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
    #[arg(long = "exclude-local", default_value_t = true, action = ArgAction::Set,
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
        alias = "prom",
        default_value = ":9990",
        value_name = "ADDR"
    )]
    pub prometheus_listen_address: String,

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
    #[arg(long = "destroy-notices", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub destroy_notices: bool,

    /// Each snapshot line also says how many polls ran and how many
    /// milliseconds passed since the connection's previous line
    /// ("PollGap"), telling "nothing changed" from "nobody looked". M-Lab's
    /// parser ignores the key.
    #[arg(long = "archive-poll-gaps", default_value_t = false, action = ArgAction::Set,
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
    #[arg(long = "archive-short-connections", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub archive_short_connections: bool,

    /// Listener policy (TOML, or JSON when the name ends in .json) checked
    /// every inventory and exported as tcpinfo_listening_policy_*; re-read
    /// on SIGHUP and POST /-/reload.
    #[arg(long = "listen-policy", value_name = "FILE")]
    pub listen_policy: Option<PathBuf>,
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

/// What the command line asks for: the agent, or a subcommand.
#[derive(Debug, Clone)]
pub enum Invocation {
    Agent(Box<Config>),
    Check(CheckConfig),
}

impl Invocation {
    /// `check` as the first argument selects the subcommand (whose flags
    /// parse Go-style too); anything else is the agent's command line.
    pub fn try_parse_go_args<I, S>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        if args.get(1).map(String::as_str) == Some("check") {
            let program = format!("{} check", args[0]);
            let rest = std::iter::once(program).chain(args[2..].iter().cloned());
            return goflag::try_parse_with_env(rest).map(Invocation::Check);
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
        goflag::try_parse_with_env(args)
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
}
