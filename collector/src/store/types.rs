//! The values the store contract speaks in: what a write carries and returns, what a
//! read returns, and the selections the admin primitives act on. Backend-neutral: no
//! database type appears here.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use logbook_proto::{InstanceId, Origin, PerLevel, Record, Resource, Timestamp, TraceId};

use crate::query::Cursor;
use crate::retention::{Selector, StorageClass};

/// The emitter behind a connection (or an embedded layer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The emitting process instance.
    pub instance: InstanceId,
    /// Its service, host and pid, as it said them.
    pub resource: Arc<Resource>,
    /// How it reached the collector and who it was, as the collector saw it: stamped
    /// on every record it sends.
    pub origin: Arc<Origin>,
}

/// A client's running totals of dropped records, by level (from a gap frame).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientDrops {
    /// Who dropped them.
    pub client: ClientInfo,
    /// Totals since the client started, indexed by [`logbook_proto::Level::index`].
    pub dropped: PerLevel<u64>,
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
    /// What the limits did, by name (`crate::admission::limit`), to add to the counts.
    pub limits: &'a [(String, u64)],
    /// Forwarding destinations' progress to keep (`crate::forward`), replacing what
    /// was kept for the same name.
    pub forwards: &'a [ForwardState],
}

/// How far forwarding to one destination has come: kept in the store, so that it
/// resumes where it was after a restart (the store is its queue).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct ForwardState {
    /// The destination's name (`[[forward]] name`).
    pub name: String,
    /// Everything before it was sent (or refused by the destination).
    pub cursor: StreamCursor,
    /// Records the destination accepted, in all.
    pub sent: u64,
    /// Records the destination refused as malformed (HTTP 400), skipped.
    pub refused: u64,
    /// Requests that failed (and were retried), in all.
    pub failures: u64,
    /// The last failure, if the last request failed.
    pub last_error: Option<String>,
    /// When this was kept.
    pub updated: Timestamp,
    /// Records committed after the cursor, when read with the store's stats (matching
    /// the destination's filter or not).
    pub behind: u64,
}

/// A position in the stream of committed records, as the store that issued it
/// understands it. Opaque to readers: they get one from the store (the end of the
/// stream, a page, a commit on the post-commit feed) and hand it back to read what was
/// committed after it, with no gap and no duplicate. Its text form (`Display`,
/// `FromStr`) travels through the CLI and, later, `Last-Event-ID`.
///
/// SQLite, with its one writer, makes it the sequence number of the last record before
/// the position; a backend whose concurrent writers commit sequence values out of
/// order defines it otherwise (e.g. behind a commit watermark).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamCursor(u64);

impl StreamCursor {
    /// Before every record.
    pub const START: Self = Self(0);

    /// A backend's own position. Only the backend that made it interprets it.
    pub fn from_backend(position: u64) -> Self {
        Self(position)
    }

    /// The backend's own position (for the backend that made it).
    pub fn backend_position(self) -> u64 {
        self.0
    }
}

impl serde::Serialize for StreamCursor {
    /// Its text form.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for StreamCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stream cursor that does not parse.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid stream cursor {0:?}: expected the cursor as printed by logbook")]
pub struct ParseStreamCursorError(String);

impl FromStr for StreamCursor {
    type Err = ParseStreamCursorError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse()
            .map(Self)
            .map_err(|_| ParseStreamCursorError(s.to_owned()))
    }
}

/// A committed record and the stream position just after it.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamItem {
    /// Resume here to read what came after this record.
    pub cursor: StreamCursor,
    /// The record, with its `seq`.
    pub record: Record,
}

/// Records committed after a cursor.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StreamPage {
    /// The matching records, in stream order.
    pub items: Vec<StreamItem>,
    /// Where the next read starts: after the last record examined (matching or not),
    /// so a filtered reader does not examine the same records again.
    pub cursor: StreamCursor,
}

/// Where one new record was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Its sequence number (the keyset tiebreaker).
    pub seq: u64,
    /// The stream position just after it.
    pub cursor: StreamCursor,
}

