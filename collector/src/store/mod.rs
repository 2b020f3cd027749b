//! Storage behind one trait. Each backend owns its schema and migrations; the backend
//! is chosen once, where the store is opened.

pub mod latency;
pub mod sqlite;

use std::io;
use std::sync::Arc;

use logbook_proto::{InstanceId, Level, Record, RecordId, Resource, Timestamp, TraceId};
use thiserror::Error;

use crate::query::{Page, RecordFilter, RunFilter};

pub use sqlite::{
    ArchiveFile, ArchiveReport, DsarReport, Durability, PurgeOptions, PurgeReport, SqliteStore,
    StoreOptions, Subject,
};

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The database was written by a newer logbook.
    #[error("database schema version {found} is newer than this logbook supports ({supported}); upgrade logbook")]
    SchemaTooNew {
        /// Version in the file.
        found: i64,
        /// Newest version known here.
        supported: i64,
    },
    /// A stored value does not decode (the file was edited or is corrupt).
    #[error("corrupt row (seq {seq}): {message}")]
    Corrupt {
        /// The row.
        seq: i64,
        /// What is wrong.
        message: String,
    },
    /// A visitor asked to stop (e.g. the output pipe closed).
    #[error("stopped: {0}")]
    Stopped(#[source] io::Error),
}

/// The emitter behind a connection (or an embedded layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The emitting process instance.
    pub instance: InstanceId,
    /// Its service, host and pid.
    pub resource: Arc<Resource>,
}

/// A client's running totals of dropped records, by level (from a gap frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientDrops {
    /// Who dropped them.
    pub client: ClientInfo,
    /// Totals since the client started, indexed by [`Level::index`].
    pub dropped: [u64; 5],
}

/// A record validation refused, kept in quarantine with the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Quarantined {
    /// When the collector received it.
    pub received: Timestamp,
    /// Why it was refused (as sent back to the client).
    pub reason: String,
    /// The record, redacted.
    pub record: Record,
}

/// What one write stores, in one transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Batch<'a> {
    /// Records to store (a record whose id is stored already is skipped).
    pub records: &'a [Record],
    /// Clients' drop totals.
    pub drops: &'a [ClientDrops],
    /// Refused records to keep in quarantine.
    pub quarantined: &'a [Quarantined],
    /// Values replaced, by redaction rule, to add to the counts.
    pub redactions: &'a [(String, u64)],
}

/// A run as kept current at ingest.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// First record's time.
    pub started: Timestamp,
    /// Last record's time.
    pub last_seen: Timestamp,
    /// `running`, `ok` or `error` (the root span's status once it ended).
    pub status: String,
    /// The root span's duration, once it ended.
    pub duration_ns: Option<u64>,
    /// The root span's name.
    pub root_name: Option<String>,
    /// The run's trace.
    pub trace_id: Option<TraceId>,
    /// Service of the run's root span (of its first record until the root arrives).
    pub service: Option<String>,
    /// Tenant.
    pub tenant: Option<String>,
    /// Environment.
    pub env: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// App.
    pub app: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// Session.
    pub session_id: Option<String>,
    /// Records stored for the run.
    pub records: u64,
    /// ERROR events and failed spans.
    pub errors: u64,
    /// Spans (counted at their end).
    pub spans: u64,
    /// The agent (`gen_ai.agent.name` of the run's records).
    pub agent: Option<String>,
    /// Finished LLM calls.
    pub llm_calls: u64,
    /// Finished tool calls.
    pub tool_calls: u64,
    /// Input tokens of its LLM calls (cache reads included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens served from a provider's cache.
    pub cache_read_tokens: u64,
    /// Cost in USD computed from the price table (calls of unpriced models add nothing).
    pub cost: Option<f64>,
    /// Cost in USD the providers reported (`gen_ai.usage.cost`).
    pub provider_cost: Option<f64>,
    /// Models used, in the order first seen.
    pub models: Vec<String>,
}

/// Which calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallKind {
    /// Model calls (`llm_calls`).
    #[default]
    Llm,
    /// Tool calls (`tool_calls`).
    Tool,
}

