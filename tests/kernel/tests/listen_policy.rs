//! Listener policy against real listeners: `tcp-info check` in a namespace
//! the test creates (report and exit codes), the agent's
//! `tcpinfo_listening_policy_*` gauges following listeners as they come and
//! go, SIGHUP and `POST /-/reload` with broken and fixed files, and
//! `/-/reload` refused to a client on another host.

use std::fs;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use harness::agent::{agent_binary, FAST};
use harness::metrics::{Scrape, METRICS_PORT};
use harness::netns::{CLIENT_IP, SERVER_IP};
use harness::process::{program_name, Signal};
use harness::{Agent, Netns, NetnsPair};

const VIOLATIONS: &str = "tcpinfo_listening_policy_violations";
const OK: &str = "tcpinfo_listening_policy_ok";
const RULES: &str = "tcpinfo_listening_policy_rules";
const RELOADS: &str = "tcpinfo_listening_policy_reloads_total";

fn write_policy(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// `tcp-info ARGS` inside `ns`.
fn tcp_info_in(ns: &Netns, args: &[&str]) -> Output {
    ns.command(agent_binary())
        .args(args)
        .output()
        .expect("running tcp-info")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `METHOD path` to `addr` from inside `ns`: `(status, body)`.
fn request(
    ns: &Netns,
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    ns.request(addr, method, path)
}

/// The violated rules as `(rule, kind, value)`, sorted.
fn violations(s: &Scrape) -> Vec<(String, String, f64)> {
    let mut v: Vec<_> = s
        .series(VIOLATIONS)
        .map(|x| (x.labels["rule"].clone(), x.labels["kind"].clone(), x.value))
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

fn v(rule: &str, kind: &str, value: f64) -> (String, String, f64) {
    (rule.to_owned(), kind.to_owned(), value)
}

#[test]
fn check_passes_fails_and_errors_with_report_and_exit_codes() {
    let ns = Netns::with_every_scope();
    let dir = tempfile::tempdir().unwrap();
    let me = program_name();
    // The namespace's only listeners: the test's own.
    let _sockets = ns.enter(|| {
        (
            TcpListener::bind("127.0.0.1:7001").unwrap(),
            TcpListener::bind("0.0.0.0:7002").unwrap(),
            UdpSocket::bind("10.77.0.1:7003").unwrap(),
        )
    });
    let suffix = &me[me.len() - 6..];
    let pass = write_policy(
        dir.path(),
        "pass.toml",
        &format!(
            r#"
[[listen]]
name = "api"
proto = "tcp"
port = 7001
bind = "loopback"
process = "{me}"

[[listen]]
proto = "udp"
port = 7003
bind = "private"
process_ends_with = "{suffix}"

[[forbid]]
name = "no-telnet"
port = 23

[[forbid]]
proto = "tcp"
bind = "public"
except = [7002]

[[count]]
proto = "tcp"
listeners = 2
"#
        ),
    );
    let out = tcp_info_in(&ns, &["check", "--policy", &pass]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    assert_eq!(
        report,
        format!(
            "Policy file: {pass}\nListening sockets observed: 3\n\n\
             SUMMARY REPORT: PASS\nAssertions tested: 5\nAssertions passed: 5\nAssertions failed: 0\n"
        )
    );

    let fail = write_policy(
        dir.path(),
        "fail.json",
        r#"{
  "listen": [
    {"name": "api-public", "proto": "tcp", "port": 7001, "bind": "public"},
    {"name": "web-owner", "proto": "tcp", "port": 7002, "process": "nginx"},
    {"proto": "udp", "port": 7003}
  ],
  "forbid": [{"name": "nothing-public", "bind": "public"}],
  "count": [{"listeners": 5}]
}"#,
    );
    let out = tcp_info_in(&ns, &["check", "-policy", &fail]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}{}", text(&out.stderr));
    let expected = format!(
        "Policy file: {fail}
Listening sockets observed: 3

ASSERTION FAILED
 Rule:      api-public
 Assertion: listen tcp port 7001 on public
 Violation: missing
 Value:     tcp 127.0.0.1:7001 ({me})

ASSERTION FAILED
 Rule:      web-owner
 Assertion: listen tcp port 7002 on any, owned by nginx
 Violation: wrong_owner
 Value:     tcp 0.0.0.0:7002 ({me})

ASSERTION FAILED
 Rule:      nothing-public
 Assertion: forbid tcp/udp any port on public
 Violation: forbidden
 Value:     tcp 0.0.0.0:7002 ({me})

ASSERTION FAILED
 Rule:      count-any-all
 Assertion: count tcp/udp any port on any: exactly 5
 Violation: count
 Value:     3 listening
            tcp 127.0.0.1:7001 ({me})
            tcp 0.0.0.0:7002 ({me})
            udp 10.77.0.1:7003 ({me})

SUMMARY REPORT: FAIL
Assertions tested: 5
Assertions passed: 1
Assertions failed: 4
"
    );
    assert_eq!(report, expected);

    // A bad policy file: exit 2, no report, one line naming file, line and
    // problem.
    let bad = write_policy(
        dir.path(),
        "bad.toml",
        "[[listen]]\nproto = \"tcp\"\nport = 70000\n",
    );
    let out = tcp_info_in(&ns, &["check", "--policy", &bad]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert_eq!(
        text(&out.stderr),
        format!("tcp-info check: {bad}:3: port 70000 is not in 1-65535\n")
    );
    let unknown = write_policy(
        dir.path(),
        "unknown.toml",
        "[[forbid]]\nport = 23\nscope = \"public\"\n",
    );
    let out = tcp_info_in(&ns, &["check", "--policy", &unknown]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "tcp-info check: {unknown}:3: unknown field `scope`"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let missing = dir.path().join("missing.toml").display().to_string();
    let out = tcp_info_in(&ns, &["check", "--policy", &missing]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("tcp-info check: {missing}: No such file or directory (os error 2)\n")
    );
    // Bad flags: exit 2, one line.
    for args in [&["check"][..], &["check", "--policy"], &["check", "-nope"]] {
        let out = tcp_info_in(&ns, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stderr).lines().count(), 1, "{args:?}");
    }
}

const AGENT_POLICY: &str = r#"
[[listen]]
name = "web"
proto = "tcp"
port = 7101
bind = "loopback"

[[listen]]
name = "metrics"
proto = "tcp"
port = 9990
process = "tcp-info"

[[forbid]]
name = "no-telnet"
port = 7123
"#;

/// An agent checking [`AGENT_POLICY`] (written into the returned
/// directory, at the returned path) in a namespace of its own.
fn agent_with_policy() -> (Netns, tempfile::TempDir, String, Agent) {
    let ns = Netns::with_every_scope();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "policy.toml", AGENT_POLICY);
    let agent = Agent::serving_metrics(&ns, &[&format!("-listen-policy={policy}")]);
    (ns, dir, policy, agent)
}

#[test]
fn agent_violations_follow_a_required_and_a_forbidden_listener() {
    let (ns, _dir, _policy, agent) = agent_with_policy();
    let until = |what: &str, cond: &dyn Fn(&Scrape) -> bool| {
        ns.wait_for_scrape(Duration::from_secs(10), what, cond)
    };

    let s = until("the first evaluation", &|s| s.value(OK, &[]).is_some());
    assert_eq!(s.value(OK, &[]), Some(0.0));
    assert_eq!(violations(&s), [v("web", "missing", 1.0)]);
    assert_eq!(
        s.value("tcpinfo_listening_policy_violated_rules", &[]),
        Some(1.0)
    );
    assert_eq!(s.value(RULES, &[]), Some(3.0));

    let web = ns.enter(|| TcpListener::bind("127.0.0.1:7101").unwrap());
    let s = until("the policy to hold", &|s| s.value(OK, &[]) == Some(1.0));
    assert!(violations(&s).is_empty(), "{:?}", violations(&s));

    let telnet = ns.enter(|| {
        (
            TcpListener::bind("10.77.0.1:7123").unwrap(),
            TcpListener::bind("[fd00::1]:7123").unwrap(),
        )
    });
    let s = until("the forbidden listeners", &|s| {
        s.value(OK, &[]) == Some(0.0)
    });
    assert_eq!(violations(&s), [v("no-telnet", "forbidden", 2.0)]);

    drop(web);
    drop(telnet);
    let s = until("web missing, telnet gone", &|s| {
        violations(s) == [v("web", "missing", 1.0)]
    });
    assert_eq!(s.value(OK, &[]), Some(0.0));

    let log = agent.log_text();
    assert!(
        log.contains("listen policy: rule \"no-telnet\" violated (forbidden)"),
        "{log}"
    );
    assert!(
        log.contains("listen policy: rule \"web\" holds again"),
        "{log}"
    );
}

#[test]
fn sighup_with_a_broken_file_keeps_the_policy_and_a_fixed_file_applies() {
    let (ns, _dir, policy, agent) = agent_with_policy();
    let until = |what: &str, cond: &dyn Fn(&Scrape) -> bool| {
        ns.wait_for_scrape(Duration::from_secs(10), what, cond)
    };
    let reloads = |s: &Scrape, result: &str| s.value(RELOADS, &[("result", result)]);
    let before = until("the first evaluation", &|s| s.value(OK, &[]).is_some());
    assert_eq!(reloads(&before, "success"), Some(0.0));
    assert_eq!(reloads(&before, "failure"), Some(0.0));

    // Writes `text` as the policy, sends SIGHUP, and returns the scrape
    // that counts the reload (`success`, `failure` reloads so far), whose
    // last-reload gauge says `successful` and whose rule count is `rules`.
    let reload = |text: &str, (success, failure): (f64, f64), successful: f64, rules: f64| {
        fs::write(&policy, text).unwrap();
        agent.signal(Signal::SIGHUP);
        let s = until("the reload to be counted", &|s| {
            reloads(s, "success") == Some(success) && reloads(s, "failure") == Some(failure)
        });
        let last = s.value("tcpinfo_listening_policy_last_reload_successful", &[]);
        assert_eq!(last, Some(successful));
        assert_eq!(s.value(RULES, &[]), Some(rules));
        s
    };
    let s = reload(
        "[[listen]]\nproto = \"tcp\"\nport = 7101\nbind = \"publik\"\n",
        (0.0, 1.0),
        0.0,
        3.0,
    );
    assert_eq!(s.value(OK, &[]), Some(0.0));
    assert_eq!(violations(&s), [v("web", "missing", 1.0)]);
    let log = agent.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("reload rejected"))
        .unwrap_or_else(|| panic!("no reload log line in {log}"));
    assert!(
        line.ends_with(&format!(
            "listen policy: reload rejected, keeping the previous policy (3 rules): {policy}:4: bind \"publik\" is neither a scope (loopback, private, public, any) nor an IP address"
        )),
        "{line}"
    );
    // Still the old policy, still evaluated: the required listener
    // appearing makes it hold.
    let web = ns.enter(|| TcpListener::bind("127.0.0.1:7101").unwrap());
    until("the old policy to hold", &|s| s.value(OK, &[]) == Some(1.0));

    let s = reload(
        "[[forbid]]\nname = \"nothing-on-7101\"\nport = 7101\n",
        (1.0, 1.0),
        1.0,
        1.0,
    );
    assert_eq!(s.value(OK, &[]), Some(0.0));
    assert_eq!(violations(&s), [v("nothing-on-7101", "forbidden", 1.0)]);
    drop(web);
    until("the new policy to hold", &|s| s.value(OK, &[]) == Some(1.0));
    // SIGHUP did not stop the agent.
    assert!(ns.scrape().is_some());
}

#[test]
fn reload_over_http_is_for_loopback_clients_only() {
    let pair = NetnsPair::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "policy.toml", AGENT_POLICY);
    // Metrics on every address (dual-stack), reachable from the peer.
    let mut args: Vec<String> = FAST.iter().map(|s| s.to_string()).collect();
    args.push(format!("-listen-policy={policy}"));
    args.push(format!("-prometheusx.listen-address=:{METRICS_PORT}"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = dir.path().join("data");
    let _agent = Agent::start(Some(&pair.server), &output, &args);

    let loopback4: SocketAddr = ([127, 0, 0, 1], METRICS_PORT).into();
    let loopback6: SocketAddr = "[::1]:9990".parse().unwrap();
    let public: SocketAddr = format!("{SERVER_IP}:{METRICS_PORT}").parse().unwrap();
    let scrape = || {
        let (status, body) = request(&pair.server, loopback4, "GET", "/metrics").unwrap();
        assert_eq!(status, 200);
        Scrape::parse(&body)
    };
    let reloads = |result: &str| scrape().value(RELOADS, &[("result", result)]);

    // From the peer namespace: refused, nothing reloaded.
    let (status, body) = request(&pair.client, public, "POST", "/-/reload").unwrap();
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body,
        format!(
            "reload refused: only loopback clients may reload, not {}\n",
            CLIENT_IP
        )
    );
    // Scraping from there is fine; only the reload is guarded.
    assert_eq!(
        request(&pair.client, public, "GET", "/metrics").unwrap().0,
        200
    );
    assert_eq!(reloads("success"), Some(0.0));
    assert_eq!(reloads("failure"), Some(0.0));

    // From loopback, over IPv4 (seen as ::ffff:127.0.0.1) and IPv6.
    fs::write(&policy, "[[forbid]]\nport = 7123\n").unwrap();
    let (status, body) = request(&pair.server, loopback4, "POST", "/-/reload").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("listen policy reloaded: 1 rules"),
        "{body}"
    );
    assert_eq!(reloads("success"), Some(1.0));
    assert_eq!(scrape().value(RULES, &[]), Some(1.0));
    let (status, _) = request(&pair.server, loopback6, "POST", "/-/reload").unwrap();
    assert_eq!(status, 200);
    assert_eq!(reloads("success"), Some(2.0));

    // An invalid file: 400 with the error, the previous policy stays.
    fs::write(&policy, "[[forbid]]\nport = 7123\nbind = 7\n").unwrap();
    let (status, body) = request(&pair.server, loopback4, "POST", "/-/reload").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.starts_with(&format!(
            "reload rejected, previous policy kept: {policy}:3: "
        )),
        "{body}"
    );
    assert_eq!(reloads("failure"), Some(1.0));
    assert_eq!(scrape().value(RULES, &[]), Some(1.0));
    // GET is not a reload.
    let (status, _) = request(&pair.server, loopback4, "GET", "/-/reload").unwrap();
    assert_eq!(status, 405);
}

#[test]
fn without_the_flag_nothing_about_policy_is_exported_or_reloadable() {
    let ns = Netns::with_every_scope();
    let _agent = Agent::serving_metrics(&ns, &[]);
    let s = ns.wait_for_scrape(Duration::from_secs(10), "a published inventory", &|s| {
        s.text.contains("tcpinfo_listening_ports{")
    });
    assert!(!s.text.contains("tcpinfo_listening_policy"), "{}", s.text);
    let loopback: SocketAddr = ([127, 0, 0, 1], METRICS_PORT).into();
    let (status, body) = request(&ns, loopback, "POST", "/-/reload").unwrap();
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body,
        "nothing to reload: the agent runs without -listen-policy\n"
    );
}
