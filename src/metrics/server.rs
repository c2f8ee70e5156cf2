//! The HTTP endpoint: `/metrics`, `/-/healthy`, `/-/ready` and whatever
//! routes the wiring adds (the listener policy's `/-/reload`), served by
//! warp's routes over hyper's HTTP/1 on a single-threaded tokio runtime in a
//! thread of its own. Nothing it does touches the polling path: a scrape
//! renders what was published.
//!
//! The port is often reachable from the network, and a scrape must keep
//! working when it matters most, so a peer cannot make the server hold
//! descriptors: a client has [`HEADER_TIMEOUT`] to send a request's headers
//! (counted from the accept, and on a kept-alive connection from the end of
//! the previous response, so it is the idle timeout too), and at most
//! [`MAX_CONNECTIONS`] are open at once. A connection over the cap is
//! accepted and another one is closed for it, chosen so that a scraper is
//! served even while someone opens connections as fast as they can:
//!
//! 1. the oldest connection that has not sent a complete request in the
//!    [`GRACE`] it had since its accept (idle: someone exhausting slots);
//! 2. else the oldest connection that was answered at least once (a
//!    kept-alive scraper reconnects);
//! 3. else — every open connection is younger than [`GRACE`] and has not
//!    asked anything yet: a burst — the newest of them, so a burst churns
//!    through its own latest connections while the older ones keep their
//!    grace.
//!
//! A new connection is read at once, and every open one is read before one
//! is chosen, so a request that arrived marks its connection first.
//! (Refusing every newcomer would let whoever fills the slots first lock
//! the scraper out; closing the oldest whatever it did would let a fast
//! opener close the scraper's connection before its request is read.)

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service as _};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use warp::filters::BoxedFilter;
use warp::http::{header, StatusCode};
use warp::{Filter, Reply};

use super::web_config::WebConfig;
use super::Metrics;
use crate::http_peer::Peer;
use crate::log::RateLimit;

/// A route served beside the metrics' own, tried after them.
pub type Route = BoxedFilter<(Box<dyn Reply>,)>;

/// Content type of the Prometheus text exposition format 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a client may take to send a request's headers, from the moment
/// the server waits for them (accept, or the end of the previous response
/// on a kept-alive connection). Scrapers send theirs at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open at once. Well below the descriptors the saver leaves
/// free for the agent's own sockets (about 64), so that a flood of
/// connections cannot take the archive's or the event socket's.
pub const MAX_CONNECTIONS: usize = 32;

/// What one peer may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: HEADER_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// How long a new connection is safe from being closed for a newer one
/// while it has not sent its request: a scraper sends it at once.
pub const GRACE: Duration = Duration::from_millis(200);

/// How long to wait before accepting again after an error that is not the
/// peer's (out of descriptors, out of memory).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds `address` the way the Go tool's flag means it: `:port` (or a bare
/// `port`) is every address, IPv6 and IPv4, falling back to IPv4 only when
/// the host has no IPv6; `host:port` is that address.
pub fn bind(address: &str) -> io::Result<TcpListener> {
    let port_only = address.strip_prefix(':').unwrap_or(address);
    if let Ok(port) = port_only.parse::<u16>() {
        // A `[::]` socket is dual-stack unless net.ipv6.bindv6only is set.
        return TcpListener::bind((Ipv6Addr::UNSPECIFIED, port))
            .or_else(|_| TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)));
    }
    let addrs: Vec<SocketAddr> = address.to_socket_addrs()?.collect();
    TcpListener::bind(&addrs[..])
}

/// Serves `metrics` and `extra` routes on `listener` from a new thread,
/// until the process exits.
pub fn spawn(
    metrics: Arc<Metrics>,
    extra: Vec<Route>,
    listener: TcpListener,
    web: WebConfig,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            prefer_short_slices();
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        serve(listener, routes(metrics, extra), Limits::default(), web).await
                    }
                    Err(e) => log!("metrics: cannot serve: {e}"),
                }
            })
        })
}

/// One connection being served, boxed so that connections of any state can
/// be kept in one queue and closed by dropping them.
type Served = Pin<Box<dyn Future<Output = ()>>>;

