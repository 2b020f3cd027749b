//! What the emitting thread produces: a [`Captured`] record, its fields already in wire
//! encoding (one allocation), everything else borrowed from `tracing`'s callsite
//! metadata or shared by reference. The worker adds the id and resource.

use std::cell::Cell;
use std::sync::Arc;

use logbook_proto::wire::{EncodedFields, RecordHead};
use logbook_proto::{
    Kind, Level, Record, RecordId, Resource, Scope, SpanId, Status, Str, Timestamp, TraceId,
};
use tracing_core::Metadata;

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

/// One record as captured on the emitting thread.
pub(crate) struct Captured {
    pub(crate) meta: &'static Metadata<'static>,
    pub(crate) kind: Kind,
    pub(crate) ts: Timestamp,
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: Option<SpanId>,
    pub(crate) parent_span_id: Option<SpanId>,
    /// `None` only while the slot waits in the pool.
    pub(crate) scope: Option<Arc<Scope>>,
    pub(crate) category: Option<&'static str>,
    pub(crate) status: Option<Status>,
    /// duration, busy, idle (span ends only)
    pub(crate) timings: Option<[u64; 3]>,
    /// The record's fields and message (a span end: initial fields, then late ones).
    pub(crate) own: EncodedFields,
}

/// Slots kept for reuse hold no buffer larger than this.
const MAX_RECYCLED_BYTES: usize = 1024;

/// The scope of a slot that has none (only ever seen while it waits in the pool).
static NO_SCOPE: std::sync::LazyLock<Arc<Scope>> = std::sync::LazyLock::new(Arc::default);

impl Captured {
    /// An empty slot.
    pub(crate) fn empty(meta: &'static Metadata<'static>) -> Self {
        Self {
            meta,
            kind: Kind::Event,
            ts: Timestamp(0),
            trace_id: TraceId::ZERO,
            span_id: None,
            parent_span_id: None,
            scope: None,
            category: None,
            status: None,
            timings: None,
            own: EncodedFields::new(),
        }
    }

    /// Empties the slot for reuse: drops its references, keeps a modest buffer.
    /// Returns whether it is worth keeping.
    pub(crate) fn recycle(&mut self) -> bool {
        self.scope = None;
        self.own.clear();
        self.own.capacity() <= MAX_RECYCLED_BYTES
    }

    pub(crate) fn level(&self) -> Level {
        level_of(self.meta)
    }

    /// Bytes this record holds while buffered: the unit of the layer's buffer limit.
    pub(crate) fn cost(&self) -> usize {
        std::mem::size_of::<Self>() + self.own.capacity()
    }

    /// Everything but the fields, with the id the worker assigned.
    pub(crate) fn head(&self, id: RecordId) -> RecordHead<'_> {
        let (duration_ns, busy_ns, idle_ns) = match self.timings {
            Some([d, b, i]) => (Some(d), Some(b), Some(i)),
            None => (None, None, None),
        };
        RecordHead {
            id,
            ts: self.ts,
            kind: self.kind,
            level: level_of(self.meta),
            name: self.meta.name(),
            target: self.meta.target(),
            message: self.own.message_str(),
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            scope: self.scope.as_ref().unwrap_or(&NO_SCOPE),
            file: self.meta.file(),
            line: self.meta.line(),
            category: self.category,
            status: self.status,
            duration_ns,
            busy_ns,
            idle_ns,
        }
    }

    /// A whole [`Record`], for the embedded store, which wants values, not bytes.
    pub(crate) fn to_record(&self, id: RecordId, resource: &Arc<Resource>) -> Record {
        let mut r = Record::new(
            id,
            self.ts,
            self.kind,
            self.level(),
            Str::Borrowed(self.meta.name()),
        );
        r.target = Str::Borrowed(self.meta.target());
        r.message = self.own.message_str().map(str::to_owned);
        r.trace_id = self.trace_id;
        r.span_id = self.span_id;
        r.parent_span_id = self.parent_span_id;
        r.resource = Arc::clone(resource);
        r.file = self.meta.file().map(Str::Borrowed);
        r.line = self.meta.line();
        r.category = self.category.map(Str::Borrowed);
        r.status = self.status;
        if let Some([d, b, i]) = self.timings {
            (r.duration_ns, r.busy_ns, r.idle_ns) = (Some(d), Some(b), Some(i));
        }
        // Our own encoding of our own values always decodes.
        r.fields = self.own.decode().unwrap_or_default();
        r.scope = Arc::clone(self.scope.as_ref().unwrap_or(&NO_SCOPE));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reentrancy_guard_is_exclusive_per_thread() {
        let g = Reentrancy::enter().unwrap();
        assert!(Reentrancy::enter().is_none());
        drop(g);
        assert!(Reentrancy::enter().is_some());
    }
}
