//! Reading: records (filters, keyset pages, the stream), runs, sessions, series,
//! stats, tokens, quarantine and latency.

use std::io;
use std::sync::Arc;

use logbook_proto::{
    Fields, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status, Str,
    Timestamp, TraceId,
};
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Transaction};

use crate::query::{Page, RecordFilter, RunFilter};
use crate::store::latency::Histogram;
use crate::store::{
    ApiToken, ForwardState, QuarantineRow, RunKind, RunSummary, SeriesPoint, SessionSummary,
    StoreError, StoreStats, StreamCursor, StreamPage,
};
use crate::views::call::usd;

/// A bound parameter.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// A parameter from a value.
pub(super) fn p<T: ToSql + Sync + Send + 'static>(v: T) -> Param {
    Box::new(v)
}

/// Every column a record is read from, in the order [`record_from_row`] reads them;
/// `FROM records` unaliased.
pub(super) const COLUMNS: &str = "seq, id, ts, kind, level, name, target, message, trace_id, \
    span_id, parent_span_id, run_id, step_id, tenant, env, project, app, surface, user_id, \
    session_id, request_id, service, host, pid, file, line, category, status, duration_ns, \
    busy_ns, idle_ns, fields::text, class, origin";

/// A `WHERE` clause under construction: terms written with `?` for each parameter,
/// numbered `$1`, `$2`, … as they are added.
#[derive(Default)]
pub(super) struct Where {
    pub(super) terms: Vec<String>,
    pub(super) params: Vec<Param>,
}

impl Where {
    /// Adds `term` (its `?`s stand for `params`, in order).
    pub(super) fn push(&mut self, term: &str, params: Vec<Param>) {
        let mut out = String::with_capacity(term.len() + 8);
        let mut n = self.params.len();
        for c in term.chars() {
            if c == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(c);
            }
        }
        self.terms.push(out);
        self.params.extend(params);
    }

    /// ` WHERE …`, or nothing.
    pub(super) fn sql(&self) -> String {
        if self.terms.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.terms.join(" AND "))
        }
    }

    /// The parameters, as the driver takes them.
    pub(super) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|b| &**b as &(dyn ToSql + Sync))
            .collect()
    }

    /// The terms of a record filter.
    pub(super) fn from_filter(f: &RecordFilter) -> Self {
        let mut w = Self::default();
        if let Some(t) = f.since {
            w.push("ts >= ?", vec![p(t.as_nanos())]);
        }
        if let Some(t) = f.until {
            w.push("ts < ?", vec![p(t.as_nanos())]);
        }
        if let Some(d) = f.min_duration_ns {
            w.push("duration_ns >= ?", vec![p(saturate(d))]);
        }
        if let Some(d) = f.max_duration_ns {
            w.push("duration_ns <= ?", vec![p(saturate(d))]);
        }
        if let Some(l) = f.min_level.filter(|l| *l > Level::Trace) {
            // Spelled out (our codes, not user text), so the planner can use the
            // partial index of WARN and ERROR.
            if l >= Level::Warn {
                w.push("level >= 4", vec![]);
            }
            w.push(&format!("level >= {}", l.code()), vec![]);
        }
        for (col, v) in [
            ("run_id", &f.run_id),
            ("tenant", &f.tenant),
            ("project", &f.project),
            ("app", &f.app),
            ("user_id", &f.user_id),
            ("category", &f.category),
            ("name", &f.name),
        ] {
            if let Some(v) = v {
                w.push(&format!("{col} = ?"), vec![p(v.clone())]);
            }
        }
        if let Some(t) = f.trace_id {
            w.push("trace_id = ?", vec![p(t.0.to_vec())]);
        }
        if let Some(k) = f.kind {
            w.push("kind = ?", vec![p(i16::from(k.code()))]);
        }
        if let Some(t) = &f.target {
            // The target itself or any module below it.
            w.push(
                "(target = ? OR (target >= ? AND target < ?))",
                vec![p(t.clone()), p(format!("{t}::")), p(format!("{t}:;"))],
            );
        }
        if let Some(text) = &f.text {
            // Every word's tokens in the text index; words of several tokens (`gpt-4o`)
            // also as a substring, so their order holds.
            w.push("tsv @@ plainto_tsquery('simple', ?)", vec![p(text.clone())]);
            for word in text.split_whitespace() {
                let parts = word
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|t| !t.is_empty())
                    .count();
                if parts > 1 {
                    w.push(
                        "(strpos(lower(coalesce(message, '')), ?) > 0 OR strpos(lower(fields::text), ?) > 0)",
                        vec![p(word.to_lowercase()), p(word.to_lowercase())],
                    );
                }
            }
        }
        for (key, value) in &f.fields {
            // The value as text (`true`, `false`, numbers as JSON writes them, strings
            // as they are), or, for a number, numerically equal (`1` is 1.0); an
            // array or object equal as JSON (jsonb writes its own spacing).
            let text = "(CASE jsonb_typeof(fields -> ?) WHEN 'string' THEN fields ->> ? \
                        ELSE (fields -> ?)::text END) = ?";
            let structured = serde_json::from_str::<serde_json::Value>(value)
                .ok()
                .filter(|v| v.is_array() || v.is_object());
            if let Some(v) = structured {
                w.push(
                    "fields -> ? = ?::text::jsonb",
                    vec![p(key.clone()), p(v.to_string())],
                );
                continue;
            }
            match value.parse::<f64>().ok().filter(|v| v.is_finite()) {
                Some(number) => w.push(
                    &format!(
                        "({text} OR (jsonb_typeof(fields -> ?) = 'number' AND (fields ->> ?)::float8 = ?))"
                    ),
                    vec![
                        p(key.clone()),
                        p(key.clone()),
                        p(key.clone()),
                        p(value.clone()),
                        p(key.clone()),
                        p(key.clone()),
                        p(number),
                    ],
                ),
                None => w.push(
                    text,
                    vec![p(key.clone()), p(key.clone()), p(key.clone()), p(value.clone())],
                ),
            }
        }
        w
    }
}

