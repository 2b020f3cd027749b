//! The commit core: a group of admitted batches, drop totals and the collector's own
//! audit records, written in one transaction; the result split back per batch by
//! exact offsets, and what was committed, for the post-commit feed. Shared by the
//! collector's writer thread and embedded mode.

use logbook_proto::Record;

use super::{Admitted, Outcome};
use crate::store::{
    Batch, ClientDrops, ForwardState, StoreError, StoreWriter, StreamCursor, StreamItem, Written,
};

/// One part of a group.
#[derive(Debug)]
pub enum Entry {
    /// A client's batch, through the pipeline.
    Admitted(Admitted),
    /// A client's drop totals.
    Drops(ClientDrops),
    /// A forwarding destination's progress.
    Forward(ForwardState),
    /// An audit record of the collector's own.
    Audit(Record),
    /// What a limit did outside any batch (a refused connection), by name.
    Count(&'static str, u64),
}

/// What one commit stored: every new record with its stream position, and the stream
/// positions before and after the transaction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Committed {
    /// The stream position before the transaction. A reader whose last position is
    /// earlier missed records another writer committed meanwhile: it reads them from
    /// the store.
    pub from: StreamCursor,
    /// The stream position after it.
    pub to: StreamCursor,
    /// The records newly stored, in stream order, with their `seq` (the batch's own
    /// vector, kept in place: no copy of a group's records).
    pub records: Vec<Record>,
    /// The stream position just after each of `records`.
    pub cursors: Vec<StreamCursor>,
}

impl Committed {
    /// The records with their positions.
    pub fn into_items(self) -> Vec<StreamItem> {
        self.records
            .into_iter()
            .zip(self.cursors)
            .map(|(record, cursor)| StreamItem { cursor, record })
            .collect()
    }
}

/// What a group became.
#[derive(Debug)]
pub struct GroupResult {
    /// Per entry, in order: the outcome of an admitted batch; `None` for other entries.
    pub outcomes: Vec<Option<Outcome>>,
    /// What was committed.
    pub committed: Committed,
}

/// Writes `group` in one transaction.
pub fn commit(store: &mut dyn StoreWriter, group: Vec<Entry>) -> Result<GroupResult, StoreError> {
    let mut records = Vec::new();
    let mut drops = Vec::new();
    let mut forwards = Vec::new();
    let mut quarantined = Vec::new();
    let mut redactions: Vec<(String, u64)> = Vec::new();
    let mut limits: Vec<(String, u64)> = Vec::new();
    // Per entry: the range of `records` it owns, and its refusals.
    let mut parts = Vec::with_capacity(group.len());
    for entry in group {
        match entry {
            Entry::Admitted(a) => {
                let start = records.len();
                records.extend(a.records);
                quarantined.extend(a.quarantined);
                for (rule, n) in a.redactions {
                    add(&mut redactions, rule, n);
                }
                for (what, n) in a.limits {
                    add(&mut limits, what, n);
                }
                parts.push(Some((start..records.len(), a.refused)));
            }
            Entry::Drops(d) => {
                drops.push(d);
                parts.push(None);
            }
            Entry::Forward(f) => {
                // The newest progress of a destination wins.
                forwards.retain(|o: &ForwardState| o.name != f.name);
                forwards.push(f);
                parts.push(None);
            }
            Entry::Audit(r) => {
                records.push(r);
                parts.push(None);
            }
            Entry::Count(what, n) => {
                add(&mut limits, what.to_owned(), n);
                parts.push(None);
            }
        }
    }
    let written: Written = store.write_batch(&Batch {
        records: &records,
        drops: &drops,
        quarantined: &quarantined,
        redactions: &redactions,
        limits: &limits,
        forwards: &forwards,
    })?;
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let outcomes = parts
        .into_iter()
        .map(|part| {
            part.map(|(range, refused)| {
                let new = written.stored[range.clone()]
                    .iter()
                    .filter(|s| s.is_some())
                    .count();
                Outcome {
                    stored: count(new),
                    duplicates: count(range.len() - new),
                    refused,
                }
            })
        })
        .collect();
    // In place: the group's records, less the duplicates, with their seqs.
    let mut cursors = Vec::with_capacity(written.new_count());
    let mut stored = written.stored.iter();
    records.retain_mut(|r| match stored.next().copied().flatten() {
        Some(s) => {
            r.seq = s.seq;
            cursors.push(s.cursor);
            true
        }
        None => false,
    });
    Ok(GroupResult {
        outcomes,
        committed: Committed {
            from: written.from,
            to: written.to,
            records,
            cursors,
        },
    })
}

/// Adds `n` to the count named `name`.
fn add(counts: &mut Vec<(String, u64)>, name: String, n: u64) {
    match counts.iter_mut().find(|(c, _)| *c == name) {
        Some((_, total)) => *total = total.saturating_add(n),
        None => counts.push((name, n)),
    }
}
