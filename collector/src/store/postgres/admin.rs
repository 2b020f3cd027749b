//! The admin primitives in PostgreSQL: a [`Selection`] as a `WHERE` condition;
//! counting, scanning and deleting what it selects in short transactions; tombstoning;
//! vacuuming. What to delete is decided in `crate::retention`.
//!
//! Every transaction that deletes records or changes the audit chain holds
//! [`super::WRITE_LOCK`], as the fleet's writers do: sequence numbers, counters, runs
//! and the chain see one change at a time. Audit rows change only here, with
//! `logbook.audit_unlock` set for the length of the transaction (the triggers refuse
//! changes otherwise); the chain stays verifiable: a deletion takes a prefix of it and
//! leaves a signed anchor, a tombstone keeps its row.
//!
//! Age limits on every ops record drop whole days: an ops partition whose day ended
//! before the limit goes with `DROP TABLE`, its counts, runs and calls taken out first.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use logbook_proto::{Record, Timestamp, TraceId};
use postgres::{Client, IsolationLevel, Transaction};

use super::audit::save_checkpoint;
use super::calls;
use super::read::{p, record_from_row, saturate, Param, Where, COLUMNS};
use super::schema::DAY_NS;
use super::WRITE_LOCK;
use crate::audit::{Checkpoint, StorageClass};
use crate::query::Cursor;
use crate::retention::Selector;
use crate::store::{Deleted, Selection, StoreError, Subject};
use crate::views::run::run_key_text;

/// The stored code of a storage class (`records.class`).
fn class_code(class: StorageClass) -> i16 {
    match class {
        StorageClass::Ops => 0,
        StorageClass::Audit => 1,
    }
}

/// Whether records were deleted or tombstoned since the last [`vacuum`]: a purge that
/// found nothing does not vacuum.
static DIRTY: AtomicBool = AtomicBool::new(false);

