//! The agent helpers (`logbook_layer::genai`) against a minimal protocol peer: the
//! records they make, and trace context propagation between two "processes" (two
//! threads, the second with no current span, joined only through the headers).

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use logbook_layer::genai::{self, LlmCall, StatePulse, TraceContext};
use logbook_proto::{Kind, Record, ScopeKey, Status, Value};
use serde_json::json;
use tracing::{info, info_span};
use tracing_subscriber::prelude::*;

mod common;
use common::peer;

fn find<'a>(records: &'a [Record], kind: Kind, name: &str) -> &'a Record {
    records
        .iter()
        .find(|r| r.kind == kind && (r.name == name || r.message.as_deref() == Some(name)))
        .unwrap_or_else(|| panic!("no {kind} {name} in {records:#?}"))
}

fn all<'a>(records: &'a [Record], kind: Kind, name: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.kind == kind && r.name == name)
        .collect()
}

fn str_field<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.fields.get(key).and_then(Value::as_str)
}

fn json_field<'a>(r: &'a Record, key: &str) -> &'a str {
    match r.fields.get(key) {
        Some(Value::Json(j)) => j.as_str(),
        other => panic!("{key} is not JSON: {other:?} in {r:#?}"),
    }
}

/// Runs `f` with a logbook layer shipping to a fresh peer; returns what the peer got.
fn capture(f: impl FnOnce(&tracing::Dispatch)) -> Vec<Record> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peer.sock");
    let got = peer(&path);
    let layer = logbook_layer::builder()
        .with_socket(&path)
        .try_build()
        .unwrap();
    let handle = layer.handle();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || f(&dispatch));
    let report = handle.flush(Duration::from_secs(10));
    assert!(report.complete, "{report:?}");
    assert_eq!(report.undelivered, 0);
    let records = got.lock().unwrap().clone();
    assert!(!records.is_empty());
    records
}

