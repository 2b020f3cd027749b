//! The PostgreSQL backend: a fleet's collectors writing to one database, any number
//! of readers (`postgres://user@host/db`, cargo feature `postgres`).
//!
//! [`PgWriter`] owns one connection: a collector's writer thread, or an admin command.
//! Writers from several collectors serialize their commits on a transaction-scoped
//! advisory lock ([`WRITE_LOCK`]), taken before sequence numbers are handed out: so
//! sequence order is commit order (the record stream needs no commit watermark, and
//! live tail and resume stay exact), the audit chain is one chain for the fleet,
//! appended in commit order, and runs and call views merge each record's delta once,
//! in the database (`INSERT … ON CONFLICT DO UPDATE`, never read-modify-write).
//! Records are written with binary `COPY` into a staging table, then inserted with
//! `ON CONFLICT DO NOTHING`: a batch sent to two collectors at once is stored once.
//! [`PgReader`] keeps a small pool of connections. The `postgres` crate is used
//! nowhere else in the collector.

mod admin;
mod alerts;
mod audit;
mod calls;
mod exceptions;
mod metrics;
mod read;
mod schema;
mod write;

pub use write::raw;

use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use logbook_proto::{Record, RecordId, Timestamp, TraceId};
use postgres::{Client, NoTls};

use super::latency::{Histogram, PendingLatency};
use super::{
    ApiToken, Batch, CallFilter, CostBy, CostGroup, Deleted, ExceptionChange, ExceptionDetail,
    ExceptionFilter, ExceptionGroup, ForwardState, LlmCall, MonitorUpdate, PricedCall,
    QuarantineRow, RunSummary, Selection, SeriesPoint, SessionSummary, StoreError, StoreOptions,
    StoreReader, StoreStats, StoreWriter, StreamCursor, StreamPage, Subject, ToolCall, Written,
};
use crate::audit::{AuditRules, AuditSource, Checkpoint, CheckpointKind, CheckpointPolicy, Keys};
use crate::cost::PriceTable;
use crate::query::{Cursor, Page, RecordFilter, RunFilter};

/// The advisory lock every commit that hands out sequence numbers or appends to the
/// audit chain holds until it commits.
pub(crate) const WRITE_LOCK: i64 = 0x6c6f_6762_6f6f_6b02;

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        };
        Self::Database {
            message,
            source: Box::new(e),
        }
    }
}

/// Runs `f`, which uses the driver's blocking client, where it may block: the `postgres`
/// crate drives each client with a runtime of its own, which cannot start on a thread
/// that is running async tasks (a collector's request handler calling a reader), so
/// such a thread hands its tasks off first. Other threads (the writer, the blocking
/// pool, the CLI's) run it as it is.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Connects to `url` (a `postgres://` or `postgresql://` address).
fn connect(url: &str) -> Result<Client, StoreError> {
    let mut config: postgres::Config =
        url.parse().map_err(|e: postgres::Error| StoreError::Io {
            context: format!("invalid PostgreSQL address {}: {e}", redact(url)),
            source: io::Error::from(io::ErrorKind::InvalidInput),
        })?;
    if config.get_application_name().is_none() {
        config.application_name("logbook");
    }
    config.connect(NoTls).map_err(|e| StoreError::Io {
        context: format!("connecting to PostgreSQL at {}: {e}", redact(url)),
        source: io::Error::other(e.to_string()),
    })
}

/// `url` without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    super::address::redact_password(url)
}

/// A writer's audit state.
struct Trust {
    keys: Arc<Keys>,
    rules: AuditRules,
    prices: Arc<PriceTable>,
    policy: CheckpointPolicy,
    since: u64,
    last: Instant,
}

/// A logbook database in PostgreSQL, opened for writing.
pub struct PgWriter {
    client: Client,
    latency: PendingLatency,
    trust: Trust,
    reader: Arc<PgReader>,
    /// The ops partitions known to exist, by day.
    days: BTreeSet<i64>,
}

