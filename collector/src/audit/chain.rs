//! The keyed hash chain over audit rows.
//!
//! Each audit record gets a row in `audit_chain` with a dense number `n`, the SHA-256
//! of the record's stored row (`content_hash`, over every column in
//! [`AUDIT_ROW_COLUMNS`], type-tagged and length-prefixed) and
//! `chain_hash = HMAC-SHA256(chain key, "logbook-chain v1" ‖ previous chain hash ‖ n ‖
//! content_hash)`. The first row follows [`GENESIS`], or the anchor a prune left.

use hmac::{Hmac, Mac};
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row};
use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// The chain hash before the first row.
pub const GENESIS: [u8; 32] = [0; 32];

/// The columns of `records` an audit row's content hash covers, in order.
pub const AUDIT_ROW_COLUMNS: &str = "seq, id, ts, kind, level, name, target, message, trace_id,
    span_id, parent_span_id, run_id, step_id, tenant, env, project, app, surface, user_id,
    session_id, request_id, service, host, pid, file, line, category, status, duration_ns,
    busy_ns, idle_ns, fields, class";

const COLUMN_COUNT: usize = 33;

/// SHA-256 of a row selected with [`AUDIT_ROW_COLUMNS`].
pub fn row_digest(row: &Row<'_>) -> rusqlite::Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"logbook-audit-row v1");
    for i in 0..COLUMN_COUNT {
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

/// The chain hash of row `n` with content `content` after `prev`.
pub fn chain_hash(key: &[u8; 32], prev: &[u8; 32], n: u64, content: &[u8; 32]) -> [u8; 32] {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(b"logbook-chain v1");
    mac.update(prev);
    mac.update(&n.to_be_bytes());
    mac.update(content);
    mac.finalize().into_bytes().into()
}

/// The chain's head: the last row's number and hash, else the newest anchor's, else
/// (0, [`GENESIS`]).
pub fn head(conn: &Connection) -> Result<(u64, [u8; 32]), StoreError> {
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
            Ok((n as u64, hash))
        }
    }
}

/// Appends the stored records `seqs` (in order) to the chain, inside the caller's
/// transaction. Returns the new head.
pub fn append_chain(
    conn: &Connection,
    key: &[u8; 32],
    seqs: &[i64],
) -> Result<(u64, [u8; 32]), StoreError> {
    let (mut n, mut prev) = head(conn)?;
    if seqs.is_empty() {
        return Ok((n, prev));
    }
    let mut select = conn.prepare_cached(&format!(
        "SELECT {AUDIT_ROW_COLUMNS} FROM records WHERE seq = ?1"
    ))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO audit_chain (n, record_seq, content_hash, chain_hash) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for &seq in seqs {
        let content = select.query_row([seq], row_digest)?;
        n += 1;
        prev = chain_hash(key, &prev, n, &content);
        insert.execute(params![n as i64, seq, &content[..], &prev[..]])?;
    }
    Ok((n, prev))
}
