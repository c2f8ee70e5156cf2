//! The HTTP endpoint: `/metrics`, `/-/healthy`, `/-/ready` and whatever
//! routes the wiring adds (the listener policy's `/-/reload`), served by
//! warp on a single-threaded tokio runtime in a thread of its own. Nothing
//! it does touches the polling path: a scrape renders what was published.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use warp::filters::BoxedFilter;
use warp::http::{header, StatusCode};
use warp::{Filter, Reply};

use super::Metrics;

/// A route served beside the metrics' own, tried after them.
pub type Route = BoxedFilter<(Box<dyn Reply>,)>;

/// Content type of the Prometheus text exposition format 0.0.4.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

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
                        warp::serve(routes(metrics, extra))
                            .incoming(listener)
                            .run()
                            .await
                    }
                    Err(e) => log!("metrics: cannot serve: {e}"),
                }
            })
        })
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
    let ready = warp::path!("-" / "ready").and(warp::get()).map(move || {
        if metrics.is_ready() {
            warp::reply::with_status("ready\n", StatusCode::OK)
        } else {
            warp::reply::with_status(
                "not ready: no complete poll yet\n",
                StatusCode::SERVICE_UNAVAILABLE,
            )
        }
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
    use super::*;

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
}
