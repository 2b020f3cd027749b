//! Shipping records off the hot path: per-thread rings, the worker thread and its sinks.

mod counters;
#[cfg(feature = "embedded")]
mod embedded;
pub(crate) mod ring;
mod socket;
pub(crate) mod transport;
mod worker;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use logbook_proto::wire::{encode_record_at, CallsiteBytes, EncodedFields, RecordHead};
use logbook_proto::{InstanceId, Level, Resource};

pub(crate) use counters::{Counters, LevelCounts};
#[cfg(feature = "embedded")]
pub(crate) use embedded::EmbeddedSink;
use ring::{Local, RingConsumer, RingProducer, RingStats, LEN_PREFIX};
pub(crate) use socket::{Backoff, SocketSink};
pub(crate) use worker::{Mark, NullSink, Sink, Worker};

use crate::guard::{FlushReport, Stats};

/// The worker thread's name.
pub(crate) const WORKER_THREAD: &str = "logbook-shipper";

/// The smallest ring a thread gets when the budget is tight.
const MIN_RING_BYTES: usize = 16 * 1024;

/// A thread's ring grows (doubling) up to this share of the budget.
const MAX_RING_SHARE: usize = 4;

/// Who is emitting: stamped on every record by the worker.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) instance: InstanceId,
    pub(crate) resource: Arc<Resource>,
    /// Applied by the worker to every record before it leaves the process.
    pub(crate) redactor: Option<Arc<logbook_redact::Redactor>>,
}

/// Requests to the worker that are not records.
pub(crate) enum Control {
    /// Reply once everything written so far is delivered.
    Flush(Sender<()>),
}

static NEXT_SHIPPER: AtomicU64 = AtomicU64::new(1);

/// The emitting side of a worker: what the layer and its handles hold.
pub(crate) struct Shipper {
    id: u64,
    /// New rings for the worker to poll.
    rings_tx: Sender<RingConsumer>,
    control: Sender<Control>,
    worker: Thread,
    pub(crate) counters: Arc<Counters>,
    /// Every ring's counters, for `stats` (touched only when a ring is made).
    rings: Mutex<Vec<Weak<RingStats>>>,
    /// A new thread's ring size; rings double when a burst fills them.
    ring_bytes: usize,
    max_ring_bytes: usize,
    /// Warned that a thread could get no ring.
    warned_no_ring: AtomicBool,
    pub(crate) flush_timeout: Duration,
    pub(crate) endpoint: String,
}

impl Shipper {
    /// Starts the worker thread around `sink`.
    pub(crate) fn spawn(
        sink: Box<dyn Sink>,
        counters: Arc<Counters>,
        identity: Identity,
        flush_timeout: Duration,
        endpoint: String,
    ) -> std::io::Result<Arc<Self>> {
        let (rings_tx, rings_rx) = crossbeam_channel::unbounded();
        let (control, control_rx) = crossbeam_channel::unbounded();
        let worker = Worker::new(
            rings_rx,
            control_rx,
            sink,
            Arc::clone(&counters),
            identity,
            flush_timeout,
        );
        let handle = std::thread::Builder::new()
            .name(WORKER_THREAD.into())
            .spawn(move || worker.run())?;
        // Rings share the budget with the worker's unacknowledged batches. They start
        // small (steady logging needs little) and double when a burst fills them.
        let ring_bytes = (counters.capacity() / 1024).clamp(MIN_RING_BYTES, 256 << 10);
        let max_ring_bytes = (counters.capacity() / MAX_RING_SHARE).max(ring_bytes);
        Ok(Arc::new(Self {
            id: NEXT_SHIPPER.fetch_add(1, Ordering::Relaxed),
            rings_tx,
            control,
            worker: handle.thread().clone(),
            counters,
            rings: Mutex::new(Vec::new()),
            ring_bytes,
            max_ring_bytes,
            warned_no_ring: AtomicBool::new(false),
            flush_timeout,
            endpoint,
        }))
    }

