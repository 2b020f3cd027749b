//! OTLP traces and logs as records: what an OTLP transport (HTTP today,
//! `crate::http::otlp`) decodes is mapped here, one batch per resource, and handed to
//! admission like any other client's.
//!
//! - A span becomes one `span_end` record (its end time, duration, status, kind and
//!   links), each of its events an `event` record inside it; a log record becomes an
//!   `event` record with its trace context, its severity as the level.
//! - The resource names the client: `service.name`, `host.name`, `process.pid`; its
//!   other attributes (but the SDK's own `telemetry.sdk.*`) are fields of every record,
//!   under the span's or log record's own attributes of the same name.
//! - Attributes named for a scope field ([`SCOPE_ATTRIBUTES`]: `user.id`, `session.id`,
//!   `deployment.environment.name`, …) fill the record's scope instead of its fields;
//!   a trace without a run id is a run of its own, keyed by the trace (see the store's
//!   runs).
//! - A record's id derives from what identifies it, so a retried request is stored
//!   once: a span's from its trace and span ids, an event's from its span's and its
//!   place, a log record's from its content.

use std::collections::HashMap;
use std::sync::Arc;

use logbook_proto::genai;
use logbook_proto::{
    InstanceId, Json, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status,
    Str, Timestamp, TraceId, Value,
};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::{span, status::StatusCode, Span};
use prost::Message as _;
use sha2::{Digest, Sha256};

use crate::audit::to_hex;
use crate::pipeline::CATEGORY_RUN;

/// The attribute names each scope field is read from, first found wins (the span's or
/// log record's attributes before the resource's).
pub const SCOPE_ATTRIBUTES: &[(ScopeKey, &[&str])] = &[
    (ScopeKey::RunId, &["logbook.run_id", "run_id", "run.id"]),
    (ScopeKey::StepId, &["logbook.step_id", "step_id", "step.id"]),
    (ScopeKey::Tenant, &["tenant", "tenant.id", "tenant_id"]),
    (
        ScopeKey::Env,
        &[
            "deployment.environment.name",
            "deployment.environment",
            "env",
        ],
    ),
    (ScopeKey::Project, &["project", "project.name"]),
    (ScopeKey::App, &["app", "app.name"]),
    (ScopeKey::Surface, &["surface"]),
    (ScopeKey::UserId, &["user.id", "enduser.id", "user_id"]),
    (
        ScopeKey::SessionId,
        &["session.id", "gen_ai.conversation.id", "session_id"],
    ),
    (
        ScopeKey::RequestId,
        &["http.request.id", "request.id", "request_id"],
    ),
];

/// The service of a resource that names none, as OpenTelemetry's SDKs call it.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// One resource's records, ready for admission.
#[derive(Debug)]
pub struct ResourceBatch {
    /// Who sent them, as the resource says.
    pub resource: Resource,
    /// The emitting instance, derived from the resource.
    pub instance: InstanceId,
    /// The records.
    pub records: Vec<Record>,
}

/// What a request held: its batches, and the items that could not be mapped (a span
/// without valid ids), each with why.
#[derive(Debug, Default)]
pub struct Mapped {
    /// One batch per resource.
    pub batches: Vec<ResourceBatch>,
    /// Spans or log records left out, and why (the first few reasons).
    pub invalid: u64,
    /// Why the first of them was left out.
    pub first_invalid: Option<String>,
}

impl Mapped {
    fn invalid(&mut self, why: String) {
        self.invalid += 1;
        self.first_invalid.get_or_insert(why);
    }
}

/// The records of an OTLP traces request.
pub fn traces(request: ExportTraceServiceRequest) -> Mapped {
    let mut out = Mapped::default();
    for rs in request.resource_spans {
        let base = ResourceParts::of(rs.resource.as_ref());
        let mut records = Vec::new();
        for ss in rs.scope_spans {
            let target = scope_target(ss.scope.as_ref());
            for s in ss.spans {
                match span_records(&s, &target, &base) {
                    Ok(mut r) => records.append(&mut r),
                    Err(why) => out.invalid(why),
                }
            }
        }
        out.batches.push(base.batch(records));
    }
    inherit_scopes(&mut out.batches);
    out
}

