//! Encoding frames and records.

use std::sync::Arc;

use super::{flags, tag, EncodedFields, Frame, FrameType, HEADER_LEN, HELLO_MAGIC};
use crate::ids::{RecordId, SpanId, TraceId};
use crate::record::{Kind, Level, Record, Scope, ScopeKey, Status};
use crate::time::Timestamp;
use crate::value::Value;

/// Appends `frame`, with its length prefix, to `out`.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) {
    if let Frame::Batch(b) = frame {
        let mut enc = BatchEncoder::with_buffer(std::mem::take(out), b.seq);
        for r in &b.records {
            enc.push(r);
        }
        *out = enc.finish();
        return;
    }
    let start = begin_frame(out, frame.frame_type());
    match frame {
        Frame::Hello(h) => {
            out.extend_from_slice(&HELLO_MAGIC);
            put_u16(out, h.version);
            out.extend_from_slice(&h.instance.0);
            put_u32(out, h.pid);
            put_str(out, &h.service);
            put_str(out, &h.host);
            match &h.token {
                Some(t) => {
                    out.push(1);
                    put_str(out, t);
                }
                None => out.push(0),
            }
        }
        Frame::Welcome(w) => {
            put_u16(out, w.version);
            put_u32(out, w.max_frame_bytes);
            put_str(out, &w.server);
        }
        Frame::Ack(a) => {
            put_u64(out, a.seq);
            put_u32(out, a.stored);
            put_u32(out, a.duplicates);
        }
        Frame::Reject(r) => {
            put_u64(out, r.seq);
            put_u32(out, len_u32(r.records.len()));
            for rr in &r.records {
                put_u32(out, rr.index);
                out.extend_from_slice(&rr.id.0);
                put_str(out, &rr.reason);
            }
        }
        Frame::Gap(g) => {
            for n in g.dropped {
                put_u64(out, n);
            }
        }
        Frame::Error(e) => {
            put_u16(out, e.code as u16);
            put_str(out, &e.message);
        }
        Frame::Batch(_) => unreachable!("handled above"),
    }
    end_frame(out, start);
}

/// A record's parts other than its fields, borrowed: what a sender that keeps fields
/// pre-encoded ([`EncodedFields`]) passes to [`BatchEncoder::push_parts`].
#[derive(Clone, Copy, Debug)]
pub struct RecordHead<'a> {
    /// See [`Record::id`].
    pub id: RecordId,
    /// See [`Record::ts`].
    pub ts: Timestamp,
    /// See [`Record::kind`].
    pub kind: Kind,
    /// See [`Record::level`].
    pub level: Level,
    /// See [`Record::name`].
    pub name: &'a str,
    /// See [`Record::target`].
    pub target: &'a str,
    /// See [`Record::message`].
    pub message: Option<&'a str>,
    /// See [`Record::trace_id`].
    pub trace_id: TraceId,
    /// See [`Record::span_id`].
    pub span_id: Option<SpanId>,
    /// See [`Record::parent_span_id`].
    pub parent_span_id: Option<SpanId>,
    /// See [`Record::scope`].
    pub scope: &'a Arc<Scope>,
    /// See [`Record::file`].
    pub file: Option<&'a str>,
    /// See [`Record::line`].
    pub line: Option<u32>,
    /// See [`Record::category`].
    pub category: Option<&'a str>,
    /// See [`Record::status`].
    pub status: Option<Status>,
    /// See [`Record::duration_ns`].
    pub duration_ns: Option<u64>,
    /// See [`Record::busy_ns`].
    pub busy_ns: Option<u64>,
    /// See [`Record::idle_ns`].
    pub idle_ns: Option<u64>,
}

