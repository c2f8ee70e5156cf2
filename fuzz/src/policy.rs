//! Listener policy files (`-listen-policy`, `tcp-info check --policy`):
//! the same text as TOML and as JSON, then evaluated against a small
//! inventory and reported.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;

use tcp_info::address::Scope;
use tcp_info::exposure::inventory::{ListeningSocket, Proto};
use tcp_info::policy::{evaluate, file, report, Observed};

use crate::assert_one_line;

/// One input is the text of one policy file (refused unless UTF-8, as
/// loading a file refuses it).
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["policy.toml", "policy.json"] {
        let path = Path::new(name);
        match file::parse(path, text) {
            Ok(policy) => {
                let evaluation = evaluate(&policy, &inventory());
                let mut out = Vec::new();
                report::write(&mut out, path, &evaluation).expect("a report into memory");
                let _ = (evaluation.passed(), evaluation.failed(), evaluation.ok());
            }
            Err(e) => {
                let message = e.to_string();
                assert!(
                    message.starts_with(name),
                    "error does not name the file: {message}"
                );
                assert_one_line("policy", &message);
            }
        }
    }
}

/// A few listeners of every scope, family and protocol.
fn inventory() -> Vec<Observed> {
    let listeners: [(Proto, IpAddr, u16, Scope, &str); 5] = [
        (
            Proto::Tcp,
            Ipv4Addr::UNSPECIFIED.into(),
            22,
            Scope::Public,
            "sshd",
        ),
        (
            Proto::Tcp,
            Ipv6Addr::UNSPECIFIED.into(),
            443,
            Scope::Public,
            "nginx",
        ),
        (
            Proto::Tcp,
            Ipv4Addr::LOCALHOST.into(),
            9090,
            Scope::Loopback,
            "",
        ),
        (
            Proto::Udp,
            Ipv4Addr::new(10, 0, 0, 1).into(),
            53,
            Scope::Private,
            "unbound",
        ),
        (
            Proto::Udp,
            Ipv6Addr::LOCALHOST.into(),
            323,
            Scope::Loopback,
            "chronyd",
        ),
    ];
    listeners
        .into_iter()
        .enumerate()
        .map(|(i, (proto, addr, port, scope, process))| Observed {
            socket: ListeningSocket {
                proto,
                family: if addr.is_ipv4() { 2 } else { 10 },
                scope,
                addr,
                port,
                inode: i as u32 + 1,
            },
            process: Arc::from(process),
            // Some owners hidden, as `check` run by a user sees them.
            owner_hidden: i % 2 == 0,
        })
        .collect()
}
