//! `logbook verify`: walks the audit chain from its newest anchor, recomputes every
//! content and chain hash, checks every checkpoint and anchor signature, and names the
//! first bad sequence number.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use logbook_proto::Timestamp;
use rusqlite::{Connection, OptionalExtension};

use super::chain::{chain_hash, row_digest, AUDIT_ROW_COLUMNS, GENESIS};
use super::checkpoint::{read_checkpoint_file, Checkpoint, CheckpointKind};
use super::{PublicKey, CLASS_AUDIT};
use crate::store::StoreError;

/// The name of the audit record a DSAR deletion writes; its field
/// [`TOMBSTONED_FIELD`] lists the chain rows it tombstoned as `[from, to]` ranges.
pub const DSAR_DELETE_NAME: &str = "logbook.dsar.delete";
/// See [`DSAR_DELETE_NAME`].
pub const TOMBSTONED_FIELD: &str = "tombstoned";

/// What `verify` needs.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The chain key.
    pub chain_key: [u8; 32],
    /// The key checkpoint signatures are checked with.
    pub public: PublicKey,
    /// The checkpoint file (the host's own, or a copy kept elsewhere).
    pub checkpoint_file: PathBuf,
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

/// Verifies the audit chain of the database on `conn` (any connection; the walk reads
/// one snapshot).
pub fn verify(conn: &Connection, opts: &VerifyOptions) -> Result<VerifyReport, StoreError> {
    let tx = conn.unchecked_transaction()?;
    // The snapshot starts with the first read; the file is read after it, so every
    // checkpoint the snapshot holds is already in the file.
    let db_checkpoints = load_db_checkpoints(&tx)?;
    let snapshot = Timestamp::now();
    let mut report = VerifyReport::default();
    let result = walk(&tx, opts, db_checkpoints, snapshot, &mut report);
    drop(tx);
    if let Err(p) = result? {
        report.problem = Some(p);
    }
    Ok(report)
}

fn load_db_checkpoints(conn: &Connection) -> Result<Vec<Checkpoint>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT kind, n, chain_hash, ts, pruned, signature FROM audit_checkpoints ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, Vec<u8>>(5)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, n, chain, ts, pruned, sig) = row?;
        let corrupt = || StoreError::Corrupt {
            seq: n,
            message: "malformed row in audit_checkpoints".into(),
        };
        out.push(Checkpoint {
            kind: if kind == "anchor" {
                CheckpointKind::Anchor
            } else {
                CheckpointKind::Checkpoint
            },
            n: n as u64,
            chain: chain.as_slice().try_into().map_err(|_| corrupt())?,
            ts: Timestamp(ts),
            pruned: pruned as u64,
            sig: sig.as_slice().try_into().map_err(|_| corrupt())?,
        });
    }
    Ok(out)
}

type Walk = Result<Result<(), VerifyProblem>, StoreError>;

