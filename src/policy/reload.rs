//! `POST /-/reload`: re-reads the listener policy. Only loopback clients
//! may ask: the metrics port is often reachable from the network, and a
//! reload is an operator's action on this host.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{ActivePolicy, PolicyError};

/// The status and the one-line body of a reply.
type Answer = (StatusCode, String);

/// The route, for the metrics server to serve beside `/metrics`. Without
/// a policy (no `-listen-policy`) it is there all the same, and says so.
pub fn route(policy: Option<Arc<ActivePolicy>>) -> BoxedFilter<(Box<dyn Reply>,)> {
    warp::path!("-" / "reload")
        .and(warp::post())
        .and(crate::http_peer::remote())
        .then(move |remote: Option<SocketAddr>| {
            let policy = policy.clone();
            async move {
                let (status, body) = reload(policy, remote).await;
                Box::new(warp::reply::with_status(body, status)) as Box<dyn Reply>
            }
        })
        .boxed()
}

async fn reload(policy: Option<Arc<ActivePolicy>>, remote: Option<SocketAddr>) -> Answer {
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
    let client = remote.map(|r| r.ip().to_canonical());
    if !client.is_some_and(|ip| ip.is_loopback()) {
        let who = client.map_or("an unknown address".to_owned(), |ip| ip.to_string());
        return (
            StatusCode::FORBIDDEN,
            format!("reload refused: only loopback clients may reload, not {who}\n"),
        );
    }
    let Some(policy) = policy else {
        return (
            StatusCode::NOT_FOUND,
            "nothing to reload: the agent runs without -listen-policy\n".into(),
        );
    };
    // Reading the file is blocking I/O: keep it off the runtime's thread.
    match tokio::task::spawn_blocking(move || policy.reload()).await {
        Ok(Ok(r)) => {
            let violated = r
                .violated
                .map_or(String::new(), |v| format!(", {v} violated"));
            (
                StatusCode::OK,
                format!("listen policy reloaded: {} rules{violated}\n", r.rules),
            )
        }
        Ok(Err(e @ PolicyError::Invalid { .. })) => (
            StatusCode::BAD_REQUEST,
            format!("reload rejected, previous policy kept: {e}\n"),
        ),
        Ok(Err(e @ PolicyError::Read { .. })) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload rejected, previous policy kept: {e}\n"),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ask(policy: Option<Arc<ActivePolicy>>, client: Option<&str>) -> Answer {
        let remote = client.map(|c| c.parse().unwrap());
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(reload(policy, remote))
    }

    #[test]
    fn only_loopback_clients_may_reload() {
        assert_eq!(
            ask(None, Some("198.51.100.7:40000")),
            (
                StatusCode::FORBIDDEN,
                "reload refused: only loopback clients may reload, not 198.51.100.7\n".into()
            )
        );
        assert_eq!(
            ask(None, None).1,
            "reload refused: only loopback clients may reload, not an unknown address\n"
        );
        // An IPv4 client of a dual-stack listener, and IPv6 loopback.
        for client in ["[::ffff:127.0.0.1]:40000", "[::1]:40000"] {
            assert_eq!(
                ask(None, Some(client)),
                (
                    StatusCode::NOT_FOUND,
                    "nothing to reload: the agent runs without -listen-policy\n".into()
                ),
                "{client}"
            );
        }
    }

    #[test]
    fn a_valid_file_applies_and_an_invalid_one_is_a_bad_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[[forbid]]\nport = 23\n").unwrap();
        let policy = ActivePolicy::load(&path).unwrap();
        let loopback = Some("127.0.0.1:40000");
        assert_eq!(
            ask(Some(Arc::clone(&policy)), loopback),
            (StatusCode::OK, "listen policy reloaded: 1 rules\n".into())
        );
        std::fs::write(&path, "[[forbid]]\nport = 23\nbind = 7\n").unwrap();
        let (status, body) = ask(Some(policy), loopback);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body.starts_with(&format!(
                "reload rejected, previous policy kept: {}:3: ",
                path.display()
            )),
            "{body}"
        );
    }

    #[test]
    fn a_fifo_device_or_oversize_file_is_rejected_at_once_and_the_policy_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, "[[forbid]]\nport = 23\n").unwrap();
        let policy = ActivePolicy::load(&path).unwrap();
        let loopback = Some("127.0.0.1:40000");
        let replace = |with: fn(&Path)| {
            let _ = std::fs::remove_file(&path);
            with(&path);
        };
        // What takes the policy file's place, and why it is refused.
        type Plant = fn(&Path);
        let cases: [(Plant, &str); 3] = [
            (
                |p| nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).unwrap(),
                "is a FIFO, not a regular file",
            ),
            (
                |p| std::os::unix::fs::symlink("/dev/zero", p).unwrap(),
                "is a character device, not a regular file",
            ),
            (
                |p| std::fs::write(p, vec![b'#'; 2 << 20]).unwrap(),
                "is larger than 1048576 bytes",
            ),
        ];
        for (make, problem) in cases {
            replace(make);
            let started = std::time::Instant::now();
            let (status, body) = ask(Some(Arc::clone(&policy)), loopback);
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                body,
                format!(
                    "reload rejected, previous policy kept: {}: {problem}\n",
                    path.display()
                )
            );
            assert_eq!(policy.rules(), 1);
            assert!(!policy.last_reload_ok());
        }
        assert_eq!(policy.reloads(), (0, 3));
    }
}
