//! A child process whose stderr the test reads line by line: started,
//! watched for log lines, signalled, waited for with a deadline, and
//! killed on drop if it is still running.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub use nix::sys::signal::Signal;

use crate::wait::{wait_for, wait_for_ok};

/// A running child process; its stderr is collected line by line.
pub struct Process {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<thread::JoinHandle<()>>,
    /// Log lines before this index were consumed by [`Process::expect_line`].
    cursor: usize,
    status: Option<ExitStatus>,
}

impl Process {
    /// Starts `cmd` with stdin and stdout on /dev/null and stderr
    /// collected.
    pub fn spawn(cmd: &mut Command) -> Process {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let reader = thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Process {
            child,
            log,
            reader: Some(reader),
            cursor: 0,
            status: None,
        }
    }

    pub fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).expect("pids fit in pid_t")
    }

    /// Every stderr line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Every stderr line so far, as one text.
    pub fn log_text(&self) -> String {
        self.log().iter().map(|l| format!("{l}\n")).collect()
    }

    /// The exit status, if the process has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("waitpid");
        }
        self.status
    }

    /// Panics with the log if the process has exited; `waiting_for` says
    /// what the test was waiting for.
    pub fn assert_running(&mut self, waiting_for: &str) {
        if let Some(status) = self.try_status() {
            self.join_reader();
            panic!(
                "exited ({status}) while the test waited for {waiting_for}; its log:\n{}",
                self.log_text()
            );
        }
    }

    /// Waits for a log line containing `text` (anywhere in the log so far
    /// or to come); returns it.
    pub fn wait_for_log(&mut self, timeout: Duration, text: &str) -> String {
        let what = format!("log line {text:?}");
        wait_for(timeout, &what, || {
            let found = self.log().into_iter().find(|l| l.contains(text));
            if found.is_none() {
                self.assert_running(&what);
            }
            found
        })
    }

    /// Waits for the next log line containing `text` after the line the
    /// previous call returned; the lines in between are passed over.
    pub fn expect_line(&mut self, timeout: Duration, text: &str) -> String {
        let what = format!("a log line containing {text:?}");
        let (at, line) = wait_for_ok(timeout, &what, || {
            let log = self.log.lock().unwrap();
            log.iter()
                .enumerate()
                .skip(self.cursor)
                .find(|(_, l)| l.contains(text))
                .map(|(i, l)| (i, l.clone()))
                .ok_or_else(|| format!("{:#?}", &log[self.cursor.min(log.len())..]))
        });
        self.cursor = at + 1;
        line
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal)
            .unwrap_or_else(|e| panic!("sending {signal} to {}: {e}", self.pid()));
    }

    /// Waits (bounded) for the process to exit; returns its status and its
    /// complete log.
    pub fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Vec<String>) {
        let pid = self.pid();
        let status = wait_for(timeout, &format!("process {pid} to exit"), || {
            self.try_status()
        });
        self.join_reader();
        (status, self.log())
    }

    /// Sends `signal` and waits (bounded) for the process to exit; returns
    /// its status and its complete log.
    pub fn signal_and_wait(
        &mut self,
        signal: Signal,
        timeout: Duration,
    ) -> (ExitStatus, Vec<String>) {
        self.signal(signal);
        self.wait_exit(timeout)
    }

    /// Once the process has exited, its stderr ends: the reader has every
    /// line after this.
    fn join_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Process {
    /// A failed test must not leave the process behind.
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.join_reader();
    }
}

/// This test program's name as the kernel reports it (and so the agent's
/// `process` labels): the file name of its executable.
pub fn program_name() -> String {
    std::env::current_exe()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}
