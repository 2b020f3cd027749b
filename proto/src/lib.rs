//! logbook's canonical [`Record`] and the wire protocol between a layer and a collector.
//!
//! This crate is types and bytes only: no async runtime, no sockets. The layer
//! (`logbook-layer`) builds records and encodes them; the collector (`logbook-collector`)
//! decodes, validates and stores them. `PROTOCOL.md` documents every byte.
//!
//! ```
//! use std::sync::Arc;
//! use logbook_proto::wire::{decode_frame, encode_frame, Batch, Frame, HEADER_LEN};
//! use logbook_proto::{InstanceId, Kind, Level, Record, RecordId, Timestamp, Value};
//!
//! let mut record = Record::new(
//!     RecordId::new(InstanceId::from_random(7), 1),
//!     Timestamp::now(),
//!     Kind::Event,
//!     Level::Info,
//!     "checkout",
//! );
//! record.fields.set("items", Value::I64(3));
//!
//! let mut bytes = Vec::new();
//! encode_frame(&Frame::Batch(Batch { seq: 1, records: vec![record.clone()] }), &mut bytes);
//! let frame = decode_frame(&bytes[HEADER_LEN..], &record.resource).unwrap();
//! assert_eq!(frame, Frame::Batch(Batch { seq: 1, records: vec![record] }));
//! ```
#![warn(missing_docs)]

pub mod genai;
pub mod ids;
pub mod json;
pub mod keys;
pub mod paths;
pub mod record;
pub mod time;
pub mod value;
pub mod wire;

pub use ids::{InstanceId, ParseIdError, RecordId, SpanId, TraceId};
pub use record::{
    transport, Kind, Level, Origin, ParseEnumError, PerLevel, Record, Resource, Scope, ScopeKey,
    Status, SCHEMA_VERSION,
};
pub use time::{ParseTimestampError, Timestamp};
pub use value::{Fields, Json, Str, Value};
