//! `-web.config.file`: TLS and basic auth for the metrics server, in the
//! format of prometheus/exporter-toolkit (what node_exporter and the other
//! exporters read), so one file serves them all:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # relative paths: to this file's directory
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: clients.crt                    # optional
//!   min_version: TLS12                             # optional (TLS12, TLS13)
//!   max_version: TLS13                             # optional
//! basic_auth_users:
//!   prometheus: $2y$10$...        # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! ```
//!
//! Read once at start: an invalid file is a usage error (exit 2). Unlike
//! exporter-toolkit, the file is not re-read per connection: restart the
//! agent to change it. Keys of the format the agent does not implement
//! (`http_server_config`, `cipher_suites`, `curve_preferences`, …) are
//! refused rather than ignored, since ignoring a security setting is worse
//! than a failed start.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::TlsAcceptor;

use crate::lock::lock;

/// Why the web config file is not used.
#[derive(Debug, thiserror::Error)]
#[error("web config {file}: {problem}")]
pub struct WebConfigError {
    file: String,
    problem: String,
}

/// Largest web config file read.
const MAX_FILE: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    tls_server_config: Option<TlsFile>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
}

/// What the metrics server enforces.
#[derive(Clone, Default)]
pub struct WebConfig {
    pub tls: Option<TlsAcceptor>,
    pub auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("auth", &self.auth.is_some())
            .finish()
    }
}

impl WebConfig {
    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        match (&self.tls, &self.auth) {
            (Some(_), Some(a)) => format!("TLS, basic auth ({} users)", a.users.len()),
            (Some(_), None) => "TLS".into(),
            (None, Some(a)) => format!("basic auth ({} users), no TLS", a.users.len()),
            (None, None) => "no TLS, no auth".into(),
        }
    }
}

/// Reads and checks the file at `path`: every certificate and key loads,
/// every hash is a bcrypt hash.
pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
    let refused = |problem: String| WebConfigError {
        file: path.display().to_string(),
        problem,
    };
    let text = crate::small_file::read_text(path, MAX_FILE).map_err(|e| refused(e.to_string()))?;
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| refused(one_line(&e.to_string())))?
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tls = file
        .tls_server_config
        .map(|t| tls_acceptor(&t, dir))
        .transpose()
        .map_err(refused)?;
    let auth = file
        .basic_auth_users
        .map(BasicAuth::new)
        .transpose()
        .map_err(refused)?
        .map(Arc::new);
    Ok(WebConfig { tls, auth })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn tls_acceptor(t: &TlsFile, dir: &Path) -> Result<TlsAcceptor, String> {
    let at = |p: &Path| dir.join(p);
    let cert_file = at(&t.cert_file);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_file)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("cert_file {}: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "cert_file {}: no certificate in it",
            cert_file.display()
        ));
    }
    let key_file = at(&t.key_file);
    let key = PrivateKeyDer::from_pem_file(&key_file)
        .map_err(|e| format!("key_file {}: {e}", key_file.display()))?;
    let version = |v: &Option<String>, field: &str| match v.as_deref() {
        None => Ok(None),
        Some("TLS12") => Ok(Some(&rustls::version::TLS12)),
        Some("TLS13") => Ok(Some(&rustls::version::TLS13)),
        Some(other) => Err(format!("{field} {other:?}: TLS12 and TLS13 are supported")),
    };
    let min = version(&t.min_version, "min_version")?;
    let max = version(&t.max_version, "max_version")?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                !(min == Some(&rustls::version::TLS13)
                    && v.version == rustls::ProtocolVersion::TLSv1_2)
            })
            .filter(|v| {
                !(max == Some(&rustls::version::TLS12)
                    && v.version == rustls::ProtocolVersion::TLSv1_3)
            })
            .collect();
    if versions.is_empty() {
        return Err("min_version is above max_version".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let client_roots = || -> Result<Arc<RootCertStore>, String> {
        let Some(ca) = &t.client_ca_file else {
            return Err(format!(
                "client_auth_type {:?} needs client_ca_file",
                t.client_auth_type.as_deref().unwrap_or_default()
            ));
        };
        let ca = at(ca);
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&ca)
            .and_then(|c| c.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("client_ca_file {}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "client_ca_file {}: no certificate in it",
                ca.display()
            ));
        }
        Ok(Arc::new(roots))
    };
    let builder = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => builder.with_no_client_auth(),
        kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven") => {
            let verifier = WebPkiClientVerifier::builder_with_provider(client_roots()?, provider);
            let verifier = if kind == "VerifyClientCertIfGiven" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
        other => {
            return Err(format!(
                "client_auth_type {other:?}: NoClientCert, VerifyClientCertIfGiven and RequireAndVerifyClientCert are supported"
            ))
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "cert_file {} and key_file {}: {e}",
            cert_file.display(),
            key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Most (user, password) pairs remembered as checked: bcrypt is slow on
/// purpose, and a scraper sends the same credentials every scrape.
const MAX_REMEMBERED: usize = 16;

/// `basic_auth_users`: user → bcrypt hash.
#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    remembered: Mutex<HashSet<(String, String)>>,
}

