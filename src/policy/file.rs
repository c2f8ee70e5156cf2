//! The policy file: TOML (or JSON when the name ends in `.json`), parsed
//! strictly. Unknown keys, bad ports, scopes, protocols or families are
//! errors that name the file, the line where the format says it, and the
//! problem, on one line.
//!
//! ```toml
//! [[listen]]                 # must be listening
//! name = "ssh"               # optional: the `rule` label (default: listen-tcp-22-public)
//! proto = "tcp"              # tcp | udp
//! port = 22
//! bind = "public"            # loopback | private | public | any (default) | an IP address
//! family = "ipv4"            # optional: ipv4 | ipv6
//! process = "sshd"           # optional owner: exact name, or process_ends_with = "sshd"
//!
//! [[forbid]]                 # must not be listening
//! port = 23                  # optional: every port when absent ...
//! except = [22, 443]         # ... but these (only without port)
//! proto = "tcp"              # optional: both when absent
//! bind = "public"
//!
//! [[count]]                  # exactly N distinct (proto, address, port) bindings
//! proto = "tcp"              # optional, like bind, family and port
//! listeners = 4
//! ```

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use super::rule::{Assertion, Bind, Policy, ProcessMatch, Rule, Selector};
use crate::address::Scope;
use crate::exposure::inventory::Proto;
use crate::small_file::{self, SmallFileError};

/// Why a policy file was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The file could not be read. (`error` is part of the message, not a
    /// source: a chain would print it twice.)
    #[error("{path}: {error}")]
    Read { path: String, error: io::Error },
    /// The file is not a valid policy; `location` is `path` or `path:line`.
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
}

impl PolicyError {
    fn invalid(path: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        let location = match line {
            Some(line) => format!("{}:{line}", path.display()),
            None => path.display().to_string(),
        };
        // One line, whatever the parser's message looked like.
        let message = message
            .into()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        PolicyError::Invalid { location, message }
    }
}

/// Largest policy file read: thousands of rules fit many times over.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Reads and validates the policy at `path`, which must be a regular file
/// of at most [`MAX_POLICY_BYTES`]: a FIFO or a device is refused at once
/// instead of blocking a reload or filling memory.
pub fn load(path: &Path) -> Result<Policy, PolicyError> {
    let text = small_file::read_text(path, MAX_POLICY_BYTES).map_err(|e| PolicyError::Read {
        path: path.display().to_string(),
        error: match e {
            SmallFileError::Io(error) => error,
            other => io::Error::new(other.kind(), other.to_string()),
        },
    })?;
    parse(path, &text)
}

/// Parses `text` as the policy file `path` (which decides TOML or JSON and
/// names the file in errors).
pub fn parse(path: &Path, text: &str) -> Result<Policy, PolicyError> {
    let raw: RawPolicy = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| {
            // serde_json appends " at line L column C"; the line goes first.
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            PolicyError::invalid(path, (e.line() > 0).then_some(e.line()), message)
        })?
    } else {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| 1 + text[..span.start.min(text.len())].matches('\n').count());
            PolicyError::invalid(path, line, e.message())
        })?
    };
    raw.into_policy()
        .map_err(|message| PolicyError::invalid(path, None, message))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    listen: Vec<ListenRule>,
    #[serde(default)]
    forbid: Vec<ForbidRule>,
    #[serde(default)]
    count: Vec<CountRule>,
}

/// A rule as written, validated on its own (so that the parser can point
/// at it); names are checked across rules afterwards.
struct Parsed {
    section: &'static str,
    name: Option<String>,
    selector: Selector,
    assertion: Assertion,
}

