//! The real `tcp-info` binary under test: started with flags, in a network
//! namespace or not, ready once it says it polls (and, when asked, once its
//! metrics endpoint or event socket answers); its log read line by line;
//! stopped with a signal. Killed on drop if still running; its scratch
//! directory goes with it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::OnceLock;
use std::time::Duration;

use crate::metrics::METRICS_PORT;
use crate::netns::Netns;
use crate::process::{Process, Signal};
use crate::system::run;
use crate::wait::{wait_for, wait_until};

/// The flags most tests pass: fast polling, flushing and logging; the
/// agent's own metrics listener (port 9990 in the test's namespace) is left
/// out of the archive so that tests can count exactly their own sockets.
pub const FAST: [&str; 4] = [
    "-poll-interval=10ms",
    "-flush-interval=200ms",
    "-stats-interval=1s",
    "-exclude-srcport=9990",
];

/// UUID prefix written to the prefix file of agents started with
/// [`AgentBuilder::uuid_prefix`] (as [`Agent::start`] does).
pub const UUID_PREFIX: &str = "itest_1700000000";

/// How long start-up may take, and SIGTERM to the exit.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(15);

/// The log line the agent prints once it polls.
const POLLING: &str = "tcp-info polling every";

/// The agent binary of this workspace, built for the profile these tests
/// were built with.
///
/// Cargo tells only a package's own tests where that package's binaries
/// are, and the kernel tests are a package of their own; so the harness
/// asks cargo to build the binary (a no-op when it is up to date, as after
/// `cargo build --workspace`) and takes it from the target directory the
/// test executable lives in. Building here, rather than trusting a binary
/// that happens to be there, means a test never runs a stale agent.
pub fn agent_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| workspace_binary("tcp-info", "tcp-info"))
}

/// The workspace's `csvtool`, built like [`agent_binary`].
pub fn csvtool_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| workspace_binary("csvtool", "csvtool"))
}

fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    // <target>/<profile>/deps/<test executable>
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable sits in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("<target>/<profile>");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(name) => name,
        None => panic!("no profile directory above {}", exe.display()),
    };
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    run(Command::new(cargo)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .args(["--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", target_dir));
    let binary = profile_dir.join(bin);
    assert!(binary.is_file(), "no {bin} at {}", binary.display());
    binary
}

/// How to start an agent; [`AgentBuilder::start`] starts it.
pub struct AgentBuilder<'ns> {
    netns: Option<&'ns Netns>,
    wrapper: Vec<OsString>,
    output: Option<PathBuf>,
    uuid_prefix: Option<String>,
    metrics_port: Option<u16>,
    eventsocket: Option<PathBuf>,
    args: Vec<OsString>,
}

impl<'ns> AgentBuilder<'ns> {
    /// Runs the agent inside `ns`.
    pub fn netns(mut self, ns: &'ns Netns) -> Self {
        self.netns = Some(ns);
        self
    }

    /// Runs the agent through `program ARGS` (say, `prlimit --nofile=…
    /// --`), a system tool that execs it.
    pub fn wrapped_in(mut self, program: &str, args: &[&str]) -> Self {
        self.wrapper = std::iter::once(crate::system::tool_path(program).into_os_string())
            .chain(args.iter().map(OsString::from))
            .collect();
        self
    }

    /// `-output=DIR` (default: `out` in the agent's scratch directory).
    pub fn output(mut self, dir: &Path) -> Self {
        self.output = Some(dir.to_path_buf());
        self
    }

    /// `-uuid-prefix-file` with a file holding `prefix`.
    pub fn uuid_prefix(mut self, prefix: &str) -> Self {
        self.uuid_prefix = Some(prefix.to_owned());
        self
    }

    /// `-prometheusx.listen-address=127.0.0.1:PORT`; start-up waits until
    /// `/-/ready` answers 200 there (a first complete poll).
    pub fn metrics_on(mut self, port: u16) -> Self {
        self.metrics_port = Some(port);
        self
    }

    /// `-tcpinfo.eventsocket=PATH`; start-up waits until the socket
    /// accepts a connection.
    pub fn eventsocket(mut self, path: &Path) -> Self {
        self.eventsocket = Some(path.to_path_buf());
        self
    }

    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn args<A: Into<OsString>>(mut self, args: impl IntoIterator<Item = A>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts the agent and waits until it is ready; panics with its log if
    /// it exits or does not get ready in time.
    pub fn start(self) -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("tcp-info-it-")
            .tempdir()
            .expect("a scratch directory");
        let output = self.output.unwrap_or_else(|| dir.path().join("out"));
        let mut flags: Vec<OsString> = vec![format!("-output={}", output.display()).into()];
        if let Some(prefix) = &self.uuid_prefix {
            let file = dir.path().join("uuid-prefix");
            std::fs::write(&file, format!("{prefix}\n")).unwrap();
            flags.push(format!("-uuid-prefix-file={}", file.display()).into());
        }
        if let Some(port) = self.metrics_port {
            flags.push(format!("-prometheusx.listen-address=127.0.0.1:{port}").into());
        }
        if let Some(path) = &self.eventsocket {
            flags.push(format!("-tcpinfo.eventsocket={}", path.display()).into());
        }
        flags.extend(self.args);

        let program: Vec<OsString> = self
            .wrapper
            .into_iter()
            .chain([agent_binary().as_os_str().to_owned()])
            .collect();
        let mut cmd = match self.netns {
            Some(ns) => ns.command(&program[0]),
            None => Command::new(&program[0]),
        };
        cmd.args(&program[1..]).args(&flags);
        let mut agent = Agent {
            process: Process::spawn(&mut cmd),
            output,
            _dir: dir,
        };

        agent.process.wait_for_log(START_TIMEOUT, POLLING);
        if let Some(port) = self.metrics_port {
            let ns = self.netns.expect("metrics_on() needs a namespace");
            agent.wait_running_until("the agent to be ready", || {
                matches!(ns.http_get(port, "/-/ready"), Ok((200, _)))
            });
        }
        if let Some(path) = &self.eventsocket {
            agent.wait_running_until("the event socket", || UnixStream::connect(path).is_ok());
        }
        agent
    }
}

