//! `RecordBuf`: one archive line decoded into buffers that are reused from
//! line to line, so that reading a large archive allocates nothing per
//! record once the buffers have grown to the size of a typical line.
//!
//! This is the hot-path twin of [`ArchivalRecord::from_json`]
//! (crate::ArchivalRecord): same JSON, same Go semantics (keys
//! matched case-insensitively like Go's `encoding/json`, `null` where Go has
//! a nil slice or pointer, base64 as Go's `StdEncoding` accepts it), but the
//! base64 payloads are decoded straight into one reused byte arena and the
//! metadata record is only noted, not copied out.

use std::fmt;
use std::ops::Range;

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserializer as _;

use crate::record::RecordError;
use crate::timestamp::{Timestamp, GO_ZERO_TIME};

/// Go's `base64.StdEncoding`: padding required, non-zero trailing bits
/// tolerated (Go only rejects them in `Strict` mode).
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// One decoded archive line, reusable across lines.
#[derive(Clone)]
pub struct RecordBuf {
    timestamp: Timestamp,
    has_metadata: bool,
    raw_idm: Option<Range<usize>>,
    attributes: Vec<Option<Range<usize>>>,
    /// Every decoded base64 payload of the line, back to back.
    arena: Vec<u8>,
}

impl Default for RecordBuf {
    fn default() -> Self {
        RecordBuf {
            timestamp: go_zero(),
            has_metadata: false,
            raw_idm: None,
            attributes: Vec::with_capacity(32),
            arena: Vec::with_capacity(1024),
        }
    }
}

impl fmt::Debug for RecordBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBuf")
            .field("timestamp", &self.timestamp.to_string())
            .field("has_metadata", &self.has_metadata)
            .field("raw_idm", &self.raw_idm())
            .field("attributes", &self.attributes().collect::<Vec<_>>())
            .finish()
    }
}

fn go_zero() -> Timestamp {
    // The constant is valid RFC 3339; the fallback is never taken.
    Timestamp::parse(GO_ZERO_TIME).unwrap_or_else(|_| Timestamp::from_unix_millis(0))
}

impl RecordBuf {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one JSON line, replacing whatever the buffer held.
    pub fn parse(&mut self, line: &[u8]) -> Result<(), RecordError> {
        self.timestamp = go_zero();
        self.has_metadata = false;
        self.raw_idm = None;
        self.attributes.clear();
        self.arena.clear();
        let mut de = serde_json::Deserializer::from_slice(line);
        let mut failure = None;
        let result = de.deserialize_map(LineVisitor {
            buf: self,
            failure: &mut failure,
        });
        if let Some(e) = failure {
            return Err(e);
        }
        result?;
        de.end()?;
        Ok(())
    }

    /// The record's time; Go's zero time when the line has none.
    pub fn timestamp(&self) -> &Timestamp {
        &self.timestamp
    }

    /// Whether the line carries a (non-null) `Metadata` object.
    pub fn has_metadata(&self) -> bool {
        self.has_metadata
    }

    /// The decoded `RawIDM`, `None` when absent or `null`.
    pub fn raw_idm(&self) -> Option<&[u8]> {
        self.raw_idm.clone().map(|r| &self.arena[r])
    }

    /// Number of slots in `Attributes` (highest type present + 1).
    pub fn attribute_slots(&self) -> usize {
        self.attributes.len()
    }

    /// The payload of attribute `kind`, `None` when absent or `null`.
    pub fn attribute(&self, kind: usize) -> Option<&[u8]> {
        self.attributes
            .get(kind)
            .and_then(|r| r.clone())
            .map(|r| &self.arena[r])
    }

    /// Every present attribute as `(type, payload)`, in type order.
    pub fn attributes(&self) -> impl Iterator<Item = (usize, &[u8])> + '_ {
        self.attributes
            .iter()
            .enumerate()
            .filter_map(|(kind, r)| r.clone().map(|r| (kind, &self.arena[r])))
    }
}

