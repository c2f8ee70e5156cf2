//! `ArchivalRecord`: one line of an archive, as M-Lab's Go tcp-info writes it
//! (`netlink.ArchivalRecord`), and its JSON encoding.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::record_buf::RecordBuf;
use crate::timestamp::{Timestamp, TimestampError, GO_ZERO_TIME};

/// The first line of every archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    pub uuid: String,
    pub sequence: u64,
    pub start_time: Timestamp,
}

/// One archive line: a snapshot (`raw_idm` + `attributes`) or a metadata
/// record. Field names and omissions follow Go's `encoding/json` with the
/// `omitempty` tags of the Go type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivalRecord {
    pub timestamp: Timestamp,
    /// `struct inet_diag_msg` as the kernel sent it (72 bytes); empty on
    /// metadata lines.
    pub raw_idm: Vec<u8>,
    /// Attribute payloads indexed by `INET_DIAG_*` type; `None` where absent.
    pub attributes: Vec<Option<Vec<u8>>>,
    pub metadata: Option<Metadata>,
}

/// Why a line is not an `ArchivalRecord`.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("not a JSON archive record: {0}")]
    Json(#[from] serde_json::Error),
    #[error("bad base64 in {field}: {source}")]
    Base64 {
        field: &'static str,
        source: base64::DecodeError,
    },
    #[error(transparent)]
    Timestamp(#[from] TimestampError),
}

impl ArchivalRecord {
    /// Parses one JSON line, with Go's `encoding/json` semantics (see
    /// [`RecordBuf`], the decoder every reader shares).
    pub fn from_json(line: &[u8]) -> Result<Self, RecordError> {
        let mut buf = RecordBuf::new();
        buf.parse(line)?;
        Ok(buf.to_record())
    }

    /// Appends this record as one JSON line (with `\n`), byte-identical to
    /// what the Go tool writes for the same record.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let ts = self.timestamp.rfc3339();
        match &self.metadata {
            Some(m) if self.raw_idm.is_empty() && self.attributes.is_empty() => {
                write_metadata_line(out, m);
            }
            _ => {
                write_line_start(out, ts.as_str());
                if !self.raw_idm.is_empty() {
                    write_raw_idm(out, &self.raw_idm);
                }
                write_attributes(out, self.attributes.iter().map(|a| a.as_deref()));
                if let Some(m) = &self.metadata {
                    out.extend_from_slice(b",\"Metadata\":");
                    write_metadata_object(out, m);
                }
                out.extend_from_slice(b"}\n");
            }
        }
    }
}

/// `{"Timestamp":"<ts>"` — the start of every line.
pub fn write_line_start(out: &mut Vec<u8>, timestamp: &str) {
    out.extend_from_slice(b"{\"Timestamp\":\"");
    out.extend_from_slice(timestamp.as_bytes());
    out.push(b'"');
}

/// `,"RawIDM":"<base64>"`.
pub fn write_raw_idm(out: &mut Vec<u8>, idm: &[u8]) {
    out.extend_from_slice(b",\"RawIDM\":\"");
    push_base64(out, idm);
    out.push(b'"');
}

