//! One record as the UI shows it: its facts, its fields, and for LLM and tool calls
//! the prompt and response as chat messages and the arguments and result as JSON.
//! Every text is cut ([`PART_CHARS`], [`FIELD_CHARS`]) with a link that fetches the
//! whole of it on demand, and base64 payloads (images, audio, files) are never shown
//! inline: a placeholder says what was there and how large.

use std::borrow::Cow;

use logbook_proto::{Record, Value};

use super::view::{self, link, query};

/// Characters of a chat message part shown before "show all".
pub(super) const PART_CHARS: usize = 4000;
/// Characters of a plain field shown before "show all".
pub(super) const FIELD_CHARS: usize = 1000;
/// Characters of a field's raw JSON shown before "show all".
pub(super) const RAW_CHARS: usize = 8000;
/// A system prompt longer than this starts collapsed.
const LONG_SYSTEM: usize = 400;
/// A run of base64 characters at least this long is a payload, not text.
const BASE64_RUN: usize = 120;

/// Fields shown as chat messages, and their titles.
const CHAT_FIELDS: &[(&str, &str)] = &[
    ("gen_ai.system_instructions", "System instructions"),
    ("gen_ai.input.messages", "Prompt"),
    ("gen_ai.output.messages", "Response"),
];
/// Fields shown as JSON blocks, and their titles.
const JSON_FIELDS: &[(&str, &str)] = &[
    ("gen_ai.tool.call.arguments", "Arguments"),
    ("gen_ai.tool.call.result", "Result"),
];
/// Fields summed up in the header of an LLM call, and their labels.
const USAGE_FIELDS: &[(&str, &str)] = &[
    ("gen_ai.request.model", "model"),
    ("gen_ai.response.model", "response model"),
    ("gen_ai.usage.input_tokens", "input tokens"),
    ("gen_ai.usage.output_tokens", "output tokens"),
    ("gen_ai.usage.cache_read_input_tokens", "cache read tokens"),
    ("gen_ai.tool.name", "tool"),
];

/// Text cut to `max` characters, base64 payloads replaced; and whether it was cut.
pub(super) fn cut(text: &str, max: usize) -> (String, bool) {
    let text = hide_base64(text);
    match text.char_indices().nth(max) {
        Some((i, _)) => (format!("{}…", &text[..i]), true),
        None => (text.into_owned(), false),
    }
}

/// `text` with every base64 payload (a `data:` URL's, or a long run of base64
/// characters) replaced by `[base64 payload, N bytes]`.
pub(super) fn hide_base64(text: &str) -> Cow<'_, str> {
    let is_b64 = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_');
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        if is_b64(bytes[i]) {
            let start = i;
            while i < bytes.len() && is_b64(bytes[i]) {
                i += 1;
            }
            let run = &text[start..i];
            // Long, and not one word of a text (base64 mixes cases and digits).
            let mixed = run.bytes().any(|b| b.is_ascii_digit())
                && run.bytes().any(|b| b.is_ascii_uppercase())
                && run.bytes().any(|b| b.is_ascii_lowercase());
            if i - start >= BASE64_RUN && mixed {
                let o = out.get_or_insert_with(|| String::with_capacity(text.len().min(4096)));
                o.push_str(&text[last..start]);
                o.push_str(&format!("[base64 payload, {} bytes]", (i - start) * 3 / 4));
                last = i;
            }
        } else {
            i += 1;
        }
    }
    match out {
        Some(mut o) => {
            o.push_str(&text[last..]);
            Cow::Owned(o)
        }
        None => Cow::Borrowed(text),
    }
}

/// A piece of text, perhaps cut, with the link to the whole.
pub(super) struct Text {
    pub(super) text: String,
    pub(super) cut: bool,
    pub(super) full_href: String,
    /// The characters of the whole.
    pub(super) chars: usize,
}

impl Text {
    fn new(whole: &str, max: usize, full_href: String) -> Self {
        let (text, cut) = cut(whole, max);
        Self {
            text,
            cut,
            full_href,
            chars: whole.chars().count(),
        }
    }
}

