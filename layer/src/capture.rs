//! What the emitting thread does: read a span's or event's fields into a [`Captured`]
//! record. No formatting beyond the message and `Debug`/`Display` values, no I/O.

use std::cell::Cell;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Instant;

use logbook_proto::{
    Fields, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status, Str,
    Timestamp, TraceId, Value,
};
use tracing_core::field::{Field, Visit};
use tracing_core::Metadata;

use crate::fields;
use crate::json;

thread_local! {
    static IN_LAYER: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside the layer. An event emitted while the layer works
/// (say, by a field's `Debug` impl) finds the mark, is counted as dropped and returns:
/// it can neither recurse nor deadlock.
pub(crate) struct Reentrancy(());

impl Reentrancy {
    pub(crate) fn enter() -> Option<Self> {
        IN_LAYER.with(|busy| {
            if busy.replace(true) {
                None
            } else {
                Some(Self(()))
            }
        })
    }
}

impl Drop for Reentrancy {
    fn drop(&mut self) {
        IN_LAYER.with(|busy| busy.set(false));
    }
}

/// The proto level of a `tracing` level.
pub(crate) fn level_of(meta: &Metadata<'_>) -> Level {
    match *meta.level() {
        tracing_core::Level::TRACE => Level::Trace,
        tracing_core::Level::DEBUG => Level::Debug,
        tracing_core::Level::INFO => Level::Info,
        tracing_core::Level::WARN => Level::Warn,
        _ => Level::Error,
    }
}

/// One record as captured on the emitting thread; the worker turns it into a
/// [`Record`] (adding the id and resource) off the hot path.
pub(crate) struct Captured {
    pub(crate) meta: &'static Metadata<'static>,
    pub(crate) kind: Kind,
    pub(crate) ts: Timestamp,
    pub(crate) message: Option<String>,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: Option<SpanId>,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) scope: Arc<Scope>,
    pub(crate) category: Option<&'static str>,
    pub(crate) status: Option<Status>,
    /// duration, busy, idle (span ends only)
    pub(crate) timings: Option<[u64; 3]>,
    pub(crate) fields: Fields,
}

impl Captured {
    pub(crate) fn level(&self) -> Level {
        level_of(self.meta)
    }

    /// Bytes this record holds while buffered: the unit of the layer's buffer limit.
    pub(crate) fn cost(&self) -> usize {
        let mut n = std::mem::size_of::<Self>() + self.message.as_ref().map_or(0, String::len);
        n += self.fields.len() * std::mem::size_of::<(Str, Value)>();
        for (k, v) in self.fields.iter() {
            // Keys are usually &'static (free); count them anyway to stay an upper bound.
            n += k.len()
                + match v {
                    Value::Str(s) => s.len(),
                    Value::Json(j) => j.as_str().len(),
                    _ => 0,
                };
        }
        n
    }

    pub(crate) fn into_record(self, id: RecordId, resource: &Arc<Resource>) -> Record {
        let meta = self.meta;
        let mut r = Record::new(
            id,
            self.ts,
            self.kind,
            level_of(meta),
            Str::Borrowed(meta.name()),
        );
        r.target = Str::Borrowed(meta.target());
        r.message = self.message;
        r.trace_id = self.trace_id;
        r.span_id = self.span_id;
        r.parent_span_id = self.parent_span_id;
        r.scope = self.scope;
        r.resource = Arc::clone(resource);
        r.file = meta.file().map(Str::Borrowed);
        r.line = meta.line();
        r.category = self.category.map(Str::Borrowed);
        r.status = self.status;
        if let Some([d, b, i]) = self.timings {
            (r.duration_ns, r.busy_ns, r.idle_ns) = (Some(d), Some(b), Some(i));
        }
        r.fields = self.fields;
        r
    }
}

/// How the layer treats a field, by name.
enum Role {
    Message,
    Scope(ScopeKey),
    TraceId,
    TraceParent,
    StatusCode,
    Error,
    Plain,
}

