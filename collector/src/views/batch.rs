//! What one batch of stored records changes in the derived views, gathered as the
//! records are written, whatever the backend: counts by kind and level, the run deltas
//! (merged per run), and the spans whose GenAI events may fold into their LLM call.

use std::collections::{BTreeSet, HashMap};

use logbook_proto::{Kind, Level, Record};

use super::call::{genai_message_event, CallRow, GENAI_CONTENT_EVENTS};
use super::run::{run_key, RunDelta, RunKey};

/// The derived changes of a batch's new records.
#[derive(Default)]
pub struct BatchViews<'a> {
    /// New records by kind (event, span start, span end) and level.
    pub counts: [[i64; Level::COUNT]; 3],
    /// Each run's delta, merged.
    pub runs: HashMap<RunKey<'a>, RunDelta<'a>>,
    /// Spans `(trace, span)` with prompts or responses sent apart from them, as GenAI
    /// events, or whose LLM call could take them.
    pub fold: BTreeSet<([u8; 16], [u8; 8])>,
}

impl<'a> BatchViews<'a> {
    /// Adds a newly stored record and its call row, if it is a call.
    pub fn add(&mut self, r: &'a Record, call: Option<&CallRow<'_>>) {
        self.counts[r.kind.code() as usize - 1][r.level.index()] += 1;
        if let Some(span) = r.span_id {
            let genai_event = r.kind == Kind::Event
                && (genai_message_event(&r.name).is_some()
                    || GENAI_CONTENT_EVENTS.contains(&&*r.name));
            let wants_messages = matches!(call, Some(CallRow::Llm(c))
                if c.input_messages.is_none() || c.output_messages.is_none());
            if genai_event || wants_messages {
                self.fold.insert((r.trace_id.0, span.0));
            }
        }
        if let Some(key) = run_key(r) {
            let delta = RunDelta::of(r, key, call);
            match self.runs.get_mut(&key) {
                Some(d) => d.merge(delta),
                None => {
                    self.runs.insert(key, delta);
                }
            }
        }
    }
}
