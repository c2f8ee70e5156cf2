//! Harness for the metrics tests: a network namespace per test (so the
//! agent sees exactly the sockets the test made), the real `tcp-info`
//! binary running inside it, and a tiny HTTP client that talks to it from
//! inside the namespace. Everything is torn down on drop.

#![allow(dead_code)]

use super::common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The agent's metrics port inside a test namespace (nothing else listens
/// there, so any port is free).
pub const METRICS_PORT: u16 = 9990;

/// Polls `probe` every 20 ms until it returns `Some`; panics naming `what`
/// once `timeout` has passed.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A network namespace whose `lo` is up and also carries 198.51.100.1,
/// 10.77.0.1, 100.64.0.1 and fd00::1 (so every scope has an address to
/// bind, and no packet can leave the namespace). Deleted on drop.
pub struct Netns(pub common::Netns);

impl Netns {
    pub fn new() -> Self {
        let ns = common::Netns::new();
        let ip = |args: &[&str]| common::run(Command::new("ip").args(["-n", &ns.name]).args(args));
        for addr in ["198.51.100.1/32", "10.77.0.1/32", "100.64.0.1/32"] {
            ip(&["addr", "add", addr, "dev", "lo"]);
        }
        ip(&["-6", "addr", "add", "fd00::1/128", "dev", "lo", "nodad"]);
        Netns(ns)
    }

    /// Runs `f` on a thread that joined this namespace: sockets it creates
    /// live in the namespace, and may be used from any thread afterwards.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.0.enter(f)
    }

    /// `GET path` on 127.0.0.1:`port` inside the namespace: `(status, body)`.
    pub fn http_get(&self, port: u16, path: &str) -> std::io::Result<(u16, String)> {
        let path = path.to_owned();
        self.run(move || http_get(SocketAddr::from(([127, 0, 0, 1], port)), &path))
    }

    /// The agent's `/metrics`, parsed.
    pub fn scrape(&self) -> Option<Scrape> {
        match self.http_get(METRICS_PORT, "/metrics") {
            Ok((200, body)) => Some(Scrape::parse(&body)),
            _ => None,
        }
    }

    /// Starts `program` inside the namespace.
    pub fn spawn(&self, program: &str, args: &[String], log: &Path) -> Child {
        self.0
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(File::create(log).unwrap())
            .stderr(File::create(log.with_extension("err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
    }
}

/// The `/metrics` of an agent serving on 127.0.0.1:[`METRICS_PORT`] inside
/// `ns` (any namespace, e.g. one side of a [`common::NetnsPair`]), parsed.
pub fn scrape_in(ns: &common::Netns) -> Option<Scrape> {
    let addr = SocketAddr::from(([127, 0, 0, 1], METRICS_PORT));
    match ns.enter(|| http_get(addr, "/metrics")) {
        Ok((200, body)) => Some(Scrape::parse(&body)),
        _ => None,
    }
}

fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path)
}

/// One HTTP/1.1 request without a body from the calling thread's
/// namespace: status and (de-chunked) body.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One sample of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` response.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_sample)
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of metric `name`.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the sample of `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name)
            .find(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head, BTreeMap::new()),
        Some((name, rest)) => {
            let mut labels = BTreeMap::new();
            let mut rest = rest.strip_suffix('}')?;
            while let Some((key, after)) = rest.split_once("=\"") {
                let end = after.find('"')?;
                labels.insert(
                    key.trim_start_matches(',').to_owned(),
                    after[..end].to_owned(),
                );
                rest = &after[end + 1..];
            }
            (name, labels)
        }
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The real agent, running in a namespace; killed on drop.
pub struct Agent {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Agent {
    pub fn start(ns: &Netns, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec![
            format!("-output={}", dir.path().join("data").display()),
            format!("-prometheusx.listen-address=127.0.0.1:{METRICS_PORT}"),
            "-poll-interval=10ms".to_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = ns.spawn(
            env!("CARGO_BIN_EXE_tcp-info"),
            &args,
            &dir.path().join("agent.out"),
        );
        let agent = Agent { child, dir };
        wait_for(Duration::from_secs(10), "the agent to be ready", || {
            matches!(ns.http_get(METRICS_PORT, "/-/ready"), Ok((200, _))).then_some(())
        });
        agent
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the agent logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.err")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process killed on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// This test program's name as the agent reports it: the file name of
/// its executable.
pub fn program_name() -> String {
    std::env::current_exe()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
