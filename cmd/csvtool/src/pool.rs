//! Converting many archives on several threads while writing their rows in
//! input order.
//!
//! Each worker takes the next archive, converts it into chunks of whole
//! rows, and sends them down that archive's own bounded channel; the
//! writer drains the channels in input order. A worker at most a few
//! chunks ahead of the writer blocks, so memory is bounded by
//! threads × (DEPTH + 1) × chunk whatever the inputs. No deadlock: archives
//! are taken in order, so the one the writer waits for is always held by a
//! running worker that only ever waits on the writer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread;

use crate::inputs::Input;
use crate::job::{convert_one, Failure, CHUNK};

/// Chunks a worker may run ahead of the writer, per archive.
const DEPTH: usize = 4;

enum Message {
    Rows(Vec<u8>),
    Done(Result<(), Failure>),
}

/// Converts `inputs` on `threads` workers, calling `write` with each chunk
/// of rows and `report` with each failure, both in input order. Stops
/// early (and returns the error) if `write` fails.
pub fn run(
    inputs: &[Input],
    threads: usize,
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    mut report: impl FnMut(Failure),
) -> std::io::Result<()> {
    let (senders, receivers): (Vec<SyncSender<Message>>, Vec<Receiver<Message>>) =
        inputs.iter().map(|_| sync_channel(DEPTH)).unzip();
    let senders: Mutex<Vec<Option<SyncSender<Message>>>> =
        Mutex::new(senders.into_iter().map(Some).collect());
    let next = AtomicUsize::new(0);

    thread::scope(|scope| {
        for _ in 0..threads.min(inputs.len()) {
            scope.spawn(|| worker(inputs, &next, &senders));
        }
        let mut result = Ok(());
        for rx in receivers {
            // A closed channel without `Done` means the writer gave up (the
            // worker saw its send fail); nothing more to do for it.
            for msg in rx.iter() {
                match msg {
                    Message::Rows(rows) => {
                        if result.is_ok() {
                            result = write(&rows);
                        }
                    }
                    Message::Done(Err(failure)) if result.is_ok() => report(failure),
                    Message::Done(_) => {}
                }
            }
            if result.is_err() {
                // Dropping the remaining receivers makes the workers' sends
                // fail, so they stop early.
                break;
            }
        }
        result
    })
}

fn worker(inputs: &[Input], next: &AtomicUsize, senders: &Mutex<Vec<Option<SyncSender<Message>>>>) {
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(input) = inputs.get(i) else { return };
        let Some(tx) = senders.lock().ok().and_then(|mut s| s[i].take()) else {
            return;
        };
        let mut buf = Vec::with_capacity(CHUNK + CHUNK / 4);
        let done = convert_one(input, &mut buf, |rows| {
            let full = std::mem::replace(rows, Vec::with_capacity(CHUNK + CHUNK / 4));
            tx.send(Message::Rows(full))
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        });
        if tx.send(Message::Done(done)).is_err() {
            return;
        }
    }
}
