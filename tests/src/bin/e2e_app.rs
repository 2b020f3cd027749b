//! An instrumented application for the end-to-end tests. Configured only through the
//! environment (`LOGBOOK_ENDPOINT`, …), as a user's program would be. Prints the layer's
//! counters as JSON on its last line.
//!
//! ```text
//! logbook-e2e-app roundtrip RUN_ID        a run with nested, spawned, late-recorded and failing spans
//! logbook-e2e-app stream RUN_ID COUNT US  COUNT events, one every US microseconds, in one span
//! logbook-e2e-app burst COUNT             COUNT events as fast as possible, outside any span
//! logbook-e2e-app panic RUN_ID            panics inside a run with the panic hook installed
//! logbook-e2e-app loop RUN_ID N HOLD_MS   an agent run stuck in a loop: the same tool called
//!                                         N times with the same arguments (their keys in
//!                                         another order each time), the run kept open
//!                                         HOLD_MS before it ends
//! logbook-e2e-app errors RUN_ID COUNT     COUNT times: an order lookup failing (`NotFound`, a
//!                                         different id each time) and a profile fetch failing
//!                                         with an I/O time-out as its source, as ERROR events
//!                                         with the error as a `dyn Error` field
//! logbook-e2e-app pressure COUNT US       COUNT events in bursts of 1,000 every US microseconds,
//!                                         timing each call and watching the layer's buffer
//! logbook-e2e-app tool-server SOCKET      serves one HTTP request on the Unix socket SOCKET: a
//!                                         tool call, joined to the caller's trace and run
//! logbook-e2e-app agent SOCKET            a run whose tool call is served by `tool-server`
//!                                         over HTTP on SOCKET; prints a line
//!                                         `agent {"run_id", "trace_id", "tool_span_id"}`
//! ```

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

use logbook_layer::genai;

use tracing::field::Empty;
use tracing::{error, info, info_span, Instrument, Span};
use tracing_subscriber::prelude::*;

fn arg(i: usize) -> String {
    std::env::args()
        .nth(i)
        .unwrap_or_else(|| panic!("missing argument {i}; see the file's docs"))
}

fn num(i: usize) -> u64 {
    arg(i)
        .parse()
        .unwrap_or_else(|_| panic!("argument {i} must be a number"))
}

async fn roundtrip(run_id: String) -> u64 {
    let root = info_span!("job", run_id = %run_id, tenant = "acme", user_id = "u-1", attempt = Empty, outcome = Empty);
    async {
        info!(
            count = 3i64,
            big = u64::MAX,
            ratio = 0.25f64,
            ok = true,
            text = "hello world",
            payload =
                logbook_layer::json(serde_json::json!({ "a": [1, 2, { "b": null }], "z": "last" })),
            "typed"
        );
        let task = async {
            info!(place = "spawned", "inside spawn");
            let inner = info_span!("inner", user_id = "u-override");
            inner.in_scope(|| info!("deepest"));
        }
        .instrument(info_span!("spawned.task", step_id = "s-1"));
        tokio::spawn(task).await.expect("task");
        let failing = info_span!("failing.op", error.type = Empty);
        failing.in_scope(|| error!(error = "boom", "it failed"));
        failing.record("error.type", "Boom");
        drop(failing);
        Span::current().record("attempt", 2);
        Span::current().record("outcome", "done");
    }
    .instrument(root)
    .await;
    // job, spawned.task, inner, failing.op: start and end each; four events.
    4 * 2 + 4
}

async fn stream(run_id: String, count: u64, interval: Duration) -> u64 {
    let span = info_span!("stream", run_id = %run_id);
    async {
        for n in 0..count {
            info!(n, "tick");
            if !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
        }
    }
    .instrument(span)
    .await;
    count + 2
}

fn burst(count: u64) -> u64 {
    for n in 0..count {
        info!(n, "burst");
    }
    count
}

/// Panics inside a run; the hook records and flushes before the process dies.
fn panic_in_run(run_id: String) -> ! {
    logbook_layer::install_panic_hook(Duration::from_secs(10));
    let span = info_span!("doomed", run_id = %run_id);
    let _entered = span.enter();
    info!("about to fail");
    let items: Vec<u32> = Vec::new();
    panic!("index out of range: {} items", items.len());
}

