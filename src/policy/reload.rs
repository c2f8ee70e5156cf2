//! `POST /-/reload`: re-reads the listener policy. Only loopback clients
//! may ask: the metrics port is often reachable from the network, and a
//! reload is an operator's action on this host.

use std::net::SocketAddr;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::{ActivePolicy, PolicyError};

type Answer = warp::reply::WithStatus<String>;

/// The route, for the metrics server to serve beside `/metrics`. Without
/// a policy (no `-listen-policy`) it is there all the same, and says so.
pub fn route(policy: Option<Arc<ActivePolicy>>) -> BoxedFilter<(Box<dyn Reply>,)> {
    warp::path!("-" / "reload")
        .and(warp::post())
        .and(warp::addr::remote())
        .then(move |remote: Option<SocketAddr>| {
            let policy = policy.clone();
            async move { Box::new(reload(policy, remote).await) as Box<dyn Reply> }
        })
        .boxed()
}

fn answer(status: StatusCode, body: String) -> Answer {
    warp::reply::with_status(body, status)
}

async fn reload(policy: Option<Arc<ActivePolicy>>, remote: Option<SocketAddr>) -> Answer {
    // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d.
    let client = remote.map(|r| r.ip().to_canonical());
    if !client.is_some_and(|ip| ip.is_loopback()) {
        let who = client.map_or("an unknown address".to_owned(), |ip| ip.to_string());
        return answer(
            StatusCode::FORBIDDEN,
            format!("reload refused: only loopback clients may reload, not {who}\n"),
        );
    }
    let Some(policy) = policy else {
        return answer(
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
            answer(
                StatusCode::OK,
                format!("listen policy reloaded: {} rules{violated}\n", r.rules),
            )
        }
        Ok(Err(e @ PolicyError::Invalid { .. })) => answer(
            StatusCode::BAD_REQUEST,
            format!("reload rejected, previous policy kept: {e}\n"),
        ),
        Ok(Err(e @ PolicyError::Read { .. })) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload rejected, previous policy kept: {e}\n"),
        ),
        Err(e) => answer(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reload failed: {e}\n"),
        ),
    }
}
