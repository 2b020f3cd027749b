//! Storage behind one contract, two sides of it:
//!
//! - [`StoreWriter`], owned by the one writer (the collector's writer thread, embedded
//!   mode's worker, or an admin command): writes batches in one transaction each, keeps
//!   the derived views and the audit chain, and offers the narrow primitives that
//!   retention, DSAR and cost recomputation (`crate::retention`, `crate::cost`) are
//!   built on;
//! - [`StoreReader`], `Send + Sync`, shared by any number of request handlers at once:
//!   records, runs, calls, cost, stats, quarantine, latency, the record stream and the
//!   inputs of `verify`.
//!
//! Each backend owns its schema and migrations and is chosen once, from the store's
//! address ([`StoreAddress`]): `sqlite:` today. What a run, an LLM call or a tool call
//! *is* lives in `crate::views`, what retention deletes in `crate::retention`, how an
//! audit record is hashed in `crate::audit`: a backend stores and finds, it does not
//! decide.

mod address;
pub mod alerts;
mod error;
pub mod exceptions;
pub mod latency;
pub mod metrics;
mod options;
#[cfg(feature = "postgres")]
pub mod postgres;
mod scope;
pub mod sqlite;
mod types;

use std::io;
use std::sync::Arc;

use logbook_proto::{Record, RecordId, Timestamp, TraceId};

use crate::audit::{AuditSource, Checkpoint, Keys};
use crate::query::{Cursor, Page, RecordFilter, RunFilter};

pub use address::{redact_password, ParseStoreAddressError, StoreAddress};
pub use error::StoreError;
pub use exceptions::{
    ExceptionChange, ExceptionDetail, ExceptionFilter, ExceptionGroup, ExceptionSort,
    ExceptionState, MonitorUpdate,
};
pub use options::{defaults, Durability, ParseDurabilityError, StoreOptions};
pub use scope::{scoped, Visibility};
pub use types::{
    ApiToken, Batch, CallCommon, CallFilter, ClientDropRow, ClientDrops, ClientInfo, CostBy,
    CostGroup, Deleted, ForwardState, LlmCall, ParseStreamCursorError, PricedCall, QuarantineRow,
    Quarantined, Role, RunKind, RunSummary, Selection, SeriesPoint, SessionSummary, StoreStats,
    Stored, StreamCursor, StreamItem, StreamPage, Subject, ToolCall, Written,
};

/// The reading side of a store: safe to share between threads and to call from many
/// at once. Every page is keyset-paged; nothing loads a whole table.
/// How much of a message [`StoreReader::run_outline`] keeps, in characters.
pub const OUTLINE_MESSAGE_CHARS: usize = 240;

pub trait StoreReader: Send + Sync {
    /// One page of records matching `filter`, newest first.
    fn query(&self, filter: &RecordFilter, page: &Page) -> Result<Vec<Record>, StoreError>;

    /// How many records match `filter`.
    fn count(&self, filter: &RecordFilter) -> Result<u64, StoreError>;

    /// The most frequent values of `key` (a column such as `service`, `name`,
    /// `target`, `level`, `tenant`, or a field) among the newest `sample` records
    /// matching `filter`, most frequent first, at most `limit`; and how many records
    /// were looked at.
    fn top_values(
        &self,
        filter: &RecordFilter,
        key: &str,
        sample: usize,
        limit: usize,
    ) -> Result<(Vec<(String, u64)>, u64), StoreError>;

