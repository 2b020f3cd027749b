//! A record's category, derived from its GenAI fields, kind and level when the emitter
//! did not set one.

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
/// A failure: an ERROR event.
pub const CATEGORY_ERROR: &str = "error";
/// Any other event.
pub const CATEGORY_LOG: &str = "log";
/// Any other span.
pub const CATEGORY_SPAN: &str = "span";

const GEN_AI_OPERATION: &str = "gen_ai.operation.name";
const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";

/// The category of `r` by its content.
pub fn derive_category(r: &Record) -> &'static str {
    if let Some(op) = r.fields.get(GEN_AI_OPERATION).and_then(|v| v.as_str()) {
        match op {
            "chat" | "text_completion" | "generate_content" | "embeddings" => {
                return CATEGORY_LLM_CALL
            }
            "execute_tool" => return CATEGORY_TOOL_CALL,
            "invoke_agent" | "create_agent" => return CATEGORY_AGENT,
            _ => {}
        }
    }
    if r.fields.get(GEN_AI_TOOL_NAME).is_some() {
        return CATEGORY_TOOL_CALL;
    }
    if r.fields.get(GEN_AI_REQUEST_MODEL).is_some() {
        return CATEGORY_LLM_CALL;
    }
    match r.kind {
        Kind::Event if r.level == Level::Error || r.status == Some(Status::Error) => CATEGORY_ERROR,
        Kind::Event => CATEGORY_LOG,
        _ if r.name.starts_with("step") || r.fields.get("step").is_some() => CATEGORY_STEP,
        _ => CATEGORY_SPAN,
    }
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
        r.fields.set(GEN_AI_OPERATION, Value::Str("chat".into()));
        assert_eq!(derive_category(&r), CATEGORY_LLM_CALL);
        let mut r = rec(Kind::SpanStart, Level::Info, "tool");
        r.fields.set(GEN_AI_TOOL_NAME, Value::Str("search".into()));
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
}
