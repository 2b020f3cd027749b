//! Exception groups in SQLite (see `crate::store::exceptions`): the monitor's pages
//! applied with its cursor, people's changes, and the reads behind `logbook errors`.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, Transaction};

use super::write::saturate;
use crate::store::exceptions::{
    changed_status, merged_status, ExceptionChange, ExceptionDetail, ExceptionFilter,
    ExceptionGroup, ExceptionNote, ExceptionSort, ExceptionState, ExceptionStatus, ExceptionTag,
    MonitorUpdate, TagKind,
};
use crate::store::{StoreError, StreamCursor, Subject};
use logbook_proto::Timestamp;

/// The monitor's row in `monitor_state`.
const MONITOR: &str = "monitor";
const HOUR_NS: i64 = 3_600_000_000_000;

/// Where the monitor has come to, if it has started.
pub(super) fn monitor_cursor(conn: &Connection) -> Result<Option<StreamCursor>, StoreError> {
    let c: Option<i64> = conn
        .query_row(
            "SELECT cursor FROM monitor_state WHERE name = ?",
            [MONITOR],
            |r| r.get(0),
        )
        .optional()?;
    Ok(c.map(|c| StreamCursor::from_backend(u64::try_from(c).unwrap_or(0))))
}

/// Applies `u` and moves the cursor, if the cursor is still at `u.from`.
pub(super) fn apply(conn: &mut Connection, u: &MonitorUpdate) -> Result<bool, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let kept = monitor_cursor(&tx)?.unwrap_or(StreamCursor::START);
    if kept != u.from {
        return Ok(false);
    }
    for d in &u.exceptions {
        let current = status_of(&tx, &d.fingerprint)?;
        match current {
            None => {
                tx.execute(
                    "INSERT INTO exception_groups (fingerprint, basis, kind, message, culprit,
                        first_seen, last_seen, count, first_id, last_id, last_run, last_trace,
                        state)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'unresolved')",
                    params![
                        d.fingerprint,
                        d.basis,
                        d.kind,
                        d.message,
                        d.culprit,
                        d.first_ts.as_nanos(),
                        d.last_ts.as_nanos(),
                        saturate(d.count),
                        d.first_id,
                        d.last_id,
                        d.last_run,
                        d.last_trace,
                    ],
                )?;
            }
            Some((count, status)) => {
                let after = count.saturating_add(d.count);
                let s = merged_status(&status, after, d);
                tx.execute(
                    "UPDATE exception_groups SET
                        first_seen = min(first_seen, ?2),
                        first_id = CASE WHEN ?2 < first_seen THEN ?3 ELSE first_id END,
                        last_run = CASE WHEN ?4 >= last_seen THEN ?6 ELSE last_run END,
                        last_trace = CASE WHEN ?4 >= last_seen THEN ?7 ELSE last_trace END,
                        last_id = CASE WHEN ?4 >= last_seen THEN ?5 ELSE last_id END,
                        last_seen = max(last_seen, ?4),
                        count = ?8,
                        state = ?9, resolved_in = ?10, changed = ?11, ignore_until = ?12,
                        ignore_until_count = ?13
                      WHERE fingerprint = ?1",
                    params![
                        d.fingerprint,
                        d.first_ts.as_nanos(),
                        d.first_id,
                        d.last_ts.as_nanos(),
                        d.last_id,
                        d.last_run,
                        d.last_trace,
                        saturate(after),
                        s.state.as_str(),
                        s.resolved_in,
                        s.changed.map(Timestamp::as_nanos),
                        s.ignore_until.map(Timestamp::as_nanos),
                        s.ignore_until_count.map(saturate),
                    ],
                )?;
            }
        }
        let mut hours = tx.prepare_cached(
            "INSERT INTO exception_hours (fingerprint, hour, n) VALUES (?, ?, ?)
             ON CONFLICT (fingerprint, hour) DO UPDATE SET n = n + excluded.n",
        )?;
        for (hour, n) in &d.hours {
            hours.execute(params![d.fingerprint, hour, saturate(*n)])?;
        }
        let mut tags = tx.prepare_cached(
            "INSERT INTO exception_tags (fingerprint, kind, value, n, first_seen, last_seen)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (fingerprint, kind, value) DO UPDATE SET n = n + excluded.n,
                first_seen = min(first_seen, excluded.first_seen),
                last_seen = max(last_seen, excluded.last_seen)",
        )?;
        for ((kind, value), t) in &d.tags {
            tags.execute(params![
                d.fingerprint,
                kind.as_str(),
                value,
                saturate(t.count),
                t.first_ts.as_nanos(),
                t.last_ts.as_nanos(),
            ])?;
        }
    }
    super::metrics::apply(&tx, &u.spans, &u.volume)?;
    super::alerts::apply(&tx, &u.tool_repeats)?;
    tx.execute(
        "INSERT INTO monitor_state (name, cursor, updated) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated",
        params![
            MONITOR,
            saturate(u.to.backend_position()),
            Timestamp::now().as_nanos()
        ],
    )?;
    tx.commit()?;
    Ok(true)
}

