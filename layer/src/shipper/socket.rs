//! Delivery to a collector over a Unix socket: batches, acknowledgements, resends
//! after reconnect, capped exponential backoff and drop reports.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use logbook_proto::wire::{
    decode_frame, encode_frame, read_frame, Ack, BatchEncoder, ErrorCode, ErrorFrame, Frame, Gap,
    Hello, Reject, DEFAULT_MAX_FRAME_BYTES, HEADER_LEN,
};
use logbook_proto::{RecordId, Resource};
use tracing_core::Dispatch;

use super::{Counters, LevelCounts, Mark, Sink};
use crate::capture::Captured;
use crate::rng;

/// A batch is sealed once its frame reaches this size…
const BATCH_TARGET_BYTES: usize = 256 * 1024;
/// …or holds this many records.
const BATCH_MAX_RECORDS: u32 = 4096;
/// How long a handshake may take. Writes have no timeout: a collector that stops
/// reading is applying backpressure (its writer is behind), not dead; a dead one closes
/// the socket, and the write fails.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A batch the collector answered with a decoding error this many times is given up
/// (and its records counted as dropped) rather than resent forever.
const MAX_BATCH_FAILURES: u32 = 3;
/// How often, at most, a changed drop count is reported.
const GAP_INTERVAL: Duration = Duration::from_millis(100);
/// Rejection reasons printed to stderr before going quiet.
const MAX_REJECT_NOTICES: u64 = 10;

/// Exponential backoff between connection attempts, capped at `max` (the cap is an
/// upper bound: `min`, not `max`), with jitter so a fleet does not reconnect in step.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The next delay: `min · 2^attempt`, at most `max`, minus up to 25% jitter.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.attempt.min(20));
        self.attempt = self.attempt.saturating_add(1);
        let capped = exp.min(self.max);
        let jitter = (rng::next_u64() % 1024) as u32;
        capped - capped / 4 * jitter / 1024
    }

    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

struct OpenBatch {
    seq: u64,
    enc: BatchEncoder,
    cost: usize,
    levels: LevelCounts,
}

impl OpenBatch {
    /// An empty batch with the next sequence number.
    fn next(next_seq: &mut u64) -> Self {
        let seq = *next_seq;
        *next_seq += 1;
        Self {
            seq,
            enc: BatchEncoder::new(seq),
            cost: 0,
            levels: [0; 5],
        }
    }
}

struct SentBatch {
    seq: u64,
    /// The sequence number a flush waits for: `seq`, or for a batch re-split to fit a
    /// smaller frame limit, the number of the batch it came from.
    flush_seq: u64,
    frame: Vec<u8>,
    count: u32,
    cost: usize,
    levels: LevelCounts,
    failures: u32,
}

struct Conn {
    stream: UnixStream,
    /// Batches `unacked[..written]` went out on this connection.
    written: usize,
}

enum ConnEvent {
    Ack(u64, Ack),
    Reject(u64, Reject),
    Closed(u64, Option<ErrorFrame>),
}

pub(crate) struct SocketSink {
    path: PathBuf,
    hello: Hello,
    counters: Arc<Counters>,
    worker: Thread,
    conn: Option<Conn>,
    generation: u64,
    events_tx: Sender<ConnEvent>,
    events_rx: Receiver<ConnEvent>,
    backoff: Backoff,
    next_connect: Instant,
    max_frame: usize,
    next_seq: u64,
    open: Option<OpenBatch>,
    unacked: VecDeque<SentBatch>,
    gap_sent: [u64; 5],
    gap_at: Instant,
    /// Printed "cannot connect" for the current outage.
    outage_reported: bool,
    reject_notices: u64,
}

