//! Harness for the integration tests: runs the real `tcp-info` binary
//! against the real kernel, inside network namespaces the tests create, and
//! reads back what it archived.
//!
//! Every test gets its own namespace(s), so the agent sees exactly the
//! sockets the test made, and tests can run in parallel without seeing each
//! other's connections.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use inetdiag::tcp_info as layout;
use tcpinfo_archive::ArchivalRecord;

/// The flags every test passes: fast polling, flushing and logging; the
/// agent's own metrics listener (port 9990 in the test's namespace) is left
/// out of the archive so that tests can count exactly their own sockets.
pub const FAST: [&str; 4] = [
    "-poll-interval=10ms",
    "-flush-interval=200ms",
    "-stats-interval=1s",
    "-exclude-srcport=9990",
];

/// UUID prefix written to the prefix file of every agent a test starts.
pub const UUID_PREFIX: &str = "itest_1700000000";

pub fn agent_binary() -> &'static str {
    env!("CARGO_BIN_EXE_tcp-info")
}

/// Polls `condition` every 10 ms until it holds; panics naming `what` when
/// `timeout` passes first.
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// `prefix` + pid + a per-process counter: unique across parallel tests
/// and concurrent test processes.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `cmd`, panicking with its stderr if it fails.
pub fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace, deleted on drop (processes still inside keep it
/// alive until they exit; [`Agent`] kills its process on drop).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with its loopback interface up.
    pub fn new() -> Self {
        let name = unique_name("tcpinfo-it-");
        run(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        run(Command::new("ip").args(["-n", &ns.name, "link", "set", "lo", "up"]));
        ns
    }

    /// `program` to be run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `f` on a fresh thread that joined this namespace: sockets it
    /// creates live in the namespace, and stay there whichever thread later
    /// uses them. (`setns(CLONE_NEWNET)` changes only the calling thread.)
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: setns on a valid namespace fd; affects this
                // short-lived thread only.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("thread in the namespace panicked")
        })
    }

    /// `ss -tineH` inside the namespace: cookie by (local, peer) address,
    /// from its `sk:<hex>` field.
    pub fn ss_cookies(&self) -> HashMap<(SocketAddr, SocketAddr), u64> {
        let out = self
            .command("ss")
            .args(["-tineH", "state", "established"])
            .output()
            .expect("ss");
        assert!(out.status.success(), "ss failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut cookies = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with(char::is_whitespace)) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 {
                continue;
            }
            let (Ok(local), Ok(peer)) = (fields[2].parse(), fields[3].parse()) else {
                continue;
            };
            if let Some(sk) = fields.iter().find_map(|f| f.strip_prefix("sk:")) {
                let cookie = u64::from_str_radix(sk, 16).expect("sk: is hex");
                cookies.insert((local, peer), cookie);
            }
        }
        cookies
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Two namespaces joined by a veth pair: `198.51.100.1/24` on the server
/// side, `198.51.100.2/24` on the client side (RFC 5737 documentation
/// addresses; nothing leaves the two namespaces).
pub struct NetnsPair {
    pub server: Netns,
    pub client: Netns,
    server_dev: String,
    client_dev: String,
}

pub const SERVER_IP: &str = "198.51.100.1";
pub const CLIENT_IP: &str = "198.51.100.2";

impl NetnsPair {
    pub fn new() -> Self {
        let (server, client) = (Netns::new(), Netns::new());
        // Interface names are limited to 15 bytes.
        static VETH: AtomicU32 = AtomicU32::new(0);
        let n = VETH.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id() % 100_000;
        let (vs, vc) = (format!("ti{id}s{n}"), format!("ti{id}c{n}"));
        run(Command::new("ip").args([
            "link",
            "add",
            &vs,
            "netns",
            &server.name,
            "type",
            "veth",
            "peer",
            "name",
            &vc,
            "netns",
            &client.name,
        ]));
        for (ns, dev, ip) in [(&server, &vs, SERVER_IP), (&client, &vc, CLIENT_IP)] {
            run(Command::new("ip").args([
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                dev,
            ]));
            run(Command::new("ip").args(["-n", &ns.name, "link", "set", dev, "up"]));
        }
        let pair = NetnsPair {
            server,
            client,
            server_dev: vs,
            client_dev: vc,
        };
        // The veth link needs a moment to come up (carrier, DAD-free for v4).
        wait_until(Duration::from_secs(10), "the veth pair to connect", || {
            pair.client
                .enter(|| {
                    TcpStream::connect_timeout(
                        &format!("{SERVER_IP}:9").parse().unwrap(),
                        Duration::from_millis(200),
                    )
                })
                .err()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
        });
        pair
    }