/// An order that is not there.
#[derive(Debug)]
struct NotFound {
    order: u64,
}

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "order {} not found", self.order)
    }
}

impl std::error::Error for NotFound {}

/// A failure with a cause.
#[derive(Debug)]
enum ProfileError {
    Fetch(std::io::Error),
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fetching the profile failed")
    }
}

impl std::error::Error for ProfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Fetch(e) => Some(e),
        }
    }
}

async fn stuck(run_id: String, n: u64, hold: Duration) -> u64 {
    let run = genai::run("looping-agent")
        .run_id(run_id)
        .user("u-loop")
        .start();
    async {
        for i in 0..n {
            let args = if i % 2 == 0 {
                serde_json::json!({"query": "refund policy", "page": 1})
            } else {
                serde_json::json!({"page": 1, "query": "refund policy"})
            };
            let call = genai::tool_call("search", Some(&format!("call-{i}")), &args);
            call.result(&serde_json::json!({"hits": 0}));
        }
        // Still running while the alert should fire.
        tokio::time::sleep(hold).await;
    }
    .instrument(run.span().clone())
    .await;
    drop(run);
    // The run's span and each call's span, start and end each.
    2 + 2 * n
}

async fn errors(run_id: String, count: u64) -> u64 {
    let root = info_span!("checkout", run_id = %run_id, user_id = "u-errors");
    async {
        for i in 0..count {
            let e = NotFound { order: 1000 + i };
            error!(error = &e as &dyn std::error::Error, "lookup failed");
            let e = ProfileError::Fetch(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("read timed out after {} ms", 100 + i),
            ));
            error!(error = &e as &dyn std::error::Error, "profile failed");
        }
    }
    .instrument(root)
    .await;
    2 + 2 * count
}

/// What `pressure` saw: the slowest single call and the fullest the buffer got.
#[derive(Default)]
struct Pressure {
    max_emit_us: u64,
    max_buffered: usize,
    capacity: usize,
}

fn pressure(handle: &logbook_layer::Handle, count: u64, pause: Duration) -> (u64, Pressure) {
    let mut seen = Pressure {
        capacity: handle.stats().buffer_capacity,
        ..Pressure::default()
    };
    for n in 0..count {
        let t = std::time::Instant::now();
        info!(n, payload = "x".repeat(100), "pressure");
        seen.max_emit_us = seen.max_emit_us.max(t.elapsed().as_micros() as u64);
        if n % 1000 == 999 {
            seen.max_buffered = seen.max_buffered.max(handle.stats().buffered_bytes);
            std::thread::sleep(pause);
        }
    }
    (count, seen)
}

/// Every kind of secret the redaction rules know, in a message, fields, nested JSON and
/// JSON inside a string field. The tests look for each value in the database file.
pub const SECRETS: &[&str] = &[
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
    "dXNlcjpodW50ZXIy",
    "Tr0ub4dor-and-3",
    "k-9f8e7d6c5b4a3",
];

fn secrets() -> u64 {
    let s = SECRETS;
    let span = info_span!("login", run_id = "run-secrets", api_key = s[12]);
    span.in_scope(|| {
        info!(
            password = s[0],
            card = s[1],
            note = format!("ssn {} mail {}", s[2], s[3]).as_str(),
            body = logbook_layer::json(serde_json::json!({
                "payment": {"iban": s[4], "headers": {"Authorization": format!("Bearer {}", s[5])}}
            })),
            "gen_ai.input.messages" = serde_json::json!([
                {"role": "user", "content": format!("my key is {} and {}", s[6], s[7])}
            ])
            .to_string()
            .as_str(),
            "calling with {} {}, Authorization: Basic {}, db password={}",
            s[8],
            s[9],
            s[10],
            s[11]
        );
        let cert = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7fakekeymaterialXYZ\n-----END RSA PRIVATE KEY-----";
        info!(tls.key = cert, "loaded a key");
    });
    4
}

