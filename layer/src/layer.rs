//! The `tracing_subscriber::Layer`: captures spans and events on the emitting thread
//! and queues them for the worker.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use logbook_proto::wire::{EncodedFields, RecordHead};
use logbook_proto::{Kind, Level, RecordId, Scope, ScopeKey, SpanId, Status, Timestamp, TraceId};
use tracing_core::span::{Attributes, Id, Record as SpanValues};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::capture::{level_of, Reentrancy};
use crate::clock;
use crate::fields::CATEGORY_RUN;
use crate::guard::{FlushGuard, Handle};
use crate::rng;
use crate::shipper::ring::Local;
use crate::shipper::{self, Shipper};
use crate::span_state::{NewSpan, SpanState};
use crate::visitor::FieldVisitor;

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

/// Scopes made recently on this thread: a span that sets the same scope fields under
/// the same parent scope (a request handler's span, say) shares one `Arc` instead of
/// copying the scope each time. Entries hold their base, so its address stays theirs.
type ScopeMemo = Vec<(Arc<Scope>, Vec<(ScopeKey, String)>, Arc<Scope>)>;

thread_local! {
    static RECENT_SCOPES: RefCell<ScopeMemo> = const { RefCell::new(Vec::new()) };
}

/// Scopes remembered per thread.
const RECENT_SCOPES_KEPT: usize = 8;

/// A scope with `overrides` applied to `base`; `base` itself (shared) when there are none.
fn apply_scope(base: &Arc<Scope>, overrides: Vec<(ScopeKey, String)>) -> Arc<Scope> {
    if overrides.is_empty() {
        return Arc::clone(base);
    }
    RECENT_SCOPES.with(|memo| {
        let mut memo = memo.borrow_mut();
        if let Some((_, _, scope)) = memo
            .iter()
            .find(|(b, o, _)| Arc::ptr_eq(b, base) && *o == overrides)
        {
            return Arc::clone(scope);
        }
        let mut s = (**base).clone();
        for (k, v) in &overrides {
            s.set(*k, Some(v.clone()));
        }
        let scope = Arc::new(s);
        if memo.len() == RECENT_SCOPES_KEPT {
            memo.remove(0);
        }
        memo.push((Arc::clone(base), overrides, Arc::clone(&scope)));
        scope
    })
}

fn random_trace() -> TraceId {
    TraceId::from_random(rng::next_u64(), rng::next_u64())
}

/// A first guess at the bytes an event's fields take, so most events allocate once.
fn capacity_for(fields: usize) -> usize {
    48 + 24 * fields
}

