//! Embedded mode: the collector's pipeline and SQLite store run on the worker thread;
//! no daemon, no socket.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_collector::embedded::Embedded;
use logbook_collector::store::{ClientInfo, StoreError};
use logbook_proto::{Record, RecordId};

use super::{Counters, Identity, LevelCounts, Mark, Sink};
use crate::capture::Captured;

/// Records per transaction at most.
const MAX_BATCH: usize = 8192;
/// How often, at most, changed drop totals are written.
const DROPS_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) struct EmbeddedSink {
    store: Embedded,
    client: ClientInfo,
    resource: Arc<logbook_proto::Resource>,
    counters: Arc<Counters>,
    batch: Vec<Record>,
    cost: usize,
    levels: LevelCounts,
    drops_stored: [u64; 5],
    drops_at: Option<Instant>,
    sealed: u64,
}

impl EmbeddedSink {
    pub(crate) fn open(
        path: &Path,
        identity: &Identity,
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            store: Embedded::open(path)?,
            client: ClientInfo {
                instance: identity.instance,
                resource: Arc::clone(&identity.resource),
            },
            resource: Arc::clone(&identity.resource),
            counters,
            batch: Vec::new(),
            cost: 0,
            levels: [0; 5],
            drops_stored: [0; 5],
            drops_at: None,
            sealed: 0,
        })
    }
}

impl Sink for EmbeddedSink {
    fn push(&mut self, record: &Captured, id: RecordId, cost: usize) {
        self.levels[record.level().index()] += 1;
        self.cost += cost;
        self.batch.push(record.to_record(id, &self.resource));
        if self.batch.len() >= MAX_BATCH {
            self.seal();
        }
    }

    fn seal(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.sealed += 1;
        let batch = std::mem::take(&mut self.batch);
        let (cost, levels) = (
            std::mem::take(&mut self.cost),
            std::mem::take(&mut self.levels),
        );
        match self.store.ingest(batch) {
            Ok(outcome) => {
                self.counters.delivered(
                    u64::from(outcome.stored) + u64::from(outcome.duplicates),
                    cost,
                );
                self.counters.rejected(outcome.rejected.len() as u64);
                for r in outcome.rejected.iter().take(10) {
                    eprintln!("logbook: rejected record {}: {}", r.id, r.reason);
                }
            }
            Err(e) => {
                eprintln!(
                    "logbook: cannot store {} records in the embedded database: {e}",
                    levels.iter().sum::<u32>()
                );
                self.counters.abandoned(&levels, cost);
            }
        }
    }

    fn poll(&mut self) -> bool {
        let dropped = self.counters.dropped_by_level();
        let due = self
            .drops_at
            .is_none_or(|at| at.elapsed() >= DROPS_INTERVAL);
        if dropped != self.drops_stored
            && due
            && self.store.record_drops(&self.client, dropped).is_ok()
        {
            self.drops_stored = dropped;
            self.drops_at = Some(Instant::now());
            return true;
        }
        false
    }

    fn mark(&self) -> Mark {
        Mark {
            batch: self.sealed,
            dropped: self.counters.dropped_by_level(),
        }
    }

    /// Sealing commits synchronously, so only the drop totals can lag.
    fn reached(&self, mark: &Mark) -> bool {
        self.drops_stored
            .iter()
            .zip(mark.dropped)
            .all(|(stored, at_mark)| *stored >= at_mark)
    }

    fn is_idle(&self) -> bool {
        self.batch.is_empty() && self.drops_stored == self.counters.dropped_by_level()
    }
}
