//! `logbook verify`: walks the audit chain from its newest anchor, recomputes every
//! content and chain hash, checks every checkpoint and anchor signature, and names the
//! first bad sequence number.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use logbook_proto::{Record, Timestamp};

use super::canonical::record_digest;
use super::chain::{chain_hash, ChainFormat, ChainRow, GENESIS};
use super::checkpoint::{read_checkpoint_file, Checkpoint, CheckpointKind};
use super::{PublicKey, StorageClass};
use crate::store::{StoreError, StoreReader};

/// Chain rows read per step of the walk.
const PAGE: usize = 1000;

/// What `verify` reads from a store, all from one snapshot
/// ([`StoreReader::with_audit_snapshot`]).
pub trait AuditSource {
    /// The checkpoints and anchors the store holds, in the order it stored them.
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, StoreError>;

    /// Chain rows numbered above `after`, in order, at most `limit`.
    fn chain_rows(&mut self, after: u64, limit: usize) -> Result<Vec<ChainRow>, StoreError>;

    /// The record a chain row points at, as stored now; `None` if it is gone.
    fn chained_record(&mut self, row: &ChainRow) -> Result<Option<ChainedRecord>, StoreError>;

    /// The seq of an audit record that has no chain row, if there is one.
    fn unchained_audit_record(&mut self) -> Result<Option<i64>, StoreError>;
}

/// A chained record as stored now.
#[derive(Debug)]
pub struct ChainedRecord {
    /// Its storage class.
    pub class: StorageClass,
    /// The record read back, or why it does not read.
    pub record: Result<Record, String>,
    /// For a format-1 row: the backend's digest of the stored row.
    pub row_digest: Option<[u8; 32]>,
}

/// The name of the audit record a DSAR deletion writes; its field
/// [`TOMBSTONED_FIELD`] lists the chain rows it tombstoned as `[from, to]` ranges.
pub const DSAR_DELETE_NAME: &str = "logbook.dsar.delete";
/// See [`DSAR_DELETE_NAME`].
pub const TOMBSTONED_FIELD: &str = "tombstoned";

/// What `verify` needs. Its `Debug` form never shows the chain key.
#[derive(Clone)]
pub struct VerifyOptions {
    /// The chain key.
    pub chain_key: [u8; 32],
    /// The key checkpoint signatures are checked with.
    pub public: PublicKey,
    /// The checkpoint file (the host's own, or a copy kept elsewhere).
    pub checkpoint_file: PathBuf,
}

impl std::fmt::Debug for VerifyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyOptions")
            .field("chain_key", &"**REDACTED**")
            .field("public", &self.public)
            .field("checkpoint_file", &self.checkpoint_file)
            .finish()
    }
}

/// The first thing found wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyProblem {
    /// The audit sequence number (chain row) where it shows, when it has one.
    pub n: Option<u64>,
    /// The record concerned, when there is one.
    pub record_seq: Option<i64>,
    /// What is wrong, in one line.
    pub what: String,
}

impl std::fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.n, self.record_seq) {
            (Some(n), Some(s)) => write!(f, "audit sequence {n} (record seq {s}): {}", self.what),
            (Some(n), None) => write!(f, "audit sequence {n}: {}", self.what),
            (None, Some(s)) => write!(f, "record seq {s}: {}", self.what),
            (None, None) => f.write_str(&self.what),
        }
    }
}

/// What `verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Chain rows checked.
    pub checked: u64,
    /// The first row checked (after the anchor).
    pub first_n: u64,
    /// The chain's head.
    pub last_n: u64,
    /// Rows whose record a DSAR deletion replaced by a tombstone (chain checked,
    /// content not).
    pub tombstoned: u64,
    /// The newest anchor the walk started after, with its time.
    pub anchor: Option<(u64, Timestamp)>,
    /// Checkpoints and anchors whose signatures were checked.
    pub checkpoints: u64,
    /// The newest checkpoint.
    pub last_checkpoint: Option<(u64, Timestamp)>,
    /// Rows after the newest checkpoint: protected by the chain key alone until the
    /// next checkpoint is copied off the host.
    pub after_last_checkpoint: u64,
    /// The first problem, if any.
    pub problem: Option<VerifyProblem>,
}