/// What one write did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Per record of the batch, in order: where it was stored, or `None` for a record
    /// already stored (a resend).
    pub stored: Vec<Option<Stored>>,
    /// The stream position before the transaction's first record. A reader that last
    /// saw an earlier position missed records committed by another writer (an admin
    /// command beside the collector) and reads them from the store.
    pub from: StreamCursor,
    /// The stream position after its last record.
    pub to: StreamCursor,
}

impl Written {
    /// Records newly stored.
    pub fn new_count(&self) -> usize {
        self.stored.iter().filter(|s| s.is_some()).count()
    }
}

/// How a run is keyed: by the `run_id` its records carry, or, for records that carry
/// none, by their trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// Records sharing a `run_id`.
    #[default]
    Run,
    /// The spans (and their events) of one trace that set no `run_id`; keyed by the
    /// trace id in hex.
    Trace,
}

impl RunKind {
    /// `run` or `trace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Run => "run",
            Self::Trace => "trace",
        }
    }
}

/// A run as kept current at ingest.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct RunSummary {
    /// The run's key: its run id, or for a trace's run the trace id (hex).
    pub run_id: String,
    /// What the key is.
    pub kind: RunKind,
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
    /// The run's trace (the root's, else one of its records').
    pub trace_id: Option<TraceId>,
    /// Service of the run's root span (of one of its records until the root arrives).
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
    /// The agent (the root's `gen_ai.agent.name`, else one of its records').
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
    /// Models used, sorted.
    pub models: Vec<String>,
    /// Its records carry more than one tenant or user (`tenant` and `user_id` are
    /// then the least of them); readers scoped to a tenant or user do not see it.
    pub shared: bool,
}

/// Filters on calls; every set filter must match.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CallFilter {
    /// Started at or after.
    pub since: Option<Timestamp>,
    /// Started before.
    pub until: Option<Timestamp>,
    /// Of this run (its key).
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
    pub before: Option<Cursor>,
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
    /// Its run's key.
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

impl CallCommon {
    /// The keyset position of this call (start time, seq).
    pub fn cursor(&self) -> Cursor {
        Cursor {
            ts: self.started,
            seq: u64::try_from(self.seq).unwrap_or(0),
        }
    }
}

/// A model call, as kept in the LLM call view.
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

/// A tool call, as kept in the tool call view.
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

/// One bucket of a chart's series: its start and its values, in the order of the
/// method that made it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SeriesPoint {
    /// The bucket's start.
    pub t: Timestamp,
    /// Its values.
    pub values: Vec<f64>,
}

/// The runs of one session (`session_id`): a conversation, a user's session.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SessionSummary {
    /// Its id.
    pub session_id: String,
    /// Its runs (that match the filter).
    pub runs: u64,
    /// Its runs that ended in error.
    pub errors: u64,
    /// The first run's start.
    pub first: Timestamp,
    /// The last run's start.
    pub last: Timestamp,
    /// Input tokens of its LLM calls.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Computed cost, USD.
    pub cost: Option<f64>,
    /// Its user (one of them, if several).
    pub user_id: Option<String>,
    /// Its tenant (one of them, if several).
    pub tenant: Option<String>,
    /// Its agent (one of them, if several).
    pub agent: Option<String>,
}

/// LLM calls of one group, summed.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
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
    pub dropped: PerLevel<u64>,
    /// When last reported.
    pub updated: Timestamp,
}

/// Store-wide numbers for `logbook stats`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StoreStats {
    /// Records stored.
    pub records: u64,
    /// By level, TRACE..ERROR.
    pub by_level: PerLevel<u64>,
    /// By kind: event, span_start, span_end.
    pub by_kind: [u64; 3],
    /// Runs known.
    pub runs: u64,
    /// Bytes the store occupies (for SQLite: the file and its write-ahead log).
    pub storage_bytes: u64,
    /// What the storage is, for people (backend, location, how the bytes split).
    pub storage: String,
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
    /// What the limits did, by name (`crate::admission::limit`): values cut, batches
    /// and connections refused, failed authentications.
    pub limits: std::collections::BTreeMap<String, u64>,
    /// Forwarding destinations' progress.
    pub forwards: Vec<ForwardState>,
}

