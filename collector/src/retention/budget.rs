//! The disk budget (`max_db_size`): a bound on the bytes the store takes. When it uses
//! [`HIGH`] of the budget, the oldest ops records are purged (audited, like any purge)
//! until it uses [`LOW`] of it; audit records leave only as their own policy says.
//! While the store is at the budget all the same (audit records fill it, or records
//! arrive faster than they are purged), the writer refuses clients' batches: they are
//! not acknowledged, their clients keep and resend them, and ingest resumes once space
//! is freed (`crate::admission`'s writer).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use logbook_proto::Timestamp;

use super::{purge, PurgeOptions, PurgeReport, PurgeSpec, StorageClass};
use crate::log_limit::LogLimit;
use crate::store::{Selection, StoreError, StoreWriter};

/// "The ops records cannot make room" is logged at most this often.
static SHORT_LOG: LogLimit = LogLimit::new(Duration::from_secs(600));

/// Pruning starts when the store uses this share of its budget …
pub const HIGH: f64 = 0.9;
/// … and deletes until it uses this share.
pub const LOW: f64 = 0.8;

/// The origin of a purge made for the disk budget, in its audit record.
pub const ORIGIN_BUDGET: &str = "disk_budget";

/// Purges the oldest ops records if the store is over [`HIGH`] of `max` bytes: about
/// as many as take it down to [`LOW`], estimated from the bytes a record takes on
/// average, archived first to `archive_dir` like any purge. `None` when nothing was
/// deleted: the store is under [`HIGH`], or deleting every ops record would not take
/// it down to [`LOW`] (audit records fill the budget): then nothing is deleted, so
/// that records are not acknowledged and purged at once, over and over, each purge
/// adding an audit record; the writer refuses batches at the budget instead, and a
/// warning says why.
pub fn enforce(
    store: &mut dyn StoreWriter,
    max: u64,
    archive_dir: Option<PathBuf>,
    stop: Option<Arc<AtomicBool>>,
) -> Result<Option<PurgeReport>, StoreError> {
    let used = store.used_bytes()?;
    if (used as f64) < max as f64 * HIGH {
        return Ok(None);
    }
    let ops = Selection {
        class: StorageClass::Ops,
        ..Selection::default()
    };
    let ops_records = store.count_selected(&ops)?;
    if ops_records == 0 {
        return Ok(None);
    }
    let all = store.reader().stats()?.records.max(ops_records);
    let per_record = (used / all).max(1);
    let target = (max as f64 * LOW) as u64;
    let others = used.saturating_sub(per_record.saturating_mul(ops_records));
    if others > target {
        if let Some(held) = SHORT_LOG.allow() {
            tracing::warn!(
                used_bytes = used,
                max_db_size = max,
                more_since_last = held,
                "Disk budget: audit records alone fill more than 80% of it; ops records are kept, and ingest pauses when the database reaches the budget. Raise max_db_size or shorten the audit retention."
            );
        }
        return Ok(None);
    }
    let delete = (used.saturating_sub(target) / per_record + 1).min(ops_records);
    let spec = PurgeSpec {
        class: StorageClass::Ops,
        selector: Default::default(),
        except: Vec::new(),
        max_age: None,
        max_count: Some(ops_records - delete),
    };
    let opts = PurgeOptions {
        origin: ORIGIN_BUDGET.into(),
        archive_dir,
        stop,
        ..PurgeOptions::default()
    };
    let report = purge(store, &[spec], Timestamp::now(), &opts)?;
    Ok((report.ops > 0).then_some(report))
}