#[test]
fn llm_call_records_typed_gen_ai_fields_and_errors() {
    let records = capture(|_| {
        let call = genai::llm_call("openai", "gpt-4o");
        call.temperature(0.2).max_tokens(256).conversation("conv-1");
        call.input_messages(&json!([{ "role": "user", "content": "hi" }]));
        call.span().in_scope(|| info!("waiting for the model"));
        call.response("chatcmpl-1", "gpt-4o-2024-08-06")
            .usage(100, 20)
            .cache_read_tokens(60)
            .provider_cost(0.0012)
            .finish_reasons(&["stop"])
            .output_messages(&json!([{ "role": "assistant", "content": "hello" }]));
        drop(call);

        let failing = LlmCall::new("embeddings", "openai", "text-embedding-3-small");
        failing.error(&std::io::Error::other("connection reset"));
        drop(failing);

        let limited = LlmCall::new("generate_content", "gcp.gemini", "gemini-2.5-pro");
        limited.error_type("rate_limited");
    });

    let start = find(&records, Kind::SpanStart, "chat");
    assert_eq!(str_field(start, genai::OPERATION_NAME), Some("chat"));
    assert_eq!(str_field(start, genai::PROVIDER_NAME), Some("openai"));
    assert_eq!(str_field(start, genai::REQUEST_MODEL), Some("gpt-4o"));
    assert!(start.fields.get(genai::USAGE_INPUT_TOKENS).is_none());

    let end = find(&records, Kind::SpanEnd, "chat");
    assert_eq!(end.status, Some(Status::Ok));
    assert_eq!(str_field(end, genai::REQUEST_MODEL), Some("gpt-4o"));
    assert_eq!(str_field(end, genai::RESPONSE_ID), Some("chatcmpl-1"));
    assert_eq!(
        str_field(end, genai::RESPONSE_MODEL),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(str_field(end, genai::CONVERSATION_ID), Some("conv-1"));
    let int = |k: &str| end.fields.get(k).and_then(Value::as_u64);
    assert_eq!(int(genai::USAGE_INPUT_TOKENS), Some(100));
    assert_eq!(int(genai::USAGE_OUTPUT_TOKENS), Some(20));
    assert_eq!(int(genai::USAGE_CACHE_READ_INPUT_TOKENS), Some(60));
    assert_eq!(int(genai::REQUEST_MAX_TOKENS), Some(256));
    assert_eq!(end.fields.get(genai::USAGE_COST), Some(&Value::F64(0.0012)));
    assert_eq!(
        end.fields.get(genai::REQUEST_TEMPERATURE),
        Some(&Value::F64(0.2))
    );
    assert_eq!(
        json_field(end, genai::RESPONSE_FINISH_REASONS),
        r#"["stop"]"#
    );
    assert_eq!(
        json_field(end, genai::INPUT_MESSAGES),
        r#"[{"content":"hi","role":"user"}]"#
    );
    assert_eq!(
        json_field(end, genai::OUTPUT_MESSAGES),
        r#"[{"content":"hello","role":"assistant"}]"#
    );
    assert!(end.fields.get(genai::ERROR_TYPE).is_none());
    let waiting = find(&records, Kind::Event, "waiting for the model");
    assert_eq!(waiting.span_id, end.span_id);

    let failed = find(&records, Kind::SpanEnd, "embeddings");
    assert_eq!(failed.status, Some(Status::Error));
    assert_eq!(str_field(failed, genai::OPERATION_NAME), Some("embeddings"));
    let error_type = str_field(failed, genai::ERROR_TYPE).unwrap();
    assert!(error_type.ends_with("Error"), "{error_type}");
    assert_eq!(
        str_field(failed, "exception.message"),
        Some("connection reset")
    );
    assert_eq!(str_field(failed, "otel.status_code"), Some("ERROR"));

    let limited = find(&records, Kind::SpanEnd, "generate_content");
    assert_eq!(limited.status, Some(Status::Error));
    assert_eq!(str_field(limited, genai::ERROR_TYPE), Some("rate_limited"));
    assert_eq!(str_field(limited, genai::PROVIDER_NAME), Some("gcp.gemini"));
}

#[test]
fn tool_call_and_agent_record_their_fields() {
    let records = capture(|_| {
        let agent = genai::agent("researcher");
        agent.in_scope(|| {
            let tool = genai::tool_call(
                "search_docs",
                Some("call-7"),
                &json!({ "q": "refunds", "limit": 3 }),
            );
            tool.tool_type("function")
                .result(&json!([{ "id": "doc-1" }]));
            drop(tool);
            // Arguments that arrive as JSON text stay JSON.
            let raw: Box<serde_json::value::RawValue> =
                serde_json::from_str(r#"{"path": "/tmp/x"}"#).unwrap();
            let failing = genai::tool_call("read_file", None, &raw);
            failing.error_type("not_found");
        });
    });

    let agent = find(&records, Kind::SpanStart, "invoke_agent");
    assert_eq!(
        str_field(agent, genai::OPERATION_NAME),
        Some("invoke_agent")
    );
    assert_eq!(str_field(agent, genai::AGENT_NAME), Some("researcher"));

    let tools = all(&records, Kind::SpanEnd, "execute_tool");
    assert_eq!(tools.len(), 2);
    let search = tools
        .iter()
        .find(|r| str_field(r, genai::TOOL_NAME) == Some("search_docs"))
        .unwrap();
    assert_eq!(search.parent_span_id, agent.span_id);
    assert_eq!(search.status, Some(Status::Ok));
    assert_eq!(
        str_field(search, genai::OPERATION_NAME),
        Some("execute_tool")
    );
    assert_eq!(str_field(search, genai::TOOL_CALL_ID), Some("call-7"));
    assert_eq!(str_field(search, genai::TOOL_TYPE), Some("function"));
    assert_eq!(
        json_field(search, genai::TOOL_CALL_ARGUMENTS),
        r#"{"limit":3,"q":"refunds"}"#
    );
    assert_eq!(
        json_field(search, genai::TOOL_CALL_RESULT),
        r#"[{"id":"doc-1"}]"#
    );

    let read = tools
        .iter()
        .find(|r| str_field(r, genai::TOOL_NAME) == Some("read_file"))
        .unwrap();
    assert!(read.fields.get(genai::TOOL_CALL_ID).is_none());
    let args: serde_json::Value =
        serde_json::from_str(json_field(read, genai::TOOL_CALL_ARGUMENTS)).unwrap();
    assert_eq!(args, json!({ "path": "/tmp/x" }));
    assert_eq!(read.status, Some(Status::Error));
    assert_eq!(str_field(read, genai::ERROR_TYPE), Some("not_found"));
}

#[test]
fn run_step_decision_artifact_and_state_conventions() {
    let mut ids = Vec::new();
    let long_reasoning = "é".repeat(700);
    let records = capture(|_| {
        let run = genai::run("triage")
            .tenant("acme")
            .user("u-1")
            .session("s-1")
            .agent("triage-bot")
            .start();
        ids.push(run.run_id().to_owned());
        run.span().in_scope(|| {
            let step = genai::step("plan");
            step.in_scope(|| {
                genai::decision("search the docs first", &long_reasoning);
                genai::artifact("report", "out/triage.md");
                let mut state = StatePulse::new();
                let h1 = state.pulse(&json!({ "plan": ["search"], "done": false }));
                let h2 = state.pulse(&json!({ "plan": ["search"], "done": true }));
                let h3 = state.pulse(&json!({ "done": true, "plan": ["search"] }));
                assert_ne!(h1, h2);
                assert_eq!(h2, h3, "same state, same hash");
                let h4 = state.pulse(&json!({ "plan": [], "notes": "x" }));
                ids.extend([h1, h2, h4]);
            });
            // A run started with the current run's id joins it: not a new run.
            let same = genai::run("again").run_id(run.run_id()).start();
            drop(same);
        });
        run.ok();
        let second = genai::run("triage").start();
        ids.push(second.run_id().to_owned());
        second.error_type("budget_exceeded");
    });
    let (run_id, h1, h2, h4, second_id) = (&ids[0], &ids[1], &ids[2], &ids[3], &ids[4]);
    assert_eq!(run_id.len(), 36, "{run_id}");
    assert_ne!(run_id, second_id, "each run gets a fresh id");

    let runs = all(&records, Kind::SpanStart, "run");
    let run = runs
        .iter()
        .find(|r| r.scope.run_id() == Some(run_id) && str_field(r, "run.name") == Some("triage"))
        .unwrap();
    assert_eq!(run.category.as_deref(), Some("run"));
    assert_eq!(run.scope.tenant(), Some("acme"));
    assert_eq!(run.scope.user_id(), Some("u-1"));
    assert_eq!(run.scope.get(ScopeKey::SessionId), Some("s-1"));
    assert_eq!(
        run.scope.get(ScopeKey::App),
        None,
        "absent scope is not set"
    );
    assert_eq!(str_field(run, genai::AGENT_NAME), Some("triage-bot"));
    let again = runs
        .iter()
        .find(|r| str_field(r, "run.name") == Some("again"))
        .unwrap();
    assert_eq!(again.category, None, "the same run_id joins the run");
    assert_eq!(again.scope.run_id(), Some(run_id.as_str()));
    let ends = all(&records, Kind::SpanEnd, "run");
    let end_of = |id: &str| {
        ends.iter()
            .find(|r| r.scope.run_id() == Some(id) && r.category.is_some())
            .unwrap()
    };
    assert_eq!(end_of(run_id).status, Some(Status::Ok));
    assert_eq!(end_of(second_id).status, Some(Status::Error));
    assert_eq!(end_of(second_id).category.as_deref(), Some("run"));

    let step = find(&records, Kind::SpanStart, "step");
    assert_eq!(step.parent_span_id, run.span_id);
    assert_eq!(step.category, None);
    assert_eq!(str_field(step, "step.name"), Some("plan"));
    assert_eq!(step.scope.run_id(), Some(run_id.as_str()));
    assert_eq!(step.scope.tenant(), Some("acme"));
    let step_id = step.scope.get(ScopeKey::StepId).unwrap();
    assert_eq!(step_id.len(), 16);

    let decision = find(&records, Kind::Event, "decision");
    assert_eq!(decision.span_id, step.span_id);
    assert_eq!(
        decision.message.as_deref(),
        Some("decision: search the docs first")
    );
    assert_eq!(
        str_field(decision, "decision.summary"),
        Some("search the docs first")
    );
    let reasoning = str_field(decision, "decision.reasoning").unwrap();
    assert_eq!(reasoning.chars().count(), 501);
    assert!(reasoning.ends_with("é…"));
    assert_eq!(decision.scope.run_id(), Some(run_id.as_str()));
    assert_eq!(decision.scope.get(ScopeKey::StepId), Some(step_id));
    assert_eq!(decision.scope.user_id(), Some("u-1"));

    let artifact = find(&records, Kind::Event, "artifact");
    assert_eq!(str_field(artifact, "artifact.type"), Some("report"));
    assert_eq!(str_field(artifact, "artifact.path"), Some("out/triage.md"));
    assert_eq!(artifact.scope.get(ScopeKey::StepId), Some(step_id));

    let states = all(&records, Kind::Event, "state");
    assert_eq!(states.len(), 4);
    let hashes: Vec<_> = states
        .iter()
        .map(|r| str_field(r, "state.hash").unwrap())
        .collect();
    assert_eq!(hashes, [h1.as_str(), h2.as_str(), h2.as_str(), h4.as_str()]);
    assert!(hashes
        .iter()
        .all(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit())));
    let changed: Vec<_> = states
        .iter()
        .map(|r| json_field(r, "state.changed_keys"))
        .collect();
    assert_eq!(
        changed,
        [
            r#"["done","plan"]"#,
            r#"["done"]"#,
            "[]",
            r#"["done","notes","plan"]"#
        ]
    );
    assert!(states
        .iter()
        .all(|r| r.scope.run_id() == Some(run_id.as_str())));
}

#[test]
fn propagation_joins_the_callers_trace_run_and_span() {
    let mut caller = None;
    let records = capture(|dispatch| {
        assert!(TraceContext::current().is_none(), "no span, no context");
        let mut headers = HashMap::new();
        let run = genai::run("caller").tenant("acme").user("u-1").start();
        run.span().in_scope(|| {
            let step = genai::step("fetch");
            step.in_scope(|| {
                let tool = genai::tool_call("remote_search", Some("c-1"), &json!({}));
                tool.span().in_scope(|| {
                    let ctx = TraceContext::current().unwrap();
                    assert!(genai::inject(|k, v| {
                        headers.insert(k.to_owned(), v);
                    }));
                    assert_eq!(headers["traceparent"], ctx.traceparent());
                    caller = Some(ctx);
                });
            });
        });
        // The "other process": a thread with no current span, only the headers.
        let dispatch = dispatch.clone();
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&dispatch, || {
                assert!(tracing::Span::current().is_none());
                let remote = genai::extract(|k| headers.get(k).cloned());
                assert!(remote.trace_id().is_none());
                let server = remote.span();
                server.in_scope(|| info!("serving"));
                // A span of one's own, with its own tenant (explicit scope wins).
                let own = info_span!(
                    "serve_tool",
                    traceparent = remote.traceparent(),
                    baggage = remote.baggage(),
                    tenant = "override",
                );
                own.in_scope(|| info!("serving mine"));
                // Only an X-Trace-Id: a root on that trace.
                let bare = genai::extract(|k| {
                    (k == "x-trace-id").then(|| "4bf92f3577b34da6a3ce929d0e0e4736".to_owned())
                });
                bare.span().in_scope(|| info!("bare"));
                // Foreign baggage entries stay in the field.
                info_span!("mixed", baggage = "userTier=gold, run_id=r-remote")
                    .in_scope(|| info!("mixed event"));
            });
        })
        .join()
        .unwrap();
    });
    let caller = caller.unwrap();

    let tool = find(&records, Kind::SpanStart, "execute_tool");
    let run = find(&records, Kind::SpanStart, "run");
    let run_id = run.scope.run_id().unwrap();
    assert_eq!(caller.trace_id, tool.trace_id, "current() is the tool span");
    assert_eq!(Some(caller.span_id), tool.span_id);
    assert!(caller.scope.contains(&(ScopeKey::RunId, run_id.to_owned())));
    assert!(caller.scope.iter().any(|(k, _)| *k == ScopeKey::StepId));
    let baggage = caller.baggage();
    assert!(baggage.contains(&format!("run_id={run_id}")), "{baggage}");
    assert!(baggage.contains("tenant=acme") && baggage.contains("user_id=u-1"));
    assert!(!baggage.contains("step_id"), "{baggage}");

    let server = find(&records, Kind::SpanStart, "server");
    assert_eq!(server.trace_id, tool.trace_id);
    assert_eq!(server.parent_span_id, tool.span_id);
    assert_eq!(server.scope.run_id(), Some(run_id));
    assert_eq!(server.scope.tenant(), Some("acme"));
    assert_eq!(server.scope.user_id(), Some("u-1"));
    assert_eq!(server.scope.get(ScopeKey::StepId), None);
    assert_eq!(server.category, None, "joins the run, does not start one");
    assert!(server.fields.get("traceparent").is_none());
    assert!(server.fields.get("baggage").is_none());
    let server_end = records
        .iter()
        .find(|r| r.kind == Kind::SpanEnd && r.span_id == server.span_id)
        .unwrap();
    assert_eq!(server_end.category, None);
    let serving = find(&records, Kind::Event, "serving");
    assert_eq!(serving.trace_id, tool.trace_id);
    assert_eq!(serving.span_id, server.span_id);
    assert_eq!(serving.scope.run_id(), Some(run_id));

    let own = find(&records, Kind::SpanStart, "serve_tool");
    assert_eq!(own.trace_id, tool.trace_id);
    assert_eq!(own.parent_span_id, tool.span_id);
    assert_eq!(own.scope.run_id(), Some(run_id));
    assert_eq!(own.scope.tenant(), Some("override"));
    assert_eq!(own.category, None);
    let mine = find(&records, Kind::Event, "serving mine");
    assert_eq!(mine.scope.tenant(), Some("override"));

    let bare = find(&records, Kind::Event, "bare");
    assert_eq!(bare.trace_id.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    let bare_span = records
        .iter()
        .find(|r| r.kind == Kind::SpanStart && r.span_id == bare.span_id)
        .unwrap();
    assert_eq!(bare_span.parent_span_id, None);

    let mixed = find(&records, Kind::SpanStart, "mixed");
    assert_eq!(mixed.scope.run_id(), Some("r-remote"));
    assert_eq!(mixed.category, None);
    assert_eq!(str_field(mixed, "baggage"), Some("userTier=gold"));
    let mixed_event = find(&records, Kind::Event, "mixed event");
    assert_eq!(mixed_event.scope.run_id(), Some("r-remote"));
}