impl Record {
    /// This record's parts other than its fields.
    pub fn head(&self) -> RecordHead<'_> {
        RecordHead {
            id: self.id,
            ts: self.ts,
            kind: self.kind,
            level: self.level,
            name: &self.name,
            target: &self.target,
            message: self.message.as_deref(),
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            scope: &self.scope,
            file: self.file.as_deref(),
            line: self.line,
            category: self.category.as_deref(),
            status: self.status,
            duration_ns: self.duration_ns,
            busy_ns: self.busy_ns,
            idle_ns: self.idle_ns,
        }
    }
}

/// Writes a batch frame record by record straight into a buffer, so a sender never
/// builds a `Vec<Record>`. [`BatchEncoder::finish`] seals the frame and returns the bytes.
pub struct BatchEncoder {
    out: Vec<u8>,
    start: usize,
    count_at: usize,
    count: u32,
    prev_scope: Option<Arc<Scope>>,
}

/// A record that alone exceeds the frame limit; the batch is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTooLarge {
    /// The record's encoded size in bytes.
    pub bytes: usize,
}

impl BatchEncoder {
    /// Starts a batch frame with sequence number `seq` in a new buffer.
    pub fn new(seq: u64) -> Self {
        Self::with_buffer(Vec::new(), seq)
    }

    /// Starts a batch frame at the end of `out` (reusing its allocation).
    pub fn with_buffer(mut out: Vec<u8>, seq: u64) -> Self {
        let start = begin_frame(&mut out, FrameType::Batch);
        put_u64(&mut out, seq);
        let count_at = out.len();
        put_u32(&mut out, 0);
        Self {
            out,
            start,
            count_at,
            count: 0,
            prev_scope: None,
        }
    }

    /// Appends one record.
    pub fn push(&mut self, r: &Record) {
        self.push_with(&r.head(), |out| {
            put_varint(out, r.fields.len() as u64);
            for (k, v) in r.fields.iter() {
                put_str(out, k);
                put_value(out, v);
            }
        });
    }

    /// Appends one record whose fields are already encoded, in one or more buffers (a
    /// repeated key: the last wins when decoded).
    pub fn push_parts(&mut self, head: &RecordHead<'_>, fields: &[&EncodedFields]) {
        self.push_with(head, |out| {
            put_varint(out, fields.iter().map(|f| u64::from(f.count())).sum());
            for f in fields {
                out.extend_from_slice(f.bytes());
            }
        });
    }

    /// Appends one record unless that would make the frame larger than `max_frame_bytes`
    /// (length prefix included), in which case the batch is left as it was.
    pub fn push_bounded(
        &mut self,
        r: &Record,
        max_frame_bytes: usize,
    ) -> Result<(), RecordTooLarge> {
        self.bounded(max_frame_bytes, |enc| enc.push(r))
    }

    /// Appends one record already encoded on its own ([`encode_record`], split in up to
    /// two pieces as a ring buffer returns it), setting its id. The record carries its
    /// scope in full, so the next record will not refer to it.
    pub fn push_encoded(
        &mut self,
        parts: [&[u8]; 2],
        id: RecordId,
        max_frame_bytes: usize,
    ) -> Result<(), RecordTooLarge> {
        let len = parts[0].len() + parts[1].len();
        if self.frame_bytes() + len > max_frame_bytes {
            return Err(RecordTooLarge { bytes: len });
        }
        let at = self.out.len();
        self.out.extend_from_slice(parts[0]);
        self.out.extend_from_slice(parts[1]);
        self.out[at + RECORD_ID_OFFSET..at + RECORD_ID_OFFSET + 16].copy_from_slice(&id.0);
        self.prev_scope = None;
        self.count += 1;
        Ok(())
    }

    fn bounded(
        &mut self,
        max_frame_bytes: usize,
        push: impl FnOnce(&mut Self),
    ) -> Result<(), RecordTooLarge> {
        let len = self.out.len();
        let prev = self.prev_scope.clone();
        push(self);
        if self.frame_bytes() <= max_frame_bytes {
            return Ok(());
        }
        let bytes = self.out.len() - len;
        self.out.truncate(len);
        self.prev_scope = prev;
        self.count -= 1;
        Err(RecordTooLarge { bytes })
    }

