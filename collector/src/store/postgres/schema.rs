//! The PostgreSQL schema and its migrations.
//!
//! Made for a fleet's workload: records are partitioned first by storage class (ops 0,
//! audit 1: audit records never share a partition with ops records, so dropping ops
//! partitions leaves the chain whole), and ops records by day of `ts` (partitions made
//! ahead of time by the writer; retention drops whole days). Each partition has a BRIN
//! index on time (range scans for a fraction of a B-tree's size), a B-tree on
//! `(ts, seq)` (newest-first keyset pages read straight off it), B-trees only for
//! selective filters (run, trace, span, tenant, user, name), GIN on the fields (jsonb)
//! and on a text-search vector of message and string field values.
//!
//! Text compares byte by byte (`COLLATE "C"`), as in SQLite and Rust, whatever the
//! database's locale: the least service of a run, a target's module range, the order
//! of models are the same on both backends.
//!
//! Migrations are versioned (`logbook_schema`), idempotent, and run under an advisory
//! lock, so several collectors starting at once apply each once; a collector refuses a
//! schema newer than it knows. Times are Unix nanoseconds (`records_view` shows them as
//! timestamps), ids are bytea, levels 1 TRACE … 5 ERROR, kinds 1 event, 2 span_start,
//! 3 span_end, statuses 1 ok, 2 error.

use postgres::Client;

use crate::store::StoreError;

/// The advisory lock key migrations hold (`'logbook'` as bytes).
const MIGRATION_LOCK: i64 = 0x6c6f_6762_6f6f_6b01;

/// The oldest schema version a writer must know to write a database of each version
/// (index: version - 1): a migration that only adds (tables, nullable columns,
/// indexes) keeps the previous release writing while a fleet upgrades; one that changes
/// what writers must do raises it.
const COMPATIBLE: &[i64] = &[1, 1];

/// Migrations in order; the schema version is how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite backend's eleven migrations and the forwards table made.
    r#"
CREATE SEQUENCE IF NOT EXISTS records_seq;