/// Fills each span's scope fields it does not set from its nearest ancestor that does
/// (as the layer does in the process), for the spans of a request (a batch processor
/// exports a trace's spans together, children first): a tool call under an agent run
/// span carrying `user.id` belongs to that user. Its events share its scope.
fn inherit_scopes(batches: &mut [ResourceBatch]) {
    let spans: Spans = batches
        .iter()
        .flat_map(|b| &b.records)
        .filter(|r| r.kind == Kind::SpanEnd)
        .filter_map(|r| {
            let parent = r.parent_span_id.map(|p| (r.trace_id, p));
            Some(((r.trace_id, r.span_id?), (parent, Arc::clone(&r.scope))))
        })
        .collect();
    let mut resolved: HashMap<SpanKey, Arc<Scope>> = HashMap::with_capacity(spans.len());
    for &id in spans.keys() {
        resolve_scope(id, &spans, &mut resolved);
    }
    for r in batches.iter_mut().flat_map(|b| &mut b.records) {
        let Some(key) = r.span_id.map(|id| (r.trace_id, id)) else {
            continue;
        };
        // A span whose own attributes set a run id starts that run, as a layer span
        // does, when it has no parent or its parent (in this request) has another
        // run; a span whose parent was exported apart is not judged (the baggage
        // processors copy the run id onto every span). LLM and tool calls stay calls.
        if r.kind == Kind::SpanEnd && r.category.is_none() {
            if let (Some((parent, _)), Some(run)) = (spans.get(&key), r.scope.get(ScopeKey::RunId))
            {
                let starts = match parent {
                    None => true,
                    Some(p) => resolved
                        .get(p)
                        .is_some_and(|s| s.get(ScopeKey::RunId) != Some(run)),
                };
                let call = matches!(
                    crate::pipeline::derive_category(r),
                    crate::pipeline::CATEGORY_LLM_CALL | crate::pipeline::CATEGORY_TOOL_CALL
                );
                if starts && !call {
                    r.category = Some(Str::Borrowed(CATEGORY_RUN));
                }
            }
        }
        if let Some(scope) = resolved.get(&key) {
            r.scope = Arc::clone(scope);
        }
    }
}

/// A span, by its trace (span ids are unique only within one).
type SpanKey = (TraceId, SpanId);
/// The spans of a request: each one's parent and own scope.
type Spans = HashMap<SpanKey, (Option<SpanKey>, Arc<Scope>)>;

/// The scope of span `id` with what its ancestors set (memoised in `resolved`; a
/// cycle or a chain deeper than 256 stops the walk).
fn resolve_scope(id: SpanKey, spans: &Spans, resolved: &mut HashMap<SpanKey, Arc<Scope>>) {
    // The chain up to the first span already resolved, or the root.
    let mut chain = Vec::new();
    let mut next = Some(id);
    while let Some(s) = next {
        if resolved.contains_key(&s) || chain.contains(&s) || chain.len() > 256 {
            break;
        }
        let Some((parent, _)) = spans.get(&s) else {
            break;
        };
        chain.push(s);
        next = *parent;
    }
    let mut above: Option<Arc<Scope>> = next.and_then(|s| resolved.get(&s).cloned());
    for s in chain.into_iter().rev() {
        let own = &spans[&s].1;
        let scope = match &above {
            Some(up)
                if ScopeKey::ALL
                    .iter()
                    .any(|k| own.get(*k).is_none() && up.get(*k).is_some()) =>
            {
                let mut merged = Scope::clone(own);
                for k in ScopeKey::ALL {
                    if merged.get(*k).is_none() {
                        merged.set(*k, up.get(*k).map(str::to_owned));
                    }
                }
                Arc::new(merged)
            }
            _ => Arc::clone(own),
        };
        resolved.insert(s, Arc::clone(&scope));
        above = Some(scope);
    }
}

