//! The admin primitives in SQLite: a [`Selection`] as a `WHERE` condition; counting,
//! scanning and deleting what it selects in short transactions; tombstoning; giving
//! pages back. What to delete is decided in `crate::retention`.
//!
//! Audit rows change only here, holding the `audit_unlock` row of `meta` for the length
//! of a transaction (the triggers refuse changes otherwise); the chain stays verifiable:
//! a deletion takes a prefix of it and leaves a signed anchor, a tombstone keeps its
//! row.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use logbook_proto::{Record, TraceId};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use super::audit::save_checkpoint;
use super::calls;
use super::read::scan_where;
use super::write::{raw::class_code, saturate};
use crate::audit::{Checkpoint, StorageClass};
use crate::query::Cursor;
use crate::retention::Selector;
use crate::store::{Deleted, Selection, StoreError, Subject};
use crate::views::run::run_key_text;

/// Spaces admin transactions so that a collector writing beside them comes first.
/// The other writer waits for the lock while a transaction holds it; after each one the
/// admin command pauses, long enough for a waiting writer to take the lock, and
/// [`YIELD_FACTOR`] times as long as the transaction took whenever another connection
/// committed since the last pause (ingest is flowing).
pub(super) struct Pacer {
    data_version: i64,
    since: Instant,
}

/// While others write, a purge pauses this many times as long as its last transaction
/// held the lock: it takes at most a quarter of the writing time.
const YIELD_FACTOR: u32 = 3;

impl Pacer {
    pub(super) fn new(conn: &Connection) -> Result<Self, StoreError> {
        Ok(Self {
            data_version: conn.query_row("PRAGMA data_version", [], |r| r.get(0))?,
            since: Instant::now(),
        })
    }

    /// Called before each admin transaction.
    pub(super) fn start(&mut self) {
        self.since = Instant::now();
    }

    /// Called after each commit of an admin transaction: pauses for the time the
    /// transaction since [`Pacer::start`] held the lock, times [`YIELD_FACTOR`].
    pub(super) fn pause(&mut self, conn: &Connection) -> Result<(), StoreError> {
        // Changes only when another connection commits.
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        let shared = version != self.data_version;
        self.data_version = version;
        let held = self.since.elapsed();
        let min = Duration::from_millis(2);
        std::thread::sleep(if shared {
            (held * YIELD_FACTOR).max(min)
        } else {
            min
        });
        Ok(())
    }
}

/// A `WHERE` condition with its parameters.
#[derive(Clone, Debug, Default)]
struct Cond {
    sql: String,
    params: Vec<SqlValue>,
}

impl Cond {
    fn and(&mut self, sql: &str, params: impl IntoIterator<Item = SqlValue>) {
        if !self.sql.is_empty() {
            self.sql.push_str(" AND ");
        }
        self.sql.push_str(sql);
        self.params.extend(params);
    }
}

fn selector_sql(s: &Selector) -> Option<(String, Vec<SqlValue>)> {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    for (col, v) in [
        ("tenant", &s.tenant),
        ("app", &s.app),
        ("category", &s.category),
    ] {
        if let Some(v) = v {
            parts.push(format!("{col} IS ?"));
            params.push(SqlValue::Text(v.clone()));
        }
    }
    (!parts.is_empty()).then(|| (parts.join(" AND "), params))
}

fn subject_column(s: &Subject) -> &'static str {
    match s {
        Subject::User(_) => "user_id",
        Subject::Tenant(_) => "tenant",
    }
}

/// The records `s` selects, as a condition on `records`.
fn cond(s: &Selection) -> Cond {
    let mut c = Cond::default();
    c.and("class = ?", [SqlValue::Integer(class_code(s.class))]);
    if let Some(up_to) = s.up_to {
        c.and(
            "seq <= ?",
            [SqlValue::Integer(saturate(up_to.backend_position()))],
        );
    }
    if let Some((sql, params)) = selector_sql(&s.matching) {
        c.and(&format!("({sql})"), params);
    }
    for e in &s.except {
        if let Some((sql, params)) = selector_sql(e) {
            c.and(&format!("NOT ({sql})"), params);
        }
    }
    if let Some(subject) = &s.subject {
        c.and(
            &format!("{} = ?", subject_column(subject)),
            [SqlValue::Text(subject.value().to_owned())],
        );
    }
    // The limits: too old, or beyond the newest N.
    let mut limits = Vec::new();
    let mut params = Vec::new();
    if let Some(t) = s.older_than {
        limits.push("ts < ?");
        params.push(SqlValue::Integer(t.as_nanos()));
    }
    if let Some(Cursor { ts, seq }) = s.at_or_before {
        limits.push("(ts < ? OR (ts = ? AND seq <= ?))");
        params.extend([
            SqlValue::Integer(ts.as_nanos()),
            SqlValue::Integer(ts.as_nanos()),
            SqlValue::Integer(saturate(seq)),
        ]);
    }
    if !limits.is_empty() {
        c.and(&format!("({})", limits.join(" OR ")), params);
    }
    if s.class == StorageClass::Audit {
        // Audit records leave only as a prefix of the chain; without a bound, none do.
        c.and(
            "seq IN (SELECT record_seq FROM audit_chain WHERE n < ?)",
            [SqlValue::Integer(saturate(s.chain_below.unwrap_or(0)))],
        );
    }
    c
}