/// The equalities of `s` (null-safe), if it has any.
fn selector_sql(s: &Selector) -> Option<(String, Vec<Param>)> {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    for (col, v) in [
        ("tenant", &s.tenant),
        ("app", &s.app),
        ("category", &s.category),
    ] {
        if let Some(v) = v {
            parts.push(format!("{col} IS NOT DISTINCT FROM ?"));
            params.push(p(v.clone()));
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

/// The records `s` selects, as a condition on `records` (unaliased).
fn cond(s: &Selection) -> Where {
    let mut w = Where::default();
    w.push("class = ?", vec![p(class_code(s.class))]);
    if let Some(up_to) = s.up_to {
        w.push("seq <= ?", vec![p(saturate(up_to.backend_position()))]);
    }
    if let Some((sql, params)) = selector_sql(&s.matching) {
        w.push(&format!("({sql})"), params);
    }
    for e in &s.except {
        if let Some((sql, params)) = selector_sql(e) {
            w.push(&format!("NOT ({sql})"), params);
        }
    }
    if let Some(subject) = &s.subject {
        w.push(
            &format!("{} = ?", subject_column(subject)),
            vec![p(subject.value().to_owned())],
        );
    }
    // The limits: too old, or beyond the newest N.
    let mut limits = Vec::new();
    let mut params = Vec::new();
    if let Some(t) = s.older_than {
        limits.push("ts < ?");
        params.push(p(t.as_nanos()));
    }
    if let Some(Cursor { ts, seq }) = s.at_or_before {
        limits.push("(ts < ? OR (ts = ? AND seq <= ?))");
        params.extend([p(ts.as_nanos()), p(ts.as_nanos()), p(saturate(seq))]);
    }
    if !limits.is_empty() {
        w.push(&format!("({})", limits.join(" OR ")), params);
    }
    if s.class == StorageClass::Audit {
        // Audit records leave only as a prefix of the chain; without a bound, none do.
        w.push(
            "seq IN (SELECT record_seq FROM audit_chain WHERE n < ?)",
            vec![p(saturate(s.chain_below.unwrap_or(0)))],
        );
    }
    w
}

pub(super) fn count(c: &mut Client, s: &Selection) -> Result<u64, StoreError> {
    let w = cond(s);
    let n: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM records{}", w.sql()),
            &w.refs(),
        )?
        .try_get(0)?;
    Ok(n.max(0) as u64)
}

pub(super) fn nth_newest(
    c: &mut Client,
    s: &Selection,
    n: u64,
) -> Result<Option<Cursor>, StoreError> {
    let mut w = cond(s);
    let offset = w.params.len() + 1;
    w.params.push(p(saturate(n)));
    let edge = c.query_opt(
        &format!(
            "SELECT ts, seq FROM records{} ORDER BY ts DESC, seq DESC LIMIT 1 OFFSET ${offset}",
            w.sql()
        ),
        &w.refs(),
    )?;
    edge.map(|r| {
        Ok(Cursor {
            ts: Timestamp(r.try_get(0)?),
            seq: r.try_get::<_, i64>(1)?.max(0) as u64,
        })
    })
    .transpose()
}

pub(super) fn first_unselected_chain_row(
    c: &mut Client,
    s: &Selection,
) -> Result<Option<u64>, StoreError> {
    let w = cond(s);
    // `NOT EXISTS` rather than `NOT IN`: walks the chain in order, probing each row's
    // record, instead of hashing the whole selection (seq is never null).
    let n = c.query_opt(
        &format!(
            "SELECT c.n FROM audit_chain c
              WHERE NOT EXISTS (SELECT 1 FROM records
                                 WHERE records.seq = c.record_seq AND {})
              ORDER BY c.n LIMIT 1",
            w.terms.join(" AND ")
        ),
        &w.refs(),
    )?;
    n.map(|r| Ok(r.try_get::<_, i64>(0)?.max(0) as u64))
        .transpose()
}

/// Rows fetched per round trip while scanning.
const SCAN_PAGE: i32 = 500;

/// Every selected record, oldest first, to `visit`: streamed from one snapshot.
pub(super) fn scan(
    c: &mut Client,
    s: &Selection,
    visit: &mut dyn FnMut(Record) -> io::Result<()>,
) -> Result<u64, StoreError> {
    let w = cond(s);
    let sql = format!("SELECT {COLUMNS} FROM records{} ORDER BY ts, seq", w.sql());
    let mut tx = c
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let portal = tx.bind(sql.as_str(), &w.refs())?;
    let mut n = 0;
    loop {
        let rows = tx.query_portal(&portal, SCAN_PAGE)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            visit(record_from_row(row)?).map_err(StoreError::Stopped)?;
            n += 1;
        }
    }
    tx.commit()?;
    Ok(n)
}

/// Takes the writers' lock for the rest of the transaction.
fn lock(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    Ok(())
}

/// Lets this transaction change audit rows (until it ends).
fn unlock(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
    tx.batch_execute("SET LOCAL logbook.audit_unlock = 'on'")?;
    Ok(())
}

/// The run key of a stored record from its columns `run_id`, `trace_id` and whether it
/// has a span.
fn run_key(run: Option<&str>, trace: Option<&[u8]>, has_span: bool) -> Option<String> {
    let trace = trace
        .and_then(|t| <[u8; 16]>::try_from(t).ok())
        .unwrap_or_default();
    run_key_text(run, &TraceId(trace), has_span)
}

/// Takes deleted records out of the counters and views: `counts` by (kind, level)
/// from `record_counts`, `runs` (records by run key) from the runs, removing those
/// left without records; then the call rows of `call_seqs` (`calls::forget`) and the
/// call totals of their runs. Returns the runs removed.
fn forget_records(
    tx: &mut Transaction<'_>,
    counts: &HashMap<(i16, i16), i64>,
    runs: &HashMap<String, i64>,
    call_seqs: &[i64],
) -> Result<u64, StoreError> {
    for ((kind, level), n) in counts {
        tx.execute(
            "UPDATE record_counts SET n = greatest(n - $3, 0) WHERE kind = $1 AND level = $2",
            &[kind, level, n],
        )?;
    }
    let mut removed = 0;
    if !runs.is_empty() {
        let (keys, ns): (Vec<&str>, Vec<i64>) = runs.iter().map(|(k, n)| (k.as_str(), *n)).unzip();
        tx.execute(
            "UPDATE runs SET record_count = runs.record_count - d.n
               FROM unnest($1::text[], $2::bigint[]) AS d(run, n)
              WHERE runs.run_id = d.run",
            &[&keys, &ns],
        )?;
        removed = tx.execute(
            "DELETE FROM runs WHERE run_id = ANY($1::text[]) AND record_count <= 0",
            &[&keys],
        )?;
    }
    let mut call_runs = Vec::new();
    for seq in call_seqs {
        call_runs.extend(calls::forget(tx, *seq)?);
    }
    // Runs that lost calls but not all their records: their call totals again.
    call_runs.sort_unstable();
    call_runs.dedup();
    for run in &call_runs {
        calls::refresh_run(tx, run)?;
    }
    Ok(removed)
}

/// Of these records, those with a call row.
fn with_calls(tx: &mut Transaction<'_>, seqs: &[i64]) -> Result<Vec<i64>, StoreError> {
    let rows = tx.query(
        "SELECT seq FROM llm_calls WHERE seq = ANY($1::bigint[])
         UNION SELECT seq FROM tool_calls WHERE seq = ANY($1::bigint[])
         ORDER BY 1",
        &[&seqs],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Deletes up to `limit` selected records in one transaction. Audit records go in
/// chain order, with the chain rows up to the last of them and a signed anchor made by
/// `anchor` (saved to `checkpoint_file` first, then the table). When `s` is an age
/// limit on every ops record, a whole day's partition goes instead, if one can.
pub(super) fn delete(
    c: &mut Client,
    s: &Selection,
    limit: usize,
    anchor: &dyn Fn(u64, [u8; 32], u64) -> Checkpoint,
    checkpoint_file: &Path,
) -> Result<Deleted, StoreError> {
    if let Some(older_than) = whole_days(s) {
        if let Some(deleted) = drop_day(c, s, older_than)? {
            return Ok(deleted);
        }
    }
    let audit = s.class == StorageClass::Audit;
    let w = cond(s);
    let select = format!(
        "SELECT seq, ts, kind, level, run_id, trace_id, span_id IS NOT NULL FROM records{}{} LIMIT {limit}",
        w.sql(),
        // Each batch a prefix of the chain, so the chain never lacks a record's row.
        if audit { " ORDER BY seq" } else { "" }
    );
    let mut tx = c.transaction()?;
    lock(&mut tx)?;
    let rows = tx.query(&select, &w.refs())?;
    if rows.is_empty() {
        return Ok(Deleted::default());
    }
    let mut seqs = Vec::with_capacity(rows.len());
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    let mut counts: HashMap<(i16, i16), i64> = HashMap::new();
    let mut runs: HashMap<String, i64> = HashMap::new();
    for r in &rows {
        let ts: i64 = r.try_get(1)?;
        seqs.push(r.try_get::<_, i64>(0)?);
        first = first.min(ts);
        last = last.max(ts);
        *counts.entry((r.try_get(2)?, r.try_get(3)?)).or_default() += 1;
        let run: Option<&str> = r.try_get(4)?;
        if let Some(run) = run_key(run, r.try_get(5)?, r.try_get(6)?) {
            *runs.entry(run).or_default() += 1;
        }
    }
    let mut deleted = Deleted {
        records: rows.len() as u64,
        ..Deleted::default()
    };
    if audit {
        unlock(&mut tx)?;
        let row = tx.query_one(
            "SELECT n, chain_hash FROM audit_chain WHERE record_seq = ANY($1::bigint[])
             ORDER BY n DESC LIMIT 1",
            &[&seqs],
        )?;
        let n: i64 = row.try_get(0)?;
        let chain: Vec<u8> = row.try_get(1)?;
        let pruned = tx.execute("DELETE FROM audit_chain WHERE n <= $1", &[&n])?;
        let chain: [u8; 32] = chain
            .as_slice()
            .try_into()
            .map_err(|_| StoreError::Corrupt {
                seq: n,
                message: "audit chain hash is not 32 bytes".into(),
            })?;
        let n = n.max(0) as u64;
        save_checkpoint(&mut tx, &anchor(n, chain, pruned), checkpoint_file)?;
        deleted.anchor = Some(n);
    }
    // The time range lets the planner skip the other days' partitions.
    tx.execute(
        "DELETE FROM records WHERE class = $1 AND ts BETWEEN $2 AND $3 AND seq = ANY($4::bigint[])",
        &[&class_code(s.class), &first, &last, &seqs],
    )?;
    let call_seqs = with_calls(&mut tx, &seqs)?;
    deleted.runs = forget_records(&mut tx, &counts, &runs, &call_seqs)?;
    tx.commit()?;
    DIRTY.store(true, Ordering::Relaxed);
    Ok(deleted)
}

/// The age limit of `s` when it selects every ops record older than it and nothing
/// else (but the purge's stream bound): whole days of it can be dropped.
fn whole_days(s: &Selection) -> Option<Timestamp> {
    let only_age = s.class == StorageClass::Ops
        && selector_sql(&s.matching).is_none()
        && s.except.iter().all(|e| selector_sql(e).is_none())
        && s.subject.is_none()
        && s.at_or_before.is_none();
    s.older_than.filter(|_| only_age)
}

/// Drops the oldest ops partition whose day ended before `older_than` (and before
/// today, which writers may still be filling) and that holds no record after the
/// purge's stream bound, with the empty ones before it; its counts, runs and calls go
/// first, as [`delete`] takes them out a record at a time. `None` when no partition
/// with records can go: then rows are deleted.
fn drop_day(
    c: &mut Client,
    s: &Selection,
    older_than: Timestamp,
) -> Result<Option<Deleted>, StoreError> {
    let today = Timestamp::now().as_nanos().div_euclid(DAY_NS);
    let mut tx = c.transaction()?;
    lock(&mut tx)?;
    let days = super::schema::partitions(&mut tx)?;
    let up_to = s.up_to.map(|u| saturate(u.backend_position()));
    let mut empty = Vec::new();
    let mut chosen = None;
    for (day, table) in days {
        let end = day.saturating_add(1).saturating_mul(DAY_NS);
        if day >= today || end > older_than.as_nanos() {
            break;
        }
        // The name is ours (`records_ops_d…`), quoted all the same.
        let table = format!("\"{}\"", table.replace('"', "\"\""));
        let row = tx.query_one(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM {table}),
                        EXISTS (SELECT 1 FROM {table} WHERE seq > $1)"
            ),
            &[&up_to.unwrap_or(i64::MAX)],
        )?;
        let (any, newer): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
        if !any {
            empty.push(table);
        } else if !newer {
            chosen = Some(table);
            break;
        }
        // Records written after the purge began: this day's go a row at a time.
    }
    let Some(table) = chosen else {
        // Empty days before the limit are not worth a transaction of their own.
        return Ok(None);
    };
    let mut deleted = Deleted::default();
    let mut counts: HashMap<(i16, i16), i64> = HashMap::new();
    for r in tx.query(
        &format!("SELECT kind, level, count(*) FROM {table} GROUP BY kind, level"),
        &[],
    )? {
        let n: i64 = r.try_get(2)?;
        deleted.records += n.max(0) as u64;
        counts.insert((r.try_get(0)?, r.try_get(1)?), n);
    }
    let mut runs: HashMap<String, i64> = HashMap::new();
    for r in tx.query(
        &format!(
            "SELECT run_id, CASE WHEN run_id IS NULL THEN trace_id END, count(*) FROM {table}
              WHERE run_id IS NOT NULL OR span_id IS NOT NULL GROUP BY 1, 2"
        ),
        &[],
    )? {
        let run: Option<&str> = r.try_get(0)?;
        if let Some(run) = run_key(run, r.try_get(1)?, true) {
            *runs.entry(run).or_default() += r.try_get::<_, i64>(2)?;
        }
    }
    let call_seqs: Vec<i64> = tx
        .query(
            &format!(
                "SELECT seq FROM llm_calls WHERE seq IN (SELECT seq FROM {table})
                 UNION SELECT seq FROM tool_calls WHERE seq IN (SELECT seq FROM {table})
                 ORDER BY 1"
            ),
            &[],
        )?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    deleted.runs = forget_records(&mut tx, &counts, &runs, &call_seqs)?;
    // Last: dropping locks `records` against every reader until the commit.
    let mut sql = String::new();
    for t in empty.iter().chain([&table]) {
        sql.push_str(&format!("DROP TABLE {t};"));
    }
    tx.batch_execute(&sql)?;
    tx.commit()?;
    DIRTY.store(true, Ordering::Relaxed);
    Ok(Some(deleted))
}

pub(super) fn chain_rows_of(c: &mut Client, subject: &Subject) -> Result<Vec<u64>, StoreError> {
    c.query(
        &format!(
            "SELECT c.n FROM audit_chain c JOIN records r ON r.seq = c.record_seq
             WHERE r.{} = $1 AND c.tombstone = 0 ORDER BY c.n",
            subject_column(subject)
        ),
        &[&subject.value()],
    )?
    .iter()
    .map(|r| Ok(r.try_get::<_, i64>(0)?.max(0) as u64))
    .collect()
}

/// The payload a tombstone leaves.
const TOMBSTONE_FIELDS: &str = r#"{"tombstone":true}"#;

pub(super) fn tombstone(
    c: &mut Client,
    chain_rows: &[u64],
    subject: &Subject,
) -> Result<u64, StoreError> {
    let mut tx = c.transaction()?;
    lock(&mut tx)?;
    unlock(&mut tx)?;
    let mut done = 0;
    for n in chain_rows {
        let n = saturate(*n);
        let Some(row) = tx.query_opt("SELECT record_seq FROM audit_chain WHERE n = $1", &[&n])?
        else {
            continue;
        };
        let seq: i64 = row.try_get(0)?;
        tx.execute(
            "UPDATE records SET message = NULL, fields = $3::text::jsonb,
                    user_id = NULL, session_id = NULL, request_id = NULL,
                    tenant = CASE WHEN $2::text = 'tenant' THEN NULL ELSE tenant END
             WHERE seq = $1",
            &[&seq, &subject.kind(), &TOMBSTONE_FIELDS],
        )?;
        if let Some(run) = calls::forget(&mut tx, seq)? {
            calls::refresh_run(&mut tx, &run)?;
        }
        tx.execute("UPDATE audit_chain SET tombstone = 1 WHERE n = $1", &[&n])?;
        done += 1;
    }
    tx.commit()?;
    if done > 0 {
        DIRTY.store(true, Ordering::Relaxed);
    }
    Ok(done)
}

pub(super) fn delete_quarantined(c: &mut Client, subject: &Subject) -> Result<u64, StoreError> {
    let n = c.execute(
        "DELETE FROM quarantine WHERE record::jsonb ->> $1::text = $2::text",
        &[&subject_column(subject), &subject.value()],
    )?;
    if n > 0 {
        DIRTY.store(true, Ordering::Relaxed);
    }
    Ok(n)
}

/// Marks the space of deleted rows reusable and refreshes the planner's statistics,
/// after deletions (outside a transaction). PostgreSQL gives back only trailing empty
/// pages; dropped days gave theirs back whole.
pub(super) fn vacuum(c: &mut Client) -> Result<(), StoreError> {
    if !DIRTY.swap(false, Ordering::Relaxed) {
        return Ok(());
    }
    let done = c.batch_execute(
        "VACUUM (ANALYZE) records, audit_chain, runs, llm_calls, tool_calls, quarantine",
    );
    if done.is_err() {
        DIRTY.store(true, Ordering::Relaxed);
    }
    Ok(done?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_age_limits_on_every_ops_record_drop_days() {
        let age = Selection {
            older_than: Some(Timestamp(5 * DAY_NS)),
            ..Selection::default()
        };
        assert_eq!(whole_days(&age), Some(Timestamp(5 * DAY_NS)));
        let mut matching = age.clone();
        matching.matching.tenant = Some("acme".into());
        assert_eq!(whole_days(&matching), None);
        let mut except = age.clone();
        except.except.push(Selector {
            app: Some("x".into()),
            ..Selector::default()
        });
        assert_eq!(whole_days(&except), None);
        let mut audit = age.clone();
        audit.class = StorageClass::Audit;
        assert_eq!(whole_days(&audit), None);
        assert_eq!(whole_days(&Selection::default()), None);
    }

    #[test]
    fn run_keys_match_the_views() {
        let trace = [0xab; 16];
        assert_eq!(
            run_key(Some("r1"), Some(&trace[..]), true),
            Some("r1".into())
        );
        assert_eq!(run_key(None, Some(&trace[..]), false), None);
        assert_eq!(
            run_key(None, Some(&trace[..]), true),
            Some(TraceId(trace).to_hex())
        );
    }
}
