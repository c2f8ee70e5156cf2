//! A connection's snapshots waiting for their flush, kept as the kernel's
//! replies (each with its dump time and poll gap) rather than as JSON
//! lines: a reply is ~500 bytes where its line is ~780, and the pending
//! snapshots of the active connections are most of the agent's memory per
//! connection (BENCHMARKS.md, "Memory per connection"). The lines are
//! written at the flush, into one buffer of the shard's.
//!
//! A record is a fixed header (little-endian: dump time in Unix ms, the
//! poll gap's polls, or [`NO_GAP`], and milliseconds, the reply's length)
//! followed by the reply.

/// Bytes before each reply.
pub const RECORD_HEADER: usize = 8 + 8 + 8 + 4;

/// The poll-gap polls of a record without a gap (a real gap of this many
/// polls would take 10 ms × 2⁶⁴).
const NO_GAP: u64 = u64::MAX;

/// One pending snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp_ms: i64,
    /// `(polls, milliseconds)` since the connection's previous line.
    pub poll_gap: Option<(u64, i64)>,
    pub payload: &'a [u8],
}

/// Appends `record` to `buffer`; false (and nothing appended) for a reply
/// longer than 4 GiB, which netlink cannot carry.
pub fn push(buffer: &mut Vec<u8>, record: Record<'_>) -> bool {
    let Ok(len) = u32::try_from(record.payload.len()) else {
        return false;
    };
    let (polls, milliseconds) = record.poll_gap.unwrap_or((NO_GAP, 0));
    buffer.extend_from_slice(&record.timestamp_ms.to_le_bytes());
    buffer.extend_from_slice(&polls.to_le_bytes());
    buffer.extend_from_slice(&milliseconds.to_le_bytes());
    buffer.extend_from_slice(&len.to_le_bytes());
    buffer.extend_from_slice(record.payload);
    true
}

/// The records of a buffer [`push`] filled, in order.
pub fn records(mut buffer: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (header, rest) = buffer.split_first_chunk::<RECORD_HEADER>()?;
        let field = |at: usize| -> [u8; 8] { header[at..at + 8].try_into().expect("8 bytes") };
        let timestamp_ms = i64::from_le_bytes(field(0));
        let polls = u64::from_le_bytes(field(8));
        let milliseconds = i64::from_le_bytes(field(16));
        let len = u32::from_le_bytes(header[24..28].try_into().expect("4 bytes")) as usize;
        let payload = rest.get(..len)?;
        buffer = &rest[len..];
        Some(Record {
            timestamp_ms,
            poll_gap: (polls != NO_GAP).then_some((polls, milliseconds)),
            payload,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_come_back_as_they_were_pushed(
            list in proptest::collection::vec(
                (any::<i64>(), proptest::option::of((0..NO_GAP, any::<i64>())),
                 proptest::collection::vec(any::<u8>(), 0..600)),
                0..20,
            )
        ) {
            let mut buffer = Vec::new();
            for (timestamp_ms, poll_gap, payload) in &list {
                let record = Record { timestamp_ms: *timestamp_ms, poll_gap: *poll_gap, payload };
                prop_assert!(push(&mut buffer, record));
            }
            let back: Vec<Record<'_>> = records(&buffer).collect();
            prop_assert_eq!(back.len(), list.len());
            for (record, (timestamp_ms, poll_gap, payload)) in back.iter().zip(&list) {
                prop_assert_eq!(record.timestamp_ms, *timestamp_ms);
                prop_assert_eq!(record.poll_gap, *poll_gap);
                prop_assert_eq!(record.payload, payload.as_slice());
            }
            // A cut buffer yields the whole records before the cut only.
            if !buffer.is_empty() {
                let cut = records(&buffer[..buffer.len() - 1]).count();
                prop_assert_eq!(cut, list.len() - 1);
            }
        }
    }
}
