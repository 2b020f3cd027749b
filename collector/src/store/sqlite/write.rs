//! The write path: one transaction per group commit, idempotent by record id, keeping
//! the text index, the runs, LLM call and tool call views and the counters current.

use std::collections::HashMap;

use logbook_proto::genai::AGENT_NAME;
use logbook_proto::{Kind, Record, ScopeKey, Status, Timestamp};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::calls;
use crate::audit::{append_chain, AuditRules, CLASS_AUDIT, CLASS_OPS};
use crate::cost::PriceTable;
use crate::store::latency::{Histogram, PendingLatency};
use crate::store::{Batch, StoreError};

const INSERT_RECORD: &str = "INSERT OR IGNORE INTO records (
    seq, id, ts, kind, level, name, target, message, trace_id, span_id, parent_span_id,
    run_id, step_id, tenant, env, project, app, surface, user_id, session_id, request_id,
    service, host, pid, file, line, category, status, duration_ns, busy_ns, idle_ns, fields, class
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
          ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33)";

const INSERT_TEXT: &str = "INSERT INTO records_fts (rowid, message, fields) VALUES (?1, ?2, ?3)";

const UPSERT_RUN: &str = "INSERT INTO runs (
    run_id, first_ts, last_ts, status, duration_ns, root_name, root_span_id, trace_id, service,
    tenant, env, project, app, user_id, session_id, record_count, error_count, span_count, agent
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
ON CONFLICT (run_id) DO UPDATE SET
    first_ts     = min(first_ts, excluded.first_ts),
    last_ts      = max(last_ts, excluded.last_ts),
    status       = CASE WHEN excluded.status <> 'running' THEN excluded.status ELSE status END,
    duration_ns  = coalesce(excluded.duration_ns, duration_ns),
    root_name    = coalesce(excluded.root_name, root_name),
    root_span_id = coalesce(excluded.root_span_id, root_span_id),
    trace_id     = CASE WHEN excluded.root_span_id IS NOT NULL THEN excluded.trace_id ELSE coalesce(trace_id, excluded.trace_id) END,
    service      = CASE WHEN excluded.root_span_id IS NOT NULL THEN excluded.service ELSE coalesce(service, excluded.service) END,
    tenant       = coalesce(tenant, excluded.tenant),
    env          = coalesce(env, excluded.env),
    project      = coalesce(project, excluded.project),
    app          = coalesce(app, excluded.app),
    user_id      = coalesce(user_id, excluded.user_id),
    session_id   = coalesce(session_id, excluded.session_id),
    record_count = record_count + excluded.record_count,
    error_count  = error_count + excluded.error_count,
    span_count   = span_count + excluded.span_count,
    agent        = CASE WHEN excluded.root_span_id IS NOT NULL AND excluded.agent IS NOT NULL
                        THEN excluded.agent ELSE coalesce(agent, excluded.agent) END";

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

/// What the audit chain needs of a write.
pub(super) struct Chaining<'a> {
    pub(super) rules: &'a AuditRules,
    pub(super) key: &'a [u8; 32],
    /// Prices, for the cost of LLM calls.
    pub(super) prices: &'a PriceTable,
}

/// What one write did.
pub(super) struct Written {
    /// Per record: newly stored.
    pub(super) stored: Vec<bool>,
    /// Audit records appended to the chain.
    pub(super) chained: u64,
}

