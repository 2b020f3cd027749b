//! What an LLM call and a tool call are: the span end record of a span in the
//! `llm_call` or `tool_call` category becomes one call row (model, prompt and response
//! after redaction, tokens, cost from the price table, provider-reported cost; tool
//! name, arguments, result), and adds to its run's totals. Pure: no storage here.

use std::collections::BTreeSet;

use logbook_proto::genai::{self, exception, openinference};
use logbook_proto::{Kind, Record, ScopeKey, SpanId, Status, Timestamp, TraceId, Value};

use super::run::{run_key, RunKey};
use crate::cost::{PriceTable, Usage};
use crate::pipeline::{CATEGORY_LLM_CALL, CATEGORY_TOOL_CALL};
use crate::store::{PricedCall, StoreError, StoreWriter};

/// `ok` or `error`, as call rows say it.
pub const STATUS_OK: &str = "ok";
/// See [`STATUS_OK`].
pub const STATUS_ERROR: &str = "error";

/// What LLM and tool call rows share.
#[derive(Clone, Debug, PartialEq)]
pub struct CallBase<'a> {
    /// Start time (the end minus the duration), Unix nanoseconds.
    pub started: i64,
    /// End time.
    pub ended: i64,
    /// Its run.
    pub run: Option<RunKey<'a>>,
    /// Its trace.
    pub trace_id: TraceId,
    /// Its span.
    pub span_id: Option<SpanId>,
    /// The span it ran in.
    pub parent_span_id: Option<SpanId>,
    /// Tenant.
    pub tenant: Option<&'a str>,
    /// User.
    pub user_id: Option<&'a str>,
    /// App.
    pub app: Option<&'a str>,
    /// The emitting service.
    pub service: &'a str,
    /// How long it took.
    pub duration_ns: Option<i64>,
    /// [`STATUS_OK`] or [`STATUS_ERROR`].
    pub status: &'static str,
    /// What failed.
    pub error: Option<String>,
}

/// An LLM call's row.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmRow<'a> {
    /// Run, span, timing, status.
    pub base: CallBase<'a>,
    /// `gen_ai.operation.name`.
    pub operation: Option<String>,
    /// `gen_ai.provider.name` (or the legacy `gen_ai.system`).
    pub provider: Option<String>,
    /// `gen_ai.request.model`.
    pub request_model: Option<String>,
    /// `gen_ai.response.model`.
    pub response_model: Option<String>,
    /// The response's model, else the requested one: what is priced.
    pub model: Option<String>,
    /// `gen_ai.agent.name`.
    pub agent: Option<String>,
    /// The prompt, as stored (JSON text or text).
    pub input_messages: Option<String>,
    /// The response.
    pub output_messages: Option<String>,
    /// `gen_ai.response.finish_reasons`.
    pub finish_reasons: Option<String>,
    /// Input tokens (cache reads included).
    pub input_tokens: Option<u64>,
    /// Output tokens.
    pub output_tokens: Option<u64>,
    /// Cache-read input tokens.
    pub cache_read_tokens: Option<u64>,
    /// Computed cost, USD.
    pub cost: Option<f64>,
    /// Provider-reported cost, USD.
    pub provider_cost: Option<f64>,
}

/// A tool call's row.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolRow<'a> {
    /// Run, span, timing, status.
    pub base: CallBase<'a>,
    /// `gen_ai.tool.name`, else the span's name.
    pub tool_name: Option<String>,
    /// `gen_ai.tool.call.id`.
    pub call_id: Option<String>,
    /// Arguments, as stored.
    pub arguments: Option<String>,
    /// Result, as stored.
    pub result: Option<String>,
}

