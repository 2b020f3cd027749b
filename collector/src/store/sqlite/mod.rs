//! The SQLite backend: one file, WAL, one writer, any number of readers.

mod read;
mod schema;
mod write;

use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use logbook_proto::{Record, RecordId, Timestamp};
use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

use super::latency::{Histogram, PendingLatency};
use super::{ClientDrops, RunSummary, Store, StoreError, StoreStats};
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

/// A logbook database in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// The next sequence number to assign (writers only).
    next_seq: i64,
    /// Latencies measured after commits, written with the next commit (or on drop).
    latency: PendingLatency,
}

impl SqliteStore {
    /// Opens (creating if needed, with its directory) a database for writing and
    /// brings its schema up to date. A new database file is readable by its owner only
    /// (SQLite gives its journal files the same permissions): records hold prompts,
    /// user ids and other things other local users should not read.
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
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
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
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
        let next_seq = write::load_next_seq(&conn)?;
        Ok(Self {
            conn,
            path: path.to_owned(),
            next_seq,
            latency: PendingLatency::new(),
        })
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
            next_seq: 0,
            latency: PendingLatency::new(),
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

impl Store for SqliteStore {
    fn write(
        &mut self,
        records: &[Record],
        drops: &[ClientDrops],
    ) -> Result<Vec<bool>, StoreError> {
        write::write(
            &mut self.conn,
            &mut self.next_seq,
            records,
            drops,
            &mut self.latency,
        )
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

    fn latency(&self, since: Timestamp) -> Result<Histogram, StoreError> {
        read::latency(&self.conn, since)
    }
}

impl Drop for SqliteStore {
    /// Writes the latencies of the last commit, which no later commit will carry.
    fn drop(&mut self) {
        if !self.latency.is_empty() {
            let _ = write::persist_latency(&self.conn, &self.latency);
        }
    }
}
