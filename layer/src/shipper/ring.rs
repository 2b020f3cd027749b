//! Per-thread byte rings: the channel between the emitting threads and the worker.
//!
//! Each thread that emits writes whole encoded records into its own single-producer,
//! single-consumer ring (one atomic store per record; no allocation, no lock, no
//! counter shared with other threads). The worker polls every ring. A ring takes its
//! capacity from the layer's byte budget when it is created and gives it back when its
//! thread has exited and the worker has drained it.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use logbook_proto::wire::{CallsiteBytes, EncodedFields};
use tracing_core::Metadata;

/// What both ends share about one ring.
#[derive(Debug, Default)]
pub(crate) struct RingStats {
    /// Records written (set by the producer only).
    pub(crate) written: AtomicU64,
    /// Records taken by the worker (set by the worker only).
    pub(crate) taken: AtomicU64,
    /// The producer asked the worker to come sooner (the ring is half full).
    pub(crate) wake: AtomicBool,
    /// Bytes reserved from the budget for this ring.
    pub(crate) reserved: usize,
}

impl RingStats {
    /// Records written but not yet taken.
    pub(crate) fn pending(&self) -> u64 {
        self.written
            .load(Ordering::Acquire)
            .saturating_sub(self.taken.load(Ordering::Acquire))
    }
}

/// The worker's end of a ring.
pub(crate) struct RingConsumer {
    pub(crate) consumer: rtrb::Consumer<u8>,
    pub(crate) stats: Arc<RingStats>,
}

/// A thread's end of one shipper's ring.
pub(crate) struct RingProducer {
    pub(crate) shipper: u64,
    /// `None` when no ring could be had (budget spent): the thread's records drop.
    pub(crate) producer: Option<rtrb::Producer<u8>>,
    pub(crate) stats: Arc<RingStats>,
    pub(crate) written: u64,
}

/// What an emitting thread keeps for the layer.
#[derive(Default)]
pub(crate) struct Local {
    /// Reused for every record's fields.
    pub(crate) fields: EncodedFields,
    /// Reused to encode every record.
    pub(crate) scratch: Vec<u8>,
    pub(crate) rings: Vec<RingProducer>,
    /// Callsites' encoded name, target, file and line.
    pub(crate) callsites: Callsites,
}

/// Slots in the per-thread callsite table.
const CALLSITE_SLOTS: usize = 256;

/// A direct-mapped table from a callsite's metadata to its encoded constant parts: a
/// hot callsite is encoded once per thread, not once per record.
#[derive(Default)]
pub(crate) struct Callsites(Vec<Option<(usize, CallsiteBytes)>>);

impl Callsites {
    pub(crate) fn get(&mut self, meta: &'static Metadata<'static>) -> &CallsiteBytes {
        if self.0.is_empty() {
            self.0.resize_with(CALLSITE_SLOTS, || None);
        }
        let key = std::ptr::from_ref(meta) as usize;
        let slot = &mut self.0[(key >> 4) % CALLSITE_SLOTS];
        if slot.as_ref().is_none_or(|(k, _)| *k != key) {
            *slot = Some((
                key,
                CallsiteBytes::new(meta.name(), meta.target(), meta.file(), meta.line()),
            ));
        }
        &slot.as_ref().expect("filled above").1
    }
}

thread_local! {
    static LOCAL: RefCell<Local> = RefCell::new(Local::default());
}

/// Runs `f` with this thread's state, or returns `None` when it is unavailable (the
/// thread is exiting, or the state is in use further up the stack).
pub(crate) fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    LOCAL
        .try_with(|l| l.try_borrow_mut().ok().map(|mut l| f(&mut l)))
        .ok()
        .flatten()
}

/// Bytes before each record in a ring: its length.
pub(crate) const LEN_PREFIX: usize = 4;
