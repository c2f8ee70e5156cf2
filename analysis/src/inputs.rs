//! Command-line paths → connections, each the ordered list of its segment
//! files.
//!
//! The agent writes one file per connection per segment,
//! `<UUID>.<sequence>.jsonl.zst`, and a later segment may sit in another
//! date directory. Files are grouped by the UUID in their name and ordered
//! by the sequence number, so `.00000`, `.00001`, … of one connection read
//! as one timeline wherever they are. A file whose name does not follow the
//! pattern is a connection of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::AnalysisError;

/// The segment files of one connection, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFiles {
    /// The UUID from the file names, or the file's path for a file named
    /// otherwise (the metadata line names the UUID then).
    pub key: String,
    pub segments: Vec<PathBuf>,
}

/// `<UUID>.<sequence>` of an archive file name (`.jsonl` or `.jsonl.zst`).
/// UUIDs may contain dots (host names), so the sequence is the last part.
pub fn parse_segment_name(path: &Path) -> Option<(&str, u32)> {
    let name = path.file_name()?.to_str()?;
    let stem = name
        .strip_suffix(".jsonl.zst")
        .or_else(|| name.strip_suffix(".jsonl"))?;
    let (uuid, sequence) = stem.rsplit_once('.')?;
    if uuid.is_empty() || sequence.is_empty() || !sequence.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((uuid, sequence.parse().ok()?))
}

/// Every archive the arguments name (directories are walked for
/// `*.jsonl*`), grouped into connections, in UUID order.
pub fn connections(args: &[PathBuf]) -> Result<Vec<ConnectionFiles>, AnalysisError> {
    if args.is_empty() {
        return Err(AnalysisError::NoInputs);
    }
    let mut files = Vec::new();
    for arg in args {
        let meta = std::fs::metadata(arg).map_err(|source| AnalysisError::Io {
            path: arg.clone(),
            source,
        })?;
        if meta.is_dir() {
            walk(arg, &mut files)?;
        } else {
            files.push(arg.clone());
        }
    }
    let mut by_uuid: BTreeMap<String, Vec<(u32, PathBuf)>> = BTreeMap::new();
    for file in files {
        let (key, sequence) = match parse_segment_name(&file) {
            Some((uuid, sequence)) => (uuid.to_string(), sequence),
            None => (file.display().to_string(), 0),
        };
        by_uuid.entry(key).or_default().push((sequence, file));
    }
    Ok(by_uuid
        .into_iter()
        .map(|(key, mut segments)| {
            segments.sort();
            segments.dedup();
            ConnectionFiles {
                key,
                segments: segments.into_iter().map(|(_, path)| path).collect(),
            }
        })
        .collect())
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), AnalysisError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AnalysisError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".jsonl"))
        {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_split_at_the_last_dot() {
        assert_eq!(
            parse_segment_name(Path::new("/a/host.example_1_unsafe_00AB.00012.jsonl.zst")),
            Some(("host.example_1_unsafe_00AB", 12))
        );
        assert_eq!(
            parse_segment_name(Path::new("x_1.00000.jsonl")),
            Some(("x_1", 0))
        );
        assert_eq!(parse_segment_name(Path::new("story.jsonl.zst")), None);
        assert_eq!(parse_segment_name(Path::new("a.b1.jsonl.zst")), None);
    }

    #[test]
    fn segments_of_one_connection_join_across_date_directories_in_sequence_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in [
            "2019/04/02/u_1.00001.jsonl.zst",
            "2019/04/01/u_1.00000.jsonl.zst",
            "2019/04/01/v_2.00000.jsonl.zst",
            "2019/04/03/u_1.00002.jsonl.zst",
            "2019/04/03/notes.txt",
            "odd.jsonl",
        ] {
            let p = d.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, b"").unwrap();
        }
        let got = connections(&[d.to_path_buf()]).unwrap();
        let odd = d.join("odd.jsonl");
        let mut want = vec![
            ConnectionFiles {
                key: "u_1".into(),
                segments: vec![
                    d.join("2019/04/01/u_1.00000.jsonl.zst"),
                    d.join("2019/04/02/u_1.00001.jsonl.zst"),
                    d.join("2019/04/03/u_1.00002.jsonl.zst"),
                ],
            },
            ConnectionFiles {
                key: "v_2".into(),
                segments: vec![d.join("2019/04/01/v_2.00000.jsonl.zst")],
            },
            ConnectionFiles {
                key: odd.display().to_string(),
                segments: vec![odd.clone()],
            },
        ];
        want.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(got, want);
    }

    #[test]
    fn a_missing_path_is_named() {
        let err = connections(&[PathBuf::from("/nonexistent/x.jsonl.zst")]).unwrap_err();
        assert!(
            err.to_string().starts_with("/nonexistent/x.jsonl.zst: "),
            "{err}"
        );
    }
}
