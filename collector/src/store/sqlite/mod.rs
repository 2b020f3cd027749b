//! The SQLite backend: one file, WAL, one writer, any number of readers.

mod admin;
mod calls;
mod read;
mod schema;
mod write;

pub use admin::{ArchiveFile, ArchiveReport, DsarReport, PurgeOptions, PurgeReport, Subject};

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_proto::{Record, RecordId, Timestamp};
use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

use super::latency::{Histogram, PendingLatency};
use super::{
    Batch, CallFilter, CostBy, CostGroup, LlmCall, RunSummary, Store, StoreError, StoreStats,
    ToolCall,
};
use crate::audit::{
    default_checkpoint_file, default_key_dir, AuditRules, Checkpoint, CheckpointKind,
    CheckpointPolicy, Keys,
};
use crate::cost::PriceTable;
use crate::query::{Page, RecordFilter, RunFilter};

pub(crate) use schema::SCHEMA_VERSION;

/// How hard a commit works to survive a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// `fsync` on every commit: an acknowledged record survives power loss.
    #[default]
    Full,
    /// `fsync` at checkpoints only: an acknowledged record survives a crash of the
    /// collector but possibly not of the machine. Faster.
    Normal,
}

/// A durability word that is neither `full` nor `normal`.
#[derive(Debug, Error)]
#[error("invalid durability {0:?}: expected full or normal")]
pub struct ParseDurabilityError(String);

impl FromStr for Durability {
    type Err = ParseDurabilityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            _ => Err(ParseDurabilityError(s.to_owned())),
        }
    }
}

/// How a store is opened for writing.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// fsync policy.
    pub durability: Durability,
    /// Where the chain, signing and pseudonym keys live (made on first open)
    /// [default: a `keys` directory beside the database].
    pub key_dir: Option<PathBuf>,
    /// Where signed checkpoints are appended [default: the database path with the
    /// extension `.checkpoints`].
    pub checkpoint_file: Option<PathBuf>,
    /// A checkpoint after this many audit records.
    pub checkpoint_records: u64,
    /// A checkpoint at least this often, also when idle.
    pub checkpoint_interval: Duration,
    /// Which records are audit records.
    pub audit: AuditRules,
    /// Prices for the cost of LLM calls.
    pub prices: Arc<PriceTable>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            key_dir: None,
            checkpoint_file: None,
            checkpoint_records: 1000,
            checkpoint_interval: Duration::from_secs(60),
            audit: AuditRules::default(),
            prices: Arc::new(PriceTable::builtin()),
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

/// A logbook database in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Latencies measured after commits, written with the next commit (or on drop).
    latency: PendingLatency,
    /// Keys and checkpoint state (writers only).
    trust: Option<Trust>,
}