/// A `u64` as a `bigint`, saturating.
pub(super) fn saturate(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn id_bytes<const N: usize>(
    bytes: Option<Vec<u8>>,
    seq: i64,
    what: &str,
) -> Result<Option<[u8; N]>, StoreError> {
    bytes
        .map(|b| {
            <[u8; N]>::try_from(b.as_slice()).map_err(|_| StoreError::Corrupt {
                seq,
                message: format!("{what} has {} bytes, expected {N}", b.len()),
            })
        })
        .transpose()
}

/// A record from a row selected with [`COLUMNS`] (from column `at` on).
pub(super) fn record_from_row(row: &Row) -> Result<Record, StoreError> {
    let seq: i64 = row.try_get(0)?;
    let corrupt = |message: String| StoreError::Corrupt { seq, message };
    let kind_code: i16 = row.try_get(3)?;
    let kind = u8::try_from(kind_code)
        .ok()
        .and_then(Kind::from_code)
        .ok_or_else(|| corrupt(format!("kind {kind_code}")))?;
    let level_code: i16 = row.try_get(4)?;
    let level = u8::try_from(level_code)
        .ok()
        .and_then(Level::from_code)
        .ok_or_else(|| corrupt(format!("level {level_code}")))?;
    let id =
        id_bytes::<16>(row.try_get(1)?, seq, "id")?.ok_or_else(|| corrupt("id is null".into()))?;
    let name: String = row.try_get(5)?;
    let mut r = Record::new(
        RecordId(id),
        Timestamp(row.try_get(2)?),
        kind,
        level,
        Str::Owned(name),
    );
    r.seq = seq as u64;
    r.target = Str::Owned(row.try_get(6)?);
    r.message = row.try_get(7)?;
    r.trace_id = TraceId(
        id_bytes::<16>(row.try_get(8)?, seq, "trace_id")?
            .ok_or_else(|| corrupt("trace_id is null".into()))?,
    );
    r.span_id = id_bytes::<8>(row.try_get(9)?, seq, "span_id")?.map(SpanId);
    r.parent_span_id = id_bytes::<8>(row.try_get(10)?, seq, "parent_span_id")?.map(SpanId);
    let mut scope = Scope::new();
    for (i, key) in ScopeKey::ALL.iter().enumerate() {
        scope.set(*key, row.try_get::<_, Option<String>>(11 + i)?);
    }
    r.scope = Arc::new(scope);
    let pid: i64 = row.try_get(23)?;
    r.resource = Arc::new(Resource {
        service: row.try_get(21)?,
        host: row.try_get(22)?,
        pid: u32::try_from(pid).unwrap_or(0),
    });
    r.file = row.try_get::<_, Option<String>>(24)?.map(Str::Owned);
    r.line = row
        .try_get::<_, Option<i64>>(25)?
        .and_then(|l| u32::try_from(l).ok());
    r.category = row.try_get::<_, Option<String>>(26)?.map(Str::Owned);
    r.status = row
        .try_get::<_, Option<i16>>(27)?
        .map(|c| {
            u8::try_from(c)
                .ok()
                .and_then(Status::from_code)
                .ok_or_else(|| corrupt(format!("status {c}")))
        })
        .transpose()?;
    let nanos = |i: usize| -> Result<Option<u64>, StoreError> {
        Ok(row
            .try_get::<_, Option<i64>>(i)?
            .map(|v| u64::try_from(v).unwrap_or(0)))
    };
    r.duration_ns = nanos(28)?;
    r.busy_ns = nanos(29)?;
    r.idle_ns = nanos(30)?;
    let fields: String = row.try_get(31)?;
    r.fields =
        serde_json::from_str::<Fields>(&fields).map_err(|e| corrupt(format!("fields: {e}")))?;
    r.origin = row
        .try_get::<_, Option<String>>(33)?
        .map(|text| {
            logbook_proto::Origin::from_json(&text)
                .map(Arc::new)
                .map_err(|e| corrupt(format!("origin {text:?}: {e}")))
        })
        .transpose()?;
    Ok(r)
}

/// The records of `sql` (selecting [`COLUMNS`]).
pub(super) fn collect(
    c: &mut impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Record>, StoreError> {
    c.query(sql, params)?.iter().map(record_from_row).collect()
}

/// Columns `top_values` reads as they are (a level and a kind as their words).
const TOP_COLUMNS: &[(&str, &str)] = &[
    ("service", "service"),
    ("host", "host"),
    ("name", "name"),
    ("target", "target"),
    ("category", "category"),
    ("run_id", "run_id"),
    ("tenant", "tenant"),
    ("env", "env"),
    ("project", "project"),
    ("app", "app"),
    ("user_id", "user_id"),
    ("user", "user_id"),
    ("session_id", "session_id"),
    ("level", "CASE level WHEN 1 THEN 'TRACE' WHEN 2 THEN 'DEBUG' WHEN 3 THEN 'INFO' WHEN 4 THEN 'WARN' ELSE 'ERROR' END"),
    ("kind", "CASE kind WHEN 1 THEN 'event' WHEN 2 THEN 'span_start' ELSE 'span_end' END"),
    ("status", "CASE status WHEN 1 THEN 'ok' WHEN 2 THEN 'error' END"),
];

pub(super) fn query(
    c: &mut Client,
    f: &RecordFilter,
    page: &Page,
) -> Result<Vec<Record>, StoreError> {
    let mut w = Where::from_filter(f);
    if let Some(cur) = page.before {
        w.push(
            "(ts, seq) < (?, ?)",
            vec![p(cur.ts.as_nanos()), p(saturate(cur.seq))],
        );
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM records{} ORDER BY ts DESC, seq DESC LIMIT {}",
        w.sql(),
        page.limit
    );
    collect(c, &sql, &w.refs())
}

pub(super) fn top_values(
    c: &mut Client,
    f: &RecordFilter,
    key: &str,
    sample: usize,
    limit: usize,
) -> Result<(Vec<(String, u64)>, u64), StoreError> {
    let mut w = Where::from_filter(f);
    let expr = match TOP_COLUMNS.iter().find(|(k, _)| *k == key) {
        Some((_, e)) => (*e).to_owned(),
        None => {
            // Only records that have the field.
            w.push("jsonb_exists(fields, ?)", vec![p(key.to_owned())]);
            let n = w.params.len() + 1;
            w.params.push(p(key.to_owned()));
            w.params.push(p(key.to_owned()));
            format!(
                "(CASE jsonb_typeof(fields -> ${n}) WHEN 'string' THEN fields ->> ${n} ELSE (fields -> ${})::text END)",
                n + 1
            )
        }
    };
    let sql = format!(
        "SELECT v, count(*), (sum(count(*)) OVER ())::bigint FROM
           (SELECT {expr} AS v FROM records{} ORDER BY ts DESC, seq DESC LIMIT {sample}) s
          GROUP BY v ORDER BY count(*) DESC, v LIMIT {limit}",
        w.sql()
    );
    let mut out = Vec::new();
    let mut looked = 0u64;
    for row in c.query(&sql, &w.refs())? {
        let v: Option<String> = row.try_get(0)?;
        let n: i64 = row.try_get(1)?;
        out.push((
            v.unwrap_or_else(|| "(none)".into()),
            u64::try_from(n).unwrap_or(0),
        ));
        looked = u64::try_from(row.try_get::<_, i64>(2)?).unwrap_or(0);
    }
    Ok((out, looked))
}

pub(super) fn count(c: &mut Client, f: &RecordFilter) -> Result<u64, StoreError> {
    let by_level_and_kind_only = RecordFilter {
        min_level: None,
        kind: None,
        ..f.clone()
    } == RecordFilter::default();
    if by_level_and_kind_only {
        // Kept per (kind, level) by every write: no scan of the records at all.
        let level = i16::from(f.min_level.map_or(0, Level::code));
        let kind = f.kind.map(|k| i16::from(k.code()));
        let n: i64 = c
            .query_one(
                "SELECT coalesce(sum(n), 0)::bigint FROM record_counts
                  WHERE level >= $1 AND ($2::smallint IS NULL OR kind = $2)",
                &[&level, &kind],
            )?
            .get(0);
        return Ok(u64::try_from(n).unwrap_or(0));
    }
    let w = Where::from_filter(f);
    let n: i64 = c
        .query_one(
            &format!("SELECT count(*) FROM records{}", w.sql()),
            &w.refs(),
        )?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Rows fetched at a time by scans: constant memory whatever matches.
const SCAN_BATCH: i32 = 1000;

pub(super) fn scan(
    c: &mut Client,
    f: &RecordFilter,
    visit: &mut dyn FnMut(Record) -> io::Result<()>,
) -> Result<u64, StoreError> {
    let w = Where::from_filter(f);
    scan_where(c, &w, visit)
}

/// Every record matching `w`, oldest first, to `visit`, read through a portal.
pub(super) fn scan_where(
    c: &mut Client,
    w: &Where,
    visit: &mut dyn FnMut(Record) -> io::Result<()>,
) -> Result<u64, StoreError> {
    let mut tx = c.transaction()?;
    let sql = format!("SELECT {COLUMNS} FROM records{} ORDER BY ts, seq", w.sql());
    let portal = tx.bind(sql.as_str(), &w.refs())?;
    let mut n = 0;
    loop {
        let rows = tx.query_portal(&portal, SCAN_BATCH)?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            visit(record_from_row(row)?).map_err(StoreError::Stopped)?;
            n += 1;
        }
    }
    tx.commit()?;
    Ok(n)
}

/// The end of the stream: past every sequence number handed out. Numbers are handed
/// out under the writers' lock and committed in order, so everything at or before it
/// that will ever be stored is stored.
pub(super) fn stream_end(c: &mut Client) -> Result<StreamCursor, StoreError> {
    let mut tx = c.transaction()?;
    let end = settled_end(&mut tx)?;
    tx.commit()?;
    Ok(end)
}

/// The stream's end once no commit is in flight: numbers are handed out under the
/// writers' lock and committed before it is released, so waiting for it (shared, not
/// excluding other readers; held until the caller's transaction ends, so no writer
/// hands out more meanwhile) makes every number at or below the end committed or
/// never used. A statement after this one, in READ COMMITTED, sees all of them.
fn settled_end(tx: &mut Transaction<'_>) -> Result<StreamCursor, StoreError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1)",
        &[&super::WRITE_LOCK],
    )?;
    let n: i64 = tx
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM records_seq",
            &[],
        )?
        .get(0);
    Ok(StreamCursor::from_backend(u64::try_from(n).unwrap_or(0)))
}

