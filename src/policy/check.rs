//! `tcp-info check --policy FILE`: one inventory of this network
//! namespace's listeners, the policy evaluated against it, the report.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use ahash::AHashSet;
use inetdiag::request::DumpRequest;
use inetdiag::{DiagSocket, InetDiagMsg};

use super::evaluate::{evaluate, Observed, ViolationKind};
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
    /// Only owners that could not be seen stand between the policy and a
    /// pass: neither a pass nor a failure.
    #[error("cannot tell who owns {listeners} listener(s) the policy names a program for: the processes of other users are not visible to uid {uid} (run as root, or with CAP_SYS_PTRACE)")]
    UnknownOwner { listeners: u64, uid: u32 },
}

/// Loads the policy, takes one inventory, writes the report to `out`;
/// `Ok(true)` when every assertion holds.
pub fn run(policy_path: &Path, out: &mut impl Write) -> Result<bool, CheckError> {
    let policy = file::load(policy_path)?;
    let listeners = inventory(Path::new("/proc"))?;
    let evaluation = evaluate(&policy, &listeners);
    report::write(out, policy_path, &evaluation)?;
    out.flush()?;
    undecided(&evaluation)?;
    Ok(evaluation.ok())
}

/// An error when the only violations are owners that could not be seen:
/// reporting those as a failure would be a false `wrong_owner`.
fn undecided(evaluation: &super::evaluate::Evaluation) -> Result<(), CheckError> {
    let violations: Vec<_> = evaluation
        .outcomes
        .iter()
        .filter_map(|o| o.violation.as_ref())
        .collect();
    let unknown = violations
        .iter()
        .filter(|v| v.kind == ViolationKind::UnknownOwner);
    let listeners: u64 = unknown.clone().map(|v| v.amount).sum();
    if listeners > 0 && unknown.count() == violations.len() {
        return Err(CheckError::UnknownOwner {
            listeners,
            uid: nix::unistd::geteuid().as_raw(),
        });
    }
    Ok(())
}

/// Whether some process's descriptors cannot be read: then a socket with
/// no visible owner may be anybody's.
fn other_processes_hidden(proc_root: &Path) -> bool {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return true;
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<u32>().is_ok())
        })
        .any(|e| {
            std::fs::read_dir(e.path().join("fd"))
                .is_err_and(|err| err.kind() == std::io::ErrorKind::PermissionDenied)
        })
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
    let hidden = other_processes_hidden(proc_root);
    Ok(sockets
        .into_iter()
        .map(|socket| Observed {
            process: names.name(socket.inode),
            socket,
            owner_hidden: hidden,
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
