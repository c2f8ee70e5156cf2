//! Issue 13's safety items against the real kernel, as root: a read-only
//! output refused at start; `/-/ready` following the archive's health
//! through a full disk; two agents on one output; a live socket or a
//! regular file at the event socket's path; a DNS client's UDP socket not
//! taken for a listener; `tcp-info check` as an unprivileged user.

use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use harness::agent::{agent_binary, FAST};
use harness::disk::Tmpfs;
use harness::metrics::METRICS_PORT;
use harness::process::program_name;
use harness::system::tool_path;
use harness::traffic::{Connection, Pump};
use harness::{wait_for, wait_until, Agent, Netns};

const WAIT: Duration = Duration::from_secs(30);

/// The unprivileged user of most systems (`nobody`).
const NOBODY: u32 = 65534;

/// Runs the agent with `args` until it exits (it is expected to refuse).
fn refused(args: &[String]) -> (Option<i32>, String) {
    let out = Command::new(agent_binary())
        .args(args)
        .arg("-prometheusx.listen-address=127.0.0.1:0")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_read_only_output_directory_is_refused_at_start_in_one_line() {
    let disk = Tmpfs::new("ro,size=1m");
    let out = disk.mount.display().to_string();
    let (code, err) = refused(&[format!("-output={out}")]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "tcp-info: output directory {out}: cannot create files in it: Read-only file system (os error 30)\n"
        )
    );
}

#[test]
fn ready_turns_503_with_the_reason_while_the_disk_is_full_and_back_to_200() {
    let ns = Netns::new();
    let disk = Tmpfs::new("size=2m");
    let out = disk.mount.join("out");
    let (_listener, conns) = ns.enter(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let conns: Vec<Connection> = (0..20).map(|_| Connection::open(&listener)).collect();
        (listener, conns)
    });
    let _agent = Agent::builder()
        .netns(&ns)
        .output(&out)
        .metrics_on(METRICS_PORT)
        .args(FAST)
        .args(["-exclude-local=false", "-flush-interval=50ms"])
        .start();
    let _pump = Pump::start(conns, 600, Duration::from_millis(20));
    let ready = || ns.http_get(METRICS_PORT, "/-/ready").ok();
    assert_eq!(ready(), Some((200, "ready\n".into())));

    let filler = disk.fill();
    let (_, why) = wait_for(WAIT, "/-/ready to say 503", || {
        ready().filter(|(status, _)| *status == 503)
    });
    assert!(
        why.starts_with("not ready: archive writes failing (") && why.ends_with(")\n"),
        "{why:?}"
    );
    assert_eq!(why.lines().count(), 1, "{why:?}");
    let scrape = ns.scrape().unwrap();
    assert_eq!(scrape.value("tcpinfo_ready", &[]), Some(0.0));

    fs::remove_file(filler).unwrap();
    wait_until(WAIT, "/-/ready to say 200 again", || {
        ready() == Some((200, "ready\n".into()))
    });
    assert_eq!(ns.scrape().unwrap().value("tcpinfo_ready", &[]), Some(1.0));
}

#[test]
fn a_second_agent_on_the_same_output_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let first = Agent::builder()
        .output(&out)
        .arg("-prometheusx.listen-address=127.0.0.1:0")
        .start();
    let (code, err) = refused(&[format!("-output={}", out.display())]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err,
        format!(
            "tcp-info: output directory {}: is in use by another tcp-info (pid {})\n",
            out.display(),
            first.pid()
        )
    );
    // Nothing of the second agent in the tree (no probe left behind).
    assert!(fs::read_dir(&out).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with('.')));
}

#[test]
fn a_live_event_socket_or_a_regular_file_at_its_path_is_refused_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("events.sock");
    let _first = Agent::builder()
        .output(&dir.path().join("out1"))
        .eventsocket(&socket)
        .arg("-prometheusx.listen-address=127.0.0.1:0")
        .start();
    let second = |out: &str| {
        refused(&[
            format!("-output={}", dir.path().join(out).display()),
            format!("-tcpinfo.eventsocket={}", socket.display()),
        ])
    };
    let (code, err) = second("out2");
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.lines().filter(|l| l.starts_with("tcp-info:")).collect::<Vec<_>>(),
        [format!(
            "tcp-info: event socket {}: is a live socket (another tcp-info is serving events there); refusing to replace it",
            socket.display()
        )],
        "{err}"
    );
    assert!(err.ends_with("refusing to replace it\n"), "{err}");
    // The first agent still serves there.
    std::os::unix::net::UnixStream::connect(&socket).unwrap();

    let file = dir.path().join("precious");
    fs::write(&file, b"keep me").unwrap();
    let (code, err) = refused(&[
        format!("-output={}", dir.path().join("out3").display()),
        format!("-tcpinfo.eventsocket={}", file.display()),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.lines().last(),
        Some(
            format!(
                "tcp-info: event socket {}: exists and is not a socket; refusing to replace it",
                file.display()
            )
            .as_str()
        ),
        "{err}"
    );
    assert_eq!(fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn the_event_socket_appears_with_its_mode_and_group_already_set() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("events.sock");
    // A dead socket of a previous run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let _agent = Agent::builder()
        .output(&dir.path().join("out"))
        .eventsocket(&socket)
        .args([
            "-prometheusx.listen-address=127.0.0.1:0",
            "-tcpinfo.eventsocket.mode=0660",
            "-tcpinfo.eventsocket.group=65534",
        ])
        .start();
    let meta = fs::symlink_metadata(&socket).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()));
    assert_eq!(meta.mode() & 0o7777, 0o660);
    assert_eq!(meta.gid(), NOBODY);
    // Nothing but the socket and the output: the private directory it was
    // bound in is gone.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["events.sock", "out"]);
}

