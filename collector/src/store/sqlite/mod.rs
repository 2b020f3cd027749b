//! The SQLite backend: one file, WAL, one writer, any number of readers.
//!
//! [`SqliteWriter`] owns a read-write connection: the collector's writer thread, the
//! embedded sink, or an admin command beside a running collector (SQLite orders their
//! write transactions; each waits for the lock by polling every millisecond).
//! [`SqliteReader`] keeps a small pool of read-only connections, so any number of
//! threads can read at once. `rusqlite` is used nowhere else in the collector.

mod admin;
mod alerts;
mod audit;
mod backup;
mod calls;
mod exceptions;
mod metrics;
mod read;
mod schema;
mod write;

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logbook_proto::{Record, RecordId, Timestamp, TraceId};
use rusqlite::{Connection, OpenFlags};

use super::latency::{Histogram, PendingLatency};
use super::{
    ApiToken, Batch, CallFilter, CostBy, CostGroup, Deleted, Durability, ExceptionChange,
    ExceptionDetail, ExceptionFilter, ExceptionGroup, ForwardState, LlmCall, MonitorUpdate,
    PricedCall, QuarantineRow, RunSummary, Selection, SeriesPoint, SessionSummary, StoreError,
    StoreOptions, StoreReader, StoreStats, StoreWriter, StreamCursor, StreamPage, Subject,
    ToolCall, Written,
};
use crate::audit::{
    default_checkpoint_file, default_key_dir, AuditRules, AuditSource, Checkpoint, CheckpointKind,
    CheckpointPolicy, Keys,
};
use crate::cost::PriceTable;
use crate::query::{Cursor, Page, RecordFilter, RunFilter};

pub use backup::{backup, BackupReport};
pub use schema::RECORD_COLUMNS;
pub use write::raw;

pub(crate) use schema::SCHEMA_VERSION;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let busy = matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        if busy {
            return Self::Busy(e.to_string());
        }
        Self::Database {
            message: e.to_string(),
            source: Box::new(e),
        }
    }
}

/// A writer's audit state.
struct Trust {
    keys: Arc<Keys>,
    rules: AuditRules,
    prices: Arc<PriceTable>,
    policy: CheckpointPolicy,
    /// Audit records appended since the last checkpoint.
    since: u64,
    last: Instant,
}

/// A logbook database in one SQLite file, opened for writing.
pub struct SqliteWriter {
    conn: Connection,
    path: PathBuf,
    /// Latencies measured after commits, written with the next commit (or on drop).
    latency: PendingLatency,
    trust: Trust,
    reader: Arc<SqliteReader>,
    /// Spaces admin transactions so that a collector writing beside them comes first.
    pacer: admin::Pacer,
    /// The rows of `origins` used so far.
    origins: write::OriginIds,
}

