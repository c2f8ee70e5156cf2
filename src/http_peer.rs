//! Who sent an HTTP request: the metrics server records the peer's address
//! in each request, and routes read it back here. (warp's own
//! `addr::remote()` is filled in only by `warp::serve`, which the server
//! does not use: it needs timeouts and a connection cap that `warp::serve`
//! does not offer.)

use std::convert::Infallible;
use std::net::SocketAddr;

use warp::Filter;

/// The peer's address, as a request extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// The address the request came from; `None` when the server did not
/// record one.
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Copy {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|Peer(addr)| addr))
}
