//! The exposure thread: takes the TCP inventories the poller's
//! [`InventoryObserver`] hands over, adds UDP listeners from its own
//! sock_diag dump and process names from /proc, and publishes the summary.
//! All the I/O of the exposure gauges happens here, off the polling path
//! and off the scrape path.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use ahash::AHashSet;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use inetdiag::DiagSocket;

use super::changes::{ChangeObserver, ListenerChanges};
use super::inventory::{dump_udp_listeners, ListeningSocket, Proto, TcpInventory};
use super::observer::{InventoryObserver, INVENTORY_INTERVAL};
use super::process::ProcessNames;
use super::remote::RemoteTracker;
use super::summary::{ExposureSummary, SummaryCell};
use crate::log::RateLimit;

static UDP_ERRORS: RateLimit = RateLimit::new(60_000);

/// Something that wants every inventory's full listener list (TCP and
/// UDP, before any series cap) with the programs owning them; called on
/// the exposure thread, so it may do modest work (the listener policy).
pub trait ListenerHook: Send {
    fn listeners(&mut self, listeners: &[ListeningSocket], process: &dyn Fn(u32) -> Arc<str>);
}

/// What the worker does with every inventory besides the gauges.
pub struct WorkerHooks {
    /// Where listener changes are announced (the event socket); `()` for
    /// nowhere. They are counted and logged either way.
    pub changes: Box<dyn ChangeObserver>,
    /// Per-peer connection states (`-remote-states`).
    pub remote: Option<RemoteTracker>,
    /// Consumers of the full listener list (the listener policy).
    pub listeners: Vec<Box<dyn ListenerHook>>,
}

impl Default for WorkerHooks {
    fn default() -> Self {
        Self {
            changes: Box::new(()),
            remote: None,
            listeners: Vec::new(),
        }
    }
}

pub struct ExposureWorker {
    /// The poller's side, to be added to its observers: it walks the cache
    /// and hands the inventories to this thread.
    pub observer: InventoryObserver,
    pub thread: JoinHandle<()>,
}

impl ExposureWorker {
    /// Starts the thread, which publishes into `cell`; it exits once the
    /// observer is dropped.
    pub fn spawn(
        cell: Arc<SummaryCell>,
        proc_root: impl Into<PathBuf>,
        hooks: WorkerHooks,
    ) -> io::Result<Self> {
        // Full means the worker is busy and the poller drops this
        // inventory (a newer one follows shortly).
        let (tx, rx) = bounded(1);
        let WorkerHooks {
            changes,
            remote,
            listeners,
        } = hooks;
        let peers = remote.as_ref().map(|r| r.filter().clone());
        let observer = InventoryObserver::new(tx, Arc::clone(&cell), peers);
        let changes = ListenerChanges::new(changes);
        let names = ProcessNames::new(proc_root.into());
        let thread = thread::Builder::new()
            .name("exposure".into())
            .spawn(move || run(rx, cell, names, changes, remote, listeners))?;
        Ok(Self { observer, thread })
    }
}

fn run(
    inventories: Receiver<TcpInventory>,
    cell: Arc<SummaryCell>,
    mut names: ProcessNames,
    mut changes: ListenerChanges,
    mut remote: Option<RemoteTracker>,
    mut hooks: Vec<Box<dyn ListenerHook>>,
) {
    let mut udp_socket = match DiagSocket::new() {
        Ok(s) => Some(s),
        Err(e) => {
            log_warn!(
                "exposure: no UDP listeners in the gauges: cannot open NETLINK_SOCK_DIAG: {e}"
            );
            None
        }
    };
    let mut tcp: Option<TcpInventory> = None;
    let mut udp: Vec<ListeningSocket> = Vec::new();
    let mut next_udp = Instant::now();
    loop {
        // Which halves are fresh this round: only those are compared for
        // listener changes (a kept UDP list after a failed dump is not news).
        let (mut fresh_tcp, mut fresh_udp) = (false, false);
        match inventories.recv_timeout(INVENTORY_INTERVAL) {
            Ok(inventory) => {
                if let Some(remote) = remote.as_mut() {
                    remote.update(&inventory, Instant::now());
                }
                (tcp, fresh_tcp) = (Some(inventory), true);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if let (Some(socket), true) = (udp_socket.as_mut(), now >= next_udp) {
            let mut fresh = Vec::with_capacity(udp.len());
            match dump_udp_listeners(socket, &mut fresh) {
                Ok(()) => (udp, fresh_udp) = (fresh, true),
                // Keep the last good list rather than blink every series.
                Err(e) => {
                    cell.udp_dump_errors.fetch_add(1, Relaxed);
                    warn_limited!(UDP_ERRORS, "exposure: UDP sock_diag dump failed: {e}");
                }
            }
            next_udp = now + INVENTORY_INTERVAL;
        }
        // Nothing is published before the poller's first inventory: an
        // empty TCP side would read as "nothing listens".
        let Some(current) = tcp.as_ref() else {
            continue;
        };
        let inodes: AHashSet<u32> = current
            .listeners
            .iter()
            .chain(&udp)
            .map(|l| l.inode)
            .collect();
        let scans = names.scans();
        names.resolve(&inodes, now);
        cell.proc_scans.fetch_add(names.scans() - scans, Relaxed);
        if fresh_tcp {
            changes.compare(Proto::Tcp, &current.listeners, |i| names.name(i));
        }
        if fresh_udp {
            changes.compare(Proto::Udp, &udp, |i| names.name(i));
        }
        changes.report(&cell.listener_changes);
        cell.publish(ExposureSummary::build(current, &udp, |inode| {
            names.name(inode)
        }));
        if !hooks.is_empty() {
            let all: Vec<ListeningSocket> = current.listeners.iter().chain(&udp).copied().collect();
            for hook in &mut hooks {
                hook.listeners(&all, &|inode| names.name(inode));
            }
        }
    }
}
