//! A client of the event socket: connect, read `FlowEvent`s line by line,
//! or hand them to a [`Handler`]. Works against tcp-info's server and
//! M-Lab's Go server alike.
//!
//! ```no_run
//! use tcpinfo_eventsocket::{client, FlowEvent};
//!
//! struct Log;
//! impl client::Handler for Log {
//!     fn open(&mut self, ev: &FlowEvent) { println!("open {}", ev.uuid) }
//!     fn close(&mut self, ev: &FlowEvent) { println!("close {}", ev.uuid) }
//! }
//!
//! let mut conn = client::connect("/var/run/tcpinfo.sock")?;
//! let end = conn.run(&mut Log)?;
//! println!("{end:?}");
//! # Ok::<(), client::ClientError>(())
//! ```
//!
//! Listener changes come only after [`Connection::subscribe`]; they go to
//! [`Handler::listener_change`], or arrive as [`Event::Listener`] from
//! [`Connection::next_any`]. Against M-Lab's Go server (which never reads
//! what clients write) no acknowledgement and no change ever arrives.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::event::{EventError, FlowEvent, TcpEvent};
use crate::line::Event;
use crate::listener_event::ListenerEvent;
use crate::subscription::{subscription_request, Subscribed, Subscription};

/// Longest accepted line, as Go's `bufio.Scanner` default: an event is a
/// few hundred bytes, so anything longer is not the protocol.
pub const MAX_LINE: usize = 64 * 1024;

/// Receives events from [`Connection::run`], in the order the server sent
/// them.
pub trait Handler {
    fn open(&mut self, event: &FlowEvent);
    fn close(&mut self, event: &FlowEvent);
    /// An event kind this version does not know (Go's client logs and skips
    /// these; so does the default).
    fn unknown(&mut self, code: i64, line: &str) {
        let _ = (code, line);
    }
    /// A listener opened or closed (only after subscribing to
    /// [`Subscription::ListenerChange`]).
    fn listener_change(&mut self, event: &ListenerEvent) {
        let _ = event;
    }
    /// The server granted a subscription; events of those kinds follow.
    fn subscribed(&mut self, event: &Subscribed) {
        let _ = event;
    }
}

/// Why reading events stopped or a line was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to event socket {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error("reading from event socket: {0}")]
    Io(#[from] io::Error),
    #[error("malformed event on line {line_number} ({source}): {line:?}")]
    Malformed {
        line_number: u64,
        line: String,
        #[source]
        source: EventError,
    },
    #[error("line {line_number} is longer than {MAX_LINE} bytes")]
    LineTooLong { line_number: u64 },
}

/// How a stream of events ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed the connection (agent stopped, or it dropped us).
    ServerClosed,
    /// [`Stopper::stop`] was called.
    Stopped,
}

/// Reads protocol lines from any byte stream.
pub struct EventReader<R> {
    reader: R,
    line: Vec<u8>,
    line_number: u64,
}

impl<R: BufRead> EventReader<R> {
    pub fn new(reader: R) -> Self {
        EventReader {
            reader,
            line: Vec::with_capacity(512),
            line_number: 0,
        }
    }

    /// The next event, or `None` at end of stream. A malformed or overlong
    /// line is an error, after which reading can continue with the next
    /// line. Kinds other than open/close are [`EventError::UnknownEvent`].
    pub fn read_event(&mut self) -> Result<Option<FlowEvent>, ClientError> {
        self.read_with(FlowEvent::from_json)
    }

    /// Like [`Self::read_event`], for lines of every kind this version
    /// knows.
    pub fn read_any(&mut self) -> Result<Option<Event>, ClientError> {
        self.read_with(Event::from_json)
    }

    fn read_with<T>(
        &mut self,
        decode: impl Fn(&[u8]) -> Result<T, EventError>,
    ) -> Result<Option<T>, ClientError> {
        loop {
            self.line.clear();
            let n = Read::take(&mut self.reader, MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut self.line)?;
            if n == 0 {
                return Ok(None);
            }
            self.line_number += 1;
            if self.line.last() != Some(&b'\n') && self.line.len() > MAX_LINE {
                self.skip_rest_of_line()?;
                return Err(ClientError::LineTooLong {
                    line_number: self.line_number,
                });
            }
            let text = trim_line_end(&self.line);
            if text.is_empty() {
                continue;
            }
            return decode(text)
                .map(Some)
                .map_err(|source| ClientError::Malformed {
                    line_number: self.line_number,
                    line: String::from_utf8_lossy(text).into_owned(),
                    source,
                });
        }
    }

    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.reader.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let len = buf.len();
                    self.reader.consume(len);
                }
            }
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A connection to an event socket.
pub struct Connection {
    events: EventReader<BufReader<UnixStream>>,
    stopped: Arc<AtomicBool>,
    finished: bool,
}

/// Ends a [`Connection`]'s reading from another thread (a signal handler
/// thread, say): the blocked read returns and the stream ends with
/// [`End::Stopped`].
#[derive(Debug, Clone)]
pub struct Stopper {
    stream: Arc<UnixStream>,
    stopped: Arc<AtomicBool>,
}

