//! The write path: one transaction per group commit, idempotent by record id, keeping
//! the text index, the runs and call views (`crate::views`), the counters and the audit
//! chain current.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use logbook_proto::{Origin, Record, ScopeKey, Status, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, Statement, TransactionBehavior};

use super::schema::RECORD_COLUMNS;
use super::{audit, calls};
use crate::audit::{record_digest, AuditRules, ChainFormat, StorageClass};
use crate::cost::PriceTable;
use crate::store::latency::{Histogram, PendingLatency};
use crate::store::{Batch, StoreError, Stored, StreamCursor, Written};
use crate::views::call::CallRow;
use crate::views::run::{RunDelta, STATUS_RUNNING};

/// `INSERT OR IGNORE INTO records (…every column…) VALUES (?1, …)`.
static INSERT_RECORD: LazyLock<String> = LazyLock::new(|| {
    let params: Vec<String> = (1..=RECORD_COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect();
    format!(
        "INSERT OR IGNORE INTO records ({}) VALUES ({})",
        RECORD_COLUMNS.join(", "),
        params.join(", ")
    )
});

const INSERT_TEXT: &str = "INSERT INTO records_fts (rowid, message, fields) VALUES (?1, ?2, ?3)";

/// Merges a run delta into its row (see `crate::views::run`: every column merges
/// commutatively). In an upsert, bare column names are the stored row's old values.
const UPSERT_RUN: &str = "INSERT INTO runs (
    run_id, kind, first_ts, last_ts, status, duration_ns, root_name, root_span_id, root_rank,
    root_trace, root_service, root_agent, trace_id, service, agent, tenant, env, project, app,
    user_id, session_id, record_count, error_count, span_count, llm_calls, tool_calls,
    input_tokens, output_tokens, cache_read_tokens, cost_nusd, provider_cost_nusd, models,
    tenant_max, user_max
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19,
          ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34)
ON CONFLICT (run_id) DO UPDATE SET
    first_ts     = min(first_ts, excluded.first_ts),
    last_ts      = max(last_ts, excluded.last_ts),
    status       = CASE WHEN (BETTER) THEN excluded.status
                        WHEN (SAME) THEN CASE WHEN 'error' IN (status, excluded.status) THEN 'error'
                                              WHEN 'ok' IN (status, excluded.status) THEN 'ok'
                                              ELSE 'running' END
                        ELSE status END,
    duration_ns  = CASE WHEN (BETTER) THEN excluded.duration_ns
                        WHEN (SAME) THEN (LEAST_OR max, duration_ns)
                        ELSE duration_ns END,
    root_name    = CASE WHEN (BETTER) THEN excluded.root_name
                        WHEN (SAME) THEN (LEAST_OR min, root_name)
                        ELSE root_name END,
    root_trace   = CASE WHEN (BETTER) THEN excluded.root_trace
                        WHEN (SAME) THEN (LEAST_OR min, root_trace)
                        ELSE root_trace END,
    root_service = CASE WHEN (BETTER) THEN excluded.root_service
                        WHEN (SAME) THEN (LEAST_OR min, root_service)
                        ELSE root_service END,
    root_agent   = CASE WHEN (BETTER) THEN excluded.root_agent
                        WHEN (SAME) THEN (LEAST_OR min, root_agent)
                        ELSE root_agent END,
    root_rank    = CASE WHEN (BETTER) THEN excluded.root_rank ELSE root_rank END,
    root_span_id = CASE WHEN (BETTER) THEN excluded.root_span_id ELSE root_span_id END,
    trace_id     = (LEAST_OR min, trace_id),
    service      = (LEAST_OR min, service),
    agent        = (LEAST_OR min, agent),
    tenant       = (LEAST_OR min, tenant),
    tenant_max   = (LEAST_OR max, tenant_max),
    env          = (LEAST_OR min, env),
    project      = (LEAST_OR min, project),
    app          = (LEAST_OR min, app),
    user_id      = (LEAST_OR min, user_id),
    user_max     = (LEAST_OR max, user_max),
    session_id   = (LEAST_OR min, session_id),
    record_count = (SUM record_count),
    error_count  = (SUM error_count),
    span_count   = (SUM span_count),
    llm_calls    = (SUM llm_calls),
    tool_calls   = (SUM tool_calls),
    input_tokens = (SUM input_tokens),
    output_tokens = (SUM output_tokens),
    cache_read_tokens = (SUM cache_read_tokens),
    cost_nusd    = CASE WHEN excluded.cost_nusd IS NULL THEN cost_nusd
                        ELSE CAST(coalesce(cost_nusd, 0) + excluded.cost_nusd AS INTEGER) END,
    provider_cost_nusd = CASE WHEN excluded.provider_cost_nusd IS NULL THEN provider_cost_nusd
                        ELSE CAST(coalesce(provider_cost_nusd, 0) + excluded.provider_cost_nusd AS INTEGER) END,
    models       = CASE WHEN excluded.models IS NULL THEN models ELSE
                       (SELECT json_group_array(value ORDER BY value) FROM
                          (SELECT value FROM json_each(coalesce(runs.models, '[]'))
                           UNION SELECT value FROM json_each(excluded.models))) END";

