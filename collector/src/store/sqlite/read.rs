//! The read path: filters become indexed `WHERE` clauses; pages are keyset on
//! `(ts, seq)`; scans stream rows without collecting them.

use std::io;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use logbook_proto::{
    Fields, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status, Str,
    Timestamp, TraceId,
};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::schema::{col, RECORD_COLUMNS};
use super::write::{load_next_seq, saturate};
use crate::query::{Page, RecordFilter, RunFilter};
use crate::store::latency::Histogram;
use crate::store::{
    ApiToken, ClientDropRow, ForwardState, QuarantineRow, RunKind, RunSummary, SeriesPoint,
    SessionSummary, StoreError, StoreStats, StreamCursor, StreamItem, StreamPage,
};
use crate::views::call::usd;

/// Every column of `records`, comma-separated, in [`RECORD_COLUMNS`] order; the origin
/// as its text (`FROM records`, unaliased).
pub(super) static COLUMNS: LazyLock<String> = LazyLock::new(|| {
    RECORD_COLUMNS
        .map(|c| match c {
            "origin_id" => "(SELECT origin FROM origins WHERE origins.id = records.origin_id)",
            c => c,
        })
        .join(", ")
});

/// The level index (0..Level::COUNT) for a stored level code, if valid.
fn level_index(code: i64) -> Option<usize> {
    u8::try_from(code)
        .ok()
        .and_then(Level::from_code)
        .map(Level::index)
}

/// A `WHERE` clause under construction, with its parameters.
#[derive(Default)]
struct Where {
    terms: Vec<String>,
    params: Vec<SqlValue>,
}

impl Where {
    fn push(&mut self, term: &str, params: impl IntoIterator<Item = SqlValue>) {
        self.terms.push(term.to_owned());
        self.params.extend(params);
    }

    fn text(v: &str) -> SqlValue {
        SqlValue::Text(v.to_owned())
    }

    fn from_filter(conn: &Connection, f: &RecordFilter) -> Self {
        let mut w = Self::default();
        if let Some(t) = f.since {
            w.push("ts >= ?", [SqlValue::Integer(t.as_nanos())]);
        }
        if let Some(t) = f.until {
            w.push("ts < ?", [SqlValue::Integer(t.as_nanos())]);
        }
        if let Some(d) = f.min_duration_ns {
            w.push("duration_ns >= ?", [SqlValue::Integer(saturate(d))]);
        }
        if let Some(d) = f.max_duration_ns {
            w.push("duration_ns <= ?", [SqlValue::Integer(saturate(d))]);
        }
        if let Some(l) = f.min_level.filter(|l| *l > Level::Trace) {
            if l >= Level::Warn {
                // Spelled out (the codes are ours, not user text) so the planner can
                // prove the partial index records_severe (WHERE level >= 4) holds every
                // match; a bound parameter cannot.
                w.push("level >= 4", []);
                if l > Level::Warn {
                    w.push(&format!("level >= {}", l.code()), []);
                }
            } else {
                w.push("level >= ?", [SqlValue::Integer(l.code().into())]);
            }
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
                w.push(&format!("{col} = ?"), [Self::text(v)]);
            }
        }
        if let Some(t) = f.trace_id {
            w.push("trace_id = ?", [SqlValue::Blob(t.0.to_vec())]);
        }
        if let Some(k) = f.kind {
            w.push("kind = ?", [SqlValue::Integer(k.code().into())]);
        }
        if let Some(t) = &f.target {
            // The target itself or any module below it: [t::, t:;) is the range of
            // strings starting with "t::".
            w.push(
                "(target = ? OR (target >= ? AND target < ?))",
                [
                    Self::text(t),
                    Self::text(&format!("{t}::")),
                    Self::text(&format!("{t}:;")),
                ],
            );
        }
        if let Some(text) = &f.text {
            let q = TextQuery::parse(text, |token| fts_takes(conn, token));
            if !q.fts.is_empty() || q.exact.is_empty() {
                w.push(
                    "seq IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)",
                    [Self::text(&q.fts_query())],
                );
            }
            for word in &q.substrings {
                w.push(
                    "(instr(lower(coalesce(message, '')), ?) > 0 OR instr(lower(fields), ?) > 0)",
                    [Self::text(word), Self::text(word)],
                );
            }
            for token in &q.exact {
                w.push(
                    "(instr(coalesce(message, ''), ?) > 0 OR instr(fields, ?) > 0)",
                    [Self::text(token), Self::text(token)],
                );
            }
        }
        for (key, value) in &f.fields {
            if key.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
                // JSON paths cannot name such keys (found by fuzzing the filter
                // parser: a control character makes a bad path); look the key up by
                // value instead.
                w.push(
                    "EXISTS (SELECT 1 FROM json_each(records.fields) AS f WHERE f.key = ? AND \
                     (CASE f.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(f.value AS TEXT) END) = ?)",
                    [Self::text(key), Self::text(value)],
                );
                continue;
            }
            // Cheap necessary conditions on the stored JSON text first (SQLite checks
            // terms in order): most rows fail them without being parsed.
            w.push("instr(fields, ?) > 0", [Self::text(&format!("\"{key}\":"))]);
            if let Some(needle) = value_needle(value) {
                w.push("instr(fields, ?) > 0", [Self::text(needle)]);
            }
            let path = json_path(key);
            match value.parse::<f64>().ok().filter(|v| v.is_finite()) {
                // A number also equals the same number written otherwise (`1` is 1.0).
                Some(number) => w.push(
                    "((CASE json_type(fields, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                     ELSE CAST(json_extract(fields, ?) AS TEXT) END) = ? \
                     OR (json_type(fields, ?) IN ('integer', 'real') AND json_extract(fields, ?) = ?))",
                    [
                        Self::text(&path),
                        Self::text(&path),
                        Self::text(value),
                        Self::text(&path),
                        Self::text(&path),
                        SqlValue::Real(number),
                    ],
                ),
                None => w.push(
                    "(CASE json_type(fields, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                     ELSE CAST(json_extract(fields, ?) AS TEXT) END) = ?",
                    [Self::text(&path), Self::text(&path), Self::text(value)],
                ),
            }
        }
        w
    }

    fn sql(&self) -> String {
        if self.terms.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.terms.join(" AND "))
        }
    }
}

