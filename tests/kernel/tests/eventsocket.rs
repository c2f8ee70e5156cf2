//! The event socket of the real `tcp-info` binary, with real loopback TCP
//! connections: what clients receive, how it matches the kernel and the
//! archive, and that a stuck client costs the agent nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use harness::archive::archive_files;
use harness::events::Collector;
use harness::traffic::Connection;
use harness::{wait_until, Agent, Netns};
use tcpinfo_eventsocket::client::End;
use tcpinfo_eventsocket::{FlowEvent, SockId, TcpEvent};

const DEADLINE: Duration = Duration::from_secs(60);

/// An agent in its own namespace (so that it sees exactly this test's
/// connections) archiving loopback connections and serving events.
struct EventAgent {
    // Dropped in this order: the agent, its socket's directory, the
    // namespace it ran in.
    agent: Agent,
    socket: PathBuf,
    _socket_dir: tempfile::TempDir,
    ns: Netns,
}

impl EventAgent {
    fn start(extra: &[&str]) -> EventAgent {
        let ns = Netns::new();
        let socket_dir = tempfile::tempdir().unwrap();
        let socket = socket_dir.path().join("events.sock");
        let agent = Agent::builder()
            .netns(&ns)
            .eventsocket(&socket)
            .arg("-exclude-local=false")
            .arg("-prometheusx.listen-address=127.0.0.1:0")
            .args(extra)
            .start();
        EventAgent {
            agent,
            socket,
            _socket_dir: socket_dir,
            ns,
        }
    }

    fn log_lines(&self) -> Vec<String> {
        self.agent.log()
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        self.agent.stop(DEADLINE)
    }

    /// `n` established loopback connections to one listener in the
    /// agent's namespace.
    fn connect_many(&self, n: usize) -> Connections {
        self.ns.enter(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let _pairs = (0..n).map(|_| Connection::open(&listener)).collect();
            Connections {
                port,
                _pairs,
                _listener: listener,
            }
        })
    }

    /// Waits until every collector has seen the open event of a fresh
    /// connection: from then on they are registered with the server.
    fn sync_clients(&self, collectors: &[&Collector]) {
        let canary = self.connect_many(1);
        for c in collectors {
            wait_until(DEADLINE, "canary open event", || {
                c.opens_on(canary.port).len() == 2
            });
        }
    }

    /// The kernel's view of our sockets: every TCP socket with `port` at
    /// either end, keyed by (sport, dport).
    fn kernel_sockets(&self, port: u16) -> HashMap<(u16, u16), SockId> {
        self.ns.enter(|| {
            let mut socket = inetdiag::DiagSocket::new().unwrap();
            let request = inetdiag::request::DumpRequest {
                family: inetdiag::AF_INET,
                protocol: 6, // IPPROTO_TCP
                states: u32::MAX,
                extensions: 0,
            };
            let mut found = HashMap::new();
            socket
                .dump(&request, |payload| {
                    let record = inetdiag::DiagRecord::parse(payload).unwrap();
                    let id = SockId::from_msg(&record.msg());
                    if (id.sport == port || id.dport == port) && id.dport != 0 {
                        found.insert((id.sport, id.dport), id);
                    }
                })
                .unwrap();
            found
        })
    }

    /// Archive files by UUID: `<output>/YYYY/MM/DD/<UUID>.<seq>.jsonl.zst`.
    fn archive_uuids(&self) -> HashSet<String> {
        archive_files(&self.agent.output)
            .iter()
            .filter_map(|p| {
                let name = p.file_name()?.to_str()?;
                let (uuid, _seq) = name.strip_suffix(".jsonl.zst")?.rsplit_once('.')?;
                Some(uuid.to_string())
            })
            .collect()
    }
}

/// `n` established loopback connections to one listener: both ends.
struct Connections {
    port: u16,
    _pairs: Vec<Connection>,
    _listener: TcpListener,
}

#[test]
fn two_clients_see_one_open_then_one_close_per_connection_matching_kernel_and_archive() {
    let mut agent = EventAgent::start(&[]);
    let a = Collector::connect(&agent.socket);
    let b = Collector::connect(&agent.socket);
    agent.sync_clients(&[&a, &b]);

    let conns = agent.connect_many(50);
    let port = conns.port;
    // 50 connections, two sockets each.
    for c in [&a, &b] {
        wait_until(DEADLINE, "100 open events", || {
            c.opens_on(port).len() == 100
        });
    }
    let kernel = agent.kernel_sockets(port);
    assert_eq!(kernel.len(), 100, "kernel sockets");
    let opened = a.opens_on(port);
    for (uuid, id) in &opened {
        assert_eq!(
            Some(id),
            kernel.get(&(id.sport, id.dport)),
            "{uuid}: event ID vs kernel"
        );
        assert!(
            uuid.ends_with(&format!("_{:016X}", id.cookie)),
            "{uuid} ends with the cookie {:016X}",
            id.cookie
        );
    }
    assert_eq!(b.opens_on(port), opened, "both clients see the same opens");

    drop(conns);
    let uuids: HashSet<String> = opened.keys().cloned().collect();
    for c in [&a, &b] {
        wait_until(DEADLINE, "100 close events", || {
            c.closed().is_superset(&uuids)
        });
    }
    wait_until(DEADLINE, "archive files for every UUID", || {
        agent.archive_uuids().is_superset(&uuids)
    });

    for collector in [a, b] {
        let (events, _) = collector.finish();
        let mut seen: BTreeMap<&str, Vec<TcpEvent>> = BTreeMap::new();
        for ev in events.iter().filter(|ev| uuids.contains(&ev.uuid)) {
            seen.entry(&ev.uuid).or_default().push(ev.event);
            if ev.event == TcpEvent::Close {
                assert_eq!(ev.id, None, "close events carry \"ID\":null");
            }
        }
        assert_eq!(seen.len(), 100);
        for (uuid, kinds) in seen {
            assert_eq!(kinds, [TcpEvent::Open, TcpEvent::Close], "{uuid}");
        }
    }

    let status = agent.stop();
    assert!(status.success(), "tcp-info exit: {status}");
    assert!(!agent.socket.exists(), "socket file removed at shutdown");
}

