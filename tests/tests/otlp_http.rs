//! OTLP over HTTP against the real collector, with requests written by hand on a TCP
//! stream as any client in any language sends them: JSON and protobuf, gzip and
//! deflate, traces and logs; 200 only once committed, retries stored once, what is
//! refused reported as partial success, bad input answered with the right status.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write as _;
use std::time::{Duration, Instant};

use common::{http_post, Collector};
use logbook_proto::{Kind, Level, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const PROTOBUF: (&str, &str) = ("Content-Type", "application/x-protobuf");

/// Two spans of one trace and an exception event, as the OTLP JSON encoding has them
/// (upper-case hex in one id, 64-bit numbers as strings and as numbers).
const TRACE_JSON: &str = r#"{"resourceSpans":[{"resource":{"attributes":[
  {"key":"service.name","value":{"stringValue":"py-agent"}},
  {"key":"user.id","value":{"stringValue":"u7"}},
  {"key":"tenant","value":{"stringValue":"acme"}}]},
 "scopeSpans":[{"scope":{"name":"demo"},"spans":[
  {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174","name":"agent.run","kind":2,
   "startTimeUnixNano":"1764640000000000000","endTimeUnixNano":"1764640001500000000",
   "attributes":[{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},{"key":"n","value":{"intValue":"3"}}],
   "status":{"code":1},"someFieldFromTheFuture":true},
  {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174",
   "name":"tool.search","startTimeUnixNano":1764640000100000000,"endTimeUnixNano":1764640000900000000,
   "events":[{"timeUnixNano":"1764640000200000000","name":"exception",
     "attributes":[{"key":"exception.message","value":{"stringValue":"timeout"}}]}],
   "status":{"code":2,"message":"failed"}}
 ]}]}]}"#;

fn start(dir: &std::path::Path, extra: &[&str]) -> (Collector, std::net::SocketAddr) {
    let c = Collector::start_with(dir, &[&["--http", "127.0.0.1:0"], extra].concat());
    let addr = c.http_addr();
    (c, addr)
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", service), kv("host.name", "pod-1")],
        ..Default::default()
    })
}

fn span(trace: u8, id: u8, name: &str) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        name: name.into(),
        start_time_unix_nano: 1_764_640_000_000_000_000,
        end_time_unix_nano: 1_764_640_000_250_000_000,
        attributes: vec![kv("session.id", "s-1")],
        ..Default::default()
    }
}

fn traces(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn json_spans_are_stored_once_after_commit_and_read_as_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, addr) = start(dir.path(), &[]);
    for _ in 0..2 {
        let r = http_post(addr, "/v1/traces", &[JSON], TRACE_JSON.as_bytes());
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("content-type"), Some("application/json"));
        // Exactly `{}`: no `"partialSuccess": null`.
        assert_eq!(r.body, b"{}");
    }
    // Stored once, although sent twice, and committed before the answer.
    let records = collector.query(&["--trace", "5b8efff798038103d269b633813fc60c"]);
    assert_eq!(records.len(), 3, "{records:?}");
    let root = records.iter().find(|r| r.name == "agent.run").unwrap();
    assert_eq!(root.kind, Kind::SpanEnd);
    assert_eq!(root.duration_ns, Some(1_500_000_000));
    assert_eq!(root.resource.service, "py-agent");
    assert_eq!(root.scope.get(logbook_proto::ScopeKey::UserId), Some("u7"));
    assert_eq!(
        root.scope.get(logbook_proto::ScopeKey::Tenant),
        Some("acme")
    );
    assert_eq!(root.fields.get("n"), Some(&Value::I64(3)));
    assert_eq!(
        root.origin.as_ref().map(|o| o.transport.as_str()),
        Some("http")
    );
    let exception = records.iter().find(|r| r.name == "exception").unwrap();
    assert_eq!(exception.level, Level::Error);
    assert_eq!(exception.message.as_deref(), Some("timeout"));
    // A trace without a run id is a run, in `logbook runs` and `logbook run`.
    let runs = collector.cli(&["runs"]);
    let runs = String::from_utf8_lossy(&runs.stdout);
    assert!(runs.contains("5b8efff798038103d269b633813fc60c"), "{runs}");
    assert!(
        runs.contains("py-agent") && runs.contains("agent.run"),
        "{runs}"
    );
    let run = collector.cli(&["run", "5b8efff798038103d269b633813fc60c"]);
    let run = String::from_utf8_lossy(&run.stdout);
    assert!(run.contains("└─ tool.search  error"), "{run}");
}

