//! The records the throughput benchmarks use: what an instrumented service emits, the
//! same shape for the application, the ingest ceiling and the query data.

use std::sync::Arc;

use logbook_proto::{
    InstanceId, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, Timestamp, TraceId, Value,
};
use tracing::{info, info_span};

/// Emits `n` events shaped like the records of [`record`], inside a run span.
pub(crate) fn emit_events(span: &tracing::Span, from: u64, n: u64) {
    let _e = span.enter();
    for i in from..from + n {
        info!(
            n = i,
            status = "ok",
            latency_ms = 12.5,
            model = "gpt-4o-mini",
            "request handled"
        );
    }
}

/// What the monitor works on, at the rate the emitter can make it: per ten records,
/// a database query's span (its start and end), seven log lines, and every hundredth
/// record an error with its cause. Returns the records emitted.
pub(crate) fn emit_mixed(span: &tracing::Span, from: u64, n: u64) -> u64 {
    let _e = span.enter();
    let mut emitted = 0;
    for i in from..from + n {
        if i % 10 == 0 {
            let q = tracing::info_span!("db.query", db.system = "postgresql", rows = i % 7);
            q.in_scope(|| {});
            emitted += 2;
        } else if i % 100 == 1 {
            let e = std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("read timed out after {} ms", i % 1000),
            );
            tracing::error!(error = &e as &dyn std::error::Error, "fetch failed");
            emitted += 1;
        } else {
            info!(n = i, status = "ok", latency_ms = 12.5, "request handled");
            emitted += 1;
        }
    }
    emitted
}

/// The span the emitter logs in.
pub(crate) fn run_span(run: &str) -> tracing::Span {
    info_span!("bench.run", run_id = run, tenant = "acme", user_id = "u-42")
}

/// One record as the collector would store it for an event of [`emit_events`].
pub(crate) fn record(
    instance: InstanceId,
    i: u64,
    ts: Timestamp,
    scope: &Arc<Scope>,
    resource: &Arc<Resource>,
) -> Record {
    let mut r = Record::new(
        RecordId::new(instance, i + 1),
        ts,
        Kind::Event,
        Level::Info,
        "event bench/src/records.rs:13",
    );
    r.target = "logbook_bench::records".into();
    r.message = Some("request handled".into());
    r.trace_id = TraceId::from_random(0x5eed, i / 100);
    r.span_id = Some(logbook_proto::SpanId::from_random(i / 100));
    r.scope = Arc::clone(scope);
    r.resource = Arc::clone(resource);
    r.file = Some("bench/src/records.rs".into());
    r.line = Some(13);
    r.category = Some("log".into());
    r.fields.set("n", Value::U64(i));
    r.fields.set("status", Value::Str("ok".into()));
    r.fields.set("latency_ms", Value::F64(12.5));
    r.fields.set("model", Value::Str("gpt-4o-mini".into()));
    r
}

/// The scope of [`run_span`].
pub(crate) fn run_scope(run: &str) -> Arc<Scope> {
    Arc::new(
        Scope::new()
            .with(ScopeKey::RunId, run)
            .with(ScopeKey::Tenant, "acme")
            .with(ScopeKey::UserId, "u-42"),
    )
}

/// The emitter's resource.
pub(crate) fn resource() -> Arc<Resource> {
    Arc::new(Resource {
        service: "bench-emit".into(),
        host: "bench".into(),
        pid: std::process::id(),
    })
}
