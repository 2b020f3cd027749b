//! OTLP/HTTP ingest of LLM-like spans (ten attributes, a prompt of about 600
//! characters, batches of 500, two senders), side by side with the socket path
//! carrying the same spans through the layer, in the same run; and, with `--peer
//! phoenix` when Arize Phoenix is installed in `target/phoenix`, Phoenix receiving the
//! identical requests, its stored spans counted through its own REST API.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use logbook_collector::store::{open_reader, StoreAddress};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use tracing_subscriber::prelude::*;

use crate::http::{serve_http, stop, Client};
use crate::stats::percentile;
use crate::sustained::peak_rss_kib;

/// Spans per request.
pub(crate) const BATCH: usize = 500;
/// Concurrent senders.
pub(crate) const SENDERS: usize = 2;

/// One side's result.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Side {
    pub(crate) label: String,
    pub(crate) spans: u64,
    pub(crate) seconds: f64,
    pub(crate) spans_per_sec: f64,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) retries: u64,
    pub(crate) peak_rss_kib: u64,
}

/// About 600 characters of prompt, different for every span.
pub(crate) fn prompt(i: u64) -> String {
    let mut s = format!("Request {i}: ");
    while s.len() < 600 {
        s.push_str("summarise the customer's last three orders and suggest a follow-up; ");
    }
    s.truncate(600);
    s
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn text(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// The ten attributes of span `i`.
fn attributes(i: u64) -> Vec<KeyValue> {
    vec![
        kv("gen_ai.operation.name", text("chat")),
        kv("gen_ai.provider.name", text("openai")),
        kv("gen_ai.request.model", text("gpt-4o-mini")),
        kv("gen_ai.response.model", text("gpt-4o-mini-2024-07-18")),
        kv(
            "gen_ai.usage.input_tokens",
            any_value::Value::IntValue(150 + (i % 50) as i64),
        ),
        kv("gen_ai.usage.output_tokens", any_value::Value::IntValue(40)),
        kv("gen_ai.input.messages", text(input_messages(i))),
        kv("gen_ai.output.messages", text(OUTPUT)),
        kv("user.id", text(format!("u-{}", i % 100))),
        kv("session.id", text(format!("s-{}", i / 20))),
    ]
}

const OUTPUT: &str =
    r#"[{"role":"assistant","parts":[{"type":"text","content":"Here is the summary."}]}]"#;

fn input_messages(i: u64) -> String {
    serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": prompt(i)}]}])
        .to_string()
}

/// The requests: `requests` batches of [`BATCH`] spans, each span its own, ten spans
/// to a trace.
pub(crate) fn requests(requests: usize) -> Vec<Vec<u8>> {
    let now = logbook_proto::Timestamp::now().as_nanos() as u64;
    (0..requests)
        .map(|b| {
            let spans = (0..BATCH)
                .map(|j| {
                    let i = (b * BATCH + j) as u64;
                    let mut trace = [0u8; 16];
                    trace[..8].copy_from_slice(&(i / 10 + 1).to_be_bytes());
                    trace[8..].copy_from_slice(&0x0b5e_11c0_u64.to_be_bytes());
                    Span {
                        trace_id: trace.to_vec(),
                        span_id: (i + 1).to_be_bytes().to_vec(),
                        name: "chat gpt-4o-mini".into(),
                        kind: 3,
                        start_time_unix_nano: now + i * 1_000,
                        end_time_unix_nano: now + i * 1_000 + 800_000_000,
                        attributes: attributes(i),
                        ..Default::default()
                    }
                })
                .collect();
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", text("bench-agent"))],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "bench".into(),
                            ..Default::default()
                        }),
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        })
        .collect()
}

