//! A record's category, derived from its GenAI fields, logbook's conventions, kind and
//! level when the emitter did not set one.

use logbook_proto::genai::{self, logbook, openinference, openllmetry, operation};
use logbook_proto::{Kind, Level, Record, Status};

/// The root span of a run (set by the layer on the span that introduces a `run_id`).
pub const CATEGORY_RUN: &str = "run";
/// A model call.
pub const CATEGORY_LLM_CALL: &str = "llm_call";
/// A tool call.
pub const CATEGORY_TOOL_CALL: &str = "tool_call";
/// An agent invocation.
pub const CATEGORY_AGENT: &str = "agent";
/// A step of a run.
pub const CATEGORY_STEP: &str = "step";
/// A decision an agent took (an event named `decision` or with `decision.summary`).
pub const CATEGORY_DECISION: &str = "decision";
/// Something an agent made (an event named `artifact` or with `artifact.type`).
pub const CATEGORY_ARTIFACT: &str = "artifact";
/// Token usage reported outside a model call's span.
pub const CATEGORY_USAGE: &str = "usage";
/// A state pulse: the hash of the agent's state and the keys that changed.
pub const CATEGORY_STATE: &str = "state";
/// A failure: an ERROR event.
pub const CATEGORY_ERROR: &str = "error";
/// Any other event.
pub const CATEGORY_LOG: &str = "log";
/// Any other span.
pub const CATEGORY_SPAN: &str = "span";
/// Feedback on a run or an LLM call: a label, a score, a note.
pub const CATEGORY_FEEDBACK: &str = "feedback";

/// The category of `r` by its content (after [`super::normalize`]): GenAI operation,
/// then GenAI fields, then logbook's conventions, then kind and level.
pub fn derive_category(r: &Record) -> &'static str {
    let has = |k: &str| r.fields.get(k).is_some();
    if let Some(op) = r.fields.get(genai::OPERATION_NAME).and_then(|v| v.as_str()) {
        match op {
            operation::CHAT
            | operation::TEXT_COMPLETION
            | operation::GENERATE_CONTENT
            | operation::EMBEDDINGS => return CATEGORY_LLM_CALL,
            operation::EXECUTE_TOOL => return CATEGORY_TOOL_CALL,
            operation::INVOKE_AGENT | operation::CREATE_AGENT => return CATEGORY_AGENT,
            _ => {}
        }
    }
    if r.kind != Kind::Event {
        if has(genai::TOOL_NAME) {
            return CATEGORY_TOOL_CALL;
        }
        if has(genai::REQUEST_MODEL) {
            return CATEGORY_LLM_CALL;
        }
    }
    if r.kind == Kind::Event {
        let named = |n: &str, k: &str| r.name == n || has(k);
        if named("decision", logbook::DECISION_SUMMARY) {
            return CATEGORY_DECISION;
        }
        if named("artifact", logbook::ARTIFACT_TYPE) {
            return CATEGORY_ARTIFACT;
        }
        if named("state", logbook::STATE_HASH) {
            return CATEGORY_STATE;
        }
        if named("feedback", logbook::FEEDBACK_SCORE) || has(logbook::FEEDBACK_LABEL) {
            return CATEGORY_FEEDBACK;
        }
        if r.level == Level::Error || r.status == Some(Status::Error) {
            return CATEGORY_ERROR;
        }
        if has(genai::USAGE_INPUT_TOKENS) || has(genai::USAGE_OUTPUT_TOKENS) {
            return CATEGORY_USAGE;
        }
        return CATEGORY_LOG;
    }
    let traceloop = r
        .fields
        .get(openllmetry::TRACELOOP_SPAN_KIND)
        .and_then(|v| v.as_str());
    if r.name.starts_with("step")
        || has("step")
        || has(logbook::STEP_NAME)
        || matches!(traceloop, Some("task" | "workflow"))
        || r.fields
            .get(openinference::SPAN_KIND)
            .and_then(|v| v.as_str())
            .is_some_and(|k| k.eq_ignore_ascii_case("CHAIN"))
    {
        return CATEGORY_STEP;
    }
    CATEGORY_SPAN
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_proto::{InstanceId, RecordId, Timestamp, Value};

    fn rec(kind: Kind, level: Level, name: &'static str) -> Record {
        Record::new(
            RecordId::new(InstanceId::from_random(1), 1),
            Timestamp(1),
            kind,
            level,
            name,
        )
    }

    #[test]
    fn derives_from_gen_ai_fields_then_kind() {
        let mut r = rec(Kind::SpanEnd, Level::Info, "llm.call");
        r.fields
            .set(genai::OPERATION_NAME, Value::Str("chat".into()));
        assert_eq!(derive_category(&r), CATEGORY_LLM_CALL);
        let mut r = rec(Kind::SpanStart, Level::Info, "tool");
        r.fields.set(genai::TOOL_NAME, Value::Str("search".into()));
        assert_eq!(derive_category(&r), CATEGORY_TOOL_CALL);
        assert_eq!(
            derive_category(&rec(Kind::Event, Level::Error, "e")),
            CATEGORY_ERROR
        );
        assert_eq!(
            derive_category(&rec(Kind::Event, Level::Info, "e")),
            CATEGORY_LOG
        );
        assert_eq!(
            derive_category(&rec(Kind::SpanStart, Level::Info, "step")),
            CATEGORY_STEP
        );
        assert_eq!(
            derive_category(&rec(Kind::SpanStart, Level::Info, "db.query")),
            CATEGORY_SPAN
        );
    }

    #[test]
    fn derives_agent_conventions() {
        let event = |name: &'static str, key: &'static str| {
            let mut r = rec(Kind::Event, Level::Info, name);
            if !key.is_empty() {
                r.fields.set(key, Value::Str("x".into()));
            }
            derive_category(&r)
        };
        assert_eq!(event("decision", ""), CATEGORY_DECISION);
        assert_eq!(event("e", logbook::DECISION_SUMMARY), CATEGORY_DECISION);
        assert_eq!(event("artifact", ""), CATEGORY_ARTIFACT);
        assert_eq!(event("state", logbook::STATE_HASH), CATEGORY_STATE);
        assert_eq!(event("e", genai::USAGE_INPUT_TOKENS), CATEGORY_USAGE);
        // A model named on an event is not a call.
        assert_eq!(event("e", genai::REQUEST_MODEL), CATEGORY_LOG);
        let mut agent = rec(Kind::SpanStart, Level::Info, "invoke_agent");
        agent
            .fields
            .set(genai::OPERATION_NAME, Value::Str("invoke_agent".into()));
        assert_eq!(derive_category(&agent), CATEGORY_AGENT);
        let mut chain = rec(Kind::SpanEnd, Level::Info, "plan");
        chain
            .fields
            .set(openinference::SPAN_KIND, Value::Str("CHAIN".into()));
        assert_eq!(derive_category(&chain), CATEGORY_STEP);
    }
}