/// Records after `cursor` matching `f`, in sequence order; the page's cursor is the
/// last examined, or the stream's end when the page is not full.
pub(super) fn stream_after(
    c: &mut Client,
    cursor: StreamCursor,
    f: &RecordFilter,
    limit: usize,
) -> Result<StreamPage, StoreError> {
    // The end first, settled (the lock released at once: every number at or below it
    // is committed or never used); then the records up to it, read by a later
    // statement, whose snapshot holds every commit up to the end. No writer waits for
    // the read itself.
    let end = stream_end(c)?;
    let mut tx = c.transaction()?;
    let mut w = Where::from_filter(f);
    w.push("seq > ?", vec![p(saturate(cursor.backend_position()))]);
    w.push("seq <= ?", vec![p(saturate(end.backend_position()))]);
    let sql = format!(
        "SELECT {COLUMNS} FROM records{} ORDER BY seq LIMIT {limit}",
        w.sql()
    );
    let records = collect(&mut tx, &sql, &w.refs())?;
    tx.commit()?;
    let next = if records.len() == limit {
        records
            .last()
            .map_or(cursor, |r| StreamCursor::from_backend(r.seq))
    } else {
        end.max(cursor)
    };
    Ok(StreamPage {
        items: records
            .into_iter()
            .map(|record| crate::store::StreamItem {
                cursor: StreamCursor::from_backend(record.seq),
                record,
            })
            .collect(),
        cursor: next,
    })
}

