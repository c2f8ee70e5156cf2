//! The deployment files, checked without a container engine, a cluster or
//! systemd: every command line they start — the Dockerfile's entrypoint and
//! health check, each docker-compose service, each Kubernetes container,
//! the systemd unit with its environment file — is run through the real
//! binary's flag parser (`tcp-info ARGS… --help` exits 0 only when every
//! flag and variable before `--help` parses; the example client's own
//! parser, compiled from its source file), and the files agree with each
//! other: paths, user, ports, shared socket, capabilities.
//!
//! The kernel tests go further where tools allow: the image is built with
//! buildah and run (container_image.rs), the manifests are validated
//! against Kubernetes' schema and compose by docker-compose
//! (deploy_manifests.rs), the .deb is installed (deb_package.rs).

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

/// What the agent needs beyond an unprivileged user, everywhere it is
/// deployed: destroy notices, and other users' /proc for process names.
const CAPABILITIES: [&str; 3] = ["NET_ADMIN", "SYS_PTRACE", "DAC_READ_SEARCH"];

/// M-Lab's image layout: other images copy the agent from this path.
const AGENT_PATH: &str = "/bin/tcp-info";
const NOBODY: &str = "65534";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(name: &str) -> String {
    std::fs::read_to_string(repo().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Runs the real `tcp-info` with `args` then `--help`, in exactly `env`:
/// exit 0 means every flag and variable parsed. Returns the parsed config
/// too (the library's parser, the one the binary calls) for the checks
/// that compare files.
fn parse_agent(what: &str, args: &[String], env: &BTreeMap<String, String>) -> Config {
    let out = Command::new(env!("CARGO_BIN_EXE_tcp-info"))
        .args(args)
        .arg("--help")
        .env_clear()
        .envs(env)
        .output()
        .expect("running tcp-info");
    assert!(
        out.status.success(),
        "{what}: tcp-info {args:?} (env {env:?}) refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let argv = std::iter::once("tcp-info".to_string()).chain(args.iter().cloned());
    goflag::try_parse_with_env_from(argv, |k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Runs `tcp-info ready ARGS --help` the same way (the health probe).
fn parse_probe(what: &str, args: &[String]) {
    let out = Command::new(env!("CARGO_BIN_EXE_tcp-info"))
        .args(args)
        .arg("--help")
        .env_clear()
        .output()
        .expect("running tcp-info");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ready"),
        "{what}: tcp-info {args:?} refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn parse_client(
    what: &str,
    argv: &[String],
    env: &BTreeMap<String, String>,
) -> client_flags::Flags {
    client_flags::Flags::parse_go_args(argv.to_vec(), |k| env.get(k).cloned())
        .unwrap_or_else(|e| panic!("{what}: {argv:?}: {e}"))
}

#[test]
fn help_after_the_flags_refuses_what_the_agent_would_refuse() {
    // The check below rests on this: flags before --help are parsed.
    let none = BTreeMap::new();
    for bad in [
        &["-poll-interval=soon"][..],
        &["-no-such-flag"],
        &["-destroy-notices=maybe"],
        &["stray"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_tcp-info"))
            .args(bad)
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let env = BTreeMap::from([("POLL_INTERVAL".to_string(), "soon".to_string())]);
    let out = Command::new(env!("CARGO_BIN_EXE_tcp-info"))
        .arg("--help")
        .env_clear()
        .envs(&env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a bad variable is refused too");
    parse_agent("no flags", &[], &none);
}

// ---- Dockerfile ----

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
fn final_stage() -> Vec<String> {
    let instructions = dockerfile_instructions();
    let last_from = instructions
        .iter()
        .rposition(|i| i.starts_with("FROM "))
        .expect("a FROM");
    instructions[last_from..].to_vec()
}

fn instruction(stage: &[String], keyword: &str) -> Option<String> {
    stage
        .iter()
        .rfind(|i| i.starts_with(&format!("{keyword} ")))
        .map(|i| i[keyword.len() + 1..].trim().to_string())
}

/// The JSON array at the end of an exec-form instruction's text.
fn exec_form(text: &str) -> Vec<String> {
    let json = &text[text
        .find('[')
        .unwrap_or_else(|| panic!("not exec form: {text}"))..];
    serde_json::from_str(json).unwrap_or_else(|e| panic!("exec form {text}: {e}"))
}

fn dockerfile_entrypoint() -> Vec<String> {
    exec_form(&instruction(&final_stage(), "ENTRYPOINT").expect("an ENTRYPOINT"))
}

/// `(source, destination, chown)` of the final stage's COPY --from=build.
fn copies() -> Vec<(String, String, Option<String>)> {
    final_stage()
        .iter()
        .filter_map(|i| i.strip_prefix("COPY "))
        .map(|rest| {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(
                words.contains(&"--from=build"),
                "COPY from the build stage: {rest}"
            );
            let chown = words
                .iter()
                .find_map(|w| w.strip_prefix("--chown="))
                .map(str::to_string);
            let paths: Vec<&str> = words
                .iter()
                .copied()
                .filter(|w| !w.starts_with("--"))
                .collect();
            assert_eq!(paths.len(), 2, "one source, one destination: {rest}");
            (paths[0].to_string(), paths[1].to_string(), chown)
        })
        .collect()
}

#[test]
fn the_image_is_laid_out_as_mlabs() {
    let stage = final_stage();
    assert_eq!(
        stage[0], "FROM scratch",
        "nothing but the binaries in the image"
    );
    assert_eq!(dockerfile_entrypoint(), [AGENT_PATH]);
    assert_eq!(
        instruction(&stage, "CMD"),
        None,
        "no default flags, as M-Lab's image"
    );
    assert_eq!(instruction(&stage, "WORKDIR").as_deref(), Some("/home"));
    assert_eq!(
        instruction(&stage, "USER").as_deref(),
        Some(format!("{NOBODY}:{NOBODY}").as_str())
    );

    // The build stage's script fills /rootfs/bin with the shipped binaries;
    // the data directories go to uid 65534.
    let copies = copies();
    let bin = copies
        .iter()
        .find(|(_, dest, _)| dest == "/bin/")
        .expect("binaries copied to /bin/");
    assert_eq!(bin.0, "/rootfs/bin/");
    for dir in ["/home/", "/var/spool/tcpinfo/"] {
        let (source, _, chown) = copies
            .iter()
            .find(|(_, dest, _)| dest == dir)
            .unwrap_or_else(|| panic!("{dir} in the image"));
        assert_eq!(source, &format!("/rootfs{dir}"));
        assert_eq!(
            chown.as_deref(),
            Some(format!("{NOBODY}:{NOBODY}").as_str())
        );
    }
    let script = read("deploy/container/build-rootfs.sh");
    assert!(
        dockerfile_instructions().iter().any(
            |i| i.starts_with("RUN ") && i.contains("deploy/container/build-rootfs.sh /rootfs")
        ),
        "the build stage runs the rootfs script"
    );
    for name in SHIPPED {
        assert!(
            script.contains(&format!("--bin {name}")),
            "the script builds {name}"
        );
    }
    assert!(script.contains("$out/home") && script.contains("$out/var/spool/tcpinfo"));
    assert!(script.contains("+crt-static") && script.contains("strip"));

    // The health check is the agent's own probe, and it parses.
    let health = instruction(&stage, "HEALTHCHECK").expect("a HEALTHCHECK");
    let probe = exec_form(&health);
    assert_eq!(&probe[..2], [AGENT_PATH, "ready"], "{health}");
    parse_probe("HEALTHCHECK", &probe[1..]);
    parse_agent("ENTRYPOINT with no flags", &[], &BTreeMap::new());
}

// ---- docker-compose.yml ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
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
    pid: Option<String>,
    user: Option<String>,
    #[serde(default)]
    cap_add: Vec<String>,
    #[serde(default)]
    cap_drop: Vec<String>,
    #[serde(default)]
    ports: Vec<serde_yaml_ng::Value>,
    #[serde(default)]
    volumes: Vec<String>,
    healthcheck: Option<Healthcheck>,
}

#[derive(Debug, Deserialize)]
struct Healthcheck {
    test: Vec<String>,
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

    fn volume_holding(&self, path: &Path) -> Option<String> {
        self.mounts()
            .into_iter()
            .find(|(_, target)| path.starts_with(target))
            .map(|(source, _)| source)
    }
}

fn binary_name(argv0: &str) -> &str {
    let name = Path::new(argv0).file_name().unwrap().to_str().unwrap();
    assert!(
        argv0 == format!("/bin/{name}") && SHIPPED.contains(&name),
        "{argv0} is not a binary the image ships at /bin"
    );
    name
}

#[test]
fn compose_services_parse_with_the_real_flag_parsers() {
    let text = read("docker-compose.yml");
    let compose: Compose = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| {
        panic!("docker-compose.yml (no `name:` or `version:` for Compose v1 and v2): {e}")
    });
    let mut agent = None;
    let mut clients = Vec::new();
    for (name, service) in &compose.services {
        assert!(
            service.image.is_some() || service.build.is_some(),
            "{name} has no image"
        );
        for (volume, _) in service.mounts() {
            assert!(
                compose.volumes.contains_key(&volume),
                "{name} mounts undeclared {volume}"
            );
        }
        assert_eq!(service.cap_drop, ["ALL"], "{name} drops every capability");
        let argv = service.argv();
        match binary_name(&argv[0]) {
            "tcp-info" => {
                let config = parse_agent(name, &argv[1..], &service.environment);
                agent = Some((name, service, config));
            }
            "example-eventsocket-client" => {
                assert!(service.cap_add.is_empty(), "{name} needs no capability");
                clients.push((
                    name,
                    service,
                    parse_client(name, &argv, &service.environment),
                ));
            }
            other => panic!("service {name}: no flag parser known for {other}"),
        }
    }
    let (agent_name, service, config) = agent.expect("a tcp-info service");
    assert!(!clients.is_empty(), "an example client sidecar");

    // Host network (the host's sockets) and PID namespace (process names).
    assert_eq!(service.network_mode.as_deref(), Some("host"));
    assert_eq!(service.pid.as_deref(), Some("host"));
    assert!(
        service.ports.is_empty(),
        "host networking discards published ports"
    );
    let caps: BTreeSet<&str> = service.cap_add.iter().map(String::as_str).collect();
    assert_eq!(
        caps,
        CAPABILITIES.into(),
        "exactly the capabilities the agent uses"
    );
    assert_eq!(
        service.user.as_deref(),
        Some("0:0"),
        "Docker gives added capabilities to uid 0 only"
    );
    // Metrics where the README says: port 9990; the health check asks there.
    assert!(config.prometheus_listen_address.ends_with(":9990"));
    let test = &service.healthcheck.as_ref().expect("a health check").test;
    assert_eq!(&test[..3], ["CMD", AGENT_PATH, "ready"]);
    parse_probe("compose health check", &test[2..]);
    assert!(test.iter().any(|a| a
        == &format!(
            "-prometheusx.listen-address={}",
            config.prometheus_listen_address
        )));

    // Output and event socket on the volume the sidecar shares; the socket
    // is open to the sidecar's group (the image's user, 65534).
    let socket = config.eventsocket.clone().expect("tcp-info serves events");
    let volume = service
        .volume_holding(&socket)
        .expect("event socket on a volume");
    assert_eq!(service.volume_holding(&config.output), Some(volume.clone()));
    assert_eq!(config.eventsocket_group, Some(65534));
    assert_eq!(config.eventsocket_mode, Some(0o660));
    for (name, client, flags) in clients {
        assert_eq!(
            flags.eventsocket.as_ref(),
            Some(&socket),
            "{name} reads {agent_name}'s socket"
        );
        assert_eq!(client.volume_holding(&socket), Some(volume.clone()));
        assert!(
            client.user.is_none(),
            "{name} runs as the image's user, 65534"
        );
    }
}

// ---- Kubernetes ----

fn kubernetes_documents() -> Vec<(String, serde_yaml_ng::Value)> {
    let dir = repo().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde_yaml_ng::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            docs.push((
                file.file_name().unwrap().to_str().unwrap().to_string(),
                value,
            ));
        }
    }
    docs
}

fn strings(v: &serde_yaml_ng::Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .map(|x| x.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Kubernetes' `$(VAR)` references expanded from the container's `env`
/// (field references get an example value of their kind).
fn expand(arg: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = arg.to_string();
    for (name, value) in env {
        out = out.replace(&format!("$({name})"), value);
    }
    assert!(!out.contains("$("), "unknown variable in {arg}");
    out
}

#[test]
fn kubernetes_containers_parse_and_the_daemonset_holds_what_the_agent_needs() {
    let docs = kubernetes_documents();
    let daemonset = &docs
        .iter()
        .find(|(_, d)| d["kind"] == "DaemonSet")
        .expect("a DaemonSet")
        .1;
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["hostPID"], true);
    let containers = pod["containers"].as_sequence().unwrap();
    let mut agent = None;
    let mut clients = Vec::new();
    for c in containers {
        let name = c["name"].as_str().unwrap();
        let mut env = BTreeMap::new();
        for e in c["env"].as_sequence().into_iter().flatten() {
            let value = match e["value"].as_str() {
                Some(v) => v.to_string(),
                None if e["valueFrom"]["fieldRef"]["fieldPath"] == "status.hostIP" => {
                    "192.0.2.10".into()
                }
                None => panic!("{name}: env {:?} needs an example value here", e["name"]),
            };
            env.insert(e["name"].as_str().unwrap().to_string(), value);
        }
        let mut argv = strings(&c["command"]);
        if argv.is_empty() {
            argv = dockerfile_entrypoint();
        }
        argv.extend(strings(&c["args"]).iter().map(|a| expand(a, &env)));
        let security = &c["securityContext"];
        assert_eq!(
            strings(&security["capabilities"]["drop"]),
            ["ALL"],
            "{name}"
        );
        assert_eq!(security["allowPrivilegeEscalation"], false, "{name}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{name}");
        let mounts: Vec<(String, String)> = c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap().into(),
                    m["mountPath"].as_str().unwrap().into(),
                )
            })
            .collect();
        match binary_name(&argv[0]) {
            "tcp-info" => {
                // With the container's environment: a variable named like
                // a flag would reach the agent as one.
                let config = parse_agent(name, &argv[1..], &env);
                let caps: BTreeSet<String> = strings(&security["capabilities"]["add"])
                    .into_iter()
                    .collect();
                let want: BTreeSet<String> = CAPABILITIES.iter().map(|s| s.to_string()).collect();
                assert_eq!(caps, want, "exactly the capabilities the agent uses");
                assert_eq!(
                    security["runAsUser"], 0,
                    "Kubernetes adds capabilities to uid 0 only"
                );
                // Probes on the metrics port: ready after a complete poll.
                let port = c["ports"][0]["containerPort"].as_u64().unwrap();
                assert!(config
                    .prometheus_listen_address
                    .ends_with(&format!(":{port}")));
                assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/-/ready");
                assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/-/healthy");
                assert!(c["resources"]["requests"]["memory"].is_string());
                assert!(
                    c["resources"]["limits"]["cpu"].is_null(),
                    "no CPU limit: throttling breaks the cadence"
                );
                agent = Some((config, mounts));
            }
            "example-eventsocket-client" => {
                let flags = parse_client(name, &argv, &env);
                assert_eq!(security["runAsUser"], 65534);
                assert_eq!(security["runAsNonRoot"], true);
                clients.push((name.to_string(), flags, mounts));
            }
            other => panic!("{name}: no flag parser known for {other}"),
        }
    }
    let (config, agent_mounts) = agent.expect("a tcp-info container");
    assert!(!clients.is_empty(), "the example event-socket sidecar");
    let socket = config.eventsocket.clone().expect("the agent serves events");
    let socket_volume = agent_mounts
        .iter()
        .find(|(_, path)| socket.starts_with(path))
        .map(|(name, _)| name.clone())
        .expect("the socket on a volume");
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some(socket_volume.as_str()))
        .unwrap();
    assert!(
        volume["emptyDir"].is_mapping(),
        "the socket is shared through an emptyDir"
    );
    assert_eq!(
        config.eventsocket_group,
        Some(65534),
        "the sidecar's group may connect"
    );
    for (name, flags, mounts) in clients {
        assert_eq!(flags.eventsocket.as_ref(), Some(&socket), "{name}");
        assert!(
            mounts
                .iter()
                .any(|(v, p)| v == &socket_volume && socket.starts_with(p)),
            "{name}"
        );
    }

    // The Service and the ServiceMonitor find the pods and the port.
    let labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    let service = &docs
        .iter()
        .find(|(_, d)| d["kind"] == "Service")
        .expect("a Service")
        .1;
    assert_eq!(service["spec"]["clusterIP"], "None", "headless");
    assert_eq!(&service["spec"]["selector"], labels);
    assert_eq!(
        service["metadata"]["annotations"]["prometheus.io/scrape"],
        "true"
    );
    let port_name = service["spec"]["ports"][0]["name"].as_str().unwrap();
    let monitor = &docs
        .iter()
        .find(|(_, d)| d["kind"] == "ServiceMonitor")
        .expect("a ServiceMonitor")
        .1;
    assert_eq!(
        &monitor["spec"]["selector"]["matchLabels"],
        &service["metadata"]["labels"]
    );
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], port_name);
}

