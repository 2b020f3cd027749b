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
pub mod auth;
#[cfg(feature = "server")]
pub mod feed;
#[cfg(feature = "server")]
mod handle;
#[cfg(feature = "server")]
mod writer;

use std::sync::Arc;

use logbook_proto::{InstanceId, Origin, Record, RecordId, Resource, Timestamp};

pub use crate::pipeline::Refusal;
use crate::pipeline::{check_identity, Limits, Pipeline, Tally};
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
    /// What the limits did (values cut), by name: see [`limit`].
    pub limits: Vec<(String, u64)>,
    /// The memory `records` and `quarantined` hold (what the queue is bounded by).
    pub bytes: u64,
}

/// The names under which what the limits did is counted (`logbook stats`).
pub mod limit {
    /// Field values and messages cut to `max_value_bytes`.
    pub const VALUE_TRUNCATED: &str = "value_truncated";
    /// Batches refused for holding more than `max_batch_records`.
    pub const BATCH_REFUSED: &str = "batch_refused";
    /// Clients refused for an identity (service, host) over the limits.
    pub const IDENTITY_REFUSED: &str = "identity_refused";
    /// Hellos with a missing or wrong token.
    pub const AUTH_FAILED: &str = "auth_failed";
    /// Connections refused at `max_connections`.
    pub const CONNECTION_REFUSED: &str = "connection_refused";
    /// Connections closed for silence (`idle_timeout_secs`) or a stalled frame
    /// (`frame_timeout_secs`).
    pub const CONNECTION_TIMED_OUT: &str = "connection_timed_out";
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

    /// The limits records and clients are held to.
    pub fn limits(&self) -> &Limits {
        self.pipeline.limits()
    }

    /// A client as the collector keeps it: its identity checked against the limits
    /// (one line naming what is too long, for the transport to refuse it with), its
    /// service and host redacted like field values, and `origin`, how it reached the
    /// collector, to be stamped on every record it sends.
    pub fn client(
        &self,
        instance: InstanceId,
        mut resource: Resource,
        origin: Origin,
    ) -> Result<Client, String> {
        check_identity(&resource, self.limits())?;
        let mut counts = logbook_redact::Counts::new();
        let limits = self.limits();
        for (part, max) in [
            (&mut resource.service, limits.max_service_bytes),
            (&mut resource.host, limits.max_host_bytes),
        ] {
            if let Some(mut redacted) = self.pipeline.redactor().redact_text(part, &mut counts) {
                // A replacement may be longer than what it replaced: still within the
                // limit.
                let mut end = redacted.len().min(max);
                while !redacted.is_char_boundary(end) {
                    end -= 1;
                }
                redacted.truncate(end);
                *part = redacted;
            }
        }
        Ok(Client {
            instance,
            resource: Arc::new(resource),
            origin: Arc::new(origin),
        })
    }

    /// Refuses a batch of more than `max_batch_records`, before anything else is done
    /// with it.
    pub fn check_batch(&self, records: usize) -> Result<(), String> {
        let max = self.limits().max_batch_records;
        if records > max {
            return Err(format!(
                "batch of {records} records, more than the limit of {max} per batch"
            ));
        }
        Ok(())
    }

    /// Runs `records` from `client` through the pipeline, each stamped with the
    /// client's origin (whatever it said of itself).
    pub fn admit(&self, client: &Client, mut records: Vec<Record>) -> Admitted {
        for r in &mut records {
            r.origin = Some(Arc::clone(&client.origin));
        }
        let mut tally = Tally::default();
        let (ok, rejected) = self.pipeline.process_counted(records, &mut tally);
        let limits = if tally.values_cut > 0 {
            vec![(limit::VALUE_TRUNCATED.to_owned(), tally.values_cut)]
        } else {
            Vec::new()
        };
        let redactions = tally
            .redactions
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
            limits,
            bytes: tally.bytes,
        }
    }
}
