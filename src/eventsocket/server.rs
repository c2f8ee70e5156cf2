//! The event socket server: a Unix stream socket on which every connected
//! client receives each published `FlowEvent` as one JSON line.
//!
//! Isolation is the point. In M-Lab's Go server one mutex-held blocking
//! write per client sits between the saver and every other client, so one
//! client that stops reading stalls the whole agent. Here:
//!
//! - [`Publisher::publish`] serializes the event once into shared bytes
//!   (`Arc<[u8]>`) and, under a mutex that guards only an in-memory list,
//!   appends them to each client's queue. It performs no I/O and never
//!   waits on a client.
//! - Each client has its own writer thread that drains its queue into the
//!   socket with blocking writes, batching whatever has queued up. A stuck
//!   client blocks only its own thread.
//! - A client whose queue already holds `queue_capacity` events when the
//!   next one arrives has fallen too far behind: it is removed, its socket is
//!   shut down (which also unblocks its writer), the drop is counted and
//!   logged.
//!
//! A thread per client rather than one `poll(2)` loop: clients are a handful
//! of sidecars, blocking writes keep per-client ordering trivially correct,
//! and a thread costs a small stack; a poll loop would need non-blocking
//! partial-write bookkeeping per client for no gain at this scale.
//!
//! Queues are unbounded channels whose length is checked before each push,
//! so memory grows only with a client's real backlog instead of being
//! preallocated per client.
//!
//! Clients may opt in to more than open/close (see [`tcpinfo_eventsocket::Subscription`]).
//! The writer thread also reads what its client writes, a few times a
//! second (more often just after connecting, when requests come), with the
//! socket's 1 ms receive timeout: a request never involves the publisher,
//! which only checks each client's subscription bits.

use std::fs;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
use tcpinfo_archive::Timestamp;
use tcpinfo_eventsocket::{
    FlowEvent, ListenerEvent, Subscribed, Subscription, SubscriptionRequest,
};

use super::requests::{RequestLine, RequestReader};
use crate::log::RateLimit;

/// Events a client may lag behind before it is disconnected, on top of
/// what the kernel's socket buffer holds (about a thousand more). Room for
/// the burst of opens at agent start on a busy server, while a client that
/// stops reading is cut off after a few seconds of traffic, not hours.
/// Memory is used only while a backlog exists.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8_192;

/// Clients beyond this are refused: each costs a thread.
pub const DEFAULT_MAX_CLIENTS: usize = 1024;

/// Clients of one user (the peer's uid, from `SO_PEERCRED`) beyond this
/// are refused, so one local user cannot take every slot from the others.
pub const DEFAULT_MAX_CLIENTS_PER_UID: usize = 64;

/// How often an idle writer checks whether its client hung up, so a client
/// that disconnects while no events flow releases its descriptor promptly.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(250);

/// For this long after a client connects, its requests are read this often,
/// so a subscription is acknowledged promptly; afterwards at the liveness
/// interval.
const EARLY_PERIOD: Duration = Duration::from_secs(2);
const EARLY_READ_INTERVAL: Duration = Duration::from_millis(20);

/// Longest request line a client may write.
pub const MAX_REQUEST: usize = 1024;

/// How long [`Server::shutdown`] lets writers deliver what is queued before
/// it cuts off clients that are not reading.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// Writers gather queued events into writes of about this size.
const WRITE_BATCH: usize = 64 * 1024;

const WRITER_STACK: usize = 128 * 1024;

/// Tunables of a [`Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// A client is disconnected when an event arrives while this many are
    /// already waiting for it.
    pub queue_capacity: usize,
    /// Connections beyond this many clients are closed at once.
    pub max_clients: usize,
    /// Connections beyond this many clients of the same user are closed
    /// at once.
    pub max_clients_per_uid: usize,
    /// Permission bits of the socket file (who may connect: connecting
    /// needs write permission); `None` leaves what bind(2) made, 0777 less
    /// the umask.
    pub mode: Option<u32>,
    /// Group of the socket file; `None` leaves the agent's.
    pub group: Option<u32>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_clients: DEFAULT_MAX_CLIENTS,
            max_clients_per_uid: DEFAULT_MAX_CLIENTS_PER_UID,
            mode: None,
            group: None,
        }
    }
}

