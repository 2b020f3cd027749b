//! The `tracing_subscriber::Layer`: captures spans and events on the emitting thread
//! and queues them for the worker.

use std::fmt;
use std::sync::Arc;

use logbook_proto::{Fields, Kind, Level, Scope, ScopeKey, SpanId, Status, Timestamp, TraceId};
use tracing_core::span::{Attributes, Id, Record as SpanValues};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::capture::{level_of, Captured, FieldVisitor, Reentrancy, SpanState};
use crate::fields::CATEGORY_RUN;
use crate::guard::{FlushGuard, Handle};
use crate::rng;
use crate::shipper::Shipper;

/// The logbook layer. Build it with [`crate::layer`] or [`crate::builder`].
pub struct LogbookLayer {
    shipper: Arc<Shipper>,
    /// Scope of records outside any span (from `LOGBOOK_TENANT`, … or `with_scope`).
    root_scope: Arc<Scope>,
    max_field_bytes: usize,
}

impl LogbookLayer {
    pub(crate) fn new(
        shipper: Arc<Shipper>,
        root_scope: Arc<Scope>,
        max_field_bytes: usize,
    ) -> Self {
        Self {
            shipper,
            root_scope,
            max_field_bytes,
        }
    }

    /// A guard that flushes this layer when dropped; see [`FlushGuard`].
    pub fn flush_guard(&self) -> FlushGuard {
        FlushGuard {
            handle: self.handle(),
        }
    }

    /// A handle to flush this layer or read its counters later.
    pub fn handle(&self) -> Handle {
        Handle {
            shipper: Arc::clone(&self.shipper),
        }
    }

    fn dropped_reentrant(&self, level: Level) {
        self.shipper.counters.drop_unqueued(level);
    }
}

impl fmt::Debug for LogbookLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogbookLayer")
            .field("endpoint", &self.shipper.endpoint)
            .field("root_scope", &self.root_scope)
            .finish()
    }
}

/// A scope with `overrides` applied to `base`; `base` itself (shared) when there are none.
fn apply_scope(base: &Arc<Scope>, overrides: Vec<(ScopeKey, String)>) -> Arc<Scope> {
    if overrides.is_empty() {
        return Arc::clone(base);
    }
    let mut s = (**base).clone();
    for (k, v) in overrides {
        s.set(k, Some(v));
    }
    Arc::new(s)
}

