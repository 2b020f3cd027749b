//! Decoding frames and records. Every length is checked against the bytes actually
//! present before anything is allocated, so a hostile peer cannot make the decoder
//! reserve memory it did not send.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::Arc;

use thiserror::Error;

use super::{
    flags, tag, Ack, Batch, ErrorCode, ErrorFrame, Frame, FrameType, Gap, Hello, RecordReject,
    Reject, Welcome, HEADER_LEN, HELLO_MAGIC, MAX_FIELDS_PER_RECORD, PROTOCOL_VERSION,
};
use crate::ids::{InstanceId, RecordId, SpanId, TraceId};
use crate::record::{Kind, Level, PerLevel, Record, Resource, Scope, ScopeKey, Status};
use crate::time::Timestamp;
use crate::value::{Fields, Json, Str, Value};

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The length prefix exceeds the receiver's limit; nothing was allocated.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// The limit.
        max: u32,
    },
    /// A length prefix of zero: no frame type.
    #[error("empty frame (length 0)")]
    EmptyFrame,
    /// The frame ended inside a value.
    #[error("truncated frame: {context} needs {needed} more bytes")]
    Truncated {
        /// What was being read.
        context: &'static str,
        /// Bytes missing.
        needed: usize,
    },
    /// A frame type byte this version does not know.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownFrameType(u8),
    /// A hello that does not start with `LGBK`.
    #[error("not a logbook hello (bad magic bytes)")]
    BadMagic,
    /// A hello naming a protocol version this build does not speak.
    #[error("unsupported protocol version {version} (this build speaks {supported})")]
    UnknownVersion {
        /// The version sent.
        version: u16,
        /// The version spoken here.
        supported: u16,
    },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in {context}")]
    InvalidUtf8 {
        /// Which string.
        context: &'static str,
    },
    /// A JSON field value that does not parse.
    #[error("invalid JSON in field {key:?}: {message}")]
    InvalidJson {
        /// The field's key (its first 64 bytes).
        key: String,
        /// The parser's message.
        message: String,
    },
    /// An enumeration byte out of range.
    #[error("unknown {what} code {code}")]
    UnknownCode {
        /// Which enumeration.
        what: &'static str,
        /// The byte.
        code: u8,
    },
    /// A varint longer than ten bytes or above `u64::MAX`.
    #[error("malformed varint in {context}")]
    BadVarint {
        /// What was being read.
        context: &'static str,
    },
    /// Record flag bits this version does not define.
    #[error("unknown record flags 0x{0:04x}")]
    UnknownFlags(u16),
    /// A record that says "same scope as the previous record" with no previous record.
    #[error("record {index} refers to a previous record's scope, but there is none")]
    DanglingScope {
        /// Index in the batch.
        index: u32,
    },
    /// A count larger than the remaining bytes could possibly hold.
    #[error("{what} count {count} cannot fit in the {available} bytes left")]
    CountTooLarge {
        /// What was counted.
        what: &'static str,
        /// The count sent.
        count: u64,
        /// Bytes left in the frame.
        available: usize,
    },
    /// A record with more fields than the protocol allows.
    #[error("record {index} has {count} fields; the limit is {max}")]
    TooManyFields {
        /// Index in the batch.
        index: u32,
        /// Fields announced.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// Decoded, the frame would take more memory than the receiver allows for it
    /// (many small fields or records): send smaller batches.
    #[error("the frame decodes to more memory than the receiver allows for a frame of its size: send smaller batches")]
    TooMuchMemory,
    /// Bytes left over after the frame's content.
    #[error("{0} unexpected bytes after the frame's content")]
    TrailingBytes(usize),
    /// A number that does not fit its field (e.g. a line number above `u32::MAX`).
    #[error("{context} out of range")]
    OutOfRange {
        /// Which number.
        context: &'static str,
    },
}

impl DecodeError {
    /// The error frame code to send back for this error.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            Self::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            Self::UnknownVersion { .. } => ErrorCode::UnsupportedVersion,
            Self::TooMuchMemory => ErrorCode::LimitExceeded,
            _ => ErrorCode::Malformed,
        }
    }
}

