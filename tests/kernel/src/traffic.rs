//! Real TCP connections for the agent to see: connected pairs, connections
//! from a chosen source address, and data kept flowing in the background.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// `SO_COOKIE`: the socket's cookie, as sock_diag reports it.
pub fn socket_cookie(s: &impl AsRawFd) -> u64 {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 with its size.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "SO_COOKIE: {}", std::io::Error::last_os_error());
    cookie
}

/// A TCP connection from `src` (port chosen by the kernel) to `dst`.
pub fn connect_from(src: IpAddr, dst: SocketAddr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType};
    use nix::sys::socket::{SockaddrIn, SockaddrIn6};
    let family = if dst.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd: OwnedFd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    let src = SocketAddr::new(src, 0);
    match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            bind(fd.as_raw_fd(), &SockaddrIn::from(s)).unwrap_or_else(|e| panic!("bind {s}: {e}"));
            connect(fd.as_raw_fd(), &SockaddrIn::from(d))
                .unwrap_or_else(|e| panic!("connect {d}: {e}"));
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            bind(fd.as_raw_fd(), &SockaddrIn6::from(s)).unwrap_or_else(|e| panic!("bind {s}: {e}"));
            connect(fd.as_raw_fd(), &SockaddrIn6::from(d))
                .unwrap_or_else(|e| panic!("connect {d}: {e}"));
        }
        _ => panic!("{src} and {dst} are of different families"),
    }
    TcpStream::from(fd)
}

/// A connected pair: the client end and the accepted server end.
pub struct Connection {
    pub client: TcpStream,
    pub server: TcpStream,
}

impl Connection {
    /// Connects to `listener` at its own address and accepts.
    pub fn open(listener: &TcpListener) -> Connection {
        Self::open_to(listener, listener.local_addr().unwrap(), None)
    }

    /// Connects to `target` (where `listener` listens), from `bind` if
    /// given, and accepts. Call from the client's namespace.
    pub fn open_to(listener: &TcpListener, target: SocketAddr, bind: Option<&str>) -> Connection {
        let client = match bind {
            None => TcpStream::connect(target).unwrap(),
            Some(ip) => connect_from(ip.parse().unwrap(), target),
        };
        let (server, _) = listener.accept().unwrap();
        Connection { client, server }
    }

    /// Sends `n` bytes client → server and reads them on the server side.
    pub fn exchange(&mut self, n: usize) {
        let data = vec![0x5a; n];
        self.client.write_all(&data).unwrap();
        let mut got = vec![0; n];
        self.server.read_exact(&mut got).unwrap();
    }
}

/// Keeps data flowing on some connections from a background thread:
/// every `period`, writes `chunk` bytes client → server and drains the
/// server side. Stops on [`Pump::stop`] or drop.
pub struct Pump {
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<Vec<Connection>>>,
}

impl Pump {
    pub fn start(conns: Vec<Connection>, chunk: usize, period: Duration) -> Pump {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            for c in &conns {
                c.client.set_nonblocking(true).unwrap();
                c.server.set_nonblocking(true).unwrap();
            }
            let data = vec![0xa5u8; chunk];
            let mut sink = vec![0u8; 64 * 1024];
            while !flag.load(Ordering::Relaxed) {
                for c in &conns {
                    let _ = (&c.client).write(&data);
                    while matches!((&c.server).read(&mut sink), Ok(n) if n > 0) {}
                }
                // The pace of the traffic, not a wait for a condition.
                thread::sleep(period);
            }
            for c in &conns {
                c.client.set_nonblocking(false).unwrap();
                c.server.set_nonblocking(false).unwrap();
            }
            conns
        });
        Pump {
            stop,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) -> Vec<Connection> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