/// A part of a chat message.
pub(super) struct Part {
    /// `text`, `tool call get_weather`, `tool response`, …
    pub(super) label: String,
    pub(super) body: Text,
}

/// A chat message.
pub(super) struct Message {
    pub(super) role: String,
    pub(super) parts: Vec<Part>,
    /// Starts collapsed (a long system prompt).
    pub(super) collapsed: bool,
}

/// A field shown as chat messages (with its raw JSON a toggle away).
pub(super) struct Chat {
    pub(super) title: &'static str,
    pub(super) key: String,
    pub(super) messages: Vec<Message>,
    pub(super) raw: Text,
}

/// A field shown as a JSON block.
pub(super) struct Block {
    pub(super) title: &'static str,
    pub(super) key: String,
    pub(super) body: Text,
}

/// Any other field.
pub(super) struct FieldRow {
    pub(super) key: String,
    pub(super) body: Text,
}

/// One record, ready to show.
pub(super) struct RecordDetail {
    pub(super) id: String,
    pub(super) href: String,
    pub(super) kind: String,
    pub(super) level: String,
    pub(super) name: String,
    pub(super) title: String,
    pub(super) message: Text,
    pub(super) facts: Vec<(String, String, String)>,
    pub(super) usage: Vec<(String, String)>,
    pub(super) chats: Vec<Chat>,
    pub(super) blocks: Vec<Block>,
    pub(super) fields: Vec<FieldRow>,
    pub(super) json: Text,
    /// The run it belongs to (its key), for the feedback form.
    pub(super) feedback_action: String,
    /// The span the feedback form is about (an LLM call's).
    pub(super) feedback_span: String,
    /// The CSRF token of the feedback form (set by the handler).
    pub(super) csrf: String,
}

fn value_href(id: &str, key: &str, msg: Option<usize>, part: Option<usize>) -> String {
    let (m, p) = (
        msg.map(|m| m.to_string()).unwrap_or_default(),
        part.map(|p| p.to_string()).unwrap_or_default(),
    );
    link(
        &format!("/records/{id}/value"),
        &query([("key", key), ("msg", m.as_str()), ("part", p.as_str())]),
    )
}

/// A value as text: strings as they are, JSON pretty.
pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Json(j) => {
            serde_json::to_string_pretty(&j.to_value()).unwrap_or_else(|_| j.as_str().to_owned())
        }
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}

/// A value as a JSON tree: JSON as it is, strings holding JSON parsed.
pub(super) fn value_json(v: &Value) -> Option<serde_json::Value> {
    match v {
        Value::Json(j) => Some(j.to_value()),
        Value::Str(s) => serde_json::from_str::<serde_json::Value>(s)
            .ok()
            .filter(|j| j.is_array() || j.is_object()),
        _ => None,
    }
}

/// A message as stored: its role and its parts (label, text).
pub(super) type RawMessage = (String, Vec<(String, String)>);

/// The messages of a chat field: OpenTelemetry's GenAI form (`[{role, parts: [{type,
/// content}]}]`), the older `{role, content}`, or system instructions (a list of
/// parts).
pub(super) fn messages(key: &str, j: &serde_json::Value) -> Option<Vec<RawMessage>> {
    let list = j.as_array()?;
    if key == "gen_ai.system_instructions" {
        let parts = list.iter().map(part).collect();
        return Some(vec![("system".into(), parts)]);
    }
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let role = m
            .get("role")
            .and_then(|r| r.as_str())
            .unwrap_or("?")
            .to_owned();
        let parts = match (m.get("parts"), m.get("content")) {
            (Some(serde_json::Value::Array(parts)), _) => parts.iter().map(part).collect(),
            (_, Some(serde_json::Value::String(c))) => vec![("text".into(), c.clone())],
            (_, Some(other)) => vec![("content".into(), pretty(other))],
            (None, None) => vec![("message".into(), pretty(m))],
            (Some(other), None) => vec![("parts".into(), pretty(other))],
        };
        out.push((role, parts));
    }
    Some(out)
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A message part: its label and text.
fn part(p: &serde_json::Value) -> (String, String) {
    let kind = p.get("type").and_then(|t| t.as_str()).unwrap_or("");
    let text = |k: &str| {
        p.get(k).map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => pretty(other),
        })
    };
    match kind {
        "text" | "" if p.get("content").is_some() => {
            ("text".into(), text("content").unwrap_or_default())
        }
        "tool_call" => (
            format!(
                "tool call {}",
                p.get("name").and_then(|n| n.as_str()).unwrap_or("?")
            ),
            text("arguments").unwrap_or_default(),
        ),
        "tool_call_response" => (
            "tool response".into(),
            text("response")
                .or_else(|| text("result"))
                .unwrap_or_default(),
        ),
        "reasoning" => ("reasoning".into(), text("content").unwrap_or_default()),
        _ => (
            if kind.is_empty() {
                "part".into()
            } else {
                kind.to_owned()
            },
            text("content").unwrap_or_else(|| pretty(p)),
        ),
    }
}

