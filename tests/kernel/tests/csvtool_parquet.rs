//! `csvtool -format=parquet` read by the tools analysts use, without
//! options: DuckDB and pyarrow (installed by scripts/test.sh) load the file
//! converted from the Go tool's fixture archives, and it holds the CSV's
//! rows: the same count, typed columns, and every row's values equal to the
//! CSV cells of the same archives (null exactly where the CSV is empty).

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::agent::csvtool_binary;
use harness::system::tool_path;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/mlab")
        .join(name)
}

fn csvtool() -> Command {
    Command::new(csvtool_binary())
}

/// Reads the Parquet file with DuckDB and pyarrow and compares it with the
/// CSV, cell by cell. argv: parquet, csv.
const CHECK: &str = r#"
import csv, datetime, sys
import duckdb, pyarrow.parquet as pq

parquet, csv_path = sys.argv[1], sys.argv[2]
with open(csv_path, newline="") as f:
    rows = list(csv.reader(f))
header, rows = rows[0], rows[1:]

con = duckdb.connect()
rel = con.sql(f"SELECT * FROM '{parquet}'")
names = rel.columns
types = dict(zip(names, (str(t) for t in rel.types)))
got = rel.fetchall()
assert len(got) == len(rows), (len(got), len(rows))
assert len(names) == len(header), (len(names), len(header))

want_types = {
    "Timestamp": "TIMESTAMP WITH TIME ZONE",
    "Observed": "UINTEGER",
    "IDM.SockID.SPort": "USMALLINT",
    "IDM.SockID.Src": "VARCHAR",
    "IDM.SockID.Cookie": "UBIGINT",
    "CongestionAlgorithm": "VARCHAR",
    "TCP.State": "UTINYINT",
    "TCP.RTT": "UINTEGER",
    "TCP.PacingRate": "BIGINT",
    "TCP.SegsOut": "INTEGER",
    "TCP.LastAckRecv": "UINTEGER",
    "SKMemInfo.Sndbuf": "UINTEGER",
    "BBR.BW": "BIGINT",
    "TCP.RcvWnd": "UINTEGER",
    "TCP.TotalRTO": "USMALLINT",
    "UUID": "VARCHAR",
    "File": "VARCHAR",
}
for name, t in want_types.items():
    assert types[name] == t, (name, types[name], t)

# Parquet names where the CSV's are duplicated or misspelt.
renamed = {"SKMemInfo.Sndbug": "SKMemInfo.Sndbuf"}
seen_last_data_recv = False
columns = []
for i, h in enumerate(header):
    if h == "TCP.LastDataRecv":
        if seen_last_data_recv:
            h = "TCP.LastAckRecv"
        seen_last_data_recv = True
    h = renamed.get(h, h)
    assert names[i] == h, (i, names[i], h)
    columns.append(h)

def same(name, csv_cell, value):
    if name == "Timestamp":
        if csv_cell == "2009-05-29T23:59:59Z":
            return value is None
        want = datetime.datetime.fromisoformat(csv_cell.replace("Z", "+00:00"))
        return value == want.replace(microsecond=want.microsecond)
    if csv_cell == "":
        return value is None or value == ""
    if name == "IDM.SockID.Cookie":
        return value == int(csv_cell, 16)
    if name == "IDM.SockID.Interface":
        # The CSV keeps Go's byte-swapped reading; Parquet the kernel's.
        return int.from_bytes(int(csv_cell).to_bytes(4, "big"), "little") == value
    if isinstance(value, int):
        return value == int(csv_cell)
    return str(value) == csv_cell

compared = 0
for r, (want_row, got_row) in enumerate(zip(rows, got)):
    for name, cell, value in zip(columns, want_row, got_row):
        assert same(name, cell, value), (r, name, cell, value)
        compared += 1

table = pq.read_table(parquet)
assert table.num_rows == len(rows)
assert str(table.schema.field("Timestamp").type) == "timestamp[us, tz=UTC]"
assert str(table.schema.field("TCP.BytesAcked").type) == "int64"
assert str(table.schema.field("IDM.SockID.Dst").type) == "string"
print(f"{len(rows)} rows, {compared} cells equal")
"#;

#[test]
fn parquet_holds_the_csv_rows_typed_for_duckdb_and_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = [
        fixture("ndt-jdczh_1553815964_00000000000003E8.00183.jsonl.zst"),
        fixture("finwait2-sample_1554836592_unsafe_000000000135A272.00000.jsonl.zst"),
    ];
    let csv_path = dir.path().join("all.csv");
    let parquet = dir.path().join("all.parquet");

    let out = csvtool()
        .args(["-extended", "-uuid", "-o"])
        .arg(&csv_path)
        .args(&inputs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = csvtool()
        .args(["-format=parquet", "-extended", "-uuid", "-o"])
        .arg(&parquet)
        .args(&inputs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());

    let check = Command::new(tool_path("python3"))
        .args(["-c", CHECK])
        .arg(&parquet)
        .arg(&csv_path)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    eprintln!("{said}");
    assert!(said.contains(" cells equal"));
}
