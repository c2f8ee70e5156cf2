//! The event socket's lines, both ways: what a client writes to the agent
//! (cut into request lines by the server's reader, then parsed as
//! subscription requests), and what a client reads (any event line).

use tcp_info::eventsocket::requests::{RequestLine, RequestReader};
use tcp_info::eventsocket::MAX_REQUEST;
use tcpinfo_eventsocket::{Event, Subscribed, SubscriptionRequest, Timestamp};

/// The server reads at most this much per `read`.
const READ: usize = 512;

/// One input is the bytes one client wrote; each line is also read as an
/// event line.
pub fn event_socket(data: &[u8]) {
    // Reads arrive in any sizes: the lines must not depend on them.
    let whole = lines(data, &[data.len().max(1)]);
    let sizes = [READ, 1, 7, 3];
    assert_eq!(
        lines(data, &sizes[..1]),
        whole,
        "lines depend on read sizes"
    );
    assert_eq!(
        lines(data, &sizes[1..]),
        whole,
        "lines depend on read sizes"
    );
    for line in &whole {
        let Some(text) = line else { continue };
        assert!(text.len() <= MAX_REQUEST);
        if let Some(request) = SubscriptionRequest::parse(text) {
            let ack = Subscribed {
                timestamp: Timestamp::from_unix_millis(1_556_000_000_000),
                kinds: request.kinds.clone(),
            };
            match Event::from_json(&ack.to_json_line()) {
                Ok(Event::Subscribed(back)) => assert_eq!(back, ack),
                other => panic!("an acknowledgement does not read back: {other:?}"),
            }
            let _ = request.bits();
        }
        read_event(text);
    }
}

/// The request lines `data` makes when it arrives in reads of `sizes`
/// (cycled); `None` for a line over the limit.
fn lines(data: &[u8], sizes: &[usize]) -> Vec<Option<Vec<u8>>> {
    let mut reader = RequestReader::new(MAX_REQUEST);
    let mut out = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, after) = rest.split_at(size.min(rest.len()));
        rest = after;
        reader.feed(read, |line| {
            out.push(match line {
                RequestLine::Text(text) => Some(text.to_vec()),
                RequestLine::TooLong => None,
            })
        });
    }
    out
}

/// A client reading `line`: whatever it decodes to encodes to a line that
/// decodes and encodes to the same line again (the first pass may
/// normalise: Go writes `::ffff:1.2.3.4` as `1.2.3.4`).
fn read_event(line: &[u8]) {
    let Ok(event) = Event::from_json(line) else {
        return;
    };
    let once = encode(&event);
    match Event::from_json(&once) {
        Ok(back) => assert_eq!(
            encode(&back),
            once,
            "an event line changes when read and written again"
        ),
        Err(e) => panic!(
            "{e}: an event does not read back from {}",
            String::from_utf8_lossy(&once)
        ),
    }
}

fn encode(event: &Event) -> Vec<u8> {
    match event {
        Event::Flow(e) => e.to_json_line(),
        Event::Listener(e) => e.to_json_line(),
        Event::Subscribed(e) => e.to_json_line(),
    }
}
