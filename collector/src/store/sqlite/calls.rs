//! The LLM and tool call views in SQLite: a row per finished call (what a call is:
//! `crate::views::call`), written with the span's end record and keyed by its seq; the
//! reads behind `logbook calls` and `logbook cost`; keeping runs' call totals right
//! after a purge; recomputing costs.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, Transaction};

use super::write::saturate;
use crate::query::Cursor;
use crate::store::{
    CallCommon, CallFilter, CostBy, CostGroup, LlmCall, PricedCall, SeriesPoint, StoreError,
    ToolCall,
};
use crate::views::call::{CallBase, CallRow};
use logbook_proto::Timestamp;

const INSERT_LLM: &str = "INSERT OR REPLACE INTO llm_calls (seq, ts, end_ts, run_id, trace_id,
    span_id, parent_span_id, tenant, user_id, app, service, operation, provider, request_model,
    response_model, model, agent, input_messages, output_messages, finish_reasons, input_tokens,
    output_tokens, cache_read_tokens, cost, provider_cost, duration_ns, status, error)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
         ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)";

const INSERT_TOOL: &str = "INSERT OR REPLACE INTO tool_calls (seq, ts, end_ts, run_id, trace_id,
    span_id, parent_span_id, tenant, user_id, app, service, tool_name, call_id, arguments,
    result, duration_ns, status, error)
 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)";

/// The columns both tables start with, for `call` stored as `seq`.
fn base_values(seq: i64, b: &CallBase<'_>) -> Vec<SqlValue> {
    let text = |v: Option<&str>| v.map_or(SqlValue::Null, |v| SqlValue::Text(v.to_owned()));
    let blob = |v: Option<&[u8]>| v.map_or(SqlValue::Null, |v| SqlValue::Blob(v.to_vec()));
    vec![
        SqlValue::Integer(seq),
        SqlValue::Integer(b.started),
        SqlValue::Integer(b.ended),
        text(b.run.as_ref().map(|k| k.text()).as_deref()),
        SqlValue::Blob(b.trace_id.0.to_vec()),
        blob(b.span_id.as_ref().map(|i| &i.0[..])),
        blob(b.parent_span_id.as_ref().map(|i| &i.0[..])),
        text(b.tenant),
        text(b.user_id),
        text(b.app),
        SqlValue::Text(b.service.to_owned()),
    ]
}

/// Writes the row of `call`, ended by the record stored as `seq`.
pub(super) fn insert(tx: &Transaction<'_>, seq: i64, call: &CallRow<'_>) -> Result<(), StoreError> {
    let text = |v: &Option<String>| v.clone().map_or(SqlValue::Null, SqlValue::Text);
    let int = |v: Option<u64>| v.map_or(SqlValue::Null, |n| SqlValue::Integer(saturate(n)));
    let real = |v: Option<f64>| v.map_or(SqlValue::Null, SqlValue::Real);
    let mut values = base_values(seq, call.base());
    let b = call.base();
    let tail = [
        b.duration_ns.map_or(SqlValue::Null, SqlValue::Integer),
        SqlValue::Text(b.status.into()),
        text(&b.error),
    ];
    match call {
        CallRow::Tool(c) => {
            values.extend([
                text(&c.tool_name),
                text(&c.call_id),
                text(&c.arguments),
                text(&c.result),
            ]);
            values.extend(tail);
            tx.prepare_cached(INSERT_TOOL)?
                .execute(params_from_iter(values))?;
        }
        CallRow::Llm(c) => {
            values.extend([
                text(&c.operation),
                text(&c.provider),
                text(&c.request_model),
                text(&c.response_model),
                text(&c.model),
                text(&c.agent),
                text(&c.input_messages),
                text(&c.output_messages),
                text(&c.finish_reasons),
                int(c.input_tokens),
                int(c.output_tokens),
                int(c.cache_read_tokens),
                real(c.cost),
                real(c.provider_cost),
            ]);
            values.extend(tail);
            tx.prepare_cached(INSERT_LLM)?
                .execute(params_from_iter(values))?;
        }
    }
    Ok(())
}

