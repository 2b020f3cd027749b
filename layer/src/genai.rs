//! Instrumentation helpers for agents: LLM calls, tool calls, agent invocations, runs,
//! steps, decisions, artifacts and state pulses, under the OpenTelemetry GenAI field
//! names; and W3C trace context propagation, so that a call from one instrumented
//! process to another joins the same trace and run under the caller's span.
//!
//! Every helper makes an ordinary `tracing` span or event: use the spans with
//! `.instrument(span)` (or `span.in_scope(..)`, or enter them in synchronous code), and
//! `#[instrument]` functions called inside them become their children. Values known
//! only later (usage, response, result, errors) are recorded on the span through the
//! helper's methods, which take `&self`, so they work after a clone of the span has
//! been moved into `.instrument`. A helper's span ends when the helper and every clone
//! of its span have been dropped.
//!
//! ```no_run
//! use logbook_layer::genai::{self, StatePulse};
//! use serde_json::json;
//! use tracing::Instrument;
//!
//! # async fn ask_model(_prompt: &str) -> std::io::Result<String> { Ok(String::new()) }
//! # async fn call_tool_server(_headers: Vec<(&str, String)>) {}
//! async fn triage(question: &str) -> std::io::Result<()> {
//!     // The root of a run: a fresh run_id, and the scope every record below inherits.
//!     let run = genai::run("triage").tenant("acme").user("u-7").agent("triage-bot").start();
//!     async {
//!         let plan = genai::step("plan");
//!         async {
//!             let call = genai::llm_call("openai", "gpt-4o");
//!             call.input_messages(&json!([{ "role": "user", "content": question }]));
//!             match ask_model(question).instrument(call.span().clone()).await {
//!                 Ok(answer) => {
//!                     call.response("chatcmpl-1", "gpt-4o-2024-08-06")
//!                         .usage(812, 64)
//!                         .cache_read_tokens(512)
//!                         .finish_reasons(&["stop"])
//!                         .output_messages(&json!([{ "role": "assistant", "content": answer }]));
//!                 }
//!                 Err(e) => {
//!                     call.error(&e); // error.type, exception.message, status error
//!                     return Err(e);
//!                 }
//!             }
//!             genai::decision("search the docs first", "the question names a feature");
//!             Ok(())
//!         }
//!         .instrument(plan)
//!         .await?;
//!
//!         // A tool served by another process: pass the trace context along.
//!         let tool = genai::tool_call("search_docs", Some("call-1"), &json!({ "q": question }));
//!         let mut headers = Vec::new();
//!         tool.span().in_scope(|| genai::inject(|name, value| headers.push((name, value))));
//!         call_tool_server(headers).instrument(tool.span().clone()).await;
//!         tool.result(&json!(["doc-1", "doc-2"]));
//!
//!         genai::artifact("report", "out/triage.md");
//!         let mut state = StatePulse::new();
//!         state.pulse(&json!({ "plan": ["search"], "done": false }));
//!         Ok(())
//!     }
//!     .instrument(run.span().clone())
//!     .await
//! }
//!
//! // In the tool server, for each request: a span joined to the caller's.
//! # fn header(_name: &str) -> Option<String> { None }
//! fn serve() {
//!     let remote = genai::extract(|name| header(name));
//!     let span = remote.span(); // or: tracing::info_span!("serve", traceparent = remote.traceparent(), baggage = remote.baggage())
//!     span.in_scope(|| tracing::info!("searching")); // the caller's trace id and run_id
//! }
//! ```
//!
//! # Names and categories
//!
//! The field names are the constants re-exported here from [`logbook_proto::genai`]
//! (`genai::REQUEST_MODEL`, `genai::openinference::LLM_MODEL_NAME`, …). Span names are
//! `chat`, `text_completion`, `generate_content`, `embeddings` (LLM calls),
//! `execute_tool`, `invoke_agent`, `run`, `step` and `server`; event names are
//! `decision`, `artifact` and `state`. The collector derives categories from them; the
//! layer itself gives the category `run` to a span that introduces a new `run_id`.
//!
//! The spans and events have the target `logbook_layer::genai`: a filter must enable it
//! (e.g. `RUST_LOG=info` or `my_app=debug,logbook_layer::genai=info`).
//!
//! # Propagation
//!
//! [`inject`] writes the current span's context as `traceparent` (W3C) and `baggage`
//! (the [`PROPAGATED_SCOPE`] keys: `run_id`, `tenant`, `user_id`, `session_id`).
//! [`extract`] reads them, and `x-trace-id` when no `traceparent` came, for a span in
//! the receiving process: the layer gives such a span the caller's trace id, the
//! caller's span as its parent, and the caller's scope as if inherited (so a `run_id`
//! from `baggage` joins the caller's run instead of starting one; the span's own scope
//! fields still win). Any span can take them as fields named `traceparent`, `baggage`
//! and `trace_id`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use tracing::field::Empty;
use tracing::{Level, Span};
use tracing_subscriber::registry::{LookupSpan, Registry};

