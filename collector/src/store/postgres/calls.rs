//! The LLM and tool call views in PostgreSQL: a row per finished call (what a call is:
//! `crate::views::call`), written with the span's end record and keyed by its seq; the
//! reads behind `logbook calls` and `logbook cost`; keeping runs' call totals right
//! after a purge; recomputing costs.

use std::collections::{BTreeSet, HashMap};

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Transaction};

use super::read::{p, saturate, Where};
use crate::query::Cursor;
use crate::store::{
    CallCommon, CallFilter, CostBy, CostGroup, LlmCall, PricedCall, SeriesPoint, StoreError,
    ToolCall,
};
use crate::views::call::CallRow;
use logbook_proto::Timestamp;

/// Writes a row over the one of the same seq, as a fresh row (`messages_from_events`
/// back to 0).
const INSERT_LLM: &str = "INSERT INTO llm_calls (seq, ts, end_ts, run_id, trace_id,
    span_id, parent_span_id, tenant, user_id, app, service, operation, provider, request_model,
    response_model, model, agent, input_messages, output_messages, finish_reasons, input_tokens,
    output_tokens, cache_read_tokens, cost, provider_cost, duration_ns, status, error)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
         $20, $21, $22, $23, $24, $25, $26, $27, $28)
 ON CONFLICT (seq) DO UPDATE SET ts = excluded.ts, end_ts = excluded.end_ts,
    run_id = excluded.run_id, trace_id = excluded.trace_id, span_id = excluded.span_id,
    parent_span_id = excluded.parent_span_id, tenant = excluded.tenant,
    user_id = excluded.user_id, app = excluded.app, service = excluded.service,
    operation = excluded.operation, provider = excluded.provider,
    request_model = excluded.request_model, response_model = excluded.response_model,
    model = excluded.model, agent = excluded.agent, input_messages = excluded.input_messages,
    output_messages = excluded.output_messages, finish_reasons = excluded.finish_reasons,
    input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
    cache_read_tokens = excluded.cache_read_tokens, cost = excluded.cost,
    provider_cost = excluded.provider_cost, duration_ns = excluded.duration_ns,
    status = excluded.status, error = excluded.error, messages_from_events = 0";

/// Writes a row over the one of the same seq.
const INSERT_TOOL: &str = "INSERT INTO tool_calls (seq, ts, end_ts, run_id, trace_id,
    span_id, parent_span_id, tenant, user_id, app, service, tool_name, call_id, arguments,
    result, duration_ns, status, error)
 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
 ON CONFLICT (seq) DO UPDATE SET ts = excluded.ts, end_ts = excluded.end_ts,
    run_id = excluded.run_id, trace_id = excluded.trace_id, span_id = excluded.span_id,
    parent_span_id = excluded.parent_span_id, tenant = excluded.tenant,
    user_id = excluded.user_id, app = excluded.app, service = excluded.service,
    tool_name = excluded.tool_name, call_id = excluded.call_id, arguments = excluded.arguments,
    result = excluded.result, duration_ns = excluded.duration_ns, status = excluded.status,
    error = excluded.error";

/// Writes the row of `call`, ended by the record stored as `seq`.
/// The call inserts of one transaction, each prepared once: a statement given as text
/// costs a round trip to prepare at every use.
#[derive(Default)]
pub(super) struct Inserts {
    tool: Option<postgres::Statement>,
    llm: Option<postgres::Statement>,
}

impl Inserts {
    fn get(
        slot: &mut Option<postgres::Statement>,
        tx: &mut Transaction<'_>,
        sql: &str,
    ) -> Result<postgres::Statement, StoreError> {
        if slot.is_none() {
            *slot = Some(tx.prepare(sql)?);
        }
        Ok(slot
            .clone()
            .unwrap_or_else(|| unreachable!("prepared above")))
    }
}