impl PgWriter {
    /// Connects, brings the schema up to date (refusing a newer one), makes the ops
    /// partitions of today and the next days, and loads (or makes) the keys, which
    /// `options` must locate (a fleet's collectors share them).
    pub fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        blocking(|| Self::open_here(url, options))
    }

    fn open_here(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let mut client = connect(url)?;
        schema::migrate(&mut client)?;
        let key_dir = options.key_dir.clone().ok_or_else(|| {
            StoreError::invalid_data("a PostgreSQL store needs key_dir: the directory of the audit keys every collector of the fleet shares")
        })?;
        let file = options.checkpoint_file.clone().ok_or_else(|| {
            StoreError::invalid_data("a PostgreSQL store needs checkpoint_file: where this collector appends the checkpoints it signs")
        })?;
        let keys = Arc::new(Keys::load_or_create(&key_dir)?);
        same_keys_as_the_fleet(&mut client, &keys, &key_dir)?;
        let mut w = Self {
            reader: Arc::new(PgReader::open(url)?),
            client,
            latency: PendingLatency::new(),
            trust: Trust {
                keys,
                rules: options.audit.clone(),
                prices: Arc::clone(&options.prices),
                policy: CheckpointPolicy {
                    file,
                    every_records: options.checkpoint_records.max(1),
                    every: options.checkpoint_interval,
                },
                since: 0,
                last: Instant::now(),
            },
            days: BTreeSet::new(),
        };
        w.ensure_days_ahead()?;
        Ok(w)
    }

    /// Makes the partitions of today and the next two days, ahead of the records
    /// that will need them.
    fn ensure_days_ahead(&mut self) -> Result<(), StoreError> {
        let today = Timestamp::now().as_nanos().div_euclid(schema::DAY_NS);
        self.ensure_days(&[today, today + 1, today + 2])
    }

    /// Makes the partitions of these days if this writer has not seen them.
    fn ensure_days(&mut self, days: &[i64]) -> Result<(), StoreError> {
        let missing: Vec<i64> = days
            .iter()
            .copied()
            .filter(|d| !self.days.contains(d))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut tx = self.client.transaction()?;
        schema::ensure_partitions(&mut tx, &missing)?;
        tx.commit()?;
        self.days.extend(missing);
        Ok(())
    }

    /// The checkpoint file.
    pub fn checkpoint_file(&self) -> &std::path::Path {
        &self.trust.policy.file
    }
}

impl StoreWriter for PgWriter {
    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<Written, StoreError> {
        blocking(|| {
            let days: Vec<i64> = batch
                .records
                .iter()
                .map(|r| r.ts.as_nanos().div_euclid(schema::DAY_NS))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.ensure_days(&days)?;
            let cx = write::Context {
                rules: &self.trust.rules,
                key: self.trust.keys.chain_key(),
                prices: &self.trust.prices,
            };
            let written = match write::write(&mut self.client, batch, &mut self.latency, &cx) {
                // A day retention dropped since this writer made it (a late record):
                // made again, and the batch written again.
                Err(e) if e.to_string().contains("no partition of relation") => {
                    self.days.clear();
                    let mut tx = self.client.transaction()?;
                    schema::ensure_partitions(&mut tx, &days)?;
                    tx.commit()?;
                    write::write(&mut self.client, batch, &mut self.latency, &cx)?
                }
                other => other?,
            };
            self.trust.since += written.chained;
            if self.trust.since >= self.trust.policy.every_records {
                if let Err(e) = self.checkpoint() {
                    tracing::error!(error = %e, "Could not write an audit checkpoint; will retry.");
                }
            }
            Ok(written.written)
        })
    }

    fn tick(&mut self) -> Result<(), StoreError> {
        blocking(|| {
            self.ensure_days_ahead()?;
            if self.trust.last.elapsed() >= self.trust.policy.every {
                self.checkpoint()?;
            }
            Ok(())
        })
    }

    fn checkpoint(&mut self) -> Result<Checkpoint, StoreError> {
        blocking(|| {
            let mut tx = self.client.transaction()?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
            let (n, chain) = audit::chain_head(&mut tx)?;
            let c = Checkpoint::sign(&self.trust.keys, CheckpointKind::Checkpoint, n, chain, 0);
            audit::save_checkpoint(&mut tx, &c, &self.trust.policy.file)?;
            tx.commit()?;
            self.trust.since = 0;
            self.trust.last = Instant::now();
            Ok(c)
        })
    }

    fn keys(&self) -> &Arc<Keys> {
        &self.trust.keys
    }

    fn reader(&self) -> Arc<dyn StoreReader> {
        Arc::clone(&self.reader) as Arc<dyn StoreReader>
    }