fn role(name: &str) -> Role {
    match name {
        fields::MESSAGE => Role::Message,
        fields::TRACE_ID => Role::TraceId,
        fields::TRACEPARENT => Role::TraceParent,
        fields::OTEL_STATUS_CODE => Role::StatusCode,
        fields::ERROR | fields::ERROR_TYPE | fields::EXCEPTION_MESSAGE | fields::EXCEPTION_TYPE => {
            Role::Error
        }
        _ => match ScopeKey::from_name(name) {
            Some(k) => Role::Scope(k),
            None => Role::Plain,
        },
    }
}

/// Reads field values into [`Fields`], pulling out the message, scope fields, trace
/// context and error markers.
pub(crate) struct FieldVisitor<'a> {
    fields: &'a mut Fields,
    /// `Span::record` may set a field again; initial field sets are unique by callsite.
    replace: bool,
    max_bytes: usize,
    pub(crate) message: Option<String>,
    pub(crate) scope: Vec<(ScopeKey, String)>,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) remote_parent: Option<SpanId>,
    pub(crate) error: bool,
    pub(crate) status: Option<Status>,
}

impl<'a> FieldVisitor<'a> {
    pub(crate) fn new(fields: &'a mut Fields, replace: bool, max_bytes: usize) -> Self {
        Self {
            fields,
            replace,
            max_bytes,
            message: None,
            scope: Vec::new(),
            trace_id: None,
            remote_parent: None,
            error: false,
            status: None,
        }
    }

    fn put(&mut self, field: &Field, value: Value) {
        match role(field.name()) {
            Role::Message => self.message = Some(text_of(value)),
            Role::Scope(key) => self.scope.push((key, text_of(value))),
            Role::TraceId => match value.as_str().map(TraceId::from_hex) {
                Some(Ok(t)) if t.is_valid() => self.trace_id = Some(t),
                _ => self.plain(field, value),
            },
            Role::TraceParent => match value.as_str().and_then(parse_traceparent) {
                Some((t, p)) => {
                    self.trace_id = Some(t);
                    self.remote_parent = Some(p);
                }
                None => self.plain(field, value),
            },
            Role::StatusCode => {
                match value.as_str() {
                    Some(s) if s.eq_ignore_ascii_case("error") => {
                        self.status = Some(Status::Error);
                        self.error = true;
                    }
                    Some(s) if s.eq_ignore_ascii_case("ok") => self.status = Some(Status::Ok),
                    _ => {}
                }
                self.plain(field, value);
            }
            Role::Error => {
                if !matches!(value, Value::Bool(false)) && value.as_str() != Some("") {
                    self.error = true;
                }
                self.plain(field, value);
            }
            Role::Plain => self.plain(field, value),
        }
    }

    fn plain(&mut self, field: &Field, value: Value) {
        let key = Str::Borrowed(field.name());
        if self.replace {
            self.fields.set(key, value);
        } else {
            self.fields.push_unique(key, value);
        }
    }

    fn text(&self, s: String) -> Value {
        Value::Str(limit(s, self.max_bytes))
    }
}

fn text_of(v: Value) -> String {
    match v {
        Value::Str(s) => s,
        other => other.to_string(),
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::F64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        let v = i64::try_from(value).map_or_else(|_| Value::Str(value.to_string()), Value::I64);
        self.put(field, v);
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        let v = u64::try_from(value).map_or_else(|_| Value::Str(value.to_string()), Value::U64);
        self.put(field, v);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let v = self.text(value.to_owned());
        self.put(field, v);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut s = value.to_string();
        let mut source = value.source();
        while let Some(e) = source {
            let _ = write!(s, ": {e}");
            source = e.source();
        }
        self.error = true;
        let v = self.text(s);
        self.plain(field, v);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        json::clear();
        let s = format!("{value:?}");
        let v = match json::take_if_whole(&s) {
            Some(j) if j.as_str().len() <= self.max_bytes => Value::Json(j),
            _ => self.text(s),
        };
        self.put(field, v);
    }
}