/// A `--text` search: the FTS5 query and the words to check in the row itself.
#[derive(Debug, PartialEq)]
struct TextQuery {
    /// Every token of every word the index takes as one token, each a quoted FTS5
    /// string (so user text can never be read as query syntax), all required.
    fts: Vec<String>,
    /// Words of several tokens (`gpt-4o`, `a.b`), lowercased: the index keeps no
    /// positions (detail = none), so their tokens' order and adjacency are checked as
    /// a substring of the message or fields. Only ASCII words: SQLite's `lower` folds
    /// ASCII alone, and a looser match beats a missed one.
    substrings: Vec<String>,
    /// Tokens the index would split where Rust does not (a combining mark, a letter
    /// newer than SQLite's Unicode tables): as a phrase they cannot be searched with
    /// detail = none, so they are found in the row as they are.
    exact: Vec<String>,
}

impl TextQuery {
    /// `text`'s words; `takes(token)` says whether the index takes a non-ASCII token
    /// as one token (ASCII tokens always are).
    fn parse(text: &str, mut takes: impl FnMut(&str) -> bool) -> Self {
        let mut q = Self {
            fts: Vec::new(),
            substrings: Vec::new(),
            exact: Vec::new(),
        };
        for word in text.split_whitespace() {
            // unicode61's token characters: letters and numbers; the rest separate.
            let parts: Vec<&str> = word
                .split(|c: char| !c.is_alphanumeric())
                .filter(|t| !t.is_empty())
                .collect();
            if parts.len() > 1 && word.is_ascii() {
                q.substrings.push(word.to_ascii_lowercase());
            }
            for t in parts {
                let quoted = format!("\"{t}\"");
                if t.is_ascii() || takes(&quoted) {
                    q.fts.push(quoted);
                } else {
                    q.exact.push(t.to_owned());
                }
            }
        }
        q
    }

    /// The FTS5 query: every token required. An empty string matches nothing, as a
    /// search for no word should.
    fn fts_query(&self) -> String {
        if self.fts.is_empty() {
            "\"\"".into()
        } else {
            self.fts.join(" ")
        }
    }
}

/// Whether the text index takes `query` (a quoted token): it refuses one it splits
/// into several tokens, a phrase, which an index without positions cannot search.
fn fts_takes(conn: &Connection, query: &str) -> bool {
    conn.prepare_cached("SELECT 1 FROM records_fts WHERE records_fts MATCH ?1 LIMIT 1")
        .and_then(|mut stmt| stmt.query_row([query], |_| Ok(())).optional())
        .is_ok()
}

/// `--field` compares (a string of that text, an integer, `true` or `false`): the value
/// itself, if JSON writes it unchanged. None for values JSON could spell differently
/// (escapes, floats, exponents).
fn value_needle(value: &str) -> Option<&str> {
    let escaped = value
        .chars()
        .any(|c| c == '"' || c == '\\' || c.is_control());
    let float_like = value.parse::<f64>().is_ok() && value.parse::<i128>().is_err();
    (!value.is_empty() && !escaped && !float_like).then_some(value)
}

/// A JSON path for a top-level key that may contain dots: `$."gen_ai.request.model"`.
/// (Keys holding `"` or `\\` are matched with `json_each` instead.)
fn json_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

pub(super) fn query(
    conn: &Connection,
    f: &RecordFilter,
    page: &Page,
) -> Result<Vec<Record>, StoreError> {
    let (sql, params) = query_sql(conn, f, page);
    collect(conn, &sql, params)
}