impl RawPolicy {
    fn into_policy(self) -> Result<Policy, String> {
        let all: Vec<Parsed> = self
            .listen
            .into_iter()
            .map(|r| r.0)
            .chain(self.forbid.into_iter().map(|r| r.0))
            .chain(self.count.into_iter().map(|r| r.0))
            .collect();
        if all.is_empty() {
            return Err(
                "no rules: expected at least one [[listen]], [[forbid]] or [[count]]".into(),
            );
        }
        // Explicit names first: they must be unique, and default names
        // step aside for them.
        let mut taken: HashMap<String, String> = HashMap::new();
        let mut ordinal: HashMap<&str, usize> = HashMap::new();
        let mut places = Vec::with_capacity(all.len());
        for p in &all {
            let n = ordinal.entry(p.section).or_insert(0);
            *n += 1;
            let place = format!("[[{}]] #{n}", p.section);
            if let Some(name) = &p.name {
                if let Some(first) = taken.insert(name.clone(), place.clone()) {
                    return Err(format!(
                        "duplicate rule name {name:?} ({first} and {place})"
                    ));
                }
            }
            places.push(place);
        }
        let mut rules = Vec::with_capacity(all.len());
        for p in all {
            let name = match p.name {
                Some(name) => name,
                None => {
                    let base = Rule::default_name(&p.selector, &p.assertion);
                    let mut name = base.clone();
                    let mut i = 1;
                    while taken.contains_key(&name) {
                        i += 1;
                        name = format!("{base}-{i}");
                    }
                    taken.insert(name.clone(), String::new());
                    name
                }
            };
            rules.push(Rule {
                name,
                selector: p.selector,
                assertion: p.assertion,
            });
        }
        Ok(Policy { rules })
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum ProtoSpec {
    Tcp,
    Udp,
}

impl From<ProtoSpec> for Proto {
    fn from(p: ProtoSpec) -> Self {
        match p {
            ProtoSpec::Tcp => Proto::Tcp,
            ProtoSpec::Udp => Proto::Udp,
        }
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum FamilySpec {
    Ipv4,
    Ipv6,
}

impl From<FamilySpec> for u8 {
    fn from(f: FamilySpec) -> Self {
        match f {
            FamilySpec::Ipv4 => inetdiag::AF_INET,
            FamilySpec::Ipv6 => inetdiag::AF_INET6,
        }
    }
}

#[derive(Clone, Copy)]
struct Port(u16);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Port;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a port number (1-65535)")
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Port, E> {
                match u16::try_from(n) {
                    Ok(p) if p > 0 => Ok(Port(p)),
                    _ => Err(E::custom(format!("port {n} is not in 1-65535"))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Port, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(i64::MAX))
            }
        }
        d.deserialize_i64(Visitor)
    }
}

#[derive(Deserialize, Clone, Copy)]
#[serde(try_from = "String")]
struct BindSpec(Bind);

impl TryFrom<String> for BindSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let bind = match s.as_str() {
            "any" => Bind::Any,
            "loopback" => Bind::Scope(Scope::Loopback),
            "private" => Bind::Scope(Scope::Private),
            "public" => Bind::Scope(Scope::Public),
            other => Bind::Addr(other.parse::<IpAddr>().map_err(|_| {
                format!(
                    "bind {other:?} is neither a scope (loopback, private, public, any) nor an IP address"
                )
            })?),
        };
        Ok(BindSpec(bind))
    }
}

#[derive(Deserialize)]
#[serde(try_from = "String")]
struct Name(String);

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
            return Err(format!(
                "rule name {s:?} must be 1 to 128 characters, without control characters"
            ));
        }
        Ok(Name(s))
    }
}