/// Decodes `text` onto the end of `arena` and returns where it landed.
fn push_base64(arena: &mut Vec<u8>, text: &str) -> Result<Range<usize>, RecordError> {
    let start = arena.len();
    arena.resize(start + text.len() / 4 * 3 + 3, 0);
    match GO_STD_BASE64.decode_slice(text.as_bytes(), &mut arena[start..]) {
        Ok(n) => {
            arena.truncate(start + n);
            Ok(start..start + n)
        }
        Err(e) => {
            arena.truncate(start);
            let source = match e {
                base64::DecodeSliceError::DecodeError(e) => e,
                // The output slice is sized for the longest possible result.
                base64::DecodeSliceError::OutputSliceTooSmall => {
                    base64::DecodeError::InvalidLength(text.len())
                }
            };
            Err(RecordError::Base64 { field: "", source })
        }
    }
}

fn base64_error(field: &'static str, e: RecordError) -> RecordError {
    match e {
        RecordError::Base64 { source, .. } => RecordError::Base64 { field, source },
        other => other,
    }
}

/// The top-level object. Errors that are not JSON syntax (bad base64, bad
/// time) are parked in `failure` so they keep their own type.
struct LineVisitor<'b> {
    buf: &'b mut RecordBuf,
    failure: &'b mut Option<RecordError>,
}

enum Key {
    Timestamp,
    RawIdm,
    Attributes,
    Metadata,
    Other,
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(KeySeed)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, k: &str) -> Result<Key, E> {
        // Go's encoding/json matches field names case-insensitively.
        Ok(if k.eq_ignore_ascii_case("Timestamp") {
            Key::Timestamp
        } else if k.eq_ignore_ascii_case("RawIDM") {
            Key::RawIdm
        } else if k.eq_ignore_ascii_case("Attributes") {
            Key::Attributes
        } else if k.eq_ignore_ascii_case("Metadata") {
            Key::Metadata
        } else {
            Key::Other
        })
    }
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an archive record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let outcome = match key {
                Key::Timestamp => map.next_value_seed(TimestampSeed)?,
                Key::RawIdm => match map.next_value_seed(OptStrSeed(&mut self.buf.arena))? {
                    Some(Ok(range)) => {
                        self.buf.raw_idm = Some(range);
                        None
                    }
                    Some(Err(e)) => Some(Err(base64_error("RawIDM", e))),
                    None => None,
                },
                Key::Attributes => {
                    let buf = &mut *self.buf;
                    map.next_value_seed(AttributesSeed {
                        arena: &mut buf.arena,
                        slots: &mut buf.attributes,
                    })?
                    .map(|e| Err(base64_error("Attributes", e)))
                }
                Key::Metadata => {
                    self.buf.has_metadata = map.next_value::<Option<IgnoredAny>>()?.is_some();
                    None
                }
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    None
                }
            };
            match outcome {
                Some(Ok(ts)) => self.buf.timestamp = ts,
                Some(Err(e)) => {
                    *self.failure = Some(e);
                    return Err(de::Error::custom("invalid field"));
                }
                None => {}
            }
        }
        Ok(())
    }
}

/// `Timestamp`: RFC 3339 text, or `null` (Go leaves the zero time).
struct TimestampSeed;

impl<'de> DeserializeSeed<'de> for TimestampSeed {
    type Value = Option<Result<Timestamp, RecordError>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for TimestampSeed {
    type Value = Option<Result<Timestamp, RecordError>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 time")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(Timestamp::parse(text).map_err(RecordError::from)))
    }
}

/// A base64 string or `null`, decoded into the arena.
struct OptStrSeed<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for OptStrSeed<'_> {
    type Value = Option<Result<Range<usize>, RecordError>>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for OptStrSeed<'_> {
    type Value = Option<Result<Range<usize>, RecordError>>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(push_base64(self.0, text)))
    }
}

/// `Attributes`: an array of base64 strings and `null`s, or `null`.
struct AttributesSeed<'b> {
    arena: &'b mut Vec<u8>,
    slots: &'b mut Vec<Option<Range<usize>>>,
}

