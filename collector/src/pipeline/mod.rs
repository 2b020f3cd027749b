//! What happens to every record between decoding and storage: GenAI name
//! bounds (values cut to a limit), GenAI name normalisation, redaction, validation
//! (the collector's namespace reserved, sizes bounded), then category derivation. Shared
//! by every transport and embedded mode, through `crate::admission`.

mod bound;
mod category;
mod normalize;
mod validate;

use std::sync::Arc;

use std::fmt;

use logbook_proto::wire::record_memory;
use logbook_proto::{Fields, Record, RecordId, ScopeKey};
use logbook_redact::{Counts, Redactor};

pub use bound::{approx_size, check_identity, cut_values, scrub_nul};
pub use category::{
    derive_category, CATEGORY_AGENT, CATEGORY_ARTIFACT, CATEGORY_DECISION, CATEGORY_ERROR,
    CATEGORY_FEEDBACK, CATEGORY_LLM_CALL, CATEGORY_LOG, CATEGORY_RUN, CATEGORY_SPAN,
    CATEGORY_STATE, CATEGORY_STEP, CATEGORY_TOOL_CALL, CATEGORY_USAGE,
};
pub use normalize::normalize;
pub use validate::{reserved, validate, Limits, RESERVED_NAME_PREFIX, RESERVED_TARGET};

/// Why the pipeline refused a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It breaks a structural rule (empty name, zero id, time out of range, too many
    /// fields, …): one line saying which.
    Invalid(String),
    /// It lacks a scope field the configuration requires (`required_scope`).
    MissingScope(ScopeKey),
    /// It is larger than `max_record_bytes` once its values are cut.
    TooLarge {
        /// Its size, about as stored.
        bytes: usize,
        /// The limit.
        max: usize,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
            Self::MissingScope(k) => write!(f, "missing required scope field `{}`", k.as_str()),
            Self::TooLarge { bytes, max } => write!(
                f,
                "record of {bytes} bytes, more than the limit of {max} bytes"
            ),
        }
    }
}

/// A record the pipeline refused, with the reason sent back to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// Index within its batch.
    pub index: u32,
    /// The record's id.
    pub id: RecordId,
    /// Why.
    pub reason: Refusal,
    /// The record (redacted), kept in quarantine.
    pub record: Record,
}

/// What the pipeline changed in the records it passed.
#[derive(Debug, Default)]
pub struct Tally {
    /// Values the redaction rules replaced, by rule.
    pub redactions: Counts,
    /// Values (and messages) cut to the limit.
    pub values_cut: u64,
    /// The memory the records hold, passed and refused alike (what the admission
    /// queue is bounded by).
    pub bytes: u64,
}

/// The ingest pipeline.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    limits: Limits,
    required_scope: Vec<ScopeKey>,
    redactor: Arc<Redactor>,
}

impl Pipeline {
    /// A pipeline with these limits.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            required_scope: Vec::new(),
            redactor: Arc::default(),
        }
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Its redactor.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Redacts with `redactor` instead of the built-in rules.
    pub fn with_redactor(mut self, redactor: Arc<Redactor>) -> Self {
        self.redactor = redactor;
        self
    }

    /// Refuses records that lack any of these scope fields (`required_scope`).
    pub fn require_scope(mut self, keys: Vec<ScopeKey>) -> Self {
        self.required_scope = keys;
        self
    }

    /// Bounds, redacts and validates each record and derives its category. Returns the
    /// records to store, in order, and the refused ones (redacted too).
    pub fn process(&self, records: Vec<Record>) -> (Vec<Record>, Vec<Rejected>) {
        self.process_counted(records, &mut Tally::default())
    }

    /// [`Pipeline::process`], adding what it changed to `tally`.
    pub fn process_counted(
        &self,
        records: Vec<Record>,
        tally: &mut Tally,
    ) -> (Vec<Record>, Vec<Rejected>) {
        let mut ok = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        let counts = &mut tally.redactions;
        for (i, mut r) in records.into_iter().enumerate() {
            // First, so that nothing else reads a value larger than the limit, or a NUL.
            tally.values_cut += cut_values(&mut r, self.limits.max_value_bytes);
            scrub_nul(&mut r);
            self.redactor.redact_record(&mut r, counts);
            // After redaction, so that copies and scope come from redacted values (and a
            // dropped field is not copied); the copies then meet the rules for their
            // GenAI names.
            let added = normalize(&mut r);
            if !added.is_empty() {
                let mut copies = Fields::with_capacity(added.len());
                for k in added {
                    if let Some(v) = r.fields.remove(k) {
                        copies.set(k, v);
                    }
                }
                self.redactor.redact_fields(&mut copies, counts);
                r.fields.merge(copies);
            }
            let bytes = approx_size(&r);
            let checked = validate(&r, &self.limits)
                .map_err(Refusal::Invalid)
                .and_then(|()| {
                    if bytes > self.limits.max_record_bytes {
                        return Err(Refusal::TooLarge {
                            bytes,
                            max: self.limits.max_record_bytes,
                        });
                    }
                    match self
                        .required_scope
                        .iter()
                        .find(|k| r.scope.get(**k).is_none())
                    {
                        Some(k) => Err(Refusal::MissingScope(*k)),
                        None => Ok(()),
                    }
                });
            match checked {
                Ok(()) => {
                    if r.category.is_none() {
                        r.category = Some(derive_category(&r).into());
                    }
                    tally.bytes += record_memory(&r) as u64;
                    ok.push(r);
                }
                Err(reason) => {
                    if bytes > self.limits.max_record_bytes {
                        // Quarantine keeps what identifies it, not what made it too large.
                        r.message = None;
                        r.fields = Fields::new();
                    }
                    tally.bytes += record_memory(&r) as u64;
                    rejected.push(Rejected {
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        id: r.id,
                        reason,
                        record: r,
                    })
                }
            }
        }
        (ok, rejected)
    }
}
