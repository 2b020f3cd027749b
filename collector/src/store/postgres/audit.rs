//! The audit chain in PostgreSQL: appending rows (the current format, canonical
//! digests computed by `crate::audit`), the chain's head, storing checkpoints, and the
//! inputs `verify` reads. PostgreSQL stores never held format 1 rows (SQLite's stored
//! row): one read here gets no row digest, and `verify` names it.
//!
//! Appending happens inside a writer's transaction, under [`super::WRITE_LOCK`]: the
//! fleet's collectors append to one chain, one commit at a time.

use std::path::Path;

use logbook_proto::Timestamp;
use postgres::{GenericClient, Transaction};

use super::read::{record_from_row, saturate, COLUMNS};
use crate::audit::{
    chain_hash, AuditSource, ChainFormat, ChainRow, ChainedRecord, Checkpoint, StorageClass,
    GENESIS,
};
use crate::store::StoreError;

/// The stored code of the audit storage class (`records.class`).
const AUDIT_CLASS: i16 = 1;

/// A stored chain hash as 32 bytes.
fn hash32(n: i64, hash: &[u8]) -> Result<[u8; 32], StoreError> {
    <[u8; 32]>::try_from(hash).map_err(|_| StoreError::Corrupt {
        seq: n,
        message: "audit chain hash is not 32 bytes".into(),
    })
}

/// The chain's head: the last row's number and hash, else the newest anchor's, else
/// (0, [`GENESIS`]).
pub(super) fn chain_head(c: &mut impl GenericClient) -> Result<(u64, [u8; 32]), StoreError> {
    let last = match c.query_opt(
        "SELECT n, chain_hash FROM audit_chain ORDER BY n DESC LIMIT 1",
        &[],
    )? {
        Some(row) => Some(row),
        None => c.query_opt(
            "SELECT n, chain_hash FROM audit_checkpoints WHERE kind = 'anchor'
             ORDER BY n DESC LIMIT 1",
            &[],
        )?,
    };
    match last {
        None => Ok((0, GENESIS)),
        Some(row) => {
            let n: i64 = row.try_get(0)?;
            let hash: Vec<u8> = row.try_get(1)?;
            Ok((n.max(0) as u64, hash32(n, &hash)?))
        }
    }
}

/// Appends the records stored as these seqs, with their canonical digests, to the
/// chain, inside the caller's transaction (which holds [`super::WRITE_LOCK`]): one
/// statement for the batch.
pub(super) fn append_chain(
    c: &mut impl GenericClient,
    key: &[u8; 32],
    rows: &[(i64, [u8; 32])],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (mut n, mut prev) = chain_head(c)?;
    let format = ChainFormat::CURRENT;
    let mut ns = Vec::with_capacity(rows.len());
    let mut seqs = Vec::with_capacity(rows.len());
    let mut contents = Vec::with_capacity(rows.len());
    let mut chains = Vec::with_capacity(rows.len());
    for (seq, content) in rows {
        n += 1;
        prev = chain_hash(format, key, &prev, n, content);
        ns.push(saturate(n));
        seqs.push(*seq);
        contents.push(content.to_vec());
        chains.push(prev.to_vec());
    }
    c.execute(
        "INSERT INTO audit_chain (n, record_seq, content_hash, chain_hash, format)
         SELECT n, s, h, ch, $5::smallint
           FROM unnest($1::bigint[], $2::bigint[], $3::bytea[], $4::bytea[]) AS t(n, s, h, ch)",
        &[&ns, &seqs, &contents, &chains, &i16::from(format.code())],
    )?;
    Ok(())
}

/// Appends `cp` to the checkpoint file (synced), then to the table, inside the caller's
/// transaction: a snapshot's checkpoints are always in the file.
pub(super) fn save_checkpoint(
    c: &mut impl GenericClient,
    cp: &Checkpoint,
    file: &Path,
) -> Result<(), StoreError> {
    cp.append_to(file)?;
    c.execute(
        "INSERT INTO audit_checkpoints (kind, n, chain_hash, ts, pruned, signature)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &cp.kind.as_str(),
            &saturate(cp.n),
            &&cp.chain[..],
            &cp.ts.as_nanos(),
            &saturate(cp.pruned),
            &&cp.sig[..],
        ],
    )?;
    Ok(())
}

/// What `verify` reads, inside one read-only repeatable-read transaction.
pub(super) struct Snapshot<'a, 'b> {
    tx: &'a mut Transaction<'b>,
}

impl<'a, 'b> Snapshot<'a, 'b> {
    pub(super) fn new(tx: &'a mut Transaction<'b>) -> Self {
        Self { tx }
    }
}

impl AuditSource for Snapshot<'_, '_> {
    fn checkpoints(&mut self) -> Result<Vec<Checkpoint>, StoreError> {
        let rows = self.tx.query(
            "SELECT kind, n, chain_hash, ts, pruned, signature FROM audit_checkpoints ORDER BY id",
            &[],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let kind: String = row.try_get(0)?;
            let n: i64 = row.try_get(1)?;
            let chain: Vec<u8> = row.try_get(2)?;
            let ts: i64 = row.try_get(3)?;
            let pruned: i64 = row.try_get(4)?;
            let sig: Vec<u8> = row.try_get(5)?;
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
        let rows = self.tx.query(
            "SELECT n, record_seq, content_hash, chain_hash, tombstone, format FROM audit_chain
             WHERE n > $1 ORDER BY n LIMIT $2",
            &[&saturate(after), &saturate(limit as u64)],
        )?;
        rows.iter()
            .map(|r| {
                Ok(ChainRow {
                    n: r.try_get::<_, i64>(0)?.max(0) as u64,
                    record_seq: r.try_get(1)?,
                    content_hash: r.try_get(2)?,
                    chain_hash: r.try_get(3)?,
                    tombstone: r.try_get::<_, i16>(4)? != 0,
                    format: ChainFormat::from_code(i64::from(r.try_get::<_, i16>(5)?)),
                })
            })
            .collect()
    }

    fn chained_record(&mut self, row: &ChainRow) -> Result<Option<ChainedRecord>, StoreError> {
        let Some(r) = self.tx.query_opt(
            &format!("SELECT {COLUMNS} FROM records WHERE seq = $1"),
            &[&row.record_seq],
        )?
        else {
            return Ok(None);
        };
        // `class`, after `fields::text` in COLUMNS.
        let class = if r.try_get::<_, i16>(32)? == AUDIT_CLASS {
            StorageClass::Audit
        } else {
            StorageClass::Ops
        };
        Ok(Some(ChainedRecord {
            class,
            record: record_from_row(&r).map_err(|e| e.to_string()),
            // No format 1 rows here: such a row's content hash cannot match.
            row_digest: None,
        }))
    }

    fn unchained_audit_record(&mut self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tx
            .query_opt(
                "SELECT seq FROM records WHERE class = 1
                   AND NOT EXISTS (SELECT 1 FROM audit_chain WHERE record_seq = records.seq)
                 LIMIT 1",
                &[],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
    }
}
