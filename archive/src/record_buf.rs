//! `RecordBuf`: the one decoder of archive lines. Every reader of archives
//! (csvtool's hot path, [`ArchivalRecord::from_json`](crate::ArchivalRecord),
//! the agent's tests) goes through it, so they cannot disagree.
//!
//! It decodes with the semantics of Go's `encoding/json` unmarshalling into
//! M-Lab's `netlink.ArchivalRecord`, which is what M-Lab's parser does:
//!
//! - Keys match a field exactly or under Unicode simple case folding
//!   (`bytes.EqualFold`: `rawidm`, `TIMESTAMP`, and `Timeſtamp` with a long
//!   s all name their field); unknown keys are ignored; a repeated key
//!   overwrites the earlier value.
//! - `null` sets a slice or pointer to nil (`RawIDM`, `Attributes`, an
//!   attribute, `Metadata`) and leaves any other field as it was
//!   (`Timestamp`, `UUID`, …); a `null` line is an empty record.
//! - `[]byte` fields are base64 as Go's `base64.StdEncoding` reads them:
//!   padding required, non-zero trailing bits tolerated (only `Strict()`
//!   rejects them), CR and LF anywhere ignored; anything else is an error.
//!
//! The base64 payloads are decoded straight into one byte arena, and every
//! buffer is reused from line to line, so reading a large archive allocates
//! nothing per record once the buffers have grown to a typical line.

use std::fmt;
use std::ops::Range;

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::record::{ArchivalRecord, Metadata, RecordError};
use crate::timestamp::{Timestamp, GO_ZERO_TIME};

/// Go's `base64.StdEncoding`: padding required, non-zero trailing bits
/// tolerated. (Go also skips CR and LF; see [`decode_base64`].)
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
    /// Valid when `has_metadata`; kept otherwise so its `UUID` buffer is
    /// reused.
    metadata: Metadata,
    has_metadata: bool,
    raw_idm: Option<Range<usize>>,
    attributes: Vec<Option<Range<usize>>>,
    /// Every decoded base64 payload of the line, back to back.
    arena: Vec<u8>,
    /// A base64 text with its line breaks taken out (rare: only a line
    /// written by hand has them).
    unbroken: Vec<u8>,
}

impl Default for RecordBuf {
    fn default() -> Self {
        RecordBuf {
            timestamp: go_zero(),
            metadata: empty_metadata(),
            has_metadata: false,
            raw_idm: None,
            attributes: Vec::with_capacity(32),
            arena: Vec::with_capacity(1024),
            unbroken: Vec::new(),
        }
    }
}

impl fmt::Debug for RecordBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordBuf")
            .field("timestamp", &self.timestamp.to_string())
            .field("metadata", &self.metadata())
            .field("raw_idm", &self.raw_idm())
            .field("attributes", &self.attributes().collect::<Vec<_>>())
            .finish()
    }
}

fn go_zero() -> Timestamp {
    // The constant is valid RFC 3339; the fallback is never taken.
    Timestamp::parse(GO_ZERO_TIME).unwrap_or_else(|_| Timestamp::from_unix_millis(0))
}

