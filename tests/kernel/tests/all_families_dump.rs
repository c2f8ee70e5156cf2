//! The one-dump-for-every-family request against the real kernel: it must
//! return exactly the sockets, headers and attributes that an IPv6 dump plus
//! an IPv4 dump return.

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, TcpListener, TcpStream};

use inetdiag::request::DumpRequest;
use inetdiag::*;

/// Cookie → (family, state, socket id; attribute types) of every
/// socket on one of `ports`.
type Seen = BTreeMap<u64, (Vec<u8>, Vec<u16>)>;

fn dump(socket: &mut DiagSocket, families: &[u8], ports: &[u16]) -> Seen {
    let mut seen = Seen::new();
    for &family in families {
        let request = DumpRequest {
            family,
            protocol: IPPROTO_TCP,
            states: ARCHIVE_STATES,
            extensions: ARCHIVE_EXTENSIONS,
        };
        socket
            .dump(&request, |payload| {
                let record = DiagRecord::parse(payload).expect("kernel reply parses");
                let msg = record.msg();
                if !ports.contains(&msg.sport()) && !ports.contains(&msg.dport()) {
                    return;
                }
                // Family, state and the socket id (ports, addresses,
                // interface, cookie): the fields that do not tick.
                let identity = payload[..2]
                    .iter()
                    .chain(&payload[4..52])
                    .copied()
                    .collect();
                let mask = record.attribute_mask();
                let kinds = (0..64u16).filter(|&kind| mask & (1 << kind) != 0).collect();
                let previous = seen.insert(msg.cookie(), (identity, kinds));
                assert!(previous.is_none(), "cookie {} twice", msg.cookie());
            })
            .expect("dump");
    }
    seen
}

#[test]
fn one_dump_returns_what_the_two_family_dumps_return() {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    // A dual-stack listener: IPv4 peers give AF_INET6 sockets with
    // IPv4-mapped addresses.
    let dual = TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0)).unwrap();
    let ports: Vec<u16> = [&v4, &v6, &dual]
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect();
    let mut streams = Vec::new();
    for (listener, host) in [(&v4, "127.0.0.1"), (&v6, "::1"), (&dual, "127.0.0.1")] {
        for _ in 0..5 {
            let port = listener.local_addr().unwrap().port();
            streams.push(TcpStream::connect((host, port)).unwrap());
            streams.push(listener.accept().unwrap().0);
        }
    }

    let mut socket = DiagSocket::new().unwrap();
    let per_family = dump(&mut socket, &[AF_INET6, AF_INET], &ports);
    let combined = dump(&mut socket, &[AF_UNSPEC], &ports);
    assert_eq!(per_family.len(), 3 + streams.len(), "listeners and streams");
    assert_eq!(combined, per_family);
    let families: Vec<u8> = combined.values().map(|(id, _)| id[0]).collect();
    assert!(families.contains(&AF_INET) && families.contains(&AF_INET6));
}
