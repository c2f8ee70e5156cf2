use crate::{InetDiagMsg, ParseError, INET_DIAG_MSG_LEN};

/// Highest attribute type a [`DiagRecord`] indexes. The kernel's
/// `INET_DIAG_MAX` is in the low thirties today; the headroom lets newer
/// kernels' attributes through untouched. An attribute above it is
/// skipped (and counted in [`DiagRecord::skipped_attributes`]): the rest of
/// the record is still good.
pub const MAX_ATTRIBUTE_TYPE: u16 = 63;

/// `NLA_TYPE_MASK`: the top two bits of `rta_type` are flags (nested,
/// network byte order), not part of the type.
const TYPE_MASK: u16 = 0x3fff;

/// One `SOCK_DIAG_BY_FAMILY` reply viewed in place: `struct inet_diag_msg`
/// followed by `struct rtattr`s, each payload exactly as the kernel sent it.
#[derive(Clone, Copy)]
pub struct DiagRecord<'a> {
    payload: &'a [u8],
    msg: InetDiagMsg<'a>,
    /// Bit `t` set when attribute type `t` is present.
    present: u64,
    /// Start and length of each present attribute's payload in `payload`.
    spans: [(u32, u32); MAX_ATTRIBUTE_TYPE as usize + 1],
    /// Attributes whose type is above [`MAX_ATTRIBUTE_TYPE`].
    skipped: u16,
}

impl<'a> DiagRecord<'a> {
    /// Parses a netlink payload (what follows `struct nlmsghdr`). Every
    /// length is checked against the buffer; nothing is copied.
    pub fn parse(payload: &'a [u8]) -> Result<Self, ParseError> {
        let msg = InetDiagMsg::parse(payload)?;
        let mut record = DiagRecord {
            payload,
            msg,
            present: 0,
            spans: [(0, 0); MAX_ATTRIBUTE_TYPE as usize + 1],
            skipped: 0,
        };
        for attr in AttributeIter::new(payload, INET_DIAG_MSG_LEN) {
            let (kind, start, len) = attr?;
            if kind > MAX_ATTRIBUTE_TYPE {
                record.skipped = record.skipped.saturating_add(1);
                continue;
            }
            record.present |= 1 << kind;
            record.spans[kind as usize] = (start as u32, len as u32);
        }
        Ok(record)
    }

    /// The whole payload: inet_diag_msg plus attributes, padding included.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    pub fn msg(&self) -> InetDiagMsg<'a> {
        self.msg
    }

    /// The payload of attribute `kind`, if the kernel sent it.
    pub fn attribute(&self, kind: u16) -> Option<&'a [u8]> {
        if kind > MAX_ATTRIBUTE_TYPE || self.present & (1 << kind) == 0 {
            return None;
        }
        let (start, len) = self.spans[kind as usize];
        Some(&self.payload[start as usize..(start + len) as usize])
    }

    /// Where attribute `kind`'s payload lies in [`DiagRecord::payload`].
    pub fn attribute_span(&self, kind: u16) -> Option<std::ops::Range<usize>> {
        if kind > MAX_ATTRIBUTE_TYPE || self.present & (1 << kind) == 0 {
            return None;
        }
        let (start, len) = self.spans[kind as usize];
        Some(start as usize..(start + len) as usize)
    }

    /// Bit `t` is set when attribute `t` is present.
    pub fn attribute_mask(&self) -> u64 {
        self.present
    }

    /// Attributes skipped because their type is above
    /// [`MAX_ATTRIBUTE_TYPE`] (a kernel far newer than this code).
    pub fn skipped_attributes(&self) -> u16 {
        self.skipped
    }

    /// One more than the highest attribute type present (0 when none): the
    /// length of the archive's `Attributes` array.
    pub fn attribute_slots(&self) -> usize {
        64 - self.present.leading_zeros() as usize
    }
}

/// The type of the attribute whose payload is exactly `span` of `payload`
/// (its 4-byte header just before, its length saying so), if one could be
/// there: a check in place of a walk, for a caller that knows where a
/// socket's previous reply had an attribute. It says nothing of the other
/// attributes.
pub fn attribute_kind_at(payload: &[u8], span: std::ops::Range<usize>) -> Option<u16> {
    if span.start < INET_DIAG_MSG_LEN + 4 || span.start > span.end || span.end > payload.len() {
        return None;
    }
    let header = &payload[span.start - 4..span.start];
    let len = u16::from_ne_bytes([header[0], header[1]]) as usize;
    (len == span.len() + 4).then(|| u16::from_ne_bytes([header[2], header[3]]) & TYPE_MASK)
}

/// Walks the `rtattr` list of a payload from `offset`, yielding
/// `(type, payload start, payload length)`; stops at the first malformed
/// header with an error.
pub struct AttributeIter<'a> {
    buf: &'a [u8],
    offset: usize,
    failed: bool,
}

impl<'a> AttributeIter<'a> {
    pub fn new(buf: &'a [u8], offset: usize) -> Self {
        Self {
            buf,
            offset,
            failed: false,
        }
    }
}

