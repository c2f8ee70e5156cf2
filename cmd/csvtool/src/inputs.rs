//! Command-line arguments → the archives to convert, in output order.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// One archive to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// What error messages call this input.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "-".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }

    pub fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Input::Stdin => Box::new(io::stdin()),
            Input::File(p) => Box::new(File::open(p)?),
        })
    }
}

/// No argument or `-` is standard input; a directory stands for every
/// `*.jsonl*` file below it, in path order; any other path is one archive,
/// whatever its name (the format is sniffed from the content).
pub fn expand(args: &[String]) -> anyhow::Result<Vec<Input>> {
    if args.is_empty() {
        return Ok(vec![Input::Stdin]);
    }
    let mut inputs = Vec::new();
    for arg in args {
        if arg == "-" {
            inputs.push(Input::Stdin);
            continue;
        }
        let path = Path::new(arg);
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            inputs.extend(found.into_iter().map(Input::File));
        } else {
            inputs.push(Input::File(path.to_path_buf()));
        }
    }
    Ok(inputs)
}

fn is_archive_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.contains(".jsonl"))
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("{}", path.display()))?;
        if kind.is_dir() {
            walk(&path, found)?;
        } else if is_archive_name(&path) && (kind.is_file() || path.is_file()) {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_expand_to_sorted_archives() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("2019/04/02")).unwrap();
        for f in [
            "b.jsonl.zst",
            "2019/04/02/a.00000.jsonl.zst",
            "c.jsonl",
            "notes.txt",
        ] {
            std::fs::write(d.join(f), b"").unwrap();
        }
        let got = expand(&[d.display().to_string(), "-".into()]).unwrap();
        assert_eq!(
            got,
            vec![
                Input::File(d.join("2019/04/02/a.00000.jsonl.zst")),
                Input::File(d.join("b.jsonl.zst")),
                Input::File(d.join("c.jsonl")),
                Input::Stdin,
            ]
        );
        assert_eq!(expand(&[]).unwrap(), vec![Input::Stdin]);
    }
}