/// The stored root gives way to the delta's: the delta has a root, and the stored row
/// none, or one of lower rank, or of equal rank and higher span id.
const BETTER: &str = "excluded.root_span_id IS NOT NULL AND (root_span_id IS NULL
    OR excluded.root_rank > root_rank
    OR (excluded.root_rank = root_rank AND excluded.root_span_id < root_span_id))";
/// The delta holds another record of the stored root span.
const SAME: &str = "excluded.root_span_id = root_span_id AND excluded.root_rank = root_rank";

/// `UPSERT_RUN` written out: `(LEAST_OR f, col)` is `f` of the stored and the new
/// value, or whichever is not NULL (SQLite's two-argument `min` and `max` are NULL if
/// either is); `(SUM col)` adds the new value, saturating at the largest integer (an
/// integer sum that overflows becomes a float, which the cast brings back).
static UPSERT_RUN_SQL: LazyLock<String> = LazyLock::new(|| {
    let mut sql = UPSERT_RUN
        .replace("(BETTER)", &format!("({BETTER})"))
        .replace("(SAME)", &format!("({SAME})"));
    while let Some(at) = sql.find("(LEAST_OR ") {
        let end = at + sql[at..].find(')').unwrap_or(0);
        let inner = sql[at + "(LEAST_OR ".len()..end].to_owned();
        let (f, col) = inner.split_once(", ").unwrap_or(("min", inner.as_str()));
        let expr = format!("coalesce({f}({col}, excluded.{col}), {col}, excluded.{col})");
        sql.replace_range(at..=end, &expr);
    }
    while let Some(at) = sql.find("(SUM ") {
        let end = at + sql[at..].find(')').unwrap_or(0);
        let col = sql[at + "(SUM ".len()..end].to_owned();
        sql.replace_range(
            at..=end,
            &format!("CAST({col} + excluded.{col} AS INTEGER)"),
        );
    }
    sql
});

/// The next sequence number: past every stored record and every number ever handed out.
pub(super) fn load_next_seq(conn: &Connection) -> Result<i64, StoreError> {
    let max_seq: Option<i64> = conn.query_row("SELECT max(seq) FROM records", [], |r| r.get(0))?;
    let saved: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'next_seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(max_seq.map_or(1, |m| m + 1).max(saved.unwrap_or(1)))
}

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

/// Binding a record to the insert statement: shared with the ingest ceiling benchmark,
/// so that its plain loop inserts exactly the columns the store does.
pub mod raw {
    use super::*;

