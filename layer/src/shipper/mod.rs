//! Shipping records off the hot path: the queue, the worker thread and its sinks.

mod counters;
#[cfg(feature = "embedded")]
mod embedded;
mod socket;
mod worker;

use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use crossbeam_queue::ArrayQueue;
use logbook_proto::{InstanceId, Resource};

pub(crate) use counters::{Counters, LevelCounts};
#[cfg(feature = "embedded")]
pub(crate) use embedded::EmbeddedSink;
pub(crate) use socket::{Backoff, SocketSink};
pub(crate) use worker::{Mark, NullSink, Sink, Worker};

use crate::capture::Captured;
use crate::guard::{FlushReport, Stats};

/// Recycled record slots kept at most (each holds at most 1 KiB of buffer).
const POOL_SLOTS: usize = 1024;

/// The worker thread's name.
pub(crate) const WORKER_THREAD: &str = "logbook-shipper";

/// Who is emitting: stamped on every record by the worker.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub(crate) instance: InstanceId,
    pub(crate) resource: Arc<Resource>,
}

/// Requests to the worker that are not records.
pub(crate) enum Control {
    /// Reply once everything queued so far is delivered.
    Flush(Sender<()>),
}

/// The emitting side of a worker: what the layer and its handles hold.
pub(crate) struct Shipper {
    tx: Sender<Box<Captured>>,
    /// Emptied record slots coming back from the worker, so that in steady state an
    /// event allocates nothing (the worker frees on another thread, which would make
    /// every allocation take the allocator's slow path).
    pool: Arc<ArrayQueue<Box<Captured>>>,
    control: Sender<Control>,
    worker: Thread,
    pub(crate) counters: Arc<Counters>,
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
        let (tx, rx) = crossbeam_channel::unbounded();
        let (control, control_rx) = crossbeam_channel::unbounded();
        let pool = Arc::new(ArrayQueue::new(POOL_SLOTS));
        let worker = Worker::new(
            rx,
            control_rx,
            sink,
            Arc::clone(&counters),
            identity,
            flush_timeout,
            Arc::clone(&pool),
        );
        let handle = std::thread::Builder::new()
            .name(WORKER_THREAD.into())
            .spawn(move || worker.run())?;
        Ok(Arc::new(Self {
            tx,
            pool,
            control,
            worker: handle.thread().clone(),
            counters,
            flush_timeout,
            endpoint,
        }))
    }

    /// A slot to fill in: recycled if one is free.
    pub(crate) fn slot(&self, meta: &'static tracing_core::Metadata<'static>) -> Box<Captured> {
        self.pool
            .pop()
            .unwrap_or_else(|| Box::new(Captured::empty(meta)))
    }

    /// Queues a record if the buffer has room; counts it as dropped otherwise.
    /// Never blocks and never wakes the worker: the worker polls.
    pub(crate) fn send(&self, cap: Box<Captured>) {
        let cost = cap.cost();
        if !self.counters.try_acquire(cost) {
            self.counters.drop_unqueued(cap.level());
            return;
        }
        if let Err(e) = self.tx.send(cap) {
            self.counters.release(cost);
            self.counters.drop_unqueued(e.0.level());
        }
    }

    /// Waits until everything queued before this call is delivered, or `timeout`.
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
        Stats {
            delivered: self.counters.delivered_total(),
            rejected: self.counters.rejected_total(),
            dropped: dropped_by_level.iter().sum(),
            dropped_by_level,
            pending: self.tx.len() as u64 + self.counters.in_worker(),
            buffered_bytes: self.counters.used(),
            buffer_capacity: self.counters.capacity(),
        }
    }
}
