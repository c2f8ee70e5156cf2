//! The decoding semantics every reader of archives gets, pinned through
//! both public entry points ([`RecordBuf::parse`], csvtool's hot path, and
//! [`ArchivalRecord::from_json`], the owned model the agent's tests use):
//! Go's `encoding/json` unmarshalling into M-Lab's `netlink.ArchivalRecord`,
//! which is how M-Lab's parser reads these files.

use tcpinfo_archive::{ArchivalRecord, RecordBuf, RecordError};

/// What decoding `line` gives through each entry point; they must agree.
fn decode(line: &str) -> Result<ArchivalRecord, String> {
    let mut buf = RecordBuf::new();
    let via_buf = buf.parse(line.as_bytes()).map(|()| buf.to_record());
    let owned = ArchivalRecord::from_json(line.as_bytes());
    match (via_buf, owned) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "{line}");
            Ok(a)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string(), "{line}");
            Err(kind(&a).to_string())
        }
        (a, b) => panic!("entry points disagree on {line}: {a:?} vs {b:?}"),
    }
}

fn kind(e: &RecordError) -> &'static str {
    match e {
        RecordError::Json(_) => "json",
        RecordError::Base64 { .. } => "base64",
        RecordError::Timestamp(_) => "timestamp",
    }
}

fn raw_idm(line: &str) -> Result<Vec<u8>, String> {
    decode(line).map(|r| r.raw_idm)
}

#[test]
fn keys_match_like_go_encoding_json() {
    // Exact, any ASCII case, and Unicode simple folding (U+017F LONG S is
    // an `s`, U+212A KELVIN SIGN a `k`), as Go's bytes.EqualFold.
    for key in ["RawIDM", "rawidm", "RAWIDM", "rAwIdM"] {
        assert_eq!(raw_idm(&format!(r#"{{"{key}":"AQ=="}}"#)), Ok(vec![1]));
    }
    for key in ["Timestamp", "timestamp", "TIMESTAMP", "Time\u{17F}tamp"] {
        let r = decode(&format!(
            r#"{{"{key}":"2019-04-02T14:12:37Z","RawIDM":"AA=="}}"#
        ));
        assert_eq!(r.unwrap().timestamp.to_string(), "2019-04-02T14:12:37Z");
    }
    let r = decode(
        r#"{"metadata":{"uuid":"u","SEQUENCE":7,"starttime":"2019-04-01T07:42:37.371Z"},"attributes":[null,"AQ=="]}"#,
    )
    .unwrap();
    let m = r.metadata.unwrap();
    assert_eq!((m.uuid.as_str(), m.sequence), ("u", 7));
    assert_eq!(m.start_time.to_string(), "2019-04-01T07:42:37.371Z");
    assert_eq!(r.attributes, vec![None, Some(vec![1])]);

    // Near misses are other keys, which are ignored.
    for key in ["Raw_IDM", "RawIDMs", "RawID", "R\u{e1}wIDM"] {
        assert_eq!(
            raw_idm(&format!(r#"{{"{key}":"AQ==","x":[{{}}]}}"#)),
            Ok(vec![])
        );
    }
    // A repeated key (in any case) overwrites the earlier value; null sets a
    // byte slice to nil and leaves a time as it was.
    assert_eq!(raw_idm(r#"{"RawIDM":"AQ==","rawidm":"Ag=="}"#), Ok(vec![2]));
    assert_eq!(raw_idm(r#"{"RawIDM":"AQ==","RawIDM":null}"#), Ok(vec![]));
    let r = decode(r#"{"Timestamp":"2019-04-02T14:12:37Z","Timestamp":null}"#).unwrap();
    assert_eq!(r.timestamp.to_string(), "2019-04-02T14:12:37Z");
    let r = decode(r#"{"Attributes":["AQ=="],"Attributes":[null]}"#).unwrap();
    assert_eq!(r.attributes, vec![None]);
    // Repeated Metadata objects merge, as Go decodes into the struct the
    // pointer already holds; null drops it.
    let r = decode(r#"{"Metadata":{"UUID":"u"},"Metadata":{"Sequence":2}}"#).unwrap();
    let m = r.metadata.unwrap();
    assert_eq!((m.uuid.as_str(), m.sequence), ("u", 2));
    assert_eq!(
        decode(r#"{"Metadata":{"UUID":"u"},"Metadata":null}"#)
            .unwrap()
            .metadata,
        None
    );
    // A null line is an empty record, as Go leaves the value untouched.
    let empty = decode("null").unwrap();
    assert!(empty.timestamp.is_go_zero() && empty.raw_idm.is_empty());
    assert_eq!((empty.attributes.len(), empty.metadata), (0, None));
}

#[test]
fn byte_fields_are_base64_as_go_std_encoding_reads_it() {
    // Canonical and non-canonical trailing bits ("AB==" and "AAB=" leave
    // bits set that Go's StdEncoding ignores; only Strict() rejects them).
    assert_eq!(raw_idm(r#"{"RawIDM":"AQID"}"#), Ok(vec![1, 2, 3]));
    assert_eq!(raw_idm(r#"{"RawIDM":"AB=="}"#), Ok(vec![0]));
    assert_eq!(raw_idm(r#"{"RawIDM":"AAB="}"#), Ok(vec![0, 0]));
    assert_eq!(raw_idm(r#"{"RawIDM":""}"#), Ok(vec![]));
    // CR and LF are skipped wherever they are, padding included.
    assert_eq!(raw_idm(r#"{"RawIDM":"AQ\r\nID"}"#), Ok(vec![1, 2, 3]));
    assert_eq!(raw_idm(r#"{"RawIDM":"AQ=\n=\n"}"#), Ok(vec![1]));
    let r = decode(r#"{"Attributes":["\nAQ=="]}"#).unwrap();
    assert_eq!(r.attributes, vec![Some(vec![1])]);
    // Everything else is an error: missing padding, the URL alphabet,
    // other whitespace, data after the padding, a lone padding quantum.
    for bad in [
        "AQ", "AQ=", "-_-_", "AQ ==", "AQ==AQ==", "====", "A===", "AQID\\t",
    ] {
        assert_eq!(
            raw_idm(&format!(r#"{{"RawIDM":"{bad}"}}"#)),
            Err("base64".to_string()),
            "{bad:?}"
        );
        assert_eq!(
            decode(&format!(r#"{{"Attributes":[null,"{bad}"]}}"#)).map(|_| ()),
            Err("base64".to_string()),
            "{bad:?}"
        );
    }
}