/// The running event socket. Dropping it is the same as [`Server::shutdown`].
pub struct Server {
    path: PathBuf,
    /// Identity of the socket file we created, so shutdown never removes a
    /// file another process put in its place.
    file_id: Option<(u64, u64)>,
    listener: Arc<UnixListener>,
    hub: Arc<Hub>,
    writers: Arc<Mutex<Vec<Writer>>>,
    writers_done: Receiver<()>,
    accept_thread: Option<JoinHandle<()>>,
}

/// The saver's handle for publishing events. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Publisher {
    hub: Option<Arc<Hub>>,
}

/// State shared by the publisher, the accept thread and the writers.
struct Hub {
    clients: Mutex<Vec<Subscriber>>,
    /// `clients.len()`, readable without the lock so publishing to nobody
    /// costs one atomic load.
    client_count: AtomicUsize,
    stopping: AtomicBool,
    dropped: AtomicU64,
    options: ServerOptions,
    log: RateLimit,
}

struct Subscriber {
    id: u64,
    /// The connecting process's effective uid.
    uid: u32,
    queue: Sender<Arc<[u8]>>,
    stream: Arc<UnixStream>,
    /// [`Subscription::bit`]s the client asked for; set by its writer.
    subscriptions: Arc<AtomicU8>,
}

/// A writer thread and a weak handle on its socket, kept to cut off and
/// join writers at shutdown without holding their descriptors open.
struct Writer {
    stream: Weak<UnixStream>,
    thread: JoinHandle<()>,
}

impl Server {
    /// Serves events on a Unix socket at `path` with default options.
    pub fn start(path: &Path) -> io::Result<Server> {
        Server::start_with(path, ServerOptions::default())
    }