impl RecordDetail {
    /// The detail of `r`.
    pub(super) fn of(r: &Record) -> Self {
        let id = r.id.to_string();
        let mut facts = Vec::new();
        let mut fact = |k: &str, v: String, href: String| {
            if !v.is_empty() {
                facts.push((k.to_owned(), v, href));
            }
        };
        fact("time", r.ts.to_rfc3339(), String::new());
        if let Some(d) = r.duration_ns {
            fact("duration", view::duration(Some(d)), String::new());
        }
        if let Some(s) = r.status {
            fact("status", s.as_str().to_owned(), String::new());
        }
        fact("target", r.target.to_string(), String::new());
        if let Some(c) = &r.category {
            fact("category", c.to_string(), String::new());
        }
        fact("service", r.resource.service.clone(), String::new());
        fact("host", r.resource.host.clone(), String::new());
        if let (Some(file), Some(line)) = (&r.file, r.line) {
            fact("source", format!("{file}:{line}"), String::new());
        }
        let trace = r.trace_id.to_hex();
        fact(
            "trace",
            trace.clone(),
            link("/records", &query([("trace", trace.as_str())])),
        );
        if let Some(s) = r.span_id {
            fact("span", s.to_string(), String::new());
        }
        for (k, v) in r.scope.iter() {
            let href = match k.as_str() {
                "run_id" => view::run_href(v),
                "tenant" | "user_id" | "app" | "project" => link(
                    "/records",
                    &query([(
                        if k.as_str() == "user_id" {
                            "user"
                        } else {
                            k.as_str()
                        },
                        v,
                    )]),
                ),
                _ => String::new(),
            };
            fact(k.as_str(), v.to_owned(), href);
        }
        let mut usage = Vec::new();
        for (key, label) in USAGE_FIELDS {
            if let Some(v) = r.fields.get(key) {
                usage.push(((*label).to_owned(), value_text(v)));
            }
        }
        let mut chats = Vec::new();
        let mut blocks = Vec::new();
        let mut fields = Vec::new();
        for (key, v) in r.fields.iter() {
            if let Some((_, title)) = CHAT_FIELDS.iter().find(|(k, _)| *k == key) {
                if let Some(list) = value_json(v).and_then(|j| messages(key, &j)) {
                    let messages = list
                        .into_iter()
                        .enumerate()
                        .map(|(mi, (role, parts))| {
                            let long =
                                parts.iter().map(|(_, t)| t.len()).sum::<usize>() > LONG_SYSTEM;
                            Message {
                                collapsed: role == "system" && long,
                                role,
                                parts: parts
                                    .into_iter()
                                    .enumerate()
                                    .map(|(pi, (label, text))| Part {
                                        label,
                                        body: Text::new(
                                            &text,
                                            PART_CHARS,
                                            value_href(&id, key, Some(mi), Some(pi)),
                                        ),
                                    })
                                    .collect(),
                            }
                        })
                        .collect();
                    chats.push(Chat {
                        title,
                        key: key.to_owned(),
                        messages,
                        raw: Text::new(&value_text(v), RAW_CHARS, value_href(&id, key, None, None)),
                    });
                    continue;
                }
            }
            if let Some((_, title)) = JSON_FIELDS.iter().find(|(k, _)| *k == key) {
                blocks.push(Block {
                    title,
                    key: key.to_owned(),
                    body: Text::new(&value_text(v), RAW_CHARS, value_href(&id, key, None, None)),
                });
                continue;
            }
            fields.push(FieldRow {
                key: key.to_owned(),
                body: Text::new(
                    &value_text(v),
                    FIELD_CHARS,
                    value_href(&id, key, None, None),
                ),
            });
        }
        let json = serde_json::to_string_pretty(r).unwrap_or_default();
        let run_key = r
            .scope
            .get(logbook_proto::ScopeKey::RunId)
            .map(str::to_owned)
            .or_else(|| r.span_id.map(|_| r.trace_id.to_hex()));
        let is_call = r.category.as_deref() == Some(crate::pipeline::CATEGORY_LLM_CALL)
            && r.kind != logbook_proto::Kind::Event;
        Self {
            href: format!("/records/{id}"),
            json: Text::new(
                &json,
                RAW_CHARS,
                link(&format!("/records/{id}/value"), "key=*"),
            ),
            kind: r.kind.as_str().to_owned(),
            level: r.level.as_str().to_owned(),
            name: r.name.to_string(),
            title: match r.kind {
                logbook_proto::Kind::Event => "Event",
                _ => "Span",
            }
            .to_owned(),
            message: Text::new(
                r.message.as_deref().unwrap_or(""),
                PART_CHARS,
                value_href(&id, "*message", None, None),
            ),
            feedback_action: match (&run_key, is_call) {
                (Some(k), true) => format!("{}/feedback", view::run_href(k)),
                _ => String::new(),
            },
            feedback_span: r.span_id.map(|s| s.to_string()).unwrap_or_default(),
            csrf: String::new(),
            id,
            facts,
            usage,
            chats,
            blocks,
            fields,
        }
    }
}

