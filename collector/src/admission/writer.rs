//! The one writer: a thread that groups queued requests into one transaction (up to a
//! record count or a wait), commits, answers each batch with its outcome, and
//! publishes the commit on the feed.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logbook_proto::Record;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info};

use super::commit::{commit, Entry};
use super::feed::Feed;
use super::handle::{AdmitError, QueueShare};
use super::{Admitted, Outcome};
use crate::metrics::Metrics;
use crate::store::{ClientDrops, ForwardState, StoreWriter};

/// Where a batch's outcome goes.
pub(crate) type Reply = oneshot::Sender<Result<Outcome, AdmitError>>;

/// What the writer is asked to do.
pub(crate) enum Request {
    /// A client's batch; answered once committed.
    Admit {
        admitted: Admitted,
        reply: Reply,
        /// The batch's share of the queue, returned once it is committed.
        permit: QueueShare,
    },
    /// A client's drop totals.
    Drops(ClientDrops),
    /// A forwarding destination's progress.
    Forward(ForwardState),
    /// An audit record of the collector's own (a configuration load, an auth failure).
    Audit(Record),
    /// What a limit did outside any batch, by name.
    Count(&'static str, u64),
    /// Time passed: upkeep that is due (checkpoints).
    Tick,
}

impl Request {
    fn records(&self) -> usize {
        match self {
            Self::Admit { admitted, .. } => admitted.records.len() + admitted.quarantined.len(),
            Self::Audit(_) => 1,
            Self::Drops(_) | Self::Forward(_) | Self::Count(..) | Self::Tick => 0,
        }
    }
}

/// Group commit limits.
#[derive(Clone, Copy, Debug)]
pub struct GroupCommit {
    /// Most records per transaction.
    pub max_records: usize,
    /// Longest wait for more before committing.
    pub max_wait: Duration,
    /// The disk budget: while the store uses this many bytes or more, clients' batches
    /// are refused (not acknowledged: their clients resend them) until retention frees
    /// space; the collector's own records are still written.
    pub max_db_size: Option<u64>,
}

/// Starts the writer thread. It stops when every sender is gone and the queue is
/// drained; joining it returns the records it stored.
pub(super) fn spawn(
    mut store: Box<dyn StoreWriter>,
    mut rx: mpsc::Receiver<Request>,
    limits: GroupCommit,
    feed: Feed,
    metrics: Arc<Metrics>,
    runtime: Handle,
) -> std::io::Result<JoinHandle<u64>> {
    std::thread::Builder::new()
        .name("logbook-writer".into())
        .spawn(move || {
            let mut total = 0u64;
            while let Some(first) = rx.blocking_recv() {
                let mut group = vec![first];
                let mut n = group[0].records();
                let deadline = Instant::now() + limits.max_wait;
                while n < limits.max_records {
                    let next = match rx.try_recv() {
                        Ok(r) => Some(r),
                        Err(mpsc::error::TryRecvError::Disconnected) => None,
                        Err(mpsc::error::TryRecvError::Empty) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                None
                            } else {
                                runtime.block_on(async {
                                    tokio::time::timeout(left, rx.recv()).await.ok().flatten()
                                })
                            }
                        }
                    };
                    let Some(req) = next else { break };
                    n += req.records();
                    group.push(req);
                }
                let started = Instant::now();
                let group = refuse_over_budget(store.as_mut(), group, limits.max_db_size);
                let stored = commit_group(store.as_mut(), group, &feed, &metrics);
                debug!(
                    records = n,
                    stored,
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "Committed a group."
                );
                total += stored;
            }
            info!(records = total, "Writer stopped.");
            total
        })
}

/// Disk budget log lines, at most one a minute.
static BUDGET_LOG: crate::log_limit::LogLimit =
    crate::log_limit::LogLimit::new(Duration::from_secs(60));

