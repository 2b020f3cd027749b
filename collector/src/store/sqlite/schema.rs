//! The SQLite schema and its migrations. `PRAGMA user_version` records how many
//! migrations a file has had; opening applies the rest, each in its own transaction,
//! so opening any number of times is harmless. Every statement is idempotent as well.
//!
//! Readable with the `sqlite3` shell: times are Unix nanoseconds (see the
//! `records_view` view for text forms), ids are blobs (`hex(trace_id)`), levels are
//! 1 TRACE … 5 ERROR, kinds 1 event, 2 span_start, 3 span_end, statuses 1 ok, 2 error.

use logbook_proto::{keys, ScopeKey};
use rusqlite::Connection;

use crate::store::StoreError;

/// Migrations in order; the schema version of a file is how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: records, their indexes and text index, runs, counters.
    r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- One row per span start, span end or event. seq is assigned by the writer: it only
-- grows, and breaks ties between equal timestamps in keyset pagination.
CREATE TABLE IF NOT EXISTS records (
    seq            INTEGER PRIMARY KEY,
    id             BLOB NOT NULL,
    ts             INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    level          INTEGER NOT NULL,
    name           TEXT NOT NULL,
    target         TEXT NOT NULL,
    message        TEXT,
    trace_id       BLOB NOT NULL,
    span_id        BLOB,
    parent_span_id BLOB,
    run_id         TEXT,
    step_id        TEXT,
    tenant         TEXT,
    env            TEXT,
    project        TEXT,
    app            TEXT,
    surface        TEXT,
    user_id        TEXT,
    session_id     TEXT,
    request_id     TEXT,
    service        TEXT NOT NULL,
    host           TEXT NOT NULL,
    pid            INTEGER NOT NULL,
    file           TEXT,
    line           INTEGER,
    category       TEXT,
    status         INTEGER,
    duration_ns    INTEGER,
    busy_ns        INTEGER,
    idle_ns        INTEGER,
    fields         TEXT NOT NULL DEFAULT '{}'
);

-- Idempotency: a resent record is stored once.
CREATE UNIQUE INDEX IF NOT EXISTS records_id ON records (id);
-- Every filter is an index leading with its column and ending in ts, so "newest first,
-- keyset on (ts, seq)" reads a page straight off the index (seq is the rowid, implicit
-- at the end of every index).
CREATE INDEX IF NOT EXISTS records_ts       ON records (ts);
CREATE INDEX IF NOT EXISTS records_level    ON records (level, ts);
CREATE INDEX IF NOT EXISTS records_kind     ON records (kind, ts);
CREATE INDEX IF NOT EXISTS records_run      ON records (run_id, ts)   WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_trace    ON records (trace_id, ts);
CREATE INDEX IF NOT EXISTS records_tenant   ON records (tenant, ts)   WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_project  ON records (project, ts)  WHERE project IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_app      ON records (app, ts)      WHERE app IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_user     ON records (user_id, ts)  WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_category ON records (category, ts) WHERE category IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_name     ON records (name, ts);
CREATE INDEX IF NOT EXISTS records_target   ON records (target, ts);

-- Full-text index over messages and string field values; rowid = records.seq.
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5 (
    message, fields, content = '', contentless_delete = 1, tokenize = 'unicode61'
);

-- Text forms for people using the sqlite3 shell.
CREATE VIEW IF NOT EXISTS records_view AS
SELECT seq,
       lower(hex(id)) AS id,
       strftime('%Y-%m-%dT%H:%M:%f', ts / 1000000000.0, 'unixepoch') || 'Z' AS time,
       CASE kind WHEN 1 THEN 'event' WHEN 2 THEN 'span_start' WHEN 3 THEN 'span_end' END AS kind,
       CASE level WHEN 1 THEN 'TRACE' WHEN 2 THEN 'DEBUG' WHEN 3 THEN 'INFO' WHEN 4 THEN 'WARN' WHEN 5 THEN 'ERROR' END AS level,
       name, target, message,
       lower(hex(trace_id)) AS trace_id, lower(hex(span_id)) AS span_id, lower(hex(parent_span_id)) AS parent_span_id,
       run_id, step_id, tenant, env, project, app, surface, user_id, session_id, request_id,
       service, host, pid, file, line, category,
       CASE status WHEN 1 THEN 'ok' WHEN 2 THEN 'error' END AS status,
       duration_ns, busy_ns, idle_ns, fields
FROM records;

-- One row per run, kept current by the writer as records arrive.
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    first_ts     INTEGER NOT NULL,
    last_ts      INTEGER NOT NULL,
    status       TEXT NOT NULL DEFAULT 'running',
    duration_ns  INTEGER,
    root_name    TEXT,
    root_span_id BLOB,
    trace_id     BLOB,
    service      TEXT,
    tenant       TEXT,
    env          TEXT,
    project      TEXT,
    app          TEXT,
    user_id      TEXT,
    session_id   TEXT,
    record_count INTEGER NOT NULL DEFAULT 0,
    error_count  INTEGER NOT NULL DEFAULT 0,
    span_count   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_first_ts ON runs (first_ts);
CREATE INDEX IF NOT EXISTS runs_tenant   ON runs (tenant, first_ts);
CREATE INDEX IF NOT EXISTS runs_user     ON runs (user_id, first_ts);

-- Record counts by kind and level, kept by the writer so stats never scan records.
CREATE TABLE IF NOT EXISTS record_counts (
    kind  INTEGER NOT NULL,
    level INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (kind, level)
) WITHOUT ROWID;

