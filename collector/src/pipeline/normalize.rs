//! OpenInference and legacy OpenLLMetry field names, normalised to the OpenTelemetry
//! GenAI names logbook stores and derives its views from. The original fields stay:
//! a GenAI field is added only where the record does not have it already.

use logbook_proto::genai::{self, openinference as oi, openllmetry as ol};
use logbook_proto::{Json, Record, ScopeKey, Value};

/// OpenInference renames: (source, GenAI name), applied to OpenInference spans only
/// (names such as `tool.name` or `session.id` mean other things elsewhere).
const OPENINFERENCE: &[(&str, &str)] = &[
    (oi::LLM_MODEL_NAME, genai::REQUEST_MODEL),
    (oi::LLM_PROVIDER, genai::PROVIDER_NAME),
    (oi::LLM_SYSTEM, genai::PROVIDER_NAME),
    (oi::LLM_TOKEN_COUNT_PROMPT, genai::USAGE_INPUT_TOKENS),
    (oi::LLM_TOKEN_COUNT_COMPLETION, genai::USAGE_OUTPUT_TOKENS),
    (
        oi::LLM_TOKEN_COUNT_CACHE_READ,
        genai::USAGE_CACHE_READ_INPUT_TOKENS,
    ),
    (oi::LLM_INPUT_MESSAGES, genai::INPUT_MESSAGES),
    (oi::LLM_OUTPUT_MESSAGES, genai::OUTPUT_MESSAGES),
    (oi::TOOL_NAME, genai::TOOL_NAME),
    (oi::TOOL_CALL_ID, genai::TOOL_CALL_ID),
    (oi::AGENT_NAME, genai::AGENT_NAME),
    (oi::SESSION_ID, genai::CONVERSATION_ID),
];

/// Legacy GenAI and OpenLLMetry renames: their names are GenAI's own namespace or
/// Traceloop's, so they apply wherever they appear.
const OPENLLMETRY: &[(&str, &str)] = &[
    (genai::SYSTEM, genai::PROVIDER_NAME),
    (ol::USAGE_PROMPT_TOKENS, genai::USAGE_INPUT_TOKENS),
    (ol::USAGE_COMPLETION_TOKENS, genai::USAGE_OUTPUT_TOKENS),
    (
        ol::USAGE_CACHE_READ_INPUT_TOKENS,
        genai::USAGE_CACHE_READ_INPUT_TOKENS,
    ),
];

/// The GenAI operation of an OpenInference span kind, an OpenLLMetry request type or
/// a Traceloop span kind.
fn operation(r: &Record) -> Option<&'static str> {
    let text = |k: &str| r.fields.get(k).and_then(Value::as_str);
    if let Some(kind) = text(oi::SPAN_KIND) {
        return match kind.to_ascii_uppercase().as_str() {
            "LLM" => Some(genai::operation::CHAT),
            "EMBEDDING" => Some(genai::operation::EMBEDDINGS),
            "TOOL" => Some(genai::operation::EXECUTE_TOOL),
            "AGENT" => Some(genai::operation::INVOKE_AGENT),
            _ => None,
        };
    }
    if let Some(kind) = text(ol::LLM_REQUEST_TYPE) {
        return match kind {
            "chat" => Some(genai::operation::CHAT),
            "completion" => Some(genai::operation::TEXT_COMPLETION),
            "embedding" => Some(genai::operation::EMBEDDINGS),
            _ => None,
        };
    }
    match text(ol::TRACELOOP_SPAN_KIND)? {
        "tool" => Some(genai::operation::EXECUTE_TOOL),
        "agent" => Some(genai::operation::INVOKE_AGENT),
        _ => None,
    }
}

