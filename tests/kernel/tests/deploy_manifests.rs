//! The deployment manifests against the real tools' own validators:
//! Kubernetes' schema (kubernetes-validate, strict: unknown fields are
//! errors) and Compose v1 (Debian 12's docker-compose 1.29, which rejects
//! what Compose v2 added, such as a top-level `name:`). The flags in them
//! are checked by the agent's parser in tests/deploy.rs.

use std::path::{Path, PathBuf};

use harness::system::tool;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_kubernetes_manifests_pass_the_kubernetes_schema() {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        // A CRD (the Prometheus Operator's) has no schema in Kubernetes';
        // tests/deploy.rs checks it against the Service.
        .filter(|p| !p.ends_with("servicemonitor.yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    let out = tool("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .expect("running kubernetes-validate");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    for file in &files {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            report
                .lines()
                .any(|l| l.contains(name) && l.contains("passed")),
            "{name} not validated:\n{report}"
        );
    }
    assert!(!report.contains("WARN"), "{report}");

    // The validator is strict enough to matter: a misspelt field fails.
    let bad = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(dir.join("daemonset.yaml")).unwrap();
    let path = bad.path().join("daemonset.yaml");
    std::fs::write(&path, text.replace("hostPID:", "hostPid:")).unwrap();
    let out = tool("kubernetes-validate")
        .arg("--strict")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success(), "a misspelt field passed");
}

#[test]
fn compose_v1_accepts_the_compose_file() {
    let out = tool("docker-compose")
        .args(["-f", "docker-compose.yml", "config", "--quiet"])
        .current_dir(repo())
        .output()
        .expect("running docker-compose");
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
