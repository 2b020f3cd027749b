//! The collector's pipeline and store, in-process: what logbook-layer's `embedded`
//! feature runs on its worker thread instead of talking to a socket.

use std::path::Path;

use logbook_proto::Record;

use crate::pipeline::{Pipeline, Rejected};
use crate::store::{
    Batch, ClientDrops, ClientInfo, Durability, Quarantined, SqliteStore, Store, StoreError,
};

/// What became of one ingested batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IngestOutcome {
    /// Newly stored.
    pub stored: u32,
    /// Already stored (same id), skipped.
    pub duplicates: u32,
    /// Refused by validation.
    pub rejected: Vec<Rejected>,
}

/// A pipeline and a SQLite store in one value.
pub struct Embedded {
    pipeline: Pipeline,
    store: SqliteStore,
}

impl Embedded {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            pipeline: Pipeline::default(),
            store: SqliteStore::open(path, Durability::Normal)?,
        })
    }

    /// Validates, categorises and stores `records` in one transaction.
    pub fn ingest(&mut self, records: Vec<Record>) -> Result<IngestOutcome, StoreError> {
        let mut counts = logbook_redact::Counts::new();
        let (ok, rejected) = self.pipeline.process_counted(records, &mut counts);
        let received = logbook_proto::Timestamp::now();
        let quarantined: Vec<Quarantined> = rejected
            .iter()
            .map(|r| Quarantined {
                received,
                reason: r.reason.clone(),
                record: r.record.clone(),
            })
            .collect();
        let redactions: Vec<(String, u64)> = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.to_owned(), n))
            .collect();
        let stored = self.store.write_batch(&Batch {
            records: &ok,
            quarantined: &quarantined,
            redactions: &redactions,
            ..Batch::default()
        })?;
        let new = stored.iter().filter(|s| **s).count();
        Ok(IngestOutcome {
            stored: u32::try_from(new).unwrap_or(u32::MAX),
            duplicates: u32::try_from(stored.len() - new).unwrap_or(u32::MAX),
            rejected,
        })
    }

    /// Records a client's running totals of dropped records.
    pub fn record_drops(
        &mut self,
        client: &ClientInfo,
        dropped: [u64; 5],
    ) -> Result<(), StoreError> {
        self.store
            .write(
                &[],
                &[ClientDrops {
                    client: client.clone(),
                    dropped,
                }],
            )
            .map(drop)
    }
}
