//! A record from `tracing` to disk and back out through the CLI: typed fields, scope
//! inherited across `tokio::spawn(fut.instrument(span))`, parent/child ids, fields
//! recorded late, and error status.

#![allow(clippy::unwrap_used)]

mod common;

use common::{run_app, Collector};
use logbook_proto::{Kind, Level, Record, Status, Value};

fn one<'a>(records: &'a [Record], kind: Kind, name: &str) -> &'a Record {
    let found: Vec<&Record> = records
        .iter()
        .filter(|r| r.kind == kind && (r.name == name || r.message.as_deref() == Some(name)))
        .collect();
    assert_eq!(found.len(), 1, "{kind} {name}: {records:#?}");
    found[0]
}

#[test]
fn records_round_trip_through_collector_and_cli() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let report = run_app(
        &["roundtrip", "run-rt-1"],
        &[
            ("LOGBOOK_ENDPOINT", &collector.endpoint()),
            ("LOGBOOK_SERVICE", "rt-app"),
            ("LOGBOOK_ENV", "test"),
        ],
    );
    assert_eq!(report.delivered, report.emitted, "{report:?}");
    assert_eq!(
        (report.dropped, report.undelivered, report.rejected),
        (0, 0, 0)
    );

    let records = collector.query(&["--run", "run-rt-1", "--limit", "1000"]);
    assert_eq!(records.len() as u64, report.emitted, "{records:#?}");

    // Typed fields, nested JSON in order, and the record's own metadata.
    let typed = one(&records, Kind::Event, "typed");
    assert_eq!(typed.fields.get("count"), Some(&Value::I64(3)));
    assert_eq!(typed.fields.get("big"), Some(&Value::U64(u64::MAX)));
    assert_eq!(typed.fields.get("ratio"), Some(&Value::F64(0.25)));
    assert_eq!(typed.fields.get("ok"), Some(&Value::Bool(true)));
    assert_eq!(
        typed.fields.get("text"),
        Some(&Value::Str("hello world".into()))
    );
    match typed.fields.get("payload") {
        Some(Value::Json(j)) => assert_eq!(j.as_str(), r#"{"a":[1,2,{"b":null}],"z":"last"}"#),
        other => panic!("payload: {other:?}"),
    }
    assert_eq!(typed.level, Level::Info);
    assert_eq!(typed.resource.service, "rt-app");
    assert!(typed.resource.pid > 0);
    assert!(typed.file.as_deref().unwrap().ends_with("e2e_app.rs"));
    assert!(typed.line.is_some());
    assert_eq!(typed.category.as_deref(), Some("log"));
    assert!(typed.seq > 0);

    // Scope: inherited from the root, across the spawn, overridden below it, plus the
    // default scope from LOGBOOK_ENV.
    let job = one(&records, Kind::SpanStart, "job");
    let spawned = one(&records, Kind::Event, "inside spawn");
    let deepest = one(&records, Kind::Event, "deepest");
    for r in [typed, spawned, deepest] {
        assert_eq!(r.scope.run_id(), Some("run-rt-1"));
        assert_eq!(r.scope.tenant(), Some("acme"));
        assert_eq!(r.scope.get(logbook_proto::ScopeKey::Env), Some("test"));
        assert_eq!(r.trace_id, job.trace_id, "one trace");
    }
    assert_eq!(
        spawned.scope.get(logbook_proto::ScopeKey::StepId),
        Some("s-1")
    );
    assert_eq!(spawned.scope.user_id(), Some("u-1"));
    assert_eq!(deepest.scope.user_id(), Some("u-override"));
    assert_eq!(
        deepest.scope.get(logbook_proto::ScopeKey::StepId),
        Some("s-1")
    );

    // Parent/child ids.
    let task = one(&records, Kind::SpanStart, "spawned.task");
    let inner = one(&records, Kind::SpanStart, "inner");
    assert_eq!(job.parent_span_id, None);
    assert_eq!(task.parent_span_id, job.span_id);
    assert_eq!(inner.parent_span_id, task.span_id);
    assert_eq!(spawned.span_id, task.span_id);
    assert_eq!(deepest.span_id, inner.span_id);
    assert_eq!(job.category.as_deref(), Some("run"));

    // Late fields and status in span ends.
    let job_end = one(&records, Kind::SpanEnd, "job");
    assert_eq!(job_end.fields.get("attempt"), Some(&Value::I64(2)));
    assert_eq!(
        job_end.fields.get("outcome"),
        Some(&Value::Str("done".into()))
    );
    assert_eq!(job_end.status, Some(Status::Ok));
    let d = job_end.duration_ns.unwrap();
    assert_eq!(job_end.busy_ns.unwrap() + job_end.idle_ns.unwrap(), d);
    assert!(job_end.ts >= job.ts);
    let failing_end = one(&records, Kind::SpanEnd, "failing.op");
    assert_eq!(failing_end.status, Some(Status::Error));
    assert_eq!(
        failing_end.fields.get("error.type"),
        Some(&Value::Str("Boom".into()))
    );
    let failed = one(&records, Kind::Event, "it failed");
    assert_eq!(
        (failed.level, failed.category.as_deref()),
        (Level::Error, Some("error"))
    );

    // The runs view, kept at ingest.
    let out = collector.cli(&["runs", "--format", "json"]);
    assert!(out.status.success());
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &runs[0];
    assert_eq!(run["run_id"], "run-rt-1");
    assert_eq!(run["status"], "ok");
    assert_eq!(run["root_name"], "job");
    assert_eq!(run["tenant"], "acme");
    assert_eq!(run["user_id"], "u-1");
    assert_eq!(run["service"], "rt-app");
    assert_eq!(run["records"], report.emitted);
    assert_eq!(run["errors"], 2, "the ERROR event and the failed span");
    assert_eq!(run["duration_ns"], d);

    // The tree.
    let out = collector.cli(&["run", "run-rt-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[0].starts_with("run run-rt-1  ok"), "{tree}");
    let pos = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in\n{tree}"))
    };
    assert!(lines[pos("job  ok")].starts_with("job  ok"), "{tree}");
    assert!(
        lines[pos("spawned.task  ok")].starts_with("├─ spawned.task"),
        "{tree}"
    );
    assert!(
        lines[pos("inner  ok")].starts_with("│  ├─ inner")
            || lines[pos("inner  ok")].starts_with("│  └─ inner"),
        "{tree}"
    );
    assert!(
        lines[pos("failing.op  error")].contains("error.type=Boom"),
        "{tree}"
    );
    assert!(pos("ERROR it failed") > pos("failing.op  error"), "{tree}");
    assert!(
        lines[pos("job  ok")].contains("attempt=2"),
        "late fields shown: {tree}"
    );
}

#[test]
fn filters_narrow_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let ep = collector.endpoint();
    run_app(&["roundtrip", "run-a"], &[("LOGBOOK_ENDPOINT", &ep)]);
    run_app(
        &["roundtrip", "run-b"],
        &[("LOGBOOK_ENDPOINT", &ep), ("LOGBOOK_PROJECT", "p2")],
    );

    let count = |args: &[&str]| {
        collector
            .query(&[&["--limit", "1000"], args].concat())
            .len()
    };
    // 24 from the apps, and the collector's audit record of its configuration.
    assert_eq!(count(&[]), 25);
    assert_eq!(count(&["--category", "audit"]), 1);
    assert_eq!(count(&["--run", "run-b"]), 12);
    assert_eq!(count(&["--project", "p2"]), 12);
    assert_eq!(count(&["--level", "error"]), 2);
    assert_eq!(count(&["--level", "warn"]), 2);
    assert_eq!(count(&["--kind", "span_end"]), 8);
    assert_eq!(count(&["--category", "error"]), 2);
    assert_eq!(count(&["--name", "inner"]), 4);
    assert_eq!(
        count(&["--user", "u-override"]),
        6,
        "inner's start, end and event, in both runs"
    );
    assert_eq!(count(&["--tenant", "acme", "--run", "run-a"]), 12);
    assert_eq!(count(&["--text", "spawn"]), 2, "full-text on the message");
    assert_eq!(
        count(&["--text", "hello world"]),
        2,
        "full-text on string fields"
    );
    assert_eq!(count(&["--field", "count=3"]), 2);
    assert_eq!(count(&["--field", "ok=true"]), 2);
    assert_eq!(count(&["--field", "text=hello world"]), 2);
    assert_eq!(count(&["--field", "count=4"]), 0);
    assert_eq!(count(&["--target", "logbook_e2e_app"]), 24);
    assert_eq!(
        count(&["--target", "logbook_e2e"]),
        0,
        "a target prefix matches whole module segments"
    );
    assert_eq!(count(&["--since", "1h"]), 25);
    assert_eq!(count(&["--until", "1h"]), 0);
    let trace = collector.query(&["--run", "run-a", "--name", "job", "--kind", "span_start"])[0]
        .trace_id
        .to_hex();
    assert_eq!(count(&["--trace", &trace]), 12);
}
