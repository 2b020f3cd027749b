//! The write path: one transaction per group commit under the writers' lock; records
//! staged with binary `COPY`, inserted once by id; the call and run views, the
//! counters and the audit chain kept current in the same transaction.

use std::collections::HashSet;

use logbook_proto::{Record, ScopeKey, Status, Timestamp};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, GenericClient, Transaction};

use super::read::saturate;
use super::{audit, calls, WRITE_LOCK};
use crate::audit::{record_digest, AuditRules, ChainFormat, StorageClass};
use crate::cost::PriceTable;
use crate::store::latency::{Histogram, PendingLatency};
use crate::store::{Batch, StoreError, Stored, StreamCursor, Written};
use crate::views::call::CallRow;
use crate::views::run::{RunDelta, STATUS_RUNNING};

/// What the write path needs besides the batch.
pub(super) struct Context<'a> {
    pub(super) rules: &'a AuditRules,
    pub(super) key: &'a [u8; 32],
    /// Prices, for the cost of LLM calls.
    pub(super) prices: &'a PriceTable,
}

/// What one write did.
pub(super) struct Outcome {
    pub(super) written: Written,
    /// Audit records appended to the chain.
    pub(super) chained: u64,
}

/// The staging table's columns, in the order rows are copied in: every column of
/// `records` but the generated text vector, with `fields` as text.
const STAGED: &str = "seq, id, ts, kind, level, name, target, message, trace_id, span_id, \
    parent_span_id, run_id, step_id, tenant, env, project, app, surface, user_id, session_id, \
    request_id, service, host, pid, file, line, category, status, duration_ns, busy_ns, idle_ns, \
    fields, class, origin";

/// Their types, for binary `COPY`.
const STAGED_TYPES: [Type; 34] = [
    Type::INT8,
    Type::BYTEA,
    Type::INT8,
    Type::INT2,
    Type::INT2,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::BYTEA,
    Type::BYTEA,
    Type::BYTEA,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT8,
    Type::TEXT,
    Type::INT2,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::JSONB,
    Type::INT2,
    Type::TEXT,
];

/// The staging table, one per connection, emptied at each commit.
const CREATE_STAGING: &str = "CREATE TEMP TABLE IF NOT EXISTS logbook_staging (
    seq bigint, id bytea, ts bigint, kind smallint, level smallint, name text, target text,
    message text, trace_id bytea, span_id bytea, parent_span_id bytea, run_id text,
    step_id text, tenant text, env text, project text, app text, surface text, user_id text,
    session_id text, request_id text, service text, host text, pid bigint, file text,
    line bigint, category text, status smallint, duration_ns bigint, busy_ns bigint,
    idle_ns bigint, fields jsonb, class smallint, origin text
) ON COMMIT DELETE ROWS";

/// JSON text sent as `jsonb` in binary form: a version byte, then the text (which the
/// server parses once, as it would the text form).
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use bytes::BufMut as _;
        out.put_u8(1);
        out.put_slice(self.0.as_bytes());
        Ok(postgres::types::IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }

    postgres::types::to_sql_checked!();
}

/// The stored code of a storage class.
pub(super) fn class_code(class: StorageClass) -> i16 {
    match class {
        StorageClass::Ops => 0,
        StorageClass::Audit => 1,
    }
}

/// Hands out `n` sequence numbers under the writers' lock: the first of them.
fn reserve_seqs(tx: &mut Transaction<'_>, n: usize) -> Result<i64, StoreError> {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let last: i64 = tx
        .query_one(
            "SELECT setval('records_seq', nextval('records_seq') + $1 - 1)",
            &[&n],
        )?
        .get(0);
    Ok(last - n + 1)
}

/// Copies `records` into the staging table as `first..`, with their fields' JSON and
/// storage classes.
fn stage(
    tx: &mut Transaction<'_>,
    records: &[Record],
    first: i64,
    classes: &[StorageClass],
) -> Result<(), StoreError> {
    tx.batch_execute(CREATE_STAGING)?;
    raw::copy(tx, "logbook_staging", records, first, classes)
}

/// Binding records for binary `COPY`: shared with the ingest benchmark, so that its
/// plain loop copies exactly the columns the store does.
pub mod raw {
    use super::*;