    /// The statement inserting one row of `records` (ignoring a known id).
    pub fn insert_sql() -> &'static str {
        &INSERT_RECORD
    }

    /// The stored code of a storage class.
    pub fn class_code(class: StorageClass) -> i64 {
        match class {
            StorageClass::Ops => 0,
            StorageClass::Audit => 1,
        }
    }

    /// Inserts `r` as `seq` with its fields already serialized and its origin's row;
    /// returns rows inserted (0 when its id is stored already).
    pub fn insert(
        stmt: &mut Statement<'_>,
        seq: i64,
        r: &Record,
        fields_json: &str,
        class: StorageClass,
        origin: Option<i64>,
    ) -> rusqlite::Result<usize> {
        let s = &r.scope;
        stmt.execute(params![
            seq,
            &r.id.0[..],
            r.ts.as_nanos(),
            r.kind.code(),
            r.level.code(),
            r.name.as_ref(),
            r.target.as_ref(),
            r.message.as_deref(),
            &r.trace_id.0[..],
            r.span_id.as_ref().map(|i| &i.0[..]),
            r.parent_span_id.as_ref().map(|i| &i.0[..]),
            s.get(ScopeKey::RunId),
            s.get(ScopeKey::StepId),
            s.get(ScopeKey::Tenant),
            s.get(ScopeKey::Env),
            s.get(ScopeKey::Project),
            s.get(ScopeKey::App),
            s.get(ScopeKey::Surface),
            s.get(ScopeKey::UserId),
            s.get(ScopeKey::SessionId),
            s.get(ScopeKey::RequestId),
            r.resource.service.as_str(),
            r.resource.host.as_str(),
            r.resource.pid,
            r.file.as_deref(),
            r.line,
            r.category.as_deref(),
            r.status.map(Status::code),
            r.duration_ns.map(saturate),
            r.busy_ns.map(saturate),
            r.idle_ns.map(saturate),
            fields_json,
            class_code(class),
            origin,
        ])
    }
}

/// The rows of `origins` this writer has used, so that each origin is looked up once:
/// a batch's records share one (the last one is checked first, by pointer).
#[derive(Debug, Default)]
pub(super) struct OriginIds {
    last: Option<(Arc<Origin>, i64)>,
    known: HashMap<Origin, i64>,
}

impl OriginIds {
    /// Origins remembered at most; past it the memory starts over.
    const MAX: usize = 4096;

    fn id(&mut self, conn: &Connection, origin: &Arc<Origin>) -> rusqlite::Result<i64> {
        if let Some((last, id)) = &self.last {
            if Arc::ptr_eq(last, origin) || last == origin {
                return Ok(*id);
            }
        }
        let id = match self.known.get(&**origin) {
            Some(id) => *id,
            None => {
                let text = origin.to_json();
                conn.prepare_cached(
                    "INSERT INTO origins (origin) VALUES (?1) ON CONFLICT (origin) DO NOTHING",
                )?
                .execute([&text])?;
                let id = conn
                    .prepare_cached("SELECT id FROM origins WHERE origin = ?1")?
                    .query_row([&text], |r| r.get(0))?;
                if self.known.len() >= Self::MAX {
                    self.known.clear();
                }
                self.known.insert((**origin).clone(), id);
                id
            }
        };
        self.last = Some((Arc::clone(origin), id));
        Ok(id)
    }

    /// Forgets every row: a transaction that failed may have made some of them.
    pub(super) fn forget(&mut self) {
        *self = Self::default();
    }
}