pub use logbook_proto::genai::*;

pub use crate::baggage::PROPAGATED_SCOPE;
use crate::fields::{EXCEPTION_MESSAGE, OTEL_STATUS_CODE};
use crate::span_state::{parse_traceparent, SpanState};
use crate::{json, rng, ScopeKey, SpanId, TraceId};

/// The most characters of reasoning a [`decision`] keeps; longer text is cut on a
/// character boundary and ends with `…`.
pub const DECISION_REASONING_MAX_CHARS: usize = 500;

// ----- ids -----------------------------------------------------------------------------

/// A random UUID-v4-shaped id.
fn uuid_v4() -> String {
    let (a, b) = (rng::next_u64(), rng::next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// A random 16-hex-digit id.
fn short_id() -> String {
    format!("{:016x}", rng::next_u64())
}

// ----- errors --------------------------------------------------------------------------

/// `error.type` for an error of type `E`: its type name, or `_OTHER` (the GenAI
/// conventions' fallback) when only a trait object is known.
fn error_type_of<E: ?Sized>() -> &'static str {
    let name = std::any::type_name::<E>();
    if name.contains("dyn ") {
        "_OTHER"
    } else {
        name
    }
}

/// The error's message followed by its sources', `: `-separated.
fn error_message<E: std::error::Error + ?Sized>(error: &E) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let _ = write!(text, ": {e}");
        source = e.source();
    }
    text
}

/// Marks `span` failed: `error.type`, `exception.message` (if any) and
/// `otel.status_code = "ERROR"`.
fn fail(span: &Span, error_type: &str, message: Option<&str>) {
    span.record(ERROR_TYPE, error_type);
    if let Some(m) = message {
        span.record(EXCEPTION_MESSAGE, m);
    }
    span.record(OTEL_STATUS_CODE, "ERROR");
}

macro_rules! error_methods {
    () => {
        /// Marks the span failed by `error`: `error.type` (the error's type name, or
        /// `_OTHER` for a `dyn Error`), `exception.message` (the error and its sources)
        /// and `otel.status_code = "ERROR"`, so the span ends with status error.
        pub fn error<E: std::error::Error + ?Sized>(&self, error: &E) -> &Self {
            fail(
                &self.span,
                error_type_of::<E>(),
                Some(error_message(error).as_str()),
            );
            self
        }

        /// Marks the span failed with this `error.type` (a short class such as
        /// `timeout`, `rate_limited` or `500`) and `otel.status_code = "ERROR"`.
        pub fn error_type(&self, error_type: &str) -> &Self {
            fail(&self.span, error_type, None);
            self
        }

        /// The span, to pass to `.instrument(…)` (as a clone), `in_scope` or `enter`.
        pub fn span(&self) -> &Span {
            &self.span
        }
    };
}

// ----- LLM calls -----------------------------------------------------------------------

/// A model call's span; see [`llm_call`].
#[derive(Clone, Debug)]
#[must_use = "the call's span ends when this is dropped"]
pub struct LlmCall {
    span: Span,
}

macro_rules! llm_span {
    ($name:literal, $operation:expr, $provider:expr, $model:expr) => {
        tracing::info_span!(
            $name,
            { OPERATION_NAME } = $operation,
            { PROVIDER_NAME } = $provider,
            { REQUEST_MODEL } = $model,
            { REQUEST_TEMPERATURE } = Empty,
            { REQUEST_MAX_TOKENS } = Empty,
            { RESPONSE_MODEL } = Empty,
            { RESPONSE_ID } = Empty,
            { RESPONSE_FINISH_REASONS } = Empty,
            { USAGE_INPUT_TOKENS } = Empty,
            { USAGE_OUTPUT_TOKENS } = Empty,
            { USAGE_CACHE_READ_INPUT_TOKENS } = Empty,
            { USAGE_COST } = Empty,
            { INPUT_MESSAGES } = Empty,
            { OUTPUT_MESSAGES } = Empty,
            { CONVERSATION_ID } = Empty,
            { ERROR_TYPE } = Empty,
            { EXCEPTION_MESSAGE } = Empty,
            { OTEL_STATUS_CODE } = Empty,
        )
    };
}

