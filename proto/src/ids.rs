//! Identifiers: trace, span, record and emitter-instance ids, with hex forms.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A hex string that is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what}: expected {len} hex digits, got {got:?}")]
pub struct ParseIdError {
    what: &'static str,
    len: usize,
    got: String,
}

macro_rules! hex_id {
    ($(#[$meta:meta])* $name:ident, $bytes:literal, $what:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $bytes]);

        impl $name {
            /// Number of bytes in this id.
            pub const LEN: usize = $bytes;

            /// The all-zero id, which the protocol treats as invalid.
            pub const ZERO: Self = Self([0; $bytes]);

            /// Whether this id is not all zeroes.
            pub fn is_valid(&self) -> bool {
                self.0 != [0; $bytes]
            }

            /// Parses lowercase or uppercase hex of exactly `2 * LEN` digits.
            pub fn from_hex(s: &str) -> Result<Self, ParseIdError> {
                let err = || ParseIdError { what: $what, len: 2 * $bytes, got: s.to_owned() };
                let raw = s.as_bytes();
                if raw.len() != 2 * $bytes {
                    return Err(err());
                }
                let mut out = [0u8; $bytes];
                for (i, pair) in raw.chunks_exact(2).enumerate() {
                    let hi = hex_val(pair[0]).ok_or_else(err)?;
                    let lo = hex_val(pair[1]).ok_or_else(err)?;
                    out[i] = (hi << 4) | lo;
                }
                Ok(Self(out))
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity(2 * $bytes);
                push_hex(&mut s, &self.0);
                s
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::from_hex(s)
            }
        }

        /// Serialized as lowercase hex (built on the stack: exports write several ids
        /// per record).
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut buf = [0u8; 2 * $bytes];
                for (pair, b) in buf.chunks_exact_mut(2).zip(self.0) {
                    pair[0] = HEX[usize::from(b >> 4)];
                    pair[1] = HEX[usize::from(b & 0xf)];
                }
                // Hex digits are ASCII.
                s.serialize_str(std::str::from_utf8(&buf).unwrap_or_default())
            }
        }
    };
}

hex_id!(
    /// A W3C trace id: 16 bytes, shown as 32 hex digits.
    TraceId, 16, "trace id"
);
hex_id!(
    /// A span id: 8 bytes, shown as 16 hex digits.
    SpanId, 8, "span id"
);
hex_id!(
    /// A record's idempotency key, assigned by the emitter: the emitter's
    /// [`InstanceId`] followed by a big-endian per-instance counter, so ids from one
    /// emitter sort in emission order and a resent record is recognised.
    RecordId, 16, "record id"
);
hex_id!(
    /// One emitting process (one layer instance): random, chosen at start-up.
    InstanceId, 8, "instance id"
);

impl RecordId {
    /// The id of the `counter`-th record of `instance`.
    pub fn new(instance: InstanceId, counter: u64) -> Self {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&instance.0);
        out[8..].copy_from_slice(&counter.to_be_bytes());
        Self(out)
    }
}

impl TraceId {
    /// A trace id from a random source; never zero.
    pub fn from_random(hi: u64, lo: u64) -> Self {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&hi.to_be_bytes());
        out[8..].copy_from_slice(&(lo | 1).to_be_bytes());
        Self(out)
    }
}

impl SpanId {
    /// A span id from a random source; never zero.
    pub fn from_random(v: u64) -> Self {
        Self((v | 1).to_be_bytes())
    }
}

impl InstanceId {
    /// An instance id from a random source; never zero.
    pub fn from_random(v: u64) -> Self {
        Self((v | 1).to_be_bytes())
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends the lowercase hex form of `bytes` to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
}

/// Lowercase hex digits.
const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let t = TraceId::from_random(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        assert_eq!(t.to_hex(), "0123456789abcdeffedcba9876543211");
        assert_eq!(TraceId::from_hex(&t.to_hex()), Ok(t));
        assert_eq!(TraceId::from_hex("0123456789ABCDEFFEDCBA9876543211"), Ok(t));
    }

    #[test]
    fn rejects_bad_hex() {
        assert!(SpanId::from_hex("abc").is_err());
        assert!(SpanId::from_hex("zz23456789abcdef").is_err());
        assert!(SpanId::from_hex("0123456789abcdef0").is_err());
    }

    #[test]
    fn record_ids_sort_by_counter() {
        let i = InstanceId::from_random(7);
        assert!(RecordId::new(i, 1) < RecordId::new(i, 2));
        assert!(RecordId::new(i, 255) < RecordId::new(i, 256));
    }

    #[test]
    fn random_ids_are_never_zero() {
        assert!(SpanId::from_random(0).is_valid());
        assert!(TraceId::from_random(0, 0).is_valid());
        assert!(InstanceId::from_random(0).is_valid());
    }
}