    fn used_bytes(&mut self) -> Result<u64, StoreError> {
        blocking(|| {
            let n: i64 = self
                .client
                .query_one("SELECT pg_database_size(current_database())", &[])?
                .get(0);
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn count_selected(&mut self, selection: &Selection) -> Result<u64, StoreError> {
        blocking(|| admin::count(&mut self.client, selection))
    }

    fn nth_newest_selected(
        &mut self,
        selection: &Selection,
        n: u64,
    ) -> Result<Option<Cursor>, StoreError> {
        blocking(|| admin::nth_newest(&mut self.client, selection, n))
    }

    fn first_unselected_chain_row(
        &mut self,
        selection: &Selection,
    ) -> Result<Option<u64>, StoreError> {
        blocking(|| admin::first_unselected_chain_row(&mut self.client, selection))
    }

    fn scan_selected(
        &mut self,
        selection: &Selection,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError> {
        blocking(|| admin::scan(&mut self.client, selection, visit))
    }

    fn delete_selected(
        &mut self,
        selection: &Selection,
        limit: usize,
    ) -> Result<Deleted, StoreError> {
        blocking(|| {
            let keys = Arc::clone(&self.trust.keys);
            let anchor = move |n: u64, chain: [u8; 32], pruned: u64| {
                Checkpoint::sign(&keys, CheckpointKind::Anchor, n, chain, pruned)
            };
            admin::delete(
                &mut self.client,
                selection,
                limit,
                &anchor,
                &self.trust.policy.file,
            )
        })
    }

    fn chain_rows_of(&mut self, subject: &Subject) -> Result<Vec<u64>, StoreError> {
        blocking(|| admin::chain_rows_of(&mut self.client, subject))
    }

    fn tombstone(&mut self, chain_rows: &[u64], subject: &Subject) -> Result<u64, StoreError> {
        blocking(|| admin::tombstone(&mut self.client, chain_rows, subject))
    }

    fn delete_quarantined(&mut self, subject: &Subject) -> Result<u64, StoreError> {
        blocking(|| admin::delete_quarantined(&mut self.client, subject))
    }

    fn forget_in_exceptions(&mut self, subject: &Subject) -> Result<u64, StoreError> {
        blocking(|| exceptions::forget(&mut self.client, subject))
    }

    fn apply_monitor(&mut self, update: &MonitorUpdate) -> Result<bool, StoreError> {
        blocking(|| exceptions::apply(&mut self.client, update))
    }

    fn save_alerts(
        &mut self,
        states: &[super::alerts::AlertState],
        events: &[super::alerts::AlertEvent],
    ) -> Result<(), StoreError> {
        blocking(|| alerts::save(&mut self.client, states, events))
    }

    fn alert_lease(&mut self) -> Result<bool, StoreError> {
        blocking(|| alerts::lease(&mut self.client))
    }

    fn prune_metrics(
        &mut self,
        minutes_before: Timestamp,
        hours_before: Timestamp,
    ) -> Result<u64, StoreError> {
        blocking(|| {
            metrics::prune(
                &mut self.client,
                minutes_before.as_nanos(),
                hours_before.as_nanos(),
            )
        })
    }

    fn change_exception(
        &mut self,
        fingerprint: &str,
        change: &ExceptionChange,
    ) -> Result<Option<ExceptionGroup>, StoreError> {
        blocking(|| exceptions::change(&mut self.client, fingerprint, change))
    }

    fn compact(&mut self) -> Result<(), StoreError> {
        blocking(|| admin::vacuum(&mut self.client))
    }

    fn priced_calls(&mut self, after: i64, limit: usize) -> Result<Vec<PricedCall>, StoreError> {
        blocking(|| calls::priced(&mut self.client, after, limit))
    }

    fn set_call_costs(&mut self, costs: &[(i64, Option<f64>)]) -> Result<(), StoreError> {
        blocking(|| calls::set_costs(&mut self.client, costs))
    }

    fn put_token(&mut self, token: &ApiToken) -> Result<(), StoreError> {
        blocking(|| read::put_token(&mut self.client, token))
    }

    fn revoke_token(
        &mut self,
        id_or_name: &str,
        at: Timestamp,
    ) -> Result<Vec<ApiToken>, StoreError> {
        blocking(|| read::revoke_token(&mut self.client, id_or_name, at))
    }
}

impl Drop for PgWriter {
    /// Writes the latencies of the last commit and signs the chain's head if audit
    /// records came since the last checkpoint.
    fn drop(&mut self) {
        if !self.latency.is_empty() {
            let latency = &self.latency;
            let client = &mut self.client;
            let _ = blocking(|| -> Result<(), StoreError> {
                let mut tx = client.transaction()?;
                tx.execute("SELECT pg_advisory_xact_lock($1)", &[&WRITE_LOCK])?;
                write::persist_latency(&mut tx, latency)?;
                tx.commit()?;
                Ok(())
            });
        }
        if self.trust.since > 0 {
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "Could not write the closing checkpoint.");
            }
        }
    }
}

/// Refuses keys other than those the database's chain was made with: the first writer
/// records a fingerprint of its chain key (a digest that reveals nothing of it); a
/// collector of the fleet whose key directory was not copied from the others would
/// otherwise sign a chain nobody can verify.
fn same_keys_as_the_fleet(
    client: &mut Client,
    keys: &Keys,
    key_dir: &std::path::Path,
) -> Result<(), StoreError> {
    use sha2::{Digest as _, Sha256};
    let digest = Sha256::new()
        .chain_update(b"logbook chain key fingerprint v1\0")
        .chain_update(keys.chain_key())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let fingerprint = i64::from_be_bytes(first);
    client.execute(
        "INSERT INTO logbook_meta (key, value) VALUES ('chain_key', $1) ON CONFLICT DO NOTHING",
        &[&fingerprint],
    )?;
    let kept: i64 = client
        .query_one(
            "SELECT value FROM logbook_meta WHERE key = 'chain_key'",
            &[],
        )?
        .get(0);
    if kept != fingerprint {
        return Err(StoreError::invalid_data(format!(
            "the keys in {} are not the ones this database's audit chain was made with: copy the key directory of the fleet's other collectors here (every collector writing to one database shares one)",
            key_dir.display()
        )));
    }
    Ok(())
}

/// Connections kept open for reuse.
const POOL: usize = 8;

/// A logbook database in PostgreSQL, for reading: safe to share, each call on a
/// pooled connection of its own.
pub struct PgReader {
    url: String,
    idle: Mutex<Vec<Client>>,
}

impl PgReader {
    /// Connects to an existing store; never creates or migrates one.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        blocking(|| Self::open_here(url))
    }

    fn open_here(url: &str) -> Result<Self, StoreError> {
        let reader = Self {
            url: url.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        let mut client = connect(url)?;
        // Refused when newer and not compatible with this release.
        let version = schema::version(&mut client)?;
        if version == 0 {
            return Err(StoreError::invalid_data(format!(
                "{} holds no logbook store yet: start `logbook serve --db {}` once to make one",
                redact(url),
                redact(url)
            )));
        }
        reader.release(client);
        Ok(reader)
    }

    fn release(&self, client: Client) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL && !client.is_closed() {
            idle.push(client);
        }
    }

    /// Runs `f` on a pooled connection.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        blocking(|| {
            let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut client = match pooled {
                Some(c) if !c.is_closed() => c,
                _ => connect(&self.url)?,
            };
            let result = f(&mut client);
            self.release(client);
            result
        })
    }
}