CREATE TABLE IF NOT EXISTS logbook_meta (
    key   text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE IF NOT EXISTS records (
    seq            bigint NOT NULL,
    id             bytea NOT NULL,
    ts             bigint NOT NULL,
    kind           smallint NOT NULL,
    level          smallint NOT NULL,
    name           text COLLATE "C" NOT NULL,
    target         text COLLATE "C" NOT NULL,
    message        text COLLATE "C",
    trace_id       bytea NOT NULL,
    span_id        bytea,
    parent_span_id bytea,
    run_id         text COLLATE "C",
    step_id        text COLLATE "C",
    tenant         text COLLATE "C",
    env            text COLLATE "C",
    project        text COLLATE "C",
    app            text COLLATE "C",
    surface        text COLLATE "C",
    user_id        text COLLATE "C",
    session_id     text COLLATE "C",
    request_id     text COLLATE "C",
    service        text COLLATE "C" NOT NULL,
    host           text COLLATE "C" NOT NULL,
    pid            bigint NOT NULL,
    file           text COLLATE "C",
    line           bigint,
    category       text COLLATE "C",
    status         smallint,
    duration_ns    bigint,
    busy_ns        bigint,
    idle_ns        bigint,
    fields         jsonb NOT NULL DEFAULT '{}',
    class          smallint NOT NULL,
    origin         text COLLATE "C",
    -- The text index's words: the message and the fields' text, the first 100,000
    -- characters of it (a tsvector holds at most 1 MiB, and a record too large for it
    -- must still be stored).
    tsv            tsvector GENERATED ALWAYS AS (
                       to_tsvector('simple', left(coalesce(message, '') || ' ' || fields::text, 100000))) STORED
) PARTITION BY LIST (class);

CREATE TABLE IF NOT EXISTS records_ops PARTITION OF records FOR VALUES IN (0)
    PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS records_audit PARTITION OF records FOR VALUES IN (1);

-- Idempotency: a record is stored once. The key holds the partition keys (a
-- partitioned table's unique keys must); a resent record has the same time and class.
CREATE UNIQUE INDEX IF NOT EXISTS records_id ON records (id, class, ts);
CREATE INDEX IF NOT EXISTS records_seq_idx ON records (seq);
CREATE INDEX IF NOT EXISTS records_ts      ON records (ts, seq);
CREATE INDEX IF NOT EXISTS records_ts_brin ON records USING brin (ts);
CREATE INDEX IF NOT EXISTS records_run     ON records (run_id, ts) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_trace   ON records (trace_id, ts);
CREATE INDEX IF NOT EXISTS records_span    ON records (trace_id, span_id) WHERE span_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_tenant  ON records (tenant, ts) WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_user    ON records (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_name    ON records (name, ts);
CREATE INDEX IF NOT EXISTS records_category ON records (category, ts) WHERE category IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_project ON records (project, ts) WHERE project IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_app     ON records (app, ts) WHERE app IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_severe  ON records (ts, seq) WHERE level >= 4;
CREATE INDEX IF NOT EXISTS records_fields  ON records USING gin (fields jsonb_path_ops);
CREATE INDEX IF NOT EXISTS records_text    ON records USING gin (tsv);

CREATE OR REPLACE VIEW records_view AS
SELECT seq, encode(id, 'hex') AS id,
       to_timestamp(ts / 1e9) AS time,
       CASE kind WHEN 1 THEN 'event' WHEN 2 THEN 'span_start' WHEN 3 THEN 'span_end' END AS kind,
       CASE level WHEN 1 THEN 'TRACE' WHEN 2 THEN 'DEBUG' WHEN 3 THEN 'INFO' WHEN 4 THEN 'WARN' WHEN 5 THEN 'ERROR' END AS level,
       name, target, message,
       encode(trace_id, 'hex') AS trace_id, encode(span_id, 'hex') AS span_id,
       encode(parent_span_id, 'hex') AS parent_span_id,
       run_id, step_id, tenant, env, project, app, surface, user_id, session_id, request_id,
       service, host, pid, file, line, category,
       CASE status WHEN 1 THEN 'ok' WHEN 2 THEN 'error' END AS status,
       duration_ns, busy_ns, idle_ns, fields,
       CASE class WHEN 1 THEN 'audit' ELSE 'ops' END AS class, origin
  FROM records;

CREATE TABLE IF NOT EXISTS runs (
    run_id             text COLLATE "C" PRIMARY KEY,
    kind               text COLLATE "C" NOT NULL DEFAULT 'run',
    first_ts           bigint NOT NULL,
    last_ts            bigint NOT NULL,
    status             text COLLATE "C" NOT NULL DEFAULT 'running',
    duration_ns        bigint,
    root_name          text COLLATE "C",
    root_span_id       bytea,
    root_rank          integer NOT NULL DEFAULT 0,
    root_trace         bytea,
    root_service       text COLLATE "C",
    root_agent         text COLLATE "C",
    trace_id           bytea,
    service            text COLLATE "C",
    agent              text COLLATE "C",
    tenant             text COLLATE "C",
    tenant_max         text COLLATE "C",
    env                text COLLATE "C",
    project            text COLLATE "C",
    app                text COLLATE "C",
    user_id            text COLLATE "C",
    user_max           text COLLATE "C",
    session_id         text COLLATE "C",
    record_count       bigint NOT NULL DEFAULT 0,
    error_count        bigint NOT NULL DEFAULT 0,
    span_count         bigint NOT NULL DEFAULT 0,
    llm_calls          bigint NOT NULL DEFAULT 0,
    tool_calls         bigint NOT NULL DEFAULT 0,
    input_tokens       bigint NOT NULL DEFAULT 0,
    output_tokens      bigint NOT NULL DEFAULT 0,
    cache_read_tokens  bigint NOT NULL DEFAULT 0,
    cost_nusd          bigint,
    provider_cost_nusd bigint,
    models             jsonb
);
CREATE INDEX IF NOT EXISTS runs_first_ts ON runs (first_ts);
CREATE INDEX IF NOT EXISTS runs_tenant   ON runs (tenant, first_ts);
CREATE INDEX IF NOT EXISTS runs_user     ON runs (user_id, first_ts);
CREATE INDEX IF NOT EXISTS runs_trace    ON runs ((coalesce(root_trace, trace_id)));
CREATE INDEX IF NOT EXISTS runs_session  ON runs (session_id, first_ts) WHERE session_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS llm_calls (
    seq                  bigint PRIMARY KEY,
    ts                   bigint NOT NULL,
    end_ts               bigint NOT NULL,
    run_id               text COLLATE "C",
    trace_id             bytea NOT NULL,
    span_id              bytea,
    parent_span_id       bytea,
    tenant               text COLLATE "C",
    user_id              text COLLATE "C",
    app                  text COLLATE "C",
    service              text COLLATE "C" NOT NULL,
    operation            text COLLATE "C",
    provider             text COLLATE "C",
    request_model        text COLLATE "C",
    response_model       text COLLATE "C",
    model                text COLLATE "C",
    agent                text COLLATE "C",
    input_messages       text COLLATE "C",
    output_messages      text COLLATE "C",
    finish_reasons       text COLLATE "C",
    input_tokens         bigint,
    output_tokens        bigint,
    cache_read_tokens    bigint,
    cost                 double precision,
    provider_cost        double precision,
    duration_ns          bigint,
    status               text COLLATE "C" NOT NULL,
    error                text COLLATE "C",
    messages_from_events integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS llm_calls_ts     ON llm_calls (ts);
CREATE INDEX IF NOT EXISTS llm_calls_run    ON llm_calls (run_id, ts) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS llm_calls_model  ON llm_calls (model, ts);
CREATE INDEX IF NOT EXISTS llm_calls_tenant ON llm_calls (tenant, ts) WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS llm_calls_user   ON llm_calls (user_id, ts) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS llm_calls_span   ON llm_calls (trace_id, span_id);

CREATE TABLE IF NOT EXISTS tool_calls (
    seq            bigint PRIMARY KEY,
    ts             bigint NOT NULL,
    end_ts         bigint NOT NULL,
    run_id         text COLLATE "C",
    trace_id       bytea NOT NULL,
    span_id        bytea,
    parent_span_id bytea,
    tenant         text COLLATE "C",
    user_id        text COLLATE "C",
    app            text COLLATE "C",
    service        text COLLATE "C" NOT NULL,
    tool_name      text COLLATE "C",
    call_id        text COLLATE "C",
    arguments      text COLLATE "C",
    result         text COLLATE "C",
    duration_ns    bigint,
    status         text COLLATE "C" NOT NULL,
    error          text COLLATE "C"
);
CREATE INDEX IF NOT EXISTS tool_calls_ts     ON tool_calls (ts);
CREATE INDEX IF NOT EXISTS tool_calls_run    ON tool_calls (run_id, ts) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tool_calls_tool   ON tool_calls (tool_name, ts);
CREATE INDEX IF NOT EXISTS tool_calls_tenant ON tool_calls (tenant, ts) WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS tool_calls_user   ON tool_calls (user_id, ts) WHERE user_id IS NOT NULL;

-- Counters the writers add to, so stats never scan records.
CREATE TABLE IF NOT EXISTS record_counts (
    kind  smallint NOT NULL,
    level smallint NOT NULL,
    n     bigint NOT NULL,
    PRIMARY KEY (kind, level)
);
CREATE TABLE IF NOT EXISTS ingest_minutes (
    minute  bigint PRIMARY KEY,
    records bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS ingest_latency (
    minute bigint PRIMARY KEY,
    counts bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS client_drops (
    instance bytea PRIMARY KEY,
    service  text COLLATE "C" NOT NULL,
    host     text COLLATE "C" NOT NULL,
    pid      bigint NOT NULL,
    trace    bigint NOT NULL,
    debug    bigint NOT NULL,
    info     bigint NOT NULL,
    warn     bigint NOT NULL,
    error    bigint NOT NULL,
    updated  bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS redaction_counts (
    rule text COLLATE "C" PRIMARY KEY,
    n    bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS limit_counts (
    what text COLLATE "C" PRIMARY KEY,
    n    bigint NOT NULL
);

-- The audit chain: one chain for the fleet, appended under the writers' lock (see
-- write.rs), so its rows are dense and in commit order whichever collector wrote them.
CREATE TABLE IF NOT EXISTS audit_chain (
    n            bigint PRIMARY KEY,
    record_seq   bigint NOT NULL UNIQUE,
    content_hash bytea NOT NULL,
    chain_hash   bytea NOT NULL,
    tombstone    smallint NOT NULL DEFAULT 0,
    format       smallint NOT NULL DEFAULT 2
);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id         bigserial PRIMARY KEY,
    kind       text COLLATE "C" NOT NULL,
    n          bigint NOT NULL,
    chain_hash bytea NOT NULL,
    ts         bigint NOT NULL,
    pruned     bigint NOT NULL,
    signature  bytea NOT NULL
);

-- Audit rows change only inside the retention and DSAR paths, which set
-- logbook.audit_unlock for the length of their transaction.
CREATE OR REPLACE FUNCTION logbook_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'audit_checkpoints'
       OR coalesce(current_setting('logbook.audit_unlock', true), '') <> 'on' THEN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
DROP TRIGGER IF EXISTS records_audit_append_only ON records_audit;
CREATE TRIGGER records_audit_append_only BEFORE UPDATE OR DELETE ON records_audit
    FOR EACH ROW EXECUTE FUNCTION logbook_append_only();
DROP TRIGGER IF EXISTS audit_chain_append_only ON audit_chain;
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION logbook_append_only();
DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION logbook_append_only();

CREATE TABLE IF NOT EXISTS quarantine (
    id        bigserial PRIMARY KEY,
    received  bigint NOT NULL,
    reason    text COLLATE "C" NOT NULL,
    record_id bytea,
    service   text COLLATE "C",
    record    text COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received);
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_record ON quarantine (record_id)
    WHERE record_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS api_tokens (
    id      text COLLATE "C" PRIMARY KEY,
    name    text COLLATE "C" NOT NULL,
    role    text COLLATE "C" NOT NULL,
    tenant  text COLLATE "C",
    user_id text COLLATE "C",
    hash    bytea NOT NULL,
    created bigint NOT NULL,
    revoked bigint
);

CREATE TABLE IF NOT EXISTS forwards (
    name       text COLLATE "C" PRIMARY KEY,
    cursor     bigint NOT NULL,
    sent       bigint NOT NULL,
    refused    bigint NOT NULL,
    failures   bigint NOT NULL,
    last_error text COLLATE "C",
    updated    bigint NOT NULL
);
"#,
    // 2: monitoring: how far the monitor has read the stream, exception groups, span
    // metrics and log volume (see crate::monitor, crate::store::exceptions and
    // crate::store::metrics). Only adds: the previous release keeps writing.
    r#"
CREATE TABLE IF NOT EXISTS monitor_state (
    name    text COLLATE "C" PRIMARY KEY,
    cursor  bigint NOT NULL,
    updated bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS exception_groups (
    fingerprint        text COLLATE "C" PRIMARY KEY,
    basis              text COLLATE "C" NOT NULL,
    kind               text COLLATE "C" NOT NULL,
    message            text COLLATE "C" NOT NULL,
    culprit            text COLLATE "C" NOT NULL,
    first_seen         bigint NOT NULL,
    last_seen          bigint NOT NULL,
    count              bigint NOT NULL,
    first_id           text COLLATE "C" NOT NULL,
    last_id            text COLLATE "C" NOT NULL,
    last_run           text COLLATE "C",
    last_trace         text COLLATE "C",
    state              text COLLATE "C" NOT NULL,
    resolved_in        text COLLATE "C",
    changed            bigint,
    ignore_until       bigint,
    ignore_until_count bigint
);
CREATE INDEX IF NOT EXISTS exception_groups_last ON exception_groups (last_seen);
CREATE TABLE IF NOT EXISTS exception_hours (
    fingerprint text COLLATE "C" NOT NULL,
    hour        bigint NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (fingerprint, hour)
);
CREATE TABLE IF NOT EXISTS exception_tags (
    fingerprint text COLLATE "C" NOT NULL,
    kind        text COLLATE "C" NOT NULL,
    value       text COLLATE "C" NOT NULL,
    n           bigint NOT NULL,
    first_seen  bigint NOT NULL,
    last_seen   bigint NOT NULL,
    PRIMARY KEY (fingerprint, kind, value)
);
CREATE INDEX IF NOT EXISTS exception_tags_value ON exception_tags (kind, value);
CREATE TABLE IF NOT EXISTS exception_notes (
    id          bigserial PRIMARY KEY,
    fingerprint text COLLATE "C" NOT NULL,
    ts          bigint NOT NULL,
    author      text COLLATE "C" NOT NULL,
    text        text COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS exception_notes_group ON exception_notes (fingerprint, ts);
CREATE TABLE IF NOT EXISTS span_metrics (
    width   bigint NOT NULL,
    period  bigint NOT NULL,
    service text COLLATE "C" NOT NULL,
    name    text COLLATE "C" NOT NULL,
    model   text COLLATE "C" NOT NULL,
    count   bigint NOT NULL,
    errors  bigint NOT NULL,
    slow    bigint NOT NULL,
    sum_ns  bigint NOT NULL,
    sketch  bytea NOT NULL,
    PRIMARY KEY (width, period, service, name, model)
);
CREATE TABLE IF NOT EXISTS log_volume (
    width   bigint NOT NULL,
    period  bigint NOT NULL,
    service text COLLATE "C" NOT NULL,
    level   bigint NOT NULL,
    n       bigint NOT NULL,
    PRIMARY KEY (width, period, service, level)
);
CREATE TABLE IF NOT EXISTS tool_repeats (
    run_id    text COLLATE "C" NOT NULL,
    tool      text COLLATE "C" NOT NULL,
    args_hash text COLLATE "C" NOT NULL,
    arguments text COLLATE "C" NOT NULL,
    service   text COLLATE "C" NOT NULL,
    n         bigint NOT NULL,
    first_ts  bigint NOT NULL,
    last_ts   bigint NOT NULL,
    PRIMARY KEY (run_id, tool, args_hash)
);
CREATE INDEX IF NOT EXISTS tool_repeats_n ON tool_repeats (n);
CREATE TABLE IF NOT EXISTS alert_state (
    rule      text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    state     text COLLATE "C" NOT NULL,
    since     bigint NOT NULL,
    last_sent bigint,
    labels    text COLLATE "C" NOT NULL,
    value     double precision NOT NULL,
    summary   text COLLATE "C" NOT NULL,
    PRIMARY KEY (rule, key)
);
CREATE TABLE IF NOT EXISTS alert_events (
    id        bigserial PRIMARY KEY,
    ts        bigint NOT NULL,
    rule      text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    state     text COLLATE "C" NOT NULL,
    labels    text COLLATE "C" NOT NULL,
    value     double precision NOT NULL,
    summary   text COLLATE "C" NOT NULL,
    delivery  text COLLATE "C" NOT NULL,
    attempts  bigint NOT NULL
);
"#,
];

/// The schema version this build knows.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A day in nanoseconds: the span of one ops partition.
pub(super) const DAY_NS: i64 = 86_400_000_000_000;

/// The schema version of the database (0: none yet) and the oldest version a
/// collector must know to use it; refused if this one is older.
pub(super) fn version(client: &mut Client) -> Result<i64, StoreError> {
    let exists: bool = client
        .query_one("SELECT to_regclass('logbook_schema') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let (version, compatible) = client
        .query_opt("SELECT version, compatible FROM logbook_schema", &[])?
        .map_or((0, 0), |r| (r.get::<_, i64>(0), r.get::<_, i64>(1)));
    check_compatible(version, compatible)?;
    Ok(version)
}

/// A database of `version`, usable by collectors that know `compatible` or later.
fn check_compatible(version: i64, compatible: i64) -> Result<(), StoreError> {
    if compatible > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Brings the database up to [`SCHEMA_VERSION`], each migration in its own
/// transaction under the migration lock; refuses a newer schema.
pub(super) fn migrate(client: &mut Client) -> Result<(), StoreError> {
    loop {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS logbook_schema (
                 one        boolean PRIMARY KEY DEFAULT true CHECK (one),
                 version    bigint NOT NULL,
                 compatible bigint NOT NULL
             );
             INSERT INTO logbook_schema (version, compatible) VALUES (0, 0) ON CONFLICT DO NOTHING;",
        )?;
        let row = tx.query_one("SELECT version, compatible FROM logbook_schema", &[])?;
        let (current, compatible): (i64, i64) = (row.get(0), row.get(1));
        // A newer release's schema: written on if it kept this release compatible.
        check_compatible(current, compatible)?;
        if current >= SCHEMA_VERSION {
            tx.commit()?;
            return Ok(());
        }
        let idx = usize::try_from(current).unwrap_or(0);
        tx.batch_execute(MIGRATIONS[idx])?;
        tx.execute(
            "UPDATE logbook_schema SET version = $1, compatible = $2",
            &[&(current + 1), &COMPATIBLE[idx]],
        )?;
        tx.commit()?;
    }
}

/// The name of the ops partition of the day starting at `day` (ns).
fn partition_name(day: i64) -> String {
    format!("records_ops_d{}", day / DAY_NS)
}

/// Makes the ops partitions of these days (each `ts / DAY_NS`), if missing. Several
/// writers may race: `IF NOT EXISTS` under the migration lock makes it harmless.
pub(super) fn ensure_partitions(
    client: &mut impl postgres::GenericClient,
    days: &[i64],
) -> Result<(), StoreError> {
    if days.is_empty() {
        return Ok(());
    }
    let mut sql = String::from("SELECT pg_advisory_xact_lock(7456876543210001);");
    for day in days {
        let from = day * DAY_NS;
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF records_ops FOR VALUES FROM ({from}) TO ({});",
            partition_name(from),
            from.saturating_add(DAY_NS)
        ));
    }
    client.batch_execute(&sql)?;
    Ok(())
}

/// The ops partitions that exist, by day: `(day, name)`.
pub(super) fn partitions(
    client: &mut impl postgres::GenericClient,
) -> Result<Vec<(i64, String)>, StoreError> {
    let rows = client.query(
        "SELECT c.relname::text FROM pg_inherits i
           JOIN pg_class c ON c.oid = i.inhrelid
           JOIN pg_class p ON p.oid = i.inhparent
          WHERE p.relname = 'records_ops'",
        &[],
    )?;
    let mut out: Vec<(i64, String)> = rows
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            let day = name.strip_prefix("records_ops_d")?.parse::<i64>().ok()?;
            Some((day, name))
        })
        .collect();
    out.sort();
    Ok(out)
}
