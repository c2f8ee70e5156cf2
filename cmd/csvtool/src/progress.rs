//! A progress line on stderr for long runs, when a person is watching
//! (stderr is a terminal): records, archives done, and the rate, redrawn
//! at most a few times a second, and only after the first second (short
//! runs print nothing).

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(250);
const QUIET_START: Duration = Duration::from_secs(1);

pub struct Progress {
    on: bool,
    start: Instant,
    last: Instant,
    records: u64,
    files_done: usize,
    files: usize,
    drawn: bool,
}

impl Progress {
    /// A progress line for `files` archives, shown only when stderr is a
    /// terminal.
    pub fn new(files: usize) -> Self {
        Self::with_output(files, io::stderr().is_terminal())
    }

    fn with_output(files: usize, on: bool) -> Self {
        let now = Instant::now();
        Progress {
            on,
            start: now,
            last: now,
            records: 0,
            files_done: 0,
            files,
            drawn: false,
        }
    }

    pub fn enabled(&self) -> bool {
        self.on
    }

    pub fn records(&mut self, n: u64) {
        self.records += n;
        self.tick();
    }

    pub fn file_done(&mut self) {
        self.files_done += 1;
        self.tick();
    }

    fn tick(&mut self) {
        if !self.on {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.last) < EVERY || now.duration_since(self.start) < QUIET_START {
            return;
        }
        self.last = now;
        self.draw(now);
    }

    fn draw(&mut self, now: Instant) {
        let secs = now.duration_since(self.start).as_secs_f64().max(1e-3);
        let line = format!(
            "\rcsvtool: {} records, {}/{} archives, {:.0} records/s\x1b[K",
            self.records,
            self.files_done,
            self.files,
            self.records as f64 / secs
        );
        // A failing stderr loses the progress line, nothing else.
        let _ = io::stderr().lock().write_all(line.as_bytes());
        self.drawn = true;
    }

    /// Draws the final figures and ends the line, if a line was drawn.
    pub fn finish(&mut self) {
        if self.on && self.drawn {
            self.draw(Instant::now());
            let _ = io::stderr().lock().write_all(b"\n");
            self.drawn = false;
        }
    }
}

/// Records in a chunk of CSV rows (a congestion-control name would need a
/// newline to skew this, and it only feeds the progress line).
pub fn rows_in(chunk: &[u8]) -> u64 {
    chunk.iter().filter(|&&b| b == b'\n').count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_when_not_a_terminal() {
        let mut p = Progress::with_output(3, false);
        p.records(10);
        p.file_done();
        p.finish();
        assert!(!p.enabled() && !p.drawn);
        assert_eq!(rows_in(b"a\nb\n"), 2);
    }
}