/// A group's count and status.
fn status_of(
    conn: &Connection,
    fingerprint: &str,
) -> Result<Option<(u64, ExceptionStatus)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT count, state, resolved_in, changed, ignore_until, ignore_until_count
               FROM exception_groups WHERE fingerprint = ?",
        )?
        .query_row([fingerprint], |r| {
            Ok((
                u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                status_row(r, 1)?,
            ))
        })
        .optional()?)
}

/// The status in the six columns from `at`: state, resolved_in, changed,
/// ignore_until, ignore_until_count.
fn status_row(r: &Row<'_>, at: usize) -> rusqlite::Result<ExceptionStatus> {
    let state: String = r.get(at)?;
    Ok(ExceptionStatus {
        state: ExceptionState::parse(&state).unwrap_or_default(),
        resolved_in: r.get(at + 1)?,
        changed: r.get::<_, Option<i64>>(at + 2)?.map(Timestamp),
        ignore_until: r.get::<_, Option<i64>>(at + 3)?.map(Timestamp),
        ignore_until_count: r
            .get::<_, Option<i64>>(at + 4)?
            .map(|n| u64::try_from(n).unwrap_or(0)),
    })
}

/// Applies a person's change; the group after it, `None` when there is no such group.
pub(super) fn change(
    conn: &mut Connection,
    fingerprint: &str,
    change: &ExceptionChange,
) -> Result<Option<ExceptionGroup>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let Some((count, status)) = status_of(&tx, fingerprint)? else {
        return Ok(None);
    };
    let now = Timestamp::now();
    if let ExceptionChange::Note { author, text } = change {
        tx.execute(
            "INSERT INTO exception_notes (fingerprint, ts, author, text) VALUES (?, ?, ?, ?)",
            params![fingerprint, now.as_nanos(), author, text],
        )?;
    } else {
        set_status(
            &tx,
            fingerprint,
            &changed_status(&status, count, change, now),
        )?;
    }
    let group = group(&tx, fingerprint)?;
    tx.commit()?;
    Ok(group)
}

fn set_status(
    tx: &Transaction<'_>,
    fingerprint: &str,
    s: &ExceptionStatus,
) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE exception_groups SET state = ?2, resolved_in = ?3, changed = ?4,
            ignore_until = ?5, ignore_until_count = ?6
          WHERE fingerprint = ?1",
        params![
            fingerprint,
            s.state.as_str(),
            s.resolved_in,
            s.changed.map(Timestamp::as_nanos),
            s.ignore_until.map(Timestamp::as_nanos),
            s.ignore_until_count.map(saturate),
        ],
    )?;
    Ok(())
}

const GROUP_COLUMNS: &str = "fingerprint, basis, kind, message, culprit, first_seen, last_seen,
    count, first_id, last_id, last_run, last_trace, state, resolved_in, changed,
    ignore_until, ignore_until_count,
    (SELECT count(*) FROM exception_tags t WHERE t.fingerprint = g.fingerprint AND t.kind = 'user') AS users";

fn group_row(r: &Row<'_>) -> rusqlite::Result<ExceptionGroup> {
    let n =
        |i: usize| -> rusqlite::Result<u64> { Ok(u64::try_from(r.get::<_, i64>(i)?).unwrap_or(0)) };
    Ok(ExceptionGroup {
        fingerprint: r.get(0)?,
        basis: r.get(1)?,
        kind: r.get(2)?,
        message: r.get(3)?,
        culprit: r.get(4)?,
        first_seen: Timestamp(r.get(5)?),
        last_seen: Timestamp(r.get(6)?),
        count: n(7)?,
        first_id: r.get(8)?,
        last_id: r.get(9)?,
        last_run: r.get(10)?,
        last_trace: r.get(11)?,
        status: status_row(r, 12)?,
        users: n(17)?,
        services: Vec::new(),
        versions: Vec::new(),
    })
}

/// Fills a group's services and versions, the most frequent first.
fn with_tags(conn: &Connection, mut g: ExceptionGroup) -> Result<ExceptionGroup, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, value FROM exception_tags WHERE fingerprint = ? AND kind IN ('service', 'version')
          ORDER BY n DESC, value LIMIT 40",
    )?;
    let rows = stmt.query_map([&g.fingerprint], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (kind, value) = row?;
        let list = if kind == "service" {
            &mut g.services
        } else {
            &mut g.versions
        };
        if list.len() < 20 {
            list.push(value);
        }
    }
    Ok(g)
}

fn group(conn: &Connection, fingerprint: &str) -> Result<Option<ExceptionGroup>, StoreError> {
    let g = conn
        .prepare_cached(&format!(
            "SELECT {GROUP_COLUMNS} FROM exception_groups g WHERE fingerprint = ?"
        ))?
        .query_row([fingerprint], group_row)
        .optional()?;
    g.map(|g| with_tags(conn, g)).transpose()
}