/// Cuts `s` to at most `max` bytes (at a character boundary) and says how much was cut.
pub(crate) fn limit(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = s.len() - cut;
    s.truncate(cut);
    let _ = write!(s, "…[truncated {dropped} bytes]");
    s
}

/// Parses a W3C `traceparent` header value: `00-<32 hex trace>-<16 hex span>-<2 hex flags>`.
pub fn parse_traceparent(s: &str) -> Option<(TraceId, SpanId)> {
    let mut parts = s.trim().split('-');
    let version = parts.next()?;
    let trace = TraceId::from_hex(parts.next()?).ok()?;
    let span = SpanId::from_hex(parts.next()?).ok()?;
    let flags = parts.next()?;
    if version.len() != 2
        || version == "ff"
        || flags.len() != 2
        || !trace.is_valid()
        || !span.is_valid()
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    Some((trace, span))
}

/// The layer's state for one live span, kept in the registry's span extensions.
pub(crate) struct SpanState {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) scope: Arc<Scope>,
    pub(crate) fields: Fields,
    pub(crate) category: Option<&'static str>,
    pub(crate) error: bool,
    pub(crate) status: Option<Status>,
    created: Instant,
    busy_ns: u64,
    entered: u32,
    entered_at: Option<Instant>,
}

impl SpanState {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        trace_id: TraceId,
        span_id: SpanId,
        parent_span_id: Option<SpanId>,
        scope: Arc<Scope>,
        fields: Fields,
        category: Option<&'static str>,
        error: bool,
        status: Option<Status>,
    ) -> Self {
        Self {
            trace_id,
            span_id,
            parent_span_id,
            scope,
            fields,
            category,
            error,
            status,
            created: Instant::now(),
            busy_ns: 0,
            entered: 0,
            entered_at: None,
        }
    }

    pub(crate) fn enter(&mut self) {
        self.entered += 1;
        if self.entered == 1 {
            self.entered_at = Some(Instant::now());
        }
    }

    pub(crate) fn exit(&mut self) {
        self.entered = self.entered.saturating_sub(1);
        if self.entered == 0 {
            if let Some(at) = self.entered_at.take() {
                self.busy_ns += nanos(at.elapsed());
            }
        }
    }

    /// Applies scope fields recorded after creation: later children and events see them.
    pub(crate) fn override_scope(&mut self, overrides: Vec<(ScopeKey, String)>) {
        if overrides.is_empty() {
            return;
        }
        let mut s = (*self.scope).clone();
        for (k, v) in overrides {
            s.set(k, Some(v));
        }
        self.scope = Arc::new(s);
    }

    /// duration, busy and idle time at close.
    pub(crate) fn timings(&mut self) -> [u64; 3] {
        let now = Instant::now();
        if let Some(at) = self.entered_at.take() {
            self.busy_ns += nanos(now.saturating_duration_since(at));
        }
        let duration = nanos(now.saturating_duration_since(self.created));
        let busy = self.busy_ns.min(duration);
        [duration, busy, duration - busy]
    }

    pub(crate) fn final_status(&self) -> Status {
        match self.status {
            Some(s) => s,
            None if self.error => Status::Error,
            None => Status::Ok,
        }
    }
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_cuts_at_char_boundary_and_says_so() {
        assert_eq!(limit("short".into(), 10), "short");
        let s = limit("héllo wörld".into(), 2);
        assert_eq!(s, "h…[truncated 12 bytes]");
    }

    #[test]
    fn traceparent_parsing() {
        let (t, s) =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(t.to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(s.to_hex(), "00f067aa0ba902b7");
        assert!(
            parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none()
        );
        assert!(
            parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_none()
        );
        assert!(parse_traceparent("garbage").is_none());
    }

    #[test]
    fn reentrancy_guard_is_exclusive_per_thread() {
        let g = Reentrancy::enter().unwrap();
        assert!(Reentrancy::enter().is_none());
        drop(g);
        assert!(Reentrancy::enter().is_some());
    }
}