/// A page of records matching `f`, newest first.
fn query_sql(conn: &Connection, f: &RecordFilter, page: &Page) -> (String, Vec<SqlValue>) {
    let mut w = Where::from_filter(conn, f);
    if let Some(c) = page.before {
        w.push(
            "(ts < ? OR (ts = ? AND seq < ?))",
            [
                SqlValue::Integer(c.ts.as_nanos()),
                SqlValue::Integer(c.ts.as_nanos()),
                SqlValue::Integer(saturate(c.seq)),
            ],
        );
    }
    let sql = format!(
        "SELECT {} FROM records{} ORDER BY ts DESC, seq DESC LIMIT {}",
        *COLUMNS,
        w.sql(),
        page.limit
    );
    (sql, w.params)
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

pub(super) fn top_values(
    conn: &Connection,
    f: &RecordFilter,
    key: &str,
    sample: usize,
    limit: usize,
) -> Result<(Vec<(String, u64)>, u64), StoreError> {
    let mut w = Where::from_filter(conn, f);
    let expr = match TOP_COLUMNS.iter().find(|(k, _)| *k == key) {
        Some((_, e)) => (*e).to_owned(),
        None if key.chars().any(|c| c == '"' || c == '\\' || c.is_control()) => {
            return Err(StoreError::invalid_data(format!(
                "{key:?}: a field name cannot hold quotes, backslashes or control characters"
            )))
        }
        None => {
            // Only records that have the field.
            w.push(
                "instr(fields, ?) > 0",
                [Where::text(&format!("\"{key}\":"))],
            );
            let path = json_path(key);
            w.params.push(SqlValue::Text(path.clone()));
            w.params.push(SqlValue::Text(path));
            "(CASE json_type(fields, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE CAST(json_extract(fields, ?) AS TEXT) END)".to_owned()
        }
    };
    // The value expression's parameters come first in the statement.
    let mut params = Vec::new();
    let n_expr = expr.matches('?').count();
    let split = w.params.len() - n_expr;
    params.extend(w.params.drain(split..));
    params.extend(w.params);
    let sql = format!(
        "SELECT v, count(*), sum(count(*)) OVER () FROM
           (SELECT {expr} AS v FROM records{} ORDER BY ts DESC, seq DESC LIMIT {sample})
          GROUP BY v ORDER BY count(*) DESC, v LIMIT {limit}",
        Where {
            terms: w.terms,
            params: Vec::new()
        }
        .sql()
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut out = Vec::new();
    let mut looked = 0u64;
    while let Some(row) = rows.next()? {
        let v: Option<String> = row.get(0)?;
        out.push((
            v.unwrap_or_else(|| "(none)".into()),
            row.get::<_, i64>(1)?.max(0) as u64,
        ));
        looked = row.get::<_, i64>(2)?.max(0) as u64;
    }
    Ok((out, looked))
}

pub(super) fn count(conn: &Connection, f: &RecordFilter) -> Result<u64, StoreError> {
    let by_level_and_kind_only = RecordFilter {
        min_level: None,
        kind: None,
        ..f.clone()
    } == RecordFilter::default();
    if by_level_and_kind_only {
        // Kept per (kind, level) by every write: no scan of the records at all.
        let n: i64 = conn.query_row(
            "SELECT coalesce(sum(n), 0) FROM record_counts WHERE level >= ?1 AND (?2 IS NULL OR kind = ?2)",
            params![f.min_level.map_or(0, Level::code), f.kind.map(Kind::code)],
            |r| r.get(0),
        )?;
        return Ok(n.max(0) as u64);
    }
    let w = Where::from_filter(conn, f);
    let sql = format!("SELECT count(*) FROM records{}", w.sql());
    let n: i64 = conn.query_row(&sql, params_from_iter(w.params), |r| r.get(0))?;
    Ok(n as u64)
}

pub(super) fn scan(
    conn: &Connection,
    f: &RecordFilter,
    visit: &mut dyn FnMut(Record) -> io::Result<()>,
) -> Result<u64, StoreError> {
    let w = Where::from_filter(conn, f);
    scan_where(conn, &w.sql(), w.params, visit)
}

/// Every record matching `condition` (empty, or ` WHERE …`), oldest first, to `visit`.
pub(super) fn scan_where(
    conn: &Connection,
    condition: &str,
    params: Vec<SqlValue>,
    visit: &mut dyn FnMut(Record) -> io::Result<()>,
) -> Result<u64, StoreError> {
    let sql = format!(
        "SELECT {} FROM records{condition} ORDER BY ts, seq",
        *COLUMNS
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        visit(record_from_row(row)?).map_err(StoreError::Stopped)?;
        n += 1;
    }
    Ok(n)
}

/// The end of the stream: past every sequence number handed out.
pub(super) fn stream_end(conn: &Connection) -> Result<StreamCursor, StoreError> {
    Ok(StreamCursor::from_backend(
        u64::try_from(load_next_seq(conn)? - 1).unwrap_or(0),
    ))
}

/// Records after `cursor` (a seq: SQLite's one writer commits seqs in order) matching
/// `f`; the page's cursor is the last examined, or the end of the stream when the page
/// is not full, read in the same snapshot.
pub(super) fn stream_after(
    conn: &Connection,
    cursor: StreamCursor,
    f: &RecordFilter,
    limit: usize,
) -> Result<StreamPage, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let mut w = Where::from_filter(conn, f);
    w.push(
        "seq > ?",
        [SqlValue::Integer(saturate(cursor.backend_position()))],
    );
    // In seq order from the cursor, whatever else the filter names: a follower is
    // near the end, and an index on its tenant or level would sort all of theirs.
    let sql = format!(
        "SELECT {} FROM records NOT INDEXED{} ORDER BY seq LIMIT {limit}",
        *COLUMNS,
        w.sql()
    );
    let records = collect(&tx, &sql, w.params)?;
    let next = if records.len() == limit {
        records
            .last()
            .map_or(cursor, |r| StreamCursor::from_backend(r.seq))
    } else {
        stream_end(&tx)?.max(cursor)
    };
    drop(tx);
    Ok(StreamPage {
        items: records
            .into_iter()
            .map(|record| StreamItem {
                cursor: StreamCursor::from_backend(record.seq),
                record,
            })
            .collect(),
        cursor: next,
    })
}

pub(super) fn get(conn: &Connection, id: RecordId) -> Result<Option<Record>, StoreError> {
    let sql = format!("SELECT {} FROM records WHERE id = ?", *COLUMNS);
    Ok(collect(conn, &sql, vec![SqlValue::Blob(id.0.to_vec())])?.pop())
}

/// A run's records: those carrying its run id, or, for a trace's run, the records of
/// the trace that carry none and belong to a span.
/// [`COLUMNS`] without what a waterfall does not draw: the fields and the origin
/// (the last columns of a row, so the fields' overflow pages are never read) and all
/// but the start of the message.
static OUTLINE_COLUMNS: LazyLock<String> = LazyLock::new(|| {
    COLUMNS
        .split(", ")
        .map(|c| match c {
            "fields" => "'{}'".to_owned(),
            // Stored after the fields: reading it would walk their overflow pages.
            c if c.contains("origin_id") => "NULL".to_owned(),
            "message" => format!(
                "substr(message, 1, {})",
                crate::store::OUTLINE_MESSAGE_CHARS
            ),
            c => c.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
});

pub(super) fn run_records(
    conn: &Connection,
    key: &str,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    run_rows(conn, key, limit, &COLUMNS)
}

pub(super) fn run_outline(
    conn: &Connection,
    key: &str,
    limit: usize,
) -> Result<Vec<Record>, StoreError> {
    run_rows(conn, key, limit, &OUTLINE_COLUMNS)
}

fn run_rows(
    conn: &Connection,
    key: &str,
    limit: usize,
    columns: &str,
) -> Result<Vec<Record>, StoreError> {
    let kind: Option<String> = conn
        .query_row("SELECT kind FROM runs WHERE run_id = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?;
    if kind.as_deref() == Some(RunKind::Trace.as_str()) {
        if let Ok(trace) = key.parse::<TraceId>() {
            let sql = format!(
                "SELECT {} FROM records WHERE trace_id = ? AND run_id IS NULL AND span_id IS NOT NULL
                 ORDER BY ts, seq LIMIT {limit}",
                columns
            );
            return collect(conn, &sql, vec![SqlValue::Blob(trace.0.to_vec())]);
        }
    }
    // The run's records, and the events without a run id that happened in its spans:
    // log lines sent apart from their spans (OTLP logs) carry their trace and span,
    // not the run id the span's attributes set.
    let sql = format!(
        "SELECT {cols} FROM records WHERE run_id = ?1
         UNION ALL
         SELECT {cols} FROM records INDEXED BY records_span_events
          WHERE kind = 1 AND span_id IS NOT NULL AND run_id IS NULL
            AND (trace_id, span_id) IN
                (SELECT DISTINCT trace_id, span_id FROM records
                  WHERE run_id = ?1 AND kind = 3 AND span_id IS NOT NULL)
         ORDER BY ts, seq LIMIT {limit}",
        cols = columns
    );
    collect(conn, &sql, vec![SqlValue::Text(key.to_owned())])
}

fn collect(conn: &Connection, sql: &str, params: Vec<SqlValue>) -> Result<Vec<Record>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let mut rows = stmt.query(params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(record_from_row(row)?);
    }
    Ok(out)
}

fn id_bytes<const N: usize>(
    row: &Row<'_>,
    i: usize,
    seq: i64,
    what: &str,
) -> Result<Option<[u8; N]>, StoreError> {
    // Borrowed from the row: no allocation per id.
    let v = row
        .get_ref(i)?
        .as_blob_or_null()
        .map_err(rusqlite::Error::from)?;
    v.map(|b| {
        <[u8; N]>::try_from(b).map_err(|_| StoreError::Corrupt {
            seq,
            message: format!("{what} has {} bytes, expected {N}", b.len()),
        })
    })
    .transpose()
}

/// A record from a row selected with [`COLUMNS`].
pub(super) fn record_from_row(row: &Row<'_>) -> Result<Record, StoreError> {
    const SEQ: usize = col("seq");
    const ID: usize = col("id");
    const TS: usize = col("ts");
    const KIND: usize = col("kind");
    const LEVEL: usize = col("level");
    const NAME: usize = col("name");
    const TARGET: usize = col("target");
    const MESSAGE: usize = col("message");
    const TRACE: usize = col("trace_id");
    const SPAN: usize = col("span_id");
    const PARENT: usize = col("parent_span_id");
    const SERVICE: usize = col("service");
    const HOST: usize = col("host");
    const PID: usize = col("pid");
    const FILE: usize = col("file");
    const LINE: usize = col("line");
    const CATEGORY: usize = col("category");
    const STATUS: usize = col("status");
    const DURATION: usize = col("duration_ns");
    const BUSY: usize = col("busy_ns");
    const IDLE: usize = col("idle_ns");
    const FIELDS: usize = col("fields");
    const ORIGIN: usize = col("origin_id");
    let seq: i64 = row.get(SEQ)?;
    let corrupt = |message: String| StoreError::Corrupt { seq, message };
    let kind_code: i64 = row.get(KIND)?;
    let kind = u8::try_from(kind_code)
        .ok()
        .and_then(Kind::from_code)
        .ok_or_else(|| corrupt(format!("kind {kind_code}")))?;
    let level_code: i64 = row.get(LEVEL)?;
    let level = u8::try_from(level_code)
        .ok()
        .and_then(Level::from_code)
        .ok_or_else(|| corrupt(format!("level {level_code}")))?;
    let id = id_bytes::<16>(row, ID, seq, "id")?.ok_or_else(|| corrupt("id is null".into()))?;
    let name: String = row.get(NAME)?;
    let mut r = Record::new(
        RecordId(id),
        Timestamp(row.get(TS)?),
        kind,
        level,
        Str::Owned(name),
    );
    r.seq = seq as u64;
    r.target = Str::Owned(row.get(TARGET)?);
    r.message = row.get(MESSAGE)?;
    r.trace_id = TraceId(
        id_bytes::<16>(row, TRACE, seq, "trace_id")?
            .ok_or_else(|| corrupt("trace_id is null".into()))?,
    );
    r.span_id = id_bytes::<8>(row, SPAN, seq, "span_id")?.map(SpanId);
    r.parent_span_id = id_bytes::<8>(row, PARENT, seq, "parent_span_id")?.map(SpanId);
    // Scope columns are named by their keys, found at compile time.
    const SCOPE: [usize; ScopeKey::COUNT] = {
        let mut out = [0; ScopeKey::COUNT];
        let mut i = 0;
        while i < ScopeKey::COUNT {
            out[i] = col(ScopeKey::ALL[i].as_str());
            i += 1;
        }
        out
    };
    let mut scope = Scope::new();
    for (key, i) in ScopeKey::ALL.iter().zip(SCOPE) {
        scope.set(*key, row.get(i)?);
    }
    r.scope = Arc::new(scope);
    r.resource = Arc::new(Resource {
        service: row.get(SERVICE)?,
        host: row.get(HOST)?,
        pid: row.get(PID)?,
    });
    r.origin = row
        .get::<_, Option<String>>(ORIGIN)?
        .map(|text| {
            logbook_proto::Origin::from_json(&text)
                .map(Arc::new)
                .map_err(|e| corrupt(format!("origin {text:?}: {e}")))
        })
        .transpose()?;
    r.file = row.get::<_, Option<String>>(FILE)?.map(Str::Owned);
    r.line = row.get(LINE)?;
    r.category = row.get::<_, Option<String>>(CATEGORY)?.map(Str::Owned);
    r.status = row
        .get::<_, Option<i64>>(STATUS)?
        .map(|c| {
            u8::try_from(c)
                .ok()
                .and_then(Status::from_code)
                .ok_or_else(|| corrupt(format!("status {c}")))
        })
        .transpose()?;
    let nanos = |i: usize| -> Result<Option<u64>, StoreError> {
        Ok(row.get::<_, Option<i64>>(i)?.map(|v| v.max(0) as u64))
    };
    r.duration_ns = nanos(DURATION)?;
    r.busy_ns = nanos(BUSY)?;
    r.idle_ns = nanos(IDLE)?;
    let fields = row
        .get_ref(FIELDS)?
        .as_str()
        .map_err(rusqlite::Error::from)?;
    r.fields =
        serde_json::from_str::<Fields>(fields).map_err(|e| corrupt(format!("fields: {e}")))?;
    Ok(r)
}

/// A run's columns: the root's trace, service and agent where it has them, else the
/// least seen (see `crate::views::run`).
const RUN_COLUMNS: &str = "run_id, kind, first_ts, last_ts, status, duration_ns, root_name,
    coalesce(root_trace, trace_id), coalesce(root_service, service), tenant, env, project, app,
    user_id, session_id, record_count, error_count, span_count, coalesce(root_agent, agent),
    llm_calls, tool_calls, input_tokens, output_tokens, cache_read_tokens, cost_nusd,
    provider_cost_nusd, models, (tenant IS NOT tenant_max OR user_id IS NOT user_max)";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunSummary> {
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(row.get::<_, i64>(i)?.max(0) as u64) };
    let trace: Option<Vec<u8>> = row.get(7)?;
    Ok(RunSummary {
        run_id: row.get(0)?,
        kind: if row.get_ref(1)?.as_str().ok() == Some(RunKind::Trace.as_str()) {
            RunKind::Trace
        } else {
            RunKind::Run
        },
        started: Timestamp(row.get(2)?),
        last_seen: Timestamp(row.get(3)?),
        status: row.get(4)?,
        duration_ns: row.get::<_, Option<i64>>(5)?.map(|v| v.max(0) as u64),
        root_name: row.get(6)?,
        trace_id: trace
            .and_then(|b| <[u8; 16]>::try_from(b.as_slice()).ok())
            .map(TraceId),
        service: row.get(8)?,
        tenant: row.get(9)?,
        env: row.get(10)?,
        project: row.get(11)?,
        app: row.get(12)?,
        user_id: row.get(13)?,
        session_id: row.get(14)?,
        records: count(15)?,
        errors: count(16)?,
        spans: count(17)?,
        agent: row.get(18)?,
        llm_calls: count(19)?,
        tool_calls: count(20)?,
        input_tokens: count(21)?,
        output_tokens: count(22)?,
        cache_read_tokens: count(23)?,
        cost: row.get::<_, Option<i64>>(24)?.map(usd),
        provider_cost: row.get::<_, Option<i64>>(25)?.map(usd),
        models: row
            .get::<_, Option<String>>(26)?
            .and_then(|m| serde_json::from_str(&m).ok())
            .unwrap_or_default(),
        shared: row.get::<_, Option<bool>>(27)?.unwrap_or(false),
    })
}

fn run_conditions(f: &RunFilter) -> Where {
    let mut w = Where::default();
    if let Some(t) = f.since {
        w.push("first_ts >= ?", [SqlValue::Integer(t.as_nanos())]);
    }
    if let Some(t) = f.until {
        w.push("first_ts < ?", [SqlValue::Integer(t.as_nanos())]);
    }
    for (col, v) in [
        ("tenant", &f.tenant),
        ("user_id", &f.user_id),
        ("coalesce(root_service, service)", &f.service),
        ("status", &f.status),
        ("coalesce(root_agent, agent)", &f.agent),
    ] {
        if let Some(v) = v {
            w.push(&format!("{col} = ?"), [Where::text(v)]);
        }
    }
    if let Some(k) = f.kind {
        w.push("kind = ?", [Where::text(k.as_str())]);
    }
    if let Some(s) = &f.session_id {
        w.push("session_id = ?", [Where::text(s)]);
    }
    if let Some(m) = &f.model {
        w.push(
            "EXISTS (SELECT 1 FROM json_each(runs.models) WHERE value = ?)",
            [Where::text(m)],
        );
    }
    if let Some(t) = &f.text {
        w.push(
            "instr(lower(coalesce(root_name, '') || ' ' || run_id || ' ' || coalesce(root_agent, agent, '')), lower(?)) > 0",
            [Where::text(t)],
        );
    }
    for (key, value) in &f.root_fields {
        // The root span's end record, else its start: the fields it ended with.
        w.push(
            "EXISTS (SELECT 1 FROM records r WHERE r.run_id = runs.run_id
                AND r.span_id = runs.root_span_id AND r.kind IN (2, 3)
                AND (CASE json_type(r.fields, ?) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                     ELSE CAST(json_extract(r.fields, ?) AS TEXT) END) = ?)",
            [
                SqlValue::Text(json_path(key)),
                SqlValue::Text(json_path(key)),
                Where::text(value),
            ],
        );
    }
    if f.unshared {
        w.push("tenant IS tenant_max AND user_id IS user_max", []);
    }
    w
}