pub(super) fn get(c: &mut Client, id: RecordId) -> Result<Option<Record>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM records WHERE id = $1");
    Ok(collect(c, &sql, &[&&id.0[..]])?.pop())
}

pub(super) fn run_records(
    c: &mut Client,
    key: &str,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    let run = c.query_opt(
        "SELECT kind, first_ts, last_ts FROM runs WHERE run_id = $1",
        &[&key],
    )?;
    let kind: Option<String> = run.as_ref().map(|r| r.get(0));
    if kind.as_deref() == Some(crate::store::RunKind::Trace.as_str()) {
        if let Ok(trace) = key.parse::<TraceId>() {
            let sql = format!(
                "SELECT {COLUMNS} FROM records
                  WHERE trace_id = $1 AND run_id IS NULL AND span_id IS NOT NULL
                  ORDER BY ts, seq LIMIT {limit}"
            );
            return collect(c, &sql, &[&&trace.0[..]]);
        }
    }
    // The run's time range (its rows only ever widen it) lets the planner skip the
    // other days' partitions; events of its spans sent apart are looked for a day
    // either side.
    let (first, last): (i64, i64) = run.map_or((i64::MIN, i64::MAX), |r| (r.get(1), r.get(2)));
    let (lo, hi) = (
        first.saturating_sub(super::schema::DAY_NS),
        last.saturating_add(super::schema::DAY_NS),
    );
    // The run's records, and the events without a run id that happened in its spans
    // (log lines sent apart from their spans carry their trace and span only).
    let sql = format!(
        "SELECT {COLUMNS} FROM records WHERE run_id = $1 AND ts BETWEEN $2 AND $3
         UNION ALL
         SELECT {COLUMNS} FROM records
          WHERE kind = 1 AND span_id IS NOT NULL AND run_id IS NULL AND ts BETWEEN $4 AND $5
            AND (trace_id, span_id) IN
                (SELECT DISTINCT trace_id, span_id FROM records
                  WHERE run_id = $1 AND kind = 3 AND span_id IS NOT NULL
                    AND ts BETWEEN $2 AND $3)
         ORDER BY 3, 1 LIMIT {limit}"
    );
    collect(c, &sql, &[&key, &first, &last, &lo, &hi])
}

