//! The agent's HTTP endpoint as a test sees it: a tiny HTTP/1.1 client
//! (requests go out from the calling thread's namespace) and a parser of
//! the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// The agent's metrics port inside a test namespace (nothing else listens
/// there, so any port is free).
pub const METRICS_PORT: u16 = 9990;

/// One HTTP/1.1 request without a body from the calling thread's
/// namespace: status and (de-chunked) body.
pub fn http_request(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One sample of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed `/metrics` response.
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(parse_sample)
            .collect();
        Scrape {
            text: text.to_owned(),
            samples,
        }
    }

    /// Samples of metric `name`.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the sample of `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name)
            .find(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (head, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head, BTreeMap::new()),
        Some((name, rest)) => {
            let mut labels = BTreeMap::new();
            let mut rest = rest.strip_suffix('}')?;
            while let Some((key, after)) = rest.split_once("=\"") {
                let end = after.find('"')?;
                labels.insert(
                    key.trim_start_matches(',').to_owned(),
                    after[..end].to_owned(),
                );
                rest = &after[end + 1..];
            }
            (name, labels)
        }
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// What an alert expression watches: its left side without the threshold
/// (`X > 0` → `X`, `X > 10 * Y` → `X`), and the argument of `absent(X)`.
/// Healthy, the full expression is empty; this is what must exist for it to
/// mean anything.
pub fn alert_watches(expr: &str) -> String {
    let left = [" > ", " == ", " < ", " >= ", " <= ", " != "]
        .iter()
        .filter_map(|op| expr.rfind(op))
        .max()
        .map_or(expr, |at| &expr[..at]);
    let left = left.trim();
    match left
        .strip_prefix("absent(")
        .and_then(|r| r.strip_suffix(')'))
    {
        Some(inner) => inner.to_owned(),
        None => left.to_owned(),
    }
}