fn walk(
    conn: &Connection,
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
                    kind_name(c.kind),
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
                kind_name(c.kind),
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

    let tombstone_ok = dsar_tombstones(conn)?;
    let mut rows = conn.prepare(
        "SELECT n, record_seq, content_hash, chain_hash, tombstone FROM audit_chain
         WHERE n > ?1 ORDER BY n",
    )?;
    let mut record = conn.prepare(&format!(
        "SELECT {AUDIT_ROW_COLUMNS} FROM records WHERE seq = ?1"
    ))?;
    let mut rows = rows.query([start as i64])?;
    let mut expected = start + 1;
    report.first_n = expected;
    while let Some(row) = rows.next()? {
        let n = row.get::<_, i64>(0)? as u64;
        let seq: i64 = row.get(1)?;
        let content: Vec<u8> = row.get(2)?;
        let stored: Vec<u8> = row.get(3)?;
        let tombstone: bool = row.get(4)?;
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
        let Ok(content) = <[u8; 32]>::try_from(content.as_slice()) else {
            return Ok(Err(problem(Some(n), Some(seq), "malformed content hash")));
        };
        let chain = chain_hash(&opts.chain_key, &prev, n, &content);
        if stored.as_slice() != chain {
            return Ok(Err(problem(
                Some(n),
                Some(seq),
                "chain hash does not match: the row was inserted, altered, reordered or re-chained without the key",
            )));
        }
        let found = record
            .query_row([seq], |r| Ok((row_digest(r)?, r.get::<_, i64>(32)?)))
            .optional()?;
        match found {
            None => return Ok(Err(problem(Some(n), Some(seq), "its record was deleted"))),
            Some((_, class)) if class != CLASS_AUDIT => {
                return Ok(Err(problem(
                    Some(n),
                    Some(seq),
                    "its record is no longer marked audit",
                )))
            }
            Some(_) if tombstone => {
                if !tombstone_ok.iter().any(|(a, b)| (*a..=*b).contains(&n)) {
                    return Ok(Err(problem(
                        Some(n),
                        Some(seq),
                        "tombstoned without a DSAR deletion recording it",
                    )));
                }
                report.tombstoned += 1;
            }
            Some((digest, _)) if digest != content => {
                return Ok(Err(problem(
                    Some(n),
                    Some(seq),
                    "content hash does not match: the record was modified",
                )))
            }
            Some(_) => {}
        }
        for c in expected_at.remove(&n).unwrap_or_default() {
            if c.chain != chain {
                return Ok(Err(problem(
                    Some(n),
                    Some(seq),
                    format!(
                        "differs from the {} of {}: rows up to it were rewritten",
                        kind_name(c.kind),
                        c.ts
                    ),
                )));
            }
        }
        prev = chain;
        expected += 1;
        report.checked += 1;
    }
    report.last_n = expected - 1;
    if let Some((n, cs)) = expected_at.iter().next() {
        return Ok(Err(problem(
            Some(report.last_n + 1),
            None,
            format!(
                "the chain ends at {} but the {} of {} covers {n}: rows were truncated or the database replaced by an older copy",
                report.last_n,
                kind_name(cs[0].kind),
                cs[0].ts
            ),
        )));
    }
    report.after_last_checkpoint = report.last_n - report.last_checkpoint.map_or(0, |c| c.0);
    let orphan: Option<i64> = conn
        .query_row(
            "SELECT seq FROM records WHERE class = 1
               AND NOT EXISTS (SELECT 1 FROM audit_chain WHERE record_seq = records.seq)
             LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(seq) = orphan {
        return Ok(Err(problem(
            None,
            Some(seq),
            "marked audit but not in the chain: inserted outside the collector",
        )));
    }
    Ok(Ok(()))
}

fn kind_name(k: CheckpointKind) -> &'static str {
    match k {
        CheckpointKind::Checkpoint => "checkpoint",
        CheckpointKind::Anchor => "anchor",
    }
}

/// The chain rows DSAR deletions tombstoned, as inclusive ranges.
fn dsar_tombstones(conn: &Connection) -> Result<Vec<(u64, u64)>, StoreError> {
    let mut stmt = conn.prepare("SELECT fields FROM records WHERE class = 1 AND name = ?1")?;
    let mut out = Vec::new();
    let rows = stmt.query_map([DSAR_DELETE_NAME], |r| r.get::<_, String>(0))?;
    for fields in rows {
        let v: serde_json::Value = serde_json::from_str(&fields?).unwrap_or_default();
        if let Some(ranges) = v.get(TOMBSTONED_FIELD).and_then(|r| r.as_array()) {
            for r in ranges {
                if let (Some(a), Some(b)) = (
                    r.get(0).and_then(serde_json::Value::as_u64),
                    r.get(1).and_then(serde_json::Value::as_u64),
                ) {
                    out.push((a, b));
                }
            }
        }
    }
    Ok(out)
}
