//! A policy against one inventory: which rules hold, which are violated,
//! and what was observed instead.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::rule::{Assertion, Policy, Rule};
use crate::exposure::inventory::{ListeningSocket, Proto};

/// One listening socket and the program that owns it ("" when not
/// visible).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub socket: ListeningSocket,
    pub process: Arc<str>,
    /// The program is not known because this process may not look: other
    /// users' processes are hidden from an unprivileged `check`. Only
    /// meaningful when `process` is empty.
    pub owner_hidden: bool,
}

impl Observed {
    /// What tells two listeners apart for counting: SO_REUSEPORT twins
    /// (one per worker) are one binding.
    fn binding(&self) -> (Proto, IpAddr, u16) {
        (self.socket.proto, self.socket.addr, self.socket.port)
    }
}

impl fmt::Display for Observed {
    /// `tcp 0.0.0.0:22 (sshd)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = SocketAddr::new(self.socket.addr, self.socket.port);
        let process = if self.process.is_empty() && self.owner_hidden {
            "owner unknown: other users' processes are not visible"
        } else if self.process.is_empty() {
            "process not visible"
        } else {
            &self.process
        };
        write!(f, "{} {addr} ({process})", self.socket.proto.label())
    }
}

/// How a rule is violated: the `kind` label of
/// `tcpinfo_listening_policy_violations`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// A required listener is not there.
    Missing,
    /// A required listener is there, owned by another program.
    WrongOwner,
    /// A forbidden listener is there.
    Forbidden,
    /// The number of listeners differs from the expected one.
    Count,
    /// A required listener is there, but who owns it cannot be seen (an
    /// unprivileged `check`): neither held nor violated.
    UnknownOwner,
}

impl ViolationKind {
    pub fn label(self) -> &'static str {
        match self {
            ViolationKind::Missing => "missing",
            ViolationKind::WrongOwner => "wrong_owner",
            ViolationKind::Forbidden => "forbidden",
            ViolationKind::Count => "count",
            ViolationKind::UnknownOwner => "unknown_owner",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// The gauge's value: listeners at fault (forbidden, wrong owner), 1
    /// for a missing one, the difference from the expected count.
    pub amount: u64,
    /// The observed value, for the report: one entry per line.
    pub observed: Vec<String>,
}

/// One rule's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub rule: Arc<str>,
    /// The assertion in words.
    pub assertion: String,
    pub violation: Option<Violation>,
}

/// Every rule's result against one inventory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evaluation {
    pub outcomes: Vec<Outcome>,
    /// Listening sockets observed.
    pub listeners: usize,
}

impl Evaluation {
    pub fn passed(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.violation.is_none())
            .count()
    }

    pub fn failed(&self) -> usize {
        self.outcomes.len() - self.passed()
    }

    pub fn ok(&self) -> bool {
        self.failed() == 0
    }

    /// `(rule, violation)` of every violated rule, in policy order.
    pub fn violations(&self) -> impl Iterator<Item = (&str, &Violation)> {
        self.outcomes
            .iter()
            .filter_map(|o| Some((&*o.rule, o.violation.as_ref()?)))
    }
}

/// Evaluates every rule of `policy` against `listeners`.
pub fn evaluate(policy: &Policy, listeners: &[Observed]) -> Evaluation {
    let mut sorted: Vec<&Observed> = listeners.iter().collect();
    sorted.sort_by_key(|o| (o.socket.proto, o.socket.port, o.socket.addr));
    Evaluation {
        outcomes: policy
            .rules
            .iter()
            .map(|rule| Outcome {
                rule: Arc::from(rule.name.as_str()),
                assertion: rule.describe(),
                violation: check(rule, &sorted),
            })
            .collect(),
        listeners: listeners.len(),
    }
}

/// `listeners` with one entry per binding (the first seen). They come
/// sorted by binding (see [`evaluate`]), so twins are neighbours.
fn distinct<'a>(listeners: impl Iterator<Item = &'a Observed>) -> Vec<&'a Observed> {
    let mut out: Vec<&Observed> = Vec::new();
    for l in listeners {
        if out.last().is_none_or(|o| o.binding() != l.binding()) {
            out.push(l);
        }
    }
    out
}

fn lines(listeners: &[&Observed]) -> Vec<String> {
    listeners.iter().map(|l| l.to_string()).collect()
}