    /// Adds another address to the client's interface (to have a second
    /// remote peer).
    pub fn add_client_address(&self, ip: &str) {
        run(Command::new("ip").args([
            "-n",
            &self.client.name,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            &self.client_dev,
        ]));
    }

    /// Gives both ends an IPv6 address (`server`/64 and `client`/64, no
    /// duplicate address detection, so they are usable at once).
    pub fn add_ipv6(&self, server: &str, client: &str) {
        for (ns, dev, ip) in [
            (&self.server, &self.server_dev, server),
            (&self.client, &self.client_dev, client),
        ] {
            run(Command::new("ip").args([
                "-n",
                &ns.name,
                "-6",
                "addr",
                "add",
                &format!("{ip}/64"),
                "dev",
                dev,
                "nodad",
            ]));
        }
    }
}

/// A running agent; killed (SIGKILL) on drop if still running.
pub struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
    pub output: PathBuf,
}

impl Agent {
    /// Starts `tcp-info -output=OUTPUT -uuid-prefix-file=… ARGS`, inside
    /// `netns` when given, and waits for its start-up log line.
    pub fn start(netns: Option<&Netns>, output: &Path, args: &[&str]) -> Self {
        let prefix_file = output.with_extension("uuid-prefix");
        fs::write(&prefix_file, format!("{UUID_PREFIX}\n")).unwrap();
        let mut cmd = match netns {
            Some(ns) => ns.command(agent_binary()),
            None => Command::new(agent_binary()),
        };
        cmd.arg(format!("-output={}", output.display()))
            .arg(format!("-uuid-prefix-file={}", prefix_file.display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting the agent");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let agent = Agent {
            child,
            log,
            reader: Some(reader),
            output: output.to_path_buf(),
        };
        agent.wait_for_log(Duration::from_secs(10), "tcp-info polling every");
        agent
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Waits for a log line containing `text`; returns it.
    pub fn wait_for_log(&self, timeout: Duration, text: &str) -> String {
        let mut found = None;
        wait_until(timeout, &format!("log line {text:?}"), || {
            found = self.log().into_iter().find(|l| l.contains(text));
            found.is_some()
        });
        found.unwrap()
    }

    /// The periodic `stats:` lines seen so far, parsed.
    pub fn stats_lines(&self) -> Vec<Stats> {
        self.log()
            .iter()
            .filter(|l| !l.contains("final stats:"))
            .filter_map(|l| Stats::parse(l))
            .collect()
    }

    /// Sends `signal` and waits (bounded) for the process to exit; returns
    /// its status and the complete log.
    pub fn signal_and_wait(
        &mut self,
        signal: nix::sys::signal::Signal,
        timeout: Duration,
    ) -> (ExitStatus, Vec<String>) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .expect("signalling the agent");
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "agent did not exit within {timeout:?} of {signal}"
            );
            thread::sleep(Duration::from_millis(10));
        };
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.log())
    }

    /// SIGTERM, expecting a clean exit; returns the `final stats:` line.
    pub fn terminate(&mut self) -> Stats {
        let (status, log) =
            self.signal_and_wait(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(15));
        assert!(status.success(), "agent exited with {status}: {log:#?}");
        let last = log
            .iter()
            .find(|l| l.contains("final stats:"))
            .unwrap_or_else(|| panic!("no final stats line in {log:#?}"));
        Stats::parse(last).unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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

/// One archive file, decoded.
#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    pub uuid: String,
    pub sequence: u32,
    pub records: Vec<ArchivalRecord>,
}

impl Segment {
    /// The socket cookie in the UUID (its last `_` field, 16 hex digits).
    pub fn cookie(&self) -> u64 {
        let hex = self.uuid.rsplit('_').next().unwrap();
        assert_eq!(hex.len(), 16, "{}", self.uuid);
        u64::from_str_radix(hex, 16).unwrap()
    }

    /// The lines after the metadata line.
    pub fn snapshots(&self) -> &[ArchivalRecord] {
        self.records.get(1..).unwrap_or(&[])
    }

