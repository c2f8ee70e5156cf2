//! Network namespaces the tests create (root only): every test gets its
//! own, so the agent sees exactly the sockets the test made, and tests run
//! in parallel, in any order, without seeing each other's connections.

use std::collections::HashMap;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use crate::metrics::{self, Scrape, METRICS_PORT};
use crate::system::{require_root, run, tool, tool_path};
use crate::wait::wait_until;

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

/// `ip ARGS`.
fn ip(args: &[&str]) {
    run(tool("ip").args(args));
}

/// Adds address `cidr` to `dev` in namespace `ns`; an IPv6 one without
/// duplicate address detection, so that it is usable at once.
fn add_address(ns: &str, dev: &str, cidr: &str) {
    if cidr.contains(':') {
        ip(&["-n", ns, "-6", "addr", "add", cidr, "dev", dev, "nodad"]);
    } else {
        ip(&["-n", ns, "addr", "add", cidr, "dev", dev]);
    }
}

/// A network namespace, deleted on drop (processes still inside keep it
/// alive until they exit; a [`crate::Process`] is killed on drop).
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace with its loopback interface up.
    #[expect(
        clippy::new_without_default,
        reason = "creating a namespace is not a default value"
    )]
    pub fn new() -> Self {
        require_root("it creates network namespaces");
        let name = unique_name("tcpinfo-it-");
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// A namespace whose `lo` also carries 198.51.100.1 (public),
    /// 10.77.0.1 and 100.64.0.1 (private) and fd00::1 (private), so that
    /// every scope has an address to bind and no packet can leave.
    pub fn with_every_scope() -> Self {
        let ns = Netns::new();
        for addr in [
            "198.51.100.1/32",
            "10.77.0.1/32",
            "100.64.0.1/32",
            "fd00::1/128",
        ] {
            add_address(&ns.name, "lo", addr);
        }
        ns
    }

    /// `program` to be run inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(tool_path("ip"));
        cmd.args(["netns", "exec", &self.name]).arg(program);
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

    /// `METHOD path` to `addr` from inside the namespace: `(status, body)`.
    pub fn request(
        &self,
        addr: SocketAddr,
        method: &str,
        path: &str,
    ) -> std::io::Result<(u16, String)> {
        self.enter(|| metrics::http_request(addr, method, path))
    }

    /// `GET path` on 127.0.0.1:`port` inside the namespace.
    pub fn http_get(&self, port: u16, path: &str) -> std::io::Result<(u16, String)> {
        self.request(SocketAddr::from(([127, 0, 0, 1], port)), "GET", path)
    }

    /// The `/metrics` of an agent serving on 127.0.0.1:[`METRICS_PORT`]
    /// inside the namespace, parsed; `None` while it does not answer 200.
    pub fn scrape(&self) -> Option<Scrape> {
        match self.http_get(METRICS_PORT, "/metrics") {
            Ok((200, body)) => Some(Scrape::parse(&body)),
            _ => None,
        }
    }

    /// Waits (at most `timeout`) for a [`Netns::scrape`] that satisfies
    /// `condition`; returns it.
    pub fn wait_for_scrape(
        &self,
        timeout: std::time::Duration,
        what: &str,
        condition: &dyn Fn(&Scrape) -> bool,
    ) -> Scrape {
        crate::wait_for(timeout, what, || {
            let s = self.scrape()?;
            condition(&s).then_some(s)
        })
    }

    /// `ss -tineH` inside the namespace: cookie by (local, peer) address,
    /// from its `sk:<hex>` field.
    pub fn ss_cookies(&self) -> HashMap<(SocketAddr, SocketAddr), u64> {
        let out = self
            .command(tool_path("ss"))
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

/// Two namespaces joined by a veth pair: [`SERVER_IP`]/24 on the server
/// side, [`CLIENT_IP`]/24 on the client side (RFC 5737 documentation
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
    #[expect(
        clippy::new_without_default,
        reason = "creating namespaces is not a default value"
    )]
    pub fn new() -> Self {
        let (server, client) = (Netns::new(), Netns::new());
        // Interface names are limited to 15 bytes.
        static VETH: AtomicU32 = AtomicU32::new(0);
        let n = VETH.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id() % 100_000;
        let (vs, vc) = (format!("ti{id}s{n}"), format!("ti{id}c{n}"));
        ip(&[
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
        ]);
        for (ns, dev, ip_addr) in [(&server, &vs, SERVER_IP), (&client, &vc, CLIENT_IP)] {
            add_address(&ns.name, dev, &format!("{ip_addr}/24"));
            ip(&["-n", &ns.name, "link", "set", dev, "up"]);
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
    pub fn add_client_address(&self, ip_addr: &str) {
        add_address(
            &self.client.name,
            &self.client_dev,
            &format!("{ip_addr}/24"),
        );
    }

    /// Gives both ends an IPv6 address (`server`/64 and `client`/64, no
    /// duplicate address detection, so they are usable at once).
    pub fn add_ipv6(&self, server: &str, client: &str) {
        add_address(&self.server.name, &self.server_dev, &format!("{server}/64"));
        add_address(&self.client.name, &self.client_dev, &format!("{client}/64"));
    }
}