/// A chat call to `model` of `provider` (`openai`, `anthropic`, `gcp.gemini`, …): an
/// INFO span named `chat`. Shorthand for [`LlmCall::new`]`(operation::CHAT, …)`.
pub fn llm_call(provider: &str, model: &str) -> LlmCall {
    LlmCall::new(operation::CHAT, provider, model)
}

impl LlmCall {
    /// A model call: an INFO span named after `operation` (`chat`, `text_completion`,
    /// `generate_content` or `embeddings`; any other operation gets a span named `chat`
    /// with that `gen_ai.operation.name`), with `gen_ai.operation.name`,
    /// `gen_ai.provider.name` and `gen_ai.request.model`.
    pub fn new(operation: &str, provider: &str, model: &str) -> Self {
        let span = match operation {
            operation::TEXT_COMPLETION => {
                llm_span!("text_completion", operation, provider, model)
            }
            operation::GENERATE_CONTENT => {
                llm_span!("generate_content", operation, provider, model)
            }
            operation::EMBEDDINGS => llm_span!("embeddings", operation, provider, model),
            _ => llm_span!("chat", operation, provider, model),
        };
        Self { span }
    }

    error_methods!();

    /// The prompt, `gen_ai.input.messages`, recorded as nested JSON (an array of
    /// messages in the GenAI conventions' shape, or the provider's).
    pub fn input_messages<T: Serialize + ?Sized>(&self, messages: &T) -> &Self {
        self.span.record(INPUT_MESSAGES, json(messages));
        self
    }

    /// The response, `gen_ai.output.messages`, recorded as nested JSON.
    pub fn output_messages<T: Serialize + ?Sized>(&self, messages: &T) -> &Self {
        self.span.record(OUTPUT_MESSAGES, json(messages));
        self
    }

    /// `gen_ai.response.id` and `gen_ai.response.model` (the exact model that answered).
    pub fn response(&self, id: &str, model: &str) -> &Self {
        self.span.record(RESPONSE_ID, id);
        self.span.record(RESPONSE_MODEL, model);
        self
    }

    /// `gen_ai.response.finish_reasons`, a JSON array (`["stop"]`, `["tool_calls"]`, …).
    pub fn finish_reasons(&self, reasons: &[&str]) -> &Self {
        self.span.record(RESPONSE_FINISH_REASONS, json(reasons));
        self
    }

    /// `gen_ai.usage.input_tokens` and `gen_ai.usage.output_tokens`. By the GenAI
    /// conventions the input tokens include those read from the provider's cache: add
    /// them if your provider counts them apart (Anthropic's `input_tokens` does), and
    /// record them also with [`cache_read_tokens`](Self::cache_read_tokens).
    pub fn usage(&self, input_tokens: u64, output_tokens: u64) -> &Self {
        self.span.record(USAGE_INPUT_TOKENS, input_tokens);
        self.span.record(USAGE_OUTPUT_TOKENS, output_tokens);
        self
    }

    /// `gen_ai.usage.cache_read.input_tokens`: the part of the input tokens (as recorded
    /// by [`usage`](Self::usage), which includes them) served from the provider's cache.
    pub fn cache_read_tokens(&self, tokens: u64) -> &Self {
        self.span.record(USAGE_CACHE_READ_INPUT_TOKENS, tokens);
        self
    }

    /// `gen_ai.usage.cost`: the cost the provider reported for this call, in USD.
    pub fn provider_cost(&self, usd: f64) -> &Self {
        self.span.record(USAGE_COST, usd);
        self
    }

    /// `gen_ai.request.temperature`
    pub fn temperature(&self, temperature: f64) -> &Self {
        self.span.record(REQUEST_TEMPERATURE, temperature);
        self
    }

    /// `gen_ai.request.max_tokens`
    pub fn max_tokens(&self, max_tokens: u64) -> &Self {
        self.span.record(REQUEST_MAX_TOKENS, max_tokens);
        self
    }

    /// `gen_ai.conversation.id`
    pub fn conversation(&self, id: &str) -> &Self {
        self.span.record(CONVERSATION_ID, id);
        self
    }
}

impl From<LlmCall> for Span {
    fn from(call: LlmCall) -> Span {
        call.span
    }
}

// ----- tool calls ----------------------------------------------------------------------

/// A tool call's span; see [`tool_call`].
#[derive(Clone, Debug)]
#[must_use = "the call's span ends when this is dropped"]
pub struct ToolCall {
    span: Span,
}

