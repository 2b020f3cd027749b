//! The collector's admission and store, in-process: what logbook-layer's `embedded`
//! feature runs on its worker thread instead of talking to a socket. The same path as
//! the collector's: [`Intake`] and [`commit`], on the calling thread.

use std::path::Path;

use logbook_proto::{transport, InstanceId, Origin, Record, Resource};

use crate::admission::commit::{commit, Entry};
use crate::admission::{Client, Intake, Outcome};
use crate::store::{
    open_writer, ClientDrops, Durability, StoreAddress, StoreError, StoreOptions, StoreWriter,
};

/// Admission and a store in one value.
pub struct Embedded {
    intake: Intake,
    store: Box<dyn StoreWriter>,
}

impl Embedded {
    /// Opens (creating if needed) the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Ok(Self {
            intake: Intake::default(),
            store: open_writer(
                &StoreAddress::sqlite(path),
                &StoreOptions::with_durability(Durability::Normal),
            )?,
        })
    }

    /// The application itself as a client: its identity bounded and redacted like any
    /// client's, its origin this process.
    pub fn client(&self, instance: InstanceId, resource: Resource) -> Result<Client, String> {
        let origin = Origin {
            pid: Some(std::process::id()),
            ..Origin::new(transport::EMBEDDED)
        };
        self.intake.client(instance, resource, origin)
    }

    /// Admits and stores `records` from `client` in one transaction.
    pub fn ingest(&mut self, client: &Client, records: Vec<Record>) -> Result<Outcome, StoreError> {
        let admitted = self.intake.admit(client, records);
        let mut done = commit(self.store.as_mut(), vec![Entry::Admitted(admitted)])?;
        Ok(done.outcomes.pop().flatten().unwrap_or_default())
    }

    /// Records a client's running totals of dropped records.
    pub fn record_drops(&mut self, drops: ClientDrops) -> Result<(), StoreError> {
        commit(self.store.as_mut(), vec![Entry::Drops(drops)]).map(drop)
    }
}
