//! Converting many archives on several threads while writing their rows in
//! input order.
//!
//! Each worker takes the next archive, converts it into chunks of whole
//! rows, and sends them down that archive's own bounded channel; the
//! writer drains the channels in input order. Memory is bounded by the
//! thread count, never by the number of archives: a worker at most
//! [`DEPTH`] chunks ahead of the writer on one archive blocks, and a worker
//! may not take an archive more than [`AHEAD_PER_THREAD`] × threads places
//! after the one being written (tiny archives never fill a channel, so
//! without that bound the workers would convert every archive into memory
//! while the writer is still on the first). At most threads ×
//! `AHEAD_PER_THREAD` × (`DEPTH` + 1) chunks exist at once.
//!
//! No deadlock: archives are taken in order, so the one the writer waits
//! for is always taken (it is within the window) and held by a worker that
//! only ever waits on the writer.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;

use tcpinfo_archive::csv::Columns;

use crate::inputs::Input;
use crate::job::{convert_one, Failure, CHUNK};

/// Chunks a worker may run ahead of the writer, per archive.
const DEPTH: usize = 4;

/// Archives that may be taken ahead of the one being written, per thread.
const AHEAD_PER_THREAD: usize = 2;

enum Message {
    Rows(Vec<u8>),
    Done(Result<(), Failure>),
}

/// Which archives are taken, and the channels the writer has yet to drain.
struct Queue {
    /// The next archive to take.
    next: usize,
    /// Archives the writer is done with (it is writing archive `written`).
    written: usize,
    /// The channel of each archive taken and not yet reached by the writer,
    /// at its index modulo the window.
    channels: Vec<Option<Receiver<Message>>>,
    /// The writer gave up: take nothing more.
    stopped: bool,
}

impl Queue {
    /// Takes nothing more; dropping the channels not yet drained makes the
    /// workers' sends fail, so they stop early.
    fn stop(&mut self) {
        self.stopped = true;
        self.channels.iter_mut().for_each(|c| *c = None);
    }
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
    /// Archives that may be taken at once: `written..written + window`.
    window: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panicking worker is a bug; its panic is re-raised by the scope,
        // and the queue itself is never left half-updated.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Queue>) -> MutexGuard<'a, Queue> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
}

/// Converts `inputs` on `threads` workers, calling `write` with each chunk
/// of rows and `done` with each archive's outcome, both in input order.
/// Stops early (and returns the error) if `write` fails.
pub fn run(
    inputs: &[Input],
    threads: usize,
    columns: Columns,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    mut done: impl FnMut(Result<(), Failure>),
) -> std::io::Result<()> {
    let threads = threads.clamp(1, inputs.len().max(1));
    let window = threads * AHEAD_PER_THREAD;
    let shared = Shared {
        queue: Mutex::new(Queue {
            next: 0,
            written: 0,
            channels: (0..window).map(|_| None).collect(),
            stopped: false,
        }),
        changed: Condvar::new(),
        window,
    };

    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let _stop_on_panic = PanicGuard(&shared);
                worker(inputs, columns, &shared);
            });
        }
        let mut result = Ok(());
        for i in 0..inputs.len() {
            let rx = {
                let mut queue = shared.lock();
                loop {
                    if let Some(rx) = queue.channels[i % window].take() {
                        break Some(rx);
                    }
                    if queue.stopped {
                        break None;
                    }
                    queue = shared.wait(queue);
                }
            };
            let Some(rx) = rx else { break };
            // A closed channel without `Done` means the worker stopped (its
            // send failed); nothing more to do for this archive.
            for msg in rx.iter() {
                match msg {
                    Message::Rows(rows) => {
                        if result.is_ok() {
                            result = write(&rows);
                        }
                    }
                    Message::Done(outcome) if result.is_ok() => done(outcome),
                    Message::Done(_) => {}
                }
            }
            let mut queue = shared.lock();
            queue.written += 1;
            if result.is_err() {
                queue.stop();
            }
            shared.changed.notify_all();
            if queue.stopped {
                break;
            }
        }
        result
    })
}

/// Stops everything if a worker panics, so that the writer does not wait
/// forever for an archive nobody will convert (the scope then re-raises
/// the panic).
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.lock().stop();
            self.0.changed.notify_all();
        }
    }
}

/// Takes the next archive within the window (waiting for the writer to
/// move on when there is none); `None` when there is nothing left to do.
fn take(inputs: &[Input], shared: &Shared) -> Option<(usize, SyncSender<Message>)> {
    let mut queue = shared.lock();
    loop {
        if queue.stopped || queue.next >= inputs.len() {
            return None;
        }
        if queue.next < queue.written + shared.window {
            break;
        }
        queue = shared.wait(queue);
    }
    let i = queue.next;
    queue.next += 1;
    let (tx, rx) = sync_channel(DEPTH);
    queue.channels[i % shared.window] = Some(rx);
    shared.changed.notify_all();
    Some((i, tx))
}

fn worker(inputs: &[Input], columns: Columns, shared: &Shared) {
    while let Some((i, tx)) = take(inputs, shared) {
        let mut buf = Vec::with_capacity(CHUNK + CHUNK / 4);
        let done = convert_one(&inputs[i], columns, &mut buf, |rows| {
            // A full chunk is handed on as is; the short last one of an
            // archive is copied, so that a tiny archive waiting for the
            // writer holds its rows, not a chunk-sized buffer.
            let part = if rows.len() >= CHUNK {
                std::mem::replace(rows, Vec::with_capacity(CHUNK + CHUNK / 4))
            } else {
                let part = rows.clone();
                rows.clear();
                part
            };
            tx.send(Message::Rows(part))
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        });
        if tx.send(Message::Done(done)).is_err() {
            return;
        }
    }
}
