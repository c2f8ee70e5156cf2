//! The bytes a client writes to the event socket, cut into request lines
//! of bounded length.

/// One line a client wrote.
#[derive(Debug, PartialEq, Eq)]
pub enum RequestLine<'a> {
    /// A complete line, without its `\n` (or `\r\n`), not blank.
    Text(&'a [u8]),
    /// A line longer than the limit; the rest of it is skipped.
    TooLong,
}

pub struct RequestReader {
    max: usize,
    line: Vec<u8>,
    /// Inside an over-long line: skip up to its newline.
    skipping: bool,
}

impl RequestReader {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            line: Vec::new(),
            skipping: false,
        }
    }

    /// Takes `bytes` as they arrived and hands each line completed by them
    /// to `each`.
    pub fn feed(&mut self, mut bytes: &[u8], mut each: impl FnMut(RequestLine<'_>)) {
        while !bytes.is_empty() {
            let (chunk, complete) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            bytes = &bytes[(chunk.len() + usize::from(complete)).min(bytes.len())..];
            if !self.skipping {
                if self.line.len() + chunk.len() > self.max {
                    self.line.clear();
                    self.skipping = true;
                    each(RequestLine::TooLong);
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            if complete {
                if !self.skipping {
                    let text = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                    if !text.iter().all(u8::is_ascii_whitespace) {
                        each(RequestLine::Text(text));
                    }
                }
                self.line.clear();
                self.skipping = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(reader: &mut RequestReader, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        reader.feed(bytes, |l| {
            out.push(match l {
                RequestLine::Text(t) => String::from_utf8_lossy(t).into_owned(),
                RequestLine::TooLong => "<too long>".into(),
            })
        });
        out
    }

    #[test]
    fn lines_split_across_reads_are_joined() {
        let mut r = RequestReader::new(64);
        assert!(lines(&mut r, b"{\"Subscr").is_empty());
        assert_eq!(
            lines(&mut r, b"ibe\":[]}\r\n\n  \nx\ny"),
            ["{\"Subscribe\":[]}", "x"]
        );
        assert_eq!(lines(&mut r, b"z\n"), ["yz"]);
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_skipped() {
        let mut r = RequestReader::new(8);
        assert_eq!(lines(&mut r, b"0123456"), Vec::<String>::new());
        assert_eq!(lines(&mut r, b"789"), ["<too long>"]);
        assert!(lines(&mut r, &[b'x'; 100]).is_empty());
        assert_eq!(lines(&mut r, b"tail\nok\n"), ["ok"]);
    }
}
