//! What the agent refuses before it polls, where the refusal needs root to
//! set up: an output directory that belongs to another user.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use harness::agent::agent_binary;

/// The unprivileged user of most systems (`nobody`).
const NOBODY: u32 = 65534;

#[test]
fn an_output_directory_owned_by_another_user_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    // What an unprivileged user pre-creates where the agent will write:
    // its own directory (0755, so no one else may write there) ...
    let planted = tmp.path().join("tcpinfo");
    std::fs::create_dir(&planted).unwrap();
    std::os::unix::fs::chown(&planted, Some(NOBODY), Some(NOBODY)).unwrap();
    // ... or a directory above the output directory.
    let parent = tmp.path().join("home");
    std::fs::create_dir(&parent).unwrap();
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::chown(&parent, Some(NOBODY), Some(NOBODY)).unwrap();
    for (output, offender) in [(planted.clone(), &planted), (parent.join("data"), &parent)] {
        let out = Command::new(agent_binary())
            .arg(format!("-output={}", output.display()))
            .arg("-prometheusx.listen-address=127.0.0.1:0")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert_eq!(
            err,
            format!(
                "tcp-info: output directory {}: {} is owned by uid {NOBODY}, neither root nor the agent's user (0)\n",
                output.display(),
                offender.display()
            )
        );
        assert_eq!(std::fs::read_dir(&planted).unwrap().count(), 0);
    }
}
