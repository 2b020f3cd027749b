//! The LLM and tool call views: a row per finished call, written with the span's end
//! record, its cost from the price table; what they add to their run; the reads
//! behind `logbook calls` and `logbook cost`; and keeping them right after a purge.

use std::collections::BTreeSet;

use logbook_proto::genai::{self, openinference};
use logbook_proto::{Kind, Record, ScopeKey, Status, Timestamp, Value};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row, Transaction};

use crate::cost::{PriceTable, Usage};
use crate::pipeline::{CATEGORY_LLM_CALL, CATEGORY_TOOL_CALL};
use crate::store::{CallCommon, CallFilter, CostBy, CostGroup, LlmCall, StoreError, ToolCall};

/// What a batch's calls add to one run.
#[derive(Debug, Default)]
pub(super) struct CallTotals {
    pub(super) llm_calls: i64,
    pub(super) tool_calls: i64,
    pub(super) input_tokens: i64,
    pub(super) output_tokens: i64,
    pub(super) cache_read_tokens: i64,
    pub(super) cost: Option<f64>,
    pub(super) provider_cost: Option<f64>,
    pub(super) models: BTreeSet<String>,
}

fn add(total: &mut Option<f64>, v: Option<f64>) {
    if let Some(v) = v {
        *total = Some(total.unwrap_or(0.0) + v);
    }
}

/// A field as text: strings as they are, nested JSON as JSON text, numbers printed.
fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Json(j) => j.as_str().to_owned(),
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}