    fn push_with(&mut self, head: &RecordHead<'_>, fields: impl FnOnce(&mut Vec<u8>)) {
        let same_scope = self
            .prev_scope
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, head.scope) || **p == **head.scope);
        encode_head(&mut self.out, head, same_scope, None);
        fields(&mut self.out);
        if !same_scope {
            self.prev_scope = Some(Arc::clone(head.scope));
        }
        self.count += 1;
    }

    /// Records pushed so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of this frame so far, header included.
    pub fn frame_bytes(&self) -> usize {
        self.out.len() - self.start
    }

    /// Seals the frame (writes its length and record count) and returns the buffer.
    pub fn finish(mut self) -> Vec<u8> {
        self.out[self.count_at..self.count_at + 4].copy_from_slice(&self.count.to_le_bytes());
        end_frame(&mut self.out, self.start);
        self.out
    }
}

/// Where a record's 16-byte id starts in its encoding (after kind and level).
pub const RECORD_ID_OFFSET: usize = 2;

/// Where a record's level byte is in its encoding.
pub const RECORD_LEVEL_OFFSET: usize = 1;

/// The parts of a record that never change for a callsite (name and target; file and
/// line), encoded once and copied into each record: what a sender caches per callsite.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallsiteBytes {
    name_target: Vec<u8>,
    file_line: Vec<u8>,
    has_file: bool,
    has_line: bool,
}

impl CallsiteBytes {
    /// Encodes a callsite's name, target, file and line.
    pub fn new(name: &str, target: &str, file: Option<&str>, line: Option<u32>) -> Self {
        let mut name_target = Vec::with_capacity(name.len() + target.len() + 2);
        put_str(&mut name_target, name);
        put_str(&mut name_target, target);
        let mut file_line = Vec::new();
        if let Some(f) = file {
            put_str(&mut file_line, f);
        }
        if let Some(l) = line {
            put_varint(&mut file_line, u64::from(l));
        }
        Self {
            name_target,
            file_line,
            has_file: file.is_some(),
            has_line: line.is_some(),
        }
    }
}

/// Encodes one record on its own (its scope in full) at the end of `out`: the form a
/// sender can keep and later copy into a batch with [`BatchEncoder::push_encoded`].
pub fn encode_record(out: &mut Vec<u8>, head: &RecordHead<'_>, fields: &[&EncodedFields]) {
    encode_head(out, head, false, None);
    put_varint(out, fields.iter().map(|f| u64::from(f.count())).sum());
    for f in fields {
        out.extend_from_slice(f.bytes());
    }
}

/// [`encode_record`] with the callsite's parts taken from `callsite` (which must encode
/// `head`'s name, target, file and line) instead of encoded again.
pub fn encode_record_at(
    out: &mut Vec<u8>,
    head: &RecordHead<'_>,
    callsite: &CallsiteBytes,
    fields: &[&EncodedFields],
) {
    encode_head(out, head, false, Some(callsite));
    put_varint(out, fields.iter().map(|f| u64::from(f.count())).sum());
    for f in fields {
        out.extend_from_slice(f.bytes());
    }
}

