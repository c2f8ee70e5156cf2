//! The UUID prefix of this host's archives (the names themselves are
//! the archive format's: `tcpinfo_archive::naming`).

use std::fs;
use std::io;
use std::path::Path;

/// The UUID prefix: the trimmed content of `file` when given, otherwise
/// `<hostname>_<boot time in unix seconds>_unsafe` (unsafe: a host rebooted
/// within the same second, or renamed, could repeat UUIDs).
pub fn uuid_prefix(file: Option<&Path>) -> io::Result<String> {
    if let Some(file) = file {
        let text = fs::read_to_string(file).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("uuid prefix file {}: {e}", file.display()),
            )
        })?;
        let prefix = text.trim();
        if prefix.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("uuid prefix file {} is empty", file.display()),
            ));
        }
        return Ok(prefix.to_string());
    }
    let hostname = nix::unistd::gethostname()
        .map_err(io::Error::from)?
        .to_string_lossy()
        .into_owned();
    Ok(format!("{hostname}_{}_unsafe", boot_time()?))
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
}