    /// Copies `records` into `table` (with the records table's columns) as sequence
    /// numbers `first..`, in `classes`.
    pub fn copy(
        tx: &mut Transaction<'_>,
        table: &str,
        records: &[Record],
        first: i64,
        classes: &[StorageClass],
    ) -> Result<(), StoreError> {
        let sink = tx.copy_in(&format!(
            "COPY {table} ({STAGED}) FROM STDIN (FORMAT binary)"
        ))?;
        let mut w = BinaryCopyInWriter::new(sink, &STAGED_TYPES);
        let mut fields_json = Vec::with_capacity(512);
        for (i, r) in records.iter().enumerate() {
            fields_json.clear();
            // Serializing our own Fields cannot fail, and yields UTF-8.
            let _ = serde_json::to_writer(&mut fields_json, &r.fields);
            let fields = std::str::from_utf8(&fields_json).unwrap_or("{}");
            let s = &r.scope;
            let seq = first + i as i64;
            let kind = i16::from(r.kind.code());
            let level = i16::from(r.level.code());
            let pid = i64::from(r.resource.pid);
            let line = r.line.map(i64::from);
            let status = r.status.map(|s| i16::from(Status::code(s)));
            let duration = r.duration_ns.map(saturate);
            let busy = r.busy_ns.map(saturate);
            let idle = r.idle_ns.map(saturate);
            let class = class_code(classes[i]);
            let origin = r.origin.as_ref().map(|o| o.to_json());
            let span = r.span_id.map(|s| s.0.to_vec());
            let parent = r.parent_span_id.map(|s| s.0.to_vec());
            let row: [&(dyn ToSql + Sync); 34] = [
                &seq,
                &&r.id.0[..],
                &r.ts.as_nanos(),
                &kind,
                &level,
                &r.name.as_ref(),
                &r.target.as_ref(),
                &r.message.as_deref(),
                &&r.trace_id.0[..],
                &span,
                &parent,
                &s.get(ScopeKey::RunId),
                &s.get(ScopeKey::StepId),
                &s.get(ScopeKey::Tenant),
                &s.get(ScopeKey::Env),
                &s.get(ScopeKey::Project),
                &s.get(ScopeKey::App),
                &s.get(ScopeKey::Surface),
                &s.get(ScopeKey::UserId),
                &s.get(ScopeKey::SessionId),
                &s.get(ScopeKey::RequestId),
                &r.resource.service.as_str(),
                &r.resource.host.as_str(),
                &pid,
                &r.file.as_deref(),
                &line,
                &r.category.as_deref(),
                &status,
                &duration,
                &busy,
                &idle,
                &Jsonb(fields),
                &class,
                &origin,
            ];
            w.write(&row)?;
        }
        w.finish()?;
        Ok(())
    }
}

/// Merges a run delta into its row (see `crate::views::run`: every column merges
/// commutatively, in the database: concurrent collectors' deltas of one run add up).
/// `LEAST` and `GREATEST` ignore NULLs, as the merge wants; sums saturate.
const UPSERT_RUN: &str = "INSERT INTO runs AS r (
    run_id, kind, first_ts, last_ts, status, duration_ns, root_name, root_span_id, root_rank,
    root_trace, root_service, root_agent, trace_id, service, agent, tenant, env, project, app,
    user_id, session_id, record_count, error_count, span_count, llm_calls, tool_calls,
    input_tokens, output_tokens, cache_read_tokens, cost_nusd, provider_cost_nusd, models,
    tenant_max, user_max
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
          $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32::text::jsonb, $33, $34)