-- Records stored per minute (for the ingest rate).
CREATE TABLE IF NOT EXISTS ingest_minutes (
    minute  INTEGER PRIMARY KEY,
    records INTEGER NOT NULL
);

-- Drops reported by clients: running totals per client instance.
CREATE TABLE IF NOT EXISTS client_drops (
    instance BLOB PRIMARY KEY,
    service  TEXT NOT NULL,
    host     TEXT NOT NULL,
    pid      INTEGER NOT NULL,
    trace    INTEGER NOT NULL,
    debug    INTEGER NOT NULL,
    info     INTEGER NOT NULL,
    warn     INTEGER NOT NULL,
    error    INTEGER NOT NULL,
    updated  INTEGER NOT NULL
);
"#,
    // 2: emit-to-commit latency, a histogram per minute (see store::latency).
    r#"
CREATE TABLE IF NOT EXISTS ingest_latency (
    minute INTEGER PRIMARY KEY,
    counts BLOB NOT NULL
);
"#,
    // 3: cheaper level and kind indexes. A kind has three common values and INFO and
    // DEBUG are common levels: newest-first scans of records_ts find a page of them at
    // once. Only WARN and ERROR are rare enough to need an index: a partial one, in
    // page order (ts, seq), that also holds the level so that counts never visit rows.
    // And a text index without token positions (detail = none): a fraction of the
    // writes. Words of several tokens are checked against the row instead (read.rs).
    r#"
DROP INDEX IF EXISTS records_kind;
DROP INDEX IF EXISTS records_level;
CREATE INDEX IF NOT EXISTS records_severe ON records (ts, seq, level) WHERE level >= 4;
DROP TABLE IF EXISTS records_fts;
CREATE VIRTUAL TABLE records_fts USING fts5 (
    message, fields, content = '', contentless_delete = 1, detail = none, tokenize = 'unicode61'
);
INSERT INTO records_fts (rowid, message, fields)
SELECT seq, message, text FROM (
    SELECT seq, message,
           (SELECT group_concat(CASE type WHEN 'null' THEN 'null' ELSE value END, ' ')
              FROM json_each(records.fields)
             WHERE type IN ('text', 'object', 'array', 'null')) AS text
      FROM records
) WHERE message IS NOT NULL OR text IS NOT NULL;
"#,
    // 4: trust. Storage classes (0 ops, 1 audit), the audit chain and its signed
    // checkpoints, append-only triggers, quarantined records, redaction counts.
    r#"
ALTER TABLE records ADD COLUMN class INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS records_audit ON records (seq) WHERE class = 1;

-- One row per audit record, in chain order (see collector/src/audit/chain.rs):
-- n is dense from 1 (or from the newest anchor), content_hash the SHA-256 of the
-- record's row, chain_hash the keyed HMAC linking it to row n - 1.
CREATE TABLE IF NOT EXISTS audit_chain (
    n            INTEGER PRIMARY KEY,
    record_seq   INTEGER NOT NULL UNIQUE,
    content_hash BLOB NOT NULL,
    chain_hash   BLOB NOT NULL,
    tombstone    INTEGER NOT NULL DEFAULT 0
);

-- Signed checkpoints and anchors, as also appended to the checkpoint file.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    id         INTEGER PRIMARY KEY,
    kind       TEXT NOT NULL,
    n          INTEGER NOT NULL,
    chain_hash BLOB NOT NULL,
    ts         INTEGER NOT NULL,
    pruned     INTEGER NOT NULL,
    signature  BLOB NOT NULL
);