impl<'de> DeserializeSeed<'de> for AttributesSeed<'_> {
    type Value = Option<RecordError>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for AttributesSeed<'_> {
    type Value = Option<RecordError>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of base64 strings or nulls")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.slots.clear();
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.slots.clear();
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // A repeated key replaces the earlier array, as in Go.
        self.slots.clear();
        while let Some(slot) = seq.next_element_seed(OptStrSeed(&mut *self.arena))? {
            match slot {
                Some(Ok(range)) => self.slots.push(Some(range)),
                None => self.slots.push(None),
                Some(Err(e)) => {
                    // Drain the rest so the caller reports this error, not a
                    // syntax error about an unfinished array.
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    return Ok(Some(e));
                }
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = r#"{"Timestamp":"2019-04-02T14:12:37.511Z","RawIDM":"CgECACODqfQAAAAAAAAAAAAA///AqA6GAAAAAAAAAAAAAP//wKgOgQAAAADoAwAAAAAAAHD///8AAAAAAAAAAAAAAACvos4D","Attributes":[null,"AAAAAAAAAAAAAAAAAAAAAA==",null,"Y3ViaWMA",""]}"#;
    const METADATA: &str = r#"{"Timestamp":"0001-01-01T00:00:00Z","Metadata":{"UUID":"x","Sequence":183,"StartTime":"2019-04-01T07:42:37.371Z"}}"#;

    #[test]
    fn snapshot_line_decodes_into_the_arena() {
        let mut b = RecordBuf::new();
        b.parse(SNAPSHOT.as_bytes()).unwrap();
        assert_eq!(b.timestamp().to_string(), "2019-04-02T14:12:37.511Z");
        assert_eq!(b.raw_idm().map(<[u8]>::len), Some(72));
        assert_eq!(b.attribute_slots(), 5);
        assert_eq!(b.attribute(0), None);
        assert_eq!(b.attribute(1), Some(&[0u8; 16][..]));
        assert_eq!(b.attribute(3), Some(&b"cubic\0"[..]));
        assert_eq!(b.attribute(4), Some(&b""[..]));
        assert_eq!(b.attribute(9), None);
        assert!(!b.has_metadata());
    }

    #[test]
    fn buffer_is_reset_between_lines() {
        let mut b = RecordBuf::new();
        b.parse(SNAPSHOT.as_bytes()).unwrap();
        b.parse(METADATA.as_bytes()).unwrap();
        assert!(b.has_metadata());
        assert!(b.timestamp().is_go_zero());
        assert_eq!(b.raw_idm(), None);
        assert_eq!(b.attribute_slots(), 0);
    }

    #[test]
    fn agrees_with_archival_record() {
        let mut b = RecordBuf::new();
        b.parse(SNAPSHOT.as_bytes()).unwrap();
        let r = crate::ArchivalRecord::from_json(SNAPSHOT.as_bytes()).unwrap();
        assert_eq!(b.raw_idm(), Some(&r.raw_idm[..]));
        for (i, a) in r.attributes.iter().enumerate() {
            assert_eq!(b.attribute(i), a.as_deref());
        }
    }

    #[test]
    fn keys_match_case_insensitively_and_unknown_keys_are_ignored() {
        let mut b = RecordBuf::new();
        b.parse(br#"{"timestamp":"2019-04-02T14:12:37Z","rawidm":"AA==","Extra":{"a":[1,2]}}"#)
            .unwrap();
        assert_eq!(b.raw_idm(), Some(&[0u8][..]));
        assert_eq!(b.timestamp().to_string(), "2019-04-02T14:12:37Z");
    }

    #[test]
    fn errors_keep_their_kind() {
        let mut b = RecordBuf::new();
        assert!(matches!(b.parse(b"{not json"), Err(RecordError::Json(_))));
        assert!(matches!(b.parse(b"[1]"), Err(RecordError::Json(_))));
        assert!(matches!(b.parse(b"{} x"), Err(RecordError::Json(_))));
        assert!(matches!(
            b.parse(br#"{"RawIDM":"@@"}"#),
            Err(RecordError::Base64 {
                field: "RawIDM",
                ..
            })
        ));
        assert!(matches!(
            b.parse(br#"{"Attributes":[null,"AA=","AA=="]}"#),
            Err(RecordError::Base64 {
                field: "Attributes",
                ..
            })
        ));
        assert!(matches!(
            b.parse(br#"{"Timestamp":"soon"}"#),
            Err(RecordError::Timestamp(_))
        ));
        assert!(matches!(
            b.parse(br#"{"Attributes":[1]}"#),
            Err(RecordError::Json(_))
        ));
    }

    #[test]
    fn trailing_bits_are_tolerated_like_go() {
        let mut b = RecordBuf::new();
        // "AB==" has non-zero trailing bits: Go's StdEncoding accepts it.
        b.parse(br#"{"RawIDM":"AB=="}"#).unwrap();
        assert_eq!(b.raw_idm(), Some(&[0u8][..]));
    }
}
