//! Command lines the way Go's `flag` package reads them, on top of clap, for
//! binaries that are drop-in replacements of Go tools:
//!
//! - [`go_style_args`] / [`try_parse`]: `-flag`, `-flag=value`,
//!   `-flag value` and `--flag value` all mean the same; a boolean never
//!   takes the next argument; parsing stops at `--` or the first argument
//!   that is not a flag. Which flags are booleans comes from the clap
//!   definitions. [`try_parse_with_env`] also reads every flag from the
//!   environment under its [`env_name`] (`OUTPUT`, `ANONYMIZE_IP`).
//! - [`parse_go_duration`]: `time.ParseDuration` (`10ms`, `1m30s`, `1.5h`).
//! - [`parse_go_bool`]: `strconv.ParseBool` (`true`, `1`, `F`, …).
//! - [`report`]: a parse error as the one line Go's `flag` would print.

mod args;
mod boolean;
mod duration;
mod report;

pub use args::{
    env_name, go_command, go_style_args, try_parse, try_parse_with_env, try_parse_with_env_from,
    try_parse_with_env_values, FlagValues,
};
pub use boolean::{go_bool, parse_go_bool};
pub use duration::{parse_go_duration, DurationError};
pub use report::{one_line, report};
