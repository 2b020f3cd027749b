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

#[test]
fn flush_waits_for_what_was_queued_not_for_silence() {
    // Acks take 20 ms (like a group commit) while another thread logs every millisecond:
    // the queue is never empty, yet a flush must return once the records logged before
    // it are acknowledged.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let got = common::peer_with(&path, 1 << 24, Duration::from_millis(20));
    let layer = logbook_layer::builder()
        .with_socket(&path)
        .try_build()
        .unwrap();
    let handle = layer.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let chatter = {
        let (dispatch, stop) = (dispatch.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    info!("chatter");
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        })
    };
    tracing::dispatcher::with_default(&dispatch, || info!("before flush"));
    let report = handle.flush(Duration::from_secs(20));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    chatter.join().unwrap();
    assert!(report.complete, "{report:?}");
    assert!(got
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.message.as_deref() == Some("before flush")));
}

#[test]
fn a_record_that_fits_alone_gets_a_fresh_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let got = common::peer_with(&path, 64 * 1024, Duration::ZERO);
    let layer = logbook_layer::builder()
        .with_socket(&path)
        .try_build()
        .unwrap();
    let handle = layer.handle();
    // Connect first, so the layer knows the 64 KiB limit.
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info!("hello");
        assert!(handle.flush(Duration::from_secs(10)).complete);
        // Batches seal at half the limit (32 KiB): ~30 KB of small records are in the open
        // batch when a 50 KB record arrives, which fits the limit only on its own.
        let big = "x".repeat(50 * 1024);
        for i in 0..20 {
            info!(i, filler = "y".repeat(1500), "small");
        }
        info!(big = %big, "big one");
        info!("after");
    });
    let report = handle.flush(Duration::from_secs(10));
    assert!(report.complete, "{report:?}");
    assert_eq!((report.delivered, report.dropped), (23, 0), "{report:?}");
    assert!(got
        .lock()
        .unwrap()
        .iter()
        .any(|r| r.message.as_deref() == Some("big one")));
}

#[test]
fn batches_sealed_for_a_larger_limit_are_resplit_on_connect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    // No collector yet: the layer batches for the default 16 MiB limit.
    let layer = logbook_layer::builder()
        .with_socket(&path)
        .try_build()
        .unwrap();
    let handle = layer.handle();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..2000 {
            info!(i, filler = "z".repeat(200), "queued");
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    let got = common::peer_with(&path, 64 * 1024, Duration::ZERO);
    let report = handle.flush(Duration::from_secs(20));
    assert!(report.complete, "{report:?}");
    assert_eq!((report.delivered, report.dropped), (2000, 0), "{report:?}");
    assert_eq!(got.lock().unwrap().len(), 2000);
}

/// One planted secret of each kind the redaction engine knows, and where it goes.
const SECRETS: &[&str] = &[
    "hunter2-Secret!",
    "4111 1111 1111 1111",
    "123-45-6789",
    "alice.smith@example.com",
    "GB82 WEST 1234 5698 7654 32",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAAAA",
];

#[test]
fn with_redaction_secrets_never_leave_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let got = peer(&path);
    let layer = logbook_layer::builder()
        .with_socket(&path)
        .with_redaction(logbook_layer::redact::Redactor::builtin())
        .try_build()
        .unwrap();
    let handle = layer.handle();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let _s = info_span!("login", api_key = "k-9f8e7d6c5b4a3").entered();
        info!(
            password = SECRETS[0],
            card = SECRETS[1],
            note = format!("ssn {} mail {}", SECRETS[2], SECRETS[3]).as_str(),
            body = logbook_layer::json(serde_json::json!({
                "payment": {"iban": SECRETS[4], "headers": {"Authorization": format!("Bearer {}", SECRETS[5])}}
            })),
            "gen_ai.input.messages" = serde_json::json!([{"role": "user", "content": format!("my key is {}", SECRETS[6])}]).to_string().as_str(),
            "keys {} {} {}",
            SECRETS[7],
            SECRETS[8],
            SECRETS[9]
        );
    });
    assert!(handle.flush(Duration::from_secs(10)).complete);
    let records = got.lock().unwrap().clone();
    let text = serde_json::to_string(&records).unwrap();
    for s in SECRETS.iter().chain(&["k-9f8e7d6c5b4a3"]) {
        assert!(!text.contains(s), "{s} left the process: {text}");
    }
    assert!(text.contains("[REDACTED:password]"), "{text}");
    assert!(text.contains("[REDACTED:api_key]"), "{text}");
}