    /// Panics unless the first line is the metadata record for this file.
    pub fn assert_metadata_first(&self) {
        let first = self.records.first().expect("an empty archive");
        let m = first
            .metadata
            .as_ref()
            .unwrap_or_else(|| panic!("{}: first line is not metadata", self.path.display()));
        assert!(first.raw_idm.is_empty(), "{}", self.path.display());
        assert_eq!(m.uuid, self.uuid, "{}", self.path.display());
        assert_eq!(
            m.sequence,
            u64::from(self.sequence),
            "{}",
            self.path.display()
        );
        for r in self.snapshots() {
            assert!(
                r.metadata.is_none(),
                "{}: metadata after line 1",
                self.path.display()
            );
            assert_eq!(r.raw_idm.len(), 72, "{}", self.path.display());
        }
    }
}

/// Every `*.jsonl.zst` under `dir`, sorted.
pub fn archive_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".jsonl.zst") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// `(uuid, sequence)` from `<uuid>.<seq>.jsonl.zst`.
pub fn parse_file_name(path: &Path) -> (String, u32) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let stem = name.strip_suffix(".jsonl.zst").expect("archive name");
    let (uuid, seq) = stem.rsplit_once('.').expect("<uuid>.<seq>");
    assert_eq!(seq.len(), 5, "{name}");
    (uuid.to_string(), seq.parse().unwrap())
}

/// Splits `bytes` into JSON lines and parses each; panics on any bad line.
pub fn parse_lines(path: &Path, text: &[u8]) -> Vec<ArchivalRecord> {
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "{}: does not end with a complete line",
        path.display()
    );
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
        .map(|(i, l)| {
            ArchivalRecord::from_json(l).unwrap_or_else(|e| {
                panic!(
                    "{} line {}: {e}: {}",
                    path.display(),
                    i + 1,
                    String::from_utf8_lossy(l)
                )
            })
        })
        .collect()
}

/// Decodes a whole (multi-frame) archive file and parses every line.
pub fn read_segment(path: &Path) -> Segment {
    let bytes = fs::read(path).unwrap();
    let text =
        zstd::stream::decode_all(&bytes[..]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    segment_of(path, &text)
}

/// A segment from the decompressed text of the file at `path`.
fn segment_of(path: &Path, text: &[u8]) -> Segment {
    let (uuid, sequence) = parse_file_name(path);
    Segment {
        path: path.to_path_buf(),
        uuid,
        sequence,
        records: parse_lines(path, text),
    }
}

/// Like [`read_segment`], for a file the agent may be appending to: decodes
/// the complete frames only.
pub fn read_live_segment(path: &Path) -> Segment {
    let bytes = fs::read(path).unwrap_or_default();
    let (complete, _) = frames(&bytes);
    let mut text = Vec::new();
    for frame in complete {
        text.extend(zstd::stream::decode_all(frame).unwrap());
    }
    segment_of(path, &text)
}

/// The segments (complete frames so far) of the connection with `cookie`,
/// by sequence.
pub fn live_segments_of(dir: &Path, cookie: u64) -> Vec<Segment> {
    let suffix = format!("_{cookie:016X}");
    let mut segs: Vec<Segment> = archive_files(dir)
        .iter()
        .filter(|p| parse_file_name(p).0.ends_with(&suffix))
        .map(|p| read_live_segment(p))
        .collect();
    segs.sort_by_key(|s| s.sequence);
    segs
}

/// Every archive under `dir`, decoded.
pub fn read_all(dir: &Path) -> Vec<Segment> {
    archive_files(dir).iter().map(|p| read_segment(p)).collect()
}

/// The complete zstd frames of `bytes`, and whether an incomplete frame
/// follows them.
pub fn frames(bytes: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        match zstd::zstd_safe::find_frame_compressed_size(rest) {
            Ok(n) if n <= rest.len() => {
                out.push(&rest[..n]);
                rest = &rest[n..];
            }
            _ => return (out, true),
        }
    }
    (out, false)
}

/// `zstd -t FILE` succeeds.
pub fn zstd_cli_accepts(path: &Path) -> bool {
    Command::new("zstd")
        .args(["-q", "-t"])
        .arg(path)
        .status()
        .expect("running zstd")
        .success()
}

// ---- decoding snapshots ----

/// The snapshot's `inet_diag_msg`, through the inetdiag crate's view.
pub fn idm(r: &ArchivalRecord) -> inetdiag::InetDiagMsg<'_> {
    inetdiag::InetDiagMsg::parse(&r.raw_idm).expect("RawIDM is an inet_diag_msg")
}