/// An open connection, with what eviction looks at.
struct Open {
    served: Served,
    accepted: Instant,
    /// Set when a complete request reached the routes.
    requested: Rc<Cell<bool>>,
}

/// Which of the (non-empty) `open` connections to close for a newcomer
/// (see the module's comment).
fn evict(open: &VecDeque<Open>, now: Instant) -> usize {
    open.iter()
        .position(|c| !c.requested.get() && now.saturating_duration_since(c.accepted) >= GRACE)
        .or_else(|| open.iter().position(|c| c.requested.get()))
        .unwrap_or(open.len().saturating_sub(1))
}

/// Accepts connections on `listener` and serves `routes` on them, never more
/// than `limits.max_connections` at once (see the module's comment), until
/// the process exits.
/// The connections are polled here rather than spawned as tasks, so closing
/// one is dropping it: its descriptor is gone before the next accept.
///
/// With `web.tls`, each connection is a TLS handshake (within the header
/// timeout) before HTTP; with `web.auth`, a request without a user and
/// password of `basic_auth_users` is answered 401 before any route runs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Route,
    limits: Limits,
    web: WebConfig,
) {
    let cap = limits.max_connections.max(1);
    static AT_CAP: RateLimit = RateLimit::new(60_000);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let service = warp::service(routes);
    // Every request reaches the routes with the peer's address recorded
    // (see `crate::http_peer`).
    let serve_one = |stream: tokio::net::TcpStream, peer: SocketAddr| -> Open {
        let routes = TowerToHyperService::new(service.clone());
        let requested = Rc::new(Cell::new(false));
        let mark = Rc::clone(&requested);
        let auth = web.auth.clone();
        let with_peer = service_fn(move |mut request: hyper::Request<Incoming>| {
            mark.set(true);
            request.extensions_mut().insert(Peer(peer));
            let routes = routes.clone();
            let auth = auth.clone();
            async move {
                if let Some(auth) = auth {
                    let header = request.headers().get(header::AUTHORIZATION);
                    if !auth.allows(header.map(|h| h.as_bytes())).await {
                        return Ok(unauthorized());
                    }
                }
                routes.call(request).await
            }
        });
        let http = http.clone();
        let tls = web.tls.clone();
        let handshake_timeout = limits.header_timeout;
        // A failed connection (a timeout, a malformed request, a failed
        // handshake, a peer gone) is the peer's business: it is closed and
        // that is all.
        let served: Served = match tls {
            None => Box::pin(async move {
                let _ = http.serve_connection(TokioIo::new(stream), with_peer).await;
            }),
            Some(acceptor) => Box::pin(async move {
                let accepted =
                    tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await;
                if let Ok(Ok(stream)) = accepted {
                    let _ = http.serve_connection(TokioIo::new(stream), with_peer).await;
                }
            }),
        };
        Open {
            served,
            accepted: Instant::now(),
            requested,
        }
    };
    // Oldest first.
    let mut open: VecDeque<Open> = VecDeque::with_capacity(cap + 1);
    let mut backoff: Option<Pin<Box<tokio::time::Sleep>>> = None;

    poll_fn(|cx: &mut Context<'_>| {
        loop {
            if let Some(sleep) = &mut backoff {
                if sleep.as_mut().poll(cx).is_pending() {
                    break;
                }
                backoff = None;
            }
            match listener.poll_accept(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok((stream, peer))) => {
                    if open.len() >= cap {
                        // Requests that arrived mark their connections.
                        open.retain_mut(|conn| conn.served.as_mut().poll(cx).is_pending());
                    }
                    if open.len() >= cap {
                        log_limited!(
                            AT_CAP,
                            "metrics: {cap} HTTP connections open, closing one for a new one"
                        );
                        drop(open.remove(evict(&open, Instant::now())));
                    }
                    let mut conn = serve_one(stream, peer);
                    // Read at once: a request already there marks it.
                    if conn.served.as_mut().poll(cx).is_pending() {
                        open.push_back(conn);
                    }
                }
                Poll::Ready(Err(e)) if is_connection_error(&e) => {}
                Poll::Ready(Err(e)) => {
                    // Out of descriptors (or memory): give the newcomer, most
                    // likely a scraper, an idle connection's descriptor.
                    if open.is_empty() {
                        log_limited!(AT_CAP, "metrics: cannot accept a connection: {e}");
                        backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                    } else {
                        drop(open.remove(evict(&open, Instant::now())));
                    }
                }
            }
        }
        open.retain_mut(|conn| conn.served.as_mut().poll(cx).is_pending());
        Poll::<()>::Pending
    })
    .await
}

