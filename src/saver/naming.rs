//! The UUID prefix of this host's archives (the names themselves are
//! the archive format's: `tcpinfo_archive::naming`).
//!
//! The prefix becomes part of every archive file's name, so it must be one
//! harmless file-name component: no `/` (which would write outside
//! `-output`), not `.` or `..`, no control characters (newlines in file
//! names break every tool that lists them), and short enough that
//! `<prefix>_<16 hex digits>.<seq>.jsonl.zst` fits in a file name.

use std::fs;
use std::io;
use std::path::Path;

use crate::small_file::{self, SmallFileError};

/// Longest accepted prefix, in bytes: with the cookie, sequence and
/// extension (33 bytes) a name stays well within NAME_MAX (255).
pub const MAX_PREFIX_BYTES: usize = 200;

/// Larger prefix files are not read at all.
const MAX_PREFIX_FILE_BYTES: u64 = 4096;

/// Why there is no UUID prefix.
#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    /// `-uuid-prefix-file` names a file that cannot be used: an operator's
    /// mistake, reported like a bad flag.
    #[error("uuid prefix file {file}: {problem}")]
    File { file: String, problem: String },
    /// No file was given and the default cannot be made.
    #[error("default uuid prefix: {0}")]
    Default(String),
}

impl PrefixError {
    /// Whether the command line is at fault (exit 2, like a bad flag).
    pub fn is_usage(&self) -> bool {
        matches!(self, PrefixError::File { .. })
    }
}

/// The UUID prefix: the trimmed content of `file` when given, otherwise
/// `<hostname>_<boot time in unix seconds>_unsafe` (unsafe: a host rebooted
/// within the same second, or renamed, could repeat UUIDs).
pub fn uuid_prefix(file: Option<&Path>) -> Result<String, PrefixError> {
    if let Some(file) = file {
        let refused = |problem: String| PrefixError::File {
            file: file.display().to_string(),
            problem,
        };
        let text = small_file::read_text(file, MAX_PREFIX_FILE_BYTES).map_err(|e| match e {
            SmallFileError::Io(e) => refused(e.to_string()),
            other => refused(other.to_string()),
        })?;
        let prefix = text.trim();
        check_prefix(prefix).map_err(refused)?;
        return Ok(prefix.to_string());
    }
    let default = |e: &dyn std::fmt::Display| PrefixError::Default(e.to_string());
    let hostname = nix::unistd::gethostname()
        .map_err(|e| default(&e))?
        .to_string_lossy()
        .into_owned();
    let prefix = format!(
        "{hostname}_{}_unsafe",
        boot_time().map_err(|e| default(&e))?
    );
    check_prefix(&prefix)
        .map_err(|problem| default(&format!("hostname {hostname:?}: {problem}")))?;
    Ok(prefix)
}

/// Whether `prefix` can be part of a file name; the problem otherwise.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("is empty".into());
    }
    if prefix.len() > MAX_PREFIX_BYTES {
        return Err(format!(
            "prefix is {} bytes long, more than {MAX_PREFIX_BYTES}",
            prefix.len()
        ));
    }
    if prefix.contains('/') {
        return Err(format!("prefix {prefix:?} contains '/'"));
    }
    if prefix == "." || prefix == ".." {
        return Err(format!("prefix {prefix:?} is a directory name"));
    }
    if let Some(c) = prefix.chars().find(|c| c.is_control()) {
        return Err(format!(
            "prefix {prefix:?} contains the control character {c:?}"
        ));
    }
    Ok(())
}

/// Boot time in unix seconds: the `btime` line of /proc/stat.
pub fn boot_time() -> io::Result<u64> {
    let stat = fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no btime in /proc/stat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_comes_from_the_file_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("prefix");
        fs::write(&f, "mlab1.lga0t_1554836592\n").unwrap();
        assert_eq!(uuid_prefix(Some(&f)).unwrap(), "mlab1.lga0t_1554836592");
        fs::write(&f, " \n").unwrap();
        assert!(uuid_prefix(Some(&f)).is_err());
        assert!(uuid_prefix(Some(&dir.path().join("missing"))).is_err());
    }

    #[test]
    fn default_prefix_is_hostname_boot_time_unsafe() {
        let p = uuid_prefix(None).unwrap();
        assert!(
            p.ends_with(&format!("_{}_unsafe", boot_time().unwrap())),
            "{p}"
        );
    }

    #[test]
    fn a_prefix_that_is_not_one_harmless_name_is_a_usage_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("prefix");
        let long = "x".repeat(MAX_PREFIX_BYTES + 1);
        for (content, problem) in [
            ("../../../../x", "contains '/'"),
            ("a/b", "contains '/'"),
            ("..", "is a directory name"),
            (".\n", "is a directory name"),
            ("host\nname", "contains the control character '\\n'"),
            ("host\0name", "contains the control character '\\0'"),
            (
                "host\u{1b}[2Jname",
                "contains the control character '\\u{1b}'",
            ),
            ("host\u{85}name", "contains the control character '\\u{85}'"),
            (" \t\n", "is empty"),
            (&long, "more than 200"),
        ] {
            fs::write(&f, content).unwrap();
            let e = uuid_prefix(Some(&f)).unwrap_err();
            assert!(e.is_usage(), "{content:?}");
            let text = e.to_string();
            assert!(
                text.starts_with(&format!("uuid prefix file {}: ", f.display())),
                "{content:?}: {text}"
            );
            assert!(text.contains(problem), "{content:?}: {text}");
            assert!(
                !text.contains('\n'),
                "{content:?}: {text:?} is not one line"
            );
        }
        // Exactly the limit, and dots inside a name, are fine.
        let at_limit = "y".repeat(MAX_PREFIX_BYTES);
        for good in [at_limit.as_str(), "mlab1.lga0t..x", "..x", "host_1_unsafe"] {
            fs::write(&f, good).unwrap();
            assert_eq!(uuid_prefix(Some(&f)).unwrap(), good);
        }
    }

    #[test]
    fn a_prefix_file_that_is_a_fifo_or_device_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        for (path, problem) in [
            (fifo.as_path(), "is a FIFO"),
            (Path::new("/dev/zero"), "is a character device"),
        ] {
            let e = uuid_prefix(Some(path)).unwrap_err();
            assert!(e.is_usage());
            assert!(e.to_string().contains(problem), "{e}");
        }
    }
}
