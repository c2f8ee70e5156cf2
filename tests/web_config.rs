//! `-web.config.file`: the real agent serving its metrics over TLS with
//! basic auth, asked by a real HTTPS client (rustls) trusting a
//! self-signed certificate made for the test (rcgen). A good password gets
//! 200, a bad one or none 401, plain HTTP no answer; an invalid file stops
//! the agent with one line (exit 2). No root needed: the agent's netlink
//! dumps and metrics work unprivileged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tcp-info"))
}

/// The running agent, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the agent with `web_config` on a loopback port; returns it and
/// the address it serves on (from its log).
fn start(dir: &Path, web_config: &Path) -> (Running, SocketAddr) {
    let mut child = agent()
        .arg(format!("-output={}", dir.join("out").display()))
        .arg("-prometheusx.listen-address=127.0.0.1:0")
        .arg(format!("-web.config.file={}", web_config.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let running = Running(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut log = Vec::new();
    let addr = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("the agent exited:\n{}", log.join("\n")))
            .unwrap();
        if let Some((_, addr)) = line.split_once("serving metrics on ") {
            break addr.trim().parse().unwrap();
        }
        log.push(line);
    };
    // Keep draining the log so the agent never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    (running, addr)
}

/// `GET path` over TLS, trusting `ca`; the whole response.
fn https_get(addr: SocketAddr, ca: &CertificateDer<'static>, auth: Option<(&str, &str)>) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let authorization = auth.map_or(String::new(), |(user, password)| {
        format!(
            "Authorization: Basic {}\r\n",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    });
    write!(
        tls,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    // A peer that closes without close_notify is an error to rustls; what
    // was read is the response.
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn metrics_over_tls_with_basic_auth_answer_only_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.path().join("server.crt"), cert.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.path().join("web.yml");
    // Relative paths are relative to the web config file.
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let ca = CertificateDer::from_pem_slice(cert.cert.pem().as_bytes()).unwrap();
    let (_agent, addr) = start(dir.path(), &web);

    let good = https_get(addr, &ca, Some(("prometheus", "s3cret")));
    assert!(good.starts_with("HTTP/1.1 200"), "{good}");
    assert!(good.contains("tcpinfo_polls_total"), "{good}");
    for auth in [
        Some(("prometheus", "wrong")),
        Some(("nobody", "s3cret")),
        None,
    ] {
        let refused = https_get(addr, &ca, auth);
        assert!(refused.starts_with("HTTP/1.1 401"), "{auth:?}: {refused}");
        assert!(
            refused
                .to_ascii_lowercase()
                .contains("www-authenticate: basic"),
            "{refused}"
        );
        assert!(!refused.contains("tcpinfo_"), "{refused}");
    }

    // Plain HTTP on the TLS port: no HTTP answer, the connection closed.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    plain
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    assert!(!String::from_utf8_lossy(&answer).contains("tcpinfo_"));
}

#[test]
fn an_invalid_web_config_stops_the_agent_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, "basic_auth_users:\n  prometheus: not-a-hash\n").unwrap();
    let out = agent()
        .arg(format!("-output={}", dir.path().join("out").display()))
        .arg("-prometheusx.listen-address=127.0.0.1:0")
        .arg(format!("-web.config.file={}", web.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "tcp-info: web config {}: basic_auth_users: the hash of \"prometheus\" is not a bcrypt hash",
            web.display()
        )
    );
    assert!(!err.contains("serving metrics"), "{err}");
}
