//! The agent refuses bad settings before it polls: one line on stderr and
//! a non-zero exit. (It never reaches the kernel, so no root is needed; the
//! policy and range semantics are tested against real sockets in the
//! kernel tests, tests/kernel/tests/listen_policy.rs and remote_states.rs.)

use std::path::Path;
use std::process::Command;

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tcp-info"))
}

fn write_policy(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_invalid_policy_at_startup_stops_the_agent_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write_policy(
        dir.path(),
        "bad.toml",
        "[[count]]\nlisteners = 1\nport = \"ssh\"\n",
    );
    let missing = dir.path().join("missing.toml").display().to_string();
    for (policy, want) in [
        (
            &bad,
            format!(
                "tcp-info: listen policy: {bad}:3: invalid type: string \"ssh\", expected a port number (1-65535)\n"
            ),
        ),
        (
            &missing,
            format!("tcp-info: listen policy: {missing}: No such file or directory (os error 2)\n"),
        ),
    ] {
        let out = agent()
            .arg(format!("-output={}", dir.path().join("data").display()))
            .arg("-prometheusx.listen-address=127.0.0.1:0")
            .arg(format!("-listen-policy={policy}"))
            .output()
            .unwrap();
        // Like the agent's other start-up errors (files, addresses): exit 1.
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(text(&out.stderr), want);
    }
}

#[test]
fn a_bad_remote_states_range_is_a_one_line_error_and_exit_2() {
    for (bad, named) in [
        ("-remote-states=198.51.100.0/33", "198.51.100.0/33"),
        ("-remote-states=198.51.100.0/24,bogus", "bogus"),
    ] {
        let out = agent().arg(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        assert!(
            err.contains("--remote-states") && err.contains(named),
            "{bad}: {err}"
        );
    }
}

#[test]
fn a_uuid_prefix_that_would_leave_the_output_directory_is_a_one_line_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prefix");
    let out = dir.path().join("data");
    for (content, problem) in [
        ("../../../../x\n", "contains '/'"),
        ("host\nname\n", "control character"),
        ("\n", "is empty"),
    ] {
        std::fs::write(&file, content).unwrap();
        let run = agent()
            .arg(format!("-output={}", out.display()))
            .arg("-prometheusx.listen-address=127.0.0.1:0")
            .arg(format!("-uuid-prefix-file={}", file.display()))
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{content:?}");
        let err = text(&run.stderr);
        assert_eq!(err.lines().count(), 1, "{content:?}: {err}");
        assert!(
            err.starts_with(&format!("tcp-info: uuid prefix file {}: ", file.display())),
            "{content:?}: {err}"
        );
        assert!(err.contains(problem), "{content:?}: {err}");
    }
    // Nothing was written anywhere.
    assert!(!out.exists());
}

#[test]
fn a_world_writable_output_directory_is_refused_with_one_line_and_exit_1() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    for (output, want) in [
        (
            shared.clone(),
            format!(
                "tcp-info: output directory {0}: {0} is writable by every user (mode 0777)\n",
                shared.display()
            ),
        ),
        (
            shared.join("data"),
            format!(
                "tcp-info: output directory {0}/data: {0} is writable by every user (mode 0777, without the sticky bit)\n",
                shared.display()
            ),
        ),
    ] {
        let out = agent()
            .arg(format!("-output={}", output.display()))
            .arg("-prometheusx.listen-address=127.0.0.1:0")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), want);
    }
}

#[test]
fn absurd_intervals_are_one_line_errors_and_exit_2() {
    for (bad, range) in [
        ("-flush-interval=3000000000000000h", "(1ms to 1h)"),
        ("-poll-interval=1ns", "(1ms to 1h)"),
        ("-poll-interval=2562048000000000h", "(1ms to 1h)"),
        ("-stats-interval=2562048000000000h", "(100ms to 24h)"),
        ("-rotation-interval=2562047788016h", "(1s to 24h)"),
    ] {
        let out = agent().arg(bad).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad}: {err}");
        let (flag, value) = bad.split_once('=').unwrap();
        assert!(
            err.starts_with("tcp-info: ")
                && err.contains(&format!("-{flag}"))
                && err.contains(&format!("duration {value:?} is out of range {range}")),
            "{bad}: {err}"
        );
    }
}

/// The cases `src/policy/file.rs` tests one by one, end to end: a
/// prompt one-line error naming the file, exit 2.
#[test]
fn check_refuses_a_fifo_a_device_a_directory_or_an_oversize_policy_at_once_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
    let device = Path::new("/dev/zero");
    let cases = [
        (fifo.as_path(), "is a FIFO"),
        (device, "is a character device"),
        (dir.path(), "is a directory"),
    ];
    let oversize = (big.as_path(), "is larger than 1048576 bytes");
    let cases = cases
        .map(|(path, kind)| (path, format!("{kind}, not a regular file")))
        .into_iter()
        .chain([(oversize.0, oversize.1.to_string())]);
    for (policy, problem) in cases {
        let started = std::time::Instant::now();
        let out = agent()
            .arg("check")
            .arg(format!("-policy={}", policy.display()))
            .output()
            .unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(out.status.code(), Some(2), "{policy:?}");
        assert_eq!(
            text(&out.stderr),
            format!("tcp-info check: {}: {problem}\n", policy.display())
        );
    }
}
