//! The worker thread: takes captured records off the queue, stamps ids, hands them to
//! a sink and answers flush requests. It runs with no subscriber, so nothing it does
//! is traced.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use crossbeam_queue::ArrayQueue;
use logbook_proto::RecordId;
use tracing_core::Dispatch;

use super::{Control, Counters, Identity};
use crate::capture::Captured;

/// A point in a sink's output: the last batch sealed and the drop totals at that time.
/// A flush is answered once the sink has delivered up to its mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) batch: u64,
    pub(crate) dropped: [u64; 5],
}

/// Where the worker delivers records.
pub(crate) trait Sink: Send {
    /// Adds one record with its id, whose buffer charge is `cost`, to the batch being built.
    fn push(&mut self, record: &Captured, id: RecordId, cost: usize);
    /// Ends the batch being built: sends or stores it.
    fn seal(&mut self);
    /// Periodic work (acknowledgements, reconnects, drop reports); true if it did any.
    fn poll(&mut self) -> bool;
    /// Where the sink's output stands now (call after `seal`).
    fn mark(&self) -> Mark;
    /// Whether everything up to `mark` is delivered: its batches acknowledged and its
    /// drop totals reported.
    fn reached(&self, mark: &Mark) -> bool;
    /// Nothing is being built, queued or awaiting acknowledgement.
    fn is_idle(&self) -> bool;
}

/// A sink for a layer that could not be set up: every record is counted as dropped.
pub(crate) struct NullSink {
    pub(crate) counters: Arc<Counters>,
}

impl Sink for NullSink {
    fn push(&mut self, record: &Captured, _: RecordId, cost: usize) {
        let mut levels = [0; 5];
        levels[record.level().index()] = 1;
        self.counters.abandoned(&levels, cost);
    }
    fn seal(&mut self) {}
    fn poll(&mut self) -> bool {
        false
    }
    fn mark(&self) -> Mark {
        Mark::default()
    }
    fn reached(&self, _: &Mark) -> bool {
        true
    }
    fn is_idle(&self) -> bool {
        true
    }
}

/// Shortest and longest sleep between polls of an idle queue. Emitting threads never
/// wake the worker (that would cost them a system call); it polls instead, sleeping
/// longer the longer the queue stays empty.
const MIN_SLEEP: Duration = Duration::from_micros(500);
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// How often the wall clock is measured against the monotonic one.
const CLOCK_RESYNC: Duration = Duration::from_secs(1);

/// Records taken per poll before the sink gets a chance to read acknowledgements.
const DRAIN_CHUNK: usize = 4096;

pub(crate) struct Worker {
    rx: Receiver<Box<Captured>>,
    control: Receiver<Control>,
    sink: Box<dyn Sink>,
    counters: Arc<Counters>,
    identity: Identity,
    next_id: u64,
    flushes: Vec<(Sender<()>, Mark)>,
    exit_timeout: Duration,
    /// Every emitting handle is gone: deliver what is left and stop.
    disconnected: bool,
    pool: Arc<ArrayQueue<Box<Captured>>>,
}

impl Worker {
    pub(crate) fn new(
        rx: Receiver<Box<Captured>>,
        control: Receiver<Control>,
        sink: Box<dyn Sink>,
        counters: Arc<Counters>,
        identity: Identity,
        exit_timeout: Duration,
        pool: Arc<ArrayQueue<Box<Captured>>>,
    ) -> Self {
        Self {
            rx,
            control,
            sink,
            counters,
            identity,
            next_id: 1,
            flushes: Vec::new(),
            exit_timeout,
            disconnected: false,
            pool,
        }
    }

    pub(crate) fn run(mut self) {
        let _untraced = tracing_core::dispatcher::set_default(&Dispatch::none());
        let mut sleep = MIN_SLEEP;
        let mut synced = Instant::now();
        crate::clock::resync();
        loop {
            if synced.elapsed() >= CLOCK_RESYNC {
                crate::clock::resync();
                synced = Instant::now();
            }
            let mut progress = false;
            while let Ok(Control::Flush(reply)) = self.control.try_recv() {
                // Everything queued before the flush call is in the channel now: take it,
                // then wait only for that much, not for the queue to fall quiet.
                self.drain();
                self.flushes.push((reply, self.sink.mark()));
                progress = true;
            }
            progress |= self.drain() > 0;
            progress |= self.sink.poll();
            self.answer_flushes();
            if self.disconnected {
                self.finish();
                return;
            }
            if progress {
                sleep = MIN_SLEEP;
            } else {
                thread::park_timeout(sleep);
                sleep = (sleep * 2).min(MAX_SLEEP);
            }
        }
    }

    /// Moves queued records into the sink; returns how many. Notes when every emitting
    /// handle is gone.
    fn drain(&mut self) -> usize {
        let mut taken = 0;
        loop {
            match self.rx.try_recv() {
                Ok(cap) => {
                    let cost = cap.cost();
                    self.counters.taken(1);
                    let id = RecordId::new(self.identity.instance, self.next_id);
                    self.next_id += 1;
                    self.sink.push(&cap, id, cost);
                    self.recycle(cap);
                    taken += 1;
                    if taken % DRAIN_CHUNK == 0 {
                        self.sink.seal();
                        self.sink.poll();
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.disconnected = true;
                    break;
                }
            }
        }
        if taken > 0 {
            self.sink.seal();
        }
        taken
    }

    /// Returns an emptied slot to the emitting threads (or frees it if the pool is full
    /// or its buffer grew large).
    fn recycle(&self, mut cap: Box<Captured>) {
        if cap.recycle() {
            let _ = self.pool.push(cap);
        }
    }

    fn answer_flushes(&mut self) {
        let sink = &self.sink;
        self.flushes.retain(|(reply, mark)| {
            if sink.reached(mark) {
                let _ = reply.send(());
                false
            } else {
                true
            }
        });
    }

    /// The layer is gone: deliver what is left, within the flush timeout.
    fn finish(&mut self) {
        let deadline = Instant::now() + self.exit_timeout;
        while !self.sink.is_idle() && Instant::now() < deadline {
            if !self.sink.poll() {
                thread::sleep(MIN_SLEEP * 4);
            }
        }
        self.answer_flushes();
    }
}
