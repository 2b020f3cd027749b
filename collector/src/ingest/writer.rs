//! The one writer: a thread that groups queued batches into one transaction (up to a
//! record count or a wait), commits, then acknowledges each batch to its connection.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use logbook_proto::wire::{Ack, ErrorCode, ErrorFrame, Frame};
use logbook_proto::Record;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::{debug, error, info};

use crate::store::{Batch, ClientDrops, Quarantined, Store};

/// What a connection sends its peer: frames, or a last error frame before closing.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame(Frame),
    Fatal(ErrorFrame),
}

pub(crate) enum WriteRequest {
    /// Validated records of one client batch; acknowledged on `reply` after commit.
    Batch {
        seq: u64,
        records: Vec<Record>,
        /// Refused records of the batch, kept in quarantine.
        quarantined: Vec<Quarantined>,
        /// Values the redaction rules replaced in the batch.
        redactions: Vec<(String, u64)>,
        reply: mpsc::UnboundedSender<Outgoing>,
        /// The batch's share of the record queue, returned once it is committed.
        permit: OwnedSemaphorePermit,
    },
    /// A client's drop totals.
    Drops(ClientDrops),
    /// An audit record of the collector's own (e.g. a client failing authentication).
    Audit(Record),
    /// Time passed: upkeep that is due (checkpoints).
    Tick,
    /// A connection's last word: sent after the acks of every batch read before it, so
    /// the client knows which of its batches the error is about.
    Fatal {
        error: ErrorFrame,
        reply: mpsc::UnboundedSender<Outgoing>,
    },
}

/// Group commit limits.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupCommit {
    pub(crate) max_records: usize,
    pub(crate) max_wait: Duration,
}

pub(crate) fn spawn(
    mut store: Box<dyn Store>,
    mut rx: mpsc::Receiver<WriteRequest>,
    limits: GroupCommit,
    runtime: Handle,
) -> std::io::Result<JoinHandle<u64>> {
    std::thread::Builder::new()
        .name("logbook-writer".into())
        .spawn(move || {
            let mut total = 0u64;
            while let Some(first) = rx.blocking_recv() {
                let mut group = vec![first];
                let mut n = records_in(&group[0]);
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
                    n += records_in(&req);
                    group.push(req);
                }
                let started = Instant::now();
                let stored = commit(store.as_mut(), group);
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

fn records_in(r: &WriteRequest) -> usize {
    match r {
        WriteRequest::Batch { records, .. } => records.len(),
        WriteRequest::Audit(_) => 1,
        WriteRequest::Drops(_) | WriteRequest::Fatal { .. } | WriteRequest::Tick => 0,
    }
}

/// What to tell a connection once the group is committed, in request order.
enum Reply {
    Ack {
        seq: u64,
        len: usize,
        reply: mpsc::UnboundedSender<Outgoing>,
    },
    Fatal {
        error: ErrorFrame,
        reply: mpsc::UnboundedSender<Outgoing>,
    },
}

/// Commits one group and answers every request in it, in order; returns records newly
/// stored.
fn commit(store: &mut dyn Store, group: Vec<WriteRequest>) -> u64 {
    let mut records = Vec::new();
    let mut drops = Vec::new();
    let mut quarantine = Vec::new();
    let mut redactions: Vec<(String, u64)> = Vec::new();
    let mut replies = Vec::new();
    let mut permits = Vec::new();
    let mut tick = false;
    for req in group {
        match req {
            WriteRequest::Batch {
                seq,
                records: rs,
                quarantined,
                redactions: counts,
                reply,
                permit,
            } => {
                permits.push(permit);
                quarantine.extend(quarantined);
                for (rule, n) in counts {
                    match redactions.iter_mut().find(|(r, _)| *r == rule) {
                        Some((_, total)) => *total += n,
                        None => redactions.push((rule, n)),
                    }
                }
                replies.push(Reply::Ack {
                    seq,
                    len: rs.len(),
                    reply,
                });
                records.extend(rs);
            }
            WriteRequest::Drops(d) => drops.push(d),
            WriteRequest::Audit(r) => records.push(r),
            WriteRequest::Tick => tick = true,
            WriteRequest::Fatal { error, reply } => replies.push(Reply::Fatal { error, reply }),
        }
    }
    // A closed connection just loses its replies; the client resends unacknowledged
    // batches and the resends are recognised as duplicates.
    if tick {
        if let Err(e) = store.tick() {
            error!(error = %e, "Could not write an audit checkpoint.");
        }
    }
    if records.is_empty() && drops.is_empty() && quarantine.is_empty() && replies.is_empty() {
        return 0;
    }
    let result = store.write_batch(&Batch {
        records: &records,
        drops: &drops,
        quarantined: &quarantine,
        redactions: &redactions,
    });
    let total = records.len();
    drop(records);
    drop(permits);
    match result {
        Ok(stored) => {
            let mut at = 0;
            for r in replies {
                match r {
                    Reply::Ack { seq, len, reply } => {
                        let new = stored[at..at + len].iter().filter(|s| **s).count();
                        at += len;
                        let ack = Ack {
                            seq,
                            stored: count(new),
                            duplicates: count(len - new),
                        };
                        let _ = reply.send(Outgoing::Frame(Frame::Ack(ack)));
                    }
                    Reply::Fatal { error, reply } => {
                        let _ = reply.send(Outgoing::Fatal(error));
                    }
                }
            }
            stored.iter().filter(|s| **s).count() as u64
        }
        Err(e) => {
            error!(error = %e, records = total, "Commit failed; clients will resend.");
            for r in replies {
                let (error, reply) = match r {
                    Reply::Ack { reply, .. } => (
                        ErrorFrame {
                            code: ErrorCode::Unavailable,
                            message: format!("cannot store records right now: {e}"),
                        },
                        reply,
                    ),
                    Reply::Fatal { error, reply } => (error, reply),
                };
                let _ = reply.send(Outgoing::Fatal(error));
            }
            0
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