ON CONFLICT (run_id) DO UPDATE SET
    first_ts     = LEAST(r.first_ts, excluded.first_ts),
    last_ts      = GREATEST(r.last_ts, excluded.last_ts),
    status       = CASE WHEN (BETTER) THEN excluded.status
                        WHEN (SAME) THEN CASE WHEN 'error' IN (r.status, excluded.status) THEN 'error'
                                              WHEN 'ok' IN (r.status, excluded.status) THEN 'ok'
                                              ELSE 'running' END
                        ELSE r.status END,
    duration_ns  = CASE WHEN (BETTER) THEN excluded.duration_ns
                        WHEN (SAME) THEN GREATEST(r.duration_ns, excluded.duration_ns)
                        ELSE r.duration_ns END,
    root_name    = CASE WHEN (BETTER) THEN excluded.root_name
                        WHEN (SAME) THEN LEAST(r.root_name, excluded.root_name)
                        ELSE r.root_name END,
    root_trace   = CASE WHEN (BETTER) THEN excluded.root_trace
                        WHEN (SAME) THEN LEAST(r.root_trace, excluded.root_trace)
                        ELSE r.root_trace END,
    root_service = CASE WHEN (BETTER) THEN excluded.root_service
                        WHEN (SAME) THEN LEAST(r.root_service, excluded.root_service)
                        ELSE r.root_service END,
    root_agent   = CASE WHEN (BETTER) THEN excluded.root_agent
                        WHEN (SAME) THEN LEAST(r.root_agent, excluded.root_agent)
                        ELSE r.root_agent END,
    root_rank    = CASE WHEN (BETTER) THEN excluded.root_rank ELSE r.root_rank END,
    root_span_id = CASE WHEN (BETTER) THEN excluded.root_span_id ELSE r.root_span_id END,
    trace_id     = LEAST(r.trace_id, excluded.trace_id),
    service      = LEAST(r.service, excluded.service),
    agent        = LEAST(r.agent, excluded.agent),
    tenant       = LEAST(r.tenant, excluded.tenant),
    tenant_max   = GREATEST(r.tenant_max, excluded.tenant_max),
    env          = LEAST(r.env, excluded.env),
    project      = LEAST(r.project, excluded.project),
    app          = LEAST(r.app, excluded.app),
    user_id      = LEAST(r.user_id, excluded.user_id),
    user_max     = GREATEST(r.user_max, excluded.user_max),
    session_id   = LEAST(r.session_id, excluded.session_id),
    record_count = (SUM record_count),
    error_count  = (SUM error_count),
    span_count   = (SUM span_count),
    llm_calls    = (SUM llm_calls),
    tool_calls   = (SUM tool_calls),
    input_tokens = (SUM input_tokens),
    output_tokens = (SUM output_tokens),
    cache_read_tokens = (SUM cache_read_tokens),
    cost_nusd    = CASE WHEN excluded.cost_nusd IS NULL THEN r.cost_nusd
                        ELSE LEAST(coalesce(r.cost_nusd, 0)::numeric + excluded.cost_nusd,
                                   9223372036854775807)::bigint END,
    provider_cost_nusd = CASE WHEN excluded.provider_cost_nusd IS NULL THEN r.provider_cost_nusd
                        ELSE LEAST(coalesce(r.provider_cost_nusd, 0)::numeric + excluded.provider_cost_nusd,
                                   9223372036854775807)::bigint END,
    models       = CASE WHEN excluded.models IS NULL THEN r.models ELSE
                       (SELECT jsonb_agg(v ORDER BY v COLLATE \"C\") FROM
                          (SELECT jsonb_array_elements_text(coalesce(r.models, '[]'::jsonb)) AS v
                           UNION SELECT jsonb_array_elements_text(excluded.models)) s) END";

/// The stored root gives way to the delta's: the delta has a root, and the stored row
/// none, or one of lower rank, or of equal rank and higher span id.
const BETTER: &str = "excluded.root_span_id IS NOT NULL AND (r.root_span_id IS NULL
    OR excluded.root_rank > r.root_rank
    OR (excluded.root_rank = r.root_rank AND excluded.root_span_id < r.root_span_id))";
/// The delta holds another record of the stored root span.
const SAME: &str = "excluded.root_span_id = r.root_span_id AND excluded.root_rank = r.root_rank";

/// [`UPSERT_RUN`] written out.
fn upsert_run_sql() -> String {
    let mut sql = UPSERT_RUN
        .replace("(BETTER)", &format!("({BETTER})"))
        .replace("(SAME)", &format!("({SAME})"));
    while let Some(at) = sql.find("(SUM ") {
        let end = at + sql[at..].find(')').unwrap_or(0);
        let col = sql[at + "(SUM ".len()..end].to_owned();
        sql.replace_range(
            at..=end,
            &format!("LEAST(r.{col}::numeric + excluded.{col}, 9223372036854775807)::bigint"),
        );
    }
    sql
}

static UPSERT_RUN_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(upsert_run_sql);

fn upsert_run(
    tx: &mut Transaction<'_>,
    upsert: &postgres::Statement,
    d: &RunDelta<'_>,
) -> Result<(), StoreError> {
    let root = d.root.as_ref();
    let models = (!d.calls.models.is_empty())
        .then(|| serde_json::to_string(&d.calls.models).unwrap_or_default());
    let [tenant, env, project, app, user_id, session_id] = d.scope;
    let key = d.key.text();
    let kind = d.key.kind().as_str();
    let status = root.map_or(STATUS_RUNNING, |r| r.status_word());
    let duration = root.and_then(|r| r.duration_ns).map(saturate);
    let root_name = root.map(|r| r.name);
    let root_span = root.map(|r| r.span_id.0.to_vec());
    let rank = root.map_or(0i32, |r| i32::from(r.rank));
    let root_trace = root.map(|r| r.trace_id.0.to_vec());
    let root_service = root.map(|r| r.service);
    let root_agent = root.and_then(|r| r.agent);
    let trace = d.trace_id.0.to_vec();
    let n = |v: u64| saturate(v);
    let (records, errors, spans) = (n(d.records), n(d.errors), n(d.spans));
    let c = &d.calls;
    let (llm, tools, input, output, cache) = (
        n(c.llm_calls),
        n(c.tool_calls),
        n(c.input_tokens),
        n(c.output_tokens),
        n(c.cache_read_tokens),
    );
    tx.execute(
        upsert,
        &[
            &key.as_ref(),
            &kind,
            &d.first_ts,
            &d.last_ts,
            &status,
            &duration,
            &root_name,
            &root_span,
            &rank,
            &root_trace,
            &root_service,
            &root_agent,
            &trace,
            &d.service,
            &d.agent,
            &tenant,
            &env,
            &project,
            &app,
            &user_id,
            &session_id,
            &records,
            &errors,
            &spans,
            &llm,
            &tools,
            &input,
            &output,
            &cache,
            &c.cost_nusd,
            &c.provider_cost_nusd,
            &models,
            &d.scope_max[0],
            &d.scope_max[1],
        ],
    )?;
    Ok(())
}

