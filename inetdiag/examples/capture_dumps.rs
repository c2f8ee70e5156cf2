//! Captures the datagrams of real `inet_diag` dumps while it walks a small
//! scripted story of loopback connections, for replay in tests without root
//! (`testdata/netlink/`). Run it inside a fresh network namespace so that no
//! other socket shows up:
//!
//! ```sh
//! ip netns add capture && ip -n capture link set lo up
//! ip netns exec capture cargo run -p inetdiag --example capture_dumps -- testdata/netlink/story.dumps
//! ip netns del capture
//! ```
//!
//! One all-families dump (the archive's request) after each step:
//! 0. listeners on 127.0.0.1:7001 and [::1]:7002
//! 1. connections A (IPv4, client port 7101), B (IPv6, 7102), C (IPv4, 7103)
//! 2. nothing happens
//! 3. A's client sends 1000 bytes, A's server reads them
//! 4. B's client closes (client FIN_WAIT2, server CLOSE_WAIT)
//! 5. B's server closes (both ends leave the dumped states)
//! 6. C closes at both ends
//! 7. nothing happens

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::sleep;
use std::time::Duration;

use inetdiag::replay::{write_datagram, CAPTURE_MAGIC};
use inetdiag::request::DumpRequest;
use inetdiag::DiagSocket;
use socket2::{Domain, Socket, Type};

/// Connects from a fixed local port, so that tests can name the connection.
fn connect(listener: &TcpListener, from: &str) -> std::io::Result<(TcpStream, TcpStream)> {
    let from: SocketAddr = from.parse().expect("valid address");
    let socket = Socket::new(Domain::for_address(from), Type::STREAM, None)?;
    socket.bind(&from.into())?;
    socket.connect(&listener.local_addr()?.into())?;
    let (server, _) = listener.accept()?;
    Ok((socket.into(), server))
}

struct Capture {
    socket: DiagSocket,
    out: BufWriter<File>,
    dumps: usize,
}

impl Capture {
    fn dump(&mut self, step: &str) -> std::io::Result<()> {
        // Let FINs and ACKs settle before looking.
        sleep(Duration::from_millis(50));
        let request = DumpRequest {
            family: inetdiag::AF_UNSPEC,
            protocol: inetdiag::IPPROTO_TCP,
            states: inetdiag::ARCHIVE_STATES,
            extensions: inetdiag::ARCHIVE_EXTENSIONS,
        };
        let out = &mut self.out;
        let mut failed = None;
        let stats = self
            .socket
            .dump_datagrams(
                &request,
                |datagram| {
                    if let Err(e) = write_datagram(out, datagram) {
                        failed.get_or_insert(e);
                    }
                },
                |_| {},
            )
            .map_err(std::io::Error::other)?;
        if let Some(e) = failed {
            return Err(e);
        }
        eprintln!("dump {}: {step}: {} sockets", self.dumps, stats.records);
        self.dumps += 1;
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "story.dumps".into());
    let mut out = BufWriter::new(File::create(&path)?);
    out.write_all(CAPTURE_MAGIC)?;
    let mut capture = Capture {
        socket: DiagSocket::new().map_err(std::io::Error::other)?,
        out,
        dumps: 0,
    };

    let v4 = TcpListener::bind("127.0.0.1:7001")?;
    let v6 = TcpListener::bind("[::1]:7002")?;
    capture.dump("listeners")?;

    let (mut a_client, mut a_server) = connect(&v4, "127.0.0.1:7101")?;
    let (b_client, b_server) = connect(&v6, "[::1]:7102")?;
    let (c_client, c_server) = connect(&v4, "127.0.0.1:7103")?;
    capture.dump("connections A, B, C")?;
    capture.dump("nothing")?;

    a_client.write_all(&[0x5a; 1000])?;
    let mut received = [0u8; 1000];
    a_server.read_exact(&mut received)?;
    capture.dump("A sends 1000 bytes")?;

    drop(b_client);
    capture.dump("B's client closes")?;
    drop(b_server);
    capture.dump("B's server closes")?;
    drop(c_client);
    drop(c_server);
    capture.dump("C closes")?;
    capture.dump("nothing")?;

    capture.out.flush()?;
    eprintln!("wrote {} dumps to {path}", capture.dumps);
    Ok(())
}