    /// Binds a Unix stream socket at `path` and starts accepting clients
    /// on a thread of its own. A dead socket at `path` (left by an unclean
    /// shutdown: nobody accepts on it) is replaced; anything else there —
    /// a live socket (another agent), a regular file, a directory, a
    /// symlink — is refused and left alone (see [`bind_in_place`]).
    pub fn start_with(path: &Path, options: ServerOptions) -> io::Result<Server> {
        let (listener, file_id) = bind_in_place(path, &options)?;
        let listener = Arc::new(listener);
        let hub = Arc::new(Hub {
            clients: Mutex::new(Vec::new()),
            client_count: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            options: ServerOptions {
                queue_capacity: options.queue_capacity.max(1),
                ..options
            },
            log: RateLimit::with_budget(20, 10_000),
        });
        let writers = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, writers_done) = crossbeam_channel::bounded(0);
        let accept_thread = {
            let listener = Arc::clone(&listener);
            let hub = Arc::clone(&hub);
            let writers = Arc::clone(&writers);
            thread::Builder::new()
                .name("eventsocket-accept".into())
                .spawn(move || accept_loop(&listener, &hub, &writers, done_tx))?
        };
        Ok(Server {
            path: path.to_path_buf(),
            file_id: Some(file_id),
            listener,
            hub,
            writers,
            writers_done,
            accept_thread: Some(accept_thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn publisher(&self) -> Publisher {
        Publisher {
            hub: Some(Arc::clone(&self.hub)),
        }
    }

    /// Clients disconnected so far for falling more than their queue behind.
    pub fn clients_dropped(&self) -> u64 {
        self.hub.dropped.load(Ordering::Relaxed)
    }

    /// Clients currently receiving events.
    pub fn clients(&self) -> usize {
        self.hub.client_count.load(Ordering::Relaxed)
    }

    /// Stops accepting, gives connected clients a moment to receive what is
    /// queued for them, closes every connection, joins all threads and
    /// removes the socket file.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(accept_thread) = self.accept_thread.take() else {
            return;
        };
        self.hub.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread: shutting down a listening socket makes a
        // blocked accept(2) return with an error.
        // SAFETY: the descriptor belongs to `self.listener`, which this
        // struct keeps alive (an `Arc` we hold), so it is open and ours;
        // shutdown(2) has no memory-safety preconditions beyond that.
        unsafe {
            libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR);
        }
        let _ = accept_thread.join();

        // Dropping the queues' senders lets each writer deliver its backlog
        // and then end.
        let subscribers = std::mem::take(&mut *self.hub.lock_clients());
        self.hub.client_count.store(0, Ordering::Relaxed);
        drop(subscribers);
        let writers = std::mem::take(&mut *lock(&self.writers));
        // Every writer holds a clone of the done sender; the channel
        // disconnects when the last writer has ended.
        let _ = self
            .writers_done
            .recv_deadline(Instant::now() + SHUTDOWN_GRACE);
        for writer in &writers {
            if let Some(stream) = writer.stream.upgrade() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
        for writer in writers {
            let _ = writer.thread.join();
        }

        let ours = fs::symlink_metadata(&self.path)
            .ok()
            .is_some_and(|m| m.file_type().is_socket() && Some((m.dev(), m.ino())) == self.file_id);
        if ours {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("path", &self.path)
            .field("clients", &self.clients())
            .field("clients_dropped", &self.clients_dropped())
            .finish()
    }
}

impl Publisher {
    /// A publisher connected to nothing, for when no event socket is
    /// configured (Go's `NullServer`).
    pub fn disabled() -> Self {
        Publisher { hub: None }
    }

    /// Queues `event` for every connected client. Never blocks on a client
    /// and never fails: with no clients the event is simply dropped. A
    /// client whose queue is full is disconnected instead.
    pub fn publish(&self, event: &FlowEvent) {
        let Some(hub) = self.live_hub() else { return };
        hub.deliver(&event.to_json_line(), None);
    }

    /// Queues `event` for the clients subscribed to
    /// [`Subscription::ListenerChange`] only; otherwise as [`Self::publish`].
    pub fn publish_listener_change(&self, event: &ListenerEvent) {
        let Some(hub) = self.live_hub() else { return };
        hub.deliver(&event.to_json_line(), Some(Subscription::ListenerChange));
    }

    fn live_hub(&self) -> Option<&Hub> {
        let hub = self.hub.as_deref()?;
        let idle =
            hub.client_count.load(Ordering::Relaxed) == 0 || hub.stopping.load(Ordering::Relaxed);
        (!idle).then_some(hub)
    }

    /// Clients disconnected so far for falling more than their queue behind
    /// (0 for a disabled publisher).
    pub fn clients_dropped(&self) -> u64 {
        self.hub
            .as_ref()
            .map_or(0, |hub| hub.dropped.load(Ordering::Relaxed))
    }

    /// Clients currently receiving events.
    pub fn clients(&self) -> usize {
        self.hub
            .as_ref()
            .map_or(0, |hub| hub.client_count.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("enabled", &self.hub.is_some())
            .finish()
    }
}

impl Hub {
    fn lock_clients(&self) -> MutexGuard<'_, Vec<Subscriber>> {
        lock(&self.clients)
    }

    /// Queues `line` for every client, or for those subscribed to `kind`.
    fn deliver(&self, line: &[u8], kind: Option<Subscription>) {
        let wanted = |client: &Subscriber| {
            kind.is_none_or(|k| client.subscriptions.load(Ordering::Relaxed) & k.bit() != 0)
        };
        let capacity = self.options.queue_capacity;
        let mut lagging = Vec::new();
        {
            let mut clients = self.lock_clients();
            // Serialized once, shared by every queue; not at all when
            // nobody wants it.
            if !clients.iter().any(wanted) {
                return;
            }
            let line: Arc<[u8]> = line.into();
            clients.retain(|client| {
                if !wanted(client) {
                    return true;
                }
                if client.queue.len() >= capacity {
                    lagging.push((client.id, Arc::clone(&client.stream)));
                    return false;
                }
                // Fails only when the writer has already ended.
                client.queue.send(Arc::clone(&line)).is_ok()
            });
            self.client_count.store(clients.len(), Ordering::Relaxed);
        }
        for (id, stream) in lagging {
            // Unblocks the writer if it is stuck in write(2); it then ends
            // and closes the descriptor.
            let _ = stream.shutdown(Shutdown::Both);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.log.log(format_args!(
                "eventsocket: client {id} fell more than {capacity} events behind; disconnected it"
            ));
        }
    }

    /// Forgets client `id`; false if it was already gone (dropped or shut
    /// down).
    fn remove(&self, id: u64) -> bool {
        let mut clients = self.lock_clients();
        let before = clients.len();
        clients.retain(|c| c.id != id);
        self.client_count.store(clients.len(), Ordering::Relaxed);
        clients.len() != before
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What is at the event socket's path before the agent binds it.
#[derive(Debug, PartialEq, Eq)]
enum AtPath {
    Nothing,
    /// A socket nobody accepts on (connect: `ECONNREFUSED`).
    DeadSocket,
}

/// Judges what is at `path`: only nothing or a dead socket may be replaced.
fn inspect(path: &Path) -> io::Result<AtPath> {
    let refuse = |what: &str| {
        io::Error::new(
            ErrorKind::AlreadyExists,
            format!("{what}; refusing to replace it"),
        )
    };
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(AtPath::Nothing),
        Err(e) => return Err(with_path(e, "cannot inspect event socket", path)),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(refuse("is a symbolic link"));
    }
    if kind.is_dir() {
        return Err(refuse("is a directory"));
    }
    if !kind.is_socket() {
        return Err(refuse("exists and is not a socket"));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(refuse(
            "is a live socket (another tcp-info is serving events there)",
        )),
        Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => Ok(AtPath::DeadSocket),
        Err(e) => Err(with_path(e, "cannot tell whether a process serves", path)),
    }
}

/// Binds the socket without a moment where it exists at `path` with other
/// permissions than asked, and without following a link anyone planted:
/// it is bound inside a fresh 0700 directory of ours next to `path`, given
/// its group and mode there (where no one else can reach or swap it), then
/// renamed into place with `RENAME_NOREPLACE`, after a dead socket at
/// `path` was removed. Anything that appears at `path` meanwhile is not
/// replaced: the start fails instead. Returns the listener and the socket
/// file's (device, inode).
fn bind_in_place(path: &Path, options: &ServerOptions) -> io::Result<(UnixListener, (u64, u64))> {
    use nix::fcntl::{open, renameat2, OFlag, RenameFlags};
    use nix::sys::stat::{fchmodat, FchmodatFlags, Mode};
    use nix::unistd::{fchownat, Gid};
    use std::os::fd::AsRawFd as _;

    let at_path = inspect(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| with_path(ErrorKind::InvalidInput.into(), "no file name in", path))?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let parent_fd = open(
        parent,
        OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
        Mode::empty(),
    )
    .map_err(|e| with_path(e.into(), "cannot open the directory of", path))?;
    let private = parent.join(format!(
        ".{}.binding.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::os::unix::fs::DirBuilderExt::mode(&mut fs::DirBuilder::new(), 0o700)
        .create(&private)
        .map_err(|e| with_path(e, "cannot create a private directory next to", path))?;
    let bound = (|| -> io::Result<(UnixListener, (u64, u64))> {
        let dir = open(
            &private,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_RDONLY,
            Mode::empty(),
        )?;
        // Through the descriptor: whatever happens to the name `private`,
        // the socket is made in the directory we created.
        let in_dir = PathBuf::from(format!("/proc/self/fd/{}/s", dir.as_raw_fd()));
        let listener = UnixListener::bind(&in_dir)?;
        if let Some(gid) = options.group {
            fchownat(
                &dir,
                "s",
                None,
                Some(Gid::from_raw(gid)),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("cannot give group {gid} to it: {e}"),
                )
            })?;
        }
        if let Some(mode) = options.mode {
            // "s" is the socket just bound: only we can write into `dir`.
            fchmodat(
                &dir,
                "s",
                Mode::from_bits_truncate(mode),
                FchmodatFlags::FollowSymlink,
            )
            .map_err(|e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("cannot set mode {mode:04o} on it: {e}"),
                )
            })?;
        }
        if at_path == AtPath::DeadSocket {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(with_path(e, "cannot remove dead event socket", path)),
            }
        }
        renameat2(&dir, "s", &parent_fd, name, RenameFlags::RENAME_NOREPLACE).map_err(|e| {
            if e == nix::errno::Errno::EEXIST {
                io::Error::new(
                    ErrorKind::AlreadyExists,
                    "something was put there while the agent started; refusing to replace it",
                )
            } else {
                with_path(e.into(), "cannot move the event socket to", path)
            }
        })?;
        let meta = fs::symlink_metadata(path)?;
        Ok((listener, (meta.dev(), meta.ino())))
    })();
    let _ = fs::remove_file(private.join("s"));
    let _ = fs::remove_dir(&private);
    // Refusals say what is at the path; the caller names the path.
    bound.map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => e,
        _ => with_path(e, "cannot bind event socket", path),
    })
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn accept_loop(
    listener: &UnixListener,
    hub: &Arc<Hub>,
    writers: &Mutex<Vec<Writer>>,
    done: Sender<()>,
) {
    let mut next_id = 0u64;
    loop {
        let accepted = listener.accept();
        if hub.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                hub.log.log(format_args!("eventsocket: accept failed: {e}"));
                // Out of descriptors or memory: do not spin while it lasts.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        reap_finished(writers);
        if hub.client_count.load(Ordering::Relaxed) >= hub.options.max_clients {
            hub.log.log(format_args!(
                "eventsocket: refusing client: already {} clients",
                hub.options.max_clients
            ));
            continue;
        }
        let uid = match getsockopt(&stream, PeerCredentials) {
            Ok(credentials) => credentials.uid(),
            Err(e) => {
                hub.log.log(format_args!(
                    "eventsocket: refusing client: no peer credentials: {e}"
                ));
                continue;
            }
        };
        let per_uid = hub.options.max_clients_per_uid;
        if at_cap(hub.lock_clients().iter().map(|c| c.uid), uid, per_uid) {
            hub.log.log(format_args!(
                "eventsocket: refusing client: uid {uid} already has {per_uid} clients"
            ));
            continue;
        }
        next_id += 1;
        let id = next_id;
        // A short receive timeout turns the idle writer's hang-up check
        // into a quick non-blocking probe; writes stay blocking.
        if let Err(e) = stream.set_read_timeout(Some(Duration::from_millis(1))) {
            hub.log.log(format_args!("eventsocket: client {id}: {e}"));
            continue;
        }
        let stream = Arc::new(stream);
        let (queue, events) = crossbeam_channel::unbounded();
        let subscriptions = Arc::new(AtomicU8::new(0));
        // Registered before its writer starts, so a writer that ends at
        // once always finds its entry to remove.
        {
            let mut clients = hub.lock_clients();
            clients.push(Subscriber {
                id,
                uid,
                queue,
                stream: Arc::clone(&stream),
                subscriptions: Arc::clone(&subscriptions),
            });
            hub.client_count.store(clients.len(), Ordering::Relaxed);
        }
        let weak = Arc::downgrade(&stream);
        let spawned = {
            let hub = Arc::clone(hub);
            let done = done.clone();
            thread::Builder::new()
                .name(format!("eventsocket-client-{id}"))
                .stack_size(WRITER_STACK)
                .spawn(move || {
                    serve_client(id, &stream, &events, &hub, &subscriptions);
                    drop(done);
                })
        };
        match spawned {
            Ok(thread) => {
                hub.log
                    .log(format_args!("eventsocket: client {id} connected"));
                lock(writers).push(Writer {
                    stream: weak,
                    thread,
                });
            }
            Err(e) => {
                hub.log.log(format_args!(
                    "eventsocket: cannot start writer for client {id}: {e}"
                ));
                hub.remove(id);
            }
        }
    }
}