/// A call of the tool `name`: an INFO span named `execute_tool` with
/// `gen_ai.operation.name = "execute_tool"`, `gen_ai.tool.name`, `gen_ai.tool.call.id`
/// (when given) and `gen_ai.tool.call.arguments` as nested JSON. Arguments that arrive
/// as JSON text (as models send them) can be passed as a `&serde_json::value::RawValue`
/// or a parsed `serde_json::Value`, so that they are stored as JSON, not as a string.
pub fn tool_call<T: Serialize + ?Sized>(
    name: &str,
    call_id: Option<&str>,
    arguments: &T,
) -> ToolCall {
    let span = tracing::info_span!(
        "execute_tool",
        { OPERATION_NAME } = operation::EXECUTE_TOOL,
        { TOOL_NAME } = name,
        { TOOL_CALL_ID } = call_id,
        { TOOL_CALL_ARGUMENTS } = json(arguments),
        { TOOL_CALL_RESULT } = Empty,
        { TOOL_TYPE } = Empty,
        { ERROR_TYPE } = Empty,
        { EXCEPTION_MESSAGE } = Empty,
        { OTEL_STATUS_CODE } = Empty,
    );
    ToolCall { span }
}

impl ToolCall {
    error_methods!();

    /// `gen_ai.tool.call.result`, as nested JSON.
    pub fn result<T: Serialize + ?Sized>(&self, result: &T) -> &Self {
        self.span.record(TOOL_CALL_RESULT, json(result));
        self
    }

    /// `gen_ai.tool.type`: `function`, `extension` or `datastore`.
    pub fn tool_type(&self, tool_type: &str) -> &Self {
        self.span.record(TOOL_TYPE, tool_type);
        self
    }
}

impl From<ToolCall> for Span {
    fn from(call: ToolCall) -> Span {
        call.span
    }
}

// ----- agents, runs, steps -------------------------------------------------------------

/// An agent invocation: an INFO span named `invoke_agent` with
/// `gen_ai.operation.name = "invoke_agent"` and `gen_ai.agent.name`; `gen_ai.agent.id`,
/// `gen_ai.conversation.id`, `error.type`, `exception.message` and `otel.status_code`
/// may be recorded on it later.
pub fn agent(name: &str) -> Span {
    tracing::info_span!(
        "invoke_agent",
        { OPERATION_NAME } = operation::INVOKE_AGENT,
        { AGENT_NAME } = name,
        { AGENT_ID } = Empty,
        { CONVERSATION_ID } = Empty,
        { ERROR_TYPE } = Empty,
        { EXCEPTION_MESSAGE } = Empty,
        { OTEL_STATUS_CODE } = Empty,
    )
}

/// A run to start; see [`run`].
#[derive(Clone, Debug, Default)]
#[must_use = "call .start() to open the run's span"]
pub struct RunBuilder {
    name: String,
    run_id: Option<String>,
    agent: Option<String>,
    tenant: Option<String>,
    user: Option<String>,
    session: Option<String>,
    app: Option<String>,
    project: Option<String>,
    env: Option<String>,
}

/// A run named `name`: call [`RunBuilder::start`] to open its root span.
pub fn run(name: &str) -> RunBuilder {
    RunBuilder {
        name: name.to_owned(),
        ..RunBuilder::default()
    }
}

impl RunBuilder {
    /// Uses this run id instead of a fresh one.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.run_id = Some(run_id.into());
        self
    }

    /// `gen_ai.agent.name`: the agent doing the run.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    /// The `tenant` scope.
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    /// The `user_id` scope.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user = Some(user_id.into());
        self
    }

    /// The `session_id` scope.
    pub fn session(mut self, session_id: impl Into<String>) -> Self {
        self.session = Some(session_id.into());
        self
    }

    /// The `app` scope.
    pub fn app(mut self, app: impl Into<String>) -> Self {
        self.app = Some(app.into());
        self
    }

    /// The `project` scope.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// The `env` scope.
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }

    /// Opens the run's INFO span, named `run`, with `run_id` (fresh unless given),
    /// `run.name`, `gen_ai.agent.name` and the scope given. Every span and event below
    /// it inherits the run id and scope; the layer gives the span the category `run`
    /// (unless its run id is the current one's).
    pub fn start(self) -> Run {
        let run_id = self.run_id.unwrap_or_else(uuid_v4);
        let span = tracing::info_span!(
            "run",
            run_id = run_id.as_str(),
            { logbook::RUN_NAME } = self.name.as_str(),
            { AGENT_NAME } = self.agent.as_deref(),
            tenant = self.tenant.as_deref(),
            user_id = self.user.as_deref(),
            session_id = self.session.as_deref(),
            app = self.app.as_deref(),
            project = self.project.as_deref(),
            env = self.env.as_deref(),
            { ERROR_TYPE } = Empty,
            { EXCEPTION_MESSAGE } = Empty,
            { OTEL_STATUS_CODE } = Empty,
        );
        Run { span, run_id }
    }
}