impl SocketSink {
    pub(crate) fn new(
        path: PathBuf,
        hello: Hello,
        counters: Arc<Counters>,
        backoff: Backoff,
    ) -> Self {
        let (events_tx, events_rx) = crossbeam_channel::unbounded();
        Self {
            path,
            hello,
            counters,
            // Replaced by the worker thread's handle on first use (see `poll`).
            worker: thread::current(),
            conn: None,
            generation: 0,
            events_tx,
            events_rx,
            backoff,
            next_connect: Instant::now(),
            max_frame: DEFAULT_MAX_FRAME_BYTES as usize,
            next_seq: 1,
            open: None,
            unacked: VecDeque::new(),
            gap_sent: [0; 5],
            gap_at: Instant::now(),
            outage_reported: false,
            reject_notices: 0,
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        let mut stream = UnixStream::connect(&self.path)?;
        stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let mut buf = Vec::new();
        encode_frame(&Frame::Hello(self.hello.clone()), &mut buf);
        stream.write_all(&buf)?;
        if !read_frame(&mut stream, DEFAULT_MAX_FRAME_BYTES, &mut buf).map_err(io::Error::other)? {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "collector closed the connection during the handshake",
            ));
        }
        match decode_frame(&buf, &Arc::new(Resource::default())).map_err(io::Error::other)? {
            Frame::Welcome(w) => {
                self.max_frame = (w.max_frame_bytes as usize).min(DEFAULT_MAX_FRAME_BYTES as usize);
            }
            Frame::Error(e) => {
                return Err(io::Error::other(format!(
                    "collector refused the connection: {}",
                    e.message
                )))
            }
            other => {
                return Err(io::Error::other(format!(
                    "unexpected {:?} frame during the handshake",
                    other.frame_type()
                )))
            }
        }
        stream.set_read_timeout(None)?;
        let reader = stream.try_clone()?;
        self.generation += 1;
        let (generation, tx, worker) =
            (self.generation, self.events_tx.clone(), self.worker.clone());
        thread::Builder::new()
            .name("logbook-acks".into())
            .spawn(move || read_acks(reader, generation, &tx, &worker))?;
        self.conn = Some(Conn { stream, written: 0 });
        self.resplit_oversized();
        Ok(())
    }

    /// Batches sealed before this collector announced a smaller frame limit are split
    /// to fit it (a record too large on its own is dropped and counted).
    fn resplit_oversized(&mut self) {
        if self.unacked.iter().all(|b| b.frame.len() <= self.max_frame) {
            return;
        }
        let old = std::mem::take(&mut self.unacked);
        for b in old {
            if b.frame.len() <= self.max_frame {
                self.unacked.push_back(b);
                continue;
            }
            let records = match decode_frame(&b.frame[HEADER_LEN..], &Arc::new(Resource::default()))
            {
                Ok(Frame::Batch(batch)) => batch.records,
                _ => {
                    self.counters.abandoned(&b.levels, b.cost);
                    continue;
                }
            };
            // The batch's buffer charge is shared out by record count.
            let per_record = b.cost / records.len().max(1);
            let mut spare = b.cost - per_record * records.len();
            let mut open: Option<OpenBatch> = None;
            for r in records {
                let cost = per_record + std::mem::take(&mut spare);
                let level = r.level.index();
                loop {
                    let batch = open.get_or_insert_with(|| OpenBatch::next(&mut self.next_seq));
                    if batch.enc.push_bounded(&r, self.max_frame).is_ok() {
                        batch.cost += cost;
                        batch.levels[level] += 1;
                        break;
                    }
                    if batch.enc.count() == 0 {
                        let mut levels = [0; 5];
                        levels[level] = 1;
                        self.counters.abandoned(&levels, cost);
                        break;
                    }
                    let full = open.take().expect("just inserted");
                    self.unacked.push_back(sent(full, b.flush_seq));
                }
            }
            if let Some(last) = open.filter(|o| o.enc.count() > 0) {
                self.unacked.push_back(sent(last, b.flush_seq));
            }
        }
    }

    fn disconnect(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
        self.next_connect = Instant::now() + self.backoff.next_delay();
    }

    /// The collector closed a connection with an error. A batch it cannot decode would
    /// fail again on every resend, so the oldest unacknowledged batch (acks arrive in
    /// order, so it is the one the collector was reading) is given up after a few tries.
    fn on_error_frame(&mut self, e: &ErrorFrame) {
        eprintln!(
            "logbook: collector at {} closed the connection: {}",
            self.path.display(),
            e.message
        );
        if !matches!(e.code, ErrorCode::Malformed | ErrorCode::FrameTooLarge) {
            return;
        }
        if let Some(front) = self.unacked.front_mut() {
            front.failures += 1;
            if front.failures >= MAX_BATCH_FAILURES {
                let b = self.unacked.pop_front().expect("front exists");
                if let Some(conn) = self.conn.as_mut() {
                    conn.written = conn.written.saturating_sub(1);
                }
                eprintln!(
                    "logbook: giving up on a batch of {} records the collector cannot read",
                    b.count
                );
                self.counters.abandoned(&b.levels, b.cost);
            }
        }
    }

    /// Writes every batch not yet written on the current connection.
    fn write_pending(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        while conn.written < self.unacked.len() {
            if let Err(e) = conn.stream.write_all(&self.unacked[conn.written].frame) {
                eprintln!(
                    "logbook: lost the connection to the collector at {}: {e}",
                    self.path.display()
                );
                self.disconnect();
                return;
            }
            conn.written += 1;
        }
    }

    fn send_gap_if_changed(&mut self) {
        let dropped = self.counters.dropped_by_level();
        if dropped == self.gap_sent || self.gap_at.elapsed() < GAP_INTERVAL {
            return;
        }
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let mut buf = Vec::new();
        encode_frame(&Frame::Gap(Gap { dropped }), &mut buf);
        if conn.stream.write_all(&buf).is_ok() {
            self.gap_sent = dropped;
            self.gap_at = Instant::now();
        } else {
            self.disconnect();
        }
    }

    fn on_ack(&mut self, ack: Ack) {
        let Some(i) = self.unacked.iter().position(|b| b.seq == ack.seq) else {
            return;
        };
        let b = self.unacked.remove(i).expect("position is in range");
        if let Some(conn) = self.conn.as_mut() {
            if i < conn.written {
                conn.written -= 1;
            }
        }
        let stored = u64::from(ack.stored) + u64::from(ack.duplicates);
        let refused = u64::from(b.count).saturating_sub(stored);
        self.counters
            .delivered(stored.min(u64::from(b.count)), b.cost);
        if refused > 0 {
            self.counters.rejected(refused);
        }
    }

    fn on_reject(&mut self, reject: &Reject) {
        for r in &reject.records {
            self.reject_notices += 1;
            if self.reject_notices <= MAX_REJECT_NOTICES {
                eprintln!("logbook: collector rejected record {}: {}", r.id, r.reason);
            } else if self.reject_notices == MAX_REJECT_NOTICES + 1 {
                eprintln!("logbook: collector rejected more records; further rejections are counted, not printed");
            }
        }
    }
}