/// One HTTP/1.1 request or response: head lines and body.
fn read_http(stream: &mut UnixStream) -> (Vec<String>, HashMap<String, String>, Vec<u8>) {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading HTTP head");
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
        head.push(line);
    }
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().expect("content-length"));
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("reading HTTP body");
    (head, headers, body)
}

/// The tool server: one request, served under a span joined to the caller's trace
/// and run by its `traceparent` and `baggage` headers.
fn tool_server(socket: String) -> u64 {
    let listener = UnixListener::bind(&socket).expect("binding the tool socket");
    let (mut stream, _) = listener.accept().expect("accepting");
    let (head, headers, body) = read_http(&mut stream);
    let remote = genai::extract(|name| headers.get(name).cloned());
    let span = info_span!(
        "POST /tools/search",
        traceparent = remote.traceparent(),
        baggage = remote.baggage(),
        http.request.method = "POST",
        http.route = "/tools/search",
    );
    span.in_scope(|| {
        let query: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        info!(request = %head[0], query = %query["q"], "searching");
        let hits = info_span!("search.index", index = "docs").in_scope(|| {
            serde_json::json!([{ "doc": "refund-policy.md", "score": 0.92 }])
        });
        let body = hits.to_string();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("writing the response");
    });
    // Two spans (start and end each) and one event.
    5
}

/// The agent: a run with one tool call, served by `tool-server` over HTTP.
async fn agent(socket: String) -> u64 {
    let run = genai::run("cross-process")
        .agent("e2e-agent")
        .tenant("acme")
        .user("u-9")
        .start();
    let run_id = run.run_id().to_owned();
    let ids = async {
        let args = serde_json::json!({ "q": "refunds" });
        let call = genai::tool_call("search", Some("call-1"), &args);
        let ctx = genai::TraceContext::of(call.span()).expect("the layer is installed");
        let mut request = String::from("POST /tools/search HTTP/1.1\r\nHost: tools\r\n");
        ctx.inject(|name, value| request.push_str(&format!("{name}: {value}\r\n")));
        let body = args.to_string();
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        let mut stream = UnixStream::connect(&socket).expect("connecting to the tool server");
        stream.write_all(request.as_bytes()).expect("sending");
        let (_, _, response) = read_http(&mut stream);
        let result: serde_json::Value = serde_json::from_slice(&response).expect("JSON response");
        call.result(&result);
        serde_json::json!({
            "run_id": run_id,
            "trace_id": ctx.trace_id.to_hex(),
            "tool_span_id": ctx.span_id.to_hex(),
        })
    }
    .instrument(run.span().clone())
    .await;
    drop(run);
    println!("agent {ids}");
    // The run's span and the tool call's span, start and end each.
    4
}

#[tokio::main]
async fn main() {
    let layer = logbook_layer::layer();
    let guard = layer.flush_guard();
    let handle = layer.handle();
    tracing_subscriber::registry().with(layer).init();
    let mut seen = Pressure::default();
    let emitted = match arg(1).as_str() {
        "pressure" => {
            let (n, p) = pressure(&handle, num(2), Duration::from_micros(num(3)));
            seen = p;
            n
        }
        "panic" => panic_in_run(arg(2)),
        "errors" => errors(arg(2), num(3)).await,
        "loop" => stuck(arg(2), num(3), Duration::from_millis(num(4))).await,
        "roundtrip" => roundtrip(arg(2)).await,
        "stream" => stream(arg(2), num(3), Duration::from_micros(num(4))).await,
        "burst" => burst(num(2)),
        "secrets" => secrets(),
        "tool-server" => tool_server(arg(2)),
        "agent" => agent(arg(2)).await,
        other => panic!("unknown scenario {other}"),
    };
    let report = guard.flush();
    println!(
        "{}",
        serde_json::json!({
            "emitted": emitted,
            "delivered": report.delivered,
            "dropped": report.dropped,
            "rejected": report.rejected,
            "undelivered": report.undelivered,
            "resent": handle.stats().resent,
            "max_emit_us": seen.max_emit_us,
            "max_buffered": seen.max_buffered,
            "capacity": seen.capacity,
        })
    );
}