pub(super) fn count(conn: &Connection, s: &Selection) -> Result<u64, StoreError> {
    let c = cond(s);
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM records WHERE {}", c.sql),
        params_from_iter(c.params),
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

pub(super) fn nth_newest(
    conn: &Connection,
    s: &Selection,
    n: u64,
) -> Result<Option<Cursor>, StoreError> {
    let c = cond(s);
    let mut params = c.params;
    params.push(SqlValue::Integer(saturate(n)));
    let edge: Option<(i64, i64)> = conn
        .query_row(
            &format!(
                "SELECT ts, seq FROM records WHERE {} ORDER BY ts DESC, seq DESC LIMIT 1 OFFSET ?",
                c.sql
            ),
            params_from_iter(params),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Ok(edge.map(|(ts, seq)| Cursor {
        ts: logbook_proto::Timestamp(ts),
        seq: seq.max(0) as u64,
    }))
}

pub(super) fn first_unselected_chain_row(
    conn: &Connection,
    s: &Selection,
) -> Result<Option<u64>, StoreError> {
    let c = cond(s);
    let n: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT c.n FROM audit_chain c
                  WHERE c.record_seq NOT IN (SELECT seq FROM records WHERE {})
                  ORDER BY c.n LIMIT 1",
                c.sql
            ),
            params_from_iter(c.params),
            |r| r.get(0),
        )
        .optional()?;
    Ok(n.map(|n| n.max(0) as u64))
}

pub(super) fn scan(
    conn: &Connection,
    s: &Selection,
    visit: &mut dyn FnMut(Record) -> io::Result<()>,
) -> Result<u64, StoreError> {
    let c = cond(s);
    scan_where(conn, &format!(" WHERE {}", c.sql), c.params, visit)
}

fn unlock(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('audit_unlock', 1)",
        [],
    )?;
    Ok(())
}

fn relock(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("DELETE FROM meta WHERE key = 'audit_unlock'", [])?;
    Ok(())
}

/// A deleted record's parts that the bookkeeping needs.
struct Gone {
    seq: i64,
    kind: i64,
    level: i64,
    run: Option<String>,
}

