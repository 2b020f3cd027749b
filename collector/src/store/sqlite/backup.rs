//! `logbook backup`: a consistent copy of a live database with SQLite's online backup
//! API. The copy is one step inside one read transaction: in WAL mode a reader never
//! blocks the writer, so a running collector goes on committing while the pages of one
//! snapshot are copied (a backup in several steps would start over at each of its
//! commits, and never end under steady ingest).

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// What a backup copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupReport {
    /// Records in the copy.
    pub records: u64,
    /// Bytes of the copy.
    pub bytes: u64,
}

/// Copies the database at `src` to a new file `dest` (refused if it exists), readable
/// by its owner only, written beside it under a temporary name and renamed into place
/// once complete and synced.
pub fn backup(src: &Path, dest: &Path) -> Result<BackupReport, StoreError> {
    if dest.exists() {
        return Err(StoreError::Io {
            context: format!("{} exists: not overwriting it", dest.display()),
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        });
    }
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    let partial = std::path::PathBuf::from(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(StoreError::io(format!("creating {}", partial.display())))?;
    let result = (|| {
        // Through the reader: a database it cannot read is refused with its reason.
        super::SqliteReader::open(src)?;
        let source = Connection::open_with_flags(
            src,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        source.busy_timeout(std::time::Duration::from_secs(10))?;
        let mut copy = Connection::open(&partial)?;
        {
            let b = rusqlite::backup::Backup::new(&source, &mut copy)?;
            // Every page in one step: one snapshot.
            b.step(-1)?;
        }
        // A copy that stands alone: no write-ahead log beside it.
        copy.pragma_update(None, "journal_mode", "DELETE")?;
        let records: i64 =
            copy.query_row("SELECT coalesce(sum(n), 0) FROM record_counts", [], |r| {
                r.get(0)
            })?;
        drop(copy);
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(StoreError::io(format!("syncing {}", partial.display())))?;
        Ok(u64::try_from(records).unwrap_or(0))
    })();
    let records = match result {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    // Linked into place, which fails rather than replace a file made meanwhile; then
    // the directory synced, so the name survives a crash.
    let linked = std::fs::hard_link(&partial, dest);
    let _ = std::fs::remove_file(&partial);
    linked.map_err(StoreError::io(format!(
        "moving the backup to {}",
        dest.display()
    )))?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(BackupReport { records, bytes })
}
