//! The worker thread: drains the rings, stamps ids, hands records to a sink and
//! answers flush requests. It runs with no subscriber, so nothing it does is traced.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use logbook_proto::wire::{decode_record, encode_record, EncodedFields, RECORD_LEVEL_OFFSET};
use logbook_proto::{Level, PerLevel, RecordId, Resource};
use logbook_redact::{Counts, Redactor};
use tracing_core::Dispatch;

use super::ring::{RingConsumer, RingStats, LEN_PREFIX};
use super::{Control, Counters, Identity};

/// A point in a sink's output: the last batch sealed and the drop totals at that time.
/// A flush is answered once the sink has delivered up to its mark.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) batch: u64,
    pub(crate) dropped: PerLevel<u64>,
}

/// The sink has no room (its share of the budget is spent): the record stays in its
/// ring for now.
#[derive(Debug)]
pub(crate) struct Full;

/// Where the worker delivers records.
pub(crate) trait Sink: Send {
    /// Takes one encoded record (in one or two pieces, as the ring holds it) and sets
    /// its id. The sink reserves the record's bytes from the budget; `Err(Full)` when it
    /// cannot. The worker has counted the record as taken (and uncounts it on `Full`).
    fn push(&mut self, record: [&[u8]; 2], id: RecordId, level: Level) -> Result<(), Full>;
    /// Ends the batch being built: sends or stores it (a sink may do this in steps).
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
    fn push(&mut self, _: [&[u8]; 2], _: RecordId, level: Level) -> Result<(), Full> {
        let mut levels = [0; Level::COUNT];
        levels[level.index()] = 1;
        self.counters.abandoned(&levels, 0);
        Ok(())
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

/// Shortest and longest sleep between polls of idle rings. Emitting threads wake the
/// worker only when a ring is half full; otherwise it polls, sleeping longer the
/// longer the rings stay empty.
const MIN_SLEEP: Duration = Duration::from_micros(500);
const MAX_SLEEP: Duration = Duration::from_millis(50);

/// How often the wall clock is measured against the monotonic one.
const CLOCK_RESYNC: Duration = Duration::from_secs(1);

/// Bytes taken from one ring per pass, so every ring gets its turn.
const DRAIN_BYTES: usize = 1 << 20;

/// A flush waits, first, until every ring is drained past what was written before it
/// (a full budget may keep records in rings for a while), then until the sink has
/// delivered the batches holding them.
struct PendingFlush {
    reply: Sender<()>,
    /// Each ring's write count when the flush was asked for.
    rings: Vec<(Arc<RingStats>, u64)>,
    /// Set once the rings are drained that far.
    mark: Option<Mark>,
}

pub(crate) struct Worker {
    rings_rx: Receiver<RingConsumer>,
    rings: Vec<RingConsumer>,
    control: Receiver<Control>,
    sink: Box<dyn Sink>,
    counters: Arc<Counters>,
    identity: Identity,
    next_id: u64,
    flushes: Vec<PendingFlush>,
    exit_timeout: Duration,
    /// Reused by redaction: the record's bytes in one piece, and its redacted form.
    scratch: Vec<u8>,
    redacted: Vec<u8>,
    counts: Counts,
}

impl Worker {
    pub(crate) fn new(
        rings_rx: Receiver<RingConsumer>,
        control: Receiver<Control>,
        sink: Box<dyn Sink>,
        counters: Arc<Counters>,
        identity: Identity,
        exit_timeout: Duration,
    ) -> Self {
        Self {
            rings_rx,
            rings: Vec::new(),
            control,
            sink,
            counters,
            identity,
            next_id: 1,
            flushes: Vec::new(),
            exit_timeout,
            scratch: Vec::new(),
            redacted: Vec::new(),
            counts: Counts::new(),
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
            let gone = self.take_new_rings();
            let mut progress = false;
            loop {
                match self.control.try_recv() {
                    Ok(Control::Flush(reply)) => {
                        // Everything written before the flush call is in the rings now:
                        // wait for that much, not for the rings to fall quiet.
                        self.take_new_rings();
                        let rings = self
                            .rings
                            .iter()
                            .map(|r| {
                                (
                                    Arc::clone(&r.stats),
                                    r.stats.written.load(Ordering::Acquire),
                                )
                            })
                            .collect();
                        self.flushes.push(PendingFlush {
                            reply,
                            rings,
                            mark: None,
                        });
                        self.drain();
                        progress = true;
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) if gone => {
                        self.finish();
                        return;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            progress |= self.drain() > 0;
            progress |= self.sink.poll();
            self.answer_flushes();
            if progress {
                sleep = MIN_SLEEP;
            } else {
                thread::park_timeout(sleep);
                sleep = (sleep * 2).min(MAX_SLEEP);
            }
        }
    }

    /// Adopts newly made rings; true when no more can come (the layer is gone).
    fn take_new_rings(&mut self) -> bool {
        loop {
            match self.rings_rx.try_recv() {
                Ok(r) => self.rings.push(r),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
    }

    /// Moves records from every ring into the sink, then seals; returns how many.
    fn drain(&mut self) -> usize {
        let mut taken = 0;
        for i in 0..self.rings.len() {
            taken += self.drain_ring(i);
        }
        // Rings of exited threads, once empty, give their bytes back.
        self.rings.retain(|r| {
            let done = r.consumer.is_abandoned() && r.consumer.is_empty();
            if done {
                self.counters.release(r.stats.reserved);
            }
            !done
        });
        if taken > 0 {
            self.sink.seal();
        }
        taken
    }

    fn drain_ring(&mut self, i: usize) -> usize {
        let ring = &mut self.rings[i];
        ring.stats.wake.store(false, Ordering::Release);
        let available = ring.consumer.slots().min(DRAIN_BYTES);
        let Ok(chunk) = ring.consumer.read_chunk(available) else {
            return 0;
        };
        let (a, b) = chunk.as_slices();
        let (mut pos, mut taken) = (0, 0);
        let total = a.len() + b.len();
        while pos + LEN_PREFIX <= total {
            let mut len_bytes = [0u8; LEN_PREFIX];
            copy_out(a, b, pos, &mut len_bytes);
            let len = u32::from_le_bytes(len_bytes) as usize;
            let start = pos + LEN_PREFIX;
            if start + len > total {
                break;
            }
            // The record in one or two pieces, as the ring holds it.
            let parts: [&[u8]; 2] = if start + len <= a.len() {
                [&a[start..start + len], &[]]
            } else if start >= a.len() {
                [&b[start - a.len()..start - a.len() + len], &[]]
            } else {
                [&a[start..], &b[..start + len - a.len()]]
            };
            let level =
                Level::from_code(byte_at(parts, RECORD_LEVEL_OFFSET)).unwrap_or(Level::Info);
            let parts = match &self.identity.redactor {
                Some(redactor)
                    if redact(
                        redactor,
                        parts,
                        &self.identity.resource,
                        &mut self.scratch,
                        &mut self.counts,
                        &mut self.redacted,
                    ) =>
                {
                    [&self.redacted[..], &[][..]]
                }
                _ => parts,
            };
            let id = RecordId::new(self.identity.instance, self.next_id);
            self.counters.taken(1);
            if self.sink.push(parts, id, level).is_err() {
                self.counters.untaken(1);
                break;
            }
            self.next_id += 1;
            taken += 1;
            pos = start + len;
        }
        chunk.commit(pos);
        ring.stats.taken.fetch_add(taken as u64, Ordering::AcqRel);
        taken
    }

    fn answer_flushes(&mut self) {
        let drained = |f: &PendingFlush| {
            f.rings
                .iter()
                .all(|(r, w)| r.taken.load(Ordering::Acquire) >= *w)
        };
        if self.flushes.iter().any(|f| f.mark.is_none() && drained(f)) {
            self.sink.seal();
            let mark = self.sink.mark();
            for f in self.flushes.iter_mut().filter(|f| f.mark.is_none()) {
                if drained(f) {
                    f.mark = Some(mark);
                }
            }
        }
        let sink = &self.sink;
        self.flushes.retain(|f| match &f.mark {
            Some(mark) if sink.reached(mark) => {
                let _ = f.reply.send(());
                false
            }
            _ => true,
        });
    }

    /// The layer is gone: deliver what is left, within the flush timeout.
    fn finish(&mut self) {
        let deadline = Instant::now() + self.exit_timeout;
        loop {
            self.drain();
            let idle = self.sink.is_idle() && self.rings.iter().all(|r| r.consumer.is_empty());
            if idle || Instant::now() >= deadline {
                break;
            }
            if !self.sink.poll() {
                thread::sleep(MIN_SLEEP * 4);
            }
        }
        self.answer_flushes();
    }
}

/// Copies `out.len()` bytes starting at `pos` of the concatenation `a ++ b`.
/// Redacts one encoded record into `out`; false (and `out` untouched) when nothing in
/// it needed redacting, or it does not decode (the collector will say why).
fn redact(
    redactor: &Redactor,
    parts: [&[u8]; 2],
    resource: &Arc<Resource>,
    scratch: &mut Vec<u8>,
    counts: &mut Counts,
    out: &mut Vec<u8>,
) -> bool {
    scratch.clear();
    scratch.extend_from_slice(parts[0]);
    scratch.extend_from_slice(parts[1]);
    let Ok(mut r) = decode_record(scratch, resource) else {
        return false;
    };
    counts.clear();
    redactor.redact_record(&mut r, counts);
    if counts.total() == 0 {
        return false;
    }
    let mut fields = EncodedFields::with_capacity(scratch.len());
    for (k, v) in r.fields.iter() {
        fields.push(k, v);
    }
    out.clear();
    encode_record(out, &r.head(), &[&fields]);
    true
}

fn copy_out(a: &[u8], b: &[u8], pos: usize, out: &mut [u8]) {
    for (i, o) in out.iter_mut().enumerate() {
        let p = pos + i;
        *o = if p < a.len() { a[p] } else { b[p - a.len()] };
    }
}

/// The byte at `at` of a record in pieces.
fn byte_at(parts: [&[u8]; 2], at: usize) -> u8 {
    if at < parts[0].len() {
        parts[0][at]
    } else {
        parts[1].get(at - parts[0].len()).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_read_across_the_wrap() {
        let mut out = [0u8; 4];
        copy_out(&[1, 2, 3], &[4, 5, 6], 1, &mut out);
        assert_eq!(out, [2, 3, 4, 5]);
        assert_eq!(byte_at([&[9], &[7, 8]], 1), 7);
        assert_eq!(byte_at([&[9, 1], &[]], 1), 1);
    }
}
