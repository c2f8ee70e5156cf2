//! Where a connection that outlived the previous run continues. Its file
//! of that run may lie in an earlier date directory than the one the new
//! run names its first segment after (the restart happened on a later UTC
//! day): probing names in the new day's directory alone would start at
//! `.00000` again, and one UUID would have two files of the same sequence.
//!
//! So at start the date directories of the last [`LOOKBACK_DAYS`] days
//! (today included) are read once, and for every file of this boot's UUID
//! prefix the next sequence number is noted. A connection opened in the
//! first [`RELEVANT_FOR_MS`] of the run (the ones the first polls find,
//! which may have files of the previous run) starts there; after that the
//! table is dropped, since later connections are new (a socket cookie is
//! never reused within a boot). A connection whose last file is older than
//! the look-back starts at `.00000`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use crate::lock::lock;

/// Days of date directories read at start, today included.
pub const LOOKBACK_DAYS: i64 = 3;

/// Opens after the run's start this long ago may be connections of the
/// previous run.
pub const RELEVANT_FOR_MS: i64 = 60_000;

type Date = (i32, u32, u32);

/// The next free sequence number of each connection (by cookie) with files
/// of this boot in the recent date directories.
#[derive(Debug, Default)]
pub struct PreviousRun {
    started_ms: i64,
    next: Mutex<Option<HashMap<u64, u32>>>,
}

impl PreviousRun {
    /// Reads the date directories of the `LOOKBACK_DAYS` days up to the
    /// date of `now_ms` under `output`, for files of `prefix`.
    pub fn scan(output: &Path, prefix: &str, now_ms: i64) -> Self {
        let mut next = HashMap::new();
        for back in 0..LOOKBACK_DAYS {
            let (y, m, d) = date_of(now_ms - back * 86_400_000);
            let dir = output.join(format!("{y:04}/{m:02}/{d:02}"));
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if let Some((cookie, seq)) = parse(entry.file_name().as_encoded_bytes(), prefix) {
                    let at = next.entry(cookie).or_insert(0);
                    *at = (*at).max(seq.saturating_add(1));
                }
            }
        }
        PreviousRun {
            started_ms: now_ms,
            next: Mutex::new(Some(next)),
        }
    }

    /// The sequence number the first segment of connection `cookie`,
    /// opened at `start_ms`, starts from.
    pub fn first_sequence(&self, cookie: u64, start_ms: i64) -> u32 {
        let mut next = lock(&self.next);
        if start_ms.saturating_sub(self.started_ms) > RELEVANT_FOR_MS {
            *next = None;
        }
        next.as_ref()
            .and_then(|n| n.get(&cookie).copied())
            .unwrap_or(0)
    }
}

fn date_of(ms: i64) -> Date {
    tcpinfo_archive::Timestamp::from_unix_millis(ms).utc_date()
}

/// `<prefix>_<16 hex digits>.<5 digits>.jsonl.zst` → (cookie, sequence).
fn parse(name: &[u8], prefix: &str) -> Option<(u64, u32)> {
    let rest = name.strip_prefix(prefix.as_bytes())?.strip_prefix(b"_")?;
    let rest = rest.strip_suffix(b".jsonl.zst")?;
    let (cookie, seq) = (rest.get(..16)?, rest.get(16..)?);
    let seq = seq.strip_prefix(b".")?;
    let cookie = u64::from_str_radix(std::str::from_utf8(cookie).ok()?, 16).ok()?;
    let seq = std::str::from_utf8(seq).ok()?.parse().ok()?;
    Some((cookie, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_of_the_prefix_give_cookie_and_sequence() {
        let p = "host_1700000000_unsafe";
        assert_eq!(
            parse(
                b"host_1700000000_unsafe_0000000000004A3F.00007.jsonl.zst",
                p
            ),
            Some((0x4a3f, 7))
        );
        assert_eq!(
            parse(
                b"other_1700000000_unsafe_0000000000004A3F.00007.jsonl.zst",
                p
            ),
            None
        );
        assert_eq!(
            parse(b"host_1700000000_unsafe_4A3F.00007.jsonl.zst", p),
            None
        );
        assert_eq!(
            parse(b"host_1700000000_unsafe_0000000000004A3F.00007.jsonl", p),
            None
        );
    }
}
