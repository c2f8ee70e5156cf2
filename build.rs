//! Build facts the agent exports (`git_short_commit`, `tcpinfo_build_info`)
//! and logs at start: the git commit and the compiler.

use std::process::Command;

fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}

fn main() {
    // A build without the repository (a source tarball, a container
    // context without .git) names the commit in TCPINFO_GIT_COMMIT.
    println!("cargo:rerun-if-env-changed=TCPINFO_GIT_COMMIT");
    let commit = std::env::var("TCPINFO_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| output("git", &["rev-parse", "--short=7", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // HEAD, and the branch it points at, move with every commit.
    let branch = output("git", &["symbolic-ref", "-q", "HEAD"]);
    for path in std::iter::once("HEAD").chain(branch.as_deref()) {
        if let Some(p) = output("git", &["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let rustc_version = output(&rustc, &["--version"])
        .and_then(|v| v.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=TCPINFO_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=TCPINFO_RUSTC_VERSION={rustc_version}");
}