pub(super) fn write(
    conn: &mut Connection,
    batch: &Batch<'_>,
    latency: &mut PendingLatency,
    chaining: &Chaining<'_>,
) -> Result<Written, StoreError> {
    let Batch {
        records,
        drops,
        quarantined,
        redactions,
    } = *batch;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Latencies measured after earlier commits ride along with this one.
    persist_latency(&tx, latency)?;
    // Read inside the transaction: admin commands (purge, DSAR, restore) write from
    // other processes, and the write lock orders them with this one.
    let mut seq = load_next_seq(&tx)?;
    let mut audit_seqs = Vec::new();
    let mut stored = Vec::with_capacity(records.len());
    let mut runs: HashMap<&str, RunDelta<'_>> = HashMap::new();
    let mut counts = [[0i64; 5]; 3];
    {
        let mut insert = tx.prepare_cached(INSERT_RECORD)?;
        let mut text = tx.prepare_cached(INSERT_TEXT)?;
        let mut fields_json = Vec::with_capacity(512);
        let mut field_text = String::new();
        for r in records {
            fields_json.clear();
            // Serializing our own Fields into a Vec cannot fail, and yields UTF-8.
            let _ = serde_json::to_writer(&mut fields_json, &r.fields);
            let fields_text = std::str::from_utf8(&fields_json).unwrap_or("{}");
            let s = &r.scope;
            let class = if chaining.rules.is_audit(r) {
                CLASS_AUDIT
            } else {
                CLASS_OPS
            };
            let n = insert.execute(params![
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
                fields_text,
                class,
            ])?;
            if n == 0 {
                stored.push(false);
                continue;
            }
            stored.push(true);
            if class == CLASS_AUDIT {
                audit_seqs.push(seq);
            }
            field_text.clear();
            searchable_text(r, &mut field_text);
            if r.message.is_some() || !field_text.is_empty() {
                text.execute(params![seq, r.message.as_deref(), field_text.as_str()])?;
            }
            counts[r.kind.code() as usize - 1][r.level.index()] += 1;
            let mut run = None;
            if let Some(run_id) = s.get(ScopeKey::RunId) {
                let delta = runs.entry(run_id).or_insert_with(|| RunDelta::new(r));
                delta.add(r);
                run = Some(&mut delta.calls);
            }
            calls::record_call(&tx, seq, r, chaining.prices, run)?;
            seq += 1;
        }
    }
    let inserted = stored.iter().filter(|s| **s).count() as i64;
    if inserted > 0 {
        let mut upsert = tx.prepare_cached(UPSERT_RUN)?;
        for (run_id, d) in &runs {
            upsert.execute(params![
                run_id,
                d.first_ts,
                d.last_ts,
                d.status.unwrap_or("running"),
                d.duration_ns,
                d.root_name,
                d.root_span_id,
                d.trace_id,
                d.service,
                d.scope[0],
                d.scope[1],
                d.scope[2],
                d.scope[3],
                d.scope[4],
                d.scope[5],
                d.records,
                d.errors,
                d.spans,
                d.agent,
            ])?;
            calls::add_to_run(&tx, run_id, &d.calls)?;
        }
        let mut count = tx.prepare_cached(
            "INSERT INTO record_counts (kind, level, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (kind, level) DO UPDATE SET n = n + excluded.n",
        )?;
        for (k, by_level) in counts.iter().enumerate() {
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
    append_chain(&tx, chaining.key, &audit_seqs)?;
    let chained = audit_seqs.len() as u64;
    if !quarantined.is_empty() {
        let mut insert = tx.prepare_cached(
            "INSERT INTO quarantine (received, reason, record_id, service, record)
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
    tx.commit()?;
    latency.clear();
    // Emit-to-commit latency, measured now that the commit is durable.
    let now = Timestamp::now().as_nanos();
    let minute = now / 60_000_000_000;
    let h = latency.entry(minute).or_default();
    for (r, new) in records.iter().zip(&stored) {
        if *new {
            h.record(now - r.ts.as_nanos());
        }
    }
    if h.count() == 0 {
        latency.remove(&minute);
    }
    Ok(Written { stored, chained })
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

fn saturate(v: u64) -> i64 {
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

/// What one transaction adds to one run.
struct RunDelta<'a> {
    first_ts: i64,
    last_ts: i64,
    status: Option<&'static str>,
    duration_ns: Option<i64>,
    root_name: Option<&'a str>,
    root_span_id: Option<&'a [u8]>,
    trace_id: &'a [u8],
    service: &'a str,
    /// tenant, env, project, app, user_id, session_id: the first seen.
    scope: [Option<&'a str>; 6],
    records: i64,
    errors: i64,
    spans: i64,
    /// `gen_ai.agent.name`: the first seen.
    agent: Option<&'a str>,
    /// What its LLM and tool calls add.
    calls: calls::CallTotals,
}

const RUN_SCOPE: [ScopeKey; 6] = [
    ScopeKey::Tenant,
    ScopeKey::Env,
    ScopeKey::Project,
    ScopeKey::App,
    ScopeKey::UserId,
    ScopeKey::SessionId,
];

impl<'a> RunDelta<'a> {
    fn new(r: &'a Record) -> Self {
        Self {
            first_ts: r.ts.as_nanos(),
            last_ts: r.ts.as_nanos(),
            status: None,
            duration_ns: None,
            root_name: None,
            root_span_id: None,
            trace_id: &r.trace_id.0,
            service: &r.resource.service,
            scope: [None; 6],
            records: 0,
            errors: 0,
            spans: 0,
            agent: None,
            calls: calls::CallTotals::default(),
        }
    }

    fn add(&mut self, r: &'a Record) {
        self.first_ts = self.first_ts.min(r.ts.as_nanos());
        self.last_ts = self.last_ts.max(r.ts.as_nanos());
        self.records += 1;
        self.errors += i64::from(r.is_error());
        self.spans += i64::from(r.kind == Kind::SpanEnd);
        if self.agent.is_none() {
            self.agent = r.fields.get(AGENT_NAME).and_then(|v| v.as_str());
        }
        for (slot, key) in self.scope.iter_mut().zip(RUN_SCOPE) {
            if slot.is_none() {
                *slot = r.scope.get(key);
            }
        }
        // The span that started the run (category "run") names it and, when it ends,
        // decides its status and duration.
        if r.category.as_deref() == Some(crate::pipeline::CATEGORY_RUN) && r.kind != Kind::Event {
            self.root_name = Some(&r.name);
            self.root_span_id = r.span_id.as_ref().map(|s| &s.0[..]);
            self.trace_id = &r.trace_id.0;
            // The run is the root's: other processes' records may come first.
            self.service = &r.resource.service;
            if let Some(agent) = r.fields.get(AGENT_NAME).and_then(|v| v.as_str()) {
                self.agent = Some(agent);
            }
            if r.kind == Kind::SpanEnd {
                self.status = Some(r.status.unwrap_or(Status::Ok).as_str());
                self.duration_ns = r.duration_ns.map(saturate);
            }
        }
    }
}
