//! `tcp-info ready`: asks a running agent's `/-/ready` whether it polls,
//! for container health checks where the image has nothing else to ask
//! with (a `FROM scratch` image has no shell, curl or wget).
//!
//! One HTTP/1.0 GET over a std `TcpStream`, reading only the status line:
//! a client crate would bring an async runtime or TLS stack into a
//! command that runs every few seconds and lives for milliseconds.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why the agent is not ready, as the one line the probe prints.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{address}: cannot resolve: {source}")]
    Resolve { address: String, source: io::Error },
    #[error("{address}: no address to connect to")]
    NoAddress { address: String },
    #[error("{target}: {source}")]
    Io {
        target: SocketAddr,
        source: io::Error,
    },
    #[error("{target}: /-/ready answered {status:?}")]
    NotReady { target: SocketAddr, status: String },
}

/// Where a probe on this host reaches an agent that listens on `address`
/// (the `-prometheusx.listen-address` syntax): `:port`, a bare port and the
/// wildcard addresses mean the loopback address of that family.
pub fn target(address: &str) -> Result<SocketAddr, ProbeError> {
    let port_only = address.strip_prefix(':').unwrap_or(address);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
    }
    let resolved = address
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            address: address.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| ProbeError::NoAddress {
            address: address.to_string(),
        })?;
    Ok(match resolved.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), resolved.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), resolved.port())
        }
        _ => resolved,
    })
}

/// Asks `target` for `/-/ready`; `Ok` only for a 200 answer within
/// `timeout` (per connect, write and read).
pub fn ready(target: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let io = |source| ProbeError::Io { target, source };
    let mut stream = TcpStream::connect_timeout(&target, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        stream,
        "GET /-/ready HTTP/1.0\r\nHost: {target}\r\nUser-Agent: tcp-info-ready\r\n\r\n"
    )
    .map_err(io)?;
    let mut status = String::new();
    // A status line is short; a peer that is not HTTP gets no more room.
    BufReader::new(stream.take(256))
        .read_line(&mut status)
        .map_err(io)?;
    let status = status.trim_end().to_string();
    let code = status.split_whitespace().nth(1);
    if status.starts_with("HTTP/") && code == Some("200") {
        Ok(())
    } else {
        Err(ProbeError::NotReady { target, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn listen_addresses_map_to_where_a_local_probe_connects() {
        let t = |a: &str| target(a).unwrap().to_string();
        assert_eq!(t(":9990"), "127.0.0.1:9990");
        assert_eq!(t("9990"), "127.0.0.1:9990");
        assert_eq!(t("0.0.0.0:9991"), "127.0.0.1:9991");
        assert_eq!(t("[::]:9992"), "[::1]:9992");
        assert_eq!(t("192.0.2.7:9993"), "192.0.2.7:9993");
        assert!(target("no-port").is_err());
    }

    /// Serves one connection with `answer`, returning what the probe sent.
    fn serve_once(answer: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the probe closed before its request ended");
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn only_a_200_answer_is_ready() {
        let (addr, server) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nready\n");
        ready(addr, Duration::from_secs(5)).unwrap();
        assert!(server
            .join()
            .unwrap()
            .starts_with("GET /-/ready HTTP/1.0\r\n"));

        let (addr, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let e = ready(addr, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("503"), "{e}");
        server.join().unwrap();

        let (addr, server) = serve_once("SSH-2.0-OpenSSH\r\n\r\n");
        assert!(ready(addr, Duration::from_secs(5)).is_err());
        server.join().unwrap();
    }

    #[test]
    fn nobody_listening_is_an_error_naming_the_address() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = ready(addr, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().starts_with(&addr.to_string()), "{e}");
    }
}