/// A run's root span; see [`run`].
#[derive(Clone, Debug)]
#[must_use = "the run's span ends when this is dropped"]
pub struct Run {
    span: Span,
    run_id: String,
}

impl Run {
    error_methods!();

    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Marks the run succeeded (`otel.status_code = "OK"`), whatever errors its span
    /// saw. A run with no error recorded ends with status ok anyway.
    pub fn ok(&self) -> &Self {
        self.span.record(OTEL_STATUS_CODE, "OK");
        self
    }
}

impl From<Run> for Span {
    fn from(run: Run) -> Span {
        run.span
    }
}

/// A step of a run: an INFO span named `step` with `step.name` and a fresh `step_id`
/// (scope: records below it carry it); `error.type`, `exception.message` and
/// `otel.status_code` may be recorded on it later.
pub fn step(name: &str) -> Span {
    let step_id = short_id();
    tracing::info_span!(
        "step",
        { logbook::STEP_NAME } = name,
        step_id = step_id.as_str(),
        { ERROR_TYPE } = Empty,
        { EXCEPTION_MESSAGE } = Empty,
        { OTEL_STATUS_CODE } = Empty,
    )
}

// ----- decisions, artifacts, state -----------------------------------------------------

/// `text` cut to `max` characters, with `…` when cut.
fn snippet(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((at, _)) => format!("{}…", &text[..at]).into(),
    }
}

/// A decision: an INFO event named `decision` with `decision.summary` and
/// `decision.reasoning` (at most [`DECISION_REASONING_MAX_CHARS`] characters of it).
pub fn decision(summary: &str, reasoning: &str) {
    let reasoning = snippet(reasoning, DECISION_REASONING_MAX_CHARS);
    tracing::event!(
        name: "decision",
        Level::INFO,
        { logbook::DECISION_SUMMARY } = summary,
        { logbook::DECISION_REASONING } = &*reasoning,
        "decision: {summary}"
    );
}

/// An artifact the run produced: an INFO event named `artifact` with `artifact.type`
/// (`file`, `report`, `patch`, `image`, …) and `artifact.path` (a path or a URI).
pub fn artifact(kind: &str, path: &str) {
    tracing::event!(
        name: "artifact",
        Level::INFO,
        { logbook::ARTIFACT_TYPE } = kind,
        { logbook::ARTIFACT_PATH } = path,
        "artifact: {kind} {path}"
    );
}

/// Feedback on what the current span did (a run, an LLM call): an INFO event named
/// `feedback` with `feedback.label`, `feedback.score` and `feedback.note` (each
/// optional), shown with the run in the web UI, found with
/// `logbook query --category feedback --field feedback.score=0`. Call it inside the
/// span it is about (`llm.span().in_scope(|| genai::feedback(...))`), e.g. when a user
/// marks an answer good or bad.
pub fn feedback(label: Option<&str>, score: Option<f64>, note: Option<&str>) {
    tracing::event!(
        name: "feedback",
        Level::INFO,
        { logbook::FEEDBACK_LABEL } = label,
        { logbook::FEEDBACK_SCORE } = score,
        { logbook::FEEDBACK_NOTE } = note,
        "feedback: {}{}",
        label.unwrap_or(""),
        score.map(|s| format!(" score {s}")).unwrap_or_default()
    );
}

/// 64-bit FNV-1a.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The canonical JSON text of `value`: compact, object keys sorted (whatever order the
/// map keeps them in).
fn canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value as J;
    match value {
        J::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(&J::String(k.clone()), out);
                out.push(':');
                canonical(v, out);
            }
            out.push('}');
        }
        J::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(v, out);
            }
            out.push(']');
        }
        // Null, booleans, numbers and strings: serde_json's compact form.
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// What a [`StatePulse`] remembers of a snapshot: its top-level keys' hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Snapshot {
    Object(BTreeMap<String, u64>),
    Other(u64),
}

/// The key standing for a whole snapshot that is not a JSON object.
const WHOLE: &str = "$";