/// The records of an OTLP logs request.
pub fn logs(request: ExportLogsServiceRequest) -> Mapped {
    let mut out = Mapped::default();
    for rl in request.resource_logs {
        let base = ResourceParts::of(rl.resource.as_ref());
        let mut records = Vec::new();
        for sl in rl.scope_logs {
            let target = scope_target(sl.scope.as_ref());
            for l in sl.log_records {
                match log_record(&l, &target, &base) {
                    Ok(r) => records.push(r),
                    Err(why) => out.invalid(why),
                }
            }
        }
        out.batches.push(base.batch(records));
    }
    out
}

/// What a resource gives each of its records.
struct ResourceParts {
    resource: Arc<Resource>,
    instance: InstanceId,
    /// Its attributes, but those naming the client and the SDK.
    attributes: Vec<(String, Value)>,
}

impl ResourceParts {
    fn of(resource: Option<&OtlpResource>) -> Self {
        let mut service = None;
        let mut host = String::new();
        let mut pid = 0u32;
        let mut attributes = Vec::new();
        let mut identity = Sha256::new();
        identity.update(b"logbook otlp instance\0");
        for kv in resource.map_or(&[][..], |r| &r.attributes[..]) {
            let value = kv
                .value
                .as_ref()
                .map_or(Value::Str(String::new()), value_of);
            match (kv.key.as_str(), &value) {
                ("service.name", Value::Str(s)) => service = Some(s.clone()),
                ("host.name", Value::Str(s)) => host.clone_from(s),
                ("process.pid", Value::I64(p)) => pid = u32::try_from(*p).unwrap_or(0),
                // The SDK's own, and the instance's id (it names the instance).
                (k, _) if k.starts_with("telemetry.sdk.") || k == "service.instance.id" => {}
                (k, v) => attributes.push((k.to_owned(), v.clone())),
            }
            if kv.key == "service.instance.id" || kv.key == "service.name" {
                identity.update(kv.key.as_bytes());
                identity.update([0]);
                identity.update(
                    kv.value
                        .as_ref()
                        .map(|v| v.encode_to_vec())
                        .unwrap_or_default(),
                );
            }
        }
        identity.update(host.as_bytes());
        identity.update(pid.to_be_bytes());
        let digest = identity.finalize();
        let mut instance = [0u8; 8];
        instance.copy_from_slice(&digest[..8]);
        Self {
            resource: Arc::new(Resource {
                service: service.unwrap_or_else(|| UNKNOWN_SERVICE.to_owned()),
                host,
                pid,
            }),
            instance: InstanceId(instance),
            attributes,
        }
    }

    fn batch(&self, records: Vec<Record>) -> ResourceBatch {
        ResourceBatch {
            resource: Resource::clone(&self.resource),
            instance: self.instance,
            records,
        }
    }

    /// A record's scope and fields from the resource's attributes and then `own`.
    fn scope_and_fields(&self, own: &[KeyValue]) -> (Scope, Vec<(String, Value)>) {
        let mut merged: Vec<(String, Value)> = self.attributes.clone();
        let mut at: HashMap<String, usize> = merged
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        for kv in own {
            let v = kv
                .value
                .as_ref()
                .map_or(Value::Str(String::new()), value_of);
            match at.get(&kv.key) {
                Some(&i) => merged[i].1 = v,
                None => {
                    at.insert(kv.key.clone(), merged.len());
                    merged.push((kv.key.clone(), v));
                }
            }
        }
        let mut scope = Scope::new();
        let mut taken = vec![false; merged.len()];
        for (key, names) in SCOPE_ATTRIBUTES {
            let found = std::iter::once(key.as_str())
                .chain(names.iter().copied())
                .find_map(|n| at.get(n).copied());
            if let Some(i) = found {
                let text = match &merged[i].1 {
                    Value::Str(s) => s.clone(),
                    other => other.to_string(),
                };
                if !text.is_empty() {
                    scope.set(*key, Some(text));
                    taken[i] = true;
                }
            }
        }
        let fields = merged
            .into_iter()
            .zip(taken)
            .filter(|(_, t)| !t)
            .map(|(kv, _)| kv)
            .collect();
        (scope, fields)
    }
}