/// Filters on calls; every set filter must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallFilter {
    /// Started at or after.
    pub since: Option<Timestamp>,
    /// Started before.
    pub until: Option<Timestamp>,
    /// Of this run.
    pub run_id: Option<String>,
    /// Of this tenant.
    pub tenant: Option<String>,
    /// Of this user.
    pub user_id: Option<String>,
    /// Of this app.
    pub app: Option<String>,
    /// Of this service.
    pub service: Option<String>,
    /// `ok` or `error`.
    pub status: Option<String>,
    /// The model (LLM calls) or tool name (tool calls).
    pub name: Option<String>,
    /// Keyset: only calls before this (start time, seq).
    pub before: Option<(Timestamp, i64)>,
    /// At most this many rows.
    pub limit: usize,
}

/// What LLM and tool calls share.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CallCommon {
    /// The seq of the span's end record.
    pub seq: i64,
    /// When the call started.
    pub started: Timestamp,
    /// When it ended.
    pub ended: Timestamp,
    /// Its run.
    pub run_id: Option<String>,
    /// Its trace (hex).
    pub trace_id: String,
    /// Its span (hex).
    pub span_id: Option<String>,
    /// The span it ran in (hex).
    pub parent_span_id: Option<String>,
    /// Tenant.
    pub tenant: Option<String>,
    /// User.
    pub user_id: Option<String>,
    /// App.
    pub app: Option<String>,
    /// The emitting service.
    pub service: String,
    /// How long it took.
    pub duration_ns: Option<u64>,
    /// `ok` or `error`.
    pub status: String,
    /// What failed (`error.type` or the exception).
    pub error: Option<String>,
}

/// A model call, as kept in `llm_calls`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LlmCall {
    /// Run, span, timing and status.
    #[serde(flatten)]
    pub call: CallCommon,
    /// `gen_ai.operation.name`.
    pub operation: Option<String>,
    /// `gen_ai.provider.name`.
    pub provider: Option<String>,
    /// The response's model, else the requested one.
    pub model: Option<String>,
    /// `gen_ai.agent.name`.
    pub agent: Option<String>,
    /// The prompt (redacted), as JSON when it is JSON.
    pub input_messages: Option<serde_json::Value>,
    /// The response (redacted).
    pub output_messages: Option<serde_json::Value>,
    /// `gen_ai.response.finish_reasons`.
    pub finish_reasons: Option<serde_json::Value>,
    /// Input tokens (cache reads included).
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Input tokens read from the provider's cache.
    pub cache_read_tokens: Option<u64>,
    /// Computed cost, USD (none when the model has no price).
    pub cost: Option<f64>,
    /// The cost the provider reported, USD.
    pub provider_cost: Option<f64>,
}

/// A tool call, as kept in `tool_calls`.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ToolCall {
    /// Run, span, timing and status.
    #[serde(flatten)]
    pub call: CallCommon,
    /// `gen_ai.tool.name`.
    pub tool_name: Option<String>,
    /// `gen_ai.tool.call.id`.
    pub call_id: Option<String>,
    /// Its arguments (redacted), as JSON when they are JSON.
    pub arguments: Option<serde_json::Value>,
    /// Its result (redacted).
    pub result: Option<serde_json::Value>,
}

/// What `logbook cost` groups by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "server", derive(clap::ValueEnum))]
pub enum CostBy {
    /// The model (the response's, else the requested one).
    #[default]
    Model,
    /// The provider.
    Provider,
    /// The user (user_id).
    User,
    /// The tenant.
    Tenant,
    /// The app.
    App,
    /// The run.
    Run,
    /// The UTC day the call started.
    Day,
    /// Everything matching, as one group keyed `all`.
    #[cfg_attr(feature = "server", value(skip))]
    All,
}

/// LLM calls of one group, summed.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CostGroup {
    /// The model, user, tenant, … or day.
    pub key: String,
    /// Calls.
    pub calls: u64,
    /// Input tokens (cache reads included).
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Computed cost, USD.
    pub cost: Option<f64>,
    /// Provider-reported cost, USD.
    pub provider_cost: Option<f64>,
    /// Calls with tokens but no price for their model.
    pub unpriced_calls: u64,
}

/// Drops reported by one client instance.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ClientDropRow {
    /// Instance id (hex).
    pub instance: String,
    /// Service.
    pub service: String,
    /// Host.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Totals by level, TRACE..ERROR.
    pub dropped: [u64; 5],
    /// When last reported.
    pub updated: Timestamp,
}