impl StoreStats {
    /// All drops reported by clients.
    pub fn dropped_total(&self) -> u64 {
        self.client_drops.iter().flat_map(|c| c.dropped).sum()
    }
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

/// Whose data a DSAR request is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A user id.
    User(String),
    /// A tenant.
    Tenant(String),
}

impl Subject {
    /// The value (the user id or tenant).
    pub fn value(&self) -> &str {
        match self {
            Self::User(v) | Self::Tenant(v) => v,
        }
    }

    /// `user` or `tenant`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::Tenant(_) => "tenant",
        }
    }
}

/// Which stored records an admin primitive acts on: the records of `class` that match
/// every set part. Built by the retention and DSAR logic (`crate::retention`), carried
/// out by each backend in its own query language.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Selection {
    /// Storage class.
    pub class: StorageClass,
    /// Equalities on tenant, app and category.
    pub matching: Selector,
    /// Records matching any of these are not selected.
    pub except: Vec<Selector>,
    /// Only records older than this.
    pub older_than: Option<Timestamp>,
    /// Only records at or before this keyset position (ts, seq): "beyond the newest N".
    pub at_or_before: Option<Cursor>,
    /// Only records of this data subject.
    pub subject: Option<Subject>,
    /// Only records committed at or before this stream position (fixed when a purge
    /// begins, so records arriving meanwhile are never touched).
    pub up_to: Option<StreamCursor>,
    /// Audit records only: only those whose chain row is below this one. Audit records
    /// leave only as a prefix of the chain.
    pub chain_below: Option<u64>,
}

/// What one deleting step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deleted {
    /// Records deleted.
    pub records: u64,
    /// Runs left without records, removed from the runs view.
    pub runs: u64,
    /// For audit records: the last chain row removed, where the signed anchor now
    /// stands.
    pub anchor: Option<u64>,
}

/// What the cost of a stored LLM call depends on, for recomputing it.
#[derive(Clone, Debug, PartialEq)]
pub struct PricedCall {
    /// The seq of the call's end record.
    pub seq: i64,
    /// When the call started.
    pub started: Timestamp,
    /// `gen_ai.provider.name`.
    pub provider: Option<String>,
    /// The model priced.
    pub model: Option<String>,
    /// Input, output and cache-read tokens.
    pub tokens: [Option<u64>; 3],
    /// The cost stored now.
    pub cost: Option<f64>,
}

/// What a token lets its bearer do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "server", derive(clap::ValueEnum))]
pub enum Role {
    /// Everything: every read, purge, and ingest.
    Admin,
    /// Reads, within its tenant and/or user when the token is scoped.
    Viewer,
    /// Sending records (OTLP over HTTP, the socket) and nothing else.
    Ingest,
}

impl Role {
    /// `admin`, `viewer` or `ingest`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Viewer => "viewer",
            Self::Ingest => "ingest",
        }
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Self::Admin),
            "viewer" => Ok(Self::Viewer),
            "ingest" => Ok(Self::Ingest),
            _ => Err(format!("unknown role {s:?} (admin, viewer, ingest)")),
        }
    }
}

/// A stored API token: what it may do, and the SHA-256 of its text (never the text).
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiToken {
    /// The public part of the token text, which finds it.
    pub id: String,
    /// A name for people (`ci`, `acme dashboard`).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// A viewer's tenant: it reads only that tenant's records.
    pub tenant: Option<String>,
    /// A viewer's user: it reads only that user's records.
    pub user_id: Option<String>,
    /// SHA-256 of the whole token text.
    #[serde(skip)]
    pub hash: [u8; 32],
    /// When it was made.
    pub created: Timestamp,
    /// When it was revoked.
    pub revoked: Option<Timestamp>,
}

impl fmt::Debug for ApiToken {
    /// Everything but the hash.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiToken")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("tenant", &self.tenant)
            .field("user_id", &self.user_id)
            .field("created", &self.created)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}