fn empty_metadata() -> Metadata {
    Metadata {
        uuid: String::new(),
        sequence: 0,
        start_time: go_zero(),
    }
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
        let result = OrNull(LineSeed {
            buf: self,
            failure: &mut failure,
        })
        .deserialize(&mut de);
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

    /// The `Metadata` object, its missing fields zero.
    pub fn metadata(&self) -> Option<&Metadata> {
        self.has_metadata.then_some(&self.metadata)
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

    /// The line as an owned [`ArchivalRecord`].
    pub fn to_record(&self) -> ArchivalRecord {
        ArchivalRecord {
            timestamp: self.timestamp,
            raw_idm: self.raw_idm().map(<[u8]>::to_vec).unwrap_or_default(),
            attributes: self
                .attributes
                .iter()
                .map(|r| r.clone().map(|r| self.arena[r].to_vec()))
                .collect(),
            metadata: self.metadata().cloned(),
        }
    }
}

/// Decodes `text` onto the end of `arena` and returns where it landed.
fn decode_base64(
    arena: &mut Vec<u8>,
    unbroken: &mut Vec<u8>,
    field: &'static str,
    text: &str,
) -> Result<Range<usize>, RecordError> {
    let error = |source| RecordError::Base64 { field, source };
    match decode_onto(arena, text.as_bytes()) {
        Ok(range) => Ok(range),
        // Go's decoder skips CR and LF wherever they are; retrying without
        // them keeps the common case a single pass.
        Err(first) if text.bytes().any(|b| b == b'\r' || b == b'\n') => {
            unbroken.clear();
            unbroken.extend(text.bytes().filter(|&b| b != b'\r' && b != b'\n'));
            decode_onto(arena, unbroken).map_err(|_| error(first))
        }
        Err(e) => Err(error(e)),
    }
}

fn decode_onto(arena: &mut Vec<u8>, text: &[u8]) -> Result<Range<usize>, base64::DecodeError> {
    let start = arena.len();
    arena.resize(start + text.len() / 4 * 3 + 3, 0);
    match GO_STD_BASE64.decode_slice(text, &mut arena[start..]) {
        Ok(n) => {
            arena.truncate(start + n);
            Ok(start..start + n)
        }
        Err(e) => {
            arena.truncate(start);
            Err(match e {
                base64::DecodeSliceError::DecodeError(e) => e,
                // The output slice is sized for the longest possible result.
                base64::DecodeSliceError::OutputSliceTooSmall => {
                    base64::DecodeError::InvalidLength(text.len())
                }
            })
        }
    }
}

/// Whether JSON key `key` names the Go struct field `field` (ASCII): equal,
/// or equal under Unicode simple case folding as Go's `bytes.EqualFold`.
fn names_field(key: &str, field: &str) -> bool {
    if key == field {
        return true;
    }
    let mut chars = key.chars();
    for f in field.bytes() {
        let same = match chars.next() {
            Some(c) if c.is_ascii() => (c as u8).eq_ignore_ascii_case(&f),
            // The only non-ASCII characters whose case folding reaches an
            // ASCII letter: KELVIN SIGN (k) and LATIN SMALL LETTER LONG S (s).
            Some('\u{212A}') => f.eq_ignore_ascii_case(&b'k'),
            Some('\u{17F}') => f.eq_ignore_ascii_case(&b's'),
            _ => false,
        };
        if !same {
            return false;
        }
    }
    chars.next().is_none()
}

/// Which of `fields` the key names, by its index.
struct KeySeed<const N: usize>([&'static str; N]);

impl<'de, const N: usize> DeserializeSeed<'de> for KeySeed<N> {
    type Value = Option<usize>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<const N: usize> Visitor<'_> for KeySeed<N> {
    type Value = Option<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|field| names_field(key, field)))
    }
}

/// Errors that are not JSON syntax (bad base64, bad time) are parked in the
/// decoder's `failure` slot so they keep their own type; serde only learns
/// that decoding stopped.
fn park<E: de::Error>(failure: &mut Option<RecordError>, e: RecordError) -> E {
    *failure = Some(e);
    E::custom("invalid field")
}

/// A value decoded by `S`, or `null` (`None`).
struct OrNull<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for OrNull<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OrNull<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// Each seed below is its own visitor: `deserialize` hands it to the
/// `deserialize_*` method for the JSON type it expects.
macro_rules! seed_visits {
    ($($seed:ident => $value:ty, $method:ident;)*) => {$(
        impl<'de> DeserializeSeed<'de> for $seed<'_> {
            type Value = $value;
            fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.$method(self)
            }
        }
    )*};
}

seed_visits! {
    LineSeed => (), deserialize_map;
    TimestampSeed => Timestamp, deserialize_str;
    Base64Seed => Range<usize>, deserialize_str;
    AttributesSeed => (), deserialize_seq;
    MetadataSeed => (), deserialize_map;
    UuidSeed => (), deserialize_str;
}

/// The top-level object.
struct LineSeed<'b> {
    buf: &'b mut RecordBuf,
    failure: &'b mut Option<RecordError>,
}

const TIMESTAMP: usize = 0;
const RAW_IDM: usize = 1;
const ATTRIBUTES: usize = 2;
const METADATA: usize = 3;
const LINE_FIELDS: [&str; 4] = ["Timestamp", "RawIDM", "Attributes", "Metadata"];

impl<'de> Visitor<'de> for LineSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an archive record object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let buf = self.buf;
        while let Some(key) = map.next_key_seed(KeySeed(LINE_FIELDS))? {
            match key {
                Some(TIMESTAMP) => {
                    let seed = OrNull(TimestampSeed(&mut *self.failure));
                    if let Some(ts) = map.next_value_seed(seed)? {
                        buf.timestamp = ts;
                    }
                }
                Some(RAW_IDM) => {
                    buf.raw_idm = map.next_value_seed(OrNull(Base64Seed {
                        arena: &mut buf.arena,
                        unbroken: &mut buf.unbroken,
                        field: "RawIDM",
                        failure: &mut *self.failure,
                    }))?;
                }
                Some(ATTRIBUTES) => {
                    // A repeated key replaces the earlier array, as in Go.
                    buf.attributes.clear();
                    map.next_value_seed(OrNull(AttributesSeed {
                        buf: &mut *buf,
                        failure: &mut *self.failure,
                    }))?;
                }
                Some(METADATA) => {
                    // Go decodes into the struct a pointer already points
                    // to, and allocates a zero one when it is nil.
                    if !buf.has_metadata {
                        buf.metadata.uuid.clear();
                        buf.metadata.sequence = 0;
                        buf.metadata.start_time = go_zero();
                    }
                    let seed = OrNull(MetadataSeed {
                        metadata: &mut buf.metadata,
                        failure: &mut *self.failure,
                    });
                    buf.has_metadata = map.next_value_seed(seed)?.is_some();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// RFC 3339 text.
struct TimestampSeed<'b>(&'b mut Option<RecordError>);

impl Visitor<'_> for TimestampSeed<'_> {
    type Value = Timestamp;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 time")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Timestamp, E> {
        Timestamp::parse(text).map_err(|e| park(self.0, e.into()))
    }
}

/// A base64 string, decoded into the arena.
struct Base64Seed<'b> {
    arena: &'b mut Vec<u8>,
    unbroken: &'b mut Vec<u8>,
    field: &'static str,
    failure: &'b mut Option<RecordError>,
}