    /// Encodes a record into this thread's ring. Never blocks; a record that does not
    /// fit is counted as dropped.
    pub(crate) fn emit(
        &self,
        scratch: &mut Vec<u8>,
        rings: &mut Vec<RingProducer>,
        head: &RecordHead<'_>,
        callsite: &CallsiteBytes,
        fields: &[&EncodedFields],
    ) {
        scratch.clear();
        scratch.extend_from_slice(&[0; LEN_PREFIX]);
        encode_record_at(scratch, head, callsite, fields);
        let len = u32::try_from(scratch.len() - LEN_PREFIX).unwrap_or(u32::MAX);
        scratch[..LEN_PREFIX].copy_from_slice(&len.to_le_bytes());

        let ring = match rings.iter().position(|r| r.shipper == self.id) {
            Some(i) => &mut rings[i],
            None => {
                rings.retain(|r| r.producer.as_ref().is_some_and(|p| !p.is_abandoned()));
                rings.push(self.new_ring(self.ring_bytes));
                rings.last_mut().expect("just pushed")
            }
        };
        let Some(producer) = ring.producer.as_mut() else {
            return self.counters.drop_unqueued(head.level);
        };
        if producer.push_entire_slice(scratch).is_err() {
            // A burst filled the ring: move to one twice the size (the worker drains the
            // old one first, so order is kept), or drop if the budget allows no more.
            let size = (ring.stats.reserved * 2).max(scratch.len().next_power_of_two());
            if size > self.max_ring_bytes || !self.counters.try_acquire(size) {
                return self.counters.drop_unqueued(head.level);
            }
            *ring = self.make_ring(size);
            let pushed = ring
                .producer
                .as_mut()
                .is_some_and(|bigger| bigger.push_entire_slice(scratch).is_ok());
            if !pushed {
                return self.counters.drop_unqueued(head.level);
            }
        }
        let producer = ring.producer.as_ref().expect("pushed into it");
        ring.written += 1;
        ring.stats.written.store(ring.written, Ordering::Release);
        // Past half full, ask the worker to come sooner (once, until it has drained).
        if producer.slots() < ring.stats.reserved / 2
            && !ring.stats.wake.swap(true, Ordering::AcqRel)
        {
            self.worker.unpark();
        }
    }

    /// A ring of `size` bytes (less if the budget is tight) for the calling thread,
    /// reserved from the budget.
    fn new_ring(&self, size: usize) -> RingProducer {
        let mut size = size;
        while !self.counters.try_acquire(size) {
            size /= 2;
            if size < MIN_RING_BYTES {
                if !self.warned_no_ring.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "logbook: the buffer ({} bytes) is spent; records from new threads are dropped (raise LOGBOOK_BUFFER)",
                        self.counters.capacity()
                    );
                }
                return RingProducer {
                    shipper: self.id,
                    producer: None,
                    stats: Arc::default(),
                    written: 0,
                };
            }
        }
        self.make_ring(size)
    }

    /// A ring of `size` bytes, already reserved from the budget, registered with the worker.
    fn make_ring(&self, size: usize) -> RingProducer {
        let stats = Arc::new(RingStats {
            reserved: size,
            ..RingStats::default()
        });
        let (producer, consumer) = rtrb::RingBuffer::new(size);
        if self
            .rings_tx
            .send(RingConsumer {
                consumer,
                stats: Arc::clone(&stats),
            })
            .is_err()
        {
            self.counters.release(size);
            return RingProducer {
                shipper: self.id,
                producer: None,
                stats,
                written: 0,
            };
        }
        let mut all = self.rings.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|w| w.strong_count() > 0);
        all.push(Arc::downgrade(&stats));
        drop(all);
        self.worker.unpark();
        RingProducer {
            shipper: self.id,
            producer: Some(producer),
            stats,
            written: 0,
        }
    }

    /// Counts a record that could not even be encoded (the thread is exiting).
    pub(crate) fn drop_record(&self, level: Level) {
        self.counters.drop_unqueued(level);
    }

    /// Waits until everything written before this call is delivered, or `timeout`.
    pub(crate) fn flush(&self, timeout: Duration) -> FlushReport {
        let start = Instant::now();
        let (reply, done) = crossbeam_channel::bounded(1);
        let complete = self.control.send(Control::Flush(reply)).is_ok() && {
            self.worker.unpark();
            done.recv_timeout(timeout).is_ok()
        };
        let stats = self.stats();
        FlushReport {
            complete,
            waited: start.elapsed(),
            delivered: stats.delivered,
            rejected: stats.rejected,
            dropped: stats.dropped,
            undelivered: stats.pending,
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let dropped_by_level = self.counters.dropped_by_level();
        let in_rings: u64 = self
            .rings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .map(|r| r.pending())
            .sum();
        Stats {
            delivered: self.counters.delivered_total(),
            rejected: self.counters.rejected_total(),
            dropped: dropped_by_level.iter().sum(),
            dropped_by_level,
            pending: in_rings + self.counters.in_worker(),
            resent: self.counters.resent_total(),
            buffered_bytes: self.counters.used(),
            buffer_capacity: self.counters.capacity(),
        }
    }
}

/// Runs `f` with the calling thread's reusable buffers and rings.
pub(crate) fn with_local<R>(f: impl FnOnce(&mut Local) -> R) -> Option<R> {
    ring::with_local(f)
}