/// Sends every request from [`SENDERS`] threads, each over its own kept-alive
/// connection, retrying 503s (as exporters do); returns the seconds until the last
/// answer, the latency of each request, and the retries.
fn send_all(
    addr: SocketAddr,
    path: &str,
    bodies: &[Vec<u8>],
) -> anyhow::Result<(f64, Vec<f64>, u64)> {
    let start = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SENDERS)
            .map(|k| {
                s.spawn(move || -> anyhow::Result<(Vec<f64>, u64)> {
                    let mut client = Client::connect(addr)?;
                    let (mut latencies, mut retries) = (Vec::new(), 0u64);
                    for body in bodies.iter().skip(k).step_by(SENDERS) {
                        let began = Instant::now();
                        loop {
                            let (status, answer) = client.request(
                                "POST",
                                path,
                                &[("Content-Type", "application/x-protobuf")],
                                body,
                            )?;
                            match status {
                                200 => break,
                                503 | 429 => {
                                    retries += 1;
                                    std::thread::sleep(Duration::from_millis(20));
                                }
                                s => bail!("status {s}: {}", String::from_utf8_lossy(&answer)),
                            }
                        }
                        latencies.push(began.elapsed().as_secs_f64() * 1e3);
                    }
                    Ok((latencies, retries))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a sender panicked"))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut retries = 0;
    for (l, r) in results {
        latencies.extend(l);
        retries += r;
    }
    latencies.sort_by(f64::total_cmp);
    Ok((seconds, latencies, retries))
}

/// OTLP/HTTP into a fresh collector.
pub(crate) fn otlp_side(dir: &Path, bodies: &[Vec<u8>]) -> anyhow::Result<Side> {
    let db = dir.join("logbook.db");
    let (child, addr) = serve_http(dir, &db)?;
    let (seconds, latencies, retries) = send_all(addr, "/v1/traces", bodies)?;
    let rss = peak_rss_kib(&child.id().to_string());
    stop(child)?;
    let stats = open_reader(&StoreAddress::sqlite(&db))?.stats()?;
    let spans = stats.by_kind[2];
    let sent = (bodies.len() * BATCH) as u64;
    if spans != sent {
        bail!("OTLP: {sent} spans acknowledged, {spans} stored");
    }
    Ok(Side {
        label: "OTLP/HTTP protobuf".into(),
        spans,
        seconds,
        spans_per_sec: spans as f64 / seconds,
        p50_ms: Some(percentile(&latencies, 50.0)),
        p99_ms: Some(percentile(&latencies, 99.0)),
        retries,
        peak_rss_kib: rss,
    })
}

/// What the span-emitting child reports.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct SpanReport {
    pub(crate) spans: u64,
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) seconds: f64,
}

/// The socket side's application: `spans` LLM-like spans with the same ten fields,
/// from [`SENDERS`] threads, through the layer; waits until they are acknowledged.
pub(crate) fn span_child(socket: &Path, spans: u64) -> anyhow::Result<()> {
    let layer = logbook_layer::builder()
        .with_socket(socket)
        .with_service("bench-agent")
        .try_build()?;
    let handle = layer.handle();
    tracing_subscriber::registry().with(layer).init();
    let start = Instant::now();
    std::thread::scope(|s| {
        for k in 0..SENDERS as u64 {
            s.spawn(move || {
                let mut i = k;
                while i < spans {
                    let messages = input_messages(i);
                    let span = tracing::info_span!(
                        "chat gpt-4o-mini",
                        gen_ai.operation.name = "chat",
                        gen_ai.provider.name = "openai",
                        gen_ai.request.model = "gpt-4o-mini",
                        gen_ai.response.model = "gpt-4o-mini-2024-07-18",
                        gen_ai.usage.input_tokens = 150 + i % 50,
                        gen_ai.usage.output_tokens = 40u64,
                        gen_ai.input.messages = messages.as_str(),
                        gen_ai.output.messages = OUTPUT,
                        user.id = format!("u-{}", i % 100).as_str(),
                        session.id = format!("s-{}", i / 20).as_str(),
                    );
                    drop(span.entered());
                    i += SENDERS as u64;
                }
            });
        }
    });
    let flush = handle.flush(Duration::from_secs(300));
    let report = SpanReport {
        spans,
        delivered: flush.delivered,
        dropped: flush.dropped,
        seconds: start.elapsed().as_secs_f64(),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// The same spans through the layer over the Unix socket.
pub(crate) fn socket_side(dir: &Path, spans: u64) -> anyhow::Result<Side> {
    let collector = crate::CollectorProcess::start(dir, &[])?;
    let out = Command::new(std::env::current_exe()?)
        .args(["span-child", "--socket"])
        .arg(&collector.socket)
        .args(["--spans", &spans.to_string()])
        .output()
        .context("running the span child")?;
    if !out.status.success() {
        bail!("span child: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: SpanReport = serde_json::from_slice(out.stdout.trim_ascii())?;
    let rss = peak_rss_kib(&collector.pid().to_string());
    let db = collector.db.clone();
    drop(collector);
    let stats = open_reader(&StoreAddress::sqlite(&db))?.stats()?;
    let stored = stats.by_kind[2];
    Ok(Side {
        label: format!(
            "layer → Unix socket ({} span records of {} dropped by the layer)",
            report.dropped / 2,
            report.spans
        ),
        spans: stored,
        seconds: report.seconds,
        spans_per_sec: stored as f64 / report.seconds,
        p50_ms: None,
        p99_ms: None,
        retries: 0,
        peak_rss_kib: rss,
    })
}

/// Arize Phoenix, if installed under `target/phoenix`: the identical requests, then
/// its spans counted through its REST API until all are there.
pub(crate) fn phoenix_side(dir: &Path, bodies: &[Vec<u8>], venv: &Path) -> anyhow::Result<Side> {
    let exe = venv.join("bin/phoenix");
    if !exe.exists() {
        bail!(
            "--peer phoenix: no {} (python3 -m venv target/phoenix && target/phoenix/bin/pip install arize-phoenix)",
            exe.display()
        );
    }
    let port = free_port()?;
    let grpc = free_port()?;
    std::fs::create_dir_all(dir)?;
    let mut child = Command::new(&exe)
        .arg("serve")
        .env("PHOENIX_PORT", port.to_string())
        .env("PHOENIX_GRPC_PORT", grpc.to_string())
        .env("PHOENIX_WORKING_DIR", dir)
        .env("PHOENIX_TELEMETRY_ENABLED", "false")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("phoenix.log"))?)
        .spawn()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Client::connect(addr)
        .and_then(|mut c| c.request("GET", "/healthz", &[], b""))
        .map_or(true, |(s, _)| s != 200)
    {
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!(
                "Phoenix did not start (see {})",
                dir.join("phoenix.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    let (sent_secs, latencies, retries) = send_all(addr, "/v1/traces", bodies)?;
    // Phoenix answers before it stores: count until every span is there.
    let want = (bodies.len() * BATCH) as u64;
    let deadline = Instant::now() + Duration::from_secs(3600);
    let stored = loop {
        let asked = Instant::now();
        // A new connection each time: Phoenix closes idle ones within seconds.
        let n = phoenix_count(&mut Client::connect(addr)?)?;
        eprintln!(
            "phoenix: {n} of {want} spans stored at {:.1}s (counting took {:.2}s)",
            start.elapsed().as_secs_f64(),
            asked.elapsed().as_secs_f64()
        );
        if n >= want || Instant::now() > deadline {
            break n;
        }
        // Counting costs Phoenix time too (paging through 50,000 spans takes it
        // tens of seconds): not too often.
        std::thread::sleep(Duration::from_secs(15));
    };
    let seconds = start.elapsed().as_secs_f64().max(sent_secs);
    let rss = peak_rss_kib(&child.id().to_string());
    let _ = child.kill();
    let _ = child.wait();
    Ok(Side {
        label: "Arize Phoenix (OTLP/HTTP protobuf, spans counted by its REST API)".into(),
        spans: stored,
        seconds,
        spans_per_sec: stored as f64 / seconds,
        p50_ms: Some(percentile(&latencies, 50.0)),
        p99_ms: Some(percentile(&latencies, 99.0)),
        retries,
        peak_rss_kib: rss,
    })
}

/// Spans Phoenix has stored in its default project, paged through its REST API.
fn phoenix_count(client: &mut Client) -> anyhow::Result<u64> {
    let mut n = 0u64;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/projects/default/spans?limit=1000&cursor={c}"),
            None => "/v1/projects/default/spans?limit=1000".to_owned(),
        };
        let (status, body) = client.request("GET", &path, &[], b"")?;
        if status == 404 {
            return Ok(n);
        }
        if status != 200 {
            bail!("Phoenix spans: {status} {}", String::from_utf8_lossy(&body));
        }
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        n += v["data"].as_array().map_or(0, Vec::len) as u64;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return Ok(n),
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The table.
pub(crate) fn markdown(sides: &[Side]) -> String {
    let socket = sides
        .iter()
        .find(|s| s.label.starts_with("layer"))
        .map(|s| s.spans_per_sec);
    let otlp = sides
        .iter()
        .find(|s| s.label.starts_with("OTLP"))
        .map(|s| s.spans_per_sec);
    let mut out = format!(
        "LLM-like spans (10 attributes, a ~600-character prompt), batches of {BATCH}, {SENDERS} senders:\n\n\
         | path | spans stored | seconds | spans/s | share of socket path | logbook OTLP ÷ this | request p50 ms | p99 ms | 503 retries | receiver peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|\n"
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for s in sides {
        out.push_str(&format!(
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {:.1} |\n",
            s.label,
            s.spans,
            s.seconds,
            s.spans_per_sec,
            socket.map_or_else(|| "-".into(), |b| format!("{:.2}", s.spans_per_sec / b)),
            otlp.map_or_else(|| "-".into(), |o| format!("{:.1}", o / s.spans_per_sec)),
            ms(s.p50_ms),
            ms(s.p99_ms),
            s.retries,
            s.peak_rss_kib as f64 / 1024.0,
        ));
    }
    out
}
