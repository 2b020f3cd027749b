//! The layer against a minimal protocol peer on a real Unix socket: what the layer
//! captures and how it talks. (End-to-end tests against the real collector live in
//! the `logbook-tests` crate.)

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logbook_proto::{Kind, Record, Status, Value};
use tracing::{error, info, info_span, warn};
use tracing_subscriber::prelude::*;

mod common;
use common::peer;

fn find<'a>(records: &'a [Record], kind: Kind, name: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.kind == kind && (r.name == name || r.message.as_deref() == Some(name)))
        .unwrap_or_else(|| panic!("no {kind} {name} in {records:#?}"))
}

#[test]
fn spans_and_events_carry_scope_ids_late_fields_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let got = peer(&path);
    let layer = logbook_layer::builder()
        .with_socket(&path)
        .with_service("peer-test")
        .with_env("test")
        .try_build()
        .unwrap();
    let handle = layer.handle();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let root = info_span!(
            "agent.run",
            run_id = "r-1",
            tenant = "acme",
            tokens = tracing::field::Empty
        );
        let _r = root.enter();
        info!(k = 1, big = u64::MAX, ratio = 0.5, ok = true, "hello");
        {
            let child = info_span!("llm.call", user_id = "u-1");
            let _c = child.enter();
            warn!(
                messages = logbook_layer::json(vec![serde_json::json!({"role": "user"})]),
                "inside"
            );
            error!(error = "boom", "call failed");
        }
        root.record("tokens", 42);
    });
    let report = handle.flush(Duration::from_secs(10));
    assert!(report.complete, "{report:?}");
    assert_eq!(report.undelivered, 0);
    let records = got.lock().unwrap().clone();
    assert_eq!(records.len(), 7, "{records:#?}");
    assert_eq!(report.delivered, 7);

    let root_start = find(&records, Kind::SpanStart, "agent.run");
    let root_end = find(&records, Kind::SpanEnd, "agent.run");
    let hello = find(&records, Kind::Event, "hello");
    let child_start = find(&records, Kind::SpanStart, "llm.call");
    let child_end = find(&records, Kind::SpanEnd, "llm.call");
    let inside = find(&records, Kind::Event, "inside");

    assert_eq!(root_start.category.as_deref(), Some("run"));
    assert_eq!(root_start.parent_span_id, None);
    assert_eq!(root_start.scope.run_id(), Some("r-1"));
    assert_eq!(
        root_start.scope.get(logbook_proto::ScopeKey::Env),
        Some("test"),
        "default scope from the builder"
    );
    assert_eq!(hello.span_id, root_start.span_id);
    assert_eq!(hello.trace_id, root_start.trace_id);
    assert_eq!(hello.scope.tenant(), Some("acme"));
    assert_eq!(hello.fields.get("k"), Some(&Value::I64(1)));
    assert_eq!(hello.fields.get("big"), Some(&Value::U64(u64::MAX)));
    assert_eq!(hello.fields.get("ratio"), Some(&Value::F64(0.5)));
    assert_eq!(hello.fields.get("ok"), Some(&Value::Bool(true)));
    assert!(hello.file.as_deref().unwrap().ends_with("peer.rs"));

    assert_eq!(child_start.parent_span_id, root_start.span_id);
    assert_eq!(child_start.trace_id, root_start.trace_id);
    assert_eq!(
        inside.scope.run_id(),
        Some("r-1"),
        "inherited from the grandparent"
    );
    assert_eq!(inside.scope.user_id(), Some("u-1"));
    assert!(
        matches!(inside.fields.get("messages"), Some(Value::Json(j)) if j.as_str() == r#"[{"role":"user"}]"#)
    );
    assert_eq!(
        child_end.status,
        Some(Status::Error),
        "an ERROR event fails its span"
    );
    assert_eq!(child_start.category, None);

    assert_eq!(root_end.status, Some(Status::Ok));
    assert_eq!(
        root_end.fields.get("tokens"),
        Some(&Value::I64(42)),
        "late field lands in span_end"
    );
    assert!(root_end.duration_ns.unwrap() >= child_end.duration_ns.unwrap());
    assert_eq!(
        root_end.busy_ns.unwrap() + root_end.idle_ns.unwrap(),
        root_end.duration_ns.unwrap()
    );
    assert_eq!(root_end.resource.service, "");
}