impl SqliteWriter {
    /// Opens (creating if needed, with its directory) a database for writing, brings
    /// its schema up to date, and loads (or makes) the keys. A new database file is
    /// readable by its owner only (SQLite gives its journal files the same
    /// permissions): records hold prompts, user ids and other things other local users
    /// should not read.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        make_parent_dir(path)?;
        if !path.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(StoreError::io(format!("creating {}", path.display()))(e)),
            }
        }
        let mut conn = Connection::open(path)?;
        poll_for_lock(&mut conn)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            // Only takes effect before the first table: purges then give pages back
            // to the file system (`PRAGMA incremental_vacuum`).
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(
            None,
            "synchronous",
            match options.durability {
                Durability::Full => "FULL",
                Durability::Normal => "NORMAL",
            },
        )?;
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        schema::migrate(&mut conn)?;
        let key_dir = options
            .key_dir
            .clone()
            .unwrap_or_else(|| default_key_dir(path));
        let keys = Arc::new(Keys::load_or_create(&key_dir)?);
        let pacer = admin::Pacer::new(&conn)?;
        Ok(Self {
            reader: Arc::new(SqliteReader::open(path)?),
            conn,
            path: path.to_owned(),
            latency: PendingLatency::new(),
            trust: Trust {
                keys,
                rules: options.audit.clone(),
                prices: Arc::clone(&options.prices),
                policy: CheckpointPolicy {
                    file: options
                        .checkpoint_file
                        .clone()
                        .unwrap_or_else(|| default_checkpoint_file(path)),
                    every_records: options.checkpoint_records.max(1),
                    every: options.checkpoint_interval,
                },
                since: 0,
                last: Instant::now(),
            },
            pacer,
            origins: write::OriginIds::default(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The checkpoint file.
    pub fn checkpoint_file(&self) -> &Path {
        &self.trust.policy.file
    }
}

impl StoreWriter for SqliteWriter {
    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<Written, StoreError> {
        let written = write::write(
            &mut self.conn,
            batch,
            &mut self.latency,
            &mut self.origins,
            &write::Context {
                rules: &self.trust.rules,
                key: self.trust.keys.chain_key(),
                prices: &self.trust.prices,
            },
        )
        .inspect_err(|_| self.origins.forget())?;
        self.trust.since += written.chained;
        if self.trust.since >= self.trust.policy.every_records {
            // The batch is committed whatever happens here: a checkpoint that cannot be
            // written now is tried again at the next tick.
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "Could not write an audit checkpoint; will retry.");
            }
        }
        Ok(written.written)
    }

    fn tick(&mut self) -> Result<(), StoreError> {
        if self.trust.last.elapsed() >= self.trust.policy.every {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<Checkpoint, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (n, chain) = audit::chain_head(&tx)?;
        let c = Checkpoint::sign(&self.trust.keys, CheckpointKind::Checkpoint, n, chain, 0);
        audit::save_checkpoint(&tx, &c, &self.trust.policy.file)?;
        tx.commit()?;
        self.trust.since = 0;
        self.trust.last = Instant::now();
        Ok(c)
    }

    fn keys(&self) -> &Arc<Keys> {
        &self.trust.keys
    }

    fn reader(&self) -> Arc<dyn StoreReader> {
        Arc::clone(&self.reader) as Arc<dyn StoreReader>
    }

    fn used_bytes(&mut self) -> Result<u64, StoreError> {
        let pragma = |name: &str| -> Result<i64, StoreError> {
            Ok(self
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
        };
        let used = (pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?;
        Ok(u64::try_from(used).unwrap_or(0))
    }

    fn count_selected(&mut self, selection: &Selection) -> Result<u64, StoreError> {
        admin::count(&self.conn, selection)
    }

    fn nth_newest_selected(
        &mut self,
        selection: &Selection,
        n: u64,
    ) -> Result<Option<Cursor>, StoreError> {
        admin::nth_newest(&self.conn, selection, n)
    }

    fn first_unselected_chain_row(
        &mut self,
        selection: &Selection,
    ) -> Result<Option<u64>, StoreError> {
        admin::first_unselected_chain_row(&self.conn, selection)
    }

    fn scan_selected(
        &mut self,
        selection: &Selection,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError> {
        admin::scan(&self.conn, selection, visit)
    }

    fn delete_selected(
        &mut self,
        selection: &Selection,
        limit: usize,
    ) -> Result<Deleted, StoreError> {
        let anchor = |n: u64, chain: [u8; 32], pruned: u64| {
            Checkpoint::sign(&self.trust.keys, CheckpointKind::Anchor, n, chain, pruned)
        };
        self.pacer.start();
        let deleted = admin::delete(
            &mut self.conn,
            selection,
            limit,
            &anchor,
            &self.trust.policy.file,
        )?;
        self.pacer.pause(&self.conn)?;
        Ok(deleted)
    }

    fn chain_rows_of(&mut self, subject: &Subject) -> Result<Vec<u64>, StoreError> {
        admin::chain_rows_of(&self.conn, subject)
    }

    fn tombstone(&mut self, chain_rows: &[u64], subject: &Subject) -> Result<u64, StoreError> {
        self.pacer.start();
        let n = admin::tombstone(&mut self.conn, chain_rows, subject)?;
        self.pacer.pause(&self.conn)?;
        Ok(n)
    }

    fn delete_quarantined(&mut self, subject: &Subject) -> Result<u64, StoreError> {
        admin::delete_quarantined(&self.conn, subject)
    }

    fn forget_in_exceptions(&mut self, subject: &Subject) -> Result<u64, StoreError> {
        exceptions::forget(&mut self.conn, subject)
    }

    fn apply_monitor(&mut self, update: &MonitorUpdate) -> Result<bool, StoreError> {
        exceptions::apply(&mut self.conn, update)
    }

    fn save_alerts(
        &mut self,
        states: &[super::alerts::AlertState],
        events: &[super::alerts::AlertEvent],
    ) -> Result<(), StoreError> {
        alerts::save(&mut self.conn, states, events)
    }

    // One collector per SQLite file: its evaluator is the only one.
    fn alert_lease(&mut self) -> Result<bool, StoreError> {
        Ok(true)
    }

    fn prune_metrics(
        &mut self,
        minutes_before: Timestamp,
        hours_before: Timestamp,
    ) -> Result<u64, StoreError> {
        metrics::prune(
            &self.conn,
            minutes_before.as_nanos(),
            hours_before.as_nanos(),
        )
    }

    fn change_exception(
        &mut self,
        fingerprint: &str,
        change: &ExceptionChange,
    ) -> Result<Option<ExceptionGroup>, StoreError> {
        exceptions::change(&mut self.conn, fingerprint, change)
    }

    fn compact(&mut self) -> Result<(), StoreError> {
        admin::vacuum(&self.conn, &mut self.pacer)
    }

    fn priced_calls(&mut self, after: i64, limit: usize) -> Result<Vec<PricedCall>, StoreError> {
        calls::priced(&self.conn, after, limit)
    }

    fn set_call_costs(&mut self, costs: &[(i64, Option<f64>)]) -> Result<(), StoreError> {
        calls::set_costs(&mut self.conn, costs)
    }

    fn put_token(&mut self, token: &ApiToken) -> Result<(), StoreError> {
        read::put_token(&self.conn, token)
    }

    fn revoke_token(
        &mut self,
        id_or_name: &str,
        at: Timestamp,
    ) -> Result<Vec<ApiToken>, StoreError> {
        read::revoke_token(&self.conn, id_or_name, at)
    }
}

impl Drop for SqliteWriter {
    /// Writes the latencies of the last commit, which no later commit will carry, and
    /// signs the chain's head if audit records came since the last checkpoint.
    fn drop(&mut self) {
        if !self.latency.is_empty() {
            let _ = write::persist_latency(&self.conn, &self.latency);
        }
        if self.trust.since > 0 {
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "Could not write the closing checkpoint.");
            }
        }
    }
}

/// Waits up to [`LOCK_WAIT`] for another connection's write transaction, trying again
/// every millisecond. SQLite's own busy timeout backs off to 100 ms between tries, so
/// a writer that waits behind a stream of short transactions (a purge beside the
/// collector) would rarely see the lock free and starve.
fn poll_for_lock(conn: &mut Connection) -> Result<(), StoreError> {
    let mut since = Instant::now();
    conn.busy_handler(Some(move |count: i32| {
        if count == 0 {
            since = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(1));
        since.elapsed() < LOCK_WAIT
    }))?;
    Ok(())
}

/// How long a writer waits for another's transaction before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// Read-only connections kept open for reuse.
const POOL: usize = 8;

/// A logbook database in one SQLite file, for reading: safe to share, each call on a
/// read-only connection of its own.
pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Makes the directory of `path` if it is missing, readable by its owner only.
fn make_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        Some(dir) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(StoreError::io(format!("creating {}", dir.display()))),
        None => Ok(()),
    }
}

