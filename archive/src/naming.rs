//! Archive file names and UUIDs, as M-Lab's tcp-info names them (the ETL
//! derives a connection's identity and segment from them).

use std::path::{Path, PathBuf};

/// `<prefix>_<cookie as 16 upper-case hex digits>`.
pub fn uuid(prefix: &str, cookie: u64) -> String {
    format!("{prefix}_{cookie:016X}")
}

/// `<output>/YYYY/MM/DD/<uuid>.<sequence as 5 digits>.jsonl.zst`.
pub fn segment_path(output: &Path, date: (i32, u32, u32), uuid: &str, sequence: u32) -> PathBuf {
    let (y, m, d) = date;
    output.join(format!(
        "{y:04}/{m:02}/{d:02}/{uuid}.{sequence:05}.jsonl.zst"
    ))
}

/// The UUID in an archive's file name (`…/<uuid>.<seq>.jsonl.zst`): the
/// name up to its first dot; `None` for standard input (`-`) or a name
/// that does not look like one.
pub fn uuid_from_file_name(path: &str) -> Option<&str> {
    let name = Path::new(path).file_name()?.to_str()?;
    let (uuid, rest) = name.split_once('.')?;
    (!uuid.is_empty() && rest.contains("jsonl")).then_some(uuid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_go_tool() {
        assert_eq!(
            uuid("ndt-jdczh_1553815964", 0x3e8),
            "ndt-jdczh_1553815964_00000000000003E8"
        );
        assert_eq!(
            segment_path(Path::new("/out"), (2019, 4, 2), "h_1_00000000000003E8", 183),
            PathBuf::from("/out/2019/04/02/h_1_00000000000003E8.00183.jsonl.zst")
        );
    }

    #[test]
    fn uuids_come_back_out_of_file_names() {
        assert_eq!(
            uuid_from_file_name("/out/2019/04/02/h_1_00000000000003E8.00183.jsonl.zst"),
            Some("h_1_00000000000003E8")
        );
        assert_eq!(uuid_from_file_name("x_1.jsonl"), Some("x_1"));
        assert_eq!(uuid_from_file_name("-"), None);
        assert_eq!(uuid_from_file_name("notes.txt"), None);
    }
}