/// A running agent; killed (SIGKILL) on drop if still running.
pub struct Agent {
    // Declared first: dropped (killed) before its directory is removed.
    process: Process,
    /// Where the agent writes its archive.
    pub output: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    /// How to start an agent.
    pub fn builder<'ns>() -> AgentBuilder<'ns> {
        AgentBuilder {
            netns: None,
            wrapper: Vec::new(),
            output: None,
            uuid_prefix: None,
            metrics_port: None,
            eventsocket: None,
            args: Vec::new(),
        }
    }

    /// An archiving agent: `tcp-info -output=OUTPUT -uuid-prefix-file=…
    /// ARGS` (prefix [`UUID_PREFIX`]), inside `netns` when given.
    pub fn start(netns: Option<&Netns>, output: &Path, args: &[&str]) -> Agent {
        let builder = Agent::builder()
            .output(output)
            .uuid_prefix(UUID_PREFIX)
            .args(args);
        match netns {
            Some(ns) => builder.netns(ns),
            None => builder,
        }
        .start()
    }

    /// An agent serving metrics on 127.0.0.1:[`METRICS_PORT`] inside `ns`,
    /// polling every 10 ms, with `extra` flags; ready once `/-/ready`
    /// answers.
    pub fn serving_metrics(ns: &Netns, extra: &[&str]) -> Agent {
        Agent::builder()
            .netns(ns)
            .metrics_on(METRICS_PORT)
            .arg("-poll-interval=10ms")
            .args(extra)
            .start()
    }

    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.process.log()
    }

    /// Every log line so far, as one text.
    pub fn log_text(&self) -> String {
        self.process.log_text()
    }

    /// Waits for a log line containing `text`; returns it.
    pub fn wait_for_log(&mut self, timeout: Duration, text: &str) -> String {
        self.process.wait_for_log(timeout, text)
    }

    /// Waits (at most [`START_TIMEOUT`]) for `condition`, failing at once
    /// with the log if the agent exits meanwhile.
    fn wait_running_until(&mut self, what: &str, mut condition: impl FnMut() -> bool) {
        wait_until(START_TIMEOUT, what, || {
            self.process.assert_running(what);
            condition()
        });
    }

    /// The periodic `stats:` lines seen so far, parsed.
    pub fn stats_lines(&self) -> Vec<Stats> {
        self.log()
            .iter()
            .filter(|l| !l.contains("final stats:"))
            .filter_map(|l| Stats::parse(l))
            .collect()
    }

    /// Waits (at most `timeout`) until the latest periodic stats line
    /// satisfies `condition`; returns that line.
    pub fn wait_for_stats(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl Fn(&Stats) -> bool,
    ) -> Stats {
        wait_for(timeout, what, || {
            self.stats_lines().pop().filter(|s| condition(s))
        })
    }

    /// Sends `signal` (say, SIGHUP to reload).
    pub fn signal(&self, signal: Signal) {
        self.process.signal(signal);
    }

    /// Sends `signal` and waits (bounded) for the agent to exit; returns
    /// its status and its complete log.
    pub fn signal_and_wait(
        &mut self,
        signal: Signal,
        timeout: Duration,
    ) -> (ExitStatus, Vec<String>) {
        self.process.signal_and_wait(signal, timeout)
    }

    /// SIGTERM, then (bounded by `timeout`) the exit status.
    pub fn stop(&mut self, timeout: Duration) -> ExitStatus {
        self.signal_and_wait(Signal::SIGTERM, timeout).0
    }

    /// SIGTERM, expecting a clean exit; returns the `final stats:` line.
    pub fn terminate(&mut self) -> Stats {
        let (status, log) = self.signal_and_wait(Signal::SIGTERM, TERMINATE_TIMEOUT);
        assert!(status.success(), "agent exited with {status}: {log:#?}");
        let last = log
            .iter()
            .find(|l| l.contains("final stats:"))
            .unwrap_or_else(|| panic!("no final stats line in {log:#?}"));
        Stats::parse(last).unwrap()
    }
}

/// The counters of a `stats:` / `final stats:` log line.
#[derive(Debug, Clone)]
pub struct Stats(pub HashMap<String, u64>);

impl Stats {
    pub fn parse(line: &str) -> Option<Stats> {
        let rest = &line[line.find("stats: ")? + "stats: ".len()..];
        let values = rest
            .split_whitespace()
            .filter_map(|kv| kv.trim_start_matches('(').split_once('='))
            .filter_map(|(k, v)| Some((k.to_string(), v.trim_end_matches(')').parse().ok()?)))
            .collect();
        Some(Stats(values))
    }

    pub fn get(&self, key: &str) -> u64 {
        *self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in {:?}", self.0))
    }
}
