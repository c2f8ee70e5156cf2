//! The `tcp-info check` report, in tstconfig's style: a block per failed
//! assertion with what was observed, then a summary. The format is stable
//! (scripts may grep it):
//!
//! ```text
//! Policy file: /etc/tcp-info/policy.toml
//! Listening sockets observed: 7
//!
//! ASSERTION FAILED
//!  Rule:      no-telnet
//!  Assertion: forbid tcp/udp port 23 on public
//!  Violation: forbidden
//!  Value:     tcp 0.0.0.0:23 (inetd)
//!             tcp [::]:23 (inetd)
//!
//! SUMMARY REPORT: FAIL
//! Assertions tested: 3
//! Assertions passed: 2
//! Assertions failed: 1
//! ```

use std::io::{self, Write};
use std::path::Path;

use super::evaluate::Evaluation;

/// At most this many observed listeners per failed assertion; the rest
/// are summed up in one line.
const MAX_VALUE_LINES: usize = 20;

pub fn write(out: &mut impl Write, policy_path: &Path, e: &Evaluation) -> io::Result<()> {
    writeln!(out, "Policy file: {}", policy_path.display())?;
    writeln!(out, "Listening sockets observed: {}", e.listeners)?;
    writeln!(out)?;
    for outcome in &e.outcomes {
        let Some(v) = &outcome.violation else {
            continue;
        };
        writeln!(out, "ASSERTION FAILED")?;
        writeln!(out, " Rule:      {}", outcome.rule)?;
        writeln!(out, " Assertion: {}", outcome.assertion)?;
        writeln!(out, " Violation: {}", v.kind.label())?;
        for (i, line) in v.observed.iter().take(MAX_VALUE_LINES).enumerate() {
            let head = if i == 0 {
                " Value:     "
            } else {
                "            "
            };
            writeln!(out, "{head}{line}")?;
        }
        if v.observed.len() > MAX_VALUE_LINES {
            writeln!(
                out,
                "            … and {} more",
                v.observed.len() - MAX_VALUE_LINES
            )?;
        }
        writeln!(out)?;
    }
    let verdict = if e.ok() { "PASS" } else { "FAIL" };
    writeln!(out, "SUMMARY REPORT: {verdict}")?;
    writeln!(out, "Assertions tested: {}", e.outcomes.len())?;
    writeln!(out, "Assertions passed: {}", e.passed())?;
    writeln!(out, "Assertions failed: {}", e.failed())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::evaluate::evaluate;
    use crate::policy::evaluate::tests::host;
    use crate::policy::file::parse;

    fn report(policy: &str) -> String {
        let p = parse(Path::new("p.toml"), policy).unwrap();
        let mut out = Vec::new();
        write(&mut out, Path::new("/etc/p.toml"), &evaluate(&p, &host())).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_failed_assertion_shows_the_rule_and_every_observed_value() {
        let r = report(
            "[[listen]]\nproto = \"tcp\"\nport = 22\n[[forbid]]\nname = \"no-public\"\nproto = \"tcp\"\nbind = \"public\"\n",
        );
        assert_eq!(
            r,
            "Policy file: /etc/p.toml
Listening sockets observed: 7

ASSERTION FAILED
 Rule:      no-public
 Assertion: forbid tcp any port on public
 Violation: forbidden
 Value:     tcp 0.0.0.0:22 (sshd)
            tcp [::]:22 (sshd)
            tcp 0.0.0.0:443 (nginx)

SUMMARY REPORT: FAIL
Assertions tested: 2
Assertions passed: 1
Assertions failed: 1
"
        );
    }

    #[test]
    fn a_passing_policy_is_the_header_and_the_summary() {
        let r = report("[[listen]]\nproto = \"tcp\"\nport = 22\n");
        assert!(r.ends_with(
            "\nSUMMARY REPORT: PASS\nAssertions tested: 1\nAssertions passed: 1\nAssertions failed: 0\n"
        ));
        assert!(!r.contains("ASSERTION FAILED"));
    }
}