/// `group` less its clients' batches if the store is at its disk budget: those are
/// answered with [`AdmitError::Full`] now.
fn refuse_over_budget(
    store: &mut dyn StoreWriter,
    group: Vec<Request>,
    max: Option<u64>,
) -> Vec<Request> {
    let Some(max) = max else { return group };
    let used = match store.used_bytes() {
        Ok(used) if used >= max => used,
        Ok(_) => return group,
        Err(e) => {
            error!(error = %e, "Could not measure the database's size; writing regardless.");
            return group;
        }
    };
    if let Some(held) = BUDGET_LOG.allow() {
        error!(
            used,
            max_db_size = max,
            refused_groups_since_last = held,
            "The database is at its disk budget: refusing batches until retention frees space."
        );
    }
    group
        .into_iter()
        .filter_map(|req| match req {
            Request::Admit { reply, .. } => {
                let _ = reply.send(Err(AdmitError::Full { used, max }));
                None
            }
            other => Some(other),
        })
        .collect()
}

/// Commits one group, answers every batch in it and publishes the commit; returns the
/// records newly stored.
fn commit_group(
    store: &mut dyn StoreWriter,
    group: Vec<Request>,
    feed: &Feed,
    metrics: &Metrics,
) -> u64 {
    let mut entries = Vec::with_capacity(group.len());
    // Per client batch: its transport and how many records it brought.
    let mut batches: Vec<(String, u64)> = Vec::new();
    let mut replies = Vec::with_capacity(group.len());
    let mut permits = Vec::new();
    let mut tick = false;
    for req in group {
        match req {
            Request::Admit {
                admitted,
                reply,
                permit,
            } => {
                let transport = admitted
                    .records
                    .first()
                    .or(admitted.quarantined.first().map(|q| &q.record))
                    .and_then(|r| r.origin.as_ref())
                    .map_or_else(|| "unknown".to_owned(), |o| o.transport.clone());
                batches.push((
                    transport,
                    (admitted.records.len() + admitted.refused.len()) as u64,
                ));
                entries.push(Entry::Admitted(admitted));
                replies.push(Some(reply));
                permits.push(permit);
            }
            Request::Drops(d) => {
                entries.push(Entry::Drops(d));
                replies.push(None);
            }
            Request::Forward(f) => {
                entries.push(Entry::Forward(f));
                replies.push(None);
            }
            Request::Audit(r) => {
                entries.push(Entry::Audit(r));
                replies.push(None);
            }
            Request::Count(what, n) => {
                entries.push(Entry::Count(what, n));
                replies.push(None);
            }
            Request::Tick => tick = true,
        }
    }
    if tick {
        match store.tick() {
            // The store takes writes again (readiness recovers without traffic).
            Ok(()) => metrics.tick_ok(),
            Err(e) => error!(error = %e, "Could not write an audit checkpoint."),
        }
    }
    if entries.is_empty() {
        return 0;
    }
    let started = Instant::now();
    let result = commit(store, entries);
    let took = started.elapsed();
    // The queue space comes back once the records are out of memory's way.
    drop(permits);
    // A closed connection just loses its replies; the client resends unacknowledged
    // batches and the resends are recognised as duplicates.
    match result {
        Ok(done) => {
            metrics.commit(took);
            let now = logbook_proto::Timestamp::now();
            for r in &done.committed.records {
                let age = now.as_nanos().saturating_sub(r.ts.as_nanos()).max(0);
                metrics.emit_to_commit(Duration::from_nanos(age as u64));
            }
            let mut batches = batches.into_iter();
            for (outcome, reply) in done.outcomes.into_iter().zip(replies) {
                let Some(outcome) = outcome else { continue };
                if let Some((transport, received)) = batches.next() {
                    metrics.batch(
                        &transport,
                        received,
                        u64::from(outcome.stored),
                        u64::from(outcome.duplicates),
                        outcome.refused.len() as u64,
                    );
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(outcome));
                }
            }
            let stored = done.committed.records.len() as u64;
            feed.publish(done.committed);
            stored
        }
        Err(e) => {
            metrics.commit_failed();
            error!(error = %e, "Commit failed; clients will resend.");
            for reply in replies.into_iter().flatten() {
                let _ = reply.send(Err(AdmitError::Store(e.to_string())));
            }
            0
        }
    }
}