/// The stable hash of `state`'s canonical JSON, and what to remember of it.
fn snapshot(state: &serde_json::Value) -> (u64, Snapshot) {
    let mut whole = Fnv::new();
    let mut text = String::new();
    match state {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let mut keys = BTreeMap::new();
            whole.write(b"{");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    whole.write(b",");
                }
                text.clear();
                canonical(&serde_json::Value::String(k.clone()), &mut text);
                text.push(':');
                let value_at = text.len();
                canonical(v, &mut text);
                whole.write(text.as_bytes());
                let mut h = Fnv::new();
                h.write(&text.as_bytes()[value_at..]);
                keys.insert(k.clone(), h.0);
            }
            whole.write(b"}");
            (whole.0, Snapshot::Object(keys))
        }
        other => {
            canonical(other, &mut text);
            whole.write(text.as_bytes());
            (whole.0, Snapshot::Other(whole.0))
        }
    }
}

/// The top-level keys added, removed or changed from `before` to `after`, sorted; `$`
/// for a snapshot that is not an object and changed.
fn changed_keys(before: Option<&Snapshot>, after: &Snapshot) -> Vec<String> {
    match (before, after) {
        (Some(Snapshot::Object(a)), Snapshot::Object(b)) => {
            let mut keys: Vec<String> = a
                .iter()
                .filter(|(k, h)| b.get(*k) != Some(*h))
                .map(|(k, _)| k.clone())
                .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
                .collect();
            keys.sort_unstable();
            keys
        }
        (None, Snapshot::Object(b)) => b.keys().cloned().collect(),
        (Some(a), b) if a == b => Vec::new(),
        _ => vec![WHOLE.to_owned()],
    }
}

/// Follows a state that changes during a run and reports each snapshot as an INFO event
/// named `state`, with `state.hash` (16 hex digits: FNV-1a of the snapshot's canonical
/// JSON, keys sorted, so equal states hash equal across processes) and
/// `state.changed_keys` (a JSON array of the top-level keys added, removed or changed
/// since the previous snapshot; all keys the first time; `"$"` for a state that is not
/// a JSON object and changed).
#[derive(Clone, Debug, Default)]
pub struct StatePulse {
    last: Option<Snapshot>,
}

impl StatePulse {
    /// A tracker that has seen no snapshot yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a snapshot of the state (which is serialized to JSON; a state that fails
    /// to serialize counts as the JSON string of the error) and returns its hash.
    pub fn pulse<T: Serialize + ?Sized>(&mut self, state: &T) -> String {
        let value = serde_json::to_value(state)
            .unwrap_or_else(|e| serde_json::Value::String(format!("<unserializable: {e}>")));
        let (hash, snap) = snapshot(&value);
        let changed = changed_keys(self.last.as_ref(), &snap);
        self.last = Some(snap);
        let hash = format!("{hash:016x}");
        let n = changed.len();
        tracing::event!(
            name: "state",
            Level::INFO,
            { logbook::STATE_HASH } = hash.as_str(),
            { logbook::STATE_CHANGED_KEYS } = json(&changed),
            "state: {n} changed"
        );
        hash
    }
}

// ----- propagation ---------------------------------------------------------------------

/// A span's trace context as the layer knows it: what [`inject`] sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The span (the remote side's parent).
    pub span_id: SpanId,
    /// The span's scope: every key set, of which [`baggage`](Self::baggage) carries
    /// the [`PROPAGATED_SCOPE`] ones.
    pub scope: Vec<(ScopeKey, String)>,
}

impl TraceContext {
    /// The context of the current span, if there is one and the logbook layer records
    /// it (the subscriber must be built on `tracing_subscriber::Registry`).
    pub fn current() -> Option<Self> {
        Self::of(&Span::current())
    }

    /// The context of `span`, if the logbook layer records it.
    pub fn of(span: &Span) -> Option<Self> {
        span.with_subscriber(|(id, dispatch)| {
            // `Layered` and `fmt::Subscriber` hand out their inner registry.
            let registry = dispatch.downcast_ref::<Registry>()?;
            let data = registry.span(id)?;
            let ext = data.extensions();
            let state = ext.get::<SpanState>()?;
            Some(Self {
                trace_id: state.trace_id,
                span_id: state.span_id,
                scope: state.scope.iter().map(|(k, v)| (k, v.to_owned())).collect(),
            })
        })
        .flatten()
    }

    /// The W3C `traceparent` header value: `00-<trace id>-<span id>-01`.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id.to_hex(), self.span_id.to_hex())
    }

    /// The W3C `baggage` header value: the [`PROPAGATED_SCOPE`] keys of the scope as
    /// `key=value` entries, `,`-separated, values percent-encoded; empty if none is set.
    pub fn baggage(&self) -> String {
        crate::baggage::encode(self.scope.iter().map(|(k, v)| (*k, v.as_str())))
    }

    /// Calls `set(header, value)` for `traceparent`, and for `baggage` unless it is
    /// empty. Header names are lowercase.
    pub fn inject(&self, mut set: impl FnMut(&'static str, String)) {
        set(propagation::TRACEPARENT, self.traceparent());
        let baggage = self.baggage();
        if !baggage.is_empty() {
            set(propagation::BAGGAGE, baggage);
        }
    }
}