impl Visitor<'_> for Base64Seed<'_> {
    type Value = Range<usize>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64 string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        decode_base64(self.arena, self.unbroken, self.field, text)
            .map_err(|e| park(self.failure, e))
    }
}

/// `Attributes`: an array of base64 strings and `null`s.
struct AttributesSeed<'b> {
    buf: &'b mut RecordBuf,
    failure: &'b mut Option<RecordError>,
}

impl<'de> Visitor<'de> for AttributesSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of base64 strings or nulls")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let buf = self.buf;
        loop {
            let slot = seq.next_element_seed(OrNull(Base64Seed {
                arena: &mut buf.arena,
                unbroken: &mut buf.unbroken,
                field: "Attributes",
                failure: &mut *self.failure,
            }))?;
            match slot {
                Some(range) => buf.attributes.push(range),
                None => return Ok(()),
            }
        }
    }
}

/// The fields of Go's `netlink.Metadata`.
struct MetadataSeed<'b> {
    metadata: &'b mut Metadata,
    failure: &'b mut Option<RecordError>,
}

const UUID: usize = 0;
const SEQUENCE: usize = 1;
const START_TIME: usize = 2;
const METADATA_FIELDS: [&str; 3] = ["UUID", "Sequence", "StartTime"];

impl<'de> Visitor<'de> for MetadataSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a metadata object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let m = self.metadata;
        while let Some(key) = map.next_key_seed(KeySeed(METADATA_FIELDS))? {
            match key {
                Some(UUID) => {
                    map.next_value_seed(OrNull(UuidSeed(&mut m.uuid)))?;
                }
                Some(SEQUENCE) => {
                    if let Some(sequence) = map.next_value::<Option<u64>>()? {
                        m.sequence = sequence;
                    }
                }
                Some(START_TIME) => {
                    let seed = OrNull(TimestampSeed(&mut *self.failure));
                    if let Some(ts) = map.next_value_seed(seed)? {
                        m.start_time = ts;
                    }
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A string copied into a reused `String`.
struct UuidSeed<'b>(&'b mut String);

impl Visitor<'_> for UuidSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, text: &str) -> Result<(), E> {
        self.0.clear();
        self.0.push_str(text);
        Ok(())
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
        let m = b.metadata().unwrap();
        assert_eq!((m.uuid.as_str(), m.sequence), ("x", 183));
        assert_eq!(m.start_time.to_string(), "2019-04-01T07:42:37.371Z");
        b.parse(br#"{"Metadata":{"Sequence":1}}"#).unwrap();
        let m = b.metadata().unwrap();
        assert_eq!((m.uuid.as_str(), m.sequence), ("", 1));
        assert!(m.start_time.is_go_zero());
        b.parse(SNAPSHOT.as_bytes()).unwrap();
        assert_eq!(b.metadata(), None);
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
        assert_eq!(b.to_record(), r);
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
            b.parse(br#"{"Metadata":{"StartTime":"soon"}}"#),
            Err(RecordError::Timestamp(_))
        ));
        assert!(matches!(
            b.parse(br#"{"Attributes":[1]}"#),
            Err(RecordError::Json(_))
        ));
        assert!(matches!(
            b.parse(br#"{"Metadata":1}"#),
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

    #[test]
    fn field_names_fold_like_go_bytes_equal_fold() {
        assert!(names_field("Timestamp", "Timestamp"));
        assert!(names_field("TIMESTAMP", "Timestamp"));
        assert!(names_field("Time\u{17F}tamp", "Timestamp"));
        assert!(names_field("\u{212A}", "k"));
        assert!(!names_field("Timestamps", "Timestamp"));
        assert!(!names_field("Timestam", "Timestamp"));
        assert!(!names_field("Time_stamp", "Timestamp"));
        assert!(!names_field("Tim\u{e9}stamp", "Timestamp"));
    }
}