/// The whole text of one value of `r`: a field (`key`), one part of one of its
/// messages (`msg`, `part`), the message (`*message`) or the record's JSON (`*`).
pub(super) fn whole_value(
    r: &Record,
    key: &str,
    msg: Option<usize>,
    part_i: Option<usize>,
) -> Option<String> {
    let text = match key {
        "*" => serde_json::to_string_pretty(r).ok()?,
        "*message" => r.message.clone()?,
        key => {
            let v = r.fields.get(key)?;
            match (msg, part_i) {
                (Some(m), Some(p)) => {
                    let list = messages(key, &value_json(v)?)?;
                    list.into_iter().nth(m)?.1.into_iter().nth(p)?.1
                }
                _ => value_text(v),
            }
        }
    };
    Some(hide_base64(&text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_payloads_are_never_shown() {
        let payload = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg".repeat(3);
        let text = format!("look: data:image/png;base64,{payload} done");
        let shown = hide_base64(&text);
        assert!(!shown.contains(&payload[..40]), "{shown}");
        assert!(shown.starts_with("look: data:image/png;base64,[base64 payload, "));
        assert!(shown.ends_with(" done"));
        // Words, however long, stay.
        let words = "a".repeat(300);
        assert_eq!(hide_base64(&words), words);
    }

    #[test]
    fn cuts_count_characters() {
        let (t, cut_) = cut("héllo wörld", 5);
        assert_eq!(t, "héllo…");
        assert!(cut_);
        assert_eq!(cut("short", 5), ("short".into(), false));
    }

    #[test]
    fn messages_of_each_form() {
        let semconv = serde_json::json!([{"role": "user", "parts": [{"type": "text", "content": "hi"}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "name": "search", "arguments": {"q": "x"}}]}]);
        let m = messages("gen_ai.input.messages", &semconv).unwrap();
        assert_eq!(m[0], ("user".into(), vec![("text".into(), "hi".into())]));
        assert_eq!(m[1].1[0].0, "tool call search");
        let legacy = serde_json::json!([{"role": "system", "content": "be brief"}]);
        assert_eq!(
            messages("gen_ai.input.messages", &legacy).unwrap()[0].1[0].1,
            "be brief"
        );
        let system = serde_json::json!([{"type": "text", "content": "rules"}]);
        assert_eq!(
            messages("gen_ai.system_instructions", &system).unwrap()[0].0,
            "system"
        );
    }
}