/// Reading a frame from a byte stream failed.
#[derive(Debug, Error)]
pub enum ReadFrameError {
    /// The stream failed or ended inside a frame.
    #[error("reading frame: {0}")]
    Io(#[from] io::Error),
    /// The length prefix was refused.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Validates a length prefix: the number of bytes that follow it (frame type and
/// payload). Call before allocating for the body.
pub fn frame_len(header: [u8; HEADER_LEN], max: u32) -> Result<usize, DecodeError> {
    let len = u32::from_le_bytes(header);
    if len == 0 {
        return Err(DecodeError::EmptyFrame);
    }
    if len > max {
        return Err(DecodeError::FrameTooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(len as usize)
}

/// Reads one frame's body (type byte and payload) from a blocking stream into `buf`.
/// Returns `Ok(false)` on a clean end of stream before a frame began.
pub fn read_frame<R: Read>(r: &mut R, max: u32, buf: &mut Vec<u8>) -> Result<bool, ReadFrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = frame_len(header, max)?;
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)?;
    Ok(true)
}

/// Decodes a frame body (type byte and payload, without the length prefix). Records of
/// a batch get `resource`, the sender's identity from its hello.
pub fn decode_frame(body: &[u8], resource: &Arc<Resource>) -> Result<Frame, DecodeError> {
    decode_frame_within(body, resource, usize::MAX)
}

/// [`decode_frame`] allocating at most about `max_memory` bytes for what it decodes
/// (records, their fields and strings, as [`record_memory`] counts them), so that a
/// frame of many small fields cannot make a receiver hold many times its size:
/// [`DecodeError::TooMuchMemory`] past that.
pub fn decode_frame_within(
    body: &[u8],
    resource: &Arc<Resource>,
    max_memory: usize,
) -> Result<Frame, DecodeError> {
    let mut r = Reader::new(body, max_memory);
    let t = r.u8("frame type")?;
    let frame = match FrameType::from_u8(t).ok_or(DecodeError::UnknownFrameType(t))? {
        FrameType::Hello => {
            if r.take(4, "hello magic")? != HELLO_MAGIC {
                return Err(DecodeError::BadMagic);
            }
            let version = r.u16("hello version")?;
            if version != PROTOCOL_VERSION {
                return Err(DecodeError::UnknownVersion {
                    version,
                    supported: PROTOCOL_VERSION,
                });
            }
            Frame::Hello(Hello {
                version,
                instance: InstanceId(r.array("instance id")?),
                pid: r.u32("pid")?,
                service: r.string("service")?,
                host: r.string("host")?,
                token: match r.u8("token flag")? {
                    0 => None,
                    1 => Some(r.string("token")?),
                    code => {
                        return Err(DecodeError::UnknownCode {
                            what: "token flag",
                            code,
                        })
                    }
                },
            })
        }
        FrameType::Welcome => {
            let version = r.u16("welcome version")?;
            if version != PROTOCOL_VERSION {
                return Err(DecodeError::UnknownVersion {
                    version,
                    supported: PROTOCOL_VERSION,
                });
            }
            Frame::Welcome(Welcome {
                version,
                max_frame_bytes: r.u32("max frame bytes")?,
                server: r.string("server")?,
            })
        }
        FrameType::Batch => Frame::Batch(decode_batch(&mut r, resource)?),
        FrameType::Ack => Frame::Ack(Ack {
            seq: r.u64("ack seq")?,
            stored: r.u32("ack stored")?,
            duplicates: r.u32("ack duplicates")?,
        }),
        FrameType::Reject => {
            let seq = r.u64("reject seq")?;
            let n = r.u32("reject count")?;
            // index + id + empty reason
            let mut records = Vec::with_capacity(r.capacity_for(u64::from(n), 21, "reject")?);
            for _ in 0..n {
                records.push(RecordReject {
                    index: r.u32("reject index")?,
                    id: RecordId(r.array("reject id")?),
                    reason: r.string("reject reason")?,
                });
            }
            Frame::Reject(Reject { seq, records })
        }
        FrameType::Gap => {
            let mut dropped: PerLevel<u64> = [0; Level::COUNT];
            for d in &mut dropped {
                *d = r.u64("gap count")?;
            }
            Frame::Gap(Gap { dropped })
        }
        FrameType::Error => Frame::Error(ErrorFrame {
            code: ErrorCode::from_u16(r.u16("error code")?),
            message: r.string("error message")?,
        }),
    };
    match r.remaining() {
        0 => Ok(frame),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// Decodes one record encoded on its own (see `encode_record`), with `resource`.
pub fn decode_record(bytes: &[u8], resource: &Arc<Resource>) -> Result<Record, DecodeError> {
    let mut r = Reader::new(bytes, usize::MAX);
    let rec = decode_record_at(&mut r, 0, &mut None, resource)?;
    match r.remaining() {
        0 => Ok(rec),
        n => Err(DecodeError::TrailingBytes(n)),
    }
}

/// The fewest bytes one encoded record can take.
const MIN_RECORD_BYTES: usize = 1 + 1 + 16 + 8 + 1 + 1 + 2 + 16 + 1;

fn decode_batch(r: &mut Reader<'_>, resource: &Arc<Resource>) -> Result<Batch, DecodeError> {
    let seq = r.u64("batch seq")?;
    let count = r.u32("record count")?;
    let count_ok = r.capacity_for(u64::from(count), MIN_RECORD_BYTES, "record")?;
    let mut records = Vec::with_capacity(count_ok.min(r.mem / RECORD_MEMORY));
    let mut prev_scope: Option<Arc<Scope>> = None;
    for index in 0..count {
        let rec = decode_record_at(r, index, &mut prev_scope, resource)?;
        records.push(rec);
    }
    Ok(Batch { seq, records })
}

fn decode_record_at(
    r: &mut Reader<'_>,
    index: u32,
    prev_scope: &mut Option<Arc<Scope>>,
    resource: &Arc<Resource>,
) -> Result<Record, DecodeError> {
    r.spend(RECORD_MEMORY)?;
    let kind_code = r.u8("kind")?;
    let kind = Kind::from_code(kind_code).ok_or(DecodeError::UnknownCode {
        what: "kind",
        code: kind_code,
    })?;
    let level_code = r.u8("level")?;
    let level = Level::from_code(level_code).ok_or(DecodeError::UnknownCode {
        what: "level",
        code: level_code,
    })?;
    let id = RecordId(r.array("record id")?);
    let ts = Timestamp(i64::from_le_bytes(r.array("timestamp")?));
    let name = r.string("name")?;
    let target = r.string("target")?;
    let f = r.u16("flags")?;
    if f & !flags::KNOWN != 0 {
        return Err(DecodeError::UnknownFlags(f & !flags::KNOWN));
    }
    if f & flags::SCOPE != 0 && f & flags::SCOPE_SAME != 0 {
        return Err(DecodeError::UnknownFlags(flags::SCOPE | flags::SCOPE_SAME));
    }
    let trace_id = TraceId(r.array("trace id")?);
    let has = |bit: u16| f & bit != 0;

    let mut rec = Record::new(id, ts, kind, level, Str::Owned(name));
    rec.target = Str::Owned(target);
    rec.trace_id = trace_id;
    rec.resource = Arc::clone(resource);
    if has(flags::MESSAGE) {
        rec.message = Some(r.string("message")?);
    }
    if has(flags::SPAN_ID) {
        rec.span_id = Some(SpanId(r.array("span id")?));
    }
    if has(flags::PARENT_SPAN_ID) {
        rec.parent_span_id = Some(SpanId(r.array("parent span id")?));
    }
    if has(flags::FILE) {
        rec.file = Some(Str::Owned(r.string("file")?));
    }
    if has(flags::LINE) {
        rec.line = Some(
            u32::try_from(r.varint("line")?)
                .map_err(|_| DecodeError::OutOfRange { context: "line" })?,
        );
    }
    if has(flags::CATEGORY) {
        rec.category = Some(Str::Owned(r.string("category")?));
    }
    if has(flags::STATUS) {
        let code = r.u8("status")?;
        rec.status = Some(Status::from_code(code).ok_or(DecodeError::UnknownCode {
            what: "status",
            code,
        })?);
    }
    if has(flags::DURATION) {
        rec.duration_ns = Some(r.varint("duration")?);
    }
    if has(flags::BUSY) {
        rec.busy_ns = Some(r.varint("busy time")?);
    }
    if has(flags::IDLE) {
        rec.idle_ns = Some(r.varint("idle time")?);
    }
    if has(flags::SCOPE_SAME) {
        rec.scope = prev_scope
            .clone()
            .ok_or(DecodeError::DanglingScope { index })?;
    } else {
        if has(flags::SCOPE) {
            let mask = r.u16("scope mask")?;
            if mask >> ScopeKey::COUNT != 0 {
                return Err(DecodeError::UnknownFlags(mask));
            }
            let mut scope = Scope::new();
            for key in ScopeKey::ALL {
                if mask & (1 << (*key as u16)) != 0 {
                    scope.set(*key, Some(r.string("scope value")?));
                }
            }
            rec.scope = Arc::new(scope);
        }
        *prev_scope = Some(Arc::clone(&rec.scope));
    }

    let n = r.varint("field count")?;
    if n > MAX_FIELDS_PER_RECORD as u64 {
        return Err(DecodeError::TooManyFields {
            index,
            count: n,
            max: MAX_FIELDS_PER_RECORD,
        });
    }
    let n = r.capacity_for(n, 2, "field")?;
    // The fields (the pairs they are made from live only while this record is read).
    r.spend(n.saturating_mul(FIELD_MEMORY))?;
    let mut pairs: Vec<(Str, Value)> = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push(decode_field(r)?);
    }
    rec.fields = dedup_last_wins(pairs);
    Ok(rec)
}

fn decode_field(r: &mut Reader<'_>) -> Result<(Str, Value), DecodeError> {
    let key = r.string("field key")?;
    let value = decode_value(r, &key)?;
    Ok((Str::Owned(key), value))
}

/// The key of the field entry starting at `pos` and the position after the entry, or
/// `None` if no valid entry starts there.
pub(crate) fn field_entry_at(bytes: &[u8], pos: usize) -> Option<(&str, usize)> {
    let mut r = Reader {
        pos,
        ..Reader::new(bytes, usize::MAX)
    };
    let len = usize::try_from(r.varint("field key").ok()?).ok()?;
    let key = std::str::from_utf8(r.take(len, "field key").ok()?).ok()?;
    match r.u8("value tag").ok()? {
        tag::STR | tag::JSON => {
            let n = usize::try_from(r.varint("field value").ok()?).ok()?;
            r.take(n, "field value").ok()?;
        }
        tag::I64 | tag::U64 => {
            r.varint("field value").ok()?;
        }
        tag::F64 => {
            r.take(8, "field value").ok()?;
        }
        tag::FALSE | tag::TRUE => {}
        _ => return None,
    }
    Some((key, r.pos))
}

/// Decodes field entries that fill `chunks` exactly (see `EncodedFields`).
pub(crate) fn decode_field_chunks(chunks: &[&[u8]]) -> Result<Fields, DecodeError> {
    let mut pairs = Vec::new();
    for chunk in chunks {
        let mut r = Reader::new(chunk, usize::MAX);
        while r.remaining() > 0 {
            pairs.push(decode_field(&mut r)?);
        }
    }
    Ok(dedup_last_wins(pairs))
}

fn decode_value(r: &mut Reader<'_>, key: &str) -> Result<Value, DecodeError> {
    Ok(match r.u8("value tag")? {
        tag::STR => Value::Str(r.string("field value")?),
        tag::I64 => Value::I64(unzigzag(r.varint("field value")?)),
        tag::U64 => Value::U64(r.varint("field value")?),
        tag::F64 => Value::F64(f64::from_le_bytes(r.array("field value")?)),
        tag::FALSE => Value::Bool(false),
        tag::TRUE => Value::Bool(true),
        tag::JSON => {
            let text = r.string("field value")?;
            Value::Json(Json::parse(text).map_err(|e| DecodeError::InvalidJson {
                key: excerpt(key, 64),
                message: e.to_string(),
            })?)
        }
        code => {
            return Err(DecodeError::UnknownCode {
                what: "value tag",
                code,
            })
        }
    })
}

/// Field keys must be unique; a peer that repeats one gets last-wins, in linear time.
fn dedup_last_wins(pairs: Vec<(Str, Value)>) -> Fields {
    if pairs.len() <= 16 {
        let mut out = Fields::with_capacity(pairs.len());
        for (k, v) in pairs {
            out.set(k, v);
        }
        return out;
    }
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(pairs.len());
    for (i, (k, _)) in pairs.iter().enumerate() {
        last.insert(k.as_ref(), i);
    }
    let keep: Vec<bool> = (0..pairs.len())
        .map(|i| last.get(pairs[i].0.as_ref()) == Some(&i))
        .collect();
    let mut out = Fields::with_capacity(last.len());
    drop(last);
    for ((k, v), keep) in pairs.into_iter().zip(keep) {
        if keep {
            out.push_unique(k, v);
        }
    }
    out
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// What one decoded record takes in memory before its strings and fields.
const RECORD_MEMORY: usize = std::mem::size_of::<Record>();
/// What one field takes in memory besides its strings.
const FIELD_MEMORY: usize = std::mem::size_of::<(Str, Value)>();
/// What the allocator takes besides a string's bytes.
const STRING_MEMORY: usize = 16;

/// About the memory a decoded record holds: the record, its fields, and its strings
/// (a shared scope counted in full), as [`decode_frame_within`] bounds it.
pub fn record_memory(r: &Record) -> usize {
    let s = |t: &str| t.len() + STRING_MEMORY;
    let fields: usize = r
        .fields
        .iter()
        .map(|(k, v)| {
            FIELD_MEMORY
                + s(k)
                + match v {
                    Value::Str(t) => s(t),
                    Value::Json(j) => s(j.as_str()),
                    Value::I64(_) | Value::U64(_) | Value::F64(_) | Value::Bool(_) => 0,
                }
        })
        .sum();
    RECORD_MEMORY
        + s(&r.name)
        + s(&r.target)
        + r.message.as_deref().map_or(0, s)
        + r.file.as_ref().map_or(0, |f| s(f))
        + r.category.as_ref().map_or(0, |c| s(c))
        + r.scope.iter().map(|(_, v)| s(v)).sum::<usize>()
        + fields
}

/// `s` cut to at most `max` bytes at a character boundary, marked when cut: client
/// text quoted in an error stays short.
fn excerpt(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Bytes of memory the decoded values may still take.
    mem: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], mem: usize) -> Self {
        Self { buf, pos: 0, mem }
    }

    /// Counts `n` bytes of memory against what the decoded values may take.
    fn spend(&mut self, n: usize) -> Result<(), DecodeError> {
        match self.mem.checked_sub(n) {
            Some(left) => {
                self.mem = left;
                Ok(())
            }
            None => Err(DecodeError::TooMuchMemory),
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, context: &'static str) -> Result<&'a [u8], DecodeError> {
        let rem = self.remaining();
        if n > rem {
            return Err(DecodeError::Truncated {
                context,
                needed: n - rem,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, context: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, context)?);
        Ok(a)
    }

    fn u8(&mut self, context: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, context)?[0])
    }
    fn u16(&mut self, context: &'static str) -> Result<u16, DecodeError> {
        self.array(context).map(u16::from_le_bytes)
    }
    fn u32(&mut self, context: &'static str) -> Result<u32, DecodeError> {
        self.array(context).map(u32::from_le_bytes)
    }
    fn u64(&mut self, context: &'static str) -> Result<u64, DecodeError> {
        self.array(context).map(u64::from_le_bytes)
    }

    fn varint(&mut self, context: &'static str) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.u8(context)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return Err(DecodeError::BadVarint { context });
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint { context })
    }

    fn string(&mut self, context: &'static str) -> Result<String, DecodeError> {
        let len = self.varint(context)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|l| *l <= self.remaining())
            .ok_or(DecodeError::Truncated {
                context,
                needed: usize::try_from(len)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(self.remaining()),
            })?;
        self.spend(len + STRING_MEMORY)?;
        let bytes = self.take(len, context)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8 { context })
    }

