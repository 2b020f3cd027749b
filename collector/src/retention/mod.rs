//! Retention and data subject requests: which records leave, when, and what is kept
//! of them (an archive, an anchor, a tombstone, an audit record). The decisions live
//! here; the store carries them out through the narrow primitives of
//! [`crate::store::StoreWriter`] (count, scan and delete a [`crate::store::Selection`],
//! tombstone chain rows, compact), so every backend purges the same way.

mod archive;
pub mod budget;
mod dsar;
mod policy;
mod purge;

pub use crate::audit::StorageClass;
pub use archive::{restore_archive, ArchiveFile, ArchiveReport, MANIFEST};
pub use dsar::{dsar_delete, dsar_export, DsarReport};
pub use policy::{MaxAge, PurgeSpec, Retention, RetentionRule, Selector};
pub use purge::{describe, purge, PurgeOptions, PurgeReport, ORIGIN_SCHEDULE};

/// Records deleted (or tombstoned) per transaction: a transaction holds the write lock
/// for tens of milliseconds, so a collector writing beside the purge waits no longer
/// than that.
const BATCH: usize = 200;
