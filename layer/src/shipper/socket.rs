//! Delivery to a collector over its Unix socket or over TLS (`transport`): batches,
//! acknowledgements, resends after reconnect, capped exponential backoff and drop
//! reports.
//!
//! All socket I/O is non-blocking and happens on the worker thread: a collector that
//! reads slowly only makes batches wait (within the budget); the worker keeps draining
//! the rings, reading acknowledgements and answering flushes meanwhile.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_proto::wire::{
    decode_frame, encode_frame, frame_len, read_frame, Ack, BatchEncoder, ErrorCode, ErrorFrame,
    Frame, Gap, Hello, Reject, DEFAULT_MAX_FRAME_BYTES, HEADER_LEN,
};
use logbook_proto::{Level, PerLevel, RecordId, Resource};

use super::transport::{Stream, Target};
use super::worker::Full;
use super::{Counters, LevelCounts, Mark, Sink};
use crate::rng;

/// A batch is sealed once its frame reaches this size…
const BATCH_TARGET_BYTES: usize = 256 * 1024;
/// …or holds this many records.
const BATCH_MAX_RECORDS: u32 = 4096;
/// How long a (blocking) handshake may take.
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
            levels: [0; Level::COUNT],
        }
    }
}

struct SentBatch {
    seq: u64,
    /// The sequence number a flush waits for: `seq`, or for a batch re-split to fit a
    /// smaller frame limit, the number of the batch it came from.
    flush_seq: u64,
    frame: Arc<[u8]>,
    count: u32,
    cost: usize,
    levels: LevelCounts,
    failures: u32,
}

fn sent(open: OpenBatch, flush_seq: u64) -> SentBatch {
    SentBatch {
        seq: open.seq,
        flush_seq,
        count: open.enc.count(),
        frame: Arc::from(open.enc.finish()),
        cost: open.cost,
        levels: open.levels,
        failures: 0,
    }
}

struct Conn {
    stream: Stream,
    /// Frames to write, each with how much of it is written.
    outbound: VecDeque<(Arc<[u8]>, usize)>,
    /// Bytes read and not yet a whole frame.
    inbound: Vec<u8>,
}

pub(crate) struct SocketSink {
    target: Target,
    hello: Hello,
    counters: Arc<Counters>,
    conn: Option<Conn>,
    backoff: Backoff,
    next_connect: Instant,
    max_frame: usize,
    next_seq: u64,
    open: Option<OpenBatch>,
    unacked: VecDeque<SentBatch>,
    gap_sent: PerLevel<u64>,
    gap_at: Instant,
    /// Printed "cannot connect" for the current outage.
    outage_reported: bool,
    reject_notices: u64,
}

impl SocketSink {
    pub(crate) fn new(
        target: Target,
        hello: Hello,
        counters: Arc<Counters>,
        backoff: Backoff,
    ) -> Self {
        Self {
            target,
            hello,
            counters,
            conn: None,
            backoff,
            next_connect: Instant::now(),
            max_frame: DEFAULT_MAX_FRAME_BYTES as usize,
            next_seq: 1,
            open: None,
            unacked: VecDeque::new(),
            gap_sent: [0; Level::COUNT],
            gap_at: Instant::now(),
            outage_reported: false,
            reject_notices: 0,
        }
    }

