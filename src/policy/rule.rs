//! A validated listener policy: the rules, and which listeners each one
//! selects.

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use crate::address::Scope;
use crate::exposure::inventory::{family_label, ListeningSocket, Proto};

/// Which bound addresses a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// Every address.
    Any,
    /// Addresses of one scope, as the exposure gauges classify them (the
    /// wildcards 0.0.0.0 and :: are public).
    Scope(Scope),
    /// Exactly this address (IPv4-mapped IPv6 compares as IPv4).
    Addr(IpAddr),
}

impl Bind {
    pub fn matches(self, listener: &ListeningSocket) -> bool {
        match self {
            Bind::Any => true,
            Bind::Scope(scope) => listener.scope == scope,
            Bind::Addr(addr) => listener.addr.to_canonical() == addr.to_canonical(),
        }
    }
}

impl fmt::Display for Bind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Bind::Any => f.write_str("any"),
            Bind::Scope(s) => f.write_str(s.label()),
            Bind::Addr(a) => write!(f, "{a}"),
        }
    }
}

/// The program that must own a listener: its file name, as the
/// `process` label of `tcpinfo_listening_ports` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessMatch {
    Exact(String),
    /// Like tstconfig's `assert_ends_with`.
    EndsWith(String),
}

impl ProcessMatch {
    pub fn matches(&self, name: &str) -> bool {
        match self {
            ProcessMatch::Exact(p) => name == p,
            ProcessMatch::EndsWith(p) => name.ends_with(p.as_str()),
        }
    }
}

/// Which listeners a rule looks at; `None` fields match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub proto: Option<Proto>,
    /// `AF_INET` or `AF_INET6`.
    pub family: Option<u8>,
    pub port: Option<u16>,
    /// Ports left out when `port` is `None`.
    pub except: Vec<u16>,
    pub bind: Bind,
}

impl Selector {
    pub fn matches(&self, l: &ListeningSocket) -> bool {
        self.proto.is_none_or(|p| p == l.proto)
            && self.family.is_none_or(|f| f == l.family)
            && match self.port {
                Some(p) => p == l.port,
                None => !self.except.contains(&l.port),
            }
            && self.bind.matches(l)
    }

    /// `tcp port 22 on public`, `tcp/udp any port but 22, 443 on any`.
    fn describe(&self, out: &mut String) {
        out.push_str(self.proto.map_or("tcp/udp", Proto::label));
        if let Some(f) = self.family {
            let _ = write!(out, " {}", family_label(f));
        }
        match self.port {
            Some(p) => {
                let _ = write!(out, " port {p}");
            }
            None if self.except.is_empty() => out.push_str(" any port"),
            None => {
                out.push_str(" any port but ");
                let ports: Vec<String> = self.except.iter().map(u16::to_string).collect();
                out.push_str(&ports.join(", "));
            }
        }
        let _ = write!(out, " on {}", self.bind);
    }

    /// The part of a default rule name that says what it selects:
    /// `tcp-22-public`.
    fn slug(&self) -> String {
        let mut s = self.proto.map_or("any", Proto::label).to_owned();
        if let Some(f) = self.family {
            s.push('-');
            s.push_str(family_label(f));
        }
        match self.port {
            Some(p) => {
                let _ = write!(s, "-{p}");
            }
            None => s.push_str("-all"),
        }
        if self.bind != Bind::Any {
            let _ = write!(s, "-{}", self.bind);
        }
        s
    }
}

/// What a rule asserts about the listeners its selector picks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assertion {
    /// At least one must listen, and every one must be owned by `process`
    /// when given.
    Listen { process: Option<ProcessMatch> },
    /// None may listen.
    Forbid,
    /// Exactly this many distinct bindings (proto, address, port) listen.
    Count { listeners: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The `rule` label and the report's name; unique within a policy.
    pub name: String,
    pub selector: Selector,
    pub assertion: Assertion,
}

impl Rule {
    /// The name a rule gets when the file gives none: `listen-tcp-22`,
    /// `forbid-any-23-public`, `count-tcp-all`.
    pub fn default_name(selector: &Selector, assertion: &Assertion) -> String {
        let kind = match assertion {
            Assertion::Listen { .. } => "listen",
            Assertion::Forbid => "forbid",
            Assertion::Count { .. } => "count",
        };
        format!("{kind}-{}", selector.slug())
    }

    /// The assertion in words, for the report.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        match &self.assertion {
            Assertion::Listen { process } => {
                out.push_str("listen ");
                self.selector.describe(&mut out);
                match process {
                    Some(ProcessMatch::Exact(p)) => {
                        let _ = write!(out, ", owned by {p}");
                    }
                    Some(ProcessMatch::EndsWith(p)) => {
                        let _ = write!(out, ", owned by a program ending with {p}");
                    }
                    None => {}
                }
            }
            Assertion::Forbid => {
                out.push_str("forbid ");
                self.selector.describe(&mut out);
            }
            Assertion::Count { listeners } => {
                out.push_str("count ");
                self.selector.describe(&mut out);
                let _ = write!(out, ": exactly {listeners}");
            }
        }
        out
    }
}

/// A validated policy: at least one rule, names unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
}
