//! Alerts in PostgreSQL (see `crate::store::alerts`): the loop detector's counts, the
//! alerts' states and their history, and the evaluator's lease (a session advisory
//! lock: held by one collector's monitor connection while it lives).

use postgres::{Client, Transaction};

use super::read::saturate;
use crate::store::alerts::{AlertEvent, AlertState, LoopRow, ToolRepeatDeltas};
use crate::store::StoreError;
use logbook_proto::Timestamp;

/// The evaluator's lease (`'logbook'` and 2).
const ALERT_LOCK: i64 = 0x6c6f_6762_6f6f_6b02;

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Adds a page's tool calls to their counts.
pub(super) fn apply(
    tx: &mut Transaction<'_>,
    repeats: &ToolRepeatDeltas,
) -> Result<(), StoreError> {
    if repeats.is_empty() {
        return Ok(());
    }
    let add = tx.prepare(
        "INSERT INTO tool_repeats AS t (run_id, tool, args_hash, arguments, service, n, first_ts, last_ts)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (run_id, tool, args_hash) DO UPDATE SET n = t.n + excluded.n,
            first_ts = LEAST(t.first_ts, excluded.first_ts), last_ts = GREATEST(t.last_ts, excluded.last_ts)",
    )?;
    for ((run, tool, hash), d) in repeats {
        tx.execute(
            &add,
            &[
                run,
                tool,
                hash,
                &d.arguments,
                &d.service,
                &saturate(d.count),
                &d.first_ts.as_nanos(),
                &d.last_ts.as_nanos(),
            ],
        )?;
    }
    Ok(())
}

pub(super) fn open_loops(c: &mut Client, threshold: u64) -> Result<Vec<LoopRow>, StoreError> {
    c.query(
        "SELECT t.run_id, t.tool, t.arguments, t.n, t.first_ts, t.last_ts, t.service
           FROM tool_repeats t JOIN runs r ON r.run_id = t.run_id
          WHERE t.n >= $1 AND r.status = 'running'
          ORDER BY t.last_ts DESC LIMIT 1000",
        &[&saturate(threshold)],
    )?
    .iter()
    .map(|r| {
        Ok(LoopRow {
            run_id: r.try_get(0)?,
            tool: r.try_get(1)?,
            arguments: r.try_get(2)?,
            count: count(r.try_get(3)?),
            first_ts: Timestamp(r.try_get(4)?),
            last_ts: Timestamp(r.try_get(5)?),
            service: r.try_get(6)?,
        })
    })
    .collect()
}

pub(super) fn states(c: &mut Client) -> Result<Vec<AlertState>, StoreError> {
    c.query(
        "SELECT rule, key, state, since, last_sent, labels, value, summary FROM alert_state
          ORDER BY rule, key",
        &[],
    )?
    .iter()
    .map(|r| {
        Ok(AlertState {
            rule: r.try_get(0)?,
            key: r.try_get(1)?,
            state: r.try_get(2)?,
            since: Timestamp(r.try_get(3)?),
            last_sent: r.try_get::<_, Option<i64>>(4)?.map(Timestamp),
            labels: serde_json::from_str(r.try_get::<_, &str>(5)?).unwrap_or_default(),
            value: r.try_get(6)?,
            summary: r.try_get(7)?,
        })
    })
    .collect()
}

pub(super) fn events(c: &mut Client, limit: usize) -> Result<Vec<AlertEvent>, StoreError> {
    c.query(
        "SELECT ts, rule, key, state, labels, value, summary, delivery, attempts FROM alert_events
          ORDER BY id DESC LIMIT $1",
        &[&i64::try_from(limit).unwrap_or(i64::MAX)],
    )?
    .iter()
    .map(|r| {
        Ok(AlertEvent {
            ts: Timestamp(r.try_get(0)?),
            started: Timestamp(r.try_get(0)?),
            rule: r.try_get(1)?,
            key: r.try_get(2)?,
            state: r.try_get(3)?,
            labels: serde_json::from_str(r.try_get::<_, &str>(4)?).unwrap_or_default(),
            value: r.try_get(5)?,
            summary: r.try_get(6)?,
            delivery: r.try_get(7)?,
            attempts: u32::try_from(r.try_get::<_, i64>(8)?).unwrap_or(0),
        })
    })
    .collect()
}

pub(super) fn save(
    client: &mut Client,
    states: &[AlertState],
    events: &[AlertEvent],
) -> Result<(), StoreError> {
    let mut tx = client.transaction()?;
    tx.execute("DELETE FROM alert_state", &[])?;
    for s in states {
        tx.execute(
            "INSERT INTO alert_state (rule, key, state, since, last_sent, labels, value, summary)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &s.rule,
                &s.key,
                &s.state,
                &s.since.as_nanos(),
                &s.last_sent.map(Timestamp::as_nanos),
                &serde_json::to_string(&s.labels).unwrap_or_default(),
                &s.value,
                &s.summary,
            ],
        )?;
    }
    for e in events {
        tx.execute(
            "INSERT INTO alert_events (ts, rule, key, state, labels, value, summary, delivery, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &e.ts.as_nanos(),
                &e.rule,
                &e.key,
                &e.state,
                &serde_json::to_string(&e.labels).unwrap_or_default(),
                &e.value,
                &e.summary,
                &e.delivery,
                &i64::from(e.attempts),
            ],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Takes the evaluator's lease for this connection's life, if no other holds it.
pub(super) fn lease(c: &mut Client) -> Result<bool, StoreError> {
    Ok(
        c.query_one("SELECT pg_try_advisory_lock($1)", &[&ALERT_LOCK])?
            .get(0),
    )
}