/// Groups matching `f`.
pub(super) fn groups(
    conn: &Connection,
    f: &ExceptionFilter,
) -> Result<Vec<ExceptionGroup>, StoreError> {
    let mut sql = format!("SELECT {GROUP_COLUMNS} FROM exception_groups g WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    if let Some(prefix) = &f.fingerprint_prefix {
        sql.push_str(" AND substr(fingerprint, 1, length(?1)) = ?1");
        args.push(SqlValue::Text(prefix.clone()));
    }
    if !f.states.is_empty() {
        sql.push_str(" AND state IN (");
        for (i, s) in f.states.iter().enumerate() {
            sql.push_str(if i == 0 { "?" } else { ", ?" });
            args.push(SqlValue::Text(s.as_str().into()));
        }
        sql.push(')');
    }
    if let Some(service) = &f.service {
        sql.push_str(
            " AND EXISTS (SELECT 1 FROM exception_tags t WHERE t.fingerprint = g.fingerprint
                           AND t.kind = 'service' AND t.value = ?)",
        );
        args.push(SqlValue::Text(service.clone()));
    }
    if let Some(text) = &f.text {
        sql.push_str(" AND instr(lower(kind || ' ' || message || ' ' || culprit), lower(?)) > 0");
        args.push(SqlValue::Text(text.clone()));
    }
    if let Some(since) = f.since {
        sql.push_str(" AND last_seen >= ?");
        args.push(SqlValue::Integer(since.as_nanos()));
    }
    sql.push_str(match f.sort {
        ExceptionSort::LastSeen => " ORDER BY g.last_seen DESC, g.fingerprint",
        ExceptionSort::Count => " ORDER BY g.count DESC, g.fingerprint",
        ExceptionSort::FirstSeen => " ORDER BY g.first_seen DESC, g.fingerprint",
    });
    sql.push_str(&format!(" LIMIT {}", f.limit.max(1)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows: Vec<ExceptionGroup> = stmt
        .query_map(params_from_iter(args), group_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(|g| with_tags(conn, g)).collect()
}

/// One group with its trend (hours of the last 14 days it was seen in), tags and notes.
pub(super) fn detail(
    conn: &Connection,
    fingerprint: &str,
) -> Result<Option<ExceptionDetail>, StoreError> {
    let Some(group) = group(conn, fingerprint)? else {
        return Ok(None);
    };
    let since = group.last_seen.as_nanos().div_euclid(HOUR_NS) - 14 * 24;
    let trend = conn
        .prepare_cached(
            "SELECT hour, n FROM exception_hours WHERE fingerprint = ? AND hour >= ? ORDER BY hour",
        )?
        .query_map(params![fingerprint, since], |r| {
            Ok((
                Timestamp(r.get::<_, i64>(0)?.saturating_mul(HOUR_NS)),
                u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            ))
        })?
        .collect::<Result<_, _>>()?;
    let tags = conn
        .prepare_cached(
            "SELECT kind, value, n, first_seen, last_seen FROM (
                SELECT *, row_number() OVER (PARTITION BY kind ORDER BY n DESC, value) AS rank
                  FROM exception_tags WHERE fingerprint = ?)
              WHERE rank <= 100 ORDER BY kind, n DESC, value",
        )?
        .query_map([fingerprint], |r| {
            let kind: String = r.get(0)?;
            Ok(ExceptionTag {
                kind: TagKind::parse(&kind).unwrap_or(TagKind::Service),
                value: r.get(1)?,
                count: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
                first_seen: Timestamp(r.get(3)?),
                last_seen: Timestamp(r.get(4)?),
            })
        })?
        .collect::<Result<_, _>>()?;
    let notes = conn
        .prepare_cached(
            "SELECT ts, author, text FROM exception_notes WHERE fingerprint = ? ORDER BY ts, rowid",
        )?
        .query_map([fingerprint], |r| {
            Ok(ExceptionNote {
                ts: Timestamp(r.get(0)?),
                author: r.get(1)?,
                text: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(Some(ExceptionDetail {
        group,
        trend,
        tags,
        notes,
    }))
}

/// Takes a DSAR subject out of the groups: a user's tag rows, and first messages
/// that name the subject.
pub(super) fn forget(conn: &mut Connection, subject: &Subject) -> Result<u64, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut changed = 0;
    if let Subject::User(user) = subject {
        changed += tx.execute(
            "DELETE FROM exception_tags WHERE kind = 'user' AND value = ?",
            [user],
        )?;
    }
    changed += tx.execute(
        "UPDATE exception_groups SET message = ? WHERE instr(message, ?) > 0",
        params![crate::store::exceptions::FORGOTTEN, subject.value()],
    )?;
    // The loop detector's counts of runs the deletion took (their tool arguments).
    changed += tx.execute(
        "DELETE FROM tool_repeats WHERE NOT EXISTS
            (SELECT 1 FROM runs r WHERE r.run_id = tool_repeats.run_id)",
        [],
    )?;
    tx.commit()?;
    Ok(changed as u64)
}