/// Folds the GenAI events of span `(trace, span)` (stored so far) into its LLM call,
/// if it has one: its prompt and response from them, where its attributes gave none.
pub(super) fn fold_event_messages(
    tx: &Transaction<'_>,
    trace: &[u8; 16],
    span: &[u8; 8],
) -> Result<(), StoreError> {
    let call: Option<(i64, bool, bool, i64)> = tx
        .prepare_cached(
            "SELECT seq, input_messages IS NULL, output_messages IS NULL, messages_from_events
             FROM llm_calls WHERE trace_id = ?1 AND span_id = ?2",
        )?
        .query_row(params![&trace[..], &span[..]], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((seq, no_input, no_output, from_events)) = call else {
        return Ok(());
    };
    // What events may set: a message the attributes did not give, or one they set.
    let (take_input, take_output) = (
        no_input || from_events & 1 != 0,
        no_output || from_events & 2 != 0,
    );
    if !(take_input || take_output) {
        return Ok(());
    }
    let mut stmt = tx.prepare_cached(
        "SELECT name, fields FROM records INDEXED BY records_span_events
         WHERE trace_id = ?1 AND span_id = ?2 AND kind = 1 AND span_id IS NOT NULL
           AND substr(name, 1, 7) = 'gen_ai.'
         ORDER BY ts, seq",
    )?;
    let events: Vec<(String, serde_json::Value)> = stmt
        .query_map(params![&trace[..], &span[..]], |r| {
            let fields: Option<String> = r.get(1)?;
            Ok((
                r.get(0)?,
                fields
                    .and_then(|f| serde_json::from_str(&f).ok())
                    .unwrap_or(serde_json::Value::Null),
            ))
        })?
        .collect::<Result<_, _>>()?;
    let (input, output) = crate::views::call::messages_from_events(
        events.iter().map(|(n, f)| (n.as_str(), f.clone())),
    );
    let text = |v: Option<logbook_proto::Value>| match v {
        Some(logbook_proto::Value::Json(j)) => Some(j.as_str().to_owned()),
        Some(logbook_proto::Value::Str(s)) => Some(s),
        _ => None,
    };
    let input = text(input).filter(|_| take_input);
    let output = text(output).filter(|_| take_output);
    if input.is_none() && output.is_none() {
        return Ok(());
    }
    let flags = from_events | i64::from(input.is_some()) | (i64::from(output.is_some()) << 1);
    tx.prepare_cached(
        "UPDATE llm_calls SET
            input_messages = coalesce(?2, input_messages),
            output_messages = coalesce(?3, output_messages),
            messages_from_events = ?4
         WHERE seq = ?1",
    )?
    .execute(params![seq, input, output, flags])?;
    Ok(())
}

/// A run's call columns, recomputed from its calls (after a purge deleted some, or a
/// cost changed). Costs add up in whole nano-dollars, as at ingest; sums are taken as
/// floats (`total`, which never overflows) and cast back, saturating, as at ingest.
const CALL_TOTALS: &str = "
    llm_calls          = (SELECT count(*) FROM llm_calls c WHERE c.run_id = runs.run_id),
    input_tokens       = (SELECT CAST(total(input_tokens) AS INTEGER) FROM llm_calls c WHERE c.run_id = runs.run_id),
    output_tokens      = (SELECT CAST(total(output_tokens) AS INTEGER) FROM llm_calls c WHERE c.run_id = runs.run_id),
    cache_read_tokens  = (SELECT CAST(total(cache_read_tokens) AS INTEGER) FROM llm_calls c WHERE c.run_id = runs.run_id),
    cost_nusd          = (SELECT CASE WHEN count(cost) > 0 THEN CAST(total(round(cost * 1e9)) AS INTEGER) END
                            FROM llm_calls c WHERE c.run_id = runs.run_id),
    provider_cost_nusd = (SELECT CASE WHEN count(provider_cost) > 0 THEN CAST(total(round(provider_cost * 1e9)) AS INTEGER) END
                            FROM llm_calls c WHERE c.run_id = runs.run_id),
    models             = (SELECT json_group_array(model ORDER BY model) FROM (SELECT DISTINCT model FROM llm_calls c
                           WHERE c.run_id = runs.run_id AND model IS NOT NULL) HAVING count(*) > 0),
    tool_calls         = (SELECT count(*) FROM tool_calls c WHERE c.run_id = runs.run_id)";

/// Recomputes the call columns of run `run`.
pub(super) fn refresh_run(conn: &Connection, run: &str) -> Result<(), StoreError> {
    conn.prepare_cached(&format!("UPDATE runs SET {CALL_TOTALS} WHERE run_id = ?1"))?
        .execute([run])?;
    Ok(())
}

/// Recomputes the call columns of every run keyed this way (`run` or `trace`).
pub(super) fn refresh_runs_of_kind(conn: &Connection, kind: &str) -> Result<(), StoreError> {
    conn.execute(
        &format!("UPDATE runs SET {CALL_TOTALS} WHERE kind = ?1"),
        [kind],
    )?;
    Ok(())
}

/// Deletes the call row of record `seq`, if any; returns its run's key.
pub(super) fn forget(tx: &Transaction<'_>, seq: i64) -> Result<Option<String>, StoreError> {
    let mut run = None;
    for sql in [
        "DELETE FROM llm_calls WHERE seq = ?1 RETURNING run_id",
        "DELETE FROM tool_calls WHERE seq = ?1 RETURNING run_id",
    ] {
        let mut stmt = tx.prepare_cached(sql)?;
        let mut rows = stmt.query([seq])?;
        if let Some(row) = rows.next()? {
            run = row.get::<_, Option<String>>(0)?;
        }
    }
    Ok(run)
}

/// LLM calls with seq above `after`: what their cost depends on.
pub(super) fn priced(
    conn: &Connection,
    after: i64,
    limit: usize,
) -> Result<Vec<PricedCall>, StoreError> {
    let tokens = |v: Option<i64>| v.map(|n| n.max(0) as u64);
    let rows = conn
        .prepare_cached(
            "SELECT seq, ts, provider, model, input_tokens, output_tokens, cache_read_tokens, cost
               FROM llm_calls WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?
        .query_map(params![after, saturate(limit as u64)], |r| {
            Ok(PricedCall {
                seq: r.get(0)?,
                started: Timestamp(r.get(1)?),
                provider: r.get(2)?,
                model: r.get(3)?,
                tokens: [tokens(r.get(4)?), tokens(r.get(5)?), tokens(r.get(6)?)],
                cost: r.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Sets these calls' costs and their runs' totals, in one transaction.
pub(super) fn set_costs(
    conn: &mut Connection,
    costs: &[(i64, Option<f64>)],
) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut runs = std::collections::BTreeSet::new();
    {
        let mut update =
            tx.prepare_cached("UPDATE llm_calls SET cost = ?2 WHERE seq = ?1 RETURNING run_id")?;
        for (seq, cost) in costs {
            let mut rows = update.query(params![seq, cost])?;
            if let Some(row) = rows.next()? {
                runs.extend(row.get::<_, Option<String>>(0)?);
            }
        }
        for run in &runs {
            refresh_run(&tx, run)?;
        }
    }
    tx.commit()?;
    Ok(())
}

const LLM_COLUMNS: &str = "seq, ts, end_ts, run_id, trace_id, span_id, parent_span_id, tenant,
    user_id, app, service, operation, provider, model, agent, input_messages, output_messages,
    finish_reasons, input_tokens, output_tokens, cache_read_tokens, cost, provider_cost,
    duration_ns, status, error";
const TOOL_COLUMNS: &str = "seq, ts, end_ts, run_id, trace_id, span_id, parent_span_id, tenant,
    user_id, app, service, tool_name, call_id, arguments, result, duration_ns, status, error";

fn json_or_text(s: Option<String>) -> Option<serde_json::Value> {
    s.map(|s| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
}

fn hex<const N: usize>(b: Option<Vec<u8>>) -> Option<String> {
    b.and_then(|b| <[u8; N]>::try_from(b.as_slice()).ok())
        .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
}

fn unsigned(row: &Row<'_>, i: usize) -> rusqlite::Result<Option<u64>> {
    Ok(row.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
}

/// The columns both kinds of call share, in the same places.
fn common(row: &Row<'_>) -> rusqlite::Result<CallCommon> {
    Ok(CallCommon {
        seq: row.get(0)?,
        started: Timestamp(row.get(1)?),
        ended: Timestamp(row.get(2)?),
        run_id: row.get(3)?,
        trace_id: hex::<16>(row.get(4)?).unwrap_or_default(),
        span_id: hex::<8>(row.get(5)?),
        parent_span_id: hex::<8>(row.get(6)?),
        tenant: row.get(7)?,
        user_id: row.get(8)?,
        app: row.get(9)?,
        service: row.get(10)?,
        duration_ns: None,
        status: String::new(),
        error: None,
    })
}

fn llm_from_row(row: &Row<'_>) -> rusqlite::Result<LlmCall> {
    let mut call = common(row)?;
    call.duration_ns = unsigned(row, 23)?;
    call.status = row.get(24)?;
    call.error = row.get(25)?;
    Ok(LlmCall {
        call,
        operation: row.get(11)?,
        provider: row.get(12)?,
        model: row.get(13)?,
        agent: row.get(14)?,
        input_messages: json_or_text(row.get(15)?),
        output_messages: json_or_text(row.get(16)?),
        finish_reasons: json_or_text(row.get(17)?),
        input_tokens: unsigned(row, 18)?,
        output_tokens: unsigned(row, 19)?,
        cache_read_tokens: unsigned(row, 20)?,
        cost: row.get(21)?,
        provider_cost: row.get(22)?,
    })
}

fn tool_from_row(row: &Row<'_>) -> rusqlite::Result<ToolCall> {
    let mut call = common(row)?;
    call.duration_ns = unsigned(row, 15)?;
    call.status = row.get(16)?;
    call.error = row.get(17)?;
    Ok(ToolCall {
        call,
        tool_name: row.get(11)?,
        call_id: row.get(12)?,
        arguments: json_or_text(row.get(13)?),
        result: json_or_text(row.get(14)?),
    })
}

/// The WHERE clause of a call filter.
fn conditions(f: &CallFilter, name_col: &str) -> (String, Vec<SqlValue>) {
    let mut terms = Vec::new();
    let mut params = Vec::new();
    let mut push = |t: String, v: SqlValue| {
        terms.push(t);
        params.push(v);
    };
    if let Some(t) = f.since {
        push("ts >= ?".into(), SqlValue::Integer(t.as_nanos()));
    }
    if let Some(t) = f.until {
        push("ts < ?".into(), SqlValue::Integer(t.as_nanos()));
    }
    for (col, v) in [
        ("run_id", &f.run_id),
        ("tenant", &f.tenant),
        ("user_id", &f.user_id),
        ("app", &f.app),
        ("service", &f.service),
        ("status", &f.status),
        (name_col, &f.name),
    ] {
        if let Some(v) = v {
            push(format!("{col} = ?"), SqlValue::Text(v.clone()));
        }
    }
    if let Some(Cursor { ts, seq }) = f.before {
        terms.push("(ts < ? OR (ts = ? AND seq < ?))".into());
        params.extend([
            SqlValue::Integer(ts.as_nanos()),
            SqlValue::Integer(ts.as_nanos()),
            SqlValue::Integer(saturate(seq)),
        ]);
    }
    let sql = if terms.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", terms.join(" AND "))
    };
    (sql, params)
}

/// LLM calls, newest first, keyset on (ts, seq); `f.name` is the model.
pub(super) fn llm_calls(conn: &Connection, f: &CallFilter) -> Result<Vec<LlmCall>, StoreError> {
    let (w, params) = conditions(f, "model");
    let sql = format!(
        "SELECT {LLM_COLUMNS} FROM llm_calls{w} ORDER BY ts DESC, seq DESC LIMIT {}",
        f.limit
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), llm_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Tool calls, newest first, keyset on (ts, seq); `f.name` is the tool.
pub(super) fn tool_calls(conn: &Connection, f: &CallFilter) -> Result<Vec<ToolCall>, StoreError> {
    let (w, params) = conditions(f, "tool_name");
    let sql = format!(
        "SELECT {TOOL_COLUMNS} FROM tool_calls{w} ORDER BY ts DESC, seq DESC LIMIT {}",
        f.limit
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), tool_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// LLM calls per bucket from `f.since`: `[calls, input tokens, output tokens, cost,
/// p50 ms, p95 ms]`; the percentiles nearest-rank over the bucket's durations.
pub(super) fn call_series(
    conn: &Connection,
    f: &CallFilter,
    bucket_ns: i64,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let since = f.since.map_or(0, |t| t.as_nanos());
    let bucket_ns = bucket_ns.max(1);
    let (w, params) = conditions(f, "model");
    let sql = format!(
        "SELECT (ts - {since}) / {bucket_ns} AS b, duration_ns, input_tokens, output_tokens, cost
           FROM llm_calls{w} ORDER BY b"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut out: Vec<SeriesPoint> = Vec::new();
    let mut durations: Vec<i64> = Vec::new();
    let finish = |p: &mut SeriesPoint, d: &mut Vec<i64>| {
        d.sort_unstable();
        let rank = |q: f64| {
            d.get(((q * d.len() as f64).ceil() as usize).clamp(1, d.len().max(1)) - 1)
                .map_or(0.0, |v| *v as f64 / 1e6)
        };
        p.values.push(rank(0.50));
        p.values.push(rank(0.95));
        d.clear();
    };
    while let Some(row) = rows.next()? {
        let b: i64 = row.get(0)?;
        let t = Timestamp(since + b * bucket_ns);
        if out.last().is_none_or(|p| p.t != t) {
            if let Some(p) = out.last_mut() {
                finish(p, &mut durations);
            }
            out.push(SeriesPoint {
                t,
                values: vec![0.0; 4],
            });
        }
        let p = out.last_mut().expect("pushed above");
        p.values[0] += 1.0;
        if let Some(d) = row.get::<_, Option<i64>>(1)? {
            durations.push(d);
        }
        p.values[1] += row.get::<_, Option<i64>>(2)?.unwrap_or(0) as f64;
        p.values[2] += row.get::<_, Option<i64>>(3)?.unwrap_or(0) as f64;
        p.values[3] += row.get::<_, Option<f64>>(4)?.unwrap_or(0.0);
    }
    if let Some(p) = out.last_mut() {
        finish(p, &mut durations);
    }
    Ok(out)
}

/// LLM calls grouped several ways at once: one read of the calls, summed per key in
/// memory, for groupings by a column (model, provider, user, tenant, app, run); the
/// others (day, all) as [`cost`] does them.
pub(super) fn costs(
    conn: &Connection,
    bys: &[CostBy],
    f: &CallFilter,
) -> Result<Vec<Vec<CostGroup>>, StoreError> {
    let column = |by: CostBy| match by {
        CostBy::Model => Some(0),
        CostBy::Provider => Some(1),
        CostBy::User => Some(2),
        CostBy::Tenant => Some(3),
        CostBy::App => Some(4),
        CostBy::Run => Some(5),
        CostBy::Day | CostBy::All => None,
    };
    if bys.iter().any(|b| column(*b).is_none()) || bys.len() < 2 {
        return bys.iter().map(|by| cost(conn, *by, f)).collect();
    }
    let (w, params) = conditions(f, "model");
    let sql = format!(
        "SELECT model, provider, user_id, tenant, app, run_id, input_tokens, output_tokens,
                cache_read_tokens, cost, provider_cost FROM llm_calls{w}"
    );
    let mut groups: Vec<std::collections::HashMap<String, CostGroup>> = bys
        .iter()
        .map(|_| std::collections::HashMap::new())
        .collect();
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    while let Some(row) = rows.next()? {
        let keys: [Option<String>; 6] = [
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
        ];
        let tokens = |i: usize| -> rusqlite::Result<Option<i64>> { row.get(i) };
        let (input, output, cache) = (tokens(6)?, tokens(7)?, tokens(8)?);
        let (cost, provider): (Option<f64>, Option<f64>) = (row.get(9)?, row.get(10)?);
        for (by, map) in bys.iter().zip(groups.iter_mut()) {
            let key = column(*by)
                .and_then(|i| keys[i].clone())
                .unwrap_or_else(|| "-".into());
            let g = map.entry(key.clone()).or_insert_with(|| CostGroup {
                key,
                ..CostGroup::default()
            });
            g.calls += 1;
            g.input_tokens += input.unwrap_or(0).max(0) as u64;
            g.output_tokens += output.unwrap_or(0).max(0) as u64;
            g.cache_read_tokens += cache.unwrap_or(0).max(0) as u64;
            if let Some(c) = cost {
                g.cost = Some(g.cost.unwrap_or(0.0) + c);
            } else if input.is_some() || output.is_some() {
                g.unpriced_calls += 1;
            }
            if let Some(c) = provider {
                g.provider_cost = Some(g.provider_cost.unwrap_or(0.0) + c);
            }
        }
    }
    Ok(groups
        .into_iter()
        .map(|map| {
            let mut v: Vec<CostGroup> = map.into_values().collect();
            // As `cost` orders them: the costliest first, then by key.
            v.sort_by(|a, b| {
                b.cost
                    .unwrap_or(0.0)
                    .total_cmp(&a.cost.unwrap_or(0.0))
                    .then_with(|| a.key.cmp(&b.key))
            });
            v.truncate(f.limit);
            v
        })
        .collect())
}

/// LLM calls grouped by `by`: counts, tokens, computed and reported cost.
pub(super) fn cost(
    conn: &Connection,
    by: CostBy,
    f: &CallFilter,
) -> Result<Vec<CostGroup>, StoreError> {
    let key = match by {
        CostBy::Model => "coalesce(model, '-')",
        CostBy::Provider => "coalesce(provider, '-')",
        CostBy::User => "coalesce(user_id, '-')",
        CostBy::Tenant => "coalesce(tenant, '-')",
        CostBy::App => "coalesce(app, '-')",
        CostBy::Run => "coalesce(run_id, '-')",
        CostBy::Day => "strftime('%Y-%m-%d', ts / 1000000000, 'unixepoch')",
        CostBy::All => "'all'",
    };
    let (w, params) = conditions(f, "model");
    let sql = format!(
        "SELECT {key} AS k, count(*), CAST(total(input_tokens) AS INTEGER),
                CAST(total(output_tokens) AS INTEGER), CAST(total(cache_read_tokens) AS INTEGER),
                sum(cost), sum(provider_cost),
                sum(cost IS NULL AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL))
           FROM llm_calls{w} GROUP BY k ORDER BY {} LIMIT {}",
        if by == CostBy::Day {
            "k DESC"
        } else {
            "coalesce(sum(cost), 0) DESC, k"
        },
        f.limit
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| {
        let n = |i| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
        Ok(CostGroup {
            key: r.get(0)?,
            calls: n(1)?,
            input_tokens: n(2)?,
            output_tokens: n(3)?,
            cache_read_tokens: n(4)?,
            cost: r.get(5)?,
            provider_cost: r.get(6)?,
            unpriced_calls: n(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