impl Sink for SocketSink {
    fn push(&mut self, record: &Captured, id: RecordId, cost: usize) {
        let level = record.level().index();
        let head = record.head(id);
        let fields = [&record.own];
        loop {
            let open = self
                .open
                .get_or_insert_with(|| OpenBatch::next(&mut self.next_seq));
            match open.enc.push_parts_bounded(&head, &fields, self.max_frame) {
                Ok(()) => {
                    open.cost += cost;
                    open.levels[level] += 1;
                    break;
                }
                // It may fit on its own: send what we have and try a fresh batch.
                Err(_) if open.enc.count() > 0 => self.seal(),
                Err(too_large) => {
                    let mut levels = [0; 5];
                    levels[level] = 1;
                    eprintln!(
                        "logbook: dropped record {:?}: {} bytes encoded exceeds the collector's frame limit of {}",
                        head.name, too_large.bytes, self.max_frame
                    );
                    self.counters.abandoned(&levels, cost);
                    return;
                }
            }
        }
        let open = self.open.as_ref().expect("pushed into it");
        if open.enc.frame_bytes() >= BATCH_TARGET_BYTES.min(self.max_frame / 2)
            || open.enc.count() >= BATCH_MAX_RECORDS
        {
            self.seal();
        }
    }

    fn seal(&mut self) {
        let Some(open) = self.open.take() else { return };
        if open.enc.count() == 0 {
            return;
        }
        let flush_seq = open.seq;
        self.unacked.push_back(sent(open, flush_seq));
        self.write_pending();
    }

