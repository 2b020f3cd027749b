//! Stored records as OTLP: the reverse of `crate::ingest::otlp`, so that what one
//! logbook forwards another stores as the same records.
//!
//! - A `span_end` record becomes one span: its start is its end less its duration;
//!   parent, status (and its message), kind (`otel.kind`) and links (`otel.links`)
//!   come back from where ingest put them; its fields and scope become attributes
//!   (scope fields under the names ingest reads them from), with the record's id as
//!   `logbook.id` and its source location as `code.file.path`/`code.line.number`.
//! - An `event` record becomes a log record with its trace context (trace and span
//!   ids), its level as the severity, its name as the event name and its message as the
//!   body: a span's events travel as log records of the span, which is how OpenTelemetry
//!   joins them, rather than also inside the span (a receiver would store them twice).
//! - A `span_start` record sends nothing: its span's start time carries it.
//! - The resource is the emitter: `service.name`, `host.name`, `process.pid`; the
//!   target is the instrumentation scope.

use std::collections::BTreeMap;

use logbook_proto::{Kind, Level, Record, ScopeKey, Status, Value};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status as OtlpStatus,
};

use crate::ingest::otlp::SCOPE_ATTRIBUTES;

/// The attribute carrying a record's logbook id.
pub const ID_ATTRIBUTE: &str = "logbook.id";

/// What a page of records becomes: spans and log records, either possibly empty.
#[derive(Debug, Default)]
pub struct Export {
    /// The spans, grouped by resource and scope.
    pub traces: ExportTraceServiceRequest,
    /// The log records, grouped by resource and scope.
    pub logs: ExportLogsServiceRequest,
    /// Spans in `traces`.
    pub spans: usize,
    /// Log records in `logs`.
    pub log_records: usize,
}

/// The emitter and the target: what groups records into resources and scopes.
type Group = ((String, String, u32), String);

/// `records` as OTLP requests.
pub fn export(records: &[Record]) -> Export {
    let mut spans: BTreeMap<Group, Vec<Span>> = BTreeMap::new();
    let mut logs: BTreeMap<Group, Vec<LogRecord>> = BTreeMap::new();
    let mut out = Export::default();
    for r in records {
        let group = (
            (
                r.resource.service.clone(),
                r.resource.host.clone(),
                r.resource.pid,
            ),
            r.target.to_string(),
        );
        match r.kind {
            Kind::SpanEnd => {
                spans.entry(group).or_default().push(span_of(r));
                out.spans += 1;
            }
            Kind::Event => {
                logs.entry(group).or_default().push(log_of(r));
                out.log_records += 1;
            }
            Kind::SpanStart => {}
        }
    }
    for ((resource, scope), spans) in group_by_resource(spans) {
        out.traces.resource_spans.push(ResourceSpans {
            resource: Some(resource_of(&resource)),
            scope_spans: scope
                .into_iter()
                .zip(spans)
                .map(|(name, spans)| ScopeSpans {
                    scope: Some(scope_of(name)),
                    spans,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        });
    }
    for ((resource, scope), logs) in group_by_resource(logs) {
        out.logs.resource_logs.push(ResourceLogs {
            resource: Some(resource_of(&resource)),
            scope_logs: scope
                .into_iter()
                .zip(logs)
                .map(|(name, log_records)| ScopeLogs {
                    scope: Some(scope_of(name)),
                    log_records,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        });
    }
    out
}

/// Per resource, its scopes' names and their items, in order.
#[allow(clippy::type_complexity)]
fn group_by_resource<T>(
    groups: BTreeMap<Group, Vec<T>>,
) -> Vec<(((String, String, u32), Vec<String>), Vec<Vec<T>>)> {
    let mut out: Vec<(((String, String, u32), Vec<String>), Vec<Vec<T>>)> = Vec::new();
    for ((resource, scope), items) in groups {
        match out.last_mut() {
            Some(((r, scopes), lists)) if *r == resource => {
                scopes.push(scope);
                lists.push(items);
            }
            _ => out.push(((resource, vec![scope]), vec![items])),
        }
    }
    out
}

fn resource_of((service, host, pid): &(String, String, u32)) -> Resource {
    let mut attributes = vec![kv("service.name", string(service))];
    if !host.is_empty() {
        attributes.push(kv("host.name", string(host)));
    }
    if *pid != 0 {
        attributes.push(kv(
            "process.pid",
            any_value::Value::IntValue(i64::from(*pid)),
        ));
    }
    Resource {
        attributes,
        ..Resource::default()
    }
}

fn scope_of(name: String) -> InstrumentationScope {
    InstrumentationScope {
        name,
        ..InstrumentationScope::default()
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

/// The attribute a scope field is sent as: the first name ingest reads it from.
fn scope_attribute(key: ScopeKey) -> &'static str {
    SCOPE_ATTRIBUTES
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, names)| names.first().copied())
        .unwrap_or_else(|| key.as_str())
}

/// A record's fields (but `skip`), scope, source location and id, as attributes.
fn attributes(r: &Record, skip: &[&str]) -> Vec<KeyValue> {
    let mut out = Vec::with_capacity(r.fields.len() + 4);
    for (k, v) in r.fields.iter() {
        if !skip.contains(&k) {
            out.push(KeyValue {
                key: k.to_owned(),
                value: Some(any_of(v)),
                ..KeyValue::default()
            });
        }
    }
    for (key, value) in r.scope.iter() {
        out.push(kv(scope_attribute(key), string(value)));
    }
    if let Some(file) = &r.file {
        out.push(kv("code.file.path", string(file)));
    }
    if let Some(line) = r.line {
        out.push(kv(
            "code.line.number",
            any_value::Value::IntValue(i64::from(line)),
        ));
    }
    out.push(kv(ID_ATTRIBUTE, string(&r.id.to_string())));
    out
}

/// A field value as an attribute value: scalars typed, JSON as arrays and maps.
fn any_of(v: &Value) -> AnyValue {
    let value = match v {
        Value::Str(s) => string(s),
        Value::I64(n) => any_value::Value::IntValue(*n),
        Value::U64(n) => match i64::try_from(*n) {
            Ok(n) => any_value::Value::IntValue(n),
            Err(_) => string(&n.to_string()),
        },
        Value::F64(f) => any_value::Value::DoubleValue(*f),
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::Json(j) => return any_of_json(&j.to_value()),
    };
    AnyValue { value: Some(value) }
}

fn any_of_json(v: &serde_json::Value) -> AnyValue {
    use serde_json::Value as J;
    let value = match v {
        J::Null => None,
        J::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        J::Number(n) => Some(match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => any_value::Value::IntValue(i),
            (None, Some(f)) => any_value::Value::DoubleValue(f),
            (None, None) => string(&n.to_string()),
        }),
        J::String(s) => Some(string(s)),
        J::Array(items) => Some(any_value::Value::ArrayValue(ArrayValue {
            values: items.iter().map(any_of_json).collect(),
        })),
        J::Object(map) => Some(any_value::Value::KvlistValue(KeyValueList {
            values: map
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(any_of_json(v)),
                    ..KeyValue::default()
                })
                .collect(),
        })),
    };
    AnyValue { value }
}