impl BasicAuth {
    fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        for (user, hash) in &users {
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(format!(
                    "basic_auth_users: the hash of {user:?} is not a bcrypt hash"
                ));
            }
            if user.contains(':') {
                return Err(format!("basic_auth_users: user {user:?} contains ':'"));
            }
        }
        Ok(BasicAuth {
            users,
            remembered: Mutex::new(HashSet::new()),
        })
    }

    /// Whether an `Authorization` header value names a user and the
    /// password of its hash. The hash is checked on a blocking thread: a
    /// wrong password costs the metrics thread nothing.
    pub async fn allows(self: Arc<Self>, header: Option<&[u8]>) -> bool {
        let Some((user, password)) = header.and_then(credentials) else {
            return false;
        };
        let pair = (user, password);
        if lock(&self.remembered).contains(&pair) {
            return true;
        }
        let Some(hash) = self.users.get(&pair.0).cloned() else {
            return false;
        };
        let password = pair.1.clone();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if ok {
            let mut remembered = lock(&self.remembered);
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(pair);
        }
        ok
    }
}

/// `Basic base64(user:password)` → (user, password).
fn credentials(header: &[u8]) -> Option<(String, String)> {
    let header = std::str::from_utf8(header).ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn credentials_are_read_from_a_basic_header() {
        // "alice:s3:cret"
        assert_eq!(
            credentials(b"Basic YWxpY2U6czM6Y3JldA=="),
            Some(("alice".into(), "s3:cret".into()))
        );
        assert_eq!(credentials(b"Bearer YWxpY2U6czM6Y3JldA=="), None);
        assert_eq!(credentials(b"Basic !!!"), None);
    }

    #[test]
    fn invalid_files_are_refused_naming_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cases = [
            (
                "tls_server_config:\n  cert_file: a.crt\n",
                "missing field `key_file`",
            ),
            (
                "basic_auth_users:\n  alice: plain\n",
                "the hash of \"alice\" is not a bcrypt hash",
            ),
            (
                "http_server_config:\n  http2: false\n",
                "unknown field `http_server_config`",
            ),
            (
                "tls_server_config:\n  cert_file: none.crt\n  key_file: none.key\n",
                "cert_file",
            ),
            ("tls_server_config: [1\n", ""),
        ];
        for (text, problem) in cases {
            let path = write(d, "web.yml", text);
            let e = load(&path).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("web config {}: ", path.display())),
                "{e}"
            );
            assert!(e.contains(problem), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        }
        assert!(load(&d.join("absent.yml")).is_err());
        let empty = write(d, "empty.yml", "");
        let c = load(&empty).unwrap();
        assert!(c.tls.is_none() && c.auth.is_none());
    }

    #[test]
    fn a_good_password_is_allowed_and_remembered_a_bad_one_is_not() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let auth = Arc::new(BasicAuth::new(BTreeMap::from([("alice".into(), hash)])).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let header = |user: &str, password: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )
        };
        let allows = |h: String| rt.block_on(Arc::clone(&auth).allows(Some(h.as_bytes())));
        assert!(allows(header("alice", "secret")));
        assert!(allows(header("alice", "secret")));
        assert!(!allows(header("alice", "wrong")));
        assert!(!allows(header("bob", "secret")));
        assert!(!rt.block_on(Arc::clone(&auth).allows(None)));
        assert_eq!(lock(&auth.remembered).len(), 1);
    }
}
