//! Embedded mode: `LOGBOOK_ENDPOINT=sqlite:/path.db` stores through the collector's
//! pipeline in-process, and the CLI reads the same file.

#![allow(clippy::unwrap_used)]

mod common;

use common::{cli, parse_jsonl, run_app};
use logbook_proto::{Kind, Status, Value};

#[test]
fn embedded_mode_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nested/dir/app.db");
    let endpoint = format!("sqlite:{}", db.display());
    let report = run_app(
        &["roundtrip", "run-emb"],
        &[("LOGBOOK_ENDPOINT", &endpoint), ("LOGBOOK_SERVICE", "emb")],
    );
    assert_eq!(report.delivered, report.emitted, "{report:?}");
    assert_eq!((report.dropped, report.undelivered), (0, 0));

    let db = db.to_str().unwrap();
    let out = cli(&[
        "--db", db, "query", "--run", "run-emb", "--format", "jsonl", "--limit", "100",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = parse_jsonl(&out.stdout);
    assert_eq!(records.len() as u64, report.emitted);
    let end = records
        .iter()
        .find(|r| r.kind == Kind::SpanEnd && r.name == "job")
        .unwrap();
    assert_eq!(end.fields.get("attempt"), Some(&Value::I64(2)));
    assert_eq!(end.status, Some(Status::Ok));
    assert_eq!(end.resource.service, "emb");
    assert_eq!(end.category.as_deref(), Some("run"));
    assert!(
        records.iter().all(|r| r.category.is_some()),
        "the pipeline categorised every record"
    );

    let out = cli(&["--db", db, "run", "run-emb"]);
    assert!(out.status.success());
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .starts_with("run run-emb  ok"));
}
