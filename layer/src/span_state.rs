//! What the layer keeps for a live span: its ids, scope, fields and timings; and the
//! W3C trace context a span can be joined to.

use std::sync::Arc;
use std::time::Instant;

use logbook_proto::wire::EncodedFields;
use logbook_proto::{Scope, ScopeKey, SpanId, Status, TraceId};

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
    /// Fields from creation.
    pub(crate) initial: EncodedFields,
    /// Fields recorded later (`Span::record`), each key once.
    pub(crate) late: EncodedFields,
    pub(crate) category: Option<&'static str>,
    pub(crate) error: bool,
    pub(crate) status: Option<Status>,
    created: Instant,
    busy_ns: u64,
    entered: u32,
    entered_at: Option<Instant>,
}

/// What a span knows at creation.
pub(crate) struct NewSpan {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    pub(crate) parent_span_id: Option<SpanId>,
    pub(crate) scope: Arc<Scope>,
    pub(crate) initial: EncodedFields,
    pub(crate) category: Option<&'static str>,
    pub(crate) error: bool,
    pub(crate) status: Option<Status>,
}

impl SpanState {
    pub(crate) fn new(n: NewSpan, created: Instant) -> Self {
        Self {
            trace_id: n.trace_id,
            span_id: n.span_id,
            parent_span_id: n.parent_span_id,
            scope: n.scope,
            initial: n.initial,
            late: EncodedFields::new(),
            category: n.category,
            error: n.error,
            status: n.status,
            created,
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

    /// Fields recorded with `Span::record`: a key recorded again replaces its earlier
    /// late value (the initial value stays, and the late one wins when decoded).
    pub(crate) fn record_late(&mut self, fields: &EncodedFields, keys: &[&'static str]) {
        self.late.remove_keys(keys);
        self.late.append(fields);
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
    pub(crate) fn timings(&mut self, now: Instant) -> [u64; 3] {
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
    fn late_fields_replace_their_earlier_late_value() {
        let mut s = SpanState::new(
            NewSpan {
                trace_id: TraceId::from_random(1, 2),
                span_id: SpanId::from_random(3),
                parent_span_id: None,
                scope: Arc::default(),
                initial: EncodedFields::new(),
                category: None,
                error: false,
                status: None,
            },
            Instant::now(),
        );
        for i in 0..2000 {
            let mut f = EncodedFields::new();
            f.push_i64("progress", i);
            s.record_late(&f, &["progress"]);
        }
        assert_eq!(
            s.late.count(),
            1,
            "a field recorded 2000 times is kept once"
        );
    }
}