pub(super) fn insert(
    tx: &mut Transaction<'_>,
    inserts: &mut Inserts,
    seq: i64,
    call: &CallRow<'_>,
) -> Result<(), StoreError> {
    let int = |v: Option<u64>| v.map(saturate);
    let b = call.base();
    let run = b.run.as_ref().map(|k| k.text().into_owned());
    let trace = &b.trace_id.0[..];
    let span = b.span_id.as_ref().map(|i| &i.0[..]);
    let parent = b.parent_span_id.as_ref().map(|i| &i.0[..]);
    // The columns both tables start with, then those both end with.
    let head: [&(dyn ToSql + Sync); 11] = [
        &seq, &b.started, &b.ended, &run, &trace, &span, &parent, &b.tenant, &b.user_id, &b.app,
        &b.service,
    ];
    let tail: [&(dyn ToSql + Sync); 3] = [&b.duration_ns, &b.status, &b.error];
    match call {
        CallRow::Tool(c) => {
            let own: [&(dyn ToSql + Sync); 4] = [&c.tool_name, &c.call_id, &c.arguments, &c.result];
            let values: Vec<&(dyn ToSql + Sync)> =
                head.into_iter().chain(own).chain(tail).collect();
            let stmt = Inserts::get(&mut inserts.tool, tx, INSERT_TOOL)?;
            tx.execute(&stmt, &values)?;
        }
        CallRow::Llm(c) => {
            let tokens = [
                int(c.input_tokens),
                int(c.output_tokens),
                int(c.cache_read_tokens),
            ];
            let own: [&(dyn ToSql + Sync); 14] = [
                &c.operation,
                &c.provider,
                &c.request_model,
                &c.response_model,
                &c.model,
                &c.agent,
                &c.input_messages,
                &c.output_messages,
                &c.finish_reasons,
                &tokens[0],
                &tokens[1],
                &tokens[2],
                &c.cost,
                &c.provider_cost,
            ];
            let values: Vec<&(dyn ToSql + Sync)> =
                head.into_iter().chain(own).chain(tail).collect();
            let stmt = Inserts::get(&mut inserts.llm, tx, INSERT_LLM)?;
            tx.execute(&stmt, &values)?;
        }
    }
    Ok(())
}

/// How far from its call's start and end a GenAI event of the call is looked for: a
/// bound that lets the database skip the days' partitions that cannot hold it.
const EVENT_MARGIN_NS: i64 = 86_400_000_000_000;