/// Deletes up to `limit` selected records in one transaction. Audit records go in
/// chain order, with the chain rows up to the last of them and a signed anchor made by
/// `anchor` (saved to `checkpoint_file` first, then the table).
pub(super) fn delete(
    conn: &mut Connection,
    s: &Selection,
    limit: usize,
    anchor: &dyn Fn(u64, [u8; 32], u64) -> Checkpoint,
    checkpoint_file: &Path,
) -> Result<Deleted, StoreError> {
    let audit = s.class == StorageClass::Audit;
    let c = cond(s);
    let select = format!(
        "SELECT seq, kind, level, run_id, trace_id, span_id IS NOT NULL FROM records WHERE {}{} LIMIT {limit}",
        c.sql,
        // Each batch a prefix of the chain, so the chain never lacks a record's row.
        if audit { " ORDER BY seq" } else { "" }
    );
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows: Vec<Gone> = tx
        .prepare(&select)?
        .query_map(params_from_iter(c.params), |r| {
            let run: Option<String> = r.get(3)?;
            let trace: Vec<u8> = r.get(4)?;
            let trace = TraceId(<[u8; 16]>::try_from(trace.as_slice()).unwrap_or_default());
            Ok(Gone {
                seq: r.get(0)?,
                kind: r.get(1)?,
                level: r.get(2)?,
                run: run_key_text(run.as_deref(), &trace, r.get(5)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok(Deleted::default());
    }
    let mut deleted = Deleted {
        records: rows.len() as u64,
        ..Deleted::default()
    };
    if audit {
        unlock(&tx)?;
        let seqs: Vec<String> = rows.iter().map(|r| r.seq.to_string()).collect();
        let (n, chain): (i64, Vec<u8>) = tx.query_row(
            &format!(
                "SELECT n, chain_hash FROM audit_chain WHERE record_seq IN ({})
                 ORDER BY n DESC LIMIT 1",
                seqs.join(",")
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let pruned = tx.execute("DELETE FROM audit_chain WHERE n <= ?1", [n])?;
        let chain: [u8; 32] = chain
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                seq: n,
                message: "audit chain hash is not 32 bytes".into(),
            })?;
        let n = n.max(0) as u64;
        save_checkpoint(&tx, &anchor(n, chain, pruned as u64), checkpoint_file)?;
        deleted.anchor = Some(n);
    }
    let mut counts: HashMap<(i64, i64), i64> = HashMap::new();
    let mut runs: HashMap<String, i64> = HashMap::new();
    let mut call_runs = Vec::new();
    {
        let mut del = tx.prepare_cached("DELETE FROM records WHERE seq = ?1")?;
        let mut fts = tx.prepare_cached("DELETE FROM records_fts WHERE rowid = ?1")?;
        for g in &rows {
            del.execute([g.seq])?;
            fts.execute([g.seq])?;
            call_runs.extend(calls::forget(&tx, g.seq)?);
            *counts.entry((g.kind, g.level)).or_default() += 1;
            if let Some(run) = &g.run {
                *runs.entry(run.clone()).or_default() += 1;
            }
        }
    }
    for ((kind, level), n) in counts {
        tx.execute(
            "UPDATE record_counts SET n = max(n - ?3, 0) WHERE kind = ?1 AND level = ?2",
            [kind, level, n],
        )?;
    }
    for (run, n) in runs {
        tx.execute(
            "UPDATE runs SET record_count = record_count - ?2 WHERE run_id = ?1",
            rusqlite::params![run, n],
        )?;
        deleted.runs += tx.execute(
            "DELETE FROM runs WHERE run_id = ?1 AND record_count <= 0",
            [&run],
        )? as u64;
    }
    // Runs that lost calls but not all their records: their call totals again.
    call_runs.sort_unstable();
    call_runs.dedup();
    for run in &call_runs {
        calls::refresh_run(&tx, run)?;
    }
    if audit {
        relock(&tx)?;
    }
    tx.commit()?;
    Ok(deleted)
}

pub(super) fn chain_rows_of(conn: &Connection, subject: &Subject) -> Result<Vec<u64>, StoreError> {
    let rows = conn
        .prepare(&format!(
            "SELECT c.n FROM audit_chain c JOIN records r ON r.seq = c.record_seq
             WHERE r.{} = ?1 AND c.tombstone = 0 ORDER BY c.n",
            subject_column(subject)
        ))?
        .query_map([subject.value()], |r| r.get::<_, i64>(0))?
        .map(|n| n.map(|n| n.max(0) as u64))
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The payload a tombstone leaves.
const TOMBSTONE_FIELDS: &str = r#"{"tombstone":true}"#;

pub(super) fn tombstone(
    conn: &mut Connection,
    chain_rows: &[u64],
    subject: &Subject,
) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    unlock(&tx)?;
    let mut done = 0;
    for n in chain_rows {
        let seq: Option<i64> = tx
            .query_row(
                "SELECT record_seq FROM audit_chain WHERE n = ?1",
                [saturate(*n)],
                |r| r.get(0),
            )
            .optional()?;
        let Some(seq) = seq else { continue };
        tx.execute(
            "UPDATE records SET message = NULL, fields = ?3,
                    user_id = NULL, session_id = NULL, request_id = NULL,
                    tenant = CASE WHEN ?2 = 'tenant' THEN NULL ELSE tenant END
             WHERE seq = ?1",
            rusqlite::params![seq, subject.kind(), TOMBSTONE_FIELDS],
        )?;
        tx.execute("DELETE FROM records_fts WHERE rowid = ?1", [seq])?;
        if let Some(run) = calls::forget(&tx, seq)? {
            calls::refresh_run(&tx, &run)?;
        }
        tx.execute(
            "UPDATE audit_chain SET tombstone = 1 WHERE n = ?1",
            [saturate(*n)],
        )?;
        done += 1;
    }
    relock(&tx)?;
    tx.commit()?;
    Ok(done)
}

pub(super) fn delete_quarantined(conn: &Connection, subject: &Subject) -> Result<u64, StoreError> {
    let path = format!("$.{}", subject_column(subject));
    Ok(conn.execute(
        "DELETE FROM quarantine WHERE json_extract(record, ?1) = ?2",
        rusqlite::params![path, subject.value()],
    )? as u64)
}

/// Gives free pages back to the file system, a slice at a time.
pub(super) fn vacuum(conn: &Connection, pacer: &mut Pacer) -> Result<(), StoreError> {
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode != 2 {
        return Ok(()); // made before incremental vacuum was the default
    }
    let mut before = i64::MAX;
    loop {
        let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
        if free == 0 || free >= before {
            return Ok(());
        }
        before = free;
        // 256 pages (1 MiB) a transaction, as moving pages holds the write lock;
        // stepped to the end, as each step frees one page (`execute_batch` and
        // `query_row` step once).
        pacer.start();
        let mut stmt = conn.prepare_cached("PRAGMA incremental_vacuum(256)")?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        pacer.pause(conn)?;
    }
}