/// A record's head with the parts every record has; callers fill in the rest.
fn head<'a>(
    meta: &'static Metadata<'static>,
    kind: Kind,
    ts: Timestamp,
    scope: &'a Arc<Scope>,
) -> RecordHead<'a> {
    RecordHead {
        id: RecordId::ZERO,
        ts,
        kind,
        level: level_of(meta),
        name: meta.name(),
        target: meta.target(),
        message: None,
        trace_id: TraceId::ZERO,
        span_id: None,
        parent_span_id: None,
        scope,
        file: meta.file(),
        line: meta.line(),
        category: None,
        status: None,
        duration_ns: None,
        busy_ns: None,
        idle_ns: None,
    }
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
        let done = shipper::with_local(|local| {
            let Local {
                fields,
                scratch,
                rings,
                callsites,
            } = local;
            fields.clear();
            fields.reserve(capacity_for(meta.fields().len()));
            let mut v = FieldVisitor::new(fields, self.max_field_bytes);
            attrs.record(&mut v);
            let FieldVisitor {
                scope: overrides,
                inherited,
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
            let (trace_id, parent_span_id, base_scope) = match (parent_ctx, trace_id, remote_parent)
            {
                // A `traceparent` joins the caller's trace under the caller's span; scope
                // still comes from the local parent.
                (local, Some(t), Some(remote)) => (
                    t,
                    Some(remote),
                    local.map_or_else(|| Arc::clone(&self.root_scope), |(_, _, s)| s),
                ),
                (Some((t, p, s)), _, _) => (t, Some(p), s),
                // A root may take its trace id from a `trace_id` field (e.g. an X-Trace-Id).
                (None, Some(t), None) => (t, None, Arc::clone(&self.root_scope)),
                (None, None, _) => (random_trace(), None, Arc::clone(&self.root_scope)),
            };
            // A `baggage` field carries the remote parent's scope: it applies like a
            // parent's, so a run_id arriving there joins the caller's run.
            let base_scope = if inherited.is_empty() {
                base_scope
            } else {
                apply_scope(&base_scope, inherited)
            };
            // A span that sets its own run_id starts a run.
            let starts_run = overrides
                .iter()
                .any(|(k, v)| *k == ScopeKey::RunId && base_scope.run_id() != Some(v));
            let scope = apply_scope(&base_scope, overrides);
            let category = starts_run.then_some(CATEGORY_RUN);
            let span_id = SpanId::from_random(rng::next_u64());
            let created = Instant::now();
            let start = RecordHead {
                trace_id,
                span_id: Some(span_id),
                parent_span_id,
                category,
                ..head(meta, Kind::SpanStart, clock::wall(created), &scope)
            };
            self.shipper
                .emit(scratch, rings, &start, callsites.get(meta), &[fields]);
            // The span keeps an exact copy of its initial fields for its end record.
            let initial = fields.clone();
            SpanState::new(
                NewSpan {
                    trace_id,
                    span_id,
                    parent_span_id,
                    scope,
                    initial,
                    category,
                    error,
                    status,
                },
                created,
            )
        });
        match done {
            Some(state) => span.extensions_mut().insert(state),
            None => self.shipper.drop_record(level_of(meta)),
        }
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(_guard) = Reentrancy::enter() else {
            return;
        };
        let Some(span) = ctx.span(id) else { return };
        // Read the values first: that may run user `Debug` code which logs, and other
        // layers then look at this span, so the span's lock must not be held meanwhile.
        let mut late = EncodedFields::new();
        let mut v = FieldVisitor::new(&mut late, self.max_field_bytes).collecting_keys();
        values.record(&mut v);
        let FieldVisitor {
            scope: overrides,
            inherited,
            error,
            status,
            keys,
            ..
        } = v;
        let mut ext = span.extensions_mut();
        let Some(state) = ext.get_mut::<SpanState>() else {
            return;
        };
        state.record_late(&late, keys.as_deref().unwrap_or_default());
        state.error |= error;
        if status.is_some() {
            state.status = status;
        }
        state.override_scope(inherited);
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
        let meta = span.metadata();
        let Some(_guard) = Reentrancy::enter() else {
            return self.dropped_reentrant(level_of(meta));
        };
        let closed = Instant::now();
        let [duration, busy, idle] = state.timings(closed);
        let end = RecordHead {
            trace_id: state.trace_id,
            span_id: Some(state.span_id),
            parent_span_id: state.parent_span_id,
            category: state.category,
            status: Some(state.final_status()),
            duration_ns: Some(duration),
            busy_ns: Some(busy),
            idle_ns: Some(idle),
            ..head(meta, Kind::SpanEnd, clock::wall(closed), &state.scope)
        };
        // The initial fields, then the late ones (which win when decoded).
        let done = shipper::with_local(|local| {
            let Local {
                scratch,
                rings,
                callsites,
                ..
            } = local;
            self.shipper.emit(
                scratch,
                rings,
                &end,
                callsites.get(meta),
                &[&state.initial, &state.late],
            );
        });
        if done.is_none() {
            self.shipper.drop_record(level_of(meta));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let Some(_guard) = Reentrancy::enter() else {
            return self.dropped_reentrant(level_of(meta));
        };
        let done = shipper::with_local(|local| {
            let Local {
                fields,
                scratch,
                rings,
                callsites,
            } = local;
            fields.clear();
            fields.reserve(capacity_for(meta.fields().len()));
            let mut v = FieldVisitor::new(fields, self.max_field_bytes);
            event.record(&mut v);
            let FieldVisitor {
                scope: overrides,
                inherited,
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
            let base_scope = if inherited.is_empty() {
                base_scope
            } else {
                apply_scope(&base_scope, inherited)
            };
            let scope = apply_scope(&base_scope, overrides);
            let record = RecordHead {
                trace_id,
                span_id,
                message: fields.message_str(),
                status: error.then_some(Status::Error),
                ..head(meta, Kind::Event, Timestamp::now(), &scope)
            };
            self.shipper
                .emit(scratch, rings, &record, callsites.get(meta), &[fields]);
        });
        if done.is_none() {
            self.shipper.drop_record(level_of(meta));
        }
    }
}