/// Injects the current span's context ([`TraceContext::inject`]) into an outgoing
/// request's headers; returns whether there was one.
///
/// ```
/// let mut headers = std::collections::HashMap::new();
/// logbook_layer::genai::inject(|name, value| {
///     headers.insert(name, value);
/// });
/// ```
pub fn inject(set: impl FnMut(&'static str, String)) -> bool {
    TraceContext::current().map(|c| c.inject(set)).is_some()
}

/// The trace context an incoming request carried; see [`extract`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Remote {
    traceparent: Option<String>,
    baggage: Option<String>,
    trace_id: Option<String>,
}

/// Reads an incoming request's trace context through `get(header)`, which is called
/// with the lowercase names `traceparent`, `baggage` and `x-trace-id` (look them up
/// case-insensitively, as HTTP header maps do). An invalid `traceparent` is ignored;
/// `x-trace-id` (32 hex digits, or a UUID) is used only when no valid `traceparent`
/// came.
///
/// The `baggage` sets the run, tenant, user and session of everything under the span
/// made from it: take it only from callers you trust (your own services). At a public
/// edge, use the trace context alone: `info_span!("handle", traceparent =
/// remote.traceparent())`.
pub fn extract(get: impl Fn(&str) -> Option<String>) -> Remote {
    let traceparent = get(propagation::TRACEPARENT)
        .map(|t| t.trim().to_owned())
        .filter(|t| parse_traceparent(t).is_some());
    let baggage = get(propagation::BAGGAGE)
        .map(|b| b.trim().to_owned())
        .filter(|b| !b.is_empty());
    let trace_id = match traceparent {
        Some(_) => None,
        None => get(propagation::X_TRACE_ID).and_then(|t| {
            let t = t.trim();
            let hex: String = if t.len() == 36 {
                t.chars().filter(|c| *c != '-').collect()
            } else {
                t.to_owned()
            };
            let id = TraceId::from_hex(&hex).ok().filter(TraceId::is_valid)?;
            Some(id.to_hex())
        }),
    };
    Remote {
        traceparent,
        baggage,
        trace_id,
    }
}

impl Remote {
    /// The valid `traceparent` received: a span with this as its `traceparent` field
    /// joins the caller's trace under the caller's span.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// The `baggage` received: a span with this as its `baggage` field inherits the
    /// caller's run id, tenant, user and session.
    pub fn baggage(&self) -> Option<&str> {
        self.baggage.as_deref()
    }

    /// The trace id from `x-trace-id` (lowercase hex), when no valid `traceparent`
    /// came: a root span with this as its `trace_id` field joins that trace.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }

    /// Whether no trace context came.
    pub fn is_empty(&self) -> bool {
        self.traceparent.is_none() && self.baggage.is_none() && self.trace_id.is_none()
    }

    /// An INFO span named `server` carrying the context received (fields `traceparent`,
    /// `baggage`, `trace_id`, each only if received); `error.type`, `exception.message`
    /// and `otel.status_code` may be recorded on it later. To name the span yourself,
    /// give yours the same fields:
    /// `info_span!("serve", traceparent = remote.traceparent(), baggage = remote.baggage(), trace_id = remote.trace_id())`.
    pub fn span(&self) -> Span {
        tracing::info_span!(
            "server",
            traceparent = self.traceparent(),
            baggage = self.baggage(),
            trace_id = self.trace_id(),
            { ERROR_TYPE } = Empty,
            { EXCEPTION_MESSAGE } = Empty,
            { OTEL_STATUS_CODE } = Empty,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llm_spans_declare_every_gen_ai_field_under_the_shared_names() {
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry());
        tracing::dispatcher::with_default(&dispatch, || {
            for (op, name) in [
                ("chat", "chat"),
                ("text_completion", "text_completion"),
                ("generate_content", "generate_content"),
                ("embeddings", "embeddings"),
                ("rerank", "chat"),
            ] {
                let call = LlmCall::new(op, "openai", "m");
                let meta = call.span().metadata().expect("enabled");
                assert_eq!(meta.name(), name);
                for f in [
                    OPERATION_NAME,
                    PROVIDER_NAME,
                    REQUEST_MODEL,
                    REQUEST_TEMPERATURE,
                    REQUEST_MAX_TOKENS,
                    RESPONSE_MODEL,
                    RESPONSE_ID,
                    RESPONSE_FINISH_REASONS,
                    USAGE_INPUT_TOKENS,
                    USAGE_OUTPUT_TOKENS,
                    USAGE_CACHE_READ_INPUT_TOKENS,
                    USAGE_COST,
                    INPUT_MESSAGES,
                    OUTPUT_MESSAGES,
                    CONVERSATION_ID,
                    ERROR_TYPE,
                    EXCEPTION_MESSAGE,
                    OTEL_STATUS_CODE,
                ] {
                    assert!(meta.fields().field(f).is_some(), "{name}: {f}");
                }
            }
        });
    }

    #[test]
    fn ids_have_their_shapes() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(uuid_v4(), id);
        assert_eq!(short_id().len(), 16);
    }

