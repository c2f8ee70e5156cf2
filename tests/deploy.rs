//! The Docker deployment, checked without a Docker engine: the Dockerfile
//! ships exactly the binaries the workspace builds, and every
//! docker-compose service's command line is accepted by the real flag
//! parser of the binary it runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use tcp_info::config::Config;

/// The example client's own flag parser, compiled from its source file.
#[allow(dead_code)]
#[path = "../cmd/example-eventsocket-client/src/flags.rs"]
mod client_flags;

const SHIPPED: [&str; 3] = ["tcp-info", "csvtool", "example-eventsocket-client"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Dockerfile instructions with continuation lines joined.
fn dockerfile_instructions() -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
            }
        }
    }
    out
}

/// The final stage's instructions.
fn final_stage(instructions: &[String]) -> &[String] {
    let last_from = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM");
    &instructions[last_from..]
}

fn exec_form(instruction: &str, keyword: &str) -> Vec<String> {
    let json = instruction
        .strip_prefix(keyword)
        .unwrap_or_else(|| panic!("{instruction:?} is not {keyword}"))
        .trim();
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{keyword} must be exec form: {e}"))
}

fn dockerfile_entrypoint() -> Vec<String> {
    let instructions = dockerfile_instructions();
    let entry = final_stage(&instructions)
        .iter()
        .rfind(|i| i.starts_with("ENTRYPOINT "))
        .expect("an ENTRYPOINT");
    exec_form(entry, "ENTRYPOINT")
}

/// `(package, binary)` for every binary target in the workspace, from
/// `cargo metadata`.
fn workspace_binaries() -> BTreeSet<(String, String)> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(repo())
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut bins = BTreeSet::new();
    for package in meta["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            if target["kind"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k == "bin")
            {
                bins.insert((
                    package["name"].as_str().unwrap().to_string(),
                    target["name"].as_str().unwrap().to_string(),
                ));
            }
        }
    }
    bins
}

#[test]
fn dockerfile_ships_exactly_the_binaries_the_workspace_builds() {
    let instructions = dockerfile_instructions();
    let stage = final_stage(&instructions);
    let copied: BTreeSet<String> = stage
        .iter()
        .filter(|i| i.starts_with("COPY --from=build "))
        .flat_map(|i| {
            let words: Vec<&str> = i.split_whitespace().skip(2).collect();
            let (_dest, sources) = words.split_last().expect("COPY has a destination");
            sources
                .iter()
                .map(|s| s.rsplit('/').next().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: BTreeSet<String> = SHIPPED.iter().map(|s| s.to_string()).collect();
    assert_eq!(copied, expected, "binaries copied into the runtime image");

    let built = workspace_binaries();
    let build_step = instructions
        .iter()
        .find(|i| i.starts_with("RUN ") && i.contains("cargo build"))
        .expect("a cargo build step");
    for bin in &copied {
        let (package, _) = built
            .iter()
            .find(|(_, b)| b == bin)
            .unwrap_or_else(|| panic!("the workspace builds no binary {bin:?}"));
        assert!(
            build_step.contains(&format!("-p {package} ")),
            "build step must select package {package}"
        );
        assert!(
            build_step.contains(&format!("--bin {bin}")),
            "build step must build {bin}"
        );
        assert!(
            build_step.contains(&format!("target/release/{bin}")),
            "build step must copy {bin} out of the target directory"
        );
    }
    assert!(
        build_step.contains("--locked"),
        "builds use the committed Cargo.lock"
    );

    // Multi-stage: Rust toolchain image to build, slim Debian to run.
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|i| i.starts_with("FROM "))
        .collect();
    assert_eq!(froms.len(), 2);
    assert!(froms[0].starts_with("FROM rust:") && froms[0].ends_with(" AS build"));
    assert!(froms[1].starts_with("FROM debian:") && froms[1].contains("-slim"));

    // Runs as a non-root user.
    let user = stage
        .iter()
        .rfind(|i| i.starts_with("USER "))
        .expect("a USER in the runtime stage");
    let user = user["USER ".len()..].split(':').next().unwrap().trim();
    assert!(user != "root" && user != "0", "runs as {user}");

    let entry = dockerfile_entrypoint();
    assert_eq!(entry, ["/usr/local/bin/tcp-info"]);
}

#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, Service>,
    #[serde(default)]
    volumes: BTreeMap<String, Option<serde_yaml_ng::Value>>,
}

#[derive(Debug, Deserialize)]
struct Service {
    image: Option<String>,
    build: Option<serde_yaml_ng::Value>,
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    network_mode: Option<String>,
    #[serde(default)]
    ports: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    volumes: Vec<String>,
}

impl Service {
    /// The command line the container runs: entrypoint (the service's or
    /// the image's) followed by the command.
    fn argv(&self) -> Vec<String> {
        let mut argv = self
            .entrypoint
            .clone()
            .unwrap_or_else(dockerfile_entrypoint);
        argv.extend(self.command.iter().cloned());
        argv
    }

    /// `(volume, mount point)` of each named-volume mount.
    fn mounts(&self) -> Vec<(String, PathBuf)> {
        self.volumes
            .iter()
            .map(|v| {
                let mut parts = v.split(':');
                let source = parts.next().unwrap().to_string();
                let target = PathBuf::from(parts.next().expect("volume target"));
                (source, target)
            })
            .collect()
    }

    /// The named volume holding `path`, if any.
    fn volume_holding(&self, path: &Path) -> Option<String> {
        self.mounts()
            .into_iter()
            .find(|(_, target)| path.starts_with(target))
            .map(|(source, _)| source)
    }
}

enum Parsed {
    Agent(Box<Config>),
    Client(client_flags::Flags),
}

/// Runs `service`'s command line through the parser of the binary it
/// starts.
fn parse_service(name: &str, service: &Service) -> Parsed {
    let argv = service.argv();
    let binary = Path::new(&argv[0])
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        SHIPPED.contains(&binary.as_str()),
        "service {name} runs {binary}, which the image does not ship"
    );
    match binary.as_str() {
        "tcp-info" => {
            // The agent reads its environment fallbacks from the process
            // environment; compose must pass its settings as flags.
            assert!(
                service.environment.is_empty(),
                "service {name}: pass tcp-info settings as flags"
            );
            let config = Config::try_parse_go_args(argv.clone())
                .unwrap_or_else(|e| panic!("service {name}: {argv:?}: {e}"));
            Parsed::Agent(Box::new(config))
        }
        "example-eventsocket-client" => {
            let env = service.environment.clone();
            let flags = client_flags::Flags::parse_go_args(argv.clone(), |k| env.get(k).cloned())
                .unwrap_or_else(|e| panic!("service {name}: {argv:?}: {e}"));
            Parsed::Client(flags)
        }
        other => panic!("service {name}: no flag parser known for {other}"),
    }
}