/// Takes the lock file beside the database at `path` for this process: refused, with
/// the holder's pid, while another process holds it.
pub(crate) fn claim(path: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read as _, Seek as _, Write as _};
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock = PathBuf::from(name);
    make_parent_dir(&lock)?;
    let io = StoreError::io;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&lock)
        .map_err(io(format!("opening {}", lock.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StoreError::Io {
                context: format!(
                    "another collector (pid {}) is already serving {}",
                    holder
                        .trim()
                        .parse::<u32>()
                        .map_or_else(|_| "unknown".to_owned(), |p| p.to_string()),
                    path.display()
                ),
                source: io::Error::from(io::ErrorKind::WouldBlock),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(io(format!("locking {}", lock.display()))(e))
        }
    }
    let pid = std::process::id().to_string();
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(pid.as_bytes()))
        .map_err(io(format!("writing {}", lock.display())))?;
    Ok(file)
}

/// Whether opening for reading failed for want of write access to the directory (the
/// WAL's shared-memory file cannot be made).
fn is_read_only_failure(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
    )
}

/// Opens `path` as an immutable file: no locks, no WAL. Write-ahead log content not yet
/// checkpointed into the file cannot be read that way; a warning says so.
fn open_immutable(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        tracing::warn!(
            wal = %wal.display(),
            "Reading a database in a read-only place without its write-ahead log: the newest records may be missing."
        );
    }
    let mut uri = String::from("file:");
    for b in path.as_os_str().as_encoded_bytes() {
        // Bytes beyond ASCII percent-encoded: SQLite decodes them back to the path's
        // own bytes.
        match b {
            b'?' | b'#' | b'%' | 0x80.. | ..=0x1f => uri.push_str(&format!("%{b:02X}")),
            _ => uri.push(char::from(*b)),
        }
    }
    uri.push_str("?immutable=1");
    Ok(Connection::open_with_flags(
        uri,
        flags | OpenFlags::SQLITE_OPEN_URI,
    )?)
}

