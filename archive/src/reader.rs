//! `ArchiveReader`: the lines of one archive, plain JSONL or zstd.
//!
//! The format is sniffed from the content (the zstd frame magic), not the
//! file name. A zstd archive may be any number of concatenated frames (the
//! agent appends one frame per flush); a stream that ends inside a frame is
//! an error, never a silent end of file, because M-Lab's ETL drops such
//! files. Memory stays bounded: one reused line buffer, and a line longer
//! than [`MAX_LINE`] is an error rather than a reason to grow.

use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read};

/// The zstd frame magic number, little-endian on disk (RFC 8878, 3.1.1).
pub const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// Skippable zstd frames start with `0x184D2A5?` (RFC 8878, 3.1.2).
fn is_skippable_frame(prefix: &[u8]) -> bool {
    prefix.len() == 4 && prefix[0] & 0xF0 == 0x50 && prefix[1..] == [0x2A, 0x4D, 0x18]
}

/// Longest line accepted. Real lines are under 2 KiB; this only guards
/// memory against a corrupt or hostile file with no newlines.
pub const MAX_LINE: usize = 16 << 20;

const BUFFER: usize = 64 << 10;

/// Why reading an archive stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadErrorKind {
    #[error("read failed: {0}")]
    Io(#[source] io::Error),
    #[error("corrupt zstd stream: {0}")]
    Zstd(#[source] io::Error),
    #[error("truncated zstd stream: the last frame is incomplete")]
    TruncatedFrame,
    #[error("line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// A reading error, located: `<name>:<line>: <what>`.
#[derive(Debug)]
pub struct ReadError {
    pub name: String,
    /// 1-based number of the line being read when the error happened.
    pub line: u64,
    pub kind: ReadErrorKind,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.name, self.line, self.kind)
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// How the archive's bytes are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Plain,
    Zstd,
}

type Prefixed<R> = io::Chain<Cursor<Vec<u8>>, R>;

enum Source<R: Read> {
    Plain(BufReader<Prefixed<R>>),
    Zstd(BufReader<zstd::stream::read::Decoder<'static, BufReader<Prefixed<R>>>>),
}

/// Reads the lines of one archive, in order, with their line numbers.
pub struct ArchiveReader<R: Read> {
    name: String,
    source: Source<R>,
    line: Vec<u8>,
    line_no: u64,
    done: bool,
}

impl<R: Read> fmt::Debug for ArchiveReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveReader")
            .field("name", &self.name)
            .field("encoding", &self.encoding())
            .field("line_no", &self.line_no)
            .finish()
    }
}