fn check(rule: &Rule, listeners: &[&Observed]) -> Option<Violation> {
    let selected = distinct(
        listeners
            .iter()
            .copied()
            .filter(|l| rule.selector.matches(&l.socket)),
    );
    match &rule.assertion {
        Assertion::Listen { process } => {
            if selected.is_empty() {
                // What listens on that port instead, on other addresses.
                let same_port = distinct(listeners.iter().copied().filter(|l| {
                    rule.selector.proto == Some(l.socket.proto)
                        && rule.selector.port == Some(l.socket.port)
                }));
                let observed = if same_port.is_empty() {
                    vec!["<none>".to_owned()]
                } else {
                    lines(&same_port)
                };
                return Some(Violation {
                    kind: ViolationKind::Missing,
                    amount: 1,
                    observed,
                });
            }
            let process = process.as_ref()?;
            let (hidden, seen): (Vec<&Observed>, Vec<&Observed>) = selected
                .into_iter()
                .partition(|l| l.process.is_empty() && l.owner_hidden);
            let wrong: Vec<&Observed> = seen
                .into_iter()
                .filter(|l| !process.matches(&l.process))
                .collect();
            if !wrong.is_empty() {
                return Some(Violation {
                    kind: ViolationKind::WrongOwner,
                    amount: wrong.len() as u64,
                    observed: lines(&wrong),
                });
            }
            (!hidden.is_empty()).then(|| Violation {
                kind: ViolationKind::UnknownOwner,
                amount: hidden.len() as u64,
                observed: lines(&hidden),
            })
        }
        Assertion::Forbid => (!selected.is_empty()).then(|| Violation {
            kind: ViolationKind::Forbidden,
            amount: selected.len() as u64,
            observed: lines(&selected),
        }),
        Assertion::Count { listeners: want } => {
            let have = selected.len() as u64;
            (have != *want).then(|| {
                let mut observed = vec![format!("{have} listening")];
                observed.extend(lines(&selected));
                Violation {
                    kind: ViolationKind::Count,
                    amount: have.abs_diff(*want),
                    observed,
                }
            })
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::file::parse;
    use std::path::Path;

    pub(crate) fn listener(proto: Proto, addr: &str, port: u16, process: &str) -> Observed {
        Observed {
            socket: ListeningSocket::bound(proto, addr, port, 0),
            process: Arc::from(process),
            owner_hidden: false,
        }
    }

    /// A small host: sshd on both wildcards, a web server on 443 and on
    /// loopback 8080, a resolver on UDP 127.0.0.53:53, telnetd on 23.
    pub(crate) fn host() -> Vec<Observed> {
        use Proto::*;
        vec![
            listener(Tcp, "0.0.0.0", 22, "sshd"),
            listener(Tcp, "::", 22, "sshd"),
            listener(Tcp, "0.0.0.0", 443, "nginx"),
            // SO_REUSEPORT twin: the same binding.
            listener(Tcp, "0.0.0.0", 443, "nginx"),
            listener(Tcp, "127.0.0.1", 8080, "python3.11"),
            listener(Udp, "127.0.0.53", 53, "systemd-resolved"),
            listener(Tcp, "10.1.2.3", 23, "in.telnetd"),
        ]
    }

    fn eval(policy: &str, listeners: &[Observed]) -> Evaluation {
        evaluate(&parse(Path::new("p.toml"), policy).unwrap(), listeners)
    }

    fn only(e: &Evaluation) -> &Violation {
        assert_eq!(e.outcomes.len(), 1);
        e.outcomes[0].violation.as_ref().expect("a violation")
    }

    #[test]
    fn a_required_listener_passes_on_its_scope_and_is_missing_elsewhere() {
        let h = host();
        let ok = eval(
            "[[listen]]\nproto = \"tcp\"\nport = 22\nbind = \"public\"\nprocess = \"sshd\"\n",
            &h,
        );
        assert!(ok.ok());
        assert_eq!((ok.passed(), ok.failed(), ok.listeners), (1, 0, 7));
        let e = eval(
            "[[listen]]\nproto = \"tcp\"\nport = 8080\nbind = \"public\"\n",
            &h,
        );
        let v = only(&e);
        assert_eq!(v.kind, ViolationKind::Missing);
        assert_eq!(v.amount, 1);
        assert_eq!(v.observed, ["tcp 127.0.0.1:8080 (python3.11)"]);
        let e = eval("[[listen]]\nproto = \"udp\"\nport = 22\n", &h);
        assert_eq!(only(&e).observed, ["<none>"]);
        // Exact addresses, IPv4-mapped compared as IPv4; family filters.
        assert!(eval(
            "[[listen]]\nproto = \"udp\"\nport = 53\nbind = \"::ffff:127.0.0.53\"\n",
            &h
        )
        .ok());
        assert!(eval(
            "[[listen]]\nproto = \"tcp\"\nport = 22\nfamily = \"ipv6\"\nbind = \"::\"\n",
            &h
        )
        .ok());
        assert!(!eval(
            "[[listen]]\nproto = \"tcp\"\nport = 8080\nfamily = \"ipv6\"\n",
            &h
        )
        .ok());
    }

    #[test]
    fn an_owner_must_match_every_selected_listener() {
        let mut h = host();
        assert!(eval(
            "[[listen]]\nproto = \"tcp\"\nport = 8080\nprocess_ends_with = \"3.11\"\n",
            &h
        )
        .ok());
        let e = eval(
            "[[listen]]\nproto = \"tcp\"\nport = 8080\nprocess = \"python3\"\n",
            &h,
        );
        assert_eq!(only(&e).kind, ViolationKind::WrongOwner);
        // An impostor on [::]:22 beside the real sshd.
        h[1].process = Arc::from("");
        let e = eval(
            "[[listen]]\nproto = \"tcp\"\nport = 22\nprocess = \"sshd\"\n",
            &h,
        );
        let v = only(&e);
        assert_eq!(v.kind, ViolationKind::WrongOwner);
        assert_eq!(v.amount, 1);
        assert_eq!(v.observed, ["tcp [::]:22 (process not visible)"]);
    }

    #[test]
    fn an_owner_hidden_from_an_unprivileged_check_is_unknown_not_wrong() {
        let mut h = host();
        for l in &mut h[..2] {
            l.process = Arc::from("");
            l.owner_hidden = true;
        }
        let rule = "[[listen]]\nproto = \"tcp\"\nport = 22\nprocess = \"sshd\"\n";
        let v = only(&eval(rule, &h)).clone();
        assert_eq!(v.kind, ViolationKind::UnknownOwner);
        assert_eq!(v.kind.label(), "unknown_owner");
        assert_eq!(v.amount, 2);
        assert_eq!(
            v.observed[0],
            "tcp 0.0.0.0:22 (owner unknown: other users' processes are not visible)"
        );
        // A visible wrong owner beside a hidden one is still wrong.
        h[1].process = Arc::from("nc");
        assert_eq!(only(&eval(rule, &h)).kind, ViolationKind::WrongOwner);
    }

    #[test]
    fn forbidden_listeners_by_port_scope_and_exceptions() {
        let h = host();
        let e = eval("[[forbid]]\nport = 23\n", &h);
        let v = only(&e);
        assert_eq!(v.kind, ViolationKind::Forbidden);
        assert_eq!(v.observed, ["tcp 10.1.2.3:23 (in.telnetd)"]);
        // Nothing public on 23: telnetd binds a private address.
        assert!(eval("[[forbid]]\nport = 23\nbind = \"public\"\n", &h).ok());
        // Nothing public but 22 and 443 (the twin counts once).
        assert!(eval(
            "[[forbid]]\nproto = \"tcp\"\nbind = \"public\"\nexcept = [22, 443]\n",
            &h
        )
        .ok());
        let e = eval(
            "[[forbid]]\nproto = \"tcp\"\nbind = \"public\"\nexcept = [22]\n",
            &h,
        );
        let v = only(&e);
        assert_eq!(v.amount, 1);
        assert_eq!(v.observed, ["tcp 0.0.0.0:443 (nginx)"]);
    }

    #[test]
    fn counts_are_of_distinct_bindings() {
        let h = host();
        assert!(eval("[[count]]\nproto = \"tcp\"\nlisteners = 5\n", &h).ok());
        assert!(eval("[[count]]\nlisteners = 6\n", &h).ok());
        let e = eval("[[count]]\nbind = \"loopback\"\nlisteners = 1\n", &h);
        let v = only(&e);
        assert_eq!(v.kind, ViolationKind::Count);
        assert_eq!(v.amount, 1);
        assert_eq!(
            v.observed,
            [
                "2 listening",
                "tcp 127.0.0.1:8080 (python3.11)",
                "udp 127.0.0.53:53 (systemd-resolved)"
            ]
        );
    }

    #[test]
    fn a_whole_policy_counts_passes_and_failures_in_rule_order() {
        let e = eval(
            // Arrays of inline tables: the same rules as [[listen]] sections.
            r#"
            listen = [
                { name = "ssh", proto = "tcp", port = 22 },
                { name = "web", proto = "tcp", port = 80 },
            ]
            forbid = [{ name = "telnet", port = 23 }]
            count = [{ listeners = 6 }]
            "#,
            &host(),
        );
        assert_eq!((e.passed(), e.failed()), (2, 2));
        let v: Vec<(&str, &str)> = e.violations().map(|(r, v)| (r, v.kind.label())).collect();
        assert_eq!(v, [("web", "missing"), ("telnet", "forbidden")]);
    }
}