#[test]
fn protobuf_gzip_spans_and_deflate_logs_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, addr) = start(dir.path(), &[]);
    let request = traces("svc", (1..=20).map(|i| span(9, i, "work")).collect());
    let r = http_post(
        addr,
        "/v1/traces",
        &[PROTOBUF, ("Content-Encoding", "gzip")],
        &gzip(&request.encode_to_vec()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    let answer = ExportTraceServiceResponse::decode(&r.body[..]).unwrap();
    assert_eq!(answer.partial_success, None);
    let stored = collector.query(&["--trace", &"09".repeat(16)]);
    assert_eq!(stored.len(), 20);
    assert!(stored
        .iter()
        .all(|r| r.scope.get(logbook_proto::ScopeKey::SessionId) == Some("s-1")));

    let logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("svc"),
            scope_logs: vec![ScopeLogs {
                scope: None,
                log_records: vec![
                    LogRecord {
                        time_unix_nano: 1_764_640_000_000_000_000,
                        severity_number: 13,
                        severity_text: "WARNING".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("disk almost full".into())),
                        }),
                        trace_id: vec![9; 16],
                        span_id: vec![1; 8],
                        ..Default::default()
                    },
                    LogRecord {
                        observed_time_unix_nano: 1_764_640_000_000_000_001,
                        severity_number: 17,
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("failed".into())),
                        }),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = http_post(
        addr,
        "/v1/logs",
        &[PROTOBUF, ("Content-Encoding", "deflate")],
        &zlib(&logs.encode_to_vec()),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"", "no partial success");
    let warn = collector.query(&["--level", "warn", "--text", "disk"]);
    assert_eq!(warn.len(), 1, "{warn:?}");
    assert_eq!(warn[0].level, Level::Warn);
    assert_eq!(warn[0].span_id.map(|s| s.0), Some([1; 8]));
    let all = collector.query(&["--name", "log"]);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(
        collector
            .query(&["--level", "error", "--text", "failed"])
            .len(),
        1,
        "{all:?}"
    );
    // A log record outside any trace is not a run.
    let runs = collector.cli(&["runs"]);
    assert_eq!(String::from_utf8_lossy(&runs.stdout).lines().count(), 2);
}

#[test]
fn refused_and_invalid_spans_are_a_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let (collector, addr) = start(dir.path(), &[]);
    let mut no_trace = span(3, 1, "broken");
    no_trace.trace_id = vec![1, 2, 3];
    let request = traces(
        "svc",
        vec![no_trace, span(3, 2, "logbook.forged"), span(3, 3, "fine")],
    );
    let r = http_post(addr, "/v1/traces", &[PROTOBUF], &request.encode_to_vec());
    assert_eq!(r.status, 200, "{r:?}");
    let partial = ExportTraceServiceResponse::decode(&r.body[..])
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(!partial.error_message.is_empty());
    // In JSON too, the count as a string, as proto3 JSON has 64-bit integers.
    let r = http_post(
        addr,
        "/v1/traces",
        &[JSON],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"00","spanId":"01","name":"x"}]}]}]}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(json(&r.body)["partialSuccess"]["rejectedSpans"], "1");
    let stored = collector.query(&["--trace", &"03".repeat(16)]);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "fine");
    // The refused one is in quarantine, with its reason.
    let stats = collector.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["quarantined"], 1, "{stats}");
}