/// Folds the GenAI events of the spans `pairs` into their LLM calls' messages, for
/// every span of a batch at once (three statements, whatever the number of spans): the
/// calls, the events of those that may take messages, the updates.
pub(super) fn fold_event_messages(
    tx: &mut Transaction<'_>,
    pairs: &BTreeSet<([u8; 16], [u8; 8])>,
) -> Result<(), StoreError> {
    if pairs.is_empty() {
        return Ok(());
    }
    let traces: Vec<&[u8]> = pairs.iter().map(|(t, _)| &t[..]).collect();
    let spans: Vec<&[u8]> = pairs.iter().map(|(_, s)| &s[..]).collect();
    // Each span's first call, and what events may set on it: a message the attributes
    // did not give, or one they set.
    struct Call {
        seq: i64,
        from_events: i32,
        take_input: bool,
        take_output: bool,
    }
    let mut calls: HashMap<(Vec<u8>, Vec<u8>), Call> = HashMap::new();
    let (mut lo, mut hi) = (Vec::new(), Vec::new());
    let (mut want_traces, mut want_spans) = (Vec::new(), Vec::new());
    for row in tx.query(
        "SELECT DISTINCT ON (c.trace_id, c.span_id) c.trace_id, c.span_id, c.seq,
                c.input_messages IS NULL, c.output_messages IS NULL, c.messages_from_events,
                c.ts, c.end_ts
           FROM unnest($1::bytea[], $2::bytea[]) AS k(t, s)
           JOIN llm_calls c ON c.trace_id = k.t AND c.span_id = k.s
          ORDER BY c.trace_id, c.span_id, c.seq",
        &[&traces, &spans],
    )? {
        let from_events: i32 = row.try_get(5)?;
        let call = Call {
            seq: row.try_get(2)?,
            from_events,
            take_input: row.try_get::<_, bool>(3)? || from_events & 1 != 0,
            take_output: row.try_get::<_, bool>(4)? || from_events & 2 != 0,
        };
        if !(call.take_input || call.take_output) {
            continue;
        }
        let (trace, span): (Vec<u8>, Vec<u8>) = (row.try_get(0)?, row.try_get(1)?);
        lo.push(row.try_get::<_, i64>(6)?.saturating_sub(EVENT_MARGIN_NS));
        hi.push(row.try_get::<_, i64>(7)?.saturating_add(EVENT_MARGIN_NS));
        want_traces.push(trace.clone());
        want_spans.push(span.clone());
        calls.insert((trace, span), call);
    }
    if calls.is_empty() {
        return Ok(());
    }
    // Each span's events, `(name, attributes)`, in their order.
    type Events = Vec<(String, serde_json::Value)>;
    let mut events: HashMap<(Vec<u8>, Vec<u8>), Events> = HashMap::new();
    for row in tx.query(
        "SELECT r.trace_id, r.span_id, r.name, r.fields::text
           FROM unnest($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[]) AS k(t, s, lo, hi)
           JOIN records r ON r.trace_id = k.t AND r.span_id = k.s
                         AND r.ts >= k.lo AND r.ts <= k.hi
          WHERE r.kind = 1 AND substr(r.name, 1, 7) = 'gen_ai.'
          ORDER BY r.trace_id, r.span_id, r.ts, r.seq",
        &[&want_traces, &want_spans, &lo, &hi],
    )? {
        let fields: Option<String> = row.try_get(3)?;
        events
            .entry((row.try_get(0)?, row.try_get(1)?))
            .or_default()
            .push((
                row.try_get(2)?,
                fields
                    .and_then(|f| serde_json::from_str(&f).ok())
                    .unwrap_or(serde_json::Value::Null),
            ));
    }
    let text = |v: Option<logbook_proto::Value>| match v {
        Some(logbook_proto::Value::Json(j)) => Some(j.as_str().to_owned()),
        Some(logbook_proto::Value::Str(s)) => Some(s),
        _ => None,
    };
    let (mut seqs, mut inputs, mut outputs, mut flags) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (key, evs) in events {
        let Some(call) = calls.get(&key) else {
            continue;
        };
        let (names, values): (Vec<String>, Vec<serde_json::Value>) = evs.into_iter().unzip();
        let (input, output) =
            crate::views::call::messages_from_events(names.iter().map(String::as_str).zip(values));
        let input = text(input).filter(|_| call.take_input);
        let output = text(output).filter(|_| call.take_output);
        if input.is_none() && output.is_none() {
            continue;
        }
        flags.push(
            call.from_events | i32::from(input.is_some()) | (i32::from(output.is_some()) << 1),
        );
        seqs.push(call.seq);
        inputs.push(input);
        outputs.push(output);
    }
    if !seqs.is_empty() {
        tx.execute(
            "UPDATE llm_calls c SET
                input_messages = coalesce(u.input, c.input_messages),
                output_messages = coalesce(u.output, c.output_messages),
                messages_from_events = u.flags
               FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[])
                    AS u(seq, input, output, flags)
              WHERE c.seq = u.seq",
            &[&seqs, &inputs, &outputs, &flags],
        )?;
    }
    Ok(())
}

/// `e` (a `numeric` or `bigint`) as a `bigint`, saturating at its bounds.
fn saturating(e: &str) -> String {
    format!("LEAST(GREATEST({e}, -9223372036854775808), 9223372036854775807)::bigint")
}

/// The cost in column `col` (USD) in whole nano-dollars, as a `numeric`, exactly as
/// `crate::views::call::nano_usd` gives it at ingest: rounded half away from zero,
/// saturating at the `bigint` bounds, 0 when not finite. Costs past the bounds are
/// caught before scaling (PostgreSQL fails on a `float8` overflow rather than giving
/// infinity).
fn nano_usd(col: &str) -> String {
    let x = format!("({col} * 1e9::float8)");
    let r =
        format!("(trunc({x}) + CASE WHEN abs({x} - trunc({x})) >= 0.5 THEN sign({x}) ELSE 0 END)");
    format!(
        "CASE WHEN {col} IN ('NaN'::float8, 'Infinity'::float8, '-Infinity'::float8) THEN 0::numeric
              WHEN {col} >= 1e10::float8 THEN 9223372036854775807::numeric
              WHEN {col} <= -1e10::float8 THEN -9223372036854775808::numeric
              WHEN {r} >= 9223372036854775807::float8 THEN 9223372036854775807::numeric
              WHEN {r} <= -9223372036854775808::float8 THEN -9223372036854775808::numeric
              ELSE {r}::bigint::numeric END"
    )
}