/// The call a record ends.
#[derive(Clone, Debug, PartialEq)]
pub enum CallRow<'a> {
    /// A model call.
    Llm(LlmRow<'a>),
    /// A tool call.
    Tool(ToolRow<'a>),
}

impl<'a> CallRow<'a> {
    /// The row of the call `r` ends, if it is the end of an LLM or tool call span.
    pub fn of(r: &'a Record, prices: &PriceTable) -> Option<Self> {
        if r.kind != Kind::SpanEnd {
            return None;
        }
        let is_llm = match r.category.as_deref() {
            Some(CATEGORY_LLM_CALL) => true,
            Some(CATEGORY_TOOL_CALL) => false,
            _ => return None,
        };
        let f = |k: &str| r.fields.get(k);
        let s = |k: &str| f(k).map(text);
        let ended = r.ts.as_nanos();
        let duration_ns = r.duration_ns.map(|d| i64::try_from(d).unwrap_or(i64::MAX));
        let base = CallBase {
            started: ended.saturating_sub(duration_ns.unwrap_or(0)),
            ended,
            run: run_key(r),
            trace_id: r.trace_id,
            span_id: r.span_id,
            parent_span_id: r.parent_span_id,
            tenant: r.scope.get(ScopeKey::Tenant),
            user_id: r.scope.get(ScopeKey::UserId),
            app: r.scope.get(ScopeKey::App),
            service: &r.resource.service,
            duration_ns,
            status: if r.status == Some(Status::Error) {
                STATUS_ERROR
            } else {
                STATUS_OK
            },
            error: error_of(r),
        };
        if !is_llm {
            return Some(Self::Tool(ToolRow {
                base,
                tool_name: s(genai::TOOL_NAME).or_else(|| Some(r.name.to_string())),
                call_id: s(genai::TOOL_CALL_ID),
                arguments: s(genai::TOOL_CALL_ARGUMENTS),
                result: s(genai::TOOL_CALL_RESULT),
            }));
        }
        let provider = s(genai::PROVIDER_NAME).or_else(|| s(genai::SYSTEM));
        let request_model = s(genai::REQUEST_MODEL);
        let response_model = s(genai::RESPONSE_MODEL);
        let model = response_model.clone().or_else(|| request_model.clone());
        let input_tokens = f(genai::USAGE_INPUT_TOKENS).and_then(count);
        let output_tokens = f(genai::USAGE_OUTPUT_TOKENS).and_then(count);
        let cache_read_tokens = f(genai::USAGE_CACHE_READ_INPUT_TOKENS).and_then(count);
        let cost = compute_cost(
            prices,
            provider.as_deref(),
            model.as_deref(),
            Timestamp(base.started),
            [input_tokens, output_tokens, cache_read_tokens],
        );
        Some(Self::Llm(LlmRow {
            base,
            operation: s(genai::OPERATION_NAME),
            provider,
            request_model,
            response_model,
            model,
            agent: s(genai::AGENT_NAME).or_else(|| s(openinference::AGENT_NAME)),
            input_messages: s(genai::INPUT_MESSAGES),
            output_messages: s(genai::OUTPUT_MESSAGES),
            finish_reasons: s(genai::RESPONSE_FINISH_REASONS),
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cost,
            provider_cost: f(genai::USAGE_COST).and_then(float),
        }))
    }

    /// What the row shares with the other kind.
    pub fn base(&self) -> &CallBase<'a> {
        match self {
            Self::Llm(c) => &c.base,
            Self::Tool(c) => &c.base,
        }
    }
}

