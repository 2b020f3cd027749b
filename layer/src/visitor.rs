//! Reading a span's or event's fields: values go straight into the record's
//! [`EncodedFields`] (no intermediate strings); the message, scope fields, trace
//! context (`trace_id`, `traceparent`, `baggage`) and error markers are pulled out on
//! the way.

use std::fmt::{self, Write as _};

use logbook_proto::wire::EncodedFields;
use logbook_proto::{ScopeKey, SpanId, Status, TraceId, Value};
use tracing_core::field::{Field, Visit};

use crate::baggage;
use crate::fields;
use crate::json;
use crate::span_state::parse_traceparent;

/// How the layer treats a field, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Message,
    Scope(ScopeKey),
    TraceId,
    TraceParent,
    Baggage,
    StatusCode,
    Error,
    Plain,
}

fn role(name: &str) -> Role {
    match name {
        fields::MESSAGE => Role::Message,
        "run_id" => Role::Scope(ScopeKey::RunId),
        "step_id" => Role::Scope(ScopeKey::StepId),
        "tenant" => Role::Scope(ScopeKey::Tenant),
        "env" => Role::Scope(ScopeKey::Env),
        "project" => Role::Scope(ScopeKey::Project),
        "app" => Role::Scope(ScopeKey::App),
        "surface" => Role::Scope(ScopeKey::Surface),
        "user_id" => Role::Scope(ScopeKey::UserId),
        "session_id" => Role::Scope(ScopeKey::SessionId),
        "request_id" => Role::Scope(ScopeKey::RequestId),
        fields::TRACE_ID => Role::TraceId,
        fields::TRACEPARENT => Role::TraceParent,
        fields::BAGGAGE => Role::Baggage,
        fields::OTEL_STATUS_CODE => Role::StatusCode,
        fields::ERROR | fields::ERROR_TYPE | fields::EXCEPTION_MESSAGE | fields::EXCEPTION_TYPE => {
            Role::Error
        }
        _ => Role::Plain,
    }
}

/// Writes field values into an [`EncodedFields`].
pub(crate) struct FieldVisitor<'a> {
    out: &'a mut EncodedFields,
    max_bytes: usize,
    /// Keys written, when the caller needs them (late span fields replace earlier ones).
    pub(crate) keys: Option<Vec<&'static str>>,
    pub(crate) scope: Vec<(ScopeKey, String)>,
    /// Scope a remote parent passed in a `baggage` field: applied before `scope`, as a
    /// parent's scope is, so it neither starts a run nor beats explicit scope fields.
    pub(crate) inherited: Vec<(ScopeKey, String)>,
    pub(crate) trace_id: Option<TraceId>,
    pub(crate) remote_parent: Option<SpanId>,
    pub(crate) error: bool,
    pub(crate) status: Option<Status>,
}

impl<'a> FieldVisitor<'a> {
    pub(crate) fn new(out: &'a mut EncodedFields, max_bytes: usize) -> Self {
        Self {
            out,
            max_bytes,
            keys: None,
            scope: Vec::new(),
            inherited: Vec::new(),
            trace_id: None,
            remote_parent: None,
            error: false,
            status: None,
        }
    }

    /// Also remembers the keys written.
    pub(crate) fn collecting_keys(mut self) -> Self {
        self.keys = Some(Vec::new());
        self
    }

    fn wrote(&mut self, field: &Field) {
        if let Some(keys) = &mut self.keys {
            keys.push(field.name());
        }
    }