/// Writes `batch` in one transaction.
pub(super) fn write(
    client: &mut Client,
    batch: &Batch<'_>,
    latency: &mut PendingLatency,
    cx: &Context<'_>,
) -> Result<Outcome, StoreError> {
    let Batch {
        records,
        drops,
        quarantined,
        redactions,
        limits,
        forwards,
    } = *batch;
    let mut tx = client.transaction()?;
    // Commits that hand out sequence numbers or extend the chain, one at a time across
    // the fleet: sequence order is commit order.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
    // Latencies measured after earlier commits ride along with this one.
    persist_latency(&mut tx, latency)?;
    let end: i64 = tx
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM records_seq",
            &[],
        )?
        .get(0);
    let from = StreamCursor::from_backend(u64::try_from(end).unwrap_or(0));
    let mut stored: Vec<Option<Stored>> = vec![None; records.len()];
    let mut to = from;
    let mut chained = 0u64;
    if !records.is_empty() {
        let classes: Vec<StorageClass> = records.iter().map(|r| cx.rules.class_of(r)).collect();
        let first = reserve_seqs(&mut tx, records.len())?;
        // The stream's end after this commit: past every number handed out, stored or
        // not (a duplicate's number is never used).
        let last = first + records.len() as i64 - 1;
        to = StreamCursor::from_backend(u64::try_from(last).unwrap_or(0));
        stage(&mut tx, records, first, &classes)?;
        let new: HashSet<i64> = tx
            .query(
                &format!(
                    "INSERT INTO records ({STAGED}) SELECT {STAGED} FROM logbook_staging ORDER BY seq
                     ON CONFLICT (id, class, ts) DO NOTHING RETURNING seq"
                ),
                &[],
            )?
            .iter()
            .map(|row| row.get::<_, i64>(0))
            .collect();
        let mut audit_rows = Vec::new();
        let mut views = crate::views::BatchViews::default();
        let mut inserts = calls::Inserts::default();
        for (i, r) in records.iter().enumerate() {
            let seq = first + i as i64;
            if !new.contains(&seq) {
                continue;
            }
            let position = u64::try_from(seq).unwrap_or(0);
            stored[i] = Some(Stored {
                seq: position,
                cursor: StreamCursor::from_backend(position),
            });
            if classes[i] == StorageClass::Audit {
                audit_rows.push((
                    seq,
                    record_digest(r, position, classes[i], ChainFormat::CURRENT)
                        .unwrap_or_default(),
                ));
            }
            let call = CallRow::of(r, cx.prices);
            if let Some(c) = &call {
                calls::insert(&mut tx, &mut inserts, seq, c)?;
            }
            views.add(r, call.as_ref());
        }
        calls::fold_event_messages(&mut tx, &views.fold)?;
        // In key order: concurrent transactions lock run rows in one order.
        let mut deltas: Vec<&RunDelta<'_>> = views.runs.values().collect();
        deltas.sort_by(|a, b| a.key.text().cmp(&b.key.text()));
        if !deltas.is_empty() {
            let upsert = tx.prepare(UPSERT_RUN_SQL.as_str())?;
            for d in deltas {
                upsert_run(&mut tx, &upsert, d)?;
            }
        }
        for (k, by_level) in views.counts.iter().enumerate() {
            for (l, n) in by_level.iter().enumerate().filter(|(_, n)| **n > 0) {
                tx.execute(
                    "INSERT INTO record_counts (kind, level, n) VALUES ($1, $2, $3)
                     ON CONFLICT (kind, level) DO UPDATE SET n = record_counts.n + excluded.n",
                    &[&(k as i16 + 1), &(l as i16 + 1), n],
                )?;
            }
        }
        if !new.is_empty() {
            tx.execute(
                "INSERT INTO ingest_minutes (minute, records) VALUES ($1, $2)
                 ON CONFLICT (minute) DO UPDATE SET records = ingest_minutes.records + excluded.records",
                &[
                    &(Timestamp::now().as_nanos() / 60_000_000_000),
                    &(new.len() as i64),
                ],
            )?;
        }
        audit::append_chain(&mut tx, cx.key, &audit_rows)?;
        chained = audit_rows.len() as u64;
    }
    for d in drops {
        let [t, db, i, w, e] = d.dropped.map(saturate);
        tx.execute(
            "INSERT INTO client_drops (instance, service, host, pid, trace, debug, info, warn, error, updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (instance) DO UPDATE SET
                trace = GREATEST(client_drops.trace, excluded.trace),
                debug = GREATEST(client_drops.debug, excluded.debug),
                info = GREATEST(client_drops.info, excluded.info),
                warn = GREATEST(client_drops.warn, excluded.warn),
                error = GREATEST(client_drops.error, excluded.error),
                updated = excluded.updated",
            &[
                &&d.client.instance.0[..],
                &d.client.resource.service,
                &d.client.resource.host,
                &i64::from(d.client.resource.pid),
                &t,
                &db,
                &i,
                &w,
                &e,
                &Timestamp::now().as_nanos(),
            ],
        )?;
    }
    for f in forwards {
        tx.execute(
            "INSERT INTO forwards (name, cursor, sent, refused, failures, last_error, updated)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (name) DO UPDATE SET
                cursor = GREATEST(forwards.cursor, excluded.cursor),
                sent = GREATEST(forwards.sent, excluded.sent),
                refused = GREATEST(forwards.refused, excluded.refused),
                failures = GREATEST(forwards.failures, excluded.failures),
                last_error = excluded.last_error, updated = excluded.updated",
            &[
                &f.name,
                &saturate(f.cursor.backend_position()),
                &saturate(f.sent),
                &saturate(f.refused),
                &saturate(f.failures),
                &f.last_error,
                &f.updated.as_nanos(),
            ],
        )?;
    }
    for q in quarantined {
        tx.execute(
            "INSERT INTO quarantine (received, reason, record_id, service, record)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &[
                &q.received.as_nanos(),
                &q.reason,
                &&q.record.id.0[..],
                &q.record.resource.service,
                &serde_json::to_string(&q.record).unwrap_or_default(),
            ],
        )?;
    }
    for (rule, n) in redactions {
        tx.execute(
            "INSERT INTO redaction_counts (rule, n) VALUES ($1, $2)
             ON CONFLICT (rule) DO UPDATE SET n = redaction_counts.n + excluded.n",
            &[rule, &saturate(*n)],
        )?;
    }
    for (what, n) in limits {
        tx.execute(
            "INSERT INTO limit_counts (what, n) VALUES ($1, $2)
             ON CONFLICT (what) DO UPDATE SET
                n = LEAST(limit_counts.n::numeric + excluded.n, 9223372036854775807)::bigint",
            &[what, &saturate(*n)],
        )?;
    }
    tx.commit()?;
    latency.clear();
    // Emit-to-commit latency, measured now that the commit is durable.
    let now = Timestamp::now().as_nanos();
    let minute = now / 60_000_000_000;
    let h = latency.entry(minute).or_default();
    for (r, new) in records.iter().zip(&stored) {
        if new.is_some() {
            h.record(now - r.ts.as_nanos());
        }
    }
    if h.count() == 0 {
        latency.remove(&minute);
    }
    Ok(Outcome {
        written: Written { stored, from, to },
        chained,
    })
}

/// Adds pending latency histograms to their minutes' rows.
pub(super) fn persist_latency(
    c: &mut impl GenericClient,
    pending: &PendingLatency,
) -> Result<(), StoreError> {
    for (minute, h) in pending {
        let old: Option<Vec<u8>> = c
            .query_opt(
                "SELECT counts FROM ingest_latency WHERE minute = $1 FOR UPDATE",
                &[minute],
            )?
            .map(|r| r.get(0));
        let mut merged = old.map(|b| Histogram::from_bytes(&b)).unwrap_or_default();
        merged.merge(h);
        c.execute(
            "INSERT INTO ingest_latency (minute, counts) VALUES ($1, $2)
             ON CONFLICT (minute) DO UPDATE SET counts = excluded.counts",
            &[minute, &merged.to_bytes()],
        )?;
    }
    Ok(())
}
