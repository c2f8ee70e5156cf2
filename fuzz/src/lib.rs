//! The bodies of the coverage-guided fuzz targets, one plain function per
//! target, so that the same code runs under AFL (the binaries of the
//! separate, non-member crate `fuzz/afl`) and in `cargo test`, which
//! replays every file under `testdata/fuzz/<target>/` through it
//! (`tests/replay.rs`). A target panics only on a defect: a parser may
//! refuse any input, but must not panic, hang, or break the invariant the
//! target states (an error on one line, rows whole, chunking irrelevant…).

mod archive;
mod eventsocket;
mod flags;
mod netlink;
mod policy;

pub use archive::archive;
pub use eventsocket::event_socket;
pub use flags::go_flags;
pub use netlink::{destroy_notice, netlink_dump};
pub use policy::policy;

/// A fuzz target: its name (the corpus directory and the AFL binary) and
/// its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by name.
pub const TARGETS: [Target; 6] = [
    ("archive", archive),
    ("netlink_dump", netlink_dump),
    ("destroy_notice", destroy_notice),
    ("policy", policy),
    ("event_socket", event_socket),
    ("go_flags", go_flags),
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, f)| f)
}

/// Asserts that an error message is one line, as every error the agent and
/// its tools print must be.
fn assert_one_line(what: &str, message: &str) {
    assert!(
        !message.contains('\n'),
        "{what} error spans lines: {message:?}"
    );
}