impl Drop for PgReader {
    /// Each client owns a runtime, which cannot be dropped on a thread running async
    /// tasks either.
    fn drop(&mut self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        blocking(move || drop(idle));
    }
}

impl StoreReader for PgReader {
    fn query(&self, filter: &RecordFilter, page: &Page) -> Result<Vec<Record>, StoreError> {
        self.with(|c| read::query(c, filter, page))
    }

    fn count(&self, filter: &RecordFilter) -> Result<u64, StoreError> {
        self.with(|c| read::count(c, filter))
    }

    fn top_values(
        &self,
        filter: &RecordFilter,
        key: &str,
        sample: usize,
        limit: usize,
    ) -> Result<(Vec<(String, u64)>, u64), StoreError> {
        self.with(|c| read::top_values(c, filter, key, sample, limit))
    }

    fn scan(
        &self,
        filter: &RecordFilter,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError> {
        self.with(|c| read::scan(c, filter, visit))
    }

    fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        self.with(|c| read::get(c, id))
    }

    fn stream_end(&self) -> Result<StreamCursor, StoreError> {
        self.with(read::stream_end)
    }

    fn stream_after(
        &self,
        cursor: StreamCursor,
        filter: &RecordFilter,
        limit: usize,
    ) -> Result<StreamPage, StoreError> {
        self.with(|c| read::stream_after(c, cursor, filter, limit))
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        self.with(|c| read::runs(c, filter))
    }