impl Stopper {
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Connects to the event socket at `path`.
pub fn connect(path: impl AsRef<Path>) -> Result<Connection, ClientError> {
    let path = path.as_ref();
    let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Connection {
        events: EventReader::new(BufReader::new(stream)),
        stopped: Arc::new(AtomicBool::new(false)),
        finished: false,
    })
}

impl Connection {
    /// A handle that ends this connection's reading from elsewhere.
    pub fn stopper(&self) -> Result<Stopper, ClientError> {
        Ok(Stopper {
            stream: Arc::new(self.events.reader.get_ref().try_clone()?),
            stopped: Arc::clone(&self.stopped),
        })
    }

    /// Asks the server for event kinds beyond open/close. The server's
    /// [`Subscribed`] acknowledgement arrives on the stream, before any
    /// event it grants; read with [`Self::next_any`] or [`Self::run`].
    pub fn subscribe(&mut self, kinds: &[Subscription]) -> Result<(), ClientError> {
        let mut stream = self.events.reader.get_ref();
        stream.write_all(&subscription_request(kinds))?;
        Ok(())
    }

    /// The next event; `None` when the server closed the connection or
    /// [`Stopper::stop`] was called.
    pub fn next_event(&mut self) -> Result<Option<FlowEvent>, ClientError> {
        self.next_with(EventReader::read_event)
    }

    /// The next line of any kind; `None` as for [`Self::next_event`].
    pub fn next_any(&mut self) -> Result<Option<Event>, ClientError> {
        self.next_with(EventReader::read_any)
    }

    fn next_with<T>(
        &mut self,
        read: impl FnOnce(&mut EventReader<BufReader<UnixStream>>) -> Result<Option<T>, ClientError>,
    ) -> Result<Option<T>, ClientError> {
        if self.finished {
            return Ok(None);
        }
        match read(&mut self.events) {
            Ok(None) => {
                self.finished = true;
                Ok(None)
            }
            // A read interrupted by our own shutdown is the requested end.
            Err(ClientError::Io(_)) if self.stopped.load(Ordering::SeqCst) => {
                self.finished = true;
                Ok(None)
            }
            Err(e @ ClientError::Io(_)) => {
                self.finished = true;
                Err(e)
            }
            other => other,
        }
    }

    /// How the stream ended, once `next_event` has returned `None`.
    pub fn end(&self) -> End {
        if self.stopped.load(Ordering::SeqCst) {
            End::Stopped
        } else {
            End::ServerClosed
        }
    }

    /// Hands every event to `handler` until the stream ends. Unknown event
    /// kinds go to [`Handler::unknown`]; any other malformed line ends the
    /// run with an error, as in Go's client.
    pub fn run<H: Handler + ?Sized>(&mut self, handler: &mut H) -> Result<End, ClientError> {
        loop {
            match self.next_any() {
                Ok(Some(Event::Flow(event))) => match event.event {
                    TcpEvent::Open => handler.open(&event),
                    TcpEvent::Close => handler.close(&event),
                },
                Ok(Some(Event::Listener(event))) => handler.listener_change(&event),
                Ok(Some(Event::Subscribed(event))) => handler.subscribed(&event),
                Ok(None) => return Ok(self.end()),
                Err(ClientError::Malformed {
                    line,
                    source: EventError::UnknownEvent(code),
                    ..
                }) => handler.unknown(code, &line),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Iterator for Connection {
    type Item = Result<FlowEvent, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const OPEN: &str = r#"{"Event":0,"Timestamp":"2019-04-02T14:12:37.511Z","UUID":"a","ID":{"SPort":1,"DPort":2,"SrcIP":"127.0.0.1","DstIP":"127.0.0.1","Interface":0,"Cookie":5}}"#;
    const CLOSE: &str = r#"{"Event":1,"Timestamp":"2019-04-02T14:12:38Z","UUID":"a","ID":null}"#;

    fn reader(text: String) -> EventReader<Cursor<Vec<u8>>> {
        EventReader::new(Cursor::new(text.into_bytes()))
    }

    #[test]
    fn reads_events_until_eof() {
        let mut r = reader(format!("{OPEN}\n{CLOSE}\n"));
        assert_eq!(r.read_event().unwrap().unwrap().event, TcpEvent::Open);
        assert_eq!(r.read_event().unwrap().unwrap().event, TcpEvent::Close);
        assert!(r.read_event().unwrap().is_none());
    }

    #[test]
    fn malformed_line_is_typed_and_reading_resumes() {
        let mut r = reader(format!("{{\"Event\":\n{CLOSE}\n"));
        match r.read_event() {
            Err(ClientError::Malformed {
                line_number: 1,
                source: EventError::Json(_),
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(r.read_event().unwrap().unwrap().event, TcpEvent::Close);
    }

    #[test]
    fn overlong_line_is_rejected_and_skipped() {
        let long = "x".repeat(MAX_LINE * 2);
        let mut r = reader(format!("{long}\n{OPEN}\n"));
        assert!(matches!(
            r.read_event(),
            Err(ClientError::LineTooLong { line_number: 1 })
        ));
        assert_eq!(r.read_event().unwrap().unwrap().uuid, "a");
    }

    #[test]
    fn crlf_and_blank_lines_are_tolerated() {
        let mut r = reader(format!("\n{OPEN}\r\n"));
        assert_eq!(r.read_event().unwrap().unwrap().uuid, "a");
        assert!(r.read_event().unwrap().is_none());
    }
}
