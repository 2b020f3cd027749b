//! The wire protocol between a layer and a collector (see `PROTOCOL.md`).
//!
//! A connection carries length-prefixed frames: a little-endian `u32` giving the
//! number of bytes that follow, then a one-byte frame type and its payload. The
//! client opens with [`Hello`]; the collector answers [`Welcome`] (or [`ErrorFrame`]
//! and closes). The client then sends [`Batch`]es, each with a sequence number, and
//! [`Gap`]s; the collector answers each batch with an [`Ack`] once its records are
//! durably committed, preceded by a [`Reject`] when it refused some of them.

mod decode;
mod encode;
mod fields;

pub use decode::{
    decode_frame, decode_frame_within, decode_record, frame_len, read_frame, record_memory,
    DecodeError, ReadFrameError,
};
pub use encode::{
    encode_frame, encode_record, encode_record_at, BatchEncoder, CallsiteBytes, RecordHead,
    RecordTooLarge, RECORD_ID_OFFSET, RECORD_LEVEL_OFFSET,
};
pub use fields::{EncodedFields, MessageText, TextField};

use crate::ids::{InstanceId, RecordId};
use crate::record::{Level, PerLevel, Record};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The largest frame a collector accepts unless configured otherwise (16 MiB).
pub const DEFAULT_MAX_FRAME_BYTES: u32 = 16 * 1024 * 1024;

/// The most fields one record may carry. Bounds the memory a frame can make the
/// decoder allocate (a field is a few bytes on the wire but tens in memory).
pub const MAX_FIELDS_PER_RECORD: usize = 1024;

/// The first bytes of every hello: refuses peers speaking something else.
pub const HELLO_MAGIC: [u8; 4] = *b"LGBK";

/// Frame type bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    /// Client → collector, first frame.
    Hello = 0x01,
    /// Collector → client, answer to hello.
    Welcome = 0x02,
    /// Client → collector: records.
    Batch = 0x03,
    /// Collector → client: a batch is committed.
    Ack = 0x04,
    /// Collector → client: records of a batch that were refused.
    Reject = 0x05,
    /// Client → collector: records the client had to drop.
    Gap = 0x06,
    /// Either way: a fatal error; the sender closes the connection.
    Error = 0x07,
}

impl FrameType {
    /// The frame type with this byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Hello,
            0x02 => Self::Welcome,
            0x03 => Self::Batch,
            0x04 => Self::Ack,
            0x05 => Self::Reject,
            0x06 => Self::Gap,
            0x07 => Self::Error,
            _ => return None,
        })
    }
}

/// The client's opening frame. Its `Debug` form never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the client speaks.
    pub version: u16,
    /// The emitting process instance; record ids begin with it.
    pub instance: InstanceId,
    /// Process id.
    pub pid: u32,
    /// Service name.
    pub service: String,
    /// Host name.
    pub host: String,
    /// Shared secret, when the collector requires one.
    pub token: Option<String>,
}

impl std::fmt::Debug for Hello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("version", &self.version)
            .field("instance", &self.instance)
            .field("pid", &self.pid)
            .field("service", &self.service)
            .field("host", &self.host)
            .field("token", &self.token.as_ref().map(|_| "**REDACTED**"))
            .finish()
    }
}

/// The collector's answer to a hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Welcome {
    /// Protocol version the collector speaks.
    pub version: u16,
    /// The largest frame the collector accepts; clients size batches below it.
    pub max_frame_bytes: u32,
    /// Collector name and version, for diagnostics.
    pub server: String,
}

/// Records sent together; acknowledged together.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Per-connection sequence number chosen by the client, echoed in the ack. Resent
    /// batches keep their number.
    pub seq: u64,
    /// The records.
    pub records: Vec<Record>,
}

/// A batch is durably committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The batch's sequence number.
    pub seq: u64,
    /// Records newly stored.
    pub stored: u32,
    /// Records already stored earlier (a resend), not stored again.
    pub duplicates: u32,
}

/// One refused record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordReject {
    /// Index of the record within its batch.
    pub index: u32,
    /// The record's id.
    pub id: RecordId,
    /// Why it was refused, one line.
    pub reason: String,
}

/// Records of a batch that the collector refused (and kept in quarantine where
/// configured); the rest of the batch is stored and acknowledged as usual.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The batch's sequence number.
    pub seq: u64,
    /// The refused records.
    pub records: Vec<RecordReject>,
}