/// A token count: a non-negative integer, or text or a float holding one.
fn count(v: &Value) -> Option<i64> {
    match v {
        Value::I64(n) => (*n >= 0).then_some(*n),
        Value::U64(n) => i64::try_from(*n).ok(),
        Value::F64(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 9e15 => Some(*f as i64),
        Value::Str(s) => s.trim().parse().ok().filter(|n| *n >= 0),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::F64(f) => f.is_finite().then_some(*f),
        Value::I64(n) => Some(*n as f64),
        Value::U64(n) => Some(*n as f64),
        Value::Str(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        _ => None,
    }
}

/// What failed: `error.type`, an exception's type or message, or an `error` field.
fn error_of(r: &Record) -> Option<String> {
    ["error.type", "exception.type", "exception.message", "error"]
        .iter()
        .find_map(|k| r.fields.get(k))
        .map(text)
        .filter(|e| !e.is_empty() && e != "false")
}

/// Writes the call row of `r` (stored as `seq`) if it ends an LLM or tool call, and
/// adds it to `totals` (its run's, when it has one).
pub(super) fn record_call(
    tx: &Transaction<'_>,
    seq: i64,
    r: &Record,
    prices: &PriceTable,
    totals: Option<&mut CallTotals>,
) -> Result<(), StoreError> {
    if r.kind != Kind::SpanEnd {
        return Ok(());
    }
    let category = r.category.as_deref();
    let is_llm = category == Some(CATEGORY_LLM_CALL);
    if !is_llm && category != Some(CATEGORY_TOOL_CALL) {
        return Ok(());
    }
    let f = |k: &str| r.fields.get(k);
    let s = |k: &str| f(k).map(text);
    let end = r.ts.as_nanos();
    let duration = r.duration_ns.map(|d| i64::try_from(d).unwrap_or(i64::MAX));
    let start = end.saturating_sub(duration.unwrap_or(0));
    let status = if r.status == Some(Status::Error) {
        "error"
    } else {
        "ok"
    };
    // The columns both tables start with.
    let text_or_null = |v: Option<&str>| v.map_or(SqlValue::Null, |v| SqlValue::Text(v.to_owned()));
    let blob = |v: Option<&[u8]>| v.map_or(SqlValue::Null, |v| SqlValue::Blob(v.to_vec()));
    let mut values = vec![
        SqlValue::Integer(seq),
        SqlValue::Integer(start),
        SqlValue::Integer(end),
        text_or_null(r.scope.get(ScopeKey::RunId)),
        SqlValue::Blob(r.trace_id.0.to_vec()),
        blob(r.span_id.as_ref().map(|i| &i.0[..])),
        blob(r.parent_span_id.as_ref().map(|i| &i.0[..])),
        text_or_null(r.scope.get(ScopeKey::Tenant)),
        text_or_null(r.scope.get(ScopeKey::UserId)),
        text_or_null(r.scope.get(ScopeKey::App)),
        SqlValue::Text(r.resource.service.to_string()),
    ];
    let opt_text = |v: Option<String>| v.map_or(SqlValue::Null, SqlValue::Text);
    let opt_int = |v: Option<i64>| v.map_or(SqlValue::Null, SqlValue::Integer);
    let opt_real = |v: Option<f64>| v.map_or(SqlValue::Null, SqlValue::Real);
    if !is_llm {
        values.extend([
            opt_text(s(genai::TOOL_NAME).or_else(|| Some(r.name.to_string()))),
            opt_text(s(genai::TOOL_CALL_ID)),
            opt_text(s(genai::TOOL_CALL_ARGUMENTS)),
            opt_text(s(genai::TOOL_CALL_RESULT)),
            opt_int(duration),
            SqlValue::Text(status.into()),
            opt_text(error_of(r)),
        ]);
        tx.prepare_cached(
            "INSERT OR REPLACE INTO tool_calls (seq, ts, end_ts, run_id, trace_id, span_id,
                parent_span_id, tenant, user_id, app, service, tool_name, call_id, arguments,
                result, duration_ns, status, error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
        )?
        .execute(params_from_iter(values))?;
        if let Some(t) = totals {
            t.tool_calls += 1;
        }
        return Ok(());
    }
    let provider = s(genai::PROVIDER_NAME).or_else(|| s(genai::SYSTEM));
    let request_model = s(genai::REQUEST_MODEL);
    let response_model = s(genai::RESPONSE_MODEL);
    let model = response_model.clone().or_else(|| request_model.clone());
    let input = f(genai::USAGE_INPUT_TOKENS).and_then(count);
    let output = f(genai::USAGE_OUTPUT_TOKENS).and_then(count);
    let cache_read = f(genai::USAGE_CACHE_READ_INPUT_TOKENS).and_then(count);
    let cost = compute(
        prices,
        provider.as_deref(),
        model.as_deref(),
        Timestamp(start),
        input,
        output,
        cache_read,
    );
    let provider_cost = f(genai::USAGE_COST).and_then(float);
    values.extend([
        opt_text(s(genai::OPERATION_NAME)),
        opt_text(provider),
        opt_text(request_model),
        opt_text(response_model),
        opt_text(model.clone()),
        opt_text(s(genai::AGENT_NAME).or_else(|| s(openinference::AGENT_NAME))),
        opt_text(s(genai::INPUT_MESSAGES)),
        opt_text(s(genai::OUTPUT_MESSAGES)),
        opt_text(s(genai::RESPONSE_FINISH_REASONS)),
        opt_int(input),
        opt_int(output),
        opt_int(cache_read),
        opt_real(cost),
        opt_real(provider_cost),
        opt_int(duration),
        SqlValue::Text(status.into()),
        opt_text(error_of(r)),
    ]);
    tx.prepare_cached(
        "INSERT OR REPLACE INTO llm_calls (seq, ts, end_ts, run_id, trace_id, span_id,
            parent_span_id, tenant, user_id, app, service, operation, provider, request_model,
            response_model, model, agent, input_messages, output_messages, finish_reasons,
            input_tokens, output_tokens, cache_read_tokens, cost, provider_cost, duration_ns,
            status, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
    )?
    .execute(params_from_iter(values))?;
    if let Some(t) = totals {
        t.llm_calls += 1;
        t.input_tokens += input.unwrap_or(0);
        t.output_tokens += output.unwrap_or(0);
        t.cache_read_tokens += cache_read.unwrap_or(0);
        add(&mut t.cost, cost);
        add(&mut t.provider_cost, provider_cost);
        if let Some(m) = model {
            t.models.insert(m);
        }
    }
    Ok(())
}

/// The cost of one call, when its model has a price and it reported tokens.
fn compute(
    prices: &PriceTable,
    provider: Option<&str>,
    model: Option<&str>,
    at: Timestamp,
    input: Option<i64>,
    output: Option<i64>,
    cache_read: Option<i64>,
) -> Option<f64> {
    if input.is_none() && output.is_none() {
        return None;
    }
    let n = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
    prices.cost(
        provider,
        model?,
        at,
        &Usage {
            input_tokens: n(input),
            output_tokens: n(output),
            cache_read_tokens: n(cache_read),
        },
    )
}

/// Adds a batch's call totals to its run (the run's row exists: written just before).
pub(super) fn add_to_run(
    tx: &Transaction<'_>,
    run_id: &str,
    t: &CallTotals,
) -> Result<(), StoreError> {
    if t.llm_calls == 0 && t.tool_calls == 0 {
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE runs SET llm_calls = llm_calls + ?2, tool_calls = tool_calls + ?3,
            input_tokens = input_tokens + ?4, output_tokens = output_tokens + ?5,
            cache_read_tokens = cache_read_tokens + ?6,
            cost = CASE WHEN ?7 IS NULL THEN cost ELSE coalesce(cost, 0) + ?7 END,
            provider_cost = CASE WHEN ?8 IS NULL THEN provider_cost ELSE coalesce(provider_cost, 0) + ?8 END
         WHERE run_id = ?1",
    )?
    .execute(params![
        run_id,
        t.llm_calls,
        t.tool_calls,
        t.input_tokens,
        t.output_tokens,
        t.cache_read_tokens,
        t.cost,
        t.provider_cost
    ])?;
    let mut add_model = tx.prepare_cached(
        "UPDATE runs SET models = json_insert(coalesce(models, '[]'), '$[#]', ?2)
         WHERE run_id = ?1
           AND NOT EXISTS (SELECT 1 FROM json_each(coalesce(runs.models, '[]')) WHERE value = ?2)",
    )?;
    for m in &t.models {
        add_model.execute(params![run_id, m])?;
    }
    Ok(())
}

/// Recomputes a run's call columns from its calls (after a purge deleted some).
pub(super) const REFRESH_RUN: &str = "UPDATE runs SET
    llm_calls         = (SELECT count(*) FROM llm_calls c WHERE c.run_id = runs.run_id),
    input_tokens      = (SELECT coalesce(sum(input_tokens), 0) FROM llm_calls c WHERE c.run_id = runs.run_id),
    output_tokens     = (SELECT coalesce(sum(output_tokens), 0) FROM llm_calls c WHERE c.run_id = runs.run_id),
    cache_read_tokens = (SELECT coalesce(sum(cache_read_tokens), 0) FROM llm_calls c WHERE c.run_id = runs.run_id),
    cost              = (SELECT sum(cost) FROM llm_calls c WHERE c.run_id = runs.run_id),
    provider_cost     = (SELECT sum(provider_cost) FROM llm_calls c WHERE c.run_id = runs.run_id),
    models            = (SELECT json_group_array(model) FROM (SELECT DISTINCT model FROM llm_calls c
                          WHERE c.run_id = runs.run_id AND model IS NOT NULL) HAVING count(*) > 0),
    tool_calls        = (SELECT count(*) FROM tool_calls c WHERE c.run_id = runs.run_id)
 WHERE run_id = ?1";

/// Deletes the call row of record `seq`, if any; returns its run.
pub(super) fn forget(tx: &Transaction<'_>, seq: i64) -> Result<Option<String>, StoreError> {
    let mut run = None;
    for table in ["llm_calls", "tool_calls"] {
        let mut stmt = tx.prepare_cached(&format!(
            "DELETE FROM {table} WHERE seq = ?1 RETURNING run_id"
        ))?;
        let mut rows = stmt.query([seq])?;
        if let Some(row) = rows.next()? {
            run = row.get::<_, Option<String>>(0)?;
        }
    }
    Ok(run)
}

/// What the cost of a stored call depends on.
struct Priced {
    seq: i64,
    ts: i64,
    provider: Option<String>,
    model: Option<String>,
    /// Input, output and cache-read tokens.
    tokens: [Option<i64>; 3],
    cost: Option<f64>,
    run_id: Option<String>,
}

/// Computes every LLM call's cost again with `prices`, and the runs' totals. Returns
/// the calls whose cost changed.
pub(super) fn recompute(conn: &mut Connection, prices: &PriceTable) -> Result<u64, StoreError> {
    const BATCH: i64 = 5_000;
    let mut changed = 0u64;
    let mut after = i64::MIN;
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let rows: Vec<Priced> = tx
            .prepare_cached(
                "SELECT seq, ts, provider, model, input_tokens, output_tokens, cache_read_tokens,
                        cost, run_id
                   FROM llm_calls WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?
            .query_map(params![after, BATCH], |r| {
                Ok(Priced {
                    seq: r.get(0)?,
                    ts: r.get(1)?,
                    provider: r.get(2)?,
                    model: r.get(3)?,
                    tokens: [r.get(4)?, r.get(5)?, r.get(6)?],
                    cost: r.get(7)?,
                    run_id: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let Some(last) = rows.last() else {
            break;
        };
        after = last.seq;
        let mut runs = BTreeSet::new();
        {
            let mut update = tx.prepare_cached("UPDATE llm_calls SET cost = ?2 WHERE seq = ?1")?;
            for c in &rows {
                let [i, o, cached] = c.tokens;
                let new = compute(
                    prices,
                    c.provider.as_deref(),
                    c.model.as_deref(),
                    Timestamp(c.ts),
                    i,
                    o,
                    cached,
                );
                if new != c.cost {
                    update.execute(params![c.seq, new])?;
                    changed += 1;
                    runs.extend(c.run_id.clone());
                }
            }
        }
        let mut refresh = tx.prepare_cached(REFRESH_RUN)?;
        for run in &runs {
            refresh.execute([run])?;
        }
        drop(refresh);
        tx.commit()?;
    }
    Ok(changed)
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
    if let Some((ts, seq)) = f.before {
        terms.push("(ts < ? OR (ts = ? AND seq < ?))".into());
        params.extend([
            SqlValue::Integer(ts.as_nanos()),
            SqlValue::Integer(ts.as_nanos()),
            SqlValue::Integer(seq),
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
        "SELECT {key} AS k, count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
                coalesce(sum(cache_read_tokens), 0), sum(cost), sum(provider_cost),
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