impl Iterator for AttributeIter<'_> {
    type Item = Result<(u16, usize, usize), ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.offset >= self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.offset..];
        if rest.len() < 4 {
            self.failed = true;
            return Some(Err(ParseError::ShortAttributeHeader {
                offset: self.offset,
                have: rest.len(),
            }));
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & TYPE_MASK;
        if len < 4 || len > rest.len() {
            self.failed = true;
            return Some(Err(ParseError::BadAttributeLength {
                offset: self.offset,
                len,
                have: rest.len(),
            }));
        }
        let start = self.offset + 4;
        // RTA_ALIGN: attributes start on 4-byte boundaries; the final
        // attribute's padding may be absent.
        self.offset += (len + 3) & !3;
        Some(Ok((kind, start, len - 4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((payload.len() + 4) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(payload);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    fn record(attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut v = vec![0u8; INET_DIAG_MSG_LEN];
        v[0] = crate::AF_INET;
        for a in attrs {
            v.extend_from_slice(a);
        }
        v
    }

    #[test]
    fn indexes_attributes_by_type() {
        let buf = record(&[
            attr(2, &[1, 2, 3, 4, 5]),
            attr(4, b"cubic\0"),
            attr(8, &[3]),
        ]);
        let r = DiagRecord::parse(&buf).unwrap();
        assert_eq!(r.attribute(2), Some(&[1, 2, 3, 4, 5][..]));
        assert_eq!(r.attribute(4), Some(&b"cubic\0"[..]));
        assert_eq!(r.attribute(8), Some(&[3][..]));
        assert_eq!(r.attribute(1), None);
        assert_eq!(r.attribute(200), None);
        assert_eq!(r.attribute_slots(), 9);
    }

    #[test]
    fn an_attribute_is_recognised_where_the_parse_found_it_and_nowhere_else() {
        let buf = record(&[
            attr(1, &[9; 16]),
            attr(2, &[1, 2, 3, 4, 5]),
            attr(4, b"cubic\0"),
        ]);
        let r = DiagRecord::parse(&buf).unwrap();
        for kind in [1, 2, 4] {
            let span = r.attribute_span(kind).unwrap();
            assert_eq!(attribute_kind_at(&buf, span), Some(kind));
        }
        let info = r.attribute_span(2).unwrap();
        // A span of another length, shifted, past the end, reversed, or
        // inside inet_diag_msg.
        assert_eq!(attribute_kind_at(&buf, info.start..info.end + 1), None);
        assert_eq!(attribute_kind_at(&buf, info.start + 4..info.end + 4), None);
        assert_eq!(attribute_kind_at(&buf, buf.len()..buf.len() + 5), None);
        assert_eq!(attribute_kind_at(&buf, info.end..info.start), None);
        assert_eq!(attribute_kind_at(&buf, 4..9), None);
        assert_eq!(attribute_kind_at(&buf[..info.end - 1], info), None);
    }

    #[test]
    fn last_attribute_may_lack_padding() {
        let mut buf = record(&[attr(5, &[7])]);
        buf.truncate(buf.len() - 3);
        let r = DiagRecord::parse(&buf).unwrap();
        assert_eq!(r.attribute(5), Some(&[7][..]));
    }

    #[test]
    fn overlong_attribute_is_an_error() {
        let mut buf = record(&[attr(2, &[0; 8])]);
        buf.truncate(buf.len() - 1);
        assert!(matches!(
            DiagRecord::parse(&buf),
            Err(ParseError::BadAttributeLength {
                offset: 72,
                len: 12,
                have: 11
            })
        ));
    }

    #[test]
    fn short_attribute_header_is_an_error() {
        let mut buf = record(&[]);
        buf.extend_from_slice(&[8, 0]);
        assert!(matches!(
            DiagRecord::parse(&buf),
            Err(ParseError::ShortAttributeHeader {
                offset: 72,
                have: 2
            })
        ));
    }

    #[test]
    fn an_attribute_type_above_the_maximum_is_skipped_and_the_rest_kept() {
        let buf = record(&[
            attr(2, &[1, 2, 3, 4]),
            attr(MAX_ATTRIBUTE_TYPE + 7, &[9; 12]),
            attr(4, b"bbr\0"),
        ]);
        let r = DiagRecord::parse(&buf).expect("the record survives");
        assert_eq!(r.attribute(2), Some(&[1, 2, 3, 4][..]));
        assert_eq!(r.attribute(4), Some(&b"bbr\0"[..]));
        assert_eq!(r.skipped_attributes(), 1);
        assert_eq!(r.attribute_slots(), 5);
    }

    #[test]
    fn zero_length_attribute_header_is_an_error_not_a_loop() {
        let mut buf = record(&[]);
        buf.extend_from_slice(&[0, 0, 2, 0]);
        assert!(DiagRecord::parse(&buf).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            if let Ok(r) = DiagRecord::parse(&bytes) {
                for t in 0..=MAX_ATTRIBUTE_TYPE {
                    let _ = r.attribute(t);
                }
                let _ = r.msg().cookie();
            }
        }

        #[test]
        fn truncating_a_valid_record_never_panics(cut in 0usize..200) {
            let buf = record(&[attr(1, &[1; 16]), attr(2, &[2; 100]), attr(4, b"bbr\0")]);
            let cut = cut.min(buf.len());
            let _ = DiagRecord::parse(&buf[..cut]);
        }
    }
}