/// Whether `uid` already has `cap` clients among `connected` (their uids).
/// Only the accept thread adds clients, so the count cannot grow between
/// this check and the addition.
fn at_cap(connected: impl Iterator<Item = u32>, uid: u32, cap: usize) -> bool {
    connected.filter(|&u| u == uid).count() >= cap
}

/// Joins writers that have ended, so their threads do not pile up.
fn reap_finished(writers: &Mutex<Vec<Writer>>) {
    let finished: Vec<Writer> = {
        let mut writers = lock(writers);
        let (done, running) = std::mem::take(&mut *writers)
            .into_iter()
            .partition(|w| w.thread.is_finished());
        *writers = running;
        done
    };
    for writer in finished {
        let _ = writer.thread.join();
    }
}

/// One client's writer: delivers queued lines until the queue is closed
/// (shutdown or drop), a write fails, or the client hangs up; and reads the
/// client's requests between writes.
fn serve_client(
    id: u64,
    stream: &UnixStream,
    events: &Receiver<Arc<[u8]>>,
    hub: &Hub,
    subscriptions: &AtomicU8,
) {
    let connected = Instant::now();
    let mut client = ClientRequests {
        id,
        reader: RequestReader::new(MAX_REQUEST),
        complained: false,
    };
    let mut next_read = connected;
    let mut batch = Vec::with_capacity(WRITE_BATCH);
    let reason = loop {
        let interval = if connected.elapsed() < EARLY_PERIOD {
            EARLY_READ_INTERVAL
        } else {
            LIVENESS_INTERVAL
        };
        match events.recv_timeout(interval) {
            Ok(line) => {
                batch.clear();
                batch.extend_from_slice(&line);
                while batch.len() < WRITE_BATCH {
                    match events.try_recv() {
                        Ok(line) => batch.extend_from_slice(&line),
                        Err(_) => break,
                    }
                }
                if let Err(e) = write_to(stream, &batch) {
                    break e;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        if now >= next_read {
            next_read = now + interval;
            if let Err(e) = client.read(stream, hub, subscriptions) {
                break e;
            }
        }
    };
    // A client the publisher dropped was logged there already.
    if hub.remove(id) {
        hub.log
            .log(format_args!("eventsocket: client {id} {reason}"));
    }
}

/// Writes `bytes`; the error is why the client is gone.
fn write_to(stream: &UnixStream, bytes: &[u8]) -> Result<(), String> {
    let mut writer = stream;
    writer.write_all(bytes).map_err(|e| match e.kind() {
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => "hung up".to_string(),
        _ => format!("write failed: {e}"),
    })
}

/// What one client asks for.
struct ClientRequests {
    id: u64,
    reader: RequestReader,
    /// Whether a line that is not a request was logged already.
    complained: bool,
}

impl ClientRequests {
    /// Reads what the client wrote (up to 64 KiB, waiting at most the
    /// socket's 1 ms receive timeout) and acts on complete requests. The
    /// error is why the client is gone: it closed its end (clients keep
    /// both directions open), or the acknowledgement could not be written.
    fn read(
        &mut self,
        stream: &UnixStream,
        hub: &Hub,
        subscriptions: &AtomicU8,
    ) -> Result<(), String> {
        let mut scratch = [0u8; 512];
        for _ in 0..128 {
            let mut reader = stream;
            let n = match reader.read(&mut scratch) {
                Ok(0) => return Err("hung up".into()),
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(())
                }
                Err(_) => return Err("hung up".into()),
            };
            let mut acks = Vec::new();
            let (id, complained) = (self.id, &mut self.complained);
            self.reader.feed(&scratch[..n], |line| {
                let text = match line {
                    RequestLine::Text(text) => text,
                    RequestLine::TooLong => b"<a line over 1024 bytes>",
                };
                match SubscriptionRequest::parse(text) {
                    Some(request) => {
                        subscriptions.store(request.bits(), Ordering::Relaxed);
                        let names: Vec<&str> = request.kinds.iter().map(|k| k.name()).collect();
                        let ignored = if request.unknown.is_empty() {
                            String::new()
                        } else {
                            format!(" (unknown kinds ignored: {})", request.unknown.join(", "))
                        };
                        hub.log.log(format_args!(
                            "eventsocket: client {id} subscribed to [{}]{ignored}",
                            names.join(", ")
                        ));
                        acks.extend(
                            Subscribed {
                                timestamp: Timestamp::from_unix_millis(unix_millis()),
                                kinds: request.kinds,
                            }
                            .to_json_line(),
                        );
                    }
                    None if !std::mem::replace(complained, true) => {
                        let shown = &text[..text.len().min(80)];
                        hub.log.log(format_args!(
                            "eventsocket: client {id} wrote {:?}, which is not a subscription request like {{\"Subscribe\":[\"ListenerChange\"]}}; ignored, it keeps the open/close stream",
                            String::from_utf8_lossy(shown)
                        ));
                    }
                    None => {}
                }
            });
            // Written by this thread, before anything queued after the
            // subscription bits changed: the acknowledgement precedes every
            // event it grants.
            if !acks.is_empty() {
                write_to(stream, &acks)?;
            }
        }
        Ok(())
    }
}

fn unix_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uid_at_its_cap_is_refused_and_other_uids_are_not() {
        let connected = [0, 1000, 0, 0, 1000];
        assert!(at_cap(connected.into_iter(), 0, 3));
        assert!(!at_cap(connected.into_iter(), 0, 4));
        assert!(!at_cap(connected.into_iter(), 1000, 3));
        assert!(!at_cap(connected.into_iter(), 65534, 1));
        assert!(at_cap(std::iter::empty(), 0, 0));
    }
}