fn span_kind(r: &Record) -> span::SpanKind {
    match r.fields.get("otel.kind").and_then(Value::as_str) {
        Some("server") => span::SpanKind::Server,
        Some("client") => span::SpanKind::Client,
        Some("producer") => span::SpanKind::Producer,
        Some("consumer") => span::SpanKind::Consumer,
        _ => span::SpanKind::Internal,
    }
}

fn links(r: &Record) -> Vec<span::Link> {
    let Some(Value::Json(j)) = r.fields.get("otel.links") else {
        return Vec::new();
    };
    let serde_json::Value::Array(links) = j.to_value() else {
        return Vec::new();
    };
    links
        .iter()
        .filter_map(|l| {
            let hex = |k: &str| l.get(k).and_then(|v| v.as_str()).and_then(from_hex);
            let attributes = match l.get("attributes") {
                Some(serde_json::Value::Object(m)) => m
                    .iter()
                    .map(|(k, v)| KeyValue {
                        key: k.clone(),
                        value: Some(any_of_json(v)),
                        ..KeyValue::default()
                    })
                    .collect(),
                _ => Vec::new(),
            };
            Some(span::Link {
                trace_id: hex("trace_id")?,
                span_id: hex("span_id")?,
                attributes,
                ..span::Link::default()
            })
        })
        .collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn nanos(ts: i64) -> u64 {
    u64::try_from(ts).unwrap_or(0)
}

fn span_of(r: &Record) -> Span {
    let end = nanos(r.ts.as_nanos());
    let start = end.saturating_sub(r.duration_ns.unwrap_or(0));
    let code = match r.status {
        Some(Status::Error) => StatusCode::Error,
        Some(Status::Ok) => StatusCode::Ok,
        None => StatusCode::Unset,
    };
    Span {
        trace_id: r.trace_id.0.to_vec(),
        span_id: r.span_id.map(|s| s.0.to_vec()).unwrap_or_default(),
        parent_span_id: r.parent_span_id.map(|s| s.0.to_vec()).unwrap_or_default(),
        name: r.name.to_string(),
        kind: span_kind(r) as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attributes(r, &["otel.kind", "otel.links"]),
        links: links(r),
        status: Some(OtlpStatus {
            message: if code == StatusCode::Error {
                r.message.clone().unwrap_or_default()
            } else {
                String::new()
            },
            code: code as i32,
        }),
        ..Span::default()
    }
}

/// The OTLP severity number of a level (the first of its range).
fn severity(level: Level) -> i32 {
    match level {
        Level::Trace => 1,
        Level::Debug => 5,
        Level::Info => 9,
        Level::Warn => 13,
        Level::Error => 17,
    }
}

fn log_of(r: &Record) -> LogRecord {
    let ts = nanos(r.ts.as_nanos());
    LogRecord {
        time_unix_nano: ts,
        observed_time_unix_nano: ts,
        severity_number: severity(r.level),
        severity_text: r.level.as_str().to_owned(),
        body: r.message.as_deref().map(|m| AnyValue {
            value: Some(string(m)),
        }),
        attributes: attributes(r, &["otel.severity_text"]),
        trace_id: r.trace_id.0.to_vec(),
        span_id: r.span_id.map(|s| s.0.to_vec()).unwrap_or_default(),
        event_name: r.name.to_string(),
        ..LogRecord::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use logbook_proto::{InstanceId, Json, RecordId, Scope, SpanId, Timestamp, TraceId};

    use super::*;
    use crate::ingest::otlp;

    fn record(kind: Kind, i: u64) -> Record {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(3), i),
            Timestamp(1_795_291_200_000_000_000 + i as i64 * 1000),
            kind,
            Level::Warn,
            "work",
        );
        r.trace_id = TraceId::from_random(5, 6);
        r.span_id = Some(SpanId::from_random(7));
        r.parent_span_id = Some(SpanId::from_random(8));
        r.scope = Arc::new(
            Scope::new()
                .with(ScopeKey::RunId, "run-1")
                .with(ScopeKey::Tenant, "acme")
                .with(ScopeKey::UserId, "u-9"),
        );
        r.fields.set("n", Value::I64(42));
        r.fields.set("big", Value::U64(u64::MAX));
        r.fields.set("ok", Value::Bool(true));
        r.fields.set(
            "doc",
            Value::Json(Json::parse(r#"{"a":[1,2.5,"x"]}"#).unwrap()),
        );
        r.message = Some("hello".into());
        r
    }

    #[test]
    fn what_ingest_reads_back_is_the_same_record() {
        let mut end = record(Kind::SpanEnd, 1);
        end.duration_ns = Some(5_000);
        end.status = Some(Status::Error);
        end.level = Level::Error;
        end.fields.set("otel.kind", Value::Str("client".into()));
        let event = record(Kind::Event, 2);
        let start = record(Kind::SpanStart, 3);
        let e = export(&[start, end.clone(), event.clone()]);
        assert_eq!((e.spans, e.log_records), (1, 1));

        let spans = otlp::traces(e.traces);
        let back = &spans.batches[0].records;
        assert_eq!(back.len(), 1);
        let s = &back[0];
        assert_eq!(
            (
                s.kind,
                s.ts,
                s.duration_ns,
                s.status,
                s.trace_id,
                s.span_id,
                s.parent_span_id
            ),
            (
                Kind::SpanEnd,
                end.ts,
                end.duration_ns,
                end.status,
                end.trace_id,
                end.span_id,
                end.parent_span_id
            )
        );
        assert_eq!(s.scope.get(ScopeKey::RunId), Some("run-1"));
        assert_eq!(s.scope.get(ScopeKey::UserId), Some("u-9"));
        assert_eq!(s.fields.get("n"), Some(&Value::I64(42)));
        assert_eq!(
            s.fields.get("otel.kind"),
            Some(&Value::Str("client".into()))
        );
        assert_eq!(
            s.fields.get(ID_ATTRIBUTE),
            Some(&Value::Str(end.id.to_string()))
        );
        assert_eq!(s.resource.service, end.resource.service);
        assert_eq!(s.message.as_deref(), Some("hello"));

        let logs = otlp::logs(e.logs);
        let l = &logs.batches[0].records[0];
        assert_eq!(
            (l.kind, l.ts, l.level, l.trace_id, l.span_id),
            (
                Kind::Event,
                event.ts,
                Level::Warn,
                event.trace_id,
                event.span_id
            )
        );
        assert_eq!(l.name.as_ref(), "work");
        assert_eq!(l.message.as_deref(), Some("hello"));
        assert_eq!(l.scope.get(ScopeKey::Tenant), Some("acme"));
        assert_eq!(l.fields.get("ok"), Some(&Value::Bool(true)));
        let doc = l.fields.get("doc").map(ToString::to_string);
        assert_eq!(doc.as_deref(), Some(r#"{"a":[1,2.5,"x"]}"#));
    }
}