pub(super) fn write(
    conn: &mut Connection,
    batch: &Batch<'_>,
    latency: &mut PendingLatency,
    origins: &mut OriginIds,
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
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Latencies measured after earlier commits ride along with this one.
    persist_latency(&tx, latency)?;
    // Read inside the transaction: admin commands (purge, DSAR, restore) write from
    // other processes, and the write lock orders them with this one.
    let mut seq = load_next_seq(&tx)?;
    let from = StreamCursor::from_backend(u64::try_from(seq - 1).unwrap_or(0));
    let mut audit_rows = Vec::new();
    let mut stored = Vec::with_capacity(records.len());
    let mut views = crate::views::BatchViews::default();
    {
        let mut insert = tx.prepare_cached(&INSERT_RECORD)?;
        let mut text = tx.prepare_cached(INSERT_TEXT)?;
        let mut fields_json = Vec::with_capacity(512);
        let mut field_text = String::new();
        for r in records {
            fields_json.clear();
            // Serializing our own Fields into a Vec cannot fail, and yields UTF-8.
            let _ = serde_json::to_writer(&mut fields_json, &r.fields);
            let fields_text = std::str::from_utf8(&fields_json).unwrap_or("{}");
            let class = cx.rules.class_of(r);
            let origin = match &r.origin {
                Some(o) => Some(origins.id(&tx, o)?),
                None => None,
            };
            if raw::insert(&mut insert, seq, r, fields_text, class, origin)? == 0 {
                stored.push(None);
                continue;
            }
            let position = u64::try_from(seq).unwrap_or(0);
            stored.push(Some(Stored {
                seq: position,
                cursor: StreamCursor::from_backend(position),
            }));
            if class == StorageClass::Audit {
                audit_rows.push((
                    seq,
                    record_digest(r, position, class, ChainFormat::CURRENT).unwrap_or_default(),
                ));
            }
            field_text.clear();
            searchable_text(r, &mut field_text);
            if r.message.is_some() || !field_text.is_empty() {
                text.execute(params![seq, r.message.as_deref(), field_text.as_str()])?;
            }
            let call = CallRow::of(r, cx.prices);
            if let Some(c) = &call {
                calls::insert(&tx, seq, c)?;
            }
            views.add(r, call.as_ref());
            seq += 1;
        }
    }
    for (trace, span) in &views.fold {
        calls::fold_event_messages(&tx, trace, span)?;
    }
    let inserted = stored.iter().filter(|s| s.is_some()).count() as i64;
    if inserted > 0 {
        let mut upsert = tx.prepare_cached(&UPSERT_RUN_SQL)?;
        for d in views.runs.values() {
            upsert_run(&mut upsert, d)?;
        }
        let mut count = tx.prepare_cached(
            "INSERT INTO record_counts (kind, level, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, level) DO UPDATE SET n = n + excluded.n",
        )?;
        for (k, by_level) in views.counts.iter().enumerate() {
            for (l, n) in by_level.iter().enumerate().filter(|(_, n)| **n > 0) {
                count.execute(params![k as i64 + 1, l as i64 + 1, n])?;
            }
        }
        tx.prepare_cached(
            "INSERT INTO ingest_minutes (minute, records) VALUES (?1, ?2)
             ON CONFLICT (minute) DO UPDATE SET records = records + excluded.records",
        )?
        .execute(params![
            Timestamp::now().as_nanos() / 60_000_000_000,
            inserted
        ])?;
        tx.prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('next_seq', ?1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![seq])?;
    }
    if !drops.is_empty() {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO client_drops (instance, service, host, pid, trace, debug, info, warn, error, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (instance) DO UPDATE SET
                trace = max(trace, excluded.trace), debug = max(debug, excluded.debug),
                info = max(info, excluded.info), warn = max(warn, excluded.warn),
                error = max(error, excluded.error), updated = excluded.updated",
        )?;
        let now = Timestamp::now().as_nanos();
        for d in drops {
            let [t, db, i, w, e] = d.dropped.map(saturate);
            upsert.execute(params![
                &d.client.instance.0[..],
                d.client.resource.service,
                d.client.resource.host,
                d.client.resource.pid,
                t,
                db,
                i,
                w,
                e,
                now
            ])?;
        }
    }
    if !forwards.is_empty() {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO forwards (name, cursor, sent, refused, failures, last_error, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name) DO UPDATE SET
                cursor = excluded.cursor, sent = excluded.sent, refused = excluded.refused,
                failures = excluded.failures, last_error = excluded.last_error,
                updated = excluded.updated",
        )?;
        for f in forwards {
            upsert.execute(params![
                f.name,
                saturate(f.cursor.backend_position()),
                saturate(f.sent),
                saturate(f.refused),
                saturate(f.failures),
                f.last_error,
                f.updated.as_nanos()
            ])?;
        }
    }
    audit::append_chain(&tx, cx.key, &audit_rows)?;
    let chained = audit_rows.len() as u64;
    if !quarantined.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO quarantine (received, reason, record_id, service, record)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for q in quarantined {
            insert.execute(params![
                q.received.as_nanos(),
                q.reason,
                &q.record.id.0[..],
                q.record.resource.service,
                serde_json::to_string(&q.record).unwrap_or_default(),
            ])?;
        }
    }
    if !redactions.is_empty() {
        let mut count = tx.prepare_cached(
            "INSERT INTO redaction_counts (rule, n) VALUES (?1, ?2)
             ON CONFLICT (rule) DO UPDATE SET n = n + excluded.n",
        )?;
        for (rule, n) in redactions {
            count.execute(params![rule, saturate(*n)])?;
        }
    }
    if !limits.is_empty() {
        let mut count = tx.prepare_cached(
            "INSERT INTO limit_counts (what, n) VALUES (?1, ?2)
             ON CONFLICT (what) DO UPDATE SET n = CAST(n + excluded.n AS INTEGER)",
        )?;
        for (what, n) in limits {
            count.execute(params![what, saturate(*n)])?;
        }
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
        written: Written {
            stored,
            from,
            to: StreamCursor::from_backend(u64::try_from(seq - 1).unwrap_or(0)),
        },
        chained,
    })
}