#[test]
fn compose_services_parse_with_the_real_flag_parsers() {
    let compose: Compose = serde_yaml_ng::from_str(&read("docker-compose.yml")).unwrap();
    let mut agent = None;
    let mut clients = Vec::new();
    for (name, service) in &compose.services {
        assert!(
            service.image.is_some() || service.build.is_some(),
            "service {name} has no image"
        );
        for (volume, _) in service.mounts() {
            assert!(
                compose.volumes.contains_key(&volume),
                "service {name} mounts undeclared volume {volume}"
            );
        }
        match parse_service(name, service) {
            Parsed::Agent(config) => agent = Some((name, service, config)),
            Parsed::Client(flags) => clients.push((name, service, flags)),
        }
    }
    let (agent_name, agent_service, config) = agent.expect("a tcp-info service");
    assert!(!clients.is_empty(), "an example client sidecar");

    // The agent sees the host's sockets and serves metrics on the host.
    assert_eq!(agent_service.network_mode.as_deref(), Some("host"));
    assert!(
        agent_service.ports.is_empty(),
        "host networking discards published ports"
    );
    assert!(
        config.prometheus_listen_address.ends_with(":9990"),
        "metrics on port 9990, got {}",
        config.prometheus_listen_address
    );

    // Output and event socket on a volume the sidecar shares.
    let socket = config.eventsocket.clone().expect("tcp-info serves events");
    let socket_volume = agent_service
        .volume_holding(&socket)
        .expect("event socket on a volume");
    assert_eq!(
        agent_service.volume_holding(&config.output),
        Some(socket_volume.clone()),
        "output on the shared volume"
    );
    for (name, service, flags) in clients {
        let client_socket = flags.eventsocket.expect("client socket path");
        assert_eq!(
            client_socket, socket,
            "{name} must read the socket {agent_name} serves"
        );
        assert_eq!(
            service.volume_holding(&client_socket),
            Some(socket_volume.clone()),
            "{name} must mount the socket's volume"
        );
    }
}

#[test]
fn dockerfile_default_command_parses() {
    let instructions = dockerfile_instructions();
    let cmd = final_stage(&instructions)
        .iter()
        .rfind(|i| i.starts_with("CMD "))
        .expect("a CMD");
    let mut argv = dockerfile_entrypoint();
    argv.extend(exec_form(cmd, "CMD"));
    Config::try_parse_go_args(argv.clone()).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
}
