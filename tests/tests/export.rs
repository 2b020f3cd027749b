//! Export of 100,000 records as JSON Lines, CSV and text, streamed in constant memory.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use common::{fill_db, run_measured, COLLECTOR};

fn export(db: &std::path::Path, format: &str, out: &std::path::Path) -> i64 {
    let mut cmd = Command::new(COLLECTOR);
    cmd.args([
        "--db",
        db.to_str().unwrap(),
        "export",
        "--format",
        format,
        "-o",
        out.to_str().unwrap(),
    ]);
    let (status, _, stderr, rss_kib) = run_measured(cmd);
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    rss_kib
}

#[test]
fn export_streams_100k_records_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.db");
    let big = dir.path().join("big.db");
    fill_db(&small, 10_000, 1000);
    fill_db(&big, 100_000, 1000);

    let jsonl = dir.path().join("out.jsonl");
    let rss_small = export(&small, "jsonl", &jsonl);
    let rss_big = export(&big, "jsonl", &jsonl);
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100_000);
    let first: logbook_proto::Record = serde_json::from_str(lines[0]).unwrap();
    let last: logbook_proto::Record = serde_json::from_str(lines[99_999]).unwrap();
    assert!((first.ts, first.seq) < (last.ts, last.seq), "oldest first");
    // Ten times the records, (almost) the same memory: the export streams.
    assert!(
        rss_big - rss_small < 16 * 1024,
        "peak RSS grew from {rss_small} KiB to {rss_big} KiB"
    );

    let csv = dir.path().join("out.csv");
    export(&big, "csv", &csv);
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("schema_version,id,seq,ts,kind,level,name,target,message,trace_id"),
        "{header}"
    );
    // And the audit record the jsonl export left (exports are audited).
    assert_eq!(lines.count(), 100_001);
    assert!(
        text.contains(r#""{""i"":0,""label"":""item, \""0\""""}""#),
        "fields JSON quoted per RFC 4180"
    );

    let txt = dir.path().join("out.txt");
    export(&big, "text", &txt);
    let text = std::fs::read_to_string(&txt).unwrap();
    assert_eq!(
        text.lines().count(),
        100_002,
        "and two exports' audit records"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("logbook::admin: Exported 100000 records."))
            .count(),
        1
    );
    let first = text.lines().next().unwrap();
    assert!(first.contains(" WARN filler::work: record number 0 i=0 label=\"item, \\\"0\\\"\" {run_id=fill-0 tenant=t0 trace="), "{first}");
}