fn upsert_run(stmt: &mut Statement<'_>, d: &RunDelta<'_>) -> Result<(), StoreError> {
    let root = d.root.as_ref();
    let models = (!d.calls.models.is_empty())
        .then(|| serde_json::to_string(&d.calls.models).unwrap_or_default());
    let [tenant, env, project, app, user_id, session_id] = d.scope;
    stmt.execute(params![
        d.key.text(),
        d.key.kind().as_str(),
        d.first_ts,
        d.last_ts,
        root.map_or(STATUS_RUNNING, |r| r.status_word()),
        root.and_then(|r| r.duration_ns).map(saturate),
        root.map(|r| r.name),
        root.map(|r| &r.span_id.0[..]),
        root.map_or(0, |r| r.rank),
        root.map(|r| &r.trace_id.0[..]),
        root.map(|r| r.service),
        root.and_then(|r| r.agent),
        &d.trace_id.0[..],
        d.service,
        d.agent,
        tenant,
        env,
        project,
        app,
        user_id,
        session_id,
        saturate(d.records),
        saturate(d.errors),
        saturate(d.spans),
        saturate(d.calls.llm_calls),
        saturate(d.calls.tool_calls),
        saturate(d.calls.input_tokens),
        saturate(d.calls.output_tokens),
        saturate(d.calls.cache_read_tokens),
        d.calls.cost_nusd,
        d.calls.provider_cost_nusd,
        models,
        d.scope_max[0],
        d.scope_max[1],
    ])?;
    Ok(())
}

/// Adds pending latency histograms to their minutes' rows.
pub(super) fn persist_latency(
    conn: &Connection,
    pending: &PendingLatency,
) -> Result<(), StoreError> {
    for (minute, h) in pending {
        let old: Option<Vec<u8>> = conn
            .query_row(
                "SELECT counts FROM ingest_latency WHERE minute = ?1",
                [minute],
                |r| r.get(0),
            )
            .optional()?;
        let mut merged = old.map(|b| Histogram::from_bytes(&b)).unwrap_or_default();
        merged.merge(h);
        conn.prepare_cached(
            "INSERT OR REPLACE INTO ingest_latency (minute, counts) VALUES (?1, ?2)",
        )?
        .execute(params![minute, merged.to_bytes()])?;
    }
    Ok(())
}

pub(super) fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// String field values (and nested JSON text), space-separated, for the text index.
fn searchable_text(r: &Record, out: &mut String) {
    use logbook_proto::Value;
    for (_, v) in r.fields.iter() {
        let s = match v {
            Value::Str(s) => s.as_str(),
            Value::Json(j) => j.as_str(),
            _ => continue,
        };
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(s);
    }
}
