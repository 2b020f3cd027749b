//! The keyed hash chain over audit records.
//!
//! Each audit record gets a chain row with a dense number `n`, a content hash and
//! `chain_hash = HMAC-SHA256(chain key, label ‖ previous chain hash ‖ n ‖ content hash)`.
//! The first row follows [`GENESIS`], or the anchor a prune left.
//!
//! Rows carry the format they were made in ([`ChainFormat`]): format 3 (every row
//! written now) hashes the record's canonical encoding ([`super::canonical`]) with its
//! origin, so any backend's chain verifies with the same code and says who sent each
//! record; format 2 (databases made before origins) hashed the encoding without it;
//! format 1 (databases made before either) hashed SQLite's row and is verified by the
//! SQLite backend's own digest.

use hmac::{Hmac, Mac};

/// The chain hash before the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// What a chain row's content hash is a digest of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainFormat {
    /// SQLite's stored row, column by column (schema versions up to 5).
    SqliteRow,
    /// The record's canonical encoding ([`super::canonical`]), without its origin.
    Canonical,
    /// The record's canonical encoding with its origin (who delivered it).
    CanonicalWithOrigin,
}

impl ChainFormat {
    /// What new rows are made in.
    pub const CURRENT: Self = Self::CanonicalWithOrigin;

    /// The number stored with the row.
    pub fn code(self) -> u8 {
        match self {
            Self::SqliteRow => 1,
            Self::Canonical => 2,
            Self::CanonicalWithOrigin => 3,
        }
    }

    /// The format with this number.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            1 => Some(Self::SqliteRow),
            2 => Some(Self::Canonical),
            3 => Some(Self::CanonicalWithOrigin),
            _ => None,
        }
    }

    fn label(self) -> &'static [u8] {
        match self {
            Self::SqliteRow => b"logbook-chain v1",
            Self::Canonical => b"logbook-chain v2",
            Self::CanonicalWithOrigin => b"logbook-chain v3",
        }
    }
}

/// The chain hash of row `n` (in `format`) with content `content` after `prev`.
pub fn chain_hash(
    format: ChainFormat,
    key: &[u8; 32],
    prev: &[u8; 32],
    n: u64,
    content: &[u8; 32],
) -> [u8; 32] {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(format.label());
    mac.update(prev);
    mac.update(&n.to_be_bytes());
    mac.update(content);
    mac.finalize().into_bytes().into()
}

/// One row of the chain as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRow {
    /// Its number: dense, from 1 or from the newest anchor.
    pub n: u64,
    /// The record's sequence number.
    pub record_seq: i64,
    /// What `content_hash` digests.
    pub format: Option<ChainFormat>,
    /// The record's digest when it was chained (32 bytes unless tampered with).
    pub content_hash: Vec<u8>,
    /// The link to the previous row.
    pub chain_hash: Vec<u8>,
    /// A DSAR deletion replaced the record's payload.
    pub tombstone: bool,
}