/// A run's call columns, recomputed from its calls (after a purge deleted some, or a
/// cost changed). Costs add up in whole nano-dollars, as at ingest; sums are taken
/// exactly (`numeric`) and cast back, saturating, as at ingest. Models are listed in
/// byte order (`COLLATE "C"`), as at ingest.
fn call_totals() -> String {
    let of = "FROM llm_calls c WHERE c.run_id = runs.run_id";
    let tokens = |col: &str| {
        format!(
            "(SELECT {} {of})",
            saturating(&format!("coalesce(sum({col}), 0)"))
        )
    };
    let nusd = |col: &str| {
        format!(
            "(SELECT CASE WHEN count(n) > 0 THEN {} END FROM (SELECT {} AS n {of}) n)",
            saturating("sum(n)"),
            nano_usd(col)
        )
    };
    format!(
        "llm_calls          = (SELECT count(*) {of}),
         input_tokens       = {},
         output_tokens      = {},
         cache_read_tokens  = {},
         cost_nusd          = {},
         provider_cost_nusd = {},
         models             = (SELECT jsonb_agg(model ORDER BY model COLLATE \"C\")
                                 FROM (SELECT DISTINCT model {of} AND model IS NOT NULL) m),
         tool_calls         = (SELECT count(*) FROM tool_calls c WHERE c.run_id = runs.run_id)",
        tokens("input_tokens"),
        tokens("output_tokens"),
        tokens("cache_read_tokens"),
        nusd("cost"),
        nusd("provider_cost"),
    )
}

/// Recomputes the call columns of run `run`.
pub(super) fn refresh_run(c: &mut impl GenericClient, run: &str) -> Result<(), StoreError> {
    c.execute(
        &format!("UPDATE runs SET {} WHERE run_id = $1::text", call_totals()),
        &[&run],
    )?;
    Ok(())
}

/// Deletes the call row of record `seq`, if any; returns its run's key.
pub(super) fn forget(tx: &mut Transaction<'_>, seq: i64) -> Result<Option<String>, StoreError> {
    let mut run = None;
    for sql in [
        "DELETE FROM llm_calls WHERE seq = $1::bigint RETURNING run_id",
        "DELETE FROM tool_calls WHERE seq = $1::bigint RETURNING run_id",
    ] {
        if let Some(row) = tx.query(sql, &[&seq])?.first() {
            run = row.try_get::<_, Option<String>>(0)?;
        }
    }
    Ok(run)
}

/// LLM calls with seq above `after`: what their cost depends on.
pub(super) fn priced(
    c: &mut Client,
    after: i64,
    limit: usize,
) -> Result<Vec<PricedCall>, StoreError> {
    let tokens = |v: Option<i64>| v.map(|n| n.max(0) as u64);
    c.query(
        "SELECT seq, ts, provider, model, input_tokens, output_tokens, cache_read_tokens, cost
           FROM llm_calls WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint",
        &[&after, &saturate(limit as u64)],
    )?
    .iter()
    .map(|r| {
        Ok(PricedCall {
            seq: r.try_get(0)?,
            started: Timestamp(r.try_get(1)?),
            provider: r.try_get(2)?,
            model: r.try_get(3)?,
            tokens: [
                tokens(r.try_get(4)?),
                tokens(r.try_get(5)?),
                tokens(r.try_get(6)?),
            ],
            cost: r.try_get(7)?,
        })
    })
    .collect()
}

/// Sets these calls' costs and their runs' totals, in one transaction, holding the
/// writers' lock ([`super::WRITE_LOCK`]) so that no commit adds to those runs between
/// the recount and its own.
pub(super) fn set_costs(c: &mut Client, costs: &[(i64, Option<f64>)]) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1::bigint)",
        &[&super::WRITE_LOCK],
    )?;
    let update = tx.prepare(
        "UPDATE llm_calls SET cost = $2::float8 WHERE seq = $1::bigint RETURNING run_id",
    )?;
    let mut runs = BTreeSet::new();
    for (seq, cost) in costs {
        if let Some(row) = tx
            .query(&update, &[seq as &(dyn ToSql + Sync), cost])?
            .first()
        {
            runs.extend(row.try_get::<_, Option<String>>(0)?);
        }
    }
    for run in &runs {
        refresh_run(&mut tx, run)?;
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

fn unsigned(row: &Row, i: usize) -> Result<Option<u64>, postgres::Error> {
    Ok(row.try_get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
}

/// The columns both kinds of call share, in the same places.
fn common(row: &Row) -> Result<CallCommon, postgres::Error> {
    Ok(CallCommon {
        seq: row.try_get(0)?,
        started: Timestamp(row.try_get(1)?),
        ended: Timestamp(row.try_get(2)?),
        run_id: row.try_get(3)?,
        trace_id: hex::<16>(row.try_get(4)?).unwrap_or_default(),
        span_id: hex::<8>(row.try_get(5)?),
        parent_span_id: hex::<8>(row.try_get(6)?),
        tenant: row.try_get(7)?,
        user_id: row.try_get(8)?,
        app: row.try_get(9)?,
        service: row.try_get(10)?,
        duration_ns: None,
        status: String::new(),
        error: None,
    })
}

fn llm_from_row(row: &Row) -> Result<LlmCall, postgres::Error> {
    let mut call = common(row)?;
    call.duration_ns = unsigned(row, 23)?;
    call.status = row.try_get(24)?;
    call.error = row.try_get(25)?;
    Ok(LlmCall {
        call,
        operation: row.try_get(11)?,
        provider: row.try_get(12)?,
        model: row.try_get(13)?,
        agent: row.try_get(14)?,
        input_messages: json_or_text(row.try_get(15)?),
        output_messages: json_or_text(row.try_get(16)?),
        finish_reasons: json_or_text(row.try_get(17)?),
        input_tokens: unsigned(row, 18)?,
        output_tokens: unsigned(row, 19)?,
        cache_read_tokens: unsigned(row, 20)?,
        cost: row.try_get(21)?,
        provider_cost: row.try_get(22)?,
    })
}

fn tool_from_row(row: &Row) -> Result<ToolCall, postgres::Error> {
    let mut call = common(row)?;
    call.duration_ns = unsigned(row, 15)?;
    call.status = row.try_get(16)?;
    call.error = row.try_get(17)?;
    Ok(ToolCall {
        call,
        tool_name: row.try_get(11)?,
        call_id: row.try_get(12)?,
        arguments: json_or_text(row.try_get(13)?),
        result: json_or_text(row.try_get(14)?),
    })
}

/// The WHERE clause of a call filter.
fn conditions(f: &CallFilter, name_col: &str) -> Where {
    let mut w = Where::default();
    if let Some(t) = f.since {
        w.push("ts >= ?", vec![p(t.as_nanos())]);
    }
    if let Some(t) = f.until {
        w.push("ts < ?", vec![p(t.as_nanos())]);
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
            w.push(&format!("{col} = ?"), vec![p(v.clone())]);
        }
    }
    if let Some(Cursor { ts, seq }) = f.before {
        w.push(
            "(ts < ? OR (ts = ? AND seq < ?))",
            vec![p(ts.as_nanos()), p(ts.as_nanos()), p(saturate(seq))],
        );
    }
    w
}

/// LLM calls, newest first, keyset on (ts, seq); `f.name` is the model.
pub(super) fn llm_calls(c: &mut Client, f: &CallFilter) -> Result<Vec<LlmCall>, StoreError> {
    let w = conditions(f, "model");
    let sql = format!(
        "SELECT {LLM_COLUMNS} FROM llm_calls{} ORDER BY ts DESC, seq DESC LIMIT {}",
        w.sql(),
        f.limit
    );
    Ok(c.query(&sql, &w.refs())?
        .iter()
        .map(llm_from_row)
        .collect::<Result<_, _>>()?)
}

/// Tool calls, newest first, keyset on (ts, seq); `f.name` is the tool.
pub(super) fn tool_calls(c: &mut Client, f: &CallFilter) -> Result<Vec<ToolCall>, StoreError> {
    let w = conditions(f, "tool_name");
    let sql = format!(
        "SELECT {TOOL_COLUMNS} FROM tool_calls{} ORDER BY ts DESC, seq DESC LIMIT {}",
        w.sql(),
        f.limit
    );
    Ok(c.query(&sql, &w.refs())?
        .iter()
        .map(tool_from_row)
        .collect::<Result<_, _>>()?)
}

/// LLM calls per bucket from `f.since`: `[calls, input tokens, output tokens, cost,
/// p50 ms, p95 ms]`; the percentiles nearest-rank over the bucket's durations.
pub(super) fn call_series(
    c: &mut Client,
    f: &CallFilter,
    bucket_ns: i64,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let since = f.since.map_or(0, |t| t.as_nanos());
    let bucket_ns = bucket_ns.max(1);
    let w = conditions(f, "model");
    // Within a bucket, by seq: costs add up in the same order every time.
    let sql = format!(
        "SELECT (ts - ({since}::bigint)) / {bucket_ns}::bigint AS b, duration_ns, input_tokens,
                output_tokens, cost
           FROM llm_calls{} ORDER BY b, seq",
        w.sql()
    );
    let rows = c.query(&sql, &w.refs())?;
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
    for row in &rows {
        let b: i64 = row.try_get(0)?;
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
        if let Some(d) = row.try_get::<_, Option<i64>>(1)? {
            durations.push(d);
        }
        p.values[1] += row.try_get::<_, Option<i64>>(2)?.unwrap_or(0) as f64;
        p.values[2] += row.try_get::<_, Option<i64>>(3)?.unwrap_or(0) as f64;
        p.values[3] += row.try_get::<_, Option<f64>>(4)?.unwrap_or(0.0);
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
    c: &mut Client,
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
        return bys.iter().map(|by| cost(c, *by, f)).collect();
    }
    let w = conditions(f, "model");
    // By seq: costs add up in the same order every time.
    let sql = format!(
        "SELECT model, provider, user_id, tenant, app, run_id, input_tokens, output_tokens,
                cache_read_tokens, cost, provider_cost FROM llm_calls{} ORDER BY seq",
        w.sql()
    );
    let mut groups: Vec<HashMap<String, CostGroup>> = bys.iter().map(|_| HashMap::new()).collect();
    for row in &c.query(&sql, &w.refs())? {
        let keys: [Option<String>; 6] = [
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get(4)?,
            row.try_get(5)?,
        ];
        let tokens = |i: usize| -> Result<Option<i64>, postgres::Error> { row.try_get(i) };
        let (input, output, cache) = (tokens(6)?, tokens(7)?, tokens(8)?);
        let (cost, provider): (Option<f64>, Option<f64>) = (row.try_get(9)?, row.try_get(10)?);
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

/// LLM calls grouped by `by`: counts, tokens, computed and reported cost. Keys are
/// ordered byte by byte (`COLLATE "C"`), as SQLite orders them; days are UTC.
pub(super) fn cost(
    c: &mut Client,
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
        CostBy::Day => "to_char(to_timestamp(ts / 1000000000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
        CostBy::All => "text 'all'",
    };
    let w = conditions(f, "model");
    let sql = format!(
        "SELECT ({key}) COLLATE \"C\" AS k, count(*), {}, {}, {},
                sum(cost), sum(provider_cost),
                count(*) FILTER (WHERE cost IS NULL
                                   AND (input_tokens IS NOT NULL OR output_tokens IS NOT NULL))
           FROM llm_calls{} GROUP BY k ORDER BY {} LIMIT {}",
        saturating("coalesce(sum(input_tokens), 0)"),
        saturating("coalesce(sum(output_tokens), 0)"),
        saturating("coalesce(sum(cache_read_tokens), 0)"),
        w.sql(),
        if by == CostBy::Day {
            "k DESC"
        } else {
            "coalesce(sum(cost), 0) DESC, k"
        },
        f.limit
    );
    c.query(&sql, &w.refs())?
        .iter()
        .map(|r| {
            let n =
                |i| -> Result<u64, postgres::Error> { Ok(r.try_get::<_, i64>(i)?.max(0) as u64) };
            Ok(CostGroup {
                key: r.try_get(0)?,
                calls: n(1)?,
                input_tokens: n(2)?,
                output_tokens: n(3)?,
                cache_read_tokens: n(4)?,
                cost: r.try_get(5)?,
                provider_cost: r.try_get(6)?,
                unpriced_calls: n(7)?,
            })
        })
        .collect()
}