/// Sets `r`'s fields from `fields`, but the source location (`code.file.path`,
/// `code.line.number`, and their older names), which becomes its file and line.
fn set_fields(r: &mut Record, fields: impl IntoIterator<Item = (String, Value)>) {
    for (k, v) in fields {
        match (k.as_str(), &v) {
            ("code.file.path" | "code.filepath", Value::Str(f)) => {
                r.file = Some(Str::Owned(f.clone()));
            }
            ("code.line.number" | "code.lineno", Value::I64(n)) => {
                r.line = u32::try_from(*n).ok();
            }
            _ => r.fields.set(k, v),
        }
    }
}

/// The target of an instrumentation scope's records: its name, else `otlp`.
fn scope_target(scope: Option<&InstrumentationScope>) -> String {
    scope
        .map(|s| s.name.as_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("otlp")
        .to_owned()
}

fn trace_id(bytes: &[u8]) -> Option<TraceId> {
    <[u8; 16]>::try_from(bytes)
        .ok()
        .filter(|b| *b != [0; 16])
        .map(TraceId)
}

fn span_id(bytes: &[u8]) -> Option<SpanId> {
    <[u8; 8]>::try_from(bytes)
        .ok()
        .filter(|b| *b != [0; 8])
        .map(SpanId)
}

/// A record id from the digest of `parts`: never zero.
fn derived_id(parts: &[&[u8]]) -> RecordId {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id[15] |= 1;
    RecordId(id)
}

fn timestamp(nanos: u64) -> Timestamp {
    Timestamp(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// The span kind's word, as a field (`otel.kind`), for kinds other than internal.
fn span_kind(kind: i32) -> Option<&'static str> {
    match span::SpanKind::try_from(kind).ok()? {
        span::SpanKind::Server => Some("server"),
        span::SpanKind::Client => Some("client"),
        span::SpanKind::Producer => Some("producer"),
        span::SpanKind::Consumer => Some("consumer"),
        span::SpanKind::Internal | span::SpanKind::Unspecified => None,
    }
}

fn span_records(s: &Span, target: &str, base: &ResourceParts) -> Result<Vec<Record>, String> {
    let trace = trace_id(&s.trace_id)
        .ok_or_else(|| format!("span {:?} has no valid trace id (16 bytes)", s.name))?;
    let span = span_id(&s.span_id)
        .ok_or_else(|| format!("span {:?} has no valid span id (8 bytes)", s.name))?;
    let (scope, fields) = base.scope_and_fields(&s.attributes);
    let scope = Arc::new(scope);
    let id = derived_id(&[b"otlp span", &trace.0, &span.0]);
    let error = s
        .status
        .as_ref()
        .is_some_and(|st| st.code == StatusCode::Error as i32);
    let mut r = Record::new(
        id,
        timestamp(s.end_time_unix_nano),
        Kind::SpanEnd,
        if error { Level::Error } else { Level::Info },
        Str::Owned(s.name.clone()),
    );
    r.target = Str::Owned(target.to_owned());
    r.trace_id = trace;
    r.span_id = Some(span);
    r.parent_span_id = span_id(&s.parent_span_id);
    r.resource = Arc::clone(&base.resource);
    r.scope = Arc::clone(&scope);
    r.duration_ns = Some(s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano));
    r.status = match s.status.as_ref().map(|st| st.code) {
        Some(c) if c == StatusCode::Error as i32 => Some(Status::Error),
        Some(c) if c == StatusCode::Ok as i32 => Some(Status::Ok),
        _ => None,
    };
    if let Some(st) = s.status.as_ref().filter(|st| !st.message.is_empty()) {
        r.message = Some(st.message.clone());
    }
    set_fields(&mut r, fields);
    if let Some(kind) = span_kind(s.kind) {
        r.fields.set("otel.kind", Value::Str(kind.into()));
    }
    if !s.links.is_empty() {
        let links: Vec<serde_json::Value> = s
            .links
            .iter()
            .map(|l| {
                serde_json::json!({
                    "trace_id": to_hex(&l.trace_id),
                    "span_id": to_hex(&l.span_id),
                    "attributes": attributes_json(&l.attributes),
                })
            })
            .collect();
        if let Ok(j) = Json::from_serialize(&links) {
            r.fields.set("otel.links", Value::Json(j));
        }
    }
    // Prompts and responses sent as span events land on the span, where the call
    // view reads them.
    let (input, output) = crate::views::call::messages_from_events(
        s.events
            .iter()
            .map(|e| (e.name.as_str(), attributes_json(&e.attributes))),
    );
    for (key, messages) in [
        (genai::INPUT_MESSAGES, input),
        (genai::OUTPUT_MESSAGES, output),
    ] {
        if let Some(m) = messages.filter(|_| r.fields.get(key).is_none()) {
            r.fields.set(key, m);
        }
    }
    let mut out = Vec::with_capacity(1 + s.events.len());
    for (i, e) in s.events.iter().enumerate() {
        out.push(event_record(e, i, &r, &scope, base));
    }
    out.push(r);
    Ok(out)
}

/// Span event `i` of `span` (its record), as an event record inside it.
fn event_record(
    e: &span::Event,
    i: usize,
    span: &Record,
    scope: &Arc<Scope>,
    base: &ResourceParts,
) -> Record {
    let span_id = span.span_id.map_or([0; 8], |s| s.0);
    let id = derived_id(&[
        b"otlp span event",
        &span.trace_id.0,
        &span_id,
        &(i as u64).to_be_bytes(),
    ]);
    let exception = e.name == "exception";
    let mut r = Record::new(
        id,
        timestamp(e.time_unix_nano),
        Kind::Event,
        if exception { Level::Error } else { Level::Info },
        Str::Owned(e.name.clone()),
    );
    r.target = span.target.clone();
    r.trace_id = span.trace_id;
    r.span_id = span.span_id;
    r.resource = Arc::clone(&base.resource);
    r.scope = Arc::clone(scope);
    let fields = e.attributes.iter().map(|kv| {
        let v = kv
            .value
            .as_ref()
            .map_or(Value::Str(String::new()), value_of);
        (kv.key.clone(), v)
    });
    set_fields(&mut r, fields);
    // The service's version, on every record (the span has the resource's attributes).
    if let Some(v) = span.fields.get("service.version").cloned() {
        if r.fields.get("service.version").is_none() {
            r.fields.set("service.version", v);
        }
    }
    if exception {
        if let Some(Value::Str(m)) = r.fields.get("exception.message") {
            r.message = Some(m.clone());
        }
    }
    r
}

/// The level of an OTLP severity number (1–4 TRACE, 5–8 DEBUG, 9–12 INFO, 13–16 WARN,
/// 17–24 ERROR and FATAL); unset, INFO.
fn level_of(severity: i32) -> Level {
    match severity {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        13..=16 => Level::Warn,
        17.. => Level::Error,
        _ => Level::Info,
    }
}

fn log_record(l: &LogRecord, target: &str, base: &ResourceParts) -> Result<Record, String> {
    // What identifies it is all of it: the same log record resent is stored once.
    let content = l.encode_to_vec();
    let id = derived_id(&[b"otlp log", &base.instance.0, &content]);
    let time = match (l.time_unix_nano, l.observed_time_unix_nano) {
        (0, 0) => return Err("a log record with neither a time nor an observed time".into()),
        (0, observed) => observed,
        (t, _) => t,
    };
    // The event's name: the field, or the `event.name` attribute of older SDKs.
    let name = if l.event_name.is_empty() {
        l.attributes
            .iter()
            .find(|kv| kv.key == "event.name")
            .and_then(
                |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
                    _ => None,
                },
            )
            .unwrap_or("log")
    } else {
        l.event_name.as_str()
    };
    let mut r = Record::new(
        id,
        timestamp(time),
        Kind::Event,
        level_of(l.severity_number),
        Str::Owned(name.to_owned()),
    );
    r.target = Str::Owned(target.to_owned());
    match trace_id(&l.trace_id) {
        Some(t) => {
            r.trace_id = t;
            r.span_id = span_id(&l.span_id);
        }
        // Every record belongs to a trace: one outside any gets one of its own.
        None => {
            let own = derived_id(&[b"otlp log trace", &id.0]);
            r.trace_id = TraceId(own.0);
        }
    }
    r.resource = Arc::clone(&base.resource);
    let (scope, fields) = base.scope_and_fields(&l.attributes);
    r.scope = Arc::new(scope);
    match l.body.as_ref().map(value_of) {
        Some(Value::Str(s)) => r.message = Some(s),
        Some(other) => r.fields.set("body", other),
        None => {}
    }
    set_fields(&mut r, fields);
    if !l.severity_text.is_empty() {
        r.fields
            .set("otel.severity_text", Value::Str(l.severity_text.clone()));
    }
    Ok(r)
}

