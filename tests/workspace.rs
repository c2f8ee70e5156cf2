//! `cargo test` at the workspace root runs every crate's tests except the
//! kernel tests (root, namespaces, system tools), which scripts/test.sh runs
//! as root: a crate added to the workspace but not to `default-members`
//! would have its tests silently left out of `cargo test`.

use std::collections::BTreeSet;

const KERNEL_TESTS: &str = "tests/kernel";

#[test]
fn every_member_but_the_kernel_tests_is_a_default_member() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let manifest: toml::Table = text.parse().unwrap_or_else(|e| panic!("{path}: {e}"));
    let paths = |key: &str| -> BTreeSet<&str> {
        manifest["workspace"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no workspace.{key} in {path}"))
            .iter()
            .map(|p| p.as_str().expect("a member path"))
            .collect()
    };
    let members = paths("members");
    assert!(members.contains(KERNEL_TESTS), "{members:?}");
    let expected: BTreeSet<&str> = members
        .iter()
        .copied()
        .filter(|p| *p != KERNEL_TESTS)
        .collect();
    assert_eq!(
        paths("default-members"),
        expected,
        "workspace.default-members in {path}"
    );
}