impl SqliteStore {
    /// Opens (creating if needed, with its directory) a database for writing and
    /// brings its schema up to date. A new database file is readable by its owner only
    /// (SQLite gives its journal files the same permissions): records hold prompts,
    /// user ids and other things other local users should not read.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        Self::open_with(
            path,
            &StoreOptions {
                durability,
                ..StoreOptions::default()
            },
        )
    }

    /// [`SqliteStore::open`] with every option: also loads (or makes) the keys and
    /// sets the checkpoint policy.
    pub fn open_with(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let durability = options.durability;
        let io = |context: String| move |source| StoreError::Io { context, source };
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io(format!("creating {}", dir.display())))?;
        }
        if !path.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(format!("creating {}", path.display()))(e)),
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
            match durability {
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
        Ok(Self {
            conn,
            path: path.to_owned(),
            latency: PendingLatency::new(),
            trust: Some(Trust {
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
            }),
        })
    }

    /// LLM calls, newest first.
    pub fn llm_calls(&self, f: &CallFilter) -> Result<Vec<LlmCall>, StoreError> {
        calls::llm_calls(&self.conn, f)
    }

    /// Tool calls, newest first.
    pub fn tool_calls(&self, f: &CallFilter) -> Result<Vec<ToolCall>, StoreError> {
        calls::tool_calls(&self.conn, f)
    }

    /// LLM calls matching `f`, summed per model, user, tenant, … or day.
    pub fn cost(&self, by: CostBy, f: &CallFilter) -> Result<Vec<CostGroup>, StoreError> {
        calls::cost(&self.conn, by, f)
    }

    /// Computes the cost of every stored LLM call again with `prices` (after a price
    /// change) and the runs' totals; writes an audit record. Returns the calls whose
    /// cost changed.
    pub fn recompute_cost(&mut self, prices: &PriceTable) -> Result<u64, StoreError> {
        if self.trust.is_none() {
            return Err(read_only());
        }
        let changed = calls::recompute(&mut self.conn, prices)?;
        let audit = crate::audit::admin_record(
            "cost_recompute",
            format!("Cost recomputed: {changed} LLM calls changed."),
            vec![("changed", logbook_proto::Value::U64(changed))],
        );
        self.write(&[audit], &[])?;
        Ok(changed)
    }

    /// The keys, for a store opened for writing.
    pub fn keys(&self) -> Option<&Arc<Keys>> {
        self.trust.as_ref().map(|t| &t.keys)
    }

    /// The checkpoint file, for a store opened for writing.
    pub fn checkpoint_file(&self) -> Option<&Path> {
        self.trust.as_ref().map(|t| t.policy.file.as_path())
    }

    /// Signs the chain's head now and appends the checkpoint to the file and the
    /// database.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, StoreError> {
        let Some(trust) = self.trust.as_mut() else {
            return Err(read_only());
        };
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (n, chain) = crate::audit::chain_head(&tx)?;
        let c = Checkpoint::sign(&trust.keys, CheckpointKind::Checkpoint, n, chain, 0);
        c.save(&tx, &trust.policy.file)?;
        tx.commit()?;
        trust.since = 0;
        trust.last = Instant::now();
        Ok(c)
    }

    /// Opens an existing database for reading only; never creates or migrates one.
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::Io {
                context: format!("no logbook database at {}", path.display()),
                source: io::Error::from(io::ErrorKind::NotFound),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(StoreError::Io {
                context: format!("{} is not a logbook database", path.display()),
                source: io::Error::from(io::ErrorKind::InvalidData),
            });
        }
        Ok(Self {
            conn,
            path: path.to_owned(),
            latency: PendingLatency::new(),
            trust: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The underlying connection, for tests and tools that inspect the file.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

pub(super) fn read_only() -> StoreError {
    StoreError::Io {
        context: "the database was opened read-only".into(),
        source: io::Error::from(io::ErrorKind::PermissionDenied),
    }
}

impl Store for SqliteStore {
    fn write_batch(&mut self, batch: &Batch<'_>) -> Result<Vec<bool>, StoreError> {
        let Some(trust) = self.trust.as_mut() else {
            return Err(read_only());
        };
        let written = write::write(
            &mut self.conn,
            batch,
            &mut self.latency,
            &write::Chaining {
                rules: &trust.rules,
                key: trust.keys.chain_key(),
                prices: &trust.prices,
            },
        )?;
        trust.since += written.chained;
        if trust.since >= trust.policy.every_records {
            self.checkpoint()?;
        }
        Ok(written.stored)
    }

    fn tick(&mut self) -> Result<(), StoreError> {
        if self
            .trust
            .as_ref()
            .is_some_and(|t| t.last.elapsed() >= t.policy.every)
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn query(&self, filter: &RecordFilter, page: &Page) -> Result<Vec<Record>, StoreError> {
        read::query(&self.conn, filter, page)
    }

    fn count(&self, filter: &RecordFilter) -> Result<u64, StoreError> {
        read::count(&self.conn, filter)
    }

    fn scan(
        &self,
        filter: &RecordFilter,
        visit: &mut dyn FnMut(Record) -> io::Result<()>,
    ) -> Result<u64, StoreError> {
        read::scan(&self.conn, filter, visit)
    }

    fn after(
        &self,
        seq: u64,
        filter: &RecordFilter,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        read::after(&self.conn, seq, filter, limit)
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        read::last_seq(&self.conn)
    }

    fn get(&self, id: RecordId) -> Result<Option<Record>, StoreError> {
        read::get(&self.conn, id)
    }

    fn runs(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        read::runs(&self.conn, filter)
    }

    fn run(&self, run_id: &str) -> Result<Option<RunSummary>, StoreError> {
        read::run(&self.conn, run_id)
    }

    fn run_records(&self, run_id: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        read::run_records(&self.conn, run_id, limit)
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        read::stats(&self.conn, &self.path)
    }

    fn quarantined(&self, limit: usize) -> Result<Vec<super::QuarantineRow>, StoreError> {
        read::quarantined(&self.conn, limit)
    }

    fn latency(&self, since: Timestamp) -> Result<Histogram, StoreError> {
        read::latency(&self.conn, since)
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

impl Drop for SqliteStore {
    /// Writes the latencies of the last commit, which no later commit will carry.
    /// And signs the chain's head if audit records came since the last checkpoint.
    fn drop(&mut self) {
        if !self.latency.is_empty() {
            let _ = write::persist_latency(&self.conn, &self.latency);
        }
        if self.trust.as_ref().is_some_and(|t| t.since > 0) {
            if let Err(e) = self.checkpoint() {
                tracing::error!(error = %e, "Could not write the closing checkpoint.");
            }
        }
    }
}