/// Everything of a record before its field count.
fn encode_head(
    out: &mut Vec<u8>,
    r: &RecordHead<'_>,
    same_scope: bool,
    callsite: Option<&CallsiteBytes>,
) {
    // One pass over the scope for its mask and size, so the buffer grows once.
    let slots = r.scope.slots();
    let (mut mask, mut scope_bytes) = (0u16, 0usize);
    for (i, v) in slots.iter().enumerate() {
        if let Some(v) = v {
            mask |= 1 << i;
            scope_bytes += v.len() + 2;
        }
    }
    let with_scope = !same_scope && mask != 0;
    let opt_len = |s: Option<&str>| s.map_or(0, str::len);
    out.reserve(
        80 + r.name.len()
            + r.target.len()
            + opt_len(r.message)
            + opt_len(r.file)
            + opt_len(r.category)
            + scope_bytes,
    );
    out.push(r.kind.code());
    out.push(r.level.code());
    out.extend_from_slice(&r.id.0);
    out.extend_from_slice(&r.ts.0.to_le_bytes());
    match callsite {
        Some(c) => out.extend_from_slice(&c.name_target),
        None => {
            put_str(out, r.name);
            put_str(out, r.target);
        }
    }

    let (has_file, has_line) = callsite.map_or((r.file.is_some(), r.line.is_some()), |c| {
        (c.has_file, c.has_line)
    });
    let bit = |on: bool, flag: u16| if on { flag } else { 0 };
    let f = bit(r.message.is_some(), flags::MESSAGE)
        | bit(r.span_id.is_some(), flags::SPAN_ID)
        | bit(r.parent_span_id.is_some(), flags::PARENT_SPAN_ID)
        | bit(has_file, flags::FILE)
        | bit(has_line, flags::LINE)
        | bit(r.category.is_some(), flags::CATEGORY)
        | bit(r.status.is_some(), flags::STATUS)
        | bit(r.duration_ns.is_some(), flags::DURATION)
        | bit(r.busy_ns.is_some(), flags::BUSY)
        | bit(r.idle_ns.is_some(), flags::IDLE)
        | bit(same_scope, flags::SCOPE_SAME)
        | bit(with_scope, flags::SCOPE);
    put_u16(out, f);
    out.extend_from_slice(&r.trace_id.0);

    if let Some(m) = r.message {
        put_str(out, m);
    }
    if let Some(s) = r.span_id {
        out.extend_from_slice(&s.0);
    }
    if let Some(s) = r.parent_span_id {
        out.extend_from_slice(&s.0);
    }
    match callsite {
        Some(c) => out.extend_from_slice(&c.file_line),
        None => {
            if let Some(file) = r.file {
                put_str(out, file);
            }
            if let Some(line) = r.line {
                put_varint(out, u64::from(line));
            }
        }
    }
    if let Some(c) = r.category {
        put_str(out, c);
    }
    if let Some(s) = r.status {
        out.push(s.code());
    }
    for v in [r.duration_ns, r.busy_ns, r.idle_ns].into_iter().flatten() {
        put_varint(out, v);
    }
    if with_scope {
        put_u16(out, mask);
        for v in slots.iter().flatten() {
            put_str(out, v);
        }
    }
}

// ScopeKey discriminants are the mask bit positions; keep them below 16.
const _: () = assert!(ScopeKey::COUNT <= 16);

pub(super) fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            out.push(tag::STR);
            put_str(out, s);
        }
        Value::I64(i) => {
            out.push(tag::I64);
            put_varint(out, zigzag(*i));
        }
        Value::U64(u) => {
            out.push(tag::U64);
            put_varint(out, *u);
        }
        Value::F64(x) => {
            out.push(tag::F64);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Bool(b) => out.push(if *b { tag::TRUE } else { tag::FALSE }),
        Value::Json(j) => {
            out.push(tag::JSON);
            put_str(out, j.as_str());
        }
    }
}

fn begin_frame(out: &mut Vec<u8>, t: FrameType) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    out.push(t as u8);
    start
}

fn end_frame(out: &mut [u8], start: usize) {
    let len = len_u32(out.len() - start - HEADER_LEN);
    out[start..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
}

fn len_u32(n: usize) -> u32 {
    // Frames are bounded far below 4 GiB by the sender's batch limits.
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    if s.len() < 0x80 {
        out.push(s.len() as u8);
    } else {
        put_varint(out, s.len() as u64);
    }
    out.extend_from_slice(s.as_bytes());
}
