//! `tcp-info check --policy FILE`: one inventory of this network
//! namespace's listeners, the policy evaluated against it, the report.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use ahash::AHashSet;
use inetdiag::request::DumpRequest;
use inetdiag::{DiagSocket, InetDiagMsg};

use super::evaluate::{evaluate, Observed};
use super::file::{self, PolicyError};
use super::report;
use crate::exposure::inventory::{dump_udp_listeners, ListeningSocket, Proto};
use crate::exposure::process::ProcessNames;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("listener inventory: {0}")]
    Inventory(#[from] inetdiag::Error),
    #[error("writing the report: {0}")]
    Report(#[from] std::io::Error),
}

/// Loads the policy, takes one inventory, writes the report to `out`;
/// `Ok(true)` when every assertion holds.
pub fn run(policy_path: &Path, out: &mut impl Write) -> Result<bool, CheckError> {
    let policy = file::load(policy_path)?;
    let listeners = inventory(Path::new("/proc"))?;
    let evaluation = evaluate(&policy, &listeners);
    report::write(out, policy_path, &evaluation)?;
    out.flush()?;
    Ok(evaluation.ok())
}

/// Every listening socket (TCP in LISTEN, unconnected bound UDP) with the
/// program owning it.
pub fn inventory(proc_root: &Path) -> Result<Vec<Observed>, inetdiag::Error> {
    let mut socket = DiagSocket::new()?;
    let mut sockets = Vec::new();
    // A dump the kernel interrupted (the socket table changed under it) is
    // incomplete; a few retries get a consistent one.
    let mut attempts = 0;
    loop {
        sockets.clear();
        match dump(&mut socket, &mut sockets) {
            Err(inetdiag::Error::Interrupted) if attempts < 3 => attempts += 1,
            other => break other?,
        }
    }
    let inodes: AHashSet<u32> = sockets.iter().map(|s| s.inode).collect();
    let mut names = ProcessNames::new(proc_root);
    names.resolve(&inodes, Instant::now());
    Ok(sockets
        .into_iter()
        .map(|socket| Observed {
            process: names.name(socket.inode),
            socket,
        })
        .collect())
}

fn dump(socket: &mut DiagSocket, out: &mut Vec<ListeningSocket>) -> Result<(), inetdiag::Error> {
    for family in [inetdiag::AF_INET6, inetdiag::AF_INET] {
        let request = DumpRequest {
            family,
            protocol: inetdiag::IPPROTO_TCP,
            states: 1 << inetdiag::TCP_LISTEN,
            extensions: 0,
        };
        socket
            .dump(&request, |payload| {
                if let Ok(msg) = InetDiagMsg::parse(payload) {
                    if msg.state() == inetdiag::TCP_LISTEN {
                        out.push(ListeningSocket::from_msg(Proto::Tcp, &msg));
                    }
                }
            })?
            .consistent()?;
    }
    dump_udp_listeners(socket, out)
}