/// `mean_interval` of every `stats:` line the agent logged.
fn mean_intervals_ms(log: &[String]) -> Vec<f64> {
    log.iter()
        .filter_map(|line| {
            let rest = line.split("mean_interval=").nth(1)?;
            rest.split("ms").next()?.parse().ok()
        })
        .collect()
}

#[test]
fn stuck_client_is_dropped_while_polling_and_other_clients_carry_on() {
    let mut agent = EventAgent::start(&["-stats-interval=1s"]);
    // Connects and never reads.
    let mut stuck = UnixStream::connect(&agent.socket).unwrap();
    let healthy = Collector::connect(&agent.socket);
    agent.sync_clients(&[&healthy]);

    // Each round: 200 connections (400 sockets) open, then close; 800
    // events, all of which the healthy client must see.
    let mut all = HashSet::new();
    let round = |all: &mut HashSet<String>| {
        // An earlier round's client socket may have had this round's
        // listener port as its ephemeral source port: only connections new
        // in this round count.
        let before: HashSet<String> = healthy.events().into_iter().map(|e| e.uuid).collect();
        let conns = agent.connect_many(200);
        let port = conns.port;
        let fresh = || -> HashSet<String> {
            healthy
                .opens_on(port)
                .into_keys()
                .filter(|uuid| !before.contains(uuid))
                .collect()
        };
        wait_until(DEADLINE, "round opens", || fresh().len() == 400);
        let uuids = fresh();
        drop(conns);
        wait_until(DEADLINE, "round closes", || {
            healthy.closed().is_superset(&uuids)
        });
        all.extend(uuids);
    };
    let dropped = |agent: &EventAgent| {
        agent
            .log_lines()
            .iter()
            .filter(|l| l.contains("eventsocket") && l.contains("behind"))
            .count()
    };

    // 2400 events: more than the stuck client's socket buffer holds (about
    // a thousand), fewer than its queue (8192). Its writer is now blocked in
    // write(2) with a backlog: exactly where Go's agent stalls.
    for _ in 0..3 {
        round(&mut all);
    }
    assert_eq!(dropped(&agent), 0, "not dropped before its queue is full");
    let stats_before = mean_intervals_ms(&agent.log_lines()).len();
    wait_until(DEADLINE, "three stats lines", || {
        mean_intervals_ms(&agent.log_lines()).len() >= stats_before + 3
    });
    // The first line may still cover the churn; the next two are quiet.
    let quiet = mean_intervals_ms(&agent.log_lines())[stats_before + 1..].to_vec();
    eprintln!("mean poll intervals with a blocked client: {quiet:?}ms");
    let limit = if cfg!(debug_assertions) { 15.0 } else { 13.0 };
    assert!(
        quiet.iter().all(|&ms| ms <= limit),
        "polling kept its 10ms target while a client was stuck: {quiet:?} (limit {limit}ms)"
    );

    // More traffic until the stuck client falls a full queue behind.
    let mut rounds = 3;
    while dropped(&agent) == 0 {
        rounds += 1;
        assert!(rounds <= 40, "stuck client never dropped");
        round(&mut all);
    }
    eprintln!("stuck client dropped after {rounds} rounds");

    // The stuck client gets a prefix of the stream, then the end of it.
    let mut bytes = Vec::new();
    stuck.read_to_end(&mut bytes).unwrap();
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..=i],
        None => &bytes[..],
    };
    let prefix: Vec<FlowEvent> = complete
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| FlowEvent::from_json(l).unwrap())
        .collect();
    let (events, end) = healthy.finish();
    assert_eq!(end, End::Stopped, "the healthy client was never dropped");
    assert_eq!(
        &events[..prefix.len()],
        &prefix[..],
        "the stuck client's events are a prefix of everyone's"
    );

    // The healthy client saw exactly one open and one close per socket.
    let mut counts: HashMap<&str, (u32, u32)> = HashMap::new();
    for ev in events.iter().filter(|ev| all.contains(&ev.uuid)) {
        let c = counts.entry(&ev.uuid).or_default();
        match ev.event {
            TcpEvent::Open => c.0 += 1,
            TcpEvent::Close => c.1 += 1,
        }
    }
    assert_eq!(counts.len(), all.len());
    assert!(counts.values().all(|&c| c == (1, 1)));

    let log = agent.log_lines();
    let dropped_lines = log
        .iter()
        .filter(|l| l.contains("eventsocket") && l.contains("behind"))
        .count();
    assert_eq!(dropped_lines, 1, "exactly the stuck client was dropped");

    assert!(agent.stop().success());
}
