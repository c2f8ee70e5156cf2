//! example-eventsocket-client: a minimal client of tcp-info's event socket.
//! It logs every open and close event in the style of M-Lab's Go reference
//! client, and exits cleanly on SIGTERM/SIGINT or when the server goes away.
//! With `-listener-changes` it also subscribes to listener changes and logs
//! them.
//!
//! Exit status: 0 after SIGTERM/SIGINT or when tcp-info closes the socket;
//! 1 when the socket cannot be reached or sends something that is not the
//! protocol; 2 for bad flags.

mod flags;

use std::fmt::Display;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{Datelike, Local, Timelike};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tcpinfo_eventsocket::client::{self, ClientError, Connection, End, Handler, Stopper};
use tcpinfo_eventsocket::{FlowEvent, GoIp, ListenerEvent, SockId, Subscribed, Subscription};

use crate::flags::{Flags, DEFAULT_CONNECT_TIMEOUT};

fn main() -> ExitCode {
    let flags = match Flags::parse_go_args(std::env::args(), |name| std::env::var(name).ok()) {
        Ok(flags) => flags,
        Err(e) => return goflag::report("example-eventsocket-client", &e),
    };
    match run(&flags) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn run(flags: &Flags) -> anyhow::Result<()> {
    let path = flags
        .eventsocket
        .as_deref()
        .context("-tcpinfo.eventsocket path is required")?;
    let terminated = Arc::new(AtomicBool::new(false));
    let stopper: Arc<Mutex<Option<Stopper>>> = Arc::new(Mutex::new(None));
    watch_signals(Arc::clone(&terminated), Arc::clone(&stopper))?;

    let timeout = flags.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let Some(mut conn) = connect_with_retry(path, timeout, &terminated)? else {
        log(format_args!("shutdown"));
        return Ok(());
    };
    {
        let mut slot = stopper.lock().unwrap_or_else(PoisonError::into_inner);
        let handle = conn.stopper()?;
        // A signal that came while connecting must still end the run.
        if terminated.load(Ordering::SeqCst) {
            handle.stop();
        }
        *slot = Some(handle);
    }
    log(format_args!("connected to {}", path.display()));
    if flags.listener_changes {
        conn.subscribe(&[Subscription::ListenerChange])
            .with_context(|| format!("subscribing to listener changes on {}", path.display()))?;
    }

    match conn.run(&mut Logger) {
        Ok(End::Stopped) => {
            log(format_args!("shutdown"));
            Ok(())
        }
        Ok(End::ServerClosed) => {
            log(format_args!(
                "tcp-info closed the event socket {}; exiting",
                path.display()
            ));
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("reading events from {}", path.display())),
    }
}

/// Connects, retrying while the socket does not exist yet or refuses (the
/// agent may still be starting), until `timeout` or a termination signal.
fn connect_with_retry(
    path: &Path,
    timeout: Duration,
    terminated: &AtomicBool,
) -> anyhow::Result<Option<Connection>> {
    let deadline = Instant::now() + timeout;
    let mut waiting_logged = false;
    loop {
        match client::connect(path) {
            Ok(conn) => return Ok(Some(conn)),
            Err(ClientError::Connect { source, .. })
                if Instant::now() < deadline
                    && matches!(
                        source.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                    ) =>
            {
                if !waiting_logged {
                    log(format_args!(
                        "waiting up to {timeout:?} for {} ({source})",
                        path.display()
                    ));
                    waiting_logged = true;
                }
            }
            Err(e) => return Err(e.into()),
        }
        if terminated.load(Ordering::SeqCst) {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

fn watch_signals(
    terminated: Arc<AtomicBool>,
    stopper: Arc<Mutex<Option<Stopper>>>,
) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT]).context("installing signal handlers")?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                terminated.store(true, Ordering::SeqCst);
                if let Some(s) = stopper
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                {
                    s.stop();
                }
            }
        })
        .context("starting signal thread")?;
    Ok(())
}

/// Logs events the way the Go example client does.
struct Logger;

impl Handler for Logger {
    fn open(&mut self, ev: &FlowEvent) {
        match &ev.id {
            Some(id) => log(format_args!(
                "open  {} {} {}",
                ev.uuid,
                ev.timestamp.go_string(),
                GoSockId(id)
            )),
            None => log(format_args!(
                "open  {} {} <nil>",
                ev.uuid,
                ev.timestamp.go_string()
            )),
        }
    }

    fn close(&mut self, ev: &FlowEvent) {
        log(format_args!(
            "close {} {}",
            ev.uuid,
            ev.timestamp.go_string()
        ));
    }

    fn unknown(&mut self, code: i64, _line: &str) {
        log(format_args!("Unknown event type: {code}"));
    }

    fn listener_change(&mut self, ev: &ListenerEvent) {
        let addr = match ev.addr {
            std::net::IpAddr::V6(a) => format!("[{a}]"),
            a => a.to_string(),
        };
        let by = if ev.process.is_empty() {
            "an unknown process"
        } else {
            &ev.process
        };
        log(format_args!(
            "listener {} {} {} {addr}:{} ({}) by {by} {}",
            ev.change.as_str(),
            ev.proto,
            ev.family,
            ev.port,
            ev.scope,
            ev.timestamp.go_string()
        ));
    }

    fn subscribed(&mut self, ev: &Subscribed) {
        let kinds: Vec<&str> = ev.kinds.iter().map(|k| k.name()).collect();
        log(format_args!("subscribed to [{}]", kinds.join(", ")));
    }
}

/// Go's `log.Println`: local `YYYY/MM/DD HH:MM:SS ` prefix, to stderr.
fn log(line: impl Display) {
    let now = Local::now();
    eprintln!(
        "{:04}/{:02}/{:02} {:02}:{:02}:{:02} {line}",
        now.year(),
        now.month(),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
}

/// A `*inetdiag.SockID` as Go's `%v` prints it: `&{SPort DPort SrcIP DstIP
/// Interface Cookie}`.
struct GoSockId<'a>(&'a SockId);

impl Display for GoSockId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.0;
        write!(
            f,
            "&{{{} {} {} {} {} {}}}",
            id.sport,
            id.dport,
            GoIp(id.src_ip),
            GoIp(id.dst_ip),
            id.interface,
            id.signed_cookie()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sock_ids_print_like_go_percent_v() {
        let id = SockId {
            sport: 443,
            dport: 5000,
            src_ip: "::ffff:10.0.0.1".parse().unwrap(),
            dst_ip: "2001:db8::1".parse().unwrap(),
            interface: 0,
            cookie: u64::MAX,
        };
        assert_eq!(
            GoSockId(&id).to_string(),
            "&{443 5000 10.0.0.1 2001:db8::1 0 -1}"
        );
    }
}