/// A field as text: strings as they are, nested JSON as JSON text, numbers printed.
fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Json(j) => j.as_str().to_owned(),
        Value::I64(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F64(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}

/// The most tokens one call can report; a larger count is not one (and could overflow
/// a run's totals).
pub const MAX_TOKENS: u64 = 1_000_000_000_000;

/// The largest cost in USD one call can report.
pub const MAX_COST_USD: f64 = 1_000_000.0;

/// A token count: a non-negative integer, or text or a float holding one (SDKs differ:
/// some send counts as strings), at most [`MAX_TOKENS`].
fn count(v: &Value) -> Option<u64> {
    let n = match v {
        Value::I64(n) => u64::try_from(*n).ok(),
        Value::U64(n) => Some(*n),
        Value::F64(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 9e15 => Some(*f as u64),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| *n <= MAX_TOKENS)
}

/// A cost in USD: a finite number (or text holding one) of at most [`MAX_COST_USD`].
fn float(v: &Value) -> Option<f64> {
    let f = match v {
        Value::F64(f) => Some(*f),
        Value::I64(n) => Some(*n as f64),
        Value::U64(n) => Some(*n as f64),
        Value::Str(s) => s.trim().parse().ok(),
        _ => None,
    };
    f.filter(|f| f.is_finite() && f.abs() <= MAX_COST_USD)
}

/// What failed: `error.type`, an exception's type or message, or an `error` field.
fn error_of(r: &Record) -> Option<String> {
    [
        genai::ERROR_TYPE,
        exception::TYPE,
        exception::MESSAGE,
        exception::ERROR,
    ]
    .iter()
    .find_map(|k| r.fields.get(k))
    .map(text)
    .filter(|e| !e.is_empty() && e != "false")
}

/// The cost of one call, when its model has a price and it reported tokens: input,
/// output and cache-read tokens.
pub fn compute_cost(
    prices: &PriceTable,
    provider: Option<&str>,
    model: Option<&str>,
    at: Timestamp,
    tokens: [Option<u64>; 3],
) -> Option<f64> {
    let [input, output, cache_read] = tokens;
    if input.is_none() && output.is_none() {
        return None;
    }
    prices.cost(
        provider,
        model?,
        at,
        &Usage {
            input_tokens: input.unwrap_or(0),
            output_tokens: output.unwrap_or(0),
            cache_read_tokens: cache_read.unwrap_or(0),
        },
    )
}

/// A cost in whole nano-dollars: what run totals add up, so that they come out the
/// same in any order and any grouping (floating-point sums do not).
pub fn nano_usd(usd: f64) -> i64 {
    let n = (usd * 1e9).round();
    if n.is_finite() {
        n as i64 // saturates at the i64 bounds
    } else {
        0
    }
}

/// Nano-dollars as dollars.
pub fn usd(nano: i64) -> f64 {
    nano as f64 / 1e9
}

/// What a run's calls add to it: counts, tokens, cost and the models used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallTotals {
    /// Finished LLM calls.
    pub llm_calls: u64,
    /// Finished tool calls.
    pub tool_calls: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache-read input tokens.
    pub cache_read_tokens: u64,
    /// Computed cost, nano-USD; `None` until a priced call.
    pub cost_nusd: Option<i64>,
    /// Provider-reported cost, nano-USD.
    pub provider_cost_nusd: Option<i64>,
    /// Models used.
    pub models: BTreeSet<String>,
}

fn add(total: &mut Option<i64>, v: Option<i64>) {
    if let Some(v) = v {
        *total = Some(total.unwrap_or(0).saturating_add(v));
    }
}

impl CallTotals {
    /// Adds one call.
    pub fn add_call(&mut self, call: &CallRow<'_>) {
        match call {
            CallRow::Tool(_) => self.tool_calls = self.tool_calls.saturating_add(1),
            CallRow::Llm(c) => {
                self.llm_calls = self.llm_calls.saturating_add(1);
                let tokens = |t: &mut u64, v: Option<u64>| *t = t.saturating_add(v.unwrap_or(0));
                tokens(&mut self.input_tokens, c.input_tokens);
                tokens(&mut self.output_tokens, c.output_tokens);
                tokens(&mut self.cache_read_tokens, c.cache_read_tokens);
                add(&mut self.cost_nusd, c.cost.map(nano_usd));
                add(&mut self.provider_cost_nusd, c.provider_cost.map(nano_usd));
                if let Some(m) = &c.model {
                    self.models.insert(m.clone());
                }
            }
        }
    }

    /// Adds another batch's totals (commutative and associative: integers that saturate,
    /// and a set).
    pub fn merge(&mut self, other: &Self) {
        self.llm_calls = self.llm_calls.saturating_add(other.llm_calls);
        self.tool_calls = self.tool_calls.saturating_add(other.tool_calls);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
        add(&mut self.cost_nusd, other.cost_nusd);
        add(&mut self.provider_cost_nusd, other.provider_cost_nusd);
        self.models.extend(other.models.iter().cloned());
    }

    /// Nothing to add.
    pub fn is_empty(&self) -> bool {
        self.llm_calls == 0 && self.tool_calls == 0
    }
}

/// Calls whose cost is recomputed per transaction.
const RECOMPUTE_BATCH: usize = 5_000;

/// Computes the cost of every stored LLM call again with `prices` (after a price
/// change), and the runs' totals; writes an audit record. Returns the calls whose cost
/// changed.
pub fn recompute_cost(store: &mut dyn StoreWriter, prices: &PriceTable) -> Result<u64, StoreError> {
    let mut changed = 0u64;
    let mut after = i64::MIN;
    loop {
        let calls: Vec<PricedCall> = store.priced_calls(after, RECOMPUTE_BATCH)?;
        let Some(last) = calls.last() else {
            break;
        };
        after = last.seq;
        let updates: Vec<(i64, Option<f64>)> = calls
            .iter()
            .filter_map(|c| {
                let new = compute_cost(
                    prices,
                    c.provider.as_deref(),
                    c.model.as_deref(),
                    c.started,
                    c.tokens,
                );
                (new != c.cost).then_some((c.seq, new))
            })
            .collect();
        changed += updates.len() as u64;
        if !updates.is_empty() {
            store.set_call_costs(&updates)?;
        }
    }
    let audit = crate::audit::admin_record(
        "cost_recompute",
        format!("Cost recomputed: {changed} LLM calls changed."),
        vec![("changed", Value::U64(changed))],
    );
    store.write(&[audit])?;
    Ok(changed)
}

/// The role a GenAI event's message has, and whether it is part of the response: the
/// event per message of the GenAI conventions (`gen_ai.system.message`,
/// `gen_ai.user.message`, `gen_ai.assistant.message`, `gen_ai.tool.message`;
/// `gen_ai.choice` for the response), sent as span events or log records.
pub fn genai_message_event(name: &str) -> Option<(&'static str, bool)> {
    Some(match name {
        "gen_ai.system.message" => ("system", false),
        "gen_ai.user.message" => ("user", false),
        "gen_ai.assistant.message" => ("assistant", false),
        "gen_ai.tool.message" => ("tool", false),
        "gen_ai.choice" => ("assistant", true),
        _ => return None,
    })
}

/// Names of the older events that carry a whole prompt or response as JSON.
pub const GENAI_CONTENT_EVENTS: [&str; 2] = ["gen_ai.content.prompt", "gen_ai.content.completion"];

/// The prompt and response that GenAI events carry, in their order: per-message events
/// ([`genai_message_event`]), or the older `gen_ai.content.prompt` /
/// `gen_ai.content.completion` with the messages as JSON in `gen_ai.prompt` /
/// `gen_ai.completion`. Each event is its name and its attributes (a JSON object).
pub fn messages_from_events<'a>(
    events: impl IntoIterator<Item = (&'a str, serde_json::Value)>,
) -> (Option<Value>, Option<Value>) {
    let (mut input, mut output) = (Vec::new(), Vec::new());
    let (mut legacy_input, mut legacy_output) = (None, None);
    for (name, attributes) in events {
        match name {
            "gen_ai.content.prompt" => legacy_input = attributes.get("gen_ai.prompt").cloned(),
            "gen_ai.content.completion" => {
                legacy_output = attributes.get("gen_ai.completion").cloned();
            }
            name => {
                if let Some((role, response)) = genai_message_event(name) {
                    let m = event_message(role, attributes);
                    if response {
                        output.push(m);
                    } else {
                        input.push(m);
                    }
                }
            }
        }
    }
    let as_value = |messages: Vec<serde_json::Value>, legacy: Option<serde_json::Value>| {
        let v = if messages.is_empty() {
            match legacy? {
                // Messages as a JSON string: stored as JSON.
                serde_json::Value::String(text) => {
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                }
                other => other,
            }
        } else {
            serde_json::Value::Array(messages)
        };
        logbook_proto::Json::from_serialize(&v)
            .ok()
            .map(Value::Json)
    };
    (
        as_value(input, legacy_input),
        as_value(output, legacy_output),
    )
}

/// One GenAI event's message: its attributes (a JSON string parsed; a `message` or
/// `body` object, as a choice or a log record's body holds the message, merged in),
/// with the role its event name gives unless it says its own; `gen_ai.system` (the
/// provider) and `event.name` are not part of the message.
fn event_message(role: &str, attributes: serde_json::Value) -> serde_json::Value {
    let mut message = serde_json::Map::new();
    message.insert("role".into(), role.into());
    if let serde_json::Value::Object(attributes) = attributes {
        for (k, v) in attributes {
            absorb(&mut message, k, v);
        }
    }
    serde_json::Value::Object(message)
}

/// Adds one attribute of a GenAI event to its message.
fn absorb(
    message: &mut serde_json::Map<String, serde_json::Value>,
    k: String,
    v: serde_json::Value,
) {
    const NOT_THE_MESSAGE: [&str; 4] = [
        "gen_ai.system",
        genai::PROVIDER_NAME,
        "event.name",
        "otel.severity_text",
    ];
    if NOT_THE_MESSAGE.contains(&k.as_str()) {
        return;
    }
    let v = match v {
        serde_json::Value::String(text) if text.starts_with('{') || text.starts_with('[') => {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        }
        v => v,
    };
    match (k.as_str(), v) {
        // A log record's body, or a choice's message: the message's own parts.
        ("message" | "body", serde_json::Value::Object(inner)) => {
            for (ik, iv) in inner {
                absorb(message, ik, iv);
            }
        }
        (_, v) => {
            message.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nano_dollars_round_and_saturate() {
        assert_eq!(nano_usd(0.000_000_000_4), 0);
        assert_eq!(nano_usd(0.000_000_000_6), 1);
        assert_eq!(nano_usd(1.25), 1_250_000_000);
        assert_eq!(nano_usd(f64::NAN), 0);
        assert_eq!(nano_usd(1e30), i64::MAX);
        assert!((usd(1_250_000_000) - 1.25).abs() < 1e-12);
    }

    #[test]
    fn token_counts_take_what_sdks_send() {
        assert_eq!(count(&Value::I64(5)), Some(5));
        assert_eq!(count(&Value::I64(-5)), None);
        assert_eq!(count(&Value::Str(" 12 ".into())), Some(12));
        assert_eq!(count(&Value::F64(3.0)), Some(3));
        assert_eq!(count(&Value::F64(3.5)), None);
        assert_eq!(
            count(&Value::U64(MAX_TOKENS + 1)),
            None,
            "not a token count"
        );
        assert_eq!(float(&Value::F64(1e300)), None, "not a cost");
    }
}