/// An attribute value as a field value: scalars typed, arrays and maps as JSON, bytes
/// as hex.
pub fn value_of(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::Str(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::I64(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::F64(*d),
        Some(any_value::Value::BytesValue(b)) => Value::Str(to_hex(b)),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => {
            match Json::from_serialize(&json_of(v)) {
                Ok(j) => Value::Json(j),
                Err(_) => Value::Str(json_of(v).to_string()),
            }
        }
        Some(any_value::Value::StringValueStrindex(_)) | None => Value::Str(String::new()),
    }
}

/// An attribute value as JSON.
fn json_of(v: &AnyValue) -> serde_json::Value {
    use serde_json::Value as J;
    match &v.value {
        Some(any_value::Value::StringValue(s)) => J::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => J::Bool(*b),
        Some(any_value::Value::IntValue(i)) => J::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(J::Null, J::Number)
        }
        Some(any_value::Value::BytesValue(b)) => J::String(to_hex(b)),
        Some(any_value::Value::ArrayValue(a)) => J::Array(a.values.iter().map(json_of).collect()),
        Some(any_value::Value::KvlistValue(l)) => attributes_json(&l.values),
        Some(any_value::Value::StringValueStrindex(_)) | None => J::Null,
    }
}

fn attributes_json(kvs: &[KeyValue]) -> serde_json::Value {
    serde_json::Value::Object(
        kvs.iter()
            .map(|kv| {
                (
                    kv.key.clone(),
                    kv.value.as_ref().map_or(serde_json::Value::Null, json_of),
                )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status as OtlpStatus};

    fn kv(k: &str, v: any_value::Value) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(OtlpResource {
                    attributes: vec![
                        kv("service.name", s("agent")),
                        kv("host.name", s("box")),
                        kv("process.pid", any_value::Value::IntValue(42)),
                        kv("telemetry.sdk.name", s("opentelemetry")),
                        kv("deployment.environment.name", s("prod")),
                        kv("service.version", s("1.2.3")),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "my.lib".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn span(id: u8, parent: Option<u8>) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: format!("op{id}"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 5_000,
            attributes: vec![kv("user.id", s("u1")), kv("http.route", s("/x"))],
            ..Default::default()
        }
    }

    #[test]
    fn spans_become_span_end_records_with_scope_resource_and_fields() {
        let mut root = span(1, None);
        root.status = Some(OtlpStatus {
            code: StatusCode::Error as i32,
            message: "boom".into(),
        });
        root.events.push(span::Event {
            time_unix_nano: 2_000,
            name: "exception".into(),
            attributes: vec![kv("exception.message", s("bad input"))],
            ..Default::default()
        });
        let m = traces(request(vec![root, span(2, Some(1))]));
        assert_eq!(m.invalid, 0);
        let b = &m.batches[0];
        assert_eq!(
            (
                b.resource.service.as_str(),
                b.resource.host.as_str(),
                b.resource.pid
            ),
            ("agent", "box", 42)
        );
        assert_eq!(b.records.len(), 3);
        let event = &b.records[0];
        assert_eq!((event.kind, event.level), (Kind::Event, Level::Error));
        assert_eq!(event.message.as_deref(), Some("bad input"));
        assert_eq!(event.span_id, Some(SpanId([1; 8])));
        let root = &b.records[1];
        assert_eq!((root.kind, root.level), (Kind::SpanEnd, Level::Error));
        assert_eq!(root.status, Some(Status::Error));
        assert_eq!(root.message.as_deref(), Some("boom"));
        assert_eq!(root.duration_ns, Some(4_000));
        assert_eq!(root.ts, Timestamp(5_000));
        assert_eq!(root.target, "my.lib");
        assert_eq!(root.scope.get(ScopeKey::UserId), Some("u1"));
        assert_eq!(root.scope.get(ScopeKey::Env), Some("prod"));
        assert_eq!(
            root.fields.get("http.route"),
            Some(&Value::Str("/x".into()))
        );
        assert_eq!(
            root.fields.get("service.version"),
            Some(&Value::Str("1.2.3".into()))
        );
        assert_eq!(
            root.fields.get("otel.kind"),
            Some(&Value::Str("server".into()))
        );
        assert!(root.fields.get("user.id").is_none());
        assert!(root.fields.get("telemetry.sdk.name").is_none());
        let child = &b.records[2];
        assert_eq!(child.parent_span_id, Some(SpanId([1; 8])));
        assert_eq!(child.level, Level::Info);
    }

    #[test]
    fn genai_span_events_become_the_calls_prompt_and_response() {
        let event = |name: &str, attributes: Vec<KeyValue>| span::Event {
            time_unix_nano: 2_000,
            name: name.into(),
            attributes,
            ..Default::default()
        };
        let mut chat = span(1, None);
        chat.attributes = vec![kv("gen_ai.operation.name", s("chat"))];
        chat.events = vec![
            event(
                "gen_ai.system.message",
                vec![
                    kv("gen_ai.system", s("openai")),
                    kv("content", s("be brief")),
                ],
            ),
            event("gen_ai.user.message", vec![kv("content", s("hi"))]),
            event(
                "gen_ai.choice",
                vec![
                    kv("index", any_value::Value::IntValue(0)),
                    kv("finish_reason", s("stop")),
                    kv("message", s(r#"{"content":"hello"}"#)),
                ],
            ),
        ];
        let mut legacy = span(2, None);
        legacy.events = vec![
            event(
                "gen_ai.content.prompt",
                vec![kv("gen_ai.prompt", s(r#"[{"role":"user","content":"q"}]"#))],
            ),
            event(
                "gen_ai.content.completion",
                vec![kv(
                    "gen_ai.completion",
                    s(r#"[{"role":"assistant","content":"a"}]"#),
                )],
            ),
        ];
        let m = traces(request(vec![chat, legacy]));
        let field = |name: &str, key: &str| {
            let r = m.batches[0]
                .records
                .iter()
                .find(|r| r.name == name && r.kind == Kind::SpanEnd)
                .unwrap();
            match r.fields.get(key) {
                Some(Value::Json(j)) => j.to_value(),
                other => panic!("{key}: {other:?}"),
            }
        };
        assert_eq!(
            field("op1", genai::INPUT_MESSAGES),
            serde_json::json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(
            field("op1", genai::OUTPUT_MESSAGES),
            serde_json::json!([{"role": "assistant", "index": 0, "finish_reason": "stop", "content": "hello"}])
        );
        assert_eq!(
            field("op2", genai::INPUT_MESSAGES),
            serde_json::json!([{"role": "user", "content": "q"}])
        );
        assert_eq!(
            field("op2", genai::OUTPUT_MESSAGES),
            serde_json::json!([{"role": "assistant", "content": "a"}])
        );
    }

    #[test]
    fn a_span_that_sets_its_run_id_starts_the_run_unless_it_is_a_call() {
        let mut root = span(1, None);
        root.attributes = vec![kv("logbook.run_id", s("r1"))];
        let mut chat = span(2, None);
        chat.trace_id = vec![8; 16];
        chat.attributes = vec![
            kv("logbook.run_id", s("r2")),
            kv("gen_ai.operation.name", s("chat")),
        ];
        // Its parent exported in another request: not judged.
        let mut orphan = span(3, Some(9));
        orphan.attributes = vec![kv("logbook.run_id", s("r1"))];
        let m = traces(request(vec![root, chat, orphan]));
        let category = |name: &str| {
            m.batches[0]
                .records
                .iter()
                .find(|r| r.name == name)
                .and_then(|r| r.category.as_deref().map(str::to_owned))
        };
        assert_eq!(category("op1").as_deref(), Some("run"));
        assert_eq!(category("op2"), None, "a call keeps its own category");
        assert_eq!(category("op3"), None);
    }

    #[test]
    fn spans_inherit_the_scope_their_ancestors_set() {
        let mut root = span(1, None);
        root.attributes = vec![kv("tenant", s("acme")), kv("user.id", s("u1"))];
        let mut child = span(2, Some(1));
        child.attributes = vec![kv("user.id", s("u2"))];
        let mut grandchild = span(3, Some(2));
        grandchild.attributes.clear();
        // Children first, as a batch processor exports them; and a cycle.
        let mut a = span(4, Some(5));
        a.attributes.clear();
        let mut b = span(5, Some(4));
        b.attributes.clear();
        let m = traces(request(vec![grandchild, child, root, a, b]));
        let scope = |name: &str| {
            let r = m.batches[0]
                .records
                .iter()
                .find(|r| r.name == name)
                .unwrap();
            (
                r.scope.get(ScopeKey::Tenant).map(str::to_owned),
                r.scope.get(ScopeKey::UserId).map(str::to_owned),
            )
        };
        let some = |t: &str, u: &str| (Some(t.to_owned()), Some(u.to_owned()));
        assert_eq!(scope("op1"), some("acme", "u1"));
        assert_eq!(scope("op2"), some("acme", "u2"));
        assert_eq!(scope("op3"), some("acme", "u2"));
        assert_eq!(scope("op4").0, None);
    }

    #[test]
    fn ids_derive_from_what_identifies_a_record() {
        let a = traces(request(vec![span(1, None)]));
        let b = traces(request(vec![span(1, None)]));
        assert_eq!(a.batches[0].records[0].id, b.batches[0].records[0].id);
        assert_eq!(a.batches[0].instance, b.batches[0].instance);
        let c = traces(request(vec![span(2, None)]));
        assert_ne!(a.batches[0].records[0].id, c.batches[0].records[0].id);
    }

    #[test]
    fn spans_without_valid_ids_are_left_out_and_said_why() {
        let mut bad = span(1, None);
        bad.trace_id = vec![1, 2, 3];
        let m = traces(request(vec![bad, span(2, None)]));
        assert_eq!(m.invalid, 1);
        assert!(m.first_invalid.unwrap().contains("trace id"));
        assert_eq!(m.batches[0].records.len(), 1);
    }

    #[test]
    fn severities_map_to_levels() {
        assert_eq!(level_of(0), Level::Info);
        assert_eq!(level_of(1), Level::Trace);
        assert_eq!(level_of(6), Level::Debug);
        assert_eq!(level_of(9), Level::Info);
        assert_eq!(level_of(13), Level::Warn);
        assert_eq!(level_of(21), Level::Error);
    }
}