impl VerifyReport {
    /// No problem found.
    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

fn problem(n: Option<u64>, record_seq: Option<i64>, what: impl Into<String>) -> VerifyProblem {
    VerifyProblem {
        n,
        record_seq,
        what: what.into(),
    }
}

/// Verifies the audit chain of a store: one snapshot of it, and the checkpoint file.
pub fn verify(store: &dyn StoreReader, opts: &VerifyOptions) -> Result<VerifyReport, StoreError> {
    let mut report = VerifyReport::default();
    let mut found = None;
    store.with_audit_snapshot(&mut |source| {
        // The snapshot starts with the first read; the file is read after it, so every
        // checkpoint the snapshot holds is already in the file.
        let db_checkpoints = source.checkpoints()?;
        let snapshot = Timestamp::now();
        report = VerifyReport::default();
        found = walk(source, opts, db_checkpoints, snapshot, &mut report)?.err();
        Ok(())
    })?;
    report.problem = found;
    Ok(report)
}

type Walk = Result<Result<(), VerifyProblem>, StoreError>;

fn walk(
    source: &mut dyn AuditSource,
    opts: &VerifyOptions,
    db_checkpoints: Vec<Checkpoint>,
    snapshot: Timestamp,
    report: &mut VerifyReport,
) -> Walk {
    // Signatures first: in the database, then in the file.
    for c in &db_checkpoints {
        if !opts.public.verifies(&c.message(), &c.sig) {
            return Ok(Err(problem(
                Some(c.n),
                None,
                format!(
                    "the database's {} of {} has a bad signature",
                    c.kind.as_str(),
                    c.ts
                ),
            )));
        }
    }
    let mut file_checkpoints = Vec::new();
    match read_checkpoint_file(&opts.checkpoint_file) {
        Ok(lines) => {
            for (line, c) in lines {
                let c = match c {
                    Ok(c) => c,
                    Err(e) => {
                        return Ok(Err(problem(
                            None,
                            None,
                            format!(
                                "checkpoint file {} line {line}: {e}",
                                opts.checkpoint_file.display()
                            ),
                        )))
                    }
                };
                if !opts.public.verifies(&c.message(), &c.sig) {
                    return Ok(Err(problem(
                        Some(c.n),
                        None,
                        format!(
                            "checkpoint file {} line {line}: bad signature (the line was edited)",
                            opts.checkpoint_file.display()
                        ),
                    )));
                }
                file_checkpoints.push(c);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && db_checkpoints.is_empty() => {}
        Err(e) => {
            return Ok(Err(problem(
                None,
                None,
                format!(
                    "cannot read checkpoint file {}: {e}",
                    opts.checkpoint_file.display()
                ),
            )))
        }
    }
    let in_file: HashSet<[u8; 64]> = file_checkpoints.iter().map(|c| c.sig).collect();
    if let Some(c) = db_checkpoints.iter().find(|c| !in_file.contains(&c.sig)) {
        return Ok(Err(problem(
            Some(c.n),
            None,
            format!(
                "the checkpoint file lacks the {} of {} (n {}): it was edited or replaced",
                c.kind.as_str(),
                c.ts,
                c.n
            ),
        )));
    }
    // The file now holds every signed statement the database does. Those made after
    // the snapshot began may cover rows it cannot see.
    report.checkpoints = file_checkpoints.len() as u64;
    let mut signed = file_checkpoints;
    signed.retain(|c| c.ts < snapshot);
    let anchor = signed
        .iter()
        .filter(|c| c.kind == CheckpointKind::Anchor)
        .max_by_key(|c| c.n);
    let (start, mut prev) = anchor.map_or((0, GENESIS), |a| (a.n, a.chain));
    report.anchor = anchor.map(|a| (a.n, a.ts));
    report.last_checkpoint = signed
        .iter()
        .filter(|c| c.kind == CheckpointKind::Checkpoint)
        .max_by_key(|c| (c.n, c.ts))
        .map(|c| (c.n, c.ts));
    let mut expected_at: BTreeMap<u64, Vec<&Checkpoint>> = BTreeMap::new();
    for c in signed.iter().filter(|c| c.n > start) {
        expected_at.entry(c.n).or_default().push(c);
    }

    // Tombstoned rows seen, and the ranges DSAR deletions vouched for: a deletion's
    // record comes after the rows it lists, so both are settled after the walk.
    let mut tombstoned: Vec<(u64, i64)> = Vec::new();
    let mut vouched: Vec<(u64, u64)> = Vec::new();
    let mut expected = start + 1;
    report.first_n = expected;
    loop {
        let rows = source.chain_rows(expected - 1, PAGE)?;
        if rows.is_empty() {
            break;
        }
        for row in rows {
            let n = row.n;
            let seq = row.record_seq;
            if n != expected {
                let what = if expected == start + 1 && anchor.is_none() {
                    format!(
                        "the chain starts at {n} with no signed anchor: rows before it were deleted"
                    )
                } else {
                    format!(
                        "missing: the chain jumps from {} to {n} (rows deleted)",
                        expected - 1
                    )
                };
                return Ok(Err(problem(Some(expected), None, what)));
            }
            let Some(format) = row.format else {
                return Ok(Err(problem(Some(n), Some(seq), "unknown chain format")));
            };
            let Ok(content) = <[u8; 32]>::try_from(row.content_hash.as_slice()) else {
                return Ok(Err(problem(Some(n), Some(seq), "malformed content hash")));
            };
            let chain = chain_hash(format, &opts.chain_key, &prev, n, &content);
            if row.chain_hash.as_slice() != chain {
                return Ok(Err(problem(
                    Some(n),
                    Some(seq),
                    "chain hash does not match: the row was inserted, altered, reordered or re-chained without the key",
                )));
            }
            let Some(found) = source.chained_record(&row)? else {
                return Ok(Err(problem(Some(n), Some(seq), "its record was deleted")));
            };
            if found.class != StorageClass::Audit {
                return Ok(Err(problem(
                    Some(n),
                    Some(seq),
                    "its record is no longer marked audit",
                )));
            }
            if row.tombstone {
                tombstoned.push((n, seq));
                report.tombstoned += 1;
            } else {
                let digest = match (format, &found.record) {
                    (ChainFormat::Canonical | ChainFormat::CanonicalWithOrigin, Ok(r)) => {
                        record_digest(r, u64::try_from(seq).unwrap_or(0), found.class, format)
                    }
                    (ChainFormat::Canonical | ChainFormat::CanonicalWithOrigin, Err(_)) => None,
                    (ChainFormat::SqliteRow, _) => found.row_digest,
                };
                if digest != Some(content) {
                    let why = match &found.record {
                        Err(e) => {
                            format!("content hash does not match: the record was modified ({e})")
                        }
                        Ok(_) => "content hash does not match: the record was modified".to_owned(),
                    };
                    return Ok(Err(problem(Some(n), Some(seq), why)));
                }
                if let Ok(r) = &found.record {
                    vouched.extend(dsar_tombstones(format, n, r));
                }
            }
            for c in expected_at.remove(&n).unwrap_or_default() {
                if c.chain != chain {
                    return Ok(Err(problem(
                        Some(n),
                        Some(seq),
                        format!(
                            "differs from the {} of {}: rows up to it were rewritten",
                            c.kind.as_str(),
                            c.ts
                        ),
                    )));
                }
            }
            prev = chain;
            expected += 1;
            report.checked += 1;
        }
    }
    report.last_n = expected - 1;
    // The ranges sorted and merged, so that each tombstone is one binary search.
    vouched.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(vouched.len());
    for (a, b) in vouched {
        match merged.last_mut() {
            Some((_, end)) if a <= end.saturating_add(1) => *end = (*end).max(b),
            _ => merged.push((a, b)),
        }
    }
    let covered = |n: u64| {
        let i = merged.partition_point(|(a, _)| *a <= n);
        i > 0 && n <= merged[i - 1].1
    };
    if let Some((n, seq)) = tombstoned.iter().find(|(n, _)| !covered(*n)) {
        return Ok(Err(problem(
            Some(*n),
            Some(*seq),
            "tombstoned without a DSAR deletion recording it",
        )));
    }
    if let Some((n, cs)) = expected_at.iter().next() {
        return Ok(Err(problem(
            Some(report.last_n + 1),
            None,
            format!(
                "the chain ends at {} but the {} of {} covers {n}: rows were truncated or the database replaced by an older copy",
                report.last_n,
                cs[0].kind.as_str(),
                cs[0].ts
            ),
        )));
    }
    report.after_last_checkpoint = report.last_n - report.last_checkpoint.map_or(0, |c| c.0);
    let orphan = source.unchained_audit_record()?;
    if let Some(seq) = orphan {
        return Ok(Err(problem(
            None,
            Some(seq),
            "marked audit but not in the chain: inserted outside the collector",
        )));
    }
    Ok(Ok(()))
}

/// The chain rows a DSAR deletion tombstoned, as inclusive ranges, if `r` (chain row
/// `n`, walked and found intact) is one the collector wrote itself. A deletion is
/// recorded before it tombstones rows that already exist, so only ranges before `n`
/// count: a tombstoned row never vouches for itself. Clients cannot send the name (it
/// is reserved); rows of chain format 3 hash who sent the record; older rows, stored
/// before origins existed, hash its target, which only the collector used then.
fn dsar_tombstones(format: ChainFormat, n: u64, r: &Record) -> Vec<(u64, u64)> {
    if r.name != DSAR_DELETE_NAME {
        return Vec::new();
    }
    let by_collector = match format {
        ChainFormat::CanonicalWithOrigin => r
            .origin
            .as_ref()
            .is_some_and(|o| o.transport == logbook_proto::transport::COLLECTOR),
        ChainFormat::Canonical | ChainFormat::SqliteRow => r.target == super::ADMIN_TARGET,
    };
    let Some(logbook_proto::Value::Json(ranges)) = r.fields.get(TOMBSTONED_FIELD) else {
        return Vec::new();
    };
    if !by_collector {
        return Vec::new();
    }
    let ranges: Vec<(u64, u64)> = serde_json::from_str(ranges.as_str()).unwrap_or_default();
    ranges
        .into_iter()
        .filter(|(a, _)| *a < n)
        .map(|(a, b)| (a, b.min(n - 1)))
        .collect()
}