impl SqliteReader {
    /// Opens an existing database for reading only; never creates or migrates one.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let reader = Self {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        };
        let conn = reader.connect()?;
        reader.release(conn);
        Ok(reader)
    }

    fn connect(&self) -> Result<Connection, StoreError> {
        let path = &self.path;
        if !path.exists() {
            return Err(StoreError::Io {
                context: format!("no logbook database at {}", path.display()),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let (conn, version) = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
            Ok(v) => (conn, v),
            // A database in WAL mode needs its shared-memory file, which a reader cannot
            // make in a read-only directory or on a read-only mount: nothing can write
            // there either, so the file is read as it is.
            Err(e) if is_read_only_failure(&e) => {
                let conn = open_immutable(path, flags)?;
                let v = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                (conn, v)
            }
            Err(e) => return Err(e.into()),
        };
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(StoreError::invalid_data(format!(
                "{} is not a logbook database",
                path.display()
            )));
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::invalid_data(format!(
                "{} has schema version {version}; start `logbook serve` (or any writing command) on it once to upgrade it to {SCHEMA_VERSION}",
                path.display()
            )));
        }
        Ok(conn)
    }

    fn release(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < POOL {
            idle.push(conn);
        }
    }

    /// Runs `f` on a pooled connection.
    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let result = f(&conn);
        self.release(conn);
        result
    }
}

impl StoreReader for SqliteReader {
    fn query(&self, filter: &RecordFilter, page: &Page) -> Result<Vec<Record>, StoreError> {
        self.with(|c| read::query(c, filter, page))
    }

    fn count(&self, filter: &RecordFilter) -> Result<u64, StoreError> {
        self.with(|c| read::count(c, filter))
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

    fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.with(read::tokens)
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

    fn token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        self.with(|c| read::token(c, id))
    }

    fn run(&self, key: &str) -> Result<Option<RunSummary>, StoreError> {
        self.with(|c| read::run(c, key))
    }

    fn runs_of_trace(&self, trace: TraceId) -> Result<Vec<RunSummary>, StoreError> {
        self.with(|c| read::runs_of_trace(c, trace))
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

    fn run_records(&self, key: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.with(|c| read::run_records(c, key, limit))
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

    fn run_outline(&self, key: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        self.with(|c| read::run_outline(c, key, limit))
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
        self.with(|c| read::stats(c, &self.path))
    }

    fn quarantined(&self, limit: usize) -> Result<Vec<QuarantineRow>, StoreError> {
        self.with(|c| read::quarantined(c, limit))
    }

    fn latency(&self, since: Timestamp) -> Result<Histogram, StoreError> {
        self.with(|c| read::latency(c, since))
    }

    fn with_audit_snapshot(
        &self,
        f: &mut dyn FnMut(&mut dyn AuditSource) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            let mut source = audit::Snapshot { conn: &tx };
            let result = f(&mut source);
            drop(tx);
            result
        })
    }
}