    fn count_runs(&self, filter: &RunFilter) -> Result<u64, StoreError> {
        self.with(|c| read::count_runs(c, filter))
    }

    fn run(&self, key: &str) -> Result<Option<RunSummary>, StoreError> {
        self.with(|c| read::run(c, key))
    }

    fn record_series(
        &self,
        filter: &RecordFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        self.with(|c| read::record_series(c, filter, bucket_ns))
    }

    fn run_series(
        &self,
        filter: &RunFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        self.with(|c| read::run_series(c, filter, bucket_ns))
    }

    fn call_series(
        &self,
        filter: &CallFilter,
        bucket_ns: i64,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        self.with(|c| calls::call_series(c, filter, bucket_ns))
    }

    fn sessions(
        &self,
        filter: &RunFilter,
        after: Option<&(Timestamp, String)>,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.with(|c| read::sessions(c, filter, after))
    }

    fn runs_of_trace(&self, trace: TraceId) -> Result<Vec<RunSummary>, StoreError> {
        self.with(|c| read::runs_of_trace(c, trace))
    }

    fn run_records(&self, key: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.with(|c| read::run_records(c, key, limit))
    }

    fn llm_calls(&self, filter: &CallFilter) -> Result<Vec<LlmCall>, StoreError> {
        self.with(|c| calls::llm_calls(c, filter))
    }

    fn tool_calls(&self, filter: &CallFilter) -> Result<Vec<ToolCall>, StoreError> {
        self.with(|c| calls::tool_calls(c, filter))
    }

    fn cost(&self, by: CostBy, filter: &CallFilter) -> Result<Vec<CostGroup>, StoreError> {
        self.with(|c| calls::cost(c, by, filter))
    }

    fn costs(
        &self,
        bys: &[CostBy],
        filter: &CallFilter,
    ) -> Result<Vec<Vec<CostGroup>>, StoreError> {
        self.with(|c| calls::costs(c, bys, filter))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.with(|c| read::stats(c, &self.url))
    }

    fn quarantined(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError> {
        self.with(|c| read::quarantined(c, limit))
    }

    fn latency(&self, since: Timestamp) -> Result<Histogram, StoreError> {
        self.with(|c| read::latency(c, since))
    }

    fn forward_state(&self, name: &str) -> Result<Option<ForwardState>, StoreError> {
        self.with(|c| read::forward_state(c, name))
    }

    fn monitor_cursor(&self) -> Result<Option<StreamCursor>, StoreError> {
        self.with(exceptions::monitor_cursor)
    }

    fn exception_groups(
        &self,
        filter: &ExceptionFilter,
    ) -> Result<Vec<ExceptionGroup>, StoreError> {
        self.with(|c| exceptions::groups(c, filter))
    }

    fn exception_group(&self, fingerprint: &str) -> Result<Option<ExceptionDetail>, StoreError> {
        self.with(|c| exceptions::detail(c, fingerprint))
    }

    fn span_rows(
        &self,
        filter: &super::metrics::MetricsFilter,
    ) -> Result<Vec<super::metrics::SpanRow>, StoreError> {
        self.with(|c| metrics::span_rows(c, filter))
    }

    fn log_volume(
        &self,
        filter: &super::metrics::MetricsFilter,
    ) -> Result<Vec<(i64, u8, u64)>, StoreError> {
        self.with(|c| metrics::volume(c, filter))
    }

    fn open_loops(&self, threshold: u64) -> Result<Vec<super::alerts::LoopRow>, StoreError> {
        self.with(|c| alerts::open_loops(c, threshold))
    }

    fn alert_states(&self) -> Result<Vec<super::alerts::AlertState>, StoreError> {
        self.with(alerts::states)
    }

    fn alert_events(&self, limit: usize) -> Result<Vec<super::alerts::AlertEvent>, StoreError> {
        self.with(|c| alerts::events(c, limit))
    }

    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.with(read::tokens)
    }

    fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        self.with(|c| read::token(c, id))
    }

    fn with_audit_snapshot(
        &self,
        f: &mut dyn FnMut(&mut dyn AuditSource) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            // One consistent snapshot for every read `verify` makes.
            let mut tx = c
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let result = f(&mut audit::Snapshot::new(&mut tx));
            tx.commit()?;
            result
        })
    }
}