/// A resolver's query socket: no bind, one `sendto` (the kernel gives it
/// an ephemeral port on the wildcard address), kept open for the answer.
fn dns_client_socket(server: std::net::SocketAddr) -> (std::os::fd::OwnedFd, u16) {
    use nix::sys::socket::{
        getsockname, sendto, socket, AddressFamily, MsgFlags, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    let std::net::SocketAddr::V4(server) = server else {
        unreachable!()
    };
    sendto(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01",
        &SockaddrIn::from(server),
        MsgFlags::empty(),
    )
    .unwrap();
    let local: SockaddrIn = getsockname(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
    (fd, local.port())
}

#[test]
fn a_dns_clients_udp_socket_is_not_a_listener_beside_a_real_one() {
    let ns = Netns::with_every_scope();
    // Listening before the agent starts: its first inventory (the baseline
    // for changes) is taken once this shows.
    let _marker = ns.enter(|| UdpSocket::bind("0.0.0.0:5300").unwrap());
    let _agent = Agent::serving_metrics(&ns, &[]);
    ns.wait_for_scrape(WAIT, "the baseline inventory", &|s| {
        s.value(
            "tcpinfo_listening_ports",
            &[("proto", "udp"), ("port", "5300")],
        )
        .is_some()
    });
    let (server, (client, client_port)) = ns.enter(|| {
        let server = UdpSocket::bind("0.0.0.0:5353").unwrap();
        let client = dns_client_socket("127.0.0.1:5353".parse().unwrap());
        (server, client)
    });
    let mut query = [0u8; 512];
    let n = server.recv(&mut query).unwrap();
    assert!(n > 12, "the query arrived");
    let range = ns.enter(|| fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap());
    let (lo, hi) = range.split_once(char::is_whitespace).unwrap();
    let (lo, hi): (u16, u16) = (lo.trim().parse().unwrap(), hi.trim().parse().unwrap());
    assert!((lo..=hi).contains(&client_port), "{client_port} in {range}");
    // The kernel lists it as an unconnected UDP socket on 0.0.0.0.
    let ss = ns
        .command(tool_path("ss"))
        .args(["-uanH"])
        .output()
        .unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(ss.contains(&format!("0.0.0.0:{client_port} ")), "{ss}");

    let udp_opened = |s: &harness::metrics::Scrape| -> f64 {
        s.series("tcpinfo_listening_port_changes_total")
            .filter(|s| s.labels["proto"] == "udp" && s.labels["change"] == "opened")
            .map(|s| s.value)
            .sum()
    };
    let scrape = ns.wait_for_scrape(WAIT, "the UDP listener's series and change", &|s| {
        s.value(
            "tcpinfo_listening_ports",
            &[("proto", "udp"), ("port", "5353")],
        )
        .is_some()
            && udp_opened(s) >= 1.0
    });
    let udp: Vec<&str> = scrape
        .text
        .lines()
        .filter(|l| l.starts_with("tcpinfo_listening_ports{") && l.contains("proto=\"udp\""))
        .collect();
    assert_eq!(udp.len(), 2, "{udp:?}");
    assert!(udp.iter().any(|l| l.contains("port=\"5353\"")), "{udp:?}");
    assert!(udp.iter().any(|l| l.contains("port=\"5300\"")), "{udp:?}");
    assert!(!scrape.text.contains(&format!("port=\"{client_port}\"")));
    // One UDP listener opened since the baseline, not two (the series of
    // the shipped NewPublicListener alert).
    let opened = udp_opened(&scrape);
    assert_eq!(opened, 1.0, "{}", scrape.text);
    drop(client);
}

/// `tcp-info check --policy POLICY` in `ns`, as `uid` (0: root).
fn check_as(ns: &Netns, uid: u32, policy: &Path) -> Output {
    let mut cmd = if uid == 0 {
        ns.command(agent_binary())
    } else {
        let mut cmd = ns.command(tool_path("setpriv"));
        cmd.args([
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".into(),
        ])
        .arg(agent_binary());
        cmd
    };
    cmd.args(["check", "--policy"])
        .arg(policy)
        .output()
        .unwrap()
}

#[test]
fn check_as_an_unprivileged_user_reports_an_unknown_owner_not_a_wrong_one() {
    let ns = Netns::with_every_scope();
    let _listener = ns.enter(|| TcpListener::bind("198.51.100.1:2222").unwrap());
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let policy = dir.path().join("policy.toml");
    fs::write(
        &policy,
        format!(
            "[[listen]]\nname = \"ssh\"\nproto = \"tcp\"\nport = 2222\nprocess = \"{}\"\n",
            program_name()
        ),
    )
    .unwrap();
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o644)).unwrap();

    // As root: the owner is seen and right.
    let root = check_as(&ns, 0, &policy);
    assert_eq!(
        root.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&root.stdout),
        String::from_utf8_lossy(&root.stderr)
    );

    let nobody = check_as(&ns, NOBODY, &policy);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&nobody.stdout),
        String::from_utf8_lossy(&nobody.stderr),
    );
    assert_eq!(nobody.status.code(), Some(2), "{stdout}{stderr}");
    assert_eq!(
        stderr,
        format!(
            "tcp-info check: cannot tell who owns 1 listener(s) the policy names a program for: the processes of other users are not visible to uid {NOBODY} (run as root, or with CAP_SYS_PTRACE)\n"
        )
    );
    assert!(!stdout.contains("wrong_owner"), "{stdout}");
    assert!(stdout.contains(" Violation: unknown_owner"), "{stdout}");
    assert!(
        stdout.contains(
            "tcp 198.51.100.1:2222 (owner unknown: other users' processes are not visible)"
        ),
        "{stdout}"
    );
}
