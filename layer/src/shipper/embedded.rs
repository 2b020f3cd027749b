//! Embedded mode: the collector's pipeline and SQLite store run on the worker thread;
//! no daemon, no socket.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logbook_collector::embedded::Embedded;
use logbook_collector::store::{ClientDrops, ClientInfo, StoreError};
use logbook_proto::wire::{decode_record, RECORD_ID_OFFSET};
use logbook_proto::{Level, PerLevel, Record, RecordId, Resource};

use super::worker::Full;
use super::{Counters, Identity, LevelCounts, Mark, Sink};

/// Records per transaction at most; more wait for the next pass, so the worker keeps
/// draining the rings between transactions.
const MAX_BATCH: usize = 8192;
/// How often, at most, changed drop totals are written.
const DROPS_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) struct EmbeddedSink {
    store: Embedded,
    client: ClientInfo,
    resource: Arc<Resource>,
    counters: Arc<Counters>,
    /// Records waiting for a transaction, with their budget charge and level.
    pending: Vec<(Record, usize, Level)>,
    scratch: Vec<u8>,
    drops_stored: PerLevel<u64>,
    drops_at: Option<Instant>,
    committed: u64,
}

impl EmbeddedSink {
    pub(crate) fn open(
        path: &Path,
        identity: &Identity,
        counters: Arc<Counters>,
    ) -> Result<Self, StoreError> {
        let store = Embedded::open(path)?;
        let client = store
            .client(identity.instance, (*identity.resource).clone())
            .map_err(|e| StoreError::invalid_data(format!("the application's identity: {e}")))?;
        Ok(Self {
            store,
            // Records are decoded with the identity as admitted (redacted).
            resource: Arc::clone(&client.resource),
            client,
            counters,
            pending: Vec::new(),
            scratch: Vec::new(),
            drops_stored: [0; Level::COUNT],
            drops_at: None,
            committed: 0,
        })
    }

    /// Stores up to one transaction's worth of pending records.
    fn commit_some(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let n = self.pending.len().min(MAX_BATCH);
        let chunk: Vec<(Record, usize, Level)> = self.pending.drain(..n).collect();
        let cost: usize = chunk.iter().map(|c| c.1).sum();
        let mut levels: LevelCounts = [0; Level::COUNT];
        for c in &chunk {
            levels[c.2.index()] += 1;
        }
        match self
            .store
            .ingest(&self.client, chunk.into_iter().map(|c| c.0).collect())
        {
            Ok(outcome) => {
                self.counters.delivered(
                    u64::from(outcome.stored) + u64::from(outcome.duplicates),
                    cost,
                );
                self.counters.rejected(outcome.refused.len() as u64);
                for r in outcome.refused.iter().take(10) {
                    eprintln!("logbook: rejected record {}: {}", r.id, r.reason);
                }
            }
            Err(e) => {
                eprintln!("logbook: cannot store {n} records in the embedded database: {e}");
                self.counters.abandoned(&levels, cost);
            }
        }
        self.committed += 1;
    }
}

impl Sink for EmbeddedSink {
    fn push(&mut self, record: [&[u8]; 2], id: RecordId, level: Level) -> Result<(), Full> {
        let cost = record[0].len() + record[1].len();
        if !self.counters.try_acquire(cost) {
            return Err(Full);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(record[0]);
        self.scratch.extend_from_slice(record[1]);
        self.scratch[RECORD_ID_OFFSET..RECORD_ID_OFFSET + 16].copy_from_slice(&id.0);
        match decode_record(&self.scratch, &self.resource) {
            Ok(r) => self.pending.push((r, cost, level)),
            // Our own encoding of our own values always decodes; count it if not.
            Err(_) => {
                let mut levels = [0; Level::COUNT];
                levels[level.index()] = 1;
                self.counters.abandoned(&levels, cost);
            }
        }
        Ok(())
    }

    fn seal(&mut self) {
        self.commit_some();
    }

    fn poll(&mut self) -> bool {
        let mut progress = false;
        if !self.pending.is_empty() {
            self.commit_some();
            progress = true;
        }
        let dropped = self.counters.dropped_by_level();
        let due = self
            .drops_at
            .is_none_or(|at| at.elapsed() >= DROPS_INTERVAL);
        if dropped != self.drops_stored
            && due
            && self
                .store
                .record_drops(ClientDrops {
                    client: self.client.clone(),
                    dropped,
                })
                .is_ok()
        {
            self.drops_stored = dropped;
            self.drops_at = Some(Instant::now());
            progress = true;
        }
        progress
    }

    fn mark(&self) -> Mark {
        // Every pending record must be committed: mark the transaction that will hold the last.
        let transactions = self.pending.len().div_ceil(MAX_BATCH) as u64;
        Mark {
            batch: self.committed + transactions,
            dropped: self.counters.dropped_by_level(),
        }
    }

    fn reached(&self, mark: &Mark) -> bool {
        self.committed >= mark.batch
            && self
                .drops_stored
                .iter()
                .zip(mark.dropped)
                .all(|(stored, at_mark)| *stored >= at_mark)
    }

    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.drops_stored == self.counters.dropped_by_level()
    }
}