impl<R: Read> ArchiveReader<R> {
    /// Sniffs the encoding from the first bytes of `input`. `name` is what
    /// errors call the archive (usually its path).
    pub fn new(name: impl Into<String>, mut input: R) -> Result<Self, ReadError> {
        let name = name.into();
        let fail = |kind| ReadError {
            name: name.clone(),
            line: 1,
            kind,
        };
        let mut prefix = Vec::with_capacity(4);
        (&mut input)
            .take(4)
            .read_to_end(&mut prefix)
            .map_err(|e| fail(ReadErrorKind::Io(e)))?;
        let zstd = prefix == ZSTD_MAGIC || is_skippable_frame(&prefix);
        let input = Cursor::new(prefix).chain(input);
        let source = if zstd {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(BUFFER, input))
                    .map_err(|e| fail(ReadErrorKind::Zstd(e)))?;
            Source::Zstd(BufReader::with_capacity(BUFFER, decoder))
        } else {
            Source::Plain(BufReader::with_capacity(BUFFER, input))
        };
        Ok(ArchiveReader {
            name,
            source,
            line: Vec::with_capacity(4096),
            line_no: 0,
            done: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn encoding(&self) -> Encoding {
        match self.source {
            Source::Plain(_) => Encoding::Plain,
            Source::Zstd(_) => Encoding::Zstd,
        }
    }

    /// Number of the line last returned (0 before the first).
    pub fn line_number(&self) -> u64 {
        self.line_no
    }

    /// The next non-blank line without its line ending, or `None` at the
    /// clean end of the archive. After an error, keeps returning `None`.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, ReadError> {
        loop {
            if self.done {
                return Ok(None);
            }
            // Runs of blank lines are passed over a buffer at a time: one
            // at a time, a zstd bomb of newlines (each compressed byte can
            // stand for thousands) costs seconds per kilobyte of input.
            let skipped = match &mut self.source {
                Source::Plain(r) => skip_blank_lines(r),
                Source::Zstd(r) => skip_blank_lines(r),
            };
            match skipped {
                Ok(lines) => self.line_no += lines,
                Err(e) => {
                    self.line_no += 1;
                    self.done = true;
                    return Err(self.error(ReadErrorKind::Io(e)));
                }
            }
            self.line.clear();
            let read = match &mut self.source {
                Source::Plain(r) => read_line(r, &mut self.line),
                Source::Zstd(r) => read_line(r, &mut self.line),
            };
            self.line_no += 1;
            let n = match read {
                Ok(n) => n,
                Err(kind) => {
                    self.done = true;
                    return Err(self.error(kind));
                }
            };
            if n == 0 {
                self.done = true;
                return Ok(None);
            }
            let mut end = self.line.len();
            while end > 0 && matches!(self.line[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if self.line[..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(&self.line[..end]));
        }
    }

    fn error(&self, kind: ReadErrorKind) -> ReadError {
        let kind = match (self.encoding(), kind) {
            (Encoding::Zstd, ReadErrorKind::Io(e)) => classify_zstd(e),
            (_, kind) => kind,
        };
        ReadError {
            name: self.name.clone(),
            line: self.line_no,
            kind,
        }
    }
}

/// Consumes the complete blank lines (nothing but ASCII whitespace up to a
/// `\n`) at the front of `r`, in whole buffers; returns how many. Stops at
/// the start of the first line that is not blank, or of a blank line that
/// does not end within the buffer (which `read_line` then reads as usual),
/// so what `next_line` returns is the same as without it.
fn skip_blank_lines(r: &mut impl BufRead) -> io::Result<u64> {
    let mut lines = 0;
    loop {
        let buf = r.fill_buf()?;
        // One pass: the newlines of the blank run, and where the run ends.
        // (Blank is `u8::is_ascii_whitespace`, as `next_line` has it.)
        let mut newlines = 0;
        let mut after_last_newline = 0;
        let mut blank = true;
        for (i, b) in buf.iter().enumerate() {
            match b {
                b'\n' => {
                    newlines += 1;
                    after_last_newline = i + 1;
                }
                b' ' | b'\t' | b'\r' | b'\x0c' => {}
                _ => {
                    blank = false;
                    break;
                }
            }
        }
        if newlines == 0 {
            return Ok(lines);
        }
        lines += newlines;
        r.consume(after_last_newline);
        if !blank {
            return Ok(lines);
        }
    }
}

/// Appends one line (with its `\n`) to `line`; 0 at end of input.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> Result<usize, ReadErrorKind> {
    let limit = MAX_LINE as u64 + 1;
    let n = r
        .take(limit)
        .read_until(b'\n', line)
        .map_err(ReadErrorKind::Io)?;
    if n as u64 == limit && line.last() != Some(&b'\n') {
        return Err(ReadErrorKind::LineTooLong);
    }
    Ok(n)
}

/// The zstd crate reports an input that ends inside a frame as
/// `UnexpectedEof`; everything else it reports is a corrupt stream (or an
/// I/O error of the file underneath, which it passes through unchanged).
fn classify_zstd(e: io::Error) -> ReadErrorKind {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => ReadErrorKind::TruncatedFrame,
        io::ErrorKind::Other | io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => {
            ReadErrorKind::Zstd(e)
        }
        _ => ReadErrorKind::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Result<Vec<(u64, String)>, ReadError> {
        let mut r = ArchiveReader::new("t", input)?;
        let mut out = Vec::new();
        while let Some(l) = r.next_line()? {
            let l = String::from_utf8_lossy(l).into_owned();
            out.push((r.line_number(), l));
        }
        Ok(out)
    }

    fn zstd_frames(parts: &[&[u8]]) -> Vec<u8> {
        parts
            .iter()
            .flat_map(|p| zstd::encode_all(*p, 3).unwrap())
            .collect()
    }

    #[test]
    fn plain_lines_are_numbered_and_blank_lines_skipped() {
        let got = lines(b"a\r\n\n  \nb\nc").unwrap();
        assert_eq!(got, vec![(1, "a".into()), (4, "b".into()), (5, "c".into())]);
    }

    #[test]
    fn zstd_is_detected_by_content_and_frames_concatenate() {
        let data = zstd_frames(&[b"one\ntw", b"o\nthree\n"]);
        let mut r = ArchiveReader::new("x.jsonl", &data[..]).unwrap();
        assert_eq!(r.encoding(), Encoding::Zstd);
        assert_eq!(r.next_line().unwrap(), Some(&b"one"[..]));
        assert_eq!(r.next_line().unwrap(), Some(&b"two"[..]));
        assert_eq!(r.next_line().unwrap(), Some(&b"three"[..]));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn truncated_last_frame_is_an_error_on_the_line_being_read() {
        let mut data = zstd_frames(&[b"one\n", b"two\nthree\n"]);
        data.truncate(data.len() - 3);
        let mut r = ArchiveReader::new("f.zst", &data[..]).unwrap();
        let mut seen = 0;
        let err = loop {
            match r.next_line() {
                Ok(Some(_)) => seen += 1,
                Ok(None) => panic!("truncation went unnoticed"),
                Err(e) => break e,
            }
        };
        assert!(matches!(err.kind, ReadErrorKind::TruncatedFrame), "{err}");
        assert_eq!(err.line, seen + 1);
        assert!(err.to_string().starts_with("f.zst:"));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn garbage_after_a_frame_is_corrupt() {
        let mut data = zstd_frames(&[b"one\n"]);
        data.extend_from_slice(b"not zstd at all");
        let err = lines(&data).unwrap_err();
        assert!(matches!(err.kind, ReadErrorKind::Zstd(_)), "{err}");
        assert_eq!(err.line, 2);
    }

    #[test]
    fn corrupt_frame_header_is_an_error() {
        let mut data = zstd_frames(&[b"one\n", b"two\n"]);
        // The second frame's descriptor with its reserved bit set (RFC 8878,
        // 3.1.1.1.1).
        let second = data.len() - zstd_frames(&[b"two\n"]).len();
        data[second + 4] |= 0x08;
        let err = lines(&data).unwrap_err();
        assert!(matches!(err.kind, ReadErrorKind::Zstd(_)), "{err}");
        assert_eq!(err.line, 2);
    }

    #[test]
    fn runs_of_blank_lines_keep_their_line_numbers() {
        // Blank runs across buffer boundaries, a blank line longer than a
        // buffer, and leading whitespace kept on the line that follows.
        let mut text = Vec::new();
        text.extend(b"a\n");
        text.extend(std::iter::repeat_n(b"\n \t\r\n".as_slice(), 40_000).flatten());
        text.extend(b"  b\n");
        text.extend(std::iter::repeat_n(b' ', 3 * BUFFER));
        text.extend(b"\n\x0c\n\x0bc\n\n");
        let want = vec![
            (1, "a".into()),
            (80_002, "  b".into()),
            (80_005, "\x0bc".into()),
        ];
        assert_eq!(lines(&text).unwrap(), want);
        assert_eq!(lines(&zstd_frames(&[&text])).unwrap(), want);
    }

    #[test]
    fn empty_and_tiny_inputs_are_plain() {
        assert_eq!(lines(b"").unwrap(), vec![]);
        assert_eq!(lines(b"(\xb5").unwrap(), vec![(1, "(\u{fffd}".into())]);
    }
}
