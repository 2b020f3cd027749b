//! What happens to every record between decoding and storage: validation, then
//! category derivation. Shared by the socket listener and embedded mode.

mod category;
mod validate;

use logbook_proto::{Record, RecordId};

pub use category::{
    derive_category, CATEGORY_AGENT, CATEGORY_ERROR, CATEGORY_LLM_CALL, CATEGORY_LOG, CATEGORY_RUN,
    CATEGORY_SPAN, CATEGORY_STEP, CATEGORY_TOOL_CALL,
};
pub use validate::{validate, Limits};

/// A record the pipeline refused, with the reason sent back to the client.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejected {
    /// Index within its batch.
    pub index: u32,
    /// The record's id.
    pub id: RecordId,
    /// One line: why.
    pub reason: String,
}

/// The ingest pipeline.
#[derive(Clone, Debug, Default)]
pub struct Pipeline {
    limits: Limits,
}

impl Pipeline {
    /// A pipeline with these limits.
    pub fn new(limits: Limits) -> Self {
        Self { limits }
    }

    /// Validates each record and derives its category. Returns the records to store, in
    /// order, and the refused ones.
    pub fn process(&self, records: Vec<Record>) -> (Vec<Record>, Vec<Rejected>) {
        let mut ok = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (i, mut r) in records.into_iter().enumerate() {
            match validate(&r, &self.limits) {
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
                }),
            }
        }
        (ok, rejected)
    }
}