/// Records the client had to drop, as running totals since the instance started,
/// by level. Totals make the frame idempotent: the collector keeps the largest seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gap {
    /// Dropped records per [`Level`], indexed by [`Level::index`].
    pub dropped: PerLevel<u64>,
}

impl Gap {
    /// All dropped records.
    pub fn total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    /// Dropped records at `level`.
    pub fn at(&self, level: Level) -> u64 {
        self.dropped[level.index()]
    }
}

/// Why a peer is closing the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ErrorCode {
    /// A frame could not be decoded.
    Malformed = 1,
    /// A frame exceeded the size limit.
    FrameTooLarge = 2,
    /// The hello named a protocol version this peer does not speak.
    UnsupportedVersion = 3,
    /// The hello's token was missing or wrong.
    Unauthorized = 4,
    /// A valid frame arrived out of order (e.g. a batch before the hello).
    ProtocolViolation = 5,
    /// The collector is shutting down, cannot store records right now, or has as many
    /// connections as it takes: retry later.
    Unavailable = 6,
    /// The connection was silent for longer than the collector waits: not a fault;
    /// reconnect when there is something to send.
    Idle = 7,
    /// A limit was exceeded (a batch's record count, the hello's service or host
    /// length): sending the same again fails again.
    LimitExceeded = 8,
}

impl ErrorCode {
    /// The code with this number; unknown numbers read as `Malformed`.
    pub fn from_u16(v: u16) -> Self {
        match v {
            2 => Self::FrameTooLarge,
            3 => Self::UnsupportedVersion,
            4 => Self::Unauthorized,
            5 => Self::ProtocolViolation,
            6 => Self::Unavailable,
            7 => Self::Idle,
            8 => Self::LimitExceeded,
            _ => Self::Malformed,
        }
    }
}

/// A fatal error; the sender closes the connection after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorFrame {
    /// What kind of error.
    pub code: ErrorCode,
    /// One line for a human.
    pub message: String,
}

/// Any frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// See [`Batch`].
    Batch(Batch),
    /// See [`Ack`].
    Ack(Ack),
    /// See [`Reject`].
    Reject(Reject),
    /// See [`Gap`].
    Gap(Gap),
    /// See [`ErrorFrame`].
    Error(ErrorFrame),
}

impl Frame {
    /// This frame's type byte.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Self::Hello(_) => FrameType::Hello,
            Self::Welcome(_) => FrameType::Welcome,
            Self::Batch(_) => FrameType::Batch,
            Self::Ack(_) => FrameType::Ack,
            Self::Reject(_) => FrameType::Reject,
            Self::Gap(_) => FrameType::Gap,
            Self::Error(_) => FrameType::Error,
        }
    }
}

/// Record flag bits (see `PROTOCOL.md`).
pub(crate) mod flags {
    pub(crate) const MESSAGE: u16 = 1 << 0;
    pub(crate) const SPAN_ID: u16 = 1 << 1;
    pub(crate) const PARENT_SPAN_ID: u16 = 1 << 2;
    pub(crate) const FILE: u16 = 1 << 3;
    pub(crate) const LINE: u16 = 1 << 4;
    pub(crate) const CATEGORY: u16 = 1 << 5;
    pub(crate) const STATUS: u16 = 1 << 6;
    pub(crate) const DURATION: u16 = 1 << 7;
    pub(crate) const BUSY: u16 = 1 << 8;
    pub(crate) const IDLE: u16 = 1 << 9;
    pub(crate) const SCOPE: u16 = 1 << 10;
    pub(crate) const SCOPE_SAME: u16 = 1 << 11;
    pub(crate) const KNOWN: u16 = (1 << 12) - 1;
}

/// Field value tags.
pub(crate) mod tag {
    pub(crate) const STR: u8 = 0;
    pub(crate) const I64: u8 = 1;
    pub(crate) const U64: u8 = 2;
    pub(crate) const F64: u8 = 3;
    pub(crate) const FALSE: u8 = 4;
    pub(crate) const TRUE: u8 = 5;
    pub(crate) const JSON: u8 = 6;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_never_shows_its_token() {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            instance: InstanceId::from_random(1),
            pid: 1,
            service: "svc".into(),
            host: "h".into(),
            token: Some("hunter2-secret".into()),
        };
        let shown = format!("{hello:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("**REDACTED**") && shown.contains("svc"),
            "{shown}"
        );
    }
}
