//! The Dockerfile's image, built for real without a registry: buildah
//! (Debian's package) builds the Dockerfile's final stage `FROM scratch`,
//! with the build stage replaced by the root filesystem that stage's own
//! script (deploy/container/build-rootfs.sh) builds here
//! (`--build-context build=DIR`). Then the image's config (user, entrypoint,
//! working directory, health check) is read back, its files are checked
//! (static, stripped, data directories owned by 65534), and its binaries
//! run inside it as uid 65534 — with no libc in the image, a binary that
//! was not self-contained could not start — including the health probe
//! against a real agent.
//!
//! What this cannot cover: the build stage itself (it needs the Rust image
//! from a registry; CI has none).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harness::system::{require_root, run, tool, tool_path};
use harness::{Agent, Netns};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target directory the tests were built in (`<target>/<profile>/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<exe>")
        .to_path_buf()
}

/// buildah with its own storage under `root`: nothing outlives the test.
struct Buildah {
    root: tempfile::TempDir,
}

impl Buildah {
    fn command(&self, netns: Option<&Netns>) -> Command {
        let mut cmd = match netns {
            Some(ns) => ns.command(tool_path("buildah")),
            None => tool("buildah"),
        };
        cmd.arg(format!(
            "--root={}",
            self.root.path().join("storage").display()
        ))
        .arg(format!(
            "--runroot={}",
            self.root.path().join("run").display()
        ))
        .arg("--storage-driver=vfs");
        cmd
    }

    fn output(&self, args: &[&str]) -> String {
        let out = self.command(None).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `argv` in a container of `container` as uid:gid 65534, optionally
    /// in `netns`.
    fn run_in(&self, container: &str, netns: Option<&Netns>, argv: &[&str]) -> Output {
        self.command(netns)
            .args([
                "run",
                "--isolation=chroot",
                "--user=65534:65534",
                container,
                "--",
            ])
            .args(argv)
            .output()
            .unwrap()
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        // Containers first (their mounts), then the storage goes with the dir.
        let _ = self.command(None).args(["rm", "--all"]).output();
    }
}

#[test]
fn the_dockerfile_builds_a_static_non_root_image_whose_probe_and_flags_work() {
    require_root("buildah builds and runs images as root");
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    run(
        Command::new(repo().join("deploy/container/build-rootfs.sh"))
            .arg(&rootfs)
            .env("CARGO_TARGET_DIR", target_dir()),
    );

    // Static (no program interpreter) and stripped (no symbol table).
    for bin in ["tcp-info", "csvtool", "example-eventsocket-client"] {
        let path = rootfs.join("bin").join(bin);
        let out = tool("readelf")
            .args(["-lS", "-W"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Section Headers"),
            "{bin}: {text}"
        );
        assert!(!text.contains("INTERP"), "{bin} is dynamically linked");
        assert!(!text.contains(".symtab"), "{bin} is not stripped");
    }

    let context = work.path().join("context");
    std::fs::create_dir(&context).unwrap();
    let buildah = Buildah {
        root: tempfile::tempdir().unwrap(),
    };
    let dockerfile = repo().join("Dockerfile");
    buildah.output(&[
        "bud",
        "--format=docker",
        "--isolation=chroot",
        &format!("--build-context=build={}", work.path().display()),
        &format!("--file={}", dockerfile.display()),
        "--tag=localhost/tcp-info-rs:test",
        context.to_str().unwrap(),
    ]);

    let inspect: serde_json::Value = serde_json::from_str(&buildah.output(&[
        "inspect",
        "--type=image",
        "localhost/tcp-info-rs:test",
    ]))
    .unwrap();
    let config = &inspect["Docker"]["config"];
    assert_eq!(config["User"], "65534:65534");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/tcp-info"]));
    assert!(
        config["Cmd"].as_array().is_none_or(Vec::is_empty),
        "{config}"
    );
    assert_eq!(config["WorkingDir"], "/home");
    let health = &config["Healthcheck"]["Test"];
    assert_eq!(
        health,
        &serde_json::json!(["CMD", "/bin/tcp-info", "ready"])
    );
    assert!(config["ExposedPorts"]["9990/tcp"].is_object(), "{config}");

    let container = buildah.output(&["from", "localhost/tcp-info-rs:test"]);
    let mount = PathBuf::from(buildah.output(&["mount", &container]));
    for dir in ["home", "var/spool/tcpinfo"] {
        let meta = std::fs::metadata(mount.join(dir)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "/{dir}");
    }
    let mut listing: Vec<String> = std::fs::read_dir(mount.join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    listing.sort();
    assert_eq!(
        listing,
        ["csvtool", "example-eventsocket-client", "tcp-info"]
    );
    assert!(
        !mount.join("lib").exists() && !mount.join("usr").exists(),
        "only the binaries"
    );
    buildah.output(&["umount", &container]);

    // Each binary starts in the image as nobody.
    for argv in [
        &["/bin/tcp-info", "--help"][..],
        &["/bin/csvtool", "--help"],
        &["/bin/example-eventsocket-client", "--help"],
        &["/bin/tcp-info", "-output=/home/data", "--help"],
    ] {
        let out = buildah.run_in(&container, None, argv);
        assert!(
            out.status.success(),
            "{argv:?} in the image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The health check's probe, run in the image, against a real agent.
    let ns = Netns::new();
    let probe = ["/bin/tcp-info", "ready"];
    let out = buildah.run_in(&container, Some(&ns), &probe);
    assert_eq!(out.status.code(), Some(1), "ready with no agent");
    // buildah passes the container's output through on either stream.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("tcp-info ready: 127.0.0.1:9990"), "{said}");
    let _agent = Agent::serving_metrics(&ns, &[]);
    harness::wait_until(
        std::time::Duration::from_secs(10),
        "the agent's /-/ready",
        || {
            ns.http_get(9990, "/-/ready")
                .is_ok_and(|(status, _)| status == 200)
        },
    );
    let out = buildah.run_in(&container, Some(&ns), &probe);
    assert!(
        out.status.success(),
        "the image's probe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