/// Store-wide numbers for `logbook stats`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StoreStats {
    /// Records stored.
    pub records: u64,
    /// By level, TRACE..ERROR.
    pub by_level: [u64; 5],
    /// By kind: event, span_start, span_end.
    pub by_kind: [u64; 3],
    /// Runs known.
    pub runs: u64,
    /// Database file bytes.
    pub db_bytes: u64,
    /// Write-ahead log bytes.
    pub wal_bytes: u64,
    /// Records stored in the last minute, per second.
    pub rate_1m: f64,
    /// Records stored in the last ten minutes, per second.
    pub rate_10m: f64,
    /// Oldest record's time.
    pub oldest: Option<Timestamp>,
    /// Newest record's time.
    pub newest: Option<Timestamp>,
    /// Drops reported by clients.
    pub client_drops: Vec<ClientDropRow>,
    /// Records whose emit-to-commit latency was measured in the last ten minutes.
    pub latency_count: u64,
    /// Median emit-to-commit latency over the last ten minutes, in milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 99th percentile emit-to-commit latency over the last ten minutes, in milliseconds.
    pub latency_p99_ms: Option<f64>,
    /// Records refused and kept in quarantine.
    pub quarantined: u64,
    /// Rows of the audit chain.
    pub audit_records: u64,
    /// Values replaced, by redaction rule.
    pub redactions: Vec<(String, u64)>,
}

/// A quarantined record.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct QuarantineRow {
    /// Its row number.
    pub id: u64,
    /// When it was received.
    pub received: Timestamp,
    /// Why it was refused.
    pub reason: String,
    /// The record (contract JSON, redacted).
    pub record: serde_json::Value,
}

impl StoreStats {
    /// All drops reported by clients.
    pub fn dropped_total(&self) -> u64 {
        self.client_drops.iter().flat_map(|c| c.dropped).sum()
    }
}

/// A record store. Writes come from one writer; reads may come from other instances
/// opened on the same database.
pub trait Store: Send {
    /// Stores records (a record whose id is already stored is skipped) and client drop
    /// totals, in one transaction, keeping the runs view current. Returns, per record,
    /// whether it was newly stored.
    fn write(
        &mut self,
        records: &[Record],
        drops: &[ClientDrops],
    ) -> Result<Vec<bool>, StoreError> {
        self.write_batch(&Batch {
            records,
            drops,
            ..Batch::default()
        })
    }

    /// Stores a batch in one transaction: records (chaining the audit ones), drop
    /// totals, quarantined records and redaction counts. Returns, per record, whether
    /// it was newly stored.
    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<Vec<bool>, StoreError>;

    /// Periodic upkeep by the writer (about once a second): checkpoints that are due.
    fn tick(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    /// One page of records matching `filter`, newest first.
    fn query(&self, filter: &RecordFilter, page: &Page) -> Result<Vec<Record>, StoreError>;

    /// How many records match `filter`.
    fn count(&self, filter: &RecordFilter) -> Result<u64, StoreError>;

    /// Every record matching `filter`, oldest first, streamed to `visit` in constant
    /// memory. Returns how many were visited.
    fn scan(
        &self,
        filter: &RecordFilter,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError>;

    /// Records stored after sequence number `seq` that match `filter`, in storage order.
    fn after(
        &self,
        seq: u64,
        filter: &RecordFilter,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// The highest sequence number stored.
    fn last_seq(&self) -> Result<u64, StoreError>;

    /// One record by id.
    fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError>;

    /// Runs matching `filter`, newest first.
    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// One run.
    fn run(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError>;

    /// A run's records in time order, at most `limit`.
    fn run_records(&self, run_id: &str, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// Store-wide numbers.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Quarantined records, newest first.
    fn quarantined(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError>;

    /// Emit-to-commit latency of records committed at or after `since`.
    fn latency(&self, since: Timestamp) -> Result<latency::Histogram, StoreError>;
}

/// The level index (0..5) for a stored level code, if valid.
pub(crate) fn level_index(code: i64) -> Option<usize> {
    u8::try_from(code)
        .ok()
        .and_then(Level::from_code)
        .map(Level::index)
}