    /// How many items to pre-allocate for `count` items of at least `min_bytes` each:
    /// refuses counts the remaining bytes cannot hold.
    fn capacity_for(
        &self,
        count: u64,
        min_bytes: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        let available = self.remaining();
        match usize::try_from(count) {
            Ok(c) if c.saturating_mul(min_bytes) <= available => Ok(c),
            _ => Err(DecodeError::CountTooLarge {
                what,
                count,
                available,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::encode::{put_varint, zigzag};
    use super::*;

    #[test]
    fn varint_edges() {
        for v in [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut r = Reader::new(&b, usize::MAX);
            assert_eq!(r.varint("t"), Ok(v));
            assert_eq!(r.remaining(), 0);
        }
        let mut r = Reader::new(&[0xff; 11], usize::MAX);
        assert_eq!(r.varint("t"), Err(DecodeError::BadVarint { context: "t" }));
        let mut r = Reader::new(
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            usize::MAX,
        );
        assert_eq!(r.varint("t"), Err(DecodeError::BadVarint { context: "t" }));
    }

    #[test]
    fn zigzag_round_trip() {
        for v in [0i64, -1, 1, i64::MIN, i64::MAX, -300] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }

    #[test]
    fn oversized_length_refused_before_allocation() {
        assert_eq!(
            frame_len(u32::MAX.to_le_bytes(), 1024),
            Err(DecodeError::FrameTooLarge {
                len: u64::from(u32::MAX),
                max: 1024
            })
        );
        assert_eq!(frame_len([0; 4], 1024), Err(DecodeError::EmptyFrame));
        assert_eq!(frame_len(5u32.to_le_bytes(), 1024), Ok(5));
    }

    #[test]
    fn huge_string_length_is_truncation_not_allocation() {
        let mut b = vec![FrameType::Error as u8, 1, 0];
        put_varint(&mut b, u64::MAX);
        let err = decode_frame(&b, &Arc::default()).unwrap_err();
        assert!(matches!(err, DecodeError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn a_frame_of_small_fields_is_held_to_its_memory_allowance() {
        // 200 records of 200 boolean fields: a few bytes each on the wire, dozens in
        // memory.
        let records: Vec<Record> = (0..200)
            .map(|i| {
                let mut r = Record::new(
                    RecordId::new(InstanceId::from_random(1), i),
                    Timestamp(1),
                    Kind::Event,
                    Level::Info,
                    "e",
                );
                for k in 0..200 {
                    r.fields.set(format!("k{k}"), Value::Bool(true));
                }
                r
            })
            .collect();
        let mut bytes = Vec::new();
        super::super::encode_frame(&Frame::Batch(Batch { seq: 1, records }), &mut bytes);
        let body = &bytes[HEADER_LEN..];
        let Ok(Frame::Batch(b)) = decode_frame(body, &Arc::default()) else {
            panic!("decodes without a limit");
        };
        let held: usize = b.records.iter().map(record_memory).sum();
        assert!(held > 10 * body.len(), "{held} for {} bytes", body.len());
        // What it holds fits; a tenth does not.
        assert!(decode_frame_within(body, &Arc::default(), held).is_ok());
        let e = decode_frame_within(body, &Arc::default(), held / 10).unwrap_err();
        assert_eq!(e, DecodeError::TooMuchMemory);
        assert_eq!(e.error_code(), ErrorCode::LimitExceeded);
    }

    #[test]
    fn duplicate_keys_last_wins_in_large_sets() {
        let pairs: Vec<(Str, Value)> = (0..40)
            .map(|i| (Str::Owned(format!("k{}", i % 20)), Value::I64(i)))
            .collect();
        let f = dedup_last_wins(pairs);
        assert_eq!(f.len(), 20);
        assert_eq!(f.get("k3"), Some(&Value::I64(23)));
    }
}