impl<S> Layer<S> for LogbookLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        let Some(_guard) = Reentrancy::enter() else {
            return self.dropped_reentrant(level_of(meta));
        };
        let Some(span) = ctx.span(id) else { return };

        let mut fields = Fields::with_capacity(meta.fields().len());
        let mut v = FieldVisitor::new(&mut fields, false, self.max_field_bytes);
        attrs.record(&mut v);
        let FieldVisitor {
            scope: overrides,
            trace_id,
            remote_parent,
            error,
            status,
            ..
        } = v;

        let parent_ctx = span.parent().and_then(|p| {
            let ext = p.extensions();
            ext.get::<SpanState>()
                .map(|s| (s.trace_id, s.span_id, Arc::clone(&s.scope)))
        });
        let (trace_id, parent_span_id, base_scope) = match (parent_ctx, trace_id, remote_parent) {
            // A `traceparent` joins the caller's trace under the caller's span; scope still
            // comes from the local parent.
            (local, Some(t), Some(remote)) => (
                t,
                Some(remote),
                local.map_or_else(|| Arc::clone(&self.root_scope), |(_, _, s)| s),
            ),
            (Some((t, p, s)), _, _) => (t, Some(p), s),
            // A root may take its trace id from a `trace_id` field (e.g. an X-Trace-Id header).
            (None, Some(t), None) => (t, None, Arc::clone(&self.root_scope)),
            (None, None, _) => (random_trace(), None, Arc::clone(&self.root_scope)),
        };
        // A span that sets its own run_id starts a run.
        let starts_run = overrides
            .iter()
            .any(|(k, v)| *k == ScopeKey::RunId && base_scope.run_id() != Some(v));
        let scope = apply_scope(&base_scope, overrides);
        let category = starts_run.then_some(CATEGORY_RUN);
        let span_id = SpanId::from_random(rng::next_u64());

        self.shipper.send(Captured {
            meta,
            kind: Kind::SpanStart,
            ts: Timestamp::now(),
            message: None,
            trace_id,
            span_id: Some(span_id),
            parent_span_id,
            scope: Arc::clone(&scope),
            category,
            status: None,
            timings: None,
            fields: fields.clone(),
        });
        let state = SpanState::new(
            trace_id,
            span_id,
            parent_span_id,
            scope,
            fields,
            category,
            error,
            status,
        );
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(_guard) = Reentrancy::enter() else {
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        // Read the values first: that may run user `Debug` code which logs, and other
        // layers then look at this span, so the span's lock must not be held meanwhile.
        let mut late = Fields::new();
        let mut v = FieldVisitor::new(&mut late, true, self.max_field_bytes);
        values.record(&mut v);
        let FieldVisitor {
            scope: overrides,
            error,
            status,
            ..
        } = v;
        let mut ext = span.extensions_mut();
        let Some(state) = ext.get_mut::<SpanState>() else {
            return;
        };
        state.fields.merge(late);
        state.error |= error;
        if status.is_some() {
            state.status = status;
        }
        state.override_scope(overrides);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(state) = span.extensions_mut().get_mut::<SpanState>() {
                state.enter();
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(state) = span.extensions_mut().get_mut::<SpanState>() {
                state.exit();
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut state) = span.extensions_mut().remove::<SpanState>() else {
            return;
        };
        let Some(_guard) = Reentrancy::enter() else {
            return self.dropped_reentrant(level_of(span.metadata()));
        };
        let timings = state.timings();
        let status = state.final_status();
        self.shipper.send(Captured {
            meta: span.metadata(),
            kind: Kind::SpanEnd,
            ts: Timestamp::now(),
            message: None,
            trace_id: state.trace_id,
            span_id: Some(state.span_id),
            parent_span_id: state.parent_span_id,
            scope: state.scope,
            category: state.category,
            status: Some(status),
            timings: Some(timings),
            fields: state.fields,
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let Some(_guard) = Reentrancy::enter() else {
            return self.dropped_reentrant(level_of(meta));
        };
        let mut fields = Fields::with_capacity(meta.fields().len());
        let mut v = FieldVisitor::new(&mut fields, false, self.max_field_bytes);
        event.record(&mut v);
        let FieldVisitor {
            message,
            scope: overrides,
            error,
            ..
        } = v;
        let failed = error || *meta.level() == tracing_core::Level::ERROR;

        let span_ctx = ctx.event_span(event).and_then(|span| {
            let found = span
                .extensions()
                .get::<SpanState>()
                .map(|s| (s.trace_id, s.span_id, Arc::clone(&s.scope)));
            if failed && found.is_some() {
                // An ERROR event (as `#[instrument(err)]` emits) fails its span.
                if let Some(state) = span.extensions_mut().get_mut::<SpanState>() {
                    state.error = true;
                }
            }
            found
        });
        let (trace_id, span_id, base_scope) = match span_ctx {
            Some((t, s, scope)) => (t, Some(s), scope),
            None => (random_trace(), None, Arc::clone(&self.root_scope)),
        };
        self.shipper.send(Captured {
            meta,
            kind: Kind::Event,
            ts: Timestamp::now(),
            message,
            trace_id,
            span_id,
            parent_span_id: None,
            scope: apply_scope(&base_scope, overrides),
            category: None,
            status: error.then_some(Status::Error),
            timings: None,
            fields,
        });
    }
}

fn random_trace() -> TraceId {
    TraceId::from_random(rng::next_u64(), rng::next_u64())
}
