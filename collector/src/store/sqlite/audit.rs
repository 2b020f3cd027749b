//! The audit chain in SQLite: appending rows (format 2, canonical digests computed by
//! `crate::audit`), the chain's head, storing checkpoints, and the inputs `verify`
//! reads. Format 1 rows (schema versions up to 5) hashed the stored row itself; their
//! digest is computed here, the one thing about the chain only this backend knows.

use std::path::Path;

use logbook_proto::Timestamp;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use sha2::{Digest, Sha256};

use super::read::{record_from_row, COLUMNS};
use super::schema::col;
use super::write::raw::class_code;
use crate::audit::{
    chain_hash, AuditSource, ChainFormat, ChainRow, ChainedRecord, Checkpoint, StorageClass,
    GENESIS,
};
use crate::store::StoreError;

/// The chain's head: the last row's number and hash, else the newest anchor's, else
/// (0, [`GENESIS`]).
pub(super) fn chain_head(conn: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
    let last = conn
        .query_row(
            "SELECT n, chain_hash FROM audit_chain ORDER BY n DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?;
    let last = match last {
        Some(l) => Some(l),
        None => conn
            .query_row(
                "SELECT n, chain_hash FROM audit_checkpoints WHERE kind = 'anchor'
                 ORDER BY n DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?,
    };
    match last {
        None => Ok((0, GENESIS)),
        Some((n, hash)) => {
            let hash = <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| StoreError::Corrupt {
                seq: n,
                message: "audit chain hash is not 32 bytes".into(),
            })?;
            Ok((n.max(0) as u64, hash))
        }
    }
}

/// Appends the records stored as these seqs, with their canonical digests, to the
/// chain, inside the caller's transaction.
pub(super) fn append_chain(
    conn: &Connection,
    key: &[u8; 32],
    rows: &[(i64, [u8; 32])],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut n, mut prev) = chain_head(conn)?;
    let format = ChainFormat::CURRENT;
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit_chain (n, record_seq, content_hash, chain_hash, format)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (seq, content) in rows {
        n += 1;
        prev = chain_hash(format, key, &prev, n, content);
        insert.execute(params![
            super::write::saturate(n),
            seq,
            &content[..],
            &prev[..],
            format.code()
        ])?;
    }
    Ok(())
}

/// Appends `c` to the checkpoint file (synced), then to the table, inside the caller's
/// transaction: a snapshot's checkpoints are always in the file.
pub(super) fn save_checkpoint(
    conn: &Connection,
    c: &Checkpoint,
    file: &Path,
) -> Result<(), StoreError> {
    c.append_to(file)?;
    conn.prepare_cached(
        "INSERT INTO audit_checkpoints (kind, n, chain_hash, ts, pruned, signature)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        c.kind.as_str(),
        super::write::saturate(c.n),
        &c.chain[..],
        c.ts.as_nanos(),
        super::write::saturate(c.pruned),
        &c.sig[..]
    ])?;
    Ok(())
}

/// Format 1's digest: SHA-256 of the stored row's columns up to `class`, in order,
/// each type-tagged and length-prefixed.
fn row_digest(row: &Row<'_>) -> rusqlite::Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"logbook-audit-row v1");
    for i in 0..=col("class") {
        match row.get_ref(i)? {
            ValueRef::Null => h.update([0]),
            ValueRef::Integer(v) => {
                h.update([1]);
                h.update(v.to_be_bytes());
            }
            ValueRef::Real(v) => {
                h.update([2]);
                h.update(v.to_bits().to_be_bytes());
            }
            ValueRef::Text(b) => {
                h.update([3]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
            ValueRef::Blob(b) => {
                h.update([4]);
                h.update((b.len() as u64).to_be_bytes());
                h.update(b);
            }
        }
    }
    Ok(h.finalize().into())
}

/// What `verify` reads, inside one read transaction.
pub(super) struct Snapshot<'c> {
    pub(super) conn: &'c Connection,
}

impl AuditSource for Snapshot<'_> {
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, StoreError> {
        let mut stmt = self.conn.prepare(
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
                kind: Checkpoint::kind_from_str(&kind).ok_or_else(corrupt)?,
                n: n.max(0) as u64,
                chain: chain.as_slice().try_into().map_err(|_| corrupt())?,
                ts: Timestamp(ts),
                pruned: pruned.max(0) as u64,
                sig: sig.as_slice().try_into().map_err(|_| corrupt())?,
            });
        }
        Ok(out)
    }

    fn chain_rows(&mut self, after: u64, limit: usize) -> Result<Vec<ChainRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT n, record_seq, content_hash, chain_hash, tombstone, format FROM audit_chain
             WHERE n > ?1 ORDER BY n LIMIT ?2",
        )?;
        let rows = stmt.query_map(
            params![
                super::write::saturate(after),
                super::write::saturate(limit as u64)
            ],
            |r| {
                Ok(ChainRow {
                    n: r.get::<_, i64>(0)?.max(0) as u64,
                    record_seq: r.get(1)?,
                    content_hash: r.get(2)?,
                    chain_hash: r.get(3)?,
                    tombstone: r.get(4)?,
                    format: ChainFormat::from_code(r.get(5)?),
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn chained_record(&mut self, row: &ChainRow) -> Result<Option<ChainedRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {} FROM records WHERE seq = ?1", *COLUMNS))?;
        let mut rows = stmt.query([row.record_seq])?;
        let Some(r) = rows.next()? else {
            return Ok(None);
        };
        let class = if r.get::<_, i64>(col("class"))? == class_code(StorageClass::Audit) {
            StorageClass::Audit
        } else {
            StorageClass::Ops
        };
        let row_digest = match row.format {
            Some(ChainFormat::SqliteRow) => Some(row_digest(r)?),
            _ => None,
        };
        Ok(Some(ChainedRecord {
            class,
            record: record_from_row(r).map_err(|e| e.to_string()),
            row_digest,
        }))
    }

    fn unchained_audit_record(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq FROM records WHERE class = 1
                   AND NOT EXISTS (SELECT 1 FROM audit_chain WHERE record_seq = records.seq)
                 LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?)
    }
}