// ---- systemd unit and /etc/default/tcp-info ----

/// `KEY=VALUE` lines of an environment file (comments and blanks skipped).
fn environment_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {l}"));
            (k.to_string(), v.trim_matches('"').to_string())
        })
        .collect()
}

/// Every value of `key` in the unit's [Service] section.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_systemd_unit_and_its_settings_parse_and_grant_only_what_is_needed() {
    let unit = read("deploy/systemd/tcp-info.service");
    let defaults = read("deploy/systemd/tcp-info.default");
    let exec = unit_values(&unit, "ExecStart");
    assert_eq!(exec.len(), 1);
    let argv: Vec<String> = exec[0].split_whitespace().map(str::to_string).collect();
    assert_eq!(argv[0], "/usr/bin/tcp-info", "where the .deb installs it");
    assert_eq!(
        unit_values(&unit, "EnvironmentFile"),
        ["-/etc/default/tcp-info"]
    );
    let env = environment_file(&defaults);
    let config = parse_agent("tcp-info.service", &argv[1..], &env);

    // Every variable the file sets, or shows commented out, names a flag.
    let commented: BTreeMap<String, String> = environment_file(
        &defaults
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.contains('=') && !l.contains(' '))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    assert!(commented.len() >= 5, "{commented:?}");
    let mut all = env.clone();
    all.extend(commented);
    parse_agent("tcp-info.default, every example set", &argv[1..], &all);

    // Writes only under its state and runtime directories.
    assert!(
        config.output.starts_with("/var/lib/tcp-info"),
        "{:?}",
        config.output
    );
    assert_eq!(unit_values(&unit, "StateDirectory"), ["tcp-info"]);
    assert_eq!(unit_values(&unit, "RuntimeDirectory"), ["tcp-info"]);
    if let Some(socket) = all.get("TCPINFO_EVENTSOCKET") {
        assert!(socket.starts_with("/run/tcp-info/"), "{socket}");
    }
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("DynamicUser", "yes"),
    ] {
        assert_eq!(unit_values(&unit, key), [value], "{key}");
    }
    let want: BTreeSet<String> = CAPABILITIES.iter().map(|c| format!("CAP_{c}")).collect();
    for key in ["AmbientCapabilities", "CapabilityBoundingSet"] {
        let got: BTreeSet<String> = unit_values(&unit, key)
            .iter()
            .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .collect();
        assert_eq!(got, want, "{key}");
    }
    for key in [
        "PrivateNetwork",
        "PrivateUsers",
        "ProtectProc",
        "ProcSubset",
    ] {
        assert!(
            unit_values(&unit, key).is_empty(),
            "{key} would hide what the agent reads"
        );
    }
}

#[test]
fn the_deb_installs_the_binaries_unit_settings_and_rules() {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for bin in SHIPPED {
        assert!(
            assets.contains(&(format!("target/release/{bin}"), "usr/bin/".to_string())),
            "{bin} in /usr/bin"
        );
    }
    for (source, dest) in [
        ("deploy/systemd/tcp-info.service", "usr/lib/systemd/system/"),
        ("deploy/systemd/tcp-info.default", "etc/default/tcp-info"),
        ("deploy/*-alerts.yml", "usr/share/tcp-info/prometheus/"),
        (
            "deploy/grafana/tcp-info.json",
            "usr/share/tcp-info/grafana/",
        ),
    ] {
        assert!(
            assets.contains(&(source.into(), dest.into())),
            "{source} -> {dest}"
        );
    }
    assert_eq!(
        deb["conf-files"].as_array().unwrap()[0].as_str(),
        Some("/etc/default/tcp-info")
    );
}