    /// Connects and shakes hands (blocking, with a timeout), then goes non-blocking and
    /// queues every unacknowledged batch for resending.
    fn connect(&mut self) -> io::Result<()> {
        let mut stream = self.target.connect(HANDSHAKE_TIMEOUT)?;
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
        stream.set_nonblocking()?;
        self.resplit_oversized();
        self.counters
            .resent(self.unacked.iter().map(|b| u64::from(b.count)).sum());
        let outbound = self
            .unacked
            .iter()
            .map(|b| (Arc::clone(&b.frame), 0))
            .collect();
        self.conn = Some(Conn {
            stream,
            outbound,
            inbound: Vec::new(),
        });
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
            // The batch's budget is shared out by record count.
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
                        let mut levels = [0; Level::COUNT];
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
            conn.stream.close();
        }
        self.next_connect = Instant::now() + self.backoff.next_delay();
    }

    /// The collector closed a connection with an error. A batch it cannot decode would
    /// fail again on every resend, so the oldest unacknowledged batch (acks arrive in
    /// order, so it is the one the collector was reading) is given up after a few tries.
    fn on_error_frame(&mut self, e: &ErrorFrame) {
        // Closed for silence: not a fault; the next connection carries what comes next.
        if e.code == ErrorCode::Idle {
            return;
        }
        eprintln!(
            "logbook: collector at {} closed the connection: {}",
            self.target, e.message
        );
        if !matches!(
            e.code,
            ErrorCode::Malformed | ErrorCode::FrameTooLarge | ErrorCode::LimitExceeded
        ) {
            return;
        }
        if let Some(front) = self.unacked.front_mut() {
            front.failures += 1;
            if front.failures >= MAX_BATCH_FAILURES {
                let b = self.unacked.pop_front().expect("front exists");
                eprintln!(
                    "logbook: giving up on a batch of {} records the collector cannot read",
                    b.count
                );
                self.counters.abandoned(&b.levels, b.cost);
            }
        }
    }

    /// Writes queued frames until the socket would block.
    fn write_outbound(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let mut wrote = false;
        while let Some((frame, done)) = conn.outbound.front_mut() {
            match conn.stream.write(&frame[*done..]) {
                Ok(n) => {
                    wrote = true;
                    *done += n;
                    if *done == frame.len() {
                        conn.outbound.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!(
                        "logbook: lost the connection to the collector at {}: {e}",
                        self.target
                    );
                    self.disconnect();
                    return wrote;
                }
            }
        }
        if let Err(e) = conn.stream.push_pending() {
            eprintln!(
                "logbook: lost the connection to the collector at {}: {e}",
                self.target
            );
            self.disconnect();
        }
        wrote
    }

    /// Reads what the collector sent and acts on every whole frame.
    fn read_inbound(&mut self) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let mut buf = [0u8; 4096];
        let mut closed = false;
        let mut read_any = false;
        loop {
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    read_any = true;
                    conn.inbound.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut frames = Vec::new();
        let mut pos = 0;
        let resource = Arc::new(Resource::default());
        let mut malformed = None;
        while conn.inbound.len() - pos >= HEADER_LEN {
            let header: [u8; HEADER_LEN] = conn.inbound[pos..pos + HEADER_LEN]
                .try_into()
                .expect("4 bytes");
            let len = match frame_len(header, DEFAULT_MAX_FRAME_BYTES) {
                Ok(len) => len,
                Err(e) => {
                    malformed = Some(e.to_string());
                    break;
                }
            };
            if conn.inbound.len() - pos < HEADER_LEN + len {
                break;
            }
            match decode_frame(
                &conn.inbound[pos + HEADER_LEN..pos + HEADER_LEN + len],
                &resource,
            ) {
                Ok(f) => frames.push(f),
                Err(e) => {
                    malformed = Some(e.to_string());
                    break;
                }
            }
            pos += HEADER_LEN + len;
        }
        conn.inbound.drain(..pos);
        for frame in frames {
            match frame {
                Frame::Ack(a) => self.on_ack(a),
                Frame::Reject(r) => self.on_reject(&r),
                Frame::Error(e) => {
                    self.on_error_frame(&e);
                    self.disconnect();
                    return true;
                }
                other => {
                    malformed = Some(format!(
                        "unexpected {:?} frame from the collector",
                        other.frame_type()
                    ));
                }
            }
        }
        if let Some(m) = malformed {
            eprintln!(
                "logbook: collector at {} sent a bad frame: {m}",
                self.target
            );
            self.disconnect();
        } else if closed {
            eprintln!(
                "logbook: collector at {} closed the connection",
                self.target
            );
            self.disconnect();
        }
        read_any
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
        conn.outbound.push_back((Arc::from(buf), 0));
        // Counted as sent once queued: frames on a connection go out in order, and a
        // lost connection resends nothing but batches, so the next gap repeats totals.
        self.gap_sent = dropped;
        self.gap_at = Instant::now();
        self.write_outbound();
    }

    fn on_ack(&mut self, ack: Ack) {
        let Some(i) = self.unacked.iter().position(|b| b.seq == ack.seq) else {
            return;
        };
        let b = self.unacked.remove(i).expect("position is in range");
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
    fn push(&mut self, record: [&[u8]; 2], id: RecordId, level: Level) -> Result<(), Full> {
        let cost = record[0].len() + record[1].len();
        if !self.counters.try_acquire(cost) {
            return Err(Full);
        }
        let level = level.index();
        loop {
            let open = self
                .open
                .get_or_insert_with(|| OpenBatch::next(&mut self.next_seq));
            match open.enc.push_encoded(record, id, self.max_frame) {
                Ok(()) => {
                    open.cost += cost;
                    open.levels[level] += 1;
                    break;
                }
                // It may fit on its own: send what we have and try a fresh batch.
                Err(_) if open.enc.count() > 0 => self.seal(),
                Err(too_large) => {
                    let mut levels = [0; Level::COUNT];
                    levels[level] = 1;
                    eprintln!(
                        "logbook: dropped a record of {} bytes: larger than the collector's frame limit of {}",
                        too_large.bytes, self.max_frame
                    );
                    self.counters.abandoned(&levels, cost);
                    return Ok(());
                }
            }
        }
        let open = self.open.as_ref().expect("pushed into it");
        if open.enc.frame_bytes() >= BATCH_TARGET_BYTES.min(self.max_frame / 2)
            || open.enc.count() >= BATCH_MAX_RECORDS
        {
            self.seal();
        }
        Ok(())
    }

    fn seal(&mut self) {
        let Some(open) = self.open.take() else { return };
        if open.enc.count() == 0 {
            return;
        }
        let flush_seq = open.seq;
        let batch = sent(open, flush_seq);
        if let Some(conn) = self.conn.as_mut() {
            conn.outbound.push_back((Arc::clone(&batch.frame), 0));
        }
        self.unacked.push_back(batch);
        self.write_outbound();
    }

    fn poll(&mut self) -> bool {
        let mut progress = self.read_inbound();
        progress |= self.write_outbound();
        if self.conn.is_none() && Instant::now() >= self.next_connect {
            match self.connect() {
                Ok(()) => {
                    if self.outage_reported {
                        eprintln!("logbook: connected to collector at {}", self.target);
                    }
                    self.outage_reported = false;
                    self.backoff.reset();
                    self.gap_at = Instant::now()
                        .checked_sub(GAP_INTERVAL)
                        .unwrap_or(self.gap_at);
                    self.write_outbound();
                    progress = true;
                }
                Err(e) => {
                    if !self.outage_reported {
                        eprintln!(
                            "logbook: cannot reach collector at {}: {e}; buffering up to {} bytes and retrying",
                            self.target,
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
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.stream.close();
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