/// Adds the GenAI names a record lacks from the OpenInference and OpenLLMetry fields it
/// has, and returns the names added. OpenInference's generic names (`tool.name`,
/// `input.value`, `session.id`, `user.id`, …) count only on a span that is
/// OpenInference's (`openinference.span.kind` or an `llm.*` field). Cheap when there
/// are none: one pass over the keys.
pub fn normalize(r: &mut Record) -> Vec<&'static str> {
    let (mut openinference, mut openllmetry) = (false, false);
    for (k, _) in r.fields.iter() {
        openinference |= k.starts_with(oi::LLM_PREFIX) || k == oi::SPAN_KIND;
        openllmetry |= k.starts_with(ol::TRACELOOP_PREFIX)
            || k.starts_with(ol::PROMPT_FLAT)
            || k.starts_with(ol::COMPLETION_FLAT)
            || k == ol::LLM_REQUEST_TYPE
            || OPENLLMETRY.iter().any(|(from, _)| *from == k);
    }
    if !openinference && !openllmetry {
        return Vec::new();
    }
    let mut added: Vec<(&'static str, Value)> = Vec::new();
    let has = |r: &Record, added: &[(&str, Value)], k: &str| {
        r.fields.get(k).is_some() || added.iter().any(|(a, _)| *a == k)
    };
    let renames = [
        if openinference { OPENINFERENCE } else { &[] },
        if openllmetry { OPENLLMETRY } else { &[] },
    ];
    for (from, to) in renames.into_iter().flatten() {
        if has(r, &added, to) {
            continue;
        }
        if let Some(v) = r.fields.get(from) {
            added.push((to, v.clone()));
        }
    }
    // OpenInference flattens messages in OTLP attributes:
    // llm.input_messages.0.message.role, llm.input_messages.0.message.content, …;
    // OpenLLMetry (and the GenAI conventions before 1.28) as gen_ai.prompt.0.role,
    // gen_ai.prompt.0.content, gen_ai.completion.0.content, …
    let flattened = [
        (
            openinference,
            oi::LLM_INPUT_MESSAGES_FLAT,
            genai::INPUT_MESSAGES,
        ),
        (
            openinference,
            oi::LLM_OUTPUT_MESSAGES_FLAT,
            genai::OUTPUT_MESSAGES,
        ),
        (openllmetry, ol::PROMPT_FLAT, genai::INPUT_MESSAGES),
        (openllmetry, ol::COMPLETION_FLAT, genai::OUTPUT_MESSAGES),
    ];
    {
        for (prefix, to) in flattened
            .into_iter()
            .filter(|(applies, _, _)| *applies)
            .map(|(_, prefix, to)| (prefix, to))
        {
            if !has(r, &added, to) {
                if let Some(v) = flattened_messages(r, prefix) {
                    added.push((to, v));
                }
            }
        }
    }
    let op = operation(r);
    if let Some(op) = op {
        if !has(r, &added, genai::OPERATION_NAME) {
            added.push((genai::OPERATION_NAME, Value::Str(op.into())));
        }
    }
    // input.value / output.value (and Traceloop's entity input and output) are the
    // arguments and result of a tool, and the prompt and response of a model call.
    let tool = op == Some(genai::operation::EXECUTE_TOOL) || has(r, &added, genai::TOOL_NAME);
    let (input_to, output_to) = if tool {
        (genai::TOOL_CALL_ARGUMENTS, genai::TOOL_CALL_RESULT)
    } else if op.is_some() || has(r, &added, genai::REQUEST_MODEL) {
        (genai::INPUT_MESSAGES, genai::OUTPUT_MESSAGES)
    } else {
        ("", "")
    };
    if !input_to.is_empty() {
        let sources = [
            (openinference, oi::INPUT_VALUE, input_to),
            (openllmetry, ol::TRACELOOP_ENTITY_INPUT, input_to),
            (openinference, oi::OUTPUT_VALUE, output_to),
            (openllmetry, ol::TRACELOOP_ENTITY_OUTPUT, output_to),
        ];
        for (applies, from, to) in sources {
            if applies && !has(r, &added, to) {
                if let Some(v) = r.fields.get(from) {
                    added.push((to, v.clone()));
                }
            }
        }
    }
    if tool && openllmetry && !has(r, &added, genai::TOOL_NAME) {
        if let Some(v) = r.fields.get(ol::TRACELOOP_ENTITY_NAME) {
            added.push((genai::TOOL_NAME, v.clone()));
        }
    }
    let names = added.iter().map(|(k, _)| *k).collect();
    for (k, v) in added {
        r.fields.set(k, v);
    }
    // OpenInference's user and session are scope.
    if openinference {
        for (field, key) in [
            (oi::USER_ID, ScopeKey::UserId),
            (oi::SESSION_ID, ScopeKey::SessionId),
        ] {
            if r.scope.get(key).is_none() {
                if let Some(v) = r.fields.get(field).and_then(Value::as_str) {
                    let v = v.to_owned();
                    std::sync::Arc::make_mut(&mut r.scope).set(key, Some(v));
                }
            }
        }
    }
    names
}

