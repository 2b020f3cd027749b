//! The one admission path every transport uses. A transport decodes what its client
//! sent and hands the records, with the client's identity, to one entry point; it gets
//! back a typed [`Outcome`] once they are committed: how many were stored, how many
//! were already stored (a resend), and which were refused and why (already kept in
//! quarantine). Nothing here knows a wire format.
//!
//! - [`Intake`] runs the pipeline (normalise, redact, validate, categorise) and turns
//!   refusals into quarantine rows, counting redactions;
//! - [`commit`] writes a group of admitted batches (and drop totals, and the collector's
//!   own audit records) in one transaction and splits the result back per batch,
//!   exactly, whatever else shares the commit;
//! - with the `server` feature, [`Admission`] is the collector's handle on it: a
//!   bounded queue in front of the writer thread ([`writer`]), which publishes every
//!   commit on the post-commit feed ([`feed`]). Embedded mode calls [`Intake`] and
//!   [`commit`] directly on its own thread.

pub mod commit;

#[cfg(feature = "server")]
pub mod feed;
#[cfg(feature = "server")]
mod handle;
#[cfg(feature = "server")]
mod writer;

use logbook_proto::{Record, RecordId, Timestamp};

use crate::pipeline::Pipeline;
pub use crate::pipeline::Refusal;
use crate::store::{ClientInfo, Quarantined};

#[cfg(feature = "server")]
pub use handle::{Admission, AdmitError, Pending, QueueLimits, WriterThread};
#[cfg(feature = "server")]
pub use writer::GroupCommit;

/// Who sent a batch, as the transport saw it.
pub type Client = ClientInfo;

/// A refused record: its place in the batch, its id, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Index within its batch.
    pub index: u32,
    /// The record's id.
    pub id: RecordId,
    /// Why.
    pub reason: Refusal,
}

/// What became of one batch, known once it is committed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Records newly stored.
    pub stored: u32,
    /// Records already stored (same id): a resend, not stored again.
    pub duplicates: u32,
    /// Records refused, each kept in quarantine with its reason.
    pub refused: Vec<Refused>,
}

/// A batch through the pipeline, ready to commit.
#[derive(Debug, Default)]
pub struct Admitted {
    /// Records to store, in batch order.
    pub records: Vec<Record>,
    /// Refused records, redacted, with their reasons.
    pub quarantined: Vec<Quarantined>,
    /// What was refused, for the outcome.
    pub refused: Vec<Refused>,
    /// Values the redaction rules replaced, by rule.
    pub redactions: Vec<(String, u64)>,
}

/// The pipeline step of admission, shared by every transport.
#[derive(Clone, Debug, Default)]
pub struct Intake {
    pipeline: Pipeline,
}

impl Intake {
    /// Intake through `pipeline`.
    pub fn new(pipeline: Pipeline) -> Self {
        Self { pipeline }
    }

    /// Runs `records` from `client` through the pipeline.
    pub fn admit(&self, _client: &Client, records: Vec<Record>) -> Admitted {
        let mut counts = logbook_redact::Counts::new();
        let (ok, rejected) = self.pipeline.process_counted(records, &mut counts);
        let redactions = counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (r.to_owned(), n))
            .collect();
        let received = Timestamp::now();
        let mut refused = Vec::with_capacity(rejected.len());
        let mut quarantined = Vec::with_capacity(rejected.len());
        for r in rejected {
            refused.push(Refused {
                index: r.index,
                id: r.id,
                reason: r.reason.clone(),
            });
            quarantined.push(Quarantined {
                received,
                reason: r.reason.to_string(),
                record: r.record,
            });
        }
        Admitted {
            records: ok,
            quarantined,
            refused,
            redactions,
        }
    }
}