pub(super) fn runs(conn: &Connection, f: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
    let mut w = run_conditions(f);
    if let Some(c) = &f.after {
        let ts = SqlValue::Integer(c.started.as_nanos());
        w.push(
            "(first_ts < ? OR (first_ts = ? AND run_id > ?))",
            [ts.clone(), ts, Where::text(&c.run_id)],
        );
    }
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs{} ORDER BY first_ts DESC, run_id LIMIT {}",
        w.sql(),
        f.limit
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(w.params), run_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The bucket of a time `ts` column: `(ts - since) / bucket`.
fn bucket_of(column: &str, since: i64, bucket_ns: i64) -> String {
    format!("(({column} - {since}) / {})", bucket_ns.max(1))
}

fn points(
    conn: &Connection,
    sql: &str,
    params: Vec<SqlValue>,
    since: i64,
    bucket_ns: i64,
    values: usize,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params_from_iter(params), |row| {
        let b: i64 = row.get(0)?;
        let mut v = Vec::with_capacity(values);
        for i in 1..=values {
            v.push(row.get::<_, Option<f64>>(i)?.unwrap_or(0.0));
        }
        Ok(SeriesPoint {
            t: Timestamp(since + b * bucket_ns),
            values: v,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn record_series(
    conn: &Connection,
    f: &RecordFilter,
    bucket_ns: i64,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let since = f.since.map_or(0, |t| t.as_nanos());
    let b = bucket_of("ts", since, bucket_ns);
    let time_only = RecordFilter {
        since: f.since,
        until: f.until,
        ..RecordFilter::default()
    };
    if *f == time_only {
        // Only a time range: both counts from indexes alone (the time index for all
        // records, the partial index of WARN and ERROR for those), never the rows.
        let mut w = Where::default();
        w.push("ts >= ?", [SqlValue::Integer(since)]);
        if let Some(u) = f.until {
            w.push("ts < ?", [SqlValue::Integer(u.as_nanos())]);
        }
        // A count per bucket, each a range of the time index: SQLite counts a range
        // of an index several times faster than it groups its entries.
        let until = f
            .until
            .map_or_else(|| Timestamp::now().as_nanos(), |u| u.as_nanos());
        let mut stmt =
            conn.prepare_cached("SELECT count(*) FROM records WHERE ts >= ?1 AND ts < ?2")?;
        let mut all = Vec::new();
        let mut at = since;
        while at < until {
            let end = at.saturating_add(bucket_ns.max(1)).min(until);
            let n: i64 = stmt.query_row([at, end], |r| r.get(0))?;
            if n > 0 {
                all.push(SeriesPoint {
                    t: Timestamp(at),
                    values: vec![n as f64],
                });
            }
            at = end;
        }
        let severe = points(
            conn,
            &format!(
                "SELECT {b} AS b, sum(level = 4), sum(level = 5) FROM records INDEXED BY records_severe{} AND level >= 4 GROUP BY b ORDER BY b",
                w.sql()
            ),
            w.params,
            since,
            bucket_ns,
            2,
        )?;
        let mut out = all;
        let mut j = 0;
        for p in &mut out {
            while j < severe.len() && severe[j].t < p.t {
                j += 1;
            }
            match severe.get(j).filter(|s| s.t == p.t) {
                Some(s) => p.values.extend_from_slice(&s.values),
                None => p.values.extend_from_slice(&[0.0, 0.0]),
            }
        }
        return Ok(out);
    }
    let w = Where::from_filter(conn, f);
    points(
        conn,
        &format!(
            "SELECT {b} AS b, count(*), sum(level = 4), sum(level = 5) FROM records{} GROUP BY b ORDER BY b",
            w.sql()
        ),
        w.params,
        since,
        bucket_ns,
        3,
    )
}

pub(super) fn run_series(
    conn: &Connection,
    f: &RunFilter,
    bucket_ns: i64,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let since = f.since.map_or(0, |t| t.as_nanos());
    let b = bucket_of("first_ts", since, bucket_ns);
    let w = run_conditions(f);
    points(
        conn,
        &format!(
            "SELECT {b} AS b, count(*), sum(status = 'error') FROM runs{} GROUP BY b ORDER BY b",
            w.sql()
        ),
        w.params,
        since,
        bucket_ns,
        2,
    )
}

pub(super) fn sessions(
    conn: &Connection,
    f: &RunFilter,
    after: Option<&(Timestamp, String)>,
) -> Result<Vec<SessionSummary>, StoreError> {
    let mut w = run_conditions(f);
    w.push("session_id IS NOT NULL", []);
    let mut having = String::new();
    if let Some((last, id)) = after {
        having = " HAVING (max(first_ts) < ? OR (max(first_ts) = ? AND session_id > ?))".into();
        w.params.push(SqlValue::Integer(last.as_nanos()));
        w.params.push(SqlValue::Integer(last.as_nanos()));
        w.params.push(Where::text(id));
    }
    let sql = format!(
        "SELECT session_id, count(*), sum(status = 'error'), min(first_ts), max(first_ts),
                sum(input_tokens), sum(output_tokens), sum(cost_nusd), min(user_id), min(tenant),
                min(coalesce(root_agent, agent))
           FROM runs{} GROUP BY session_id{having} ORDER BY max(first_ts) DESC, session_id LIMIT {}",
        w.sql(),
        f.limit
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(w.params), |row| {
        let n = |i: usize| -> rusqlite::Result<u64> {
            Ok(row.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
        };
        Ok(SessionSummary {
            session_id: row.get(0)?,
            runs: n(1)?,
            errors: n(2)?,
            first: Timestamp(row.get(3)?),
            last: Timestamp(row.get(4)?),
            input_tokens: n(5)?,
            output_tokens: n(6)?,
            cost: row.get::<_, Option<i64>>(7)?.map(crate::views::call::usd),
            user_id: row.get(8)?,
            tenant: row.get(9)?,
            agent: row.get(10)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn count_runs(conn: &Connection, f: &RunFilter) -> Result<u64, StoreError> {
    let w = run_conditions(f);
    let sql = format!("SELECT count(*) FROM runs{}", w.sql());
    let n: i64 = conn.query_row(&sql, params_from_iter(w.params), |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

const TOKEN_COLUMNS: &str = "id, name, role, tenant, user_id, hash, created, revoked";

fn token_from_row(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    let role: String = row.get(2)?;
    let hash: Vec<u8> = row.get(5)?;
    Ok(ApiToken {
        id: row.get(0)?,
        name: row.get(1)?,
        role: role.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
        })?,
        tenant: row.get(3)?,
        user_id: row.get(4)?,
        hash: hash.try_into().map_err(|_| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Blob,
                "token hash is not 32 bytes".into(),
            )
        })?,
        created: Timestamp(row.get(6)?),
        revoked: row.get::<_, Option<i64>>(7)?.map(Timestamp),
    })
}

pub(super) fn tokens(conn: &Connection) -> Result<Vec<ApiToken>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens ORDER BY created, id"
    ))?;
    let rows = stmt.query_map([], token_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn token(conn: &Connection, id: &str) -> Result<Option<ApiToken>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"
    ))?;
    Ok(stmt.query_row([id], token_from_row).optional()?)
}

pub(super) fn put_token(conn: &Connection, t: &ApiToken) -> Result<(), StoreError> {
    conn.execute(
        &format!(
            "INSERT INTO api_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ),
        rusqlite::params![
            t.id,
            t.name,
            t.role.as_str(),
            t.tenant,
            t.user_id,
            &t.hash[..],
            t.created.as_nanos(),
            t.revoked.map(|r| r.as_nanos())
        ],
    )?;
    Ok(())
}

pub(super) fn revoke_token(
    conn: &Connection,
    id_or_name: &str,
    at: Timestamp,
) -> Result<Vec<ApiToken>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE api_tokens SET revoked = ?2 WHERE (id = ?1 OR name = ?1) AND revoked IS NULL
         RETURNING {TOKEN_COLUMNS}"
    ))?;
    let rows = stmt.query_map(rusqlite::params![id_or_name, at.as_nanos()], token_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn run(conn: &Connection, key: &str) -> Result<Option<RunSummary>, StoreError> {
    let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?");
    Ok(conn.query_row(&sql, [key], run_from_row).optional()?)
}

pub(super) fn runs_of_trace(
    conn: &Connection,
    trace: TraceId,
) -> Result<Vec<RunSummary>, StoreError> {
    let sql = format!(
        "SELECT {RUN_COLUMNS} FROM runs WHERE coalesce(root_trace, trace_id) = ?1
         ORDER BY first_ts, run_id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([&trace.0[..]], run_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn stats(conn: &Connection, path: &Path) -> Result<StoreStats, StoreError> {
    let mut s = StoreStats::default();
    let mut stmt = conn.prepare_cached("SELECT kind, level, n FROM record_counts")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (kind, level, n): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let n = n.max(0) as u64;
        if let Some(l) = level_index(level) {
            s.by_level[l] += n;
        }
        if (1..=3).contains(&kind) {
            s.by_kind[kind as usize - 1] += n;
        }
        s.records += n;
    }
    s.runs = conn.query_row("SELECT count(*) FROM runs", [], |r| r.get::<_, i64>(0))? as u64;
    let (page_count, page_size): (i64, i64) = (
        conn.query_row("PRAGMA page_count", [], |r| r.get(0))?,
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))?,
    );
    let db_bytes = (page_count * page_size).max(0) as u64;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal_bytes = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    s.storage_bytes = db_bytes + wal_bytes;
    s.storage = format!(
        "SQLite {} ({:.1} MiB, write-ahead log {:.1} MiB)",
        path.display(),
        db_bytes as f64 / (1024.0 * 1024.0),
        wal_bytes as f64 / (1024.0 * 1024.0)
    );
    let (oldest, newest): (Option<i64>, Option<i64>) =
        conn.query_row("SELECT min(ts), max(ts) FROM records", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    s.oldest = oldest.map(Timestamp);
    s.newest = newest.map(Timestamp);

    let this_minute = Timestamp::now().as_nanos() / 60_000_000_000;
    let rate = |minutes: i64| -> Result<f64, StoreError> {
        // Complete minutes only: the current one is still filling.
        let n: i64 = conn.query_row(
            "SELECT coalesce(sum(records), 0) FROM ingest_minutes WHERE minute >= ? AND minute < ?",
            [this_minute - minutes, this_minute],
            |r| r.get(0),
        )?;
        Ok(n as f64 / (minutes * 60) as f64)
    };
    s.rate_1m = rate(1)?;
    s.rate_10m = rate(10)?;

    let mut stmt = conn.prepare_cached(
        "SELECT instance, service, host, pid, trace, debug, info, warn, error, updated
         FROM client_drops ORDER BY updated DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        let instance: Vec<u8> = r.get(0)?;
        let mut hex = String::new();
        logbook_proto::ids::push_hex(&mut hex, &instance);
        Ok(ClientDropRow {
            instance: hex,
            service: r.get(1)?,
            host: r.get(2)?,
            pid: r.get(3)?,
            dropped: [
                r.get::<_, i64>(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
            ]
            .map(|v| v.max(0) as u64),
            updated: Timestamp(r.get(9)?),
        })
    })?;
    s.client_drops = rows.collect::<Result<_, _>>()?;
    let h = latency(conn, Timestamp((this_minute - 10) * 60_000_000_000))?;
    s.latency_count = h.count();
    s.latency_p50_ms = h.percentile_ms(50.0);
    s.latency_p99_ms = h.percentile_ms(99.0);
    s.quarantined = conn.query_row("SELECT count(*) FROM quarantine", [], |r| {
        r.get::<_, i64>(0)
    })? as u64;
    s.audit_records = conn.query_row("SELECT count(*) FROM audit_chain", [], |r| {
        r.get::<_, i64>(0)
    })? as u64;
    let mut stmt = conn.prepare_cached("SELECT rule, n FROM redaction_counts ORDER BY rule")?;
    s.redactions = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
        .collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached("SELECT what, n FROM limit_counts")?;
    s.limits = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64)))?
        .collect::<Result<_, _>>()?;
    let end = stream_end(conn)?.backend_position();
    let mut stmt = conn.prepare_cached(&format!("{FORWARD_SELECT} ORDER BY name"))?;
    s.forwards = stmt
        .query_map([], forward_row)?
        .map(|f| {
            f.map(|mut f| {
                f.behind = end.saturating_sub(f.cursor.backend_position());
                f
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(s)
}

const FORWARD_SELECT: &str =
    "SELECT name, cursor, sent, refused, failures, last_error, updated FROM forwards";

fn forward_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ForwardState> {
    let n = |i: usize| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
    Ok(ForwardState {
        name: r.get(0)?,
        cursor: StreamCursor::from_backend(n(1)?),
        sent: n(2)?,
        refused: n(3)?,
        failures: n(4)?,
        last_error: r.get(5)?,
        updated: Timestamp(r.get(6)?),
        behind: 0,
    })
}

/// The progress kept for forwarding destination `name`.
pub(super) fn forward_state(
    conn: &Connection,
    name: &str,
) -> Result<Option<ForwardState>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("{FORWARD_SELECT} WHERE name = ?"))?
        .query_row([name], forward_row)
        .optional()?)
}

/// Quarantined records, newest first.
pub(super) fn quarantined(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<QuarantineRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, received, reason, record FROM quarantine ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| {
        let record: String = r.get(3)?;
        Ok(QuarantineRow {
            id: r.get::<_, i64>(0)? as u64,
            received: Timestamp(r.get(1)?),
            reason: r.get(2)?,
            record: serde_json::from_str(&record).unwrap_or(serde_json::Value::String(record)),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Emit-to-commit latency of records committed in the minutes from `since` on.
pub(super) fn latency(conn: &Connection, since: Timestamp) -> Result<Histogram, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT counts FROM ingest_latency WHERE minute >= ?1")?;
    let mut rows = stmt.query([since.as_nanos() / 60_000_000_000])?;
    let mut h = Histogram::default();
    while let Some(row) = rows.next()? {
        h.merge(&Histogram::from_bytes(&row.get::<_, Vec<u8>>(0)?));
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_queries_quote_every_token() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let q = |t: &str| TextQuery::parse(t, |token| fts_takes(&conn, token));
        assert_eq!(q("rate limit").fts_query(), r#""rate" "limit""#);
        assert_eq!(q(r#"say "hi" OR x*"#).fts_query(), r#""say" "hi" "OR" "x""#);
        assert_eq!(q("  ").fts_query(), r#""""#);
        assert_eq!(q("--").fts_query(), r#""""#);
        let model = q("GPT-4o résumé-x");
        assert_eq!(model.fts_query(), r#""GPT" "4o" "résumé" "x""#);
        assert_eq!(model.substrings, ["gpt-4o"]);
        // A combining mark Rust counts as alphabetic and the index as a separator (the
        // fuzzer's find): searched in the row, not as a phrase the index refuses.
        let marked = q("s\u{650}diet ok");
        assert_eq!(marked.fts_query(), r#""ok""#);
        assert_eq!(marked.exact, ["s\u{650}diet"]);
    }

    /// The index SQLite picks for the first page under `f`.
    fn plan(f: &RecordFilter) -> String {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let (sql, params) = query_sql(&conn, f, &Page::default());
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt
            .query_map(params_from_iter(params), |r| r.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    }

    #[test]
    fn severe_levels_use_the_partial_index() {
        for level in [Level::Warn, Level::Error] {
            let f = RecordFilter {
                min_level: Some(level),
                ..RecordFilter::default()
            };
            assert!(plan(&f).contains("records_severe"), "{level}: {}", plan(&f));
        }
        let info = RecordFilter {
            min_level: Some(Level::Info),
            ..RecordFilter::default()
        };
        assert!(plan(&info).contains("records_ts"), "{}", plan(&info));
    }

    #[test]
    fn json_paths_quote_dotted_keys() {
        assert_eq!(
            json_path("gen_ai.request.model"),
            r#"$."gen_ai.request.model""#
        );
    }
}