    /// A field whose role needs its value as a value (scope, trace context, status,
    /// error): the rare path. Plain fields never come here.
    fn special(&mut self, field: &Field, role: Role, mut value: Value) {
        let text = |value: &Value| match value {
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        };
        match role {
            Role::Scope(key) => {
                let text = match value {
                    Value::Str(s) => s,
                    other => other.to_string(),
                };
                return self.scope.push((key, text));
            }
            Role::TraceId => {
                if let Ok(t) = TraceId::from_hex(&text(&value)) {
                    if t.is_valid() {
                        self.trace_id = Some(t);
                        return;
                    }
                }
            }
            Role::TraceParent => {
                if let Some((t, p)) = parse_traceparent(&text(&value)) {
                    self.trace_id = Some(t);
                    self.remote_parent = Some(p);
                    return;
                }
            }
            Role::Baggage => {
                // The scope entries are taken; any others stay in the field.
                let parsed = baggage::parse(&text(&value));
                for (k, v) in parsed.scope {
                    self.inherited.retain(|(have, _)| *have != k);
                    self.inherited.push((k, v));
                }
                if parsed.rest.is_empty() {
                    return;
                }
                value = Value::Str(parsed.rest);
            }
            Role::StatusCode => match value.as_str() {
                Some(s) if s.eq_ignore_ascii_case("error") => {
                    self.status = Some(Status::Error);
                    self.error = true;
                }
                Some(s) if s.eq_ignore_ascii_case("ok") => self.status = Some(Status::Ok),
                _ => {}
            },
            Role::Error => {
                self.error |= !matches!(value, Value::Bool(false)) && value.as_str() != Some("")
            }
            Role::Message | Role::Plain => {}
        }
        match &value {
            Value::Str(s) => self.out.push_str(field.name(), s, self.max_bytes),
            other => self.out.push(field.name(), other),
        }
        self.wrote(field);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        match role(field.name()) {
            Role::Plain => {
                self.out.push_f64(field.name(), value);
                self.wrote(field);
            }
            r => self.special(field, r, Value::F64(value)),
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match role(field.name()) {
            Role::Plain => {
                self.out.push_i64(field.name(), value);
                self.wrote(field);
            }
            r => self.special(field, r, Value::I64(value)),
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match role(field.name()) {
            Role::Plain => {
                self.out.push_u64(field.name(), value);
                self.wrote(field);
            }
            r => self.special(field, r, Value::U64(value)),
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.record_i64(field, v),
            Err(_) => self.record_str(field, &value.to_string()),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.record_u64(field, v),
            Err(_) => self.record_str(field, &value.to_string()),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        match role(field.name()) {
            Role::Plain => {
                self.out.push_bool(field.name(), value);
                self.wrote(field);
            }
            r => self.special(field, r, Value::Bool(value)),
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match role(field.name()) {
            Role::Plain => {
                self.out.push_str(field.name(), value, self.max_bytes);
                self.wrote(field);
            }
            Role::Message => {
                let mut m = self.out.message();
                let _ = m.write_str(value);
                m.finish(self.max_bytes);
            }
            r => self.special(field, r, Value::Str(value.to_owned())),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.error = true;
        let mut t = self.out.text(field.name());
        let _ = write!(t, "{value}");
        let mut source = value.source();
        while let Some(e) = source {
            let _ = write!(t, ": {e}");
            source = e.source();
        }
        t.finish(false, self.max_bytes);
        self.wrote(field);
        // The types in the chain, for grouping: what each error's `Debug` form starts
        // with, when that is a type or variant name (`NotFound`, `Os { .. }`).
        let mut types = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(value);
        for _ in 0..8 {
            let Some(e) = next else { break };
            if let Some(name) = debug_type_name(e) {
                if !types.is_empty() {
                    types.push(',');
                }
                types.push_str(name.as_str());
            }
            next = e.source();
        }
        if !types.is_empty() {
            self.out
                .push_str(&format!("{}.types", field.name()), &types, self.max_bytes);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        match role(field.name()) {
            Role::Plain => {
                json::clear();
                let mut t = self.out.text(field.name());
                let _ = write!(t, "{value:?}");
                let is_json = json::take_if_whole(t.written());
                t.finish(is_json, self.max_bytes);
                self.wrote(field);
            }
            Role::Message => {
                let mut m = self.out.message();
                let _ = write!(m, "{value:?}");
                m.finish(self.max_bytes);
            }
            r => self.special(field, r, Value::Str(format!("{value:?}"))),
        }
    }
}

/// The type or variant name a value's `Debug` form starts with (`NotFound`,
/// `Os { code: 2, .. }`, `ParseIntError { .. }`), if it starts with one; formatting
/// stops after 64 bytes.
fn debug_type_name(e: &dyn fmt::Debug) -> Option<TypeName> {
    struct Head(TypeName);
    impl fmt::Write for Head {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = self.0.buf.len() - self.0.len;
            let take = s.len().min(room);
            self.0.buf[self.0.len..self.0.len + take].copy_from_slice(&s.as_bytes()[..take]);
            self.0.len += take;
            if take < s.len() {
                Err(fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    let mut head = Head(TypeName {
        buf: [0; 64],
        len: 0,
    });
    let _ = write!(head, "{e:?}");
    let bytes = &head.0.buf[..head.0.len];
    let end = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
        .unwrap_or(bytes.len());
    let rest = &bytes[end..];
    let named = end > 0
        && bytes[0].is_ascii_uppercase()
        && (rest.is_empty() || rest[0] == b'(' || rest.starts_with(b" {"));
    named.then_some(TypeName { len: end, ..head.0 })
}

/// A short name on the stack.
struct TypeName {
    buf: [u8; 64],
    len: usize,
}

impl TypeName {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_forms_name_error_types() {
        #[derive(Debug)]
        struct ParseIntError {
            _kind: u8,
        }
        #[derive(Debug)]
        #[allow(dead_code)]
        enum Io {
            NotFound,
            Os(i32),
        }
        let name = |e: &dyn fmt::Debug| debug_type_name(e).map(|t| t.as_str().to_owned());
        assert_eq!(
            name(&ParseIntError { _kind: 1 }).as_deref(),
            Some("ParseIntError")
        );
        assert_eq!(name(&Io::NotFound).as_deref(), Some("NotFound"));
        assert_eq!(name(&Io::Os(2)).as_deref(), Some("Os"));
        // Messages are not types (an anyhow error's Debug form is its message).
        assert_eq!(name(&"Connection refused"), None);
        assert_eq!(name(&format_args!("Connection refused")), None);
        assert_eq!(name(&format_args!("failed to open")), None);
    }

    #[test]
    fn roles_cover_every_scope_key() {
        // `role` spells out ScopeKey's words; keep them in step.
        for k in ScopeKey::ALL {
            assert_eq!(role(k.as_str()), Role::Scope(*k), "{k}");
        }
        assert_eq!(role("message"), Role::Message);
        assert_eq!(role("baggage"), Role::Baggage);
        assert_eq!(role("gen_ai.request.model"), Role::Plain);
    }
}