/// `prefix.N.message.KEY` fields gathered into a JSON array of message objects.
fn flattened_messages(r: &Record, prefix: &str) -> Option<Value> {
    let mut messages: Vec<serde_json::Map<String, serde_json::Value>> = Vec::new();
    for (k, v) in r.fields.iter() {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        let Some((index, key)) = rest.split_once('.') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        if index >= 1024 {
            continue;
        }
        let key = key.strip_prefix("message.").unwrap_or(key);
        if messages.len() <= index {
            messages.resize_with(index + 1, Default::default);
        }
        let value = match v {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::I64(n) => (*n).into(),
            Value::U64(n) => (*n).into(),
            Value::F64(n) => (*n).into(),
            Value::Bool(b) => (*b).into(),
            Value::Json(j) => j.to_value(),
        };
        messages[index].insert(key.to_owned(), value);
    }
    if messages.is_empty() {
        return None;
    }
    Json::from_serialize(&messages).ok().map(Value::Json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use logbook_proto::{InstanceId, Kind, Level, RecordId, Timestamp};

    fn span(fields: &[(&'static str, Value)]) -> Record {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(1), 1),
            Timestamp(1),
            Kind::SpanEnd,
            Level::Info,
            "ChatCompletion",
        );
        for (k, v) in fields {
            r.fields.set(*k, v.clone());
        }
        r
    }

    fn s(v: &str) -> Value {
        Value::Str(v.into())
    }

    #[test]
    fn openinference_llm_span_gains_genai_names_and_keeps_its_own() {
        let mut r = span(&[
            (oi::SPAN_KIND, s("LLM")),
            (oi::LLM_MODEL_NAME, s("gpt-4o")),
            (oi::LLM_PROVIDER, s("openai")),
            (oi::LLM_TOKEN_COUNT_PROMPT, Value::I64(120)),
            (oi::LLM_TOKEN_COUNT_COMPLETION, Value::I64(30)),
            ("llm.input_messages.0.message.role", s("user")),
            ("llm.input_messages.0.message.content", s("hi")),
            ("llm.output_messages.0.message.role", s("assistant")),
            ("llm.output_messages.0.message.content", s("hello")),
        ]);
        normalize(&mut r);
        let get = |k| r.fields.get(k).cloned();
        assert_eq!(get(genai::OPERATION_NAME), Some(s("chat")));
        assert_eq!(get(genai::REQUEST_MODEL), Some(s("gpt-4o")));
        assert_eq!(get(genai::PROVIDER_NAME), Some(s("openai")));
        assert_eq!(get(genai::USAGE_INPUT_TOKENS), Some(Value::I64(120)));
        assert_eq!(get(genai::USAGE_OUTPUT_TOKENS), Some(Value::I64(30)));
        let Some(Value::Json(input)) = get(genai::INPUT_MESSAGES) else {
            panic!("no input messages");
        };
        assert_eq!(
            input.to_value(),
            serde_json::json!([{"role": "user", "content": "hi"}])
        );
        assert!(get(genai::OUTPUT_MESSAGES).is_some());
        // The originals stay.
        assert_eq!(get(oi::LLM_MODEL_NAME), Some(s("gpt-4o")));
    }

    #[test]
    fn tool_input_and_output_become_arguments_and_result() {
        let mut r = span(&[
            (oi::SPAN_KIND, s("TOOL")),
            (oi::TOOL_NAME, s("search")),
            (oi::INPUT_VALUE, s(r#"{"q":"x"}"#)),
            (oi::OUTPUT_VALUE, s("3 hits")),
        ]);
        normalize(&mut r);
        assert_eq!(
            r.fields.get(genai::OPERATION_NAME),
            Some(&s("execute_tool"))
        );
        assert_eq!(r.fields.get(genai::TOOL_NAME), Some(&s("search")));
        assert_eq!(
            r.fields.get(genai::TOOL_CALL_ARGUMENTS),
            Some(&s(r#"{"q":"x"}"#))
        );
        assert_eq!(r.fields.get(genai::TOOL_CALL_RESULT), Some(&s("3 hits")));
    }

    #[test]
    fn legacy_openllmetry_usage_and_system() {
        let mut r = span(&[
            (genai::SYSTEM, s("Anthropic")),
            (ol::LLM_REQUEST_TYPE, s("chat")),
            (genai::REQUEST_MODEL, s("claude-sonnet-4-5")),
            (ol::USAGE_PROMPT_TOKENS, Value::U64(10)),
            (ol::USAGE_COMPLETION_TOKENS, Value::U64(5)),
            (ol::USAGE_CACHE_READ_INPUT_TOKENS, Value::U64(4)),
        ]);
        normalize(&mut r);
        assert_eq!(r.fields.get(genai::PROVIDER_NAME), Some(&s("Anthropic")));
        assert_eq!(r.fields.get(genai::OPERATION_NAME), Some(&s("chat")));
        assert_eq!(
            r.fields.get(genai::USAGE_INPUT_TOKENS),
            Some(&Value::U64(10))
        );
        assert_eq!(
            r.fields.get(genai::USAGE_CACHE_READ_INPUT_TOKENS),
            Some(&Value::U64(4))
        );
    }

    #[test]
    fn legacy_flattened_prompts_and_completions_become_messages() {
        let mut r = span(&[
            ("gen_ai.request.model", s("gpt-4")),
            ("gen_ai.prompt.0.role", s("system")),
            ("gen_ai.prompt.0.content", s("be brief")),
            ("gen_ai.prompt.1.role", s("user")),
            ("gen_ai.prompt.1.content", s("hi")),
            ("gen_ai.completion.0.role", s("assistant")),
            ("gen_ai.completion.0.content", s("hello")),
            ("gen_ai.completion.0.finish_reason", s("stop")),
        ]);
        let added = normalize(&mut r);
        assert!(added.contains(&genai::INPUT_MESSAGES), "{added:?}");
        let json = |k: &str| match r.fields.get(k) {
            Some(Value::Json(j)) => j.to_value(),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(
            json(genai::INPUT_MESSAGES),
            serde_json::json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
        );
        assert_eq!(
            json(genai::OUTPUT_MESSAGES),
            serde_json::json!([{"role": "assistant", "content": "hello", "finish_reason": "stop"}])
        );
    }

    #[test]
    fn genai_fields_present_are_never_overwritten() {
        let mut r = span(&[
            (genai::REQUEST_MODEL, s("gpt-4.1")),
            (oi::LLM_MODEL_NAME, s("gpt-4o")),
        ]);
        normalize(&mut r);
        assert_eq!(r.fields.get(genai::REQUEST_MODEL), Some(&s("gpt-4.1")));
        let mut plain = span(&[("items", Value::I64(3))]);
        let before = plain.clone();
        normalize(&mut plain);
        assert_eq!(plain, before);
    }

    #[test]
    fn generic_names_outside_openinference_spans_are_left_alone() {
        let mut r = span(&[
            ("tool.name", s("cargo")),
            ("input.value", s("build --release")),
            ("session.id", s("web-42")),
            ("agent.name", s("filebeat")),
            ("user.id", s("u-1")),
        ]);
        let before = r.clone();
        assert!(normalize(&mut r).is_empty());
        assert_eq!(r, before);
    }
}
