//! Signed checkpoints and anchors: the chain's length and head at a time, signed with
//! the ed25519 key, appended to a JSON Lines file meant to be copied off the host and
//! kept in the `audit_checkpoints` table.
//!
//! A line:
//! `{"type":"checkpoint","n":120,"chain":"<64 hex>","ts":"2026-…Z","ts_ns":…,"pruned":0,"sig":"<128 hex>"}`.
//! An anchor (`"type":"anchor"`) is written when a prune deletes the chain's rows up to
//! `n`: verification then resumes after it.

use std::fs::OpenOptions;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use logbook_proto::Timestamp;
use serde::{Deserialize, Serialize};

use super::{from_hex, to_hex, Keys};
use crate::store::StoreError;

/// Where checkpoints of the database at `db` go unless configured: beside it, with the
/// extension `.checkpoints`.
pub fn default_checkpoint_file(db: &Path) -> PathBuf {
    db.with_extension("checkpoints")
}

/// When to write a checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// The file lines are appended to.
    pub file: PathBuf,
    /// After this many audit records.
    pub every_records: u64,
    /// After this long, also when nothing was appended.
    pub every: Duration,
}

/// A checkpoint or an anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointKind {
    /// The chain had `n` rows with head `chain`.
    Checkpoint,
    /// The rows up to `n` were pruned; the chain continues from `chain`.
    Anchor,
}

impl CheckpointKind {
    /// `checkpoint` or `anchor`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Checkpoint => "checkpoint",
            Self::Anchor => "anchor",
        }
    }
}

/// A signed statement about the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Checkpoint or anchor.
    pub kind: CheckpointKind,
    /// Rows in the chain (for an anchor: the last pruned row).
    pub n: u64,
    /// The chain hash of row `n`.
    pub chain: [u8; 32],
    /// When it was made.
    pub ts: Timestamp,
    /// Rows deleted by the prune (anchors).
    pub pruned: u64,
    /// ed25519 over [`Checkpoint::message`].
    pub sig: [u8; 64],
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(rename = "type")]
    kind: String,
    n: u64,
    chain: String,
    ts: String,
    ts_ns: i64,
    pruned: u64,
    sig: String,
}

impl Checkpoint {
    /// Makes and signs one.
    pub fn sign(keys: &Keys, kind: CheckpointKind, n: u64, chain: [u8; 32], pruned: u64) -> Self {
        let mut c = Self {
            kind,
            n,
            chain,
            ts: Timestamp::now(),
            pruned,
            sig: [0; 64],
        };
        c.sig = keys.sign(&c.message());
        c
    }

    /// The signed bytes.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "logbook-checkpoint v1\n{}\n{}\n{}\n{}\n{}",
            self.kind.as_str(),
            self.n,
            to_hex(&self.chain),
            self.ts.as_nanos(),
            self.pruned
        )
        .into_bytes()
    }

    /// Its line in the checkpoint file (no newline).
    pub fn to_line(&self) -> String {
        let line = Line {
            kind: self.kind.as_str().into(),
            n: self.n,
            chain: to_hex(&self.chain),
            ts: self.ts.to_string(),
            ts_ns: self.ts.as_nanos(),
            pruned: self.pruned,
            sig: to_hex(&self.sig),
        };
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// The kind with this word.
    pub fn kind_from_str(word: &str) -> Option<CheckpointKind> {
        match word {
            "checkpoint" => Some(CheckpointKind::Checkpoint),
            "anchor" => Some(CheckpointKind::Anchor),
            _ => None,
        }
    }

    /// Parses a line of the checkpoint file.
    pub fn parse_line(text: &str) -> Result<Self, String> {
        let l: Line = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let kind = Self::kind_from_str(&l.kind).ok_or(format!("unknown type {:?}", l.kind))?;
        Ok(Self {
            kind,
            n: l.n,
            chain: from_hex(&l.chain).ok_or("chain is not 64 hex digits")?,
            ts: Timestamp(l.ts_ns),
            pruned: l.pruned,
            sig: from_hex(&l.sig).ok_or("sig is not 128 hex digits")?,
        })
    }

    /// Appends it to `file` (created 0600) and syncs it. A store records a checkpoint
    /// in its own table only after this succeeded, so every checkpoint a snapshot of the
    /// store holds is in the file.
    pub fn append_to(&self, file: &Path) -> Result<(), StoreError> {
        let io = StoreError::io(format!("writing checkpoint file {}", file.display()));
        let mut f = match OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(file)
        {
            Ok(f) => f,
            Err(e) => return Err(io(e)),
        };
        f.write_all(format!("{}\n", self.to_line()).as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(io)
    }
}

/// A line of a checkpoint file: its number, and the checkpoint or why it does not parse.
pub type CheckpointLine = (usize, Result<Checkpoint, String>);

/// Every line of a checkpoint file.
pub fn read_checkpoint_file(file: &Path) -> Result<Vec<CheckpointLine>, io::Error> {
    let f = std::fs::File::open(file)?;
    let mut out = Vec::new();
    for (i, line) in io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push((i + 1, Checkpoint::parse_line(&line)));
    }
    Ok(out)
}