/// 401 with the challenge browsers and Prometheus answer.
fn unauthorized() -> warp::reply::Response {
    let reply = warp::reply::with_status("Unauthorized\n", StatusCode::UNAUTHORIZED);
    warp::reply::with_header(reply, header::WWW_AUTHENTICATE, "Basic").into_response()
}

/// Errors of one incoming connection, reported by accept, that say nothing
/// about the server.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Asks the scheduler for short time slices on this thread. A scrape needs
/// about a quarter of a millisecond of CPU; under EEVDF (Linux 6.6+), a task
/// with a shorter slice gets an earlier virtual deadline and, since 6.12,
/// preempts a running task on wakeup instead of waiting out its slice
/// (`sched_attr.sched_runtime` for SCHED_OTHER, kernel/sched/syscalls.c).
/// Its share of the CPU is unchanged, so the poller loses nothing. Older
/// kernels reject or ignore the request, which is harmless.
fn prefer_short_slices() {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice: 0,
        priority: 0,
        // 100 µs, the kernel's minimum custom slice.
        runtime: 100_000,
        deadline: 0,
        period: 0,
    };
    // SAFETY: sched_setattr(0 = this thread, a valid sched_attr of the
    // declared size, flags 0); it only reads `attr`.
    let _ = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
}

fn routes(metrics: Arc<Metrics>, extra: Vec<Route>) -> Route {
    let scrape = {
        let metrics = Arc::clone(&metrics);
        warp::path!("metrics").and(warp::get()).map(move || {
            warp::reply::with_header(metrics.render(), header::CONTENT_TYPE, TEXT_FORMAT)
        })
    };
    let healthy = warp::path!("-" / "healthy").and(warp::get()).map(|| "OK\n");
    let ready =
        warp::path!("-" / "ready")
            .and(warp::get())
            .map(move || match metrics.readiness() {
                Ok(()) => warp::reply::with_status("ready\n".to_owned(), StatusCode::OK),
                Err(why) => warp::reply::with_status(
                    format!("not ready: {why}\n"),
                    StatusCode::SERVICE_UNAVAILABLE,
                ),
            });
    let own = scrape
        .map(|r| Box::new(r) as Box<dyn Reply>)
        .or(healthy.map(|r| Box::new(r) as Box<dyn Reply>))
        .unify()
        .or(ready.map(|r| Box::new(r) as Box<dyn Reply>))
        .unify()
        .boxed();
    extra
        .into_iter()
        .fold(own, |routes, route| routes.or(route).unify().boxed())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    /// A server of `routes` on a loopback port, in a thread of its own for
    /// the rest of the test process.
    fn server(routes: Route, limits: Limits) -> SocketAddr {
        let listener = bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        thread::spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                serve(listener, routes, limits, WebConfig::default()).await
            })
        });
        addr
    }

    fn hello() -> Route {
        warp::any()
            .map(|| Box::new("hello\n") as Box<dyn Reply>)
            .boxed()
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends one request; returns the response's head and body (the
    /// connection is closed by the request's `Connection: close`).
    fn get(addr: SocketAddr, path: &str) -> String {
        try_get(addr, path).unwrap()
    }

    /// [`get`], or the error of a connection the server closed before
    /// answering.
    fn try_get(addr: SocketAddr, path: &str) -> io::Result<String> {
        let mut s = connect(addr);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut response = String::new();
        s.read_to_string(&mut response)?;
        if response.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed unanswered",
            ));
        }
        Ok(response)
    }

    /// Reads until the server closes `s`; how long that took.
    fn time_to_close(s: &mut TcpStream) -> Duration {
        let start = Instant::now();
        let mut buf = [0; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return start.elapsed(),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return start.elapsed(),
                Err(e) => panic!("the server did not close the connection: {e}"),
            }
        }
    }

    #[test]
    fn a_bare_port_binds_every_address() {
        let l = bind(":0").unwrap();
        assert!(l.local_addr().unwrap().ip().is_unspecified());
        let l = bind("0").unwrap();
        assert!(l.local_addr().unwrap().ip().is_unspecified());
        let l = bind("127.0.0.1:0").unwrap();
        assert_eq!(l.local_addr().unwrap().ip(), Ipv4Addr::LOCALHOST);
        assert!(bind("no-such-host.invalid:1").is_err());
    }

    #[test]
    fn idle_connections_over_the_cap_give_way_to_a_new_one() {
        let addr = server(
            hello(),
            Limits {
                header_timeout: Duration::from_secs(30),
                max_connections: 4,
            },
        );
        let mut idle: Vec<TcpStream> = (0..20).map(|_| connect(addr)).collect();
        // Within the grace a burst churns through its own newest.
        let response = get(addr, "/");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.ends_with("hello\n"), "{response}");
        // Past it, the oldest idle ones are closed for newcomers, long
        // before their header timeout.
        thread::sleep(GRACE);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(connect(addr));
        }
        for s in &mut idle[..3] {
            assert!(time_to_close(s) < Duration::from_secs(10));
        }
        for _ in 0..3 {
            let response = get(addr, "/");
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        }
        // Young ones keep their grace: only the newest of them gave way.
        let oldest_held = &mut held[0];
        oldest_held
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let err = oldest_held.read(&mut [0; 16]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    }

    #[test]
    fn a_scraper_is_served_while_someone_opens_connections_as_fast_as_they_can() {
        let addr = server(
            hello(),
            Limits {
                header_timeout: Duration::from_secs(30),
                max_connections: 8,
            },
        );
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let flooder = {
            let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
            thread::spawn(move || {
                let mut held = VecDeque::new();
                while !stop.load(Relaxed) {
                    if let Ok(s) = TcpStream::connect(addr) {
                        opened.fetch_add(1, Relaxed);
                        held.push_back(s);
                        if held.len() > 256 {
                            held.pop_front();
                        }
                    }
                }
            })
        };
        // The scrapes start once the flood is on (the flooder's thread may
        // be scheduled late when the other tests run beside this one).
        harness::wait_until(Duration::from_secs(10), "the flood to start", || {
            opened.load(Relaxed) >= 100
        });
        let start = Instant::now();
        let mut lost = 0;
        for _ in 0..20 {
            // A connection the flooder's next one finds still without its
            // request (the scraper writes it just after the connect) can be
            // the newest of a burst and closed (rule 3): the scraper's next
            // try is served, as Prometheus's next scrape would be.
            let response = (0..5)
                .find_map(|_| try_get(addr, "/metrics").inspect_err(|_| lost += 1).ok())
                .expect("five connections in a row closed before their request was read");
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        }
        let scrapes = start.elapsed();
        stop.store(true, Relaxed);
        flooder.join().unwrap();
        assert!(lost < 10, "{lost} of the scraper's connections closed");
        assert!(scrapes < Duration::from_secs(10), "{scrapes:?}");
    }

    #[test]
    fn a_slow_or_idle_client_is_closed_after_the_header_timeout() {
        let timeout = Duration::from_millis(300);
        let addr = server(
            hello(),
            Limits {
                header_timeout: timeout,
                max_connections: 8,
            },
        );
        // Half a request line, then nothing.
        let mut slow = connect(addr);
        slow.write_all(b"GET /met").unwrap();
        let waited = time_to_close(&mut slow);
        assert!(waited >= timeout - Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");

        // A kept-alive connection, answered, then idle.
        let mut idle = connect(addr);
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut response = [0; 4096];
        let n = idle.read(&mut response).unwrap();
        assert!(response[..n].ends_with(b"hello\n"));
        let waited = time_to_close(&mut idle);
        assert!(waited >= timeout - Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[test]
    fn routes_see_the_address_of_the_peer() {
        let route = crate::http_peer::remote()
            .map(|peer: Option<SocketAddr>| Box::new(format!("{peer:?}\n")) as Box<dyn Reply>)
            .boxed();
        let addr = server(route, Limits::default());
        let response = get(addr, "/");
        assert!(response.contains("Some(127.0.0.1:"), "{response}");
    }
}
