//! Go's `strconv.ParseBool`.

/// A boolean as Go's `strconv.ParseBool` reads it; `None` for anything
/// else.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// [`parse_go_bool`] as a clap value parser, for `-flag=VALUE` booleans.
pub fn go_bool(text: &str) -> Result<bool, String> {
    parse_go_bool(text)
        .ok_or_else(|| format!("{text:?} is not a boolean (true, false, 1, 0, t, f)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exactly_what_go_accepts() {
        for t in ["1", "t", "T", "true", "TRUE", "True"] {
            assert_eq!(parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "false", "FALSE", "False"] {
            assert_eq!(parse_go_bool(f), Some(false), "{f}");
        }
        for bad in ["", "yes", "tRUE", "on", " true", "2"] {
            assert_eq!(parse_go_bool(bad), None, "{bad}");
        }
    }
}