/// A run's columns: the root's trace, service and agent where it has them, else the
/// least seen (see `crate::views::run`).
const RUN_COLUMNS: &str = "run_id, kind, first_ts, last_ts, status, duration_ns, root_name,
    coalesce(root_trace, trace_id), coalesce(root_service, service), tenant, env, project, app,
    user_id, session_id, record_count, error_count, span_count, coalesce(root_agent, agent),
    llm_calls, tool_calls, input_tokens, output_tokens, cache_read_tokens, cost_nusd,
    provider_cost_nusd, models::text,
    (tenant IS DISTINCT FROM tenant_max OR user_id IS DISTINCT FROM user_max)";

fn run_from_row(row: &Row) -> Result<RunSummary, StoreError> {
    let count = |i: usize| -> Result<u64, StoreError> {
        Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
    };
    let trace: Option<Vec<u8>> = row.try_get(7)?;
    let kind: String = row.try_get(1)?;
    Ok(RunSummary {
        run_id: row.try_get(0)?,
        kind: if kind == RunKind::Trace.as_str() {
            RunKind::Trace
        } else {
            RunKind::Run
        },
        started: Timestamp(row.try_get(2)?),
        last_seen: Timestamp(row.try_get(3)?),
        status: row.try_get(4)?,
        duration_ns: row
            .try_get::<_, Option<i64>>(5)?
            .map(|v| u64::try_from(v).unwrap_or(0)),
        root_name: row.try_get(6)?,
        trace_id: trace
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
            .map(TraceId),
        service: row.try_get(8)?,
        tenant: row.try_get(9)?,
        env: row.try_get(10)?,
        project: row.try_get(11)?,
        app: row.try_get(12)?,
        user_id: row.try_get(13)?,
        session_id: row.try_get(14)?,
        records: count(15)?,
        errors: count(16)?,
        spans: count(17)?,
        agent: row.try_get(18)?,
        llm_calls: count(19)?,
        tool_calls: count(20)?,
        input_tokens: count(21)?,
        output_tokens: count(22)?,
        cache_read_tokens: count(23)?,
        cost: row.try_get::<_, Option<i64>>(24)?.map(usd),
        provider_cost: row.try_get::<_, Option<i64>>(25)?.map(usd),
        models: row
            .try_get::<_, Option<String>>(26)?
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        shared: row.try_get::<_, Option<bool>>(27)?.unwrap_or(false),
    })
}

fn run_conditions(f: &RunFilter) -> Where {
    let mut w = Where::default();
    if let Some(t) = f.since {
        w.push("first_ts >= ?", vec![p(t.as_nanos())]);
    }
    if let Some(t) = f.until {
        w.push("first_ts < ?", vec![p(t.as_nanos())]);
    }
    for (col, v) in [
        ("tenant", &f.tenant),
        ("user_id", &f.user_id),
        ("coalesce(root_service, service)", &f.service),
        ("status", &f.status),
        ("coalesce(root_agent, agent)", &f.agent),
    ] {
        if let Some(v) = v {
            w.push(&format!("{col} = ?"), vec![p(v.clone())]);
        }
    }
    if let Some(k) = f.kind {
        w.push("kind = ?", vec![p(k.as_str().to_owned())]);
    }
    if let Some(s) = &f.session_id {
        w.push("session_id = ?", vec![p(s.clone())]);
    }
    if let Some(m) = &f.model {
        w.push(
            "coalesce(models, '[]'::jsonb) @> jsonb_build_array(?::text)",
            vec![p(m.clone())],
        );
    }
    if let Some(t) = &f.text {
        w.push(
            "strpos(lower(coalesce(root_name, '') || ' ' || run_id || ' ' || coalesce(root_agent, agent, '')), lower(?)) > 0",
            vec![p(t.clone())],
        );
    }
    for (key, value) in &f.root_fields {
        // The root span's end record, else its start: the fields it ended with.
        w.push(
            "EXISTS (SELECT 1 FROM records r WHERE r.run_id = runs.run_id
                AND r.span_id = runs.root_span_id AND r.kind IN (2, 3)
                AND (CASE jsonb_typeof(r.fields -> ?) WHEN 'string' THEN r.fields ->> ?
                     ELSE (r.fields -> ?)::text END) = ?)",
            vec![
                p(key.clone()),
                p(key.clone()),
                p(key.clone()),
                p(value.clone()),
            ],
        );
    }
    if f.unshared {
        w.push(
            "tenant IS NOT DISTINCT FROM tenant_max AND user_id IS NOT DISTINCT FROM user_max",
            vec![],
        );
    }
    w
}

