//! Alerts in SQLite (see `crate::store::alerts`): the loop detector's counts, the
//! alerts' states and their history.

use rusqlite::{params, Connection};

use super::write::saturate;
use crate::store::alerts::{AlertEvent, AlertState, LoopRow, ToolRepeatDeltas};
use crate::store::StoreError;
use logbook_proto::Timestamp;

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Adds a page's tool calls to their counts.
pub(super) fn apply(conn: &Connection, repeats: &ToolRepeatDeltas) -> Result<(), StoreError> {
    let mut add = conn.prepare_cached(
        "INSERT INTO tool_repeats (run_id, tool, args_hash, arguments, service, n, first_ts, last_ts)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (run_id, tool, args_hash) DO UPDATE SET n = n + excluded.n,
            first_ts = min(first_ts, excluded.first_ts), last_ts = max(last_ts, excluded.last_ts)",
    )?;
    for ((run, tool, hash), d) in repeats {
        add.execute(params![
            run,
            tool,
            hash,
            d.arguments,
            d.service,
            saturate(d.count),
            d.first_ts.as_nanos(),
            d.last_ts.as_nanos()
        ])?;
    }
    Ok(())
}

pub(super) fn open_loops(conn: &Connection, threshold: u64) -> Result<Vec<LoopRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT t.run_id, t.tool, t.arguments, t.n, t.first_ts, t.last_ts, t.service
           FROM tool_repeats t JOIN runs r ON r.run_id = t.run_id
          WHERE t.n >= ? AND r.status = 'running'
          ORDER BY t.last_ts DESC LIMIT 1000",
    )?;
    let rows = stmt.query_map([saturate(threshold)], |r| {
        Ok(LoopRow {
            run_id: r.get(0)?,
            tool: r.get(1)?,
            arguments: r.get(2)?,
            count: count(r.get(3)?),
            first_ts: Timestamp(r.get(4)?),
            last_ts: Timestamp(r.get(5)?),
            service: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn states(conn: &Connection) -> Result<Vec<AlertState>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT rule, key, state, since, last_sent, labels, value, summary FROM alert_state
          ORDER BY rule, key",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(AlertState {
            rule: r.get(0)?,
            key: r.get(1)?,
            state: r.get(2)?,
            since: Timestamp(r.get(3)?),
            last_sent: r.get::<_, Option<i64>>(4)?.map(Timestamp),
            labels: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
            value: r.get(6)?,
            summary: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn events(conn: &Connection, limit: usize) -> Result<Vec<AlertEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts, rule, key, state, labels, value, summary, delivery, attempts FROM alert_events
          ORDER BY id DESC LIMIT ?",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
        Ok(AlertEvent {
            ts: Timestamp(r.get(0)?),
            started: Timestamp(r.get(0)?),
            rule: r.get(1)?,
            key: r.get(2)?,
            state: r.get(3)?,
            labels: serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default(),
            value: r.get(5)?,
            summary: r.get(6)?,
            delivery: r.get(7)?,
            attempts: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn save(
    conn: &mut Connection,
    states: &[AlertState],
    events: &[AlertEvent],
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute("DELETE FROM alert_state", [])?;
    for s in states {
        tx.execute(
            "INSERT INTO alert_state (rule, key, state, since, last_sent, labels, value, summary)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                s.rule,
                s.key,
                s.state,
                s.since.as_nanos(),
                s.last_sent.map(Timestamp::as_nanos),
                serde_json::to_string(&s.labels).unwrap_or_default(),
                s.value,
                s.summary
            ],
        )?;
    }
    for e in events {
        tx.execute(
            "INSERT INTO alert_events (ts, rule, key, state, labels, value, summary, delivery, attempts)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                e.ts.as_nanos(),
                e.rule,
                e.key,
                e.state,
                serde_json::to_string(&e.labels).unwrap_or_default(),
                e.value,
                e.summary,
                e.delivery,
                e.attempts
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}
