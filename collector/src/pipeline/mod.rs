//! What happens to every record between decoding and storage: GenAI name
//! normalisation, redaction, validation, then category derivation. Shared by the socket listener and embedded mode.

mod category;
mod normalize;
mod validate;

use std::sync::Arc;

use std::fmt;

use logbook_proto::{Fields, Record, RecordId, ScopeKey};
use logbook_redact::{Counts, Redactor};

pub use category::{
    derive_category, CATEGORY_AGENT, CATEGORY_ARTIFACT, CATEGORY_DECISION, CATEGORY_ERROR,
    CATEGORY_LLM_CALL, CATEGORY_LOG, CATEGORY_RUN, CATEGORY_SPAN, CATEGORY_STATE, CATEGORY_STEP,
    CATEGORY_TOOL_CALL, CATEGORY_USAGE,
};
pub use normalize::normalize;
pub use validate::{validate, Limits};

/// Why the pipeline refused a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It breaks a structural rule (empty name, zero id, time out of range, too many
    /// fields, …): one line saying which.
    Invalid(String),
    /// It lacks a scope field the configuration requires (`required_scope`).
    MissingScope(ScopeKey),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) => f.write_str(why),
            Self::MissingScope(k) => write!(f, "missing required scope field `{}`", k.as_str()),
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

    /// Redacts and validates each record and derives its category. Returns the records
    /// to store, in order, and the refused ones (redacted too).
    pub fn process(&self, records: Vec<Record>) -> (Vec<Record>, Vec<Rejected>) {
        self.process_counted(records, &mut Counts::new())
    }

    /// [`Pipeline::process`], adding the redactions made to `counts`.
    pub fn process_counted(
        &self,
        records: Vec<Record>,
        counts: &mut Counts,
    ) -> (Vec<Record>, Vec<Rejected>) {
        let mut ok = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (i, mut r) in records.into_iter().enumerate() {
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
            let checked = validate(&r, &self.limits)
                .map_err(Refusal::Invalid)
                .and_then(|()| {
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
                    ok.push(r);
                }
                Err(reason) => rejected.push(Rejected {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    id: r.id,
                    reason,
                    record: r,
                }),
            }
        }
        (ok, rejected)
    }
}