    fn poll(&mut self) -> bool {
        self.worker = thread::current();
        let mut progress = false;
        while let Ok(ev) = self.events_rx.try_recv() {
            progress = true;
            match ev {
                ConnEvent::Ack(g, ack) if g == self.generation => self.on_ack(ack),
                ConnEvent::Reject(g, r) if g == self.generation => self.on_reject(&r),
                ConnEvent::Closed(g, error) if g == self.generation => {
                    // The error counts even if a failed write already dropped the connection.
                    match &error {
                        Some(e) => self.on_error_frame(e),
                        None if self.conn.is_some() => {
                            eprintln!(
                                "logbook: collector at {} closed the connection",
                                self.path.display()
                            );
                        }
                        None => {}
                    }
                    if self.conn.is_some() {
                        self.disconnect();
                    }
                }
                _ => {}
            }
        }
        if self.conn.is_none() && Instant::now() >= self.next_connect {
            match self.connect() {
                Ok(()) => {
                    if self.outage_reported {
                        eprintln!("logbook: connected to collector at {}", self.path.display());
                    }
                    self.outage_reported = false;
                    self.backoff.reset();
                    self.gap_at = Instant::now()
                        .checked_sub(GAP_INTERVAL)
                        .unwrap_or(self.gap_at);
                    self.write_pending();
                    progress = true;
                }
                Err(e) => {
                    if !self.outage_reported {
                        eprintln!(
                            "logbook: cannot reach collector at {}: {e}; buffering up to {} bytes and retrying",
                            self.path.display(),
                            self.counters.capacity()
                        );
                        self.outage_reported = true;
                    }
                    self.next_connect = Instant::now() + self.backoff.next_delay();
                }
            }
        }
        self.send_gap_if_changed();
        progress
    }

    fn mark(&self) -> Mark {
        Mark {
            batch: self.next_seq - 1,
            dropped: self.counters.dropped_by_level(),
        }
    }

    fn reached(&self, mark: &Mark) -> bool {
        self.unacked.iter().all(|b| b.flush_seq > mark.batch)
            && self
                .gap_sent
                .iter()
                .zip(mark.dropped)
                .all(|(sent, at_mark)| *sent >= at_mark)
    }

    /// Idle once every batch is acknowledged and the drop totals are reported, so a
    /// flush at exit also delivers the final count of what was dropped.
    fn is_idle(&self) -> bool {
        self.open.is_none()
            && self.unacked.is_empty()
            && self.gap_sent == self.counters.dropped_by_level()
    }
}

impl Drop for SocketSink {
    /// Ends the connection, which also ends its reader thread.
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn sent(open: OpenBatch, flush_seq: u64) -> SentBatch {
    SentBatch {
        seq: open.seq,
        flush_seq,
        count: open.enc.count(),
        frame: open.enc.finish(),
        cost: open.cost,
        levels: open.levels,
        failures: 0,
    }
}

/// The per-connection reader: forwards acknowledgements to the worker and wakes it.
fn read_acks(mut stream: UnixStream, generation: u64, tx: &Sender<ConnEvent>, worker: &Thread) {
    let _untraced = tracing_core::dispatcher::set_default(&Dispatch::none());
    let resource = Arc::new(Resource::default());
    let mut buf = Vec::new();
    loop {
        let event = match read_frame(&mut stream, DEFAULT_MAX_FRAME_BYTES, &mut buf) {
            Ok(true) => match decode_frame(&buf, &resource) {
                Ok(Frame::Ack(a)) => ConnEvent::Ack(generation, a),
                Ok(Frame::Reject(r)) => ConnEvent::Reject(generation, r),
                Ok(Frame::Error(e)) => ConnEvent::Closed(generation, Some(e)),
                Ok(other) => ConnEvent::Closed(
                    generation,
                    Some(ErrorFrame {
                        code: ErrorCode::ProtocolViolation,
                        message: format!(
                            "unexpected {:?} frame from the collector",
                            other.frame_type()
                        ),
                    }),
                ),
                Err(e) => ConnEvent::Closed(
                    generation,
                    Some(ErrorFrame {
                        code: ErrorCode::Malformed,
                        message: e.to_string(),
                    }),
                ),
            },
            Ok(false) | Err(_) => ConnEvent::Closed(generation, None),
        };
        let closed = matches!(event, ConnEvent::Closed(..));
        if tx.send(event).is_err() {
            return;
        }
        worker.unpark();
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_by_max() {
        let mut b = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..40).map(|_| b.next_delay()).collect();
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(2)),
            "{delays:?}"
        );
        assert!(delays[0] <= Duration::from_millis(50) && delays[0] >= Duration::from_millis(37));
        assert!(
            delays[39] >= Duration::from_millis(1500),
            "reaches the cap: {:?}",
            delays[39]
        );
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(50));
    }
}