/// The snapshot's `INET_DIAG_INFO` payload (`struct tcp_info`).
pub fn tcp_info_of(r: &ArchivalRecord) -> &[u8] {
    r.attributes
        .get(inetdiag::INET_DIAG_INFO as usize)
        .and_then(|a| a.as_deref())
        .expect("snapshot without tcp_info")
}

pub fn info_state(r: &ArchivalRecord) -> u8 {
    layout::u8_at(tcp_info_of(r), layout::STATE).unwrap()
}
pub fn bytes_acked(r: &ArchivalRecord) -> u64 {
    layout::u64_at(tcp_info_of(r), layout::BYTES_ACKED).unwrap()
}
pub fn bytes_received(r: &ArchivalRecord) -> u64 {
    layout::u64_at(tcp_info_of(r), layout::BYTES_RECEIVED).unwrap()
}

/// TCP states (include/net/tcp_states.h).
pub mod state {
    pub const ESTABLISHED: u8 = 1;
    pub const SYN_SENT: u8 = 2;
    pub const FIN_WAIT1: u8 = 4;
    pub const FIN_WAIT2: u8 = 5;
    pub const CLOSE_WAIT: u8 = 8;
    pub const LAST_ACK: u8 = 9;
    pub const LISTEN: u8 = 10;
    pub const CLOSING: u8 = 11;
}

// ---- traffic ----

/// `SO_COOKIE`: the socket's cookie, as sock_diag reports it.
pub fn socket_cookie(s: &impl AsRawFd) -> u64 {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 with its size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_COOKIE: {}", std::io::Error::last_os_error());
    cookie
}

/// A connected pair: the client end and the accepted server end.
pub struct Connection {
    pub client: TcpStream,
    pub server: TcpStream,
}

impl Connection {
    /// Connects to `listener` at its own address and accepts.
    pub fn open(listener: &TcpListener) -> Connection {
        Self::open_to(listener, listener.local_addr().unwrap(), None)
    }

    /// Connects to `target` (where `listener` listens), from `bind` if
    /// given, and accepts. Call from the client's namespace.
    pub fn open_to(listener: &TcpListener, target: SocketAddr, bind: Option<&str>) -> Connection {
        let client = match bind {
            None => TcpStream::connect(target).unwrap(),
            Some(ip) => TcpStream::from(bound_connect(ip, target)),
        };
        let (server, _) = listener.accept().unwrap();
        Connection { client, server }
    }

    /// Sends `n` bytes client → server and reads them on the server side.
    pub fn exchange(&mut self, n: usize) {
        let data = vec![0x5a; n];
        self.client.write_all(&data).unwrap();
        let mut got = vec![0; n];
        self.server.read_exact(&mut got).unwrap();
    }
}

/// A TCP socket bound to `ip` (any port) and connected to `target`.
fn bound_connect(ip: &str, target: SocketAddr) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let SocketAddr::V4(target) = target else {
        panic!("IPv4 only")
    };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a fresh fd we own, with properly sized
    // sockaddr_in structures.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let owned = std::os::fd::OwnedFd::from_raw_fd(fd);
        let local = sockaddr(ip, 0);
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0,
            "bind {ip}: {}",
            std::io::Error::last_os_error()
        );
        let remote = sockaddr(*target.ip(), target.port());
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0,
            "connect {target}: {}",
            std::io::Error::last_os_error()
        );
        owned
    }
}

/// Keeps data flowing on some connections from a background thread:
/// every `period`, writes `chunk` bytes client → server and drains the
/// server side. Stops on [`Pump::stop`] or drop.
pub struct Pump {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<thread::JoinHandle<Vec<Connection>>>,
}

impl Pump {
    pub fn start(conns: Vec<Connection>, chunk: usize, period: Duration) -> Pump {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            for c in &conns {
                c.client.set_nonblocking(true).unwrap();
                c.server.set_nonblocking(true).unwrap();
            }
            let data = vec![0xa5u8; chunk];
            let mut sink = vec![0u8; 64 * 1024];
            while !flag.load(Ordering::Relaxed) {
                for c in &conns {
                    let _ = (&c.client).write(&data);
                    while matches!((&c.server).read(&mut sink), Ok(n) if n > 0) {}
                }
                thread::sleep(period);
            }
            for c in &conns {
                c.client.set_nonblocking(false).unwrap();
                c.server.set_nonblocking(false).unwrap();
            }
            conns
        });
        Pump {
            stop,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) -> Vec<Connection> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Fresh temporary directory for one test's archives.
pub fn output_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tcp-info-it-")
        .tempdir()
        .unwrap()
}