pub(super) fn runs(c: &mut Client, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
    let mut w = run_conditions(f);
    if let Some(a) = &f.after {
        w.push(
            "(first_ts < ? OR (first_ts = ? AND run_id > ?))",
            vec![
                p(a.started.as_nanos()),
                p(a.started.as_nanos()),
                p(a.run_id.clone()),
            ],
        );
    }
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs{} ORDER BY first_ts DESC, run_id LIMIT {}",
        w.sql(),
        f.limit
    );
    c.query(&sql, &w.refs())?.iter().map(run_from_row).collect()
}

pub(super) fn count_runs(c: &mut Client, f: &RunFilter) -> Result<u64, StoreError> {
    let w = run_conditions(f);
    let n: i64 = c
        .query_one(&format!("SELECT count(*) FROM runs{}", w.sql()), &w.refs())?
        .get(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

pub(super) fn run(c: &mut Client, key: &str) -> Result<Option<RunSummary>, StoreError> {
    c.query_opt(
        &format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = $1"),
        &[&key],
    )?
    .as_ref()
    .map(run_from_row)
    .transpose()
}

pub(super) fn runs_of_trace(c: &mut Client, trace: TraceId) -> Result<Vec<RunSummary>, StoreError> {
    c.query(
        &format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE coalesce(root_trace, trace_id) = $1
             ORDER BY first_ts, run_id"
        ),
        &[&&trace.0[..]],
    )?
    .iter()
    .map(run_from_row)
    .collect()
}

/// The bucket of a time column: `(ts - since) / bucket`.
fn bucket_of(column: &str, since: i64, bucket_ns: i64) -> String {
    format!("(({column} - ({since})::bigint) / {})", bucket_ns.max(1))
}

/// Series points from rows of a bucket number and `values` numbers.
fn points(
    c: &mut Client,
    sql: &str,
    w: &Where,
    since: i64,
    bucket_ns: i64,
    values: usize,
) -> Result<Vec<SeriesPoint>, StoreError> {
    c.query(sql, &w.refs())?
        .iter()
        .map(|row| {
            let b: i64 = row.try_get(0)?;
            let mut v = Vec::with_capacity(values);
            for i in 1..=values {
                v.push(row.try_get::<_, Option<f64>>(i)?.unwrap_or(0.0));
            }
            Ok(SeriesPoint {
                t: Timestamp(since + b * bucket_ns),
                values: v,
            })
        })
        .collect()
}

pub(super) fn record_series(
    c: &mut Client,
    f: &RecordFilter,
    bucket_ns: i64,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let since = f.since.map_or(0, |t| t.as_nanos());
    let b = bucket_of("ts", since, bucket_ns);
    let w = Where::from_filter(f);
    points(
        c,
        &format!(
            "SELECT {b} AS b, count(*)::float8, count(*) FILTER (WHERE level = 4)::float8,
                    count(*) FILTER (WHERE level = 5)::float8
               FROM records{} GROUP BY b ORDER BY b",
            w.sql()
        ),
        &w,
        since,
        bucket_ns,
        3,
    )
}

pub(super) fn run_series(
    c: &mut Client,
    f: &RunFilter,
    bucket_ns: i64,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let since = f.since.map_or(0, |t| t.as_nanos());
    let b = bucket_of("first_ts", since, bucket_ns);
    let w = run_conditions(f);
    points(
        c,
        &format!(
            "SELECT {b} AS b, count(*)::float8, count(*) FILTER (WHERE status = 'error')::float8
               FROM runs{} GROUP BY b ORDER BY b",
            w.sql()
        ),
        &w,
        since,
        bucket_ns,
        2,
    )
}

pub(super) fn sessions(
    c: &mut Client,
    f: &RunFilter,
    after: Option<&(Timestamp, String)>,
) -> Result<Vec<SessionSummary>, StoreError> {
    let mut w = run_conditions(f);
    w.push("session_id IS NOT NULL", vec![]);
    let mut having = String::new();
    if let Some((last, id)) = after {
        let n = w.params.len();
        having = format!(
            " HAVING (max(first_ts) < ${} OR (max(first_ts) = ${} AND session_id > ${}))",
            n + 1,
            n + 2,
            n + 3
        );
        w.params.push(p(last.as_nanos()));
        w.params.push(p(last.as_nanos()));
        w.params.push(p(id.clone()));
    }
    let sql = format!(
        "SELECT session_id, count(*), count(*) FILTER (WHERE status = 'error'), min(first_ts),
                max(first_ts), sum(input_tokens)::bigint, sum(output_tokens)::bigint,
                sum(cost_nusd)::bigint, min(user_id), min(tenant), min(coalesce(root_agent, agent))
           FROM runs{} GROUP BY session_id{having} ORDER BY max(first_ts) DESC, session_id LIMIT {}",
        w.sql(),
        f.limit
    );
    c.query(&sql, &w.refs())?
        .iter()
        .map(|row| {
            let n = |i: usize| -> Result<u64, StoreError> {
                Ok(u64::try_from(row.try_get::<_, Option<i64>>(i)?.unwrap_or(0)).unwrap_or(0))
            };
            Ok(SessionSummary {
                session_id: row.try_get(0)?,
                runs: n(1)?,
                errors: n(2)?,
                first: Timestamp(row.try_get(3)?),
                last: Timestamp(row.try_get(4)?),
                input_tokens: n(5)?,
                output_tokens: n(6)?,
                cost: row.try_get::<_, Option<i64>>(7)?.map(usd),
                user_id: row.try_get(8)?,
                tenant: row.try_get(9)?,
                agent: row.try_get(10)?,
            })
        })
        .collect()
}

const TOKEN_COLUMNS: &str = "id, name, role, tenant, user_id, hash, created, revoked";

fn token_from_row(row: &Row) -> Result<ApiToken, StoreError> {
    let role: String = row.try_get(2)?;
    let hash: Vec<u8> = row.try_get(5)?;
    Ok(ApiToken {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        role: role
            .parse()
            .map_err(|e: String| StoreError::invalid_data(format!("token role: {e}")))?,
        tenant: row.try_get(3)?,
        user_id: row.try_get(4)?,
        hash: hash
            .try_into()
            .map_err(|_| StoreError::invalid_data("token hash is not 32 bytes"))?,
        created: Timestamp(row.try_get(6)?),
        revoked: row.try_get::<_, Option<i64>>(7)?.map(Timestamp),
    })
}

pub(super) fn tokens(c: &mut Client) -> Result<Vec<ApiToken>, StoreError> {
    c.query(
        &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created, id"),
        &[],
    )?
    .iter()
    .map(token_from_row)
    .collect()
}

pub(super) fn token(c: &mut Client, id: &str) -> Result<Option<ApiToken>, StoreError> {
    c.query_opt(
        &format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = $1"),
        &[&id],
    )?
    .as_ref()
    .map(token_from_row)
    .transpose()
}

pub(super) fn put_token(c: &mut Client, t: &ApiToken) -> Result<(), StoreError> {
    c.execute(
        &format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        ),
        &[
            &t.id,
            &t.name,
            &t.role.as_str(),
            &t.tenant,
            &t.user_id,
            &&t.hash[..],
            &t.created.as_nanos(),
            &t.revoked.map(|r| r.as_nanos()),
        ],
    )?;
    Ok(())
}

