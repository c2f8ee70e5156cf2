//! A command-line error as Go's `flag` package reports it: one line.

use std::process::ExitCode;

use clap::error::ErrorKind;

/// The problem clap's error names (the flag and what is wrong with it), as
/// one line without clap's `error:` prefix and usage section.
pub fn one_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    // A missing argument is listed on the lines after the first.
    let problem: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect();
    let problem = problem.join(" ");
    problem
        .trim_start_matches("error: ")
        .trim_end_matches(':')
        .to_string()
}

/// Reports a failed parse: help and version are printed as asked (exit 0);
/// anything else is `<program>: <problem>` on stderr (exit 2, as Go).
pub fn report(program: &str, error: &clap::Error) -> ExitCode {
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        let _ = error.print();
        return ExitCode::SUCCESS;
    }
    eprintln!("{program}: {}", one_line(error));
    ExitCode::from(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn error(args: &[&str]) -> clap::Error {
        Command::new("prog")
            .arg(
                Arg::new("reps")
                    .long("reps")
                    .value_parser(clap::value_parser!(u64)),
            )
            .arg(Arg::new("policy").long("policy").required(true))
            .try_get_matches_from(args)
            .unwrap_err()
    }

    #[test]
    fn errors_render_as_one_line_naming_the_flag() {
        let bad = one_line(&error(&["prog", "--policy=p", "--reps=many"]));
        assert!(!bad.contains('\n') && !bad.starts_with("error"), "{bad}");
        assert!(bad.contains("--reps") && bad.contains("many"), "{bad}");
        let missing = one_line(&error(&["prog"]));
        assert!(missing.contains("--policy"), "{missing}");
        assert!(
            !missing.contains('\n') && !missing.ends_with(':'),
            "{missing}"
        );
        let raw = clap::Error::raw(ErrorKind::InvalidValue, "X=1: not a boolean\n");
        assert_eq!(one_line(&raw), "X=1: not a boolean");
    }
}