    /// Every record matching `filter`, oldest first, streamed to `visit` in constant
    /// memory. Returns how many were visited.
    fn scan(
        &self,
        filter: &RecordFilter,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError>;

    /// One record by id.
    fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError>;

    /// The end of the record stream now: everything committed so far is before it.
    fn stream_end(&self) -> Result<StreamCursor, StoreError>;

    /// Records matching `filter` committed after `cursor`, in stream order, at most
    /// `limit`; resuming from the page's cursor misses nothing and repeats nothing.
    fn stream_after(
        &self,
        cursor: StreamCursor,
        filter: &RecordFilter,
        limit: usize,
    ) -> Result<StreamPage, StoreError>;

    /// Runs matching `filter`, newest first.
    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// How many runs match `filter` (its limit and cursor aside).
    fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError>;

    /// One run by its key (its run id, or the trace id of a trace's run).
    fn run(&self, key: &str) -> Result<Option<RunSummary>, StoreError>;

    /// Records matching `filter` per bucket of `bucket_ns` from `filter.since`
    /// (required): `[all, WARN, ERROR]`, buckets with records only.
    fn record_series(
        &self,
        filter: &RecordFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError>;

    /// Runs matching `filter` per bucket of their start from `filter.since`
    /// (required): `[runs, runs that ended in error]`.
    fn run_series(
        &self,
        filter: &RunFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError>;

    /// LLM calls matching `filter` (`name` is the model) per bucket from `filter.since`
    /// (required): `[calls, input tokens, output tokens, cost USD, p50 ms, p95 ms]`.
    fn call_series(
        &self,
        filter: &CallFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError>;

    /// Sessions (runs grouped by `session_id`) whose runs match `filter` (its
    /// `after` aside), the most recently active first (then by id), at most
    /// `filter.limit`; only those after `after` (a session's last activity and id) in
    /// that order, if given.
    fn sessions(
        &self,
        filter: &RunFilter,
        after: Option<&(Timestamp, String)>,
    ) -> Result<Vec<SessionSummary>, StoreError>;

    /// The runs of a trace: its own run (when its spans set no run id) and the runs
    /// whose root is in it.
    fn runs_of_trace(&self, trace: TraceId) -> Result<Vec<RunSummary>, StoreError>;

    /// A run's records in time order, at most `limit`.
    fn run_records(&self, key: &str, limit: usize) -> Result<Vec<Record>, StoreError>;

    /// The records of [`StoreReader::run_records`], light: no fields, the message cut
    /// to [`OUTLINE_MESSAGE_CHARS`] characters. What a waterfall draws, without reading
    /// the prompts and payloads a run's spans may carry.
    fn run_outline(&self, key: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        let mut records = self.run_records(key, limit)?;
        for r in &mut records {
            r.fields = Default::default();
            if let Some(m) = r.message.as_mut() {
                if let Some((cut, _)) = m.char_indices().nth(OUTLINE_MESSAGE_CHARS) {
                    m.truncate(cut);
                }
            }
        }
        Ok(records)
    }

    /// LLM calls, newest first; `filter.name` is the model.
    fn llm_calls(&self, filter: &CallFilter) -> Result<Vec<LlmCall>, StoreError>;

    /// Tool calls, newest first; `filter.name` is the tool.
    fn tool_calls(&self, filter: &CallFilter) -> Result<Vec<ToolCall>, StoreError>;

    /// LLM calls matching `filter`, summed per model, user, tenant, … or day.
    fn cost(&self, by: CostBy, filter: &CallFilter) -> Result<Vec<CostGroup>, StoreError>;

    /// [`StoreReader::cost`] for several groupings of the same calls at once (a
    /// backend may read the calls once for all of them).
    fn costs(
        &self,
        bys: &[CostBy],
        filter: &CallFilter,
    ) -> Result<Vec<Vec<CostGroup>>, StoreError> {
        bys.iter().map(|by| self.cost(*by, filter)).collect()
    }

    /// Store-wide numbers.
    fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Quarantined records, newest first.
    fn quarantined(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError>;

    /// Emit-to-commit latency of records committed at or after `since`.
    fn latency(&self, since: Timestamp) -> Result<latency::Histogram, StoreError>;

    /// The progress kept for forwarding destination `name`, if any.
    fn forward_state(&self, name: &str) -> Result<Option<ForwardState>, StoreError>;

    /// Where the monitor has read the stream to, once it has started.
    fn monitor_cursor(&self) -> Result<Option<StreamCursor>, StoreError>;

    /// Exception groups matching `filter`.
    fn exception_groups(&self, filter: &ExceptionFilter)
        -> Result<Vec<ExceptionGroup>, StoreError>;

    /// One exception group with its trend, tags and notes.
    fn exception_group(&self, fingerprint: &str) -> Result<Option<ExceptionDetail>, StoreError>;

    /// The span metric rows of `filter`'s range, at the width it calls for.
    fn span_rows(
        &self,
        filter: &metrics::MetricsFilter,
    ) -> Result<Vec<metrics::SpanRow>, StoreError>;

    /// Records by `(period, level code, count)` over `filter`'s range.
    fn log_volume(
        &self,
        filter: &metrics::MetricsFilter,
    ) -> Result<Vec<(i64, u8, u64)>, StoreError>;

    /// Tools called with the same arguments at least `threshold` times in a run that
    /// is still running.
    fn open_loops(&self, threshold: u64) -> Result<Vec<alerts::LoopRow>, StoreError>;

    /// The alerts pending or firing.
    fn alert_states(&self) -> Result<Vec<alerts::AlertState>, StoreError>;

    /// The newest `limit` alert events, newest first.
    fn alert_events(&self, limit: usize) -> Result<Vec<alerts::AlertEvent>, StoreError>;

    /// Every API token, revoked ones included, oldest first.
    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// One API token by its id.
    fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError>;

    /// Runs `f` over the inputs of `verify` (the chain, its records, the stored
    /// checkpoints), all read from one consistent snapshot.
    fn with_audit_snapshot(
        &self,
        f: &mut dyn FnMut(&mut dyn AuditSource) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// The writing side of a store, owned by one writer at a time. Every method is one or
/// more short transactions; an admin process may hold one beside the collector's.
pub trait StoreWriter: Send {
    /// Stores a batch in one transaction: records (a record whose id is stored already
    /// is skipped), chaining the audit ones, drop totals, quarantined records and
    /// redaction counts, keeping the runs and call views current.
    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<Written, StoreError>;

    /// [`StoreWriter::write_batch`] of records alone; per record, whether it was new.
    fn write(&mut self, records: &[Record]) -> Result<Vec<bool>, StoreError> {
        Ok(self
            .write_batch(&Batch {
                records,
                ..Batch::default()
            })?
            .stored
            .iter()
            .map(Option::is_some)
            .collect())
    }

    /// Periodic upkeep by the writer (about once a second): checkpoints that are due.
    fn tick(&mut self) -> Result<(), StoreError>;

    /// Signs the chain's head now and appends the checkpoint to the checkpoint file and
    /// the store.
    fn checkpoint(&mut self) -> Result<Checkpoint, StoreError>;

    /// The keys the chain, checkpoints and pseudonyms use.
    fn keys(&self) -> &Arc<Keys>;

    /// A reader of the same store.
    fn reader(&self) -> Arc<dyn StoreReader>;

    // The primitives retention and DSAR are built on (`crate::retention`).

    /// The bytes the store's data takes now (SQLite: its pages in use, free pages not
    /// counted): what the disk budget (`max_db_size`) bounds.
    fn used_bytes(&mut self) -> Result<u64, StoreError>;

    /// How many records `selection` selects now.
    fn count_selected(&mut self, selection: &Selection) -> Result<u64, StoreError>;

    /// The keyset position of the `n`-th newest selected record (0 is the newest), if
    /// there are more than `n`: what "keep the newest n" keeps ends just after it.
    fn nth_newest_selected(
        &mut self,
        selection: &Selection,
        n: u64,
    ) -> Result<Option<Cursor>, StoreError>;

    /// The first chain row whose record `selection` does not select: audit records
    /// leave only below it. `None` when it selects every chained record.
    fn first_unselected_chain_row(
        &mut self,
        selection: &Selection,
    ) -> Result<Option<u64>, StoreError>;

    /// Every selected record, oldest first, to `visit` (to archive them before they
    /// are deleted).
    fn scan_selected(
        &mut self,
        selection: &Selection,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError>;

    /// Deletes up to `limit` selected records in one short transaction, keeping the
    /// counters, the runs and call views and the audit chain consistent (an audit
    /// prefix leaves a signed anchor), and leaving room for other writers after it.
    fn delete_selected(
        &mut self,
        selection: &Selection,
        limit: usize,
    ) -> Result<Deleted, StoreError>;

    /// The chain rows of `subject`'s audit records not yet tombstoned, in chain order.
    fn chain_rows_of(&mut self, subject: &Subject) -> Result<Vec<u64>, StoreError>;

    /// Replaces the payload of the records at these chain rows by a tombstone (their
    /// place in the chain stays), removing `subject`'s identifiers from them, in one
    /// transaction.
    fn tombstone(&mut self, chain_rows: &[u64], subject: &Subject) -> Result<u64, StoreError>;

    /// Deletes `subject`'s quarantined records.
    fn delete_quarantined(&mut self, subject: &Subject) -> Result<u64, StoreError>;

    /// Takes `subject` out of what the monitor keeps: a user from the exception
    /// groups' affected users, a group's first message that names the subject, the
    /// loop detector's counts of runs no longer stored; the rows changed.
    fn forget_in_exceptions(&mut self, subject: &Subject) -> Result<u64, StoreError>;

    /// Deletes span metric and log volume rows of minutes before `minutes_before` and
    /// of hours before `hours_before`; the rows deleted.
    fn prune_metrics(
        &mut self,
        minutes_before: Timestamp,
        hours_before: Timestamp,
    ) -> Result<u64, StoreError>;

    /// Replaces the alerts' states by `states` and appends `events`, in one
    /// transaction.
    fn save_alerts(
        &mut self,
        states: &[alerts::AlertState],
        events: &[alerts::AlertEvent],
    ) -> Result<(), StoreError>;

    /// Whether this connection evaluates alerts: one collector of a fleet at a time
    /// (it holds a lease while connected).
    fn alert_lease(&mut self) -> Result<bool, StoreError>;

    /// Applies what the monitor derived from a page of the stream with the move of its
    /// cursor, in one transaction; `false`, applying nothing, when the cursor kept is
    /// no longer `update.from` (another collector of the fleet took the page).
    fn apply_monitor(&mut self, update: &MonitorUpdate) -> Result<bool, StoreError>;

    /// A person's change to an exception group: the group after it, `None` when there
    /// is no such group.
    fn change_exception(
        &mut self,
        fingerprint: &str,
        change: &ExceptionChange,
    ) -> Result<Option<ExceptionGroup>, StoreError>;

    /// Gives space freed by deletions back to the system.
    fn compact(&mut self) -> Result<(), StoreError>;

    /// LLM calls with seq above `after`, in seq order, at most `limit`: what their cost
    /// depends on.
    fn priced_calls(&mut self, after: i64, limit: usize) -> Result<Vec<PricedCall>, StoreError>;

    /// Sets the cost of these calls (seq, cost) and their runs' totals, in one
    /// transaction.
    fn set_call_costs(&mut self, costs: &[(i64, Option<f64>)]) -> Result<(), StoreError>;

    /// Stores a new API token (its hash, never its text).
    fn put_token(&mut self, token: &ApiToken) -> Result<(), StoreError>;

    /// Revokes the token with this id or name at `at`; the tokens revoked (none when
    /// nothing matched or it was revoked already).
    fn revoke_token(
        &mut self,
        id_or_name: &str,
        at: Timestamp,
    ) -> Result<Vec<ApiToken>, StoreError>;
}

/// What an id names among the runs: the run with that key, or the one run of the
/// trace with that id.
#[derive(Clone, Debug, PartialEq)]
pub enum FoundRun {
    /// One run.
    One(Box<RunSummary>),
    /// The trace holds several runs: their keys.
    Several(Vec<String>),
    /// Nothing.
    None,
}

/// The other runs of `run`'s trace (a request that started an agent run, the agents
/// it called), as the run views list them beside it.
pub fn related_runs(
    store: &dyn StoreReader,
    run: &RunSummary,
) -> Result<Vec<RunSummary>, StoreError> {
    Ok(match run.trace_id {
        Some(t) => store
            .runs_of_trace(t)?
            .into_iter()
            .filter(|r| r.run_id != run.run_id)
            .collect(),
        None => Vec::new(),
    })
}

/// The run `id` names: a run id, or a trace id whose trace holds one run (the CLI's
/// `logbook run ID` and the API's `runs/{id}`).
pub fn find_run(store: &dyn StoreReader, id: &str) -> Result<FoundRun, StoreError> {
    if let Some(run) = store.run(id)? {
        return Ok(FoundRun::One(Box::new(run)));
    }
    let Ok(trace) = id.parse::<TraceId>() else {
        return Ok(FoundRun::None);
    };
    let mut runs = store.runs_of_trace(trace)?;
    Ok(match runs.len() {
        0 => FoundRun::None,
        1 => FoundRun::One(Box::new(runs.remove(0))),
        _ => FoundRun::Several(runs.into_iter().map(|r| r.run_id).collect()),
    })
}

/// How a store is opened for writing, whatever the backend.
pub fn open_writer(
    address: &StoreAddress,
    options: &StoreOptions,
) -> Result<Box<dyn StoreWriter>, StoreError> {
    match address {
        StoreAddress::Sqlite(path) => Ok(Box::new(sqlite::SqliteWriter::open(path, options)?)),
        #[cfg(feature = "postgres")]
        StoreAddress::Postgres(url) => Ok(Box::new(postgres::PgWriter::open(url, options)?)),
        #[cfg(not(feature = "postgres"))]
        StoreAddress::Postgres(_) => Err(StoreError::invalid_data(
            "this build has no PostgreSQL backend (cargo feature `postgres`)",
        )),
    }
}

/// A store claimed by one collector: held while it serves, released when dropped (or
/// when the process ends, however it ends).
#[derive(Debug)]
pub struct Claim {
    _file: Option<std::fs::File>,
}

/// Claims `address` for one serving collector: a second one on the same store is
/// refused with a message naming the first one's pid. Admin commands and readers are
/// not affected. (SQLite: an exclusive lock on `<db>.lock` beside the database.
/// PostgreSQL is made for several collectors at once: nothing to claim.)
pub fn claim(address: &StoreAddress) -> Result<Claim, StoreError> {
    match address {
        StoreAddress::Sqlite(path) => sqlite::claim(path).map(|file| Claim { _file: Some(file) }),
        StoreAddress::Postgres(_) => Ok(Claim { _file: None }),
    }
}

/// Opens an existing store for reading only; never creates or migrates one.
pub fn open_reader(address: &StoreAddress) -> Result<Arc<dyn StoreReader>, StoreError> {
    match address {
        StoreAddress::Sqlite(path) => Ok(Arc::new(sqlite::SqliteReader::open(path)?)),
        #[cfg(feature = "postgres")]
        StoreAddress::Postgres(url) => Ok(Arc::new(postgres::PgReader::open(url)?)),
        #[cfg(not(feature = "postgres"))]
        StoreAddress::Postgres(_) => Err(StoreError::invalid_data(
            "this build has no PostgreSQL backend (cargo feature `postgres`)",
        )),
    }
}