-- Audit rows change only inside the retention and DSAR paths, which hold the
-- 'audit_unlock' row of meta for the length of their transaction.
CREATE TRIGGER IF NOT EXISTS records_audit_no_update BEFORE UPDATE ON records
WHEN OLD.class = 1 AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'audit_unlock')
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS records_audit_no_delete BEFORE DELETE ON records
WHEN OLD.class = 1 AND NOT EXISTS (SELECT 1 FROM meta WHERE key = 'audit_unlock')
BEGIN SELECT RAISE(ABORT, 'audit records are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_chain_no_update BEFORE UPDATE ON audit_chain
WHEN NOT EXISTS (SELECT 1 FROM meta WHERE key = 'audit_unlock')
BEGIN SELECT RAISE(ABORT, 'the audit chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_chain_no_delete BEFORE DELETE ON audit_chain
WHEN NOT EXISTS (SELECT 1 FROM meta WHERE key = 'audit_unlock')
BEGIN SELECT RAISE(ABORT, 'the audit chain is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit checkpoints are append-only'); END;

-- Records refused by validation (e.g. a missing required scope field), kept with the
-- reason instead of being dropped. record is the contract JSON, redacted.
CREATE TABLE IF NOT EXISTS quarantine (
    id        INTEGER PRIMARY KEY,
    received  INTEGER NOT NULL,
    reason    TEXT NOT NULL,
    record_id BLOB,
    service   TEXT,
    record    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quarantine_received ON quarantine (received);

-- How many values each redaction rule replaced (never the values).
CREATE TABLE IF NOT EXISTS redaction_counts (
    rule TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;

DROP VIEW IF EXISTS records_view;
CREATE VIEW records_view AS
SELECT seq,
       lower(hex(id)) AS id,
       strftime('%Y-%m-%dT%H:%M:%f', ts / 1000000000.0, 'unixepoch') || 'Z' AS time,
       CASE kind WHEN 1 THEN 'event' WHEN 2 THEN 'span_start' WHEN 3 THEN 'span_end' END AS kind,
       CASE level WHEN 1 THEN 'TRACE' WHEN 2 THEN 'DEBUG' WHEN 3 THEN 'INFO' WHEN 4 THEN 'WARN' WHEN 5 THEN 'ERROR' END AS level,
       name, target, message,
       lower(hex(trace_id)) AS trace_id, lower(hex(span_id)) AS span_id, lower(hex(parent_span_id)) AS parent_span_id,
       run_id, step_id, tenant, env, project, app, surface, user_id, session_id, request_id,
       service, host, pid, file, line, category,
       CASE status WHEN 1 THEN 'ok' WHEN 2 THEN 'error' END AS status,
       duration_ns, busy_ns, idle_ns, fields,
       CASE class WHEN 1 THEN 'audit' ELSE 'ops' END AS class
FROM records;
"#,
    // 5: agent runs. The runs view gains LLM and tool call counts, tokens, cost, models
    // and the agent; llm_calls and tool_calls hold one row per finished call (keyed by
    // the seq of the span's end record), kept by the writer. Cost is computed at ingest
    // from the price table (collector/src/cost.rs); what a provider reported is kept
    // apart in provider_cost. Calls already stored are backfilled here (their cost
    // comes with `logbook cost recompute`).
    r#"
ALTER TABLE runs ADD COLUMN llm_calls         INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN tool_calls        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN input_tokens      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN output_tokens     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cache_read_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cost              REAL;
ALTER TABLE runs ADD COLUMN provider_cost     REAL;
ALTER TABLE runs ADD COLUMN models            TEXT;
ALTER TABLE runs ADD COLUMN agent             TEXT;

CREATE TABLE IF NOT EXISTS llm_calls (
    seq               INTEGER PRIMARY KEY,
    ts                INTEGER NOT NULL,
    end_ts            INTEGER NOT NULL,
    run_id            TEXT,
    trace_id          BLOB NOT NULL,
    span_id           BLOB,
    parent_span_id    BLOB,
    tenant            TEXT,
    user_id           TEXT,
    app               TEXT,
    service           TEXT NOT NULL,
    operation         TEXT,
    provider          TEXT,
    request_model     TEXT,
    response_model    TEXT,
    model             TEXT,
    agent             TEXT,
    input_messages    TEXT,
    output_messages   TEXT,
    finish_reasons    TEXT,
    input_tokens      INTEGER,
    output_tokens     INTEGER,
    cache_read_tokens INTEGER,
    cost              REAL,
    provider_cost     REAL,
    duration_ns       INTEGER,
    status            TEXT NOT NULL,
    error             TEXT
);
CREATE INDEX IF NOT EXISTS llm_calls_ts     ON llm_calls (ts);
CREATE INDEX IF NOT EXISTS llm_calls_run    ON llm_calls (run_id, ts) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS llm_calls_model  ON llm_calls (model, ts);
CREATE INDEX IF NOT EXISTS llm_calls_tenant ON llm_calls (tenant, ts) WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS llm_calls_user   ON llm_calls (user_id, ts) WHERE user_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS tool_calls (
    seq            INTEGER PRIMARY KEY,
    ts             INTEGER NOT NULL,
    end_ts         INTEGER NOT NULL,
    run_id         TEXT,
    trace_id       BLOB NOT NULL,
    span_id        BLOB,
    parent_span_id BLOB,
    tenant         TEXT,
    user_id        TEXT,
    app            TEXT,
    service        TEXT NOT NULL,
    tool_name      TEXT,
    call_id        TEXT,
    arguments      TEXT,
    result         TEXT,
    duration_ns    INTEGER,
    status         TEXT NOT NULL,
    error          TEXT
);
CREATE INDEX IF NOT EXISTS tool_calls_ts     ON tool_calls (ts);
CREATE INDEX IF NOT EXISTS tool_calls_run    ON tool_calls (run_id, ts) WHERE run_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS tool_calls_tool   ON tool_calls (tool_name, ts);
CREATE INDEX IF NOT EXISTS tool_calls_tenant ON tool_calls (tenant, ts) WHERE tenant IS NOT NULL;
CREATE INDEX IF NOT EXISTS tool_calls_user   ON tool_calls (user_id, ts) WHERE user_id IS NOT NULL;

INSERT OR IGNORE INTO llm_calls
SELECT seq, ts - coalesce(duration_ns, 0), ts, run_id, trace_id, span_id, parent_span_id,
       tenant, user_id, app, service,
       json_extract(fields, '$."gen_ai.operation.name"'),
       coalesce(json_extract(fields, '$."gen_ai.provider.name"'), json_extract(fields, '$."gen_ai.system"')),
       json_extract(fields, '$."gen_ai.request.model"'),
       json_extract(fields, '$."gen_ai.response.model"'),
       coalesce(json_extract(fields, '$."gen_ai.response.model"'), json_extract(fields, '$."gen_ai.request.model"')),
       json_extract(fields, '$."gen_ai.agent.name"'),
       json_extract(fields, '$."gen_ai.input.messages"'),
       json_extract(fields, '$."gen_ai.output.messages"'),
       json_extract(fields, '$."gen_ai.response.finish_reasons"'),
       CASE WHEN json_type(fields, '$."gen_ai.usage.input_tokens"') = 'integer'
             AND json_extract(fields, '$."gen_ai.usage.input_tokens"') >= 0
            THEN json_extract(fields, '$."gen_ai.usage.input_tokens"') END,
       CASE WHEN json_type(fields, '$."gen_ai.usage.output_tokens"') = 'integer'
             AND json_extract(fields, '$."gen_ai.usage.output_tokens"') >= 0
            THEN json_extract(fields, '$."gen_ai.usage.output_tokens"') END,
       CASE WHEN json_type(fields, '$."gen_ai.usage.cache_read.input_tokens"') = 'integer'
             AND json_extract(fields, '$."gen_ai.usage.cache_read.input_tokens"') >= 0
            THEN json_extract(fields, '$."gen_ai.usage.cache_read.input_tokens"') END,
       NULL,
       CASE WHEN json_type(fields, '$."gen_ai.usage.cost"') IN ('integer', 'real')
            THEN CAST(json_extract(fields, '$."gen_ai.usage.cost"') AS REAL) END,
       duration_ns,
       CASE status WHEN 2 THEN 'error' ELSE 'ok' END,
       coalesce(json_extract(fields, '$."error.type"'), json_extract(fields, '$."exception.type"'),
                json_extract(fields, '$."exception.message"'))
  FROM records
 WHERE category = 'llm_call' AND kind = 3 AND json_extract(fields, '$.tombstone') IS NULL;

INSERT OR IGNORE INTO tool_calls
SELECT seq, ts - coalesce(duration_ns, 0), ts, run_id, trace_id, span_id, parent_span_id,
       tenant, user_id, app, service,
       coalesce(json_extract(fields, '$."gen_ai.tool.name"'), name),
       json_extract(fields, '$."gen_ai.tool.call.id"'),
       json_extract(fields, '$."gen_ai.tool.call.arguments"'),
       json_extract(fields, '$."gen_ai.tool.call.result"'),
       duration_ns,
       CASE status WHEN 2 THEN 'error' ELSE 'ok' END,
       coalesce(json_extract(fields, '$."error.type"'), json_extract(fields, '$."exception.type"'),
                json_extract(fields, '$."exception.message"'))
  FROM records
 WHERE category = 'tool_call' AND kind = 3 AND json_extract(fields, '$.tombstone') IS NULL;

UPDATE runs SET
    llm_calls         = (SELECT count(*) FROM llm_calls c WHERE c.run_id = runs.run_id),
    input_tokens      = (SELECT coalesce(sum(input_tokens), 0) FROM llm_calls c WHERE c.run_id = runs.run_id),
    output_tokens     = (SELECT coalesce(sum(output_tokens), 0) FROM llm_calls c WHERE c.run_id = runs.run_id),
    cache_read_tokens = (SELECT coalesce(sum(cache_read_tokens), 0) FROM llm_calls c WHERE c.run_id = runs.run_id),
    provider_cost     = (SELECT sum(provider_cost) FROM llm_calls c WHERE c.run_id = runs.run_id),
    models            = (SELECT json_group_array(model) FROM (SELECT DISTINCT model FROM llm_calls c
                          WHERE c.run_id = runs.run_id AND model IS NOT NULL) HAVING count(*) > 0),
    tool_calls        = (SELECT count(*) FROM tool_calls c WHERE c.run_id = runs.run_id),
    agent             = (SELECT agent FROM llm_calls c WHERE c.run_id = runs.run_id
                          AND agent IS NOT NULL LIMIT 1)
 WHERE run_id IN (SELECT run_id FROM llm_calls UNION SELECT run_id FROM tool_calls);
"#,
    // 6: the collector core. Every trace is a unit of work: records without a run_id
    // that belong to a span tree form a run keyed by their trace (kind 'trace'), named
    // by its root span; their calls carry that key. Runs merge commutatively (see
    // collector/src/views/run.rs): the root (root_rank, then the lowest root_span_id)
    // decides status, duration, name, and root_trace/root_service/root_agent; other
    // "pick one" columns (trace_id, service, agent, the scope) hold the least value
    // seen; costs add up in whole nano-dollars; models are a sorted set. The audit
    // chain records the format of each row's content hash: 1 (SQLite's row, before)
    // or 2 (the canonical encoding, collector/src/audit/canonical.rs). Runs and calls
    // of records stored before are backfilled.
    r#"
ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run';
ALTER TABLE runs ADD COLUMN root_rank INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN root_trace BLOB;
ALTER TABLE runs ADD COLUMN root_service TEXT;
ALTER TABLE runs ADD COLUMN root_agent TEXT;
ALTER TABLE runs ADD COLUMN cost_nusd INTEGER;
ALTER TABLE runs ADD COLUMN provider_cost_nusd INTEGER;
UPDATE runs SET root_trace = trace_id, root_service = service, root_agent = agent,
    root_rank = CASE WHEN EXISTS (SELECT 1 FROM records r WHERE r.span_id = runs.root_span_id
                                     AND r.trace_id = runs.trace_id AND r.parent_span_id IS NOT NULL)
                     THEN 1 ELSE 2 END
 WHERE root_span_id IS NOT NULL;
UPDATE runs SET
    cost_nusd          = (SELECT CASE WHEN count(cost) > 0 THEN CAST(total(round(cost * 1e9)) AS INTEGER) END
                            FROM llm_calls c WHERE c.run_id = runs.run_id),
    provider_cost_nusd = (SELECT CASE WHEN count(provider_cost) > 0 THEN CAST(total(round(provider_cost * 1e9)) AS INTEGER) END
                            FROM llm_calls c WHERE c.run_id = runs.run_id);
ALTER TABLE runs DROP COLUMN cost;
ALTER TABLE runs DROP COLUMN provider_cost;
UPDATE runs SET models = (SELECT json_group_array(value ORDER BY value) FROM json_each(runs.models))
 WHERE models IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_trace ON runs (coalesce(root_trace, trace_id));

INSERT OR IGNORE INTO runs (run_id, kind, first_ts, last_ts, trace_id, service, tenant, env, project,
                            app, user_id, session_id, record_count, error_count, span_count)
SELECT lower(hex(trace_id)), 'trace', min(ts), max(ts), trace_id, min(service), min(tenant),
       min(env), min(project), min(app), min(user_id), min(session_id), count(*),
       sum(CASE WHEN level = 5 OR status = 2 THEN 1 ELSE 0 END), sum(kind = 3)
  FROM records WHERE run_id IS NULL AND span_id IS NOT NULL GROUP BY trace_id;
UPDATE runs SET (root_rank, root_span_id, root_name, root_trace, root_service, root_agent, status, duration_ns) =
    (SELECT 2, span_id, name, trace_id, service,
            CASE WHEN json_type(fields, '$."gen_ai.agent.name"') = 'text'
                 THEN json_extract(fields, '$."gen_ai.agent.name"') END,
            CASE WHEN kind = 3 THEN CASE status WHEN 2 THEN 'error' ELSE 'ok' END ELSE 'running' END,
            CASE WHEN kind = 3 THEN duration_ns END
       FROM records r
      WHERE r.trace_id = runs.trace_id AND r.run_id IS NULL AND r.parent_span_id IS NULL
        AND r.kind IN (2, 3)
      ORDER BY r.span_id, r.kind DESC LIMIT 1)
 WHERE kind = 'trace' AND EXISTS (
    SELECT 1 FROM records r WHERE r.trace_id = runs.trace_id AND r.run_id IS NULL
       AND r.parent_span_id IS NULL AND r.kind IN (2, 3));
UPDATE llm_calls SET run_id = lower(hex(trace_id)) WHERE run_id IS NULL AND span_id IS NOT NULL;
UPDATE tool_calls SET run_id = lower(hex(trace_id)) WHERE run_id IS NULL AND span_id IS NOT NULL;
-- Their call totals are recomputed after this migration (calls.rs, refresh_runs_of_kind);
-- their agent, the least of their calls' agents:
UPDATE runs SET agent = (SELECT min(agent) FROM llm_calls c WHERE c.run_id = runs.run_id)
 WHERE kind = 'trace';

ALTER TABLE audit_chain ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
"#,
    // 7: hardening. Who delivered each record (its origin: the transport and the peer's
    // uid and pid, as the collector saw them), interned in origins and covered by the
    // audit chain's canonical encoding; a refused record resent is quarantined once;
    // what the limits did is counted.
    r#"
CREATE TABLE IF NOT EXISTS origins (
    id     INTEGER PRIMARY KEY,
    origin TEXT NOT NULL UNIQUE
);
ALTER TABLE records ADD COLUMN origin_id INTEGER;

DELETE FROM quarantine WHERE record_id IS NOT NULL AND id NOT IN
    (SELECT min(id) FROM quarantine WHERE record_id IS NOT NULL GROUP BY record_id);
CREATE UNIQUE INDEX IF NOT EXISTS quarantine_record ON quarantine (record_id)
    WHERE record_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS limit_counts (
    what TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) WITHOUT ROWID;

DROP VIEW IF EXISTS records_view;
CREATE VIEW records_view AS
SELECT seq,
       lower(hex(id)) AS id,
       strftime('%Y-%m-%dT%H:%M:%f', ts / 1000000000.0, 'unixepoch') || 'Z' AS time,
       CASE kind WHEN 1 THEN 'event' WHEN 2 THEN 'span_start' WHEN 3 THEN 'span_end' END AS kind,
       CASE level WHEN 1 THEN 'TRACE' WHEN 2 THEN 'DEBUG' WHEN 3 THEN 'INFO' WHEN 4 THEN 'WARN' WHEN 5 THEN 'ERROR' END AS level,
       name, target, message,
       lower(hex(trace_id)) AS trace_id, lower(hex(span_id)) AS span_id, lower(hex(parent_span_id)) AS parent_span_id,
       run_id, step_id, tenant, env, project, app, surface, user_id, session_id, request_id,
       service, host, pid, file, line, category,
       CASE status WHEN 1 THEN 'ok' WHEN 2 THEN 'error' END AS status,
       duration_ns, busy_ns, idle_ns, fields,
       CASE class WHEN 1 THEN 'audit' ELSE 'ops' END AS class,
       (SELECT origin FROM origins o WHERE o.id = records.origin_id) AS origin
FROM records;
"#,
    // 7: API tokens. Only the SHA-256 of a token is kept; `id` is the public part of the
    // token text, so a token is found by it and then compared in constant time.
    r#"
CREATE TABLE IF NOT EXISTS api_tokens (
    id       TEXT PRIMARY KEY,
    name     TEXT NOT NULL,
    role     TEXT NOT NULL,
    tenant   TEXT,
    user_id  TEXT,
    hash     BLOB NOT NULL,
    created  INTEGER NOT NULL,
    revoked  INTEGER
) WITHOUT ROWID;
"#,
    // 8: shared runs. A run keeps the greatest tenant and user of its records beside
    // the least: where they differ, its totals are several tenants' (or users'), and a
    // reader scoped to one does not see it. Runs stored before get theirs from their
    // records (a run's records by its run id; a trace's, those without one).
    r#"
ALTER TABLE runs ADD COLUMN tenant_max TEXT;
ALTER TABLE runs ADD COLUMN user_max TEXT;
UPDATE runs SET
    tenant_max = CASE kind
        WHEN 'trace' THEN (SELECT max(r.tenant) FROM records r
                           WHERE r.trace_id = runs.trace_id AND r.run_id IS NULL AND r.span_id IS NOT NULL)
        ELSE (SELECT max(r.tenant) FROM records r WHERE r.run_id = runs.run_id) END,
    user_max = CASE kind
        WHEN 'trace' THEN (SELECT max(r.user_id) FROM records r
                           WHERE r.trace_id = runs.trace_id AND r.run_id IS NULL AND r.span_id IS NOT NULL)
        ELSE (SELECT max(r.user_id) FROM records r WHERE r.run_id = runs.run_id) END;
"#,
    // 9: prompts and responses sent as GenAI events (log records apart from their
    // span) fold into their LLM call; `messages_from_events` marks which of a call's
    // messages came from them (bit 1 the input, bit 2 the output: attributes always
    // win), found by its span.
    r#"
ALTER TABLE llm_calls ADD COLUMN messages_from_events INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS llm_calls_span ON llm_calls (trace_id, span_id);
"#,
    // 10: the events of a span, found by it: a run's log lines sent apart from their
    // spans, a call's GenAI events.
    r#"
CREATE INDEX IF NOT EXISTS records_span_events ON records (trace_id, span_id, ts)
    WHERE kind = 1 AND span_id IS NOT NULL;
"#,
    // 11: a session's runs, found by it (the web UI's sessions and transcripts).
    r#"
CREATE INDEX IF NOT EXISTS runs_session ON runs (session_id, first_ts)
    WHERE session_id IS NOT NULL;
"#,
    // 12: forwarding: how far each destination has come (see crate::forward).
    r#"
CREATE TABLE IF NOT EXISTS forwards (
    name       TEXT PRIMARY KEY,
    cursor     INTEGER NOT NULL,
    sent       INTEGER NOT NULL,
    refused    INTEGER NOT NULL,
    failures   INTEGER NOT NULL,
    last_error TEXT,
    updated    INTEGER NOT NULL
);
"#,
    // 13: monitoring: how far the monitor has read the stream, exception groups, span
    // metrics and log volume by minute and hour (see crate::monitor,
    // crate::store::exceptions and crate::store::metrics).
    r#"
CREATE TABLE IF NOT EXISTS monitor_state (
    name    TEXT PRIMARY KEY,
    cursor  INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS exception_groups (
    fingerprint        TEXT PRIMARY KEY,
    basis              TEXT NOT NULL,
    kind               TEXT NOT NULL,
    message            TEXT NOT NULL,
    culprit            TEXT NOT NULL,
    first_seen         INTEGER NOT NULL,
    last_seen          INTEGER NOT NULL,
    count              INTEGER NOT NULL,
    first_id           TEXT NOT NULL,
    last_id            TEXT NOT NULL,
    last_run           TEXT,
    last_trace         TEXT,
    state              TEXT NOT NULL,
    resolved_in        TEXT,
    changed            INTEGER,
    ignore_until       INTEGER,
    ignore_until_count INTEGER
);
CREATE INDEX IF NOT EXISTS exception_groups_last ON exception_groups (last_seen);
CREATE TABLE IF NOT EXISTS exception_hours (
    fingerprint TEXT NOT NULL,
    hour        INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, hour)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS exception_tags (
    fingerprint TEXT NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT NOT NULL,
    n           INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (fingerprint, kind, value)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS exception_tags_value ON exception_tags (kind, value);
CREATE TABLE IF NOT EXISTS exception_notes (
    fingerprint TEXT NOT NULL,
    ts          INTEGER NOT NULL,
    author      TEXT NOT NULL,
    text        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS exception_notes_group ON exception_notes (fingerprint, ts);
CREATE TABLE IF NOT EXISTS span_metrics (
    width   INTEGER NOT NULL,
    period  INTEGER NOT NULL,
    service TEXT NOT NULL,
    name    TEXT NOT NULL,
    model   TEXT NOT NULL,
    count   INTEGER NOT NULL,
    errors  INTEGER NOT NULL,
    slow    INTEGER NOT NULL,
    sum_ns  INTEGER NOT NULL,
    sketch  BLOB NOT NULL,
    PRIMARY KEY (width, period, service, name, model)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_volume (
    width   INTEGER NOT NULL,
    period  INTEGER NOT NULL,
    service TEXT NOT NULL,
    level   INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (width, period, service, level)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tool_repeats (
    run_id    TEXT NOT NULL,
    tool      TEXT NOT NULL,
    args_hash TEXT NOT NULL,
    arguments TEXT NOT NULL,
    service   TEXT NOT NULL,
    n         INTEGER NOT NULL,
    first_ts  INTEGER NOT NULL,
    last_ts   INTEGER NOT NULL,
    PRIMARY KEY (run_id, tool, args_hash)
);
CREATE INDEX IF NOT EXISTS tool_repeats_n ON tool_repeats (n);
CREATE TABLE IF NOT EXISTS alert_state (
    rule      TEXT NOT NULL,
    key       TEXT NOT NULL,
    state     TEXT NOT NULL,
    since     INTEGER NOT NULL,
    last_sent INTEGER,
    labels    TEXT NOT NULL,
    value     REAL NOT NULL,
    summary   TEXT NOT NULL,
    PRIMARY KEY (rule, key)
);
CREATE TABLE IF NOT EXISTS alert_events (
    id        INTEGER PRIMARY KEY,
    ts        INTEGER NOT NULL,
    rule      TEXT NOT NULL,
    key       TEXT NOT NULL,
    state     TEXT NOT NULL,
    labels    TEXT NOT NULL,
    value     REAL NOT NULL,
    summary   TEXT NOT NULL,
    delivery  TEXT NOT NULL,
    attempts  INTEGER NOT NULL
);
"#,
];

/// The columns of `records`, in the order every statement of this backend reads and
/// writes them (and format 1 of the audit chain hashed them, up to `class`): the
/// record contract's keys, its scope fields named by their keys, the storage class,
/// and the record's origin (a row of `origins`).
pub const RECORD_COLUMNS: [&str; 34] = [
    keys::SEQ,
    keys::ID,
    keys::TS,
    keys::KIND,
    keys::LEVEL,
    keys::NAME,
    keys::TARGET,
    keys::MESSAGE,
    keys::TRACE_ID,
    keys::SPAN_ID,
    keys::PARENT_SPAN_ID,
    ScopeKey::RunId.as_str(),
    ScopeKey::StepId.as_str(),
    ScopeKey::Tenant.as_str(),
    ScopeKey::Env.as_str(),
    ScopeKey::Project.as_str(),
    ScopeKey::App.as_str(),
    ScopeKey::Surface.as_str(),
    ScopeKey::UserId.as_str(),
    ScopeKey::SessionId.as_str(),
    ScopeKey::RequestId.as_str(),
    keys::SERVICE,
    keys::HOST,
    keys::PID,
    keys::FILE,
    keys::LINE,
    keys::CATEGORY,
    keys::STATUS,
    keys::DURATION_NS,
    keys::BUSY_NS,
    keys::IDLE_NS,
    keys::FIELDS,
    "class",
    "origin_id",
];

/// The position of column `name` in [`RECORD_COLUMNS`], checked at compile time.
pub(super) const fn col(name: &str) -> usize {
    let mut i = 0;
    while i < RECORD_COLUMNS.len() {
        let c = RECORD_COLUMNS[i].as_bytes();
        let n = name.as_bytes();
        if c.len() == n.len() {
            let mut j = 0;
            while j < c.len() && c[j] == n[j] {
                j += 1;
            }
            if j == c.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("not a column of records")
}

/// The migration that made traces runs (their call totals are computed after it).
const TRACE_RUNS: usize = 6;

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        if i + 1 == TRACE_RUNS {
            super::calls::refresh_runs_of_kind(&tx, crate::store::RunKind::Trace.as_str())?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(conn: &Connection, q: &str) -> Vec<i64> {
        let mut stmt = conn
            .prepare("SELECT rowid FROM records_fts WHERE records_fts MATCH ? ORDER BY rowid")
            .unwrap();
        let rows = stmt.query_map([q], |r| r.get(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn version_3_rebuilds_the_text_index_of_existing_records() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..2] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute_batch(
            r#"INSERT INTO records (seq, id, ts, kind, level, name, target, message, trace_id,
                                    service, host, pid, fields) VALUES
               (1, x'01', 1, 1, 3, 'e', 't', 'rate limited', x'01', 's', 'h', 1,
                '{"model":"gpt-4o","n":5,"tags":["alpha"],"ok":true}'),
               (2, x'02', 2, 1, 4, 'e', 't', NULL, x'01', 's', 'h', 1, '{"tool":"web search"}'),
               (3, x'03', 3, 1, 3, 'e', 't', NULL, x'01', 's', 'h', 1, '{"n":7}');"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(search(&conn, r#""rate" "limited""#), [1]);
        assert_eq!(search(&conn, r#""gpt" "4o""#), [1]);
        assert_eq!(search(&conn, r#""alpha""#), [1]);
        assert_eq!(search(&conn, r#""web""#), [2]);
        // Numbers and booleans are not text.
        assert!(search(&conn, r#""7""#).is_empty());
        assert!(search(&conn, r#""true""#).is_empty());
        // Applied once: a second run changes nothing.
        migrate(&mut conn).unwrap();
        assert_eq!(search(&conn, r#""web""#), [2]);
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }

    #[test]
    fn version_5_backfills_calls_and_run_totals_with_typed_values_only() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        conn.execute_batch(
            r#"INSERT INTO runs (run_id, first_ts, last_ts, record_count) VALUES ('r1', 1, 9, 3);
               INSERT INTO records (seq, id, ts, kind, level, name, target, trace_id, run_id,
                                    service, host, pid, category, status, duration_ns, fields) VALUES
               (1, x'01', 9, 3, 3, 'chat', 't', x'01', 'r1', 's', 'h', 1, 'llm_call', 1, 4,
                '{"gen_ai.request.model":"gpt-4o","gen_ai.usage.input_tokens":100,
                  "gen_ai.usage.output_tokens":12.5,"gen_ai.usage.cost":"n/a",
                  "gen_ai.agent.name":"bot","gen_ai.input.messages":[{"role":"user","content":"hi"}]}'),
               (2, x'02', 9, 3, 3, 'chat', 't', x'01', 'r1', 's', 'h', 1, 'llm_call', 1, 4,
                '{"tombstone":true}'),
               (3, x'03', 9, 3, 3, 'lookup', 't', x'01', 'r1', 's', 'h', 1, 'tool_call', 2, 4,
                '{"exception.message":"timeout"}');"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let (n, input, output, cost, messages): (i64, Option<i64>, Option<i64>, Option<f64>, String) =
            conn.query_row(
                "SELECT count(*), input_tokens, output_tokens, provider_cost, input_messages FROM llm_calls",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!((n, input, output, cost), (1, Some(100), None, None));
        assert_eq!(messages, r#"[{"role":"user","content":"hi"}]"#);
        let (tool, error): (String, String) = conn
            .query_row("SELECT tool_name, error FROM tool_calls", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((tool.as_str(), error.as_str()), ("lookup", "timeout"));
        let run: (i64, i64, i64, String, String) = conn
            .query_row(
                "SELECT llm_calls, tool_calls, input_tokens, models, agent FROM runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(
            run,
            (1, 1, 100, r#"["gpt-4o"]"#.to_owned(), "bot".to_owned())
        );
    }

    #[test]
    fn version_6_makes_runs_of_traces_and_keeps_run_totals() {
        let mut conn = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..5] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        conn.execute_batch(
            r#"INSERT INTO runs (run_id, first_ts, last_ts, status, root_name, root_span_id, trace_id,
                                 service, agent, record_count, llm_calls, cost, models)
               VALUES ('r1', 1, 9, 'ok', 'job', x'01', x'aa', 'svc', 'bot', 2, 1, 0.25, '["m-2","m-1"]');
               INSERT INTO llm_calls (seq, ts, end_ts, run_id, trace_id, service, model, cost, status)
               VALUES (1, 1, 2, 'r1', x'aa', 'svc', 'm-2', 0.25, 'ok'),
                      (5, 3, 4, NULL, x'bb', 'web', 'm-1', 0.5, 'ok');
               UPDATE llm_calls SET span_id = x'05' WHERE seq = 5;
               INSERT INTO records (seq, id, ts, kind, level, name, target, trace_id, span_id,
                                    parent_span_id, run_id, service, host, pid, status, duration_ns, fields) VALUES
               (2, x'02', 10, 2, 3, 'GET /', 't', x'bb', x'01', NULL, NULL, 'web', 'h', 1, NULL, NULL, '{}'),
               (3, x'03', 11, 1, 5, 'e', 't', x'bb', x'01', NULL, NULL, 'web', 'h', 1, NULL, NULL, '{}'),
               (4, x'04', 12, 3, 3, 'db', 't', x'bb', x'05', x'01', NULL, 'web', 'h', 1, 1, 1, '{}'),
               (5, x'05', 13, 3, 3, 'GET /', 't', x'bb', x'01', NULL, NULL, 'web', 'h', 1, 2, 3, '{}'),
               (6, x'06', 14, 1, 3, 'loose', 't', x'cc', NULL, NULL, NULL, 'web', 'h', 1, NULL, NULL, '{}'),
               (7, x'07', 15, 2, 3, 'in flight', 't', x'dd', x'09', NULL, NULL, 'web', 'h', 1, NULL, NULL, '{}');

               INSERT INTO audit_chain (n, record_seq, content_hash, chain_hash) VALUES (1, 2, x'00', x'00');"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        type Row = (
            String,
            String,
            Option<String>,
            i64,
            i64,
            i64,
            Option<i64>,
            Option<String>,
        );
        let run = |key: &str| -> Row {
            conn.query_row(
                "SELECT kind, status, root_name, record_count, error_count, llm_calls, cost_nusd, models
                   FROM runs WHERE run_id = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?)),
            )
            .unwrap()
        };
        // The trace without run ids is a run now, named by its root, with its call.
        let key = "bb";
        assert_eq!(
            run(key),
            (
                "trace".into(),
                "error".into(),
                Some("GET /".into()),
                4,
                2,
                1,
                Some(500_000_000),
                Some(r#"["m-1"]"#.into())
            )
        );
        let call_run: String = conn
            .query_row("SELECT run_id FROM llm_calls WHERE seq = 5", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(call_run, key);
        // A trace still in flight (its root's start only) is a run too, running.
        assert_eq!(
            run("dd"),
            (
                "trace".into(),
                "running".into(),
                Some("in flight".into()),
                1,
                0,
                0,
                None,
                None
            )
        );
        // The event outside every span made no run; the old run kept its totals, in
        // nano-dollars, with its root's columns and its models sorted.
        assert_eq!(
            conn.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            3
        );
        assert_eq!(
            run("r1"),
            (
                "run".into(),
                "ok".into(),
                Some("job".into()),
                2,
                0,
                1,
                Some(250_000_000),
                Some(r#"["m-1","m-2"]"#.into())
            )
        );
        let (rank, root_service, root_agent): (i64, String, String) = conn
            .query_row(
                "SELECT root_rank, root_service, root_agent FROM runs WHERE run_id = 'r1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(
            (rank, root_service.as_str(), root_agent.as_str()),
            (2, "svc", "bot")
        );
        // Existing chain rows are format 1.
        let format: i64 = conn
            .query_row("SELECT format FROM audit_chain WHERE n = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(format, 1);
    }
}