fn non_empty(key: &str, value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(v) if v.is_empty() => Err(format!("{key} must not be empty")),
        v => Ok(v),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenFields {
    name: Option<Name>,
    proto: ProtoSpec,
    port: Port,
    bind: Option<BindSpec>,
    family: Option<FamilySpec>,
    process: Option<String>,
    process_ends_with: Option<String>,
}

#[derive(Deserialize)]
#[serde(try_from = "ListenFields")]
struct ListenRule(Parsed);

impl TryFrom<ListenFields> for ListenRule {
    type Error = String;
    fn try_from(f: ListenFields) -> Result<Self, String> {
        let process = match (
            non_empty("process", f.process)?,
            non_empty("process_ends_with", f.process_ends_with)?,
        ) {
            (Some(_), Some(_)) => {
                return Err("give either process or process_ends_with, not both".into())
            }
            (Some(p), None) => Some(ProcessMatch::Exact(p)),
            (None, Some(p)) => Some(ProcessMatch::EndsWith(p)),
            (None, None) => None,
        };
        Ok(ListenRule(Parsed {
            section: "listen",
            name: f.name.map(|n| n.0),
            selector: Selector {
                proto: Some(f.proto.into()),
                family: f.family.map(u8::from),
                port: Some(f.port.0),
                except: Vec::new(),
                bind: f.bind.map_or(Bind::Any, |b| b.0),
            },
            assertion: Assertion::Listen { process },
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForbidFields {
    name: Option<Name>,
    proto: Option<ProtoSpec>,
    port: Option<Port>,
    except: Option<Vec<Port>>,
    bind: Option<BindSpec>,
    family: Option<FamilySpec>,
}

#[derive(Deserialize)]
#[serde(try_from = "ForbidFields")]
struct ForbidRule(Parsed);

impl TryFrom<ForbidFields> for ForbidRule {
    type Error = String;
    fn try_from(f: ForbidFields) -> Result<Self, String> {
        if f.port.is_some() && f.except.is_some() {
            return Err("except applies only to a rule without port".into());
        }
        let mut except: Vec<u16> = f.except.unwrap_or_default().iter().map(|p| p.0).collect();
        except.sort_unstable();
        except.dedup();
        Ok(ForbidRule(Parsed {
            section: "forbid",
            name: f.name.map(|n| n.0),
            selector: Selector {
                proto: f.proto.map(Proto::from),
                family: f.family.map(u8::from),
                port: f.port.map(|p| p.0),
                except,
                bind: f.bind.map_or(Bind::Any, |b| b.0),
            },
            assertion: Assertion::Forbid,
        }))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CountFields {
    name: Option<Name>,
    proto: Option<ProtoSpec>,
    port: Option<Port>,
    bind: Option<BindSpec>,
    family: Option<FamilySpec>,
    listeners: u64,
}

#[derive(Deserialize)]
#[serde(try_from = "CountFields")]
struct CountRule(Parsed);

impl TryFrom<CountFields> for CountRule {
    type Error = String;
    fn try_from(f: CountFields) -> Result<Self, String> {
        Ok(CountRule(Parsed {
            section: "count",
            name: f.name.map(|n| n.0),
            selector: Selector {
                proto: f.proto.map(Proto::from),
                family: f.family.map(u8::from),
                port: f.port.map(|p| p.0),
                except: Vec::new(),
                bind: f.bind.map_or(Bind::Any, |b| b.0),
            },
            assertion: Assertion::Count {
                listeners: f.listeners,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toml(text: &str) -> Result<Policy, String> {
        parse(Path::new("p.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_rule_kind_parses_with_defaults_and_derived_names() {
        let p = toml(
            r#"
            [[listen]]
            name = "ssh"
            proto = "tcp"
            port = 22
            bind = "public"
            process = "sshd"

            [[listen]]
            proto = "udp"
            port = 53
            bind = "127.0.0.53"
            family = "ipv4"
            process_ends_with = "resolved"

            [[forbid]]
            port = 23
            bind = "public"

            [[forbid]]
            proto = "tcp"
            bind = "public"
            except = [443, 22, 22]

            [[count]]
            proto = "tcp"
            listeners = 4
            "#,
        )
        .unwrap();
        let names: Vec<&str> = p.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "ssh",
                "listen-udp-ipv4-53-127.0.0.53",
                "forbid-any-23-public",
                "forbid-tcp-all-public",
                "count-tcp-all"
            ]
        );
        assert_eq!(p.rules[0].selector.bind, Bind::Scope(Scope::Public));
        assert_eq!(
            p.rules[0].assertion,
            Assertion::Listen {
                process: Some(ProcessMatch::Exact("sshd".into()))
            }
        );
        assert_eq!(
            p.rules[1].selector.bind,
            Bind::Addr("127.0.0.53".parse().unwrap())
        );
        assert_eq!(p.rules[1].selector.family, Some(inetdiag::AF_INET));
        assert_eq!(p.rules[2].selector.proto, None);
        assert_eq!(p.rules[3].selector.except, vec![22, 443]);
        assert_eq!(p.rules[4].assertion, Assertion::Count { listeners: 4 });
        assert_eq!(
            p.rules[0].describe(),
            "listen tcp port 22 on public, owned by sshd"
        );
        assert_eq!(
            p.rules[3].describe(),
            "forbid tcp any port but 22, 443 on public"
        );
        assert_eq!(
            p.rules[4].describe(),
            "count tcp any port on any: exactly 4"
        );
    }

    #[test]
    fn json_is_accepted_when_the_file_ends_in_json() {
        let p = parse(
            Path::new("p.json"),
            r#"{"listen": [{"proto": "tcp", "port": 80}], "count": [{"listeners": 1}]}"#,
        )
        .unwrap();
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[0].name, "listen-tcp-80");
        assert_eq!(p.rules[1].name, "count-any-all");
        let e = parse(
            Path::new("/etc/p.json"),
            "{\"listen\": [\n{\"proto\": \"tcp\", \"port\": 80, \"prot\": 1}]}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/etc/p.json:2: unknown field `prot`"), "{e}");
    }

    #[test]
    fn colliding_default_names_get_a_suffix_and_explicit_duplicates_are_errors() {
        let p = toml(
            "[[forbid]]\nport = 23\n[[forbid]]\nport = 23\nbind = \"any\"\n[[listen]]\nname = \"forbid-any-23-3\"\nproto = \"tcp\"\nport = 1\n[[forbid]]\nport = 23\n",
        )
        .unwrap();
        let names: Vec<&str> = p.rules.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "forbid-any-23-3",
                "forbid-any-23",
                "forbid-any-23-2",
                "forbid-any-23-4"
            ]
        );
        let e = toml(
            "[[listen]]\nname = \"x\"\nproto = \"tcp\"\nport = 1\n[[count]]\nname = \"x\"\nlisteners = 1\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            "p.toml: duplicate rule name \"x\" ([[listen]] #1 and [[count]] #1)"
        );
    }

    #[test]
    fn bad_files_are_one_line_errors_naming_file_line_and_problem() {
        let cases: &[(&str, &str)] = &[
            (
                "[[listen]]\nproto = \"tcp\"\nport = 70000\n",
                "p.toml:3: port 70000 is not in 1-65535",
            ),
            (
                "[[listen]]\nproto = \"tcp\"\nport = 0\n",
                "p.toml:3: port 0 is not in 1-65535",
            ),
            (
                "[[forbid]]\nport = 23\nbind = \"publik\"\n",
                "p.toml:3: bind \"publik\" is neither a scope (loopback, private, public, any) nor an IP address",
            ),
            (
                "[[listen]]\nproto = \"sctp\"\nport = 1\n",
                "p.toml:2: unknown variant `sctp`, expected `tcp` or `udp`",
            ),
            (
                "[[listen]]\nproto = \"tcp\"\nport = 22\nowner = \"sshd\"\n",
                "p.toml:4: unknown field `owner`",
            ),
            ("[[listne]]\nproto = \"tcp\"\n", "p.toml:1: unknown field `listne`"),
            ("[[listen]]\nport = 22\n", "p.toml:1: missing field `proto`"),
            ("[[count]]\nlisteners = -1\n", "p.toml:2: invalid value"),
            (
                "[[forbid]]\nport = \"ssh\"\n",
                "p.toml:2: invalid type: string \"ssh\", expected a port number (1-65535)",
            ),
            (
                "[[forbid]]\nexcept = [22, 99999]\n",
                "p.toml:2: port 99999 is not in 1-65535",
            ),
            ("", "p.toml: no rules"),
            ("[[listen]\n", "p.toml:1: "),
            (
                "[[forbid]]\nport = 1\nexcept = [2]\n",
                "p.toml:1: except applies only to a rule without port",
            ),
            (
                "[[listen]]\nproto = \"tcp\"\nport = 1\nprocess = \"a\"\nprocess_ends_with = \"b\"\n",
                "p.toml:1: give either process or process_ends_with, not both",
            ),
            (
                "[[listen]]\nname = \"\"\nproto = \"tcp\"\nport = 1\n",
                "p.toml:2: rule name \"\" must be",
            ),
        ];
        for (text, want) in cases {
            let e = toml(text).unwrap_err();
            assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}…");
            assert!(!e.contains('\n'), "{e:?} is not one line");
        }
    }

    #[test]
    fn fifos_devices_directories_and_oversize_files_are_refused_at_once_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        let big = dir.path().join("big.toml");
        let rule = "[[forbid]]\nport = 23\n";
        std::fs::write(
            &big,
            rule.repeat(MAX_POLICY_BYTES as usize / rule.len() + 1),
        )
        .unwrap();
        for (path, problem) in [
            (fifo.as_path(), "is a FIFO, not a regular file"),
            (
                Path::new("/dev/zero"),
                "is a character device, not a regular file",
            ),
            (dir.path(), "is a directory, not a regular file"),
            (big.as_path(), "is larger than 1048576 bytes"),
        ] {
            let started = std::time::Instant::now();
            let e = load(path).unwrap_err();
            assert!(started.elapsed() < std::time::Duration::from_secs(2));
            assert!(matches!(e, PolicyError::Read { .. }));
            assert_eq!(e.to_string(), format!("{}: {problem}", path.display()));
        }
    }

    #[test]
    fn an_unreadable_file_names_the_file() {
        let e = load(Path::new("/nonexistent/policy.toml")).unwrap_err();
        assert!(matches!(e, PolicyError::Read { .. }));
        assert!(e
            .to_string()
            .starts_with("/nonexistent/policy.toml: No such file"));
    }
}