pub(super) fn revoke_token(
    c: &mut Client,
    id_or_name: &str,
    at: Timestamp,
) -> Result<Vec<ApiToken>, StoreError> {
    c.query(
        &format!(
            "UPDATE api_tokens SET revoked = $2 WHERE (id = $1 OR name = $1) AND revoked IS NULL
             RETURNING {TOKEN_COLUMNS}"
        ),
        &[&id_or_name, &at.as_nanos()],
    )?
    .iter()
    .map(token_from_row)
    .collect()
}

pub(super) fn stats(c: &mut Client, url: &str) -> Result<StoreStats, StoreError> {
    let mut s = StoreStats::default();
    for row in c.query("SELECT kind, level, n FROM record_counts", &[])? {
        let (kind, level, n): (i16, i16, i64) = (row.get(0), row.get(1), row.get(2));
        let n = u64::try_from(n).unwrap_or(0);
        if let Some(l) = u8::try_from(level).ok().and_then(Level::from_code) {
            s.by_level[l.index()] += n;
        }
        if (1..=3).contains(&kind) {
            s.by_kind[kind as usize - 1] += n;
        }
        s.records += n;
    }
    let runs: i64 = c.query_one("SELECT count(*) FROM runs", &[])?.get(0);
    s.runs = u64::try_from(runs).unwrap_or(0);
    let bytes: i64 = c
        .query_one("SELECT pg_database_size(current_database())", &[])?
        .get(0);
    s.storage_bytes = u64::try_from(bytes).unwrap_or(0);
    let partitions: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
              WHERE p.relname = 'records_ops'",
            &[],
        )?
        .get(0);
    s.storage = format!(
        "PostgreSQL {} ({:.1} MiB, {partitions} daily partitions of ops records)",
        super::redact(url),
        s.storage_bytes as f64 / (1024.0 * 1024.0)
    );
    let row = c.query_one("SELECT min(ts), max(ts) FROM records", &[])?;
    s.oldest = row.get::<_, Option<i64>>(0).map(Timestamp);
    s.newest = row.get::<_, Option<i64>>(1).map(Timestamp);
    let this_minute = Timestamp::now().as_nanos() / 60_000_000_000;
    for (minutes, out) in [(1i64, &mut s.rate_1m), (10, &mut s.rate_10m)] {
        let n: i64 = c
            .query_one(
                "SELECT coalesce(sum(records), 0)::bigint FROM ingest_minutes
                  WHERE minute >= $1 AND minute < $2",
                &[&(this_minute - minutes), &this_minute],
            )?
            .get(0);
        *out = n as f64 / (minutes * 60) as f64;
    }
    for row in c.query(
        "SELECT instance, service, host, pid, trace, debug, info, warn, error, updated
           FROM client_drops ORDER BY updated DESC",
        &[],
    )? {
        let instance: Vec<u8> = row.get(0);
        let mut hex = String::new();
        logbook_proto::ids::push_hex(&mut hex, &instance);
        let n = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
        s.client_drops.push(crate::store::ClientDropRow {
            instance: hex,
            service: row.get(1),
            host: row.get(2),
            pid: u32::try_from(row.get::<_, i64>(3)).unwrap_or(0),
            dropped: [n(4), n(5), n(6), n(7), n(8)],
            updated: Timestamp(row.get(9)),
        });
    }
    let h = latency(c, Timestamp((this_minute - 10) * 60_000_000_000))?;
    s.latency_count = h.count();
    s.latency_p50_ms = h.percentile_ms(50.0);
    s.latency_p99_ms = h.percentile_ms(99.0);
    let q: i64 = c.query_one("SELECT count(*) FROM quarantine", &[])?.get(0);
    s.quarantined = u64::try_from(q).unwrap_or(0);
    let a: i64 = c.query_one("SELECT count(*) FROM audit_chain", &[])?.get(0);
    s.audit_records = u64::try_from(a).unwrap_or(0);
    s.redactions = c
        .query("SELECT rule, n FROM redaction_counts ORDER BY rule", &[])?
        .iter()
        .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
        .collect();
    s.limits = c
        .query("SELECT what, n FROM limit_counts", &[])?
        .iter()
        .map(|r| (r.get(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
        .collect();
    let end = stream_end(c)?.backend_position();
    s.forwards = c
        .query(&format!("{FORWARD_SELECT} ORDER BY name"), &[])?
        .iter()
        .map(|r| {
            let mut f = forward_row(r)?;
            f.behind = end.saturating_sub(f.cursor.backend_position());
            Ok(f)
        })
        .collect::<Result<_, StoreError>>()?;
    Ok(s)
}

const FORWARD_SELECT: &str =
    "SELECT name, cursor, sent, refused, failures, last_error, updated FROM forwards";

fn forward_row(r: &Row) -> Result<ForwardState, StoreError> {
    let n = |i: usize| -> Result<u64, StoreError> {
        Ok(u64::try_from(r.try_get::<_, i64>(i)?).unwrap_or(0))
    };
    Ok(ForwardState {
        name: r.try_get(0)?,
        cursor: StreamCursor::from_backend(n(1)?),
        sent: n(2)?,
        refused: n(3)?,
        failures: n(4)?,
        last_error: r.try_get(5)?,
        updated: Timestamp(r.try_get(6)?),
        behind: 0,
    })
}

pub(super) fn forward_state(
    c: &mut Client,
    name: &str,
) -> Result<Option<ForwardState>, StoreError> {
    c.query_opt(&format!("{FORWARD_SELECT} WHERE name = $1"), &[&name])?
        .as_ref()
        .map(forward_row)
        .transpose()
}

pub(super) fn quarantined(c: &mut Client, limit: usize) -> Result<Vec<QuarantineRow>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(
        "SELECT id, received, reason, record FROM quarantine ORDER BY id DESC LIMIT $1",
        &[&limit],
    )?
    .iter()
    .map(|r| {
        let record: String = r.try_get(3)?;
        Ok(QuarantineRow {
            id: u64::try_from(r.try_get::<_, i64>(0)?).unwrap_or(0),
            received: Timestamp(r.try_get(1)?),
            reason: r.try_get(2)?,
            record: serde_json::from_str(&record).unwrap_or(serde_json::Value::String(record)),
        })
    })
    .collect()
}

/// Emit-to-commit latency of records committed in the minutes from `since` on.
pub(super) fn latency(c: &mut Client, since: Timestamp) -> Result<Histogram, StoreError> {
    let mut h = Histogram::default();
    for row in c.query(
        "SELECT counts FROM ingest_latency WHERE minute >= $1",
        &[&(since.as_nanos() / 60_000_000_000)],
    )? {
        h.merge(&Histogram::from_bytes(&row.get::<_, Vec<u8>>(0)));
    }
    Ok(h)
}