#[test]
fn bad_requests_get_the_status_the_spec_says() {
    let dir = tempfile::tempdir().unwrap();
    let (_collector, addr) = start(dir.path(), &[]);
    // Undecodable JSON: 400 with a google.rpc.Status in JSON.
    let r = http_post(addr, "/v1/traces", &[JSON], b"{\"resourceSpans\": 7}");
    assert_eq!(r.status, 400, "{r:?}");
    let status = json(&r.body);
    assert_eq!(status["code"], 3);
    assert!(status["message"].as_str().unwrap().contains("OTLP JSON"));
    // Undecodable protobuf: 400 with a google.rpc.Status in protobuf (field 1 the
    // code, field 2 the message).
    let r = http_post(addr, "/v1/traces", &[PROTOBUF], &[0xff, 0xff, 0xff]);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(&r.body[..2], &[0x08, 3]);
    // Neither: 415.
    let r = http_post(addr, "/v1/traces", &[("Content-Type", "text/plain")], b"hi");
    assert_eq!(r.status, 415, "{r:?}");
    // Larger than the limit, as sent: 413.
    let big = vec![b' '; 17 << 20];
    let r = http_post(addr, "/v1/traces", &[JSON], &big);
    assert_eq!(r.status, 413, "{r:?}");
    // Larger than the limit once decompressed (a gzip bomb): 413.
    let bomb = gzip(&vec![b' '; 80 << 20]);
    assert!(bomb.len() < 1 << 20);
    let r = http_post(
        addr,
        "/v1/traces",
        &[JSON, ("Content-Encoding", "gzip")],
        &bomb,
    );
    assert_eq!(r.status, 413, "{r:?}");
    // And it still serves.
    let r = http_post(addr, "/v1/traces", &[JSON], TRACE_JSON.as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn a_full_queue_is_answered_503_with_retry_after_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // One record in flight at most, and a commit that waits 3 s for company.
    let (collector, addr) = start(
        dir.path(),
        &["--queue-records", "1", "--commit-interval-ms", "3000"],
    );
    let first = std::thread::spawn(move || {
        let started = Instant::now();
        let r = http_post(
            addr,
            "/v1/traces",
            &[PROTOBUF],
            &traces("svc", vec![span(5, 1, "first")]).encode_to_vec(),
        );
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let r = http_post(
        addr,
        "/v1/traces",
        &[PROTOBUF],
        &traces("svc", vec![span(5, 2, "second")]).encode_to_vec(),
    );
    let waited = started.elapsed();
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(waited < Duration::from_secs(2), "waited {waited:?}");
    let (first, took) = first.join().unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    // Answered once committed, after the commit's wait.
    assert!(took >= Duration::from_secs(2), "answered after {took:?}");
    assert_eq!(collector.query(&["--name", "first"]).len(), 1);
    assert!(collector.query(&["--name", "second"]).is_empty());
}

#[test]
fn with_a_token_requests_need_it_and_without_one_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("logbook.toml");
    std::fs::write(&config, "token = \"s3cret-token\"\n").unwrap();
    let (mut collector, addr) = start(dir.path(), &["--config", config.to_str().unwrap()]);
    let body = traces("svc", vec![span(6, 1, "guarded")]).encode_to_vec();
    for auth in [
        None,
        Some("Bearer intruder-guess"),
        Some("Basic s3cret-token"),
    ] {
        let headers: Vec<(&str, &str)> = std::iter::once(PROTOBUF)
            .chain(auth.map(|a| ("Authorization", a)))
            .collect();
        let r = http_post(addr, "/v1/traces", &headers, &body);
        assert_eq!(r.status, 401, "{auth:?}: {r:?}");
        assert_eq!(&r.body[..2], &[0x08, 16], "UNAUTHENTICATED");
    }
    let r = http_post(
        addr,
        "/v1/traces",
        &[PROTOBUF, ("Authorization", "Bearer s3cret-token")],
        &body,
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(collector.query(&["--name", "guarded"]).len(), 1);
    // Counted like the socket's failures (stored when it stops), audited with the
    // peer's address and never anything the client sent.
    assert!(collector.stop().success());
    let stats = collector.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["limits"]["auth_failed"], 3, "{stats}");
    let audit = collector.query(&["--name", "logbook.auth_failures"]);
    let audit = serde_json::to_string(&audit).unwrap();
    assert!(audit.contains("127.0.0.1"), "{audit}");
    assert!(!audit.contains("intruder-guess"), "{audit}");

    // No token: an address other than loopback is refused at start.
    let other = tempfile::tempdir().unwrap();
    let out = common::cli(&[
        "serve",
        "--http",
        "0.0.0.0:0",
        "--socket",
        other.path().join("s.sock").to_str().unwrap(),
        "--db",
        other.path().join("l.db").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn a_request_larger_than_a_batch_is_stored_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("logbook.toml");
    std::fs::write(&config, "max_batch_records = 4096\n").unwrap();
    let (collector, addr) = start(dir.path(), &["--config", config.to_str().unwrap()]);
    let spans: Vec<Span> = (0..5000u32)
        .map(|i| Span {
            span_id: (u64::from(i) + 1).to_be_bytes().to_vec(),
            ..span(8, 0, "many")
        })
        .collect();
    let r = http_post(
        addr,
        "/v1/traces",
        &[PROTOBUF],
        &traces("svc", spans).encode_to_vec(),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"", "no partial success");
    let stats = collector.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    // Its 5,000 spans, and the collector's config-load record.
    assert_eq!(stats["records"], 5001, "{stats}");
}

#[test]
fn sigterm_answers_the_requests_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // A commit that waits 2 s for company keeps the request in flight.
    let (mut collector, addr) = start(dir.path(), &["--commit-interval-ms", "2000"]);
    let request = traces("svc", vec![span(4, 1, "in-flight")]).encode_to_vec();
    let sender = std::thread::spawn(move || http_post(addr, "/v1/traces", &[PROTOBUF], &request));
    std::thread::sleep(Duration::from_millis(500));
    let pid = collector.pid();
    common::signal(pid, libc::SIGTERM);
    let r = sender.join().unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(collector.stop_after_signal().success());
    assert_eq!(collector.query(&["--name", "in-flight"]).len(), 1);
    // And nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