    #[test]
    fn reasoning_is_cut_on_a_character_boundary() {
        assert_eq!(snippet("short", 500), "short");
        let long = "é".repeat(600);
        let cut = snippet(&long, 500);
        assert_eq!(cut.chars().count(), 501);
        assert!(cut.ends_with("é…"));
        assert_eq!(snippet(&"x".repeat(500), 500).len(), 500);
    }

    #[test]
    fn state_hash_ignores_key_order_and_diff_finds_changed_keys() {
        let a = serde_json::json!({"b": [1, {"y": 2, "x": 1}], "a": "s"});
        let mut map = serde_json::Map::new();
        map.insert("a".into(), serde_json::json!("s"));
        map.insert("b".into(), serde_json::json!([1, {"x": 1, "y": 2}]));
        let (h1, s1) = snapshot(&a);
        let (h2, _) = snapshot(&serde_json::Value::Object(map));
        assert_eq!(h1, h2);
        let mut text = String::new();
        canonical(&a, &mut text);
        assert_eq!(text, r#"{"a":"s","b":[1,{"x":1,"y":2}]}"#);
        let mut whole = Fnv::new();
        whole.write(text.as_bytes());
        assert_eq!(whole.0, h1, "the hash is FNV-1a of the canonical text");

        let (_, s3) =
            snapshot(&serde_json::json!({"a": "t", "b": [1, {"x": 1, "y": 2}], "c": null}));
        assert_eq!(changed_keys(Some(&s1), &s3), ["a", "c"]);
        let (_, s4) = snapshot(&serde_json::json!({"c": null}));
        assert_eq!(changed_keys(Some(&s3), &s4), ["a", "b"]);
        assert_eq!(changed_keys(None, &s1), ["a", "b"]);
        assert!(changed_keys(Some(&s1), &s1).is_empty());
        let (_, n1) = snapshot(&serde_json::json!(1));
        let (_, n2) = snapshot(&serde_json::json!(2));
        assert_eq!(changed_keys(Some(&n1), &n2), ["$"]);
        assert!(changed_keys(Some(&n1), &n1).is_empty());
        // FNV-1a 64 of "a" (a published test vector).
        let mut f = Fnv::new();
        f.write(b"a");
        assert_eq!(f.0, 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn extract_validates_and_prefers_traceparent() {
        let headers = |tp: Option<&str>, bg: Option<&str>, x: Option<&str>| {
            let (tp, bg, x) = (
                tp.map(str::to_owned),
                bg.map(str::to_owned),
                x.map(str::to_owned),
            );
            extract(move |name| match name {
                "traceparent" => tp.clone(),
                "baggage" => bg.clone(),
                "x-trace-id" => x.clone(),
                _ => None,
            })
        };
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let r = headers(
            Some(tp),
            Some(" run_id=r-1 "),
            Some("0af7651916cd43dd8448eb211c80319c"),
        );
        assert_eq!(r.traceparent(), Some(tp));
        assert_eq!(r.baggage(), Some("run_id=r-1"));
        assert_eq!(r.trace_id(), None, "traceparent wins");
        let r = headers(
            Some("garbage"),
            None,
            Some("0AF76519-16CD-43DD-8448-EB211C80319C"),
        );
        assert_eq!(r.traceparent(), None);
        assert_eq!(r.trace_id(), Some("0af7651916cd43dd8448eb211c80319c"));
        assert!(headers(None, Some(""), Some("nope")).is_empty());
    }

    #[test]
    fn error_types_name_the_type_or_fall_back() {
        let io = error_type_of::<std::io::Error>();
        assert!(io.starts_with("std::io::") && io.ends_with("Error"), "{io}");
        assert_eq!(error_type_of::<dyn std::error::Error>(), "_OTHER");
        let e = std::io::Error::other("outer");
        assert_eq!(error_message(&e), "outer");
    }
}