/// `,"Attributes":[…]`, omitted (like Go's `omitempty`) when empty.
pub fn write_attributes<'a>(out: &mut Vec<u8>, attributes: impl Iterator<Item = Option<&'a [u8]>>) {
    let mut first = true;
    for attribute in attributes {
        out.extend_from_slice(if first { b",\"Attributes\":[" } else { b"," });
        first = false;
        match attribute {
            Some(bytes) => {
                out.push(b'"');
                push_base64(out, bytes);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
    }
    if !first {
        out.push(b']');
    }
}

/// `,"PollGap":{"Polls":P,"Milliseconds":M}`: the opt-in key
/// (`-archive-poll-gaps`) saying how many polls ran, and how much time
/// passed, since the connection's previous line — "nothing changed" told
/// apart from "nobody looked". After the other keys; M-Lab's parser, like
/// every Go `encoding/json` reader, ignores keys it does not know.
pub fn write_poll_gap(out: &mut Vec<u8>, polls: u64, milliseconds: i64) {
    out.extend_from_slice(b",\"PollGap\":{\"Polls\":");
    out.extend_from_slice(itoa::Buffer::new().format(polls).as_bytes());
    out.extend_from_slice(b",\"Milliseconds\":");
    out.extend_from_slice(itoa::Buffer::new().format(milliseconds).as_bytes());
    out.push(b'}');
}

/// The metadata line that opens every file.
pub fn write_metadata_line(out: &mut Vec<u8>, metadata: &Metadata) {
    write_line_start(out, GO_ZERO_TIME);
    out.extend_from_slice(b",\"Metadata\":");
    write_metadata_object(out, metadata);
    out.extend_from_slice(b"}\n");
}

fn write_metadata_object(out: &mut Vec<u8>, metadata: &Metadata) {
    out.extend_from_slice(b"{\"UUID\":");
    // serde_json escapes what JSON requires; a Vec writer cannot fail.
    let _ = serde_json::to_writer(&mut *out, &metadata.uuid);
    out.extend_from_slice(b",\"Sequence\":");
    out.extend_from_slice(itoa::Buffer::new().format(metadata.sequence).as_bytes());
    out.extend_from_slice(b",\"StartTime\":\"");
    metadata.start_time.write_to(out);
    out.extend_from_slice(b"\"}");
}

/// Appends standard padded base64 of `bytes` without an intermediate String.
pub fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = BASE64.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
    out.truncate(start + written);
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{"Timestamp":"2019-04-02T14:12:37.511Z","RawIDM":"CgECACODqfQAAAAAAAAAAAAA///AqA6GAAAAAAAAAAAAAP//wKgOgQAAAADoAwAAAAAAAHD///8AAAAAAAAAAAAAAACvos4D","Attributes":[null,"AAAAAAAAAAAAAAAAAAAAAA==",null,"Y3ViaWMA",""]}"#;
    const METADATA: &str = r#"{"Timestamp":"0001-01-01T00:00:00Z","Metadata":{"UUID":"ndt-jdczh_1553815964_00000000000003E8","Sequence":183,"StartTime":"2019-04-01T07:42:37.371Z"}}"#;

    fn round_trip(line: &str) -> String {
        let r = ArchivalRecord::from_json(line.as_bytes()).unwrap();
        let mut out = Vec::new();
        r.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn snapshot_line_round_trips() {
        assert_eq!(round_trip(SNAPSHOT), format!("{SNAPSHOT}\n"));
        let r = ArchivalRecord::from_json(SNAPSHOT.as_bytes()).unwrap();
        assert_eq!(r.raw_idm.len(), 72);
        assert_eq!(r.attributes.len(), 5);
        assert_eq!(r.attributes[3].as_deref(), Some(&b"cubic\0"[..]));
        assert_eq!(r.attributes[4].as_deref(), Some(&b""[..]));
    }

    #[test]
    fn metadata_line_round_trips() {
        assert_eq!(round_trip(METADATA), format!("{METADATA}\n"));
        let r = ArchivalRecord::from_json(METADATA.as_bytes()).unwrap();
        let m = r.metadata.unwrap();
        assert_eq!(m.sequence, 183);
        assert!(r.timestamp.is_go_zero());
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        assert!(matches!(
            ArchivalRecord::from_json(b"{not json"),
            Err(RecordError::Json(_))
        ));
        assert!(matches!(
            ArchivalRecord::from_json(br#"{"Timestamp":"2019-04-02T14:12:37Z","RawIDM":"@@"}"#),
            Err(RecordError::Base64 {
                field: "RawIDM",
                ..
            })
        ));
        assert!(matches!(
            ArchivalRecord::from_json(br#"{"Timestamp":"soon"}"#),
            Err(RecordError::Timestamp(_))
        ));
    }
}
