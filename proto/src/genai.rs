//! Field names for agents: the OpenTelemetry GenAI semantic conventions (the names
//! logbook stores), the OpenInference and legacy OpenLLMetry names it accepts and
//! normalises to them, and logbook's own conventions for steps, decisions, artifacts
//! and state pulses. Shared by the layer's helpers and the collector.

/// `gen_ai.operation.name`: chat, text_completion, generate_content, embeddings,
/// execute_tool, invoke_agent, create_agent.
pub const OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name`: openai, anthropic, gcp.gemini, aws.bedrock, …
pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
/// `gen_ai.system`: the provider's name before `gen_ai.provider.name` replaced it.
pub const SYSTEM: &str = "gen_ai.system";
/// `gen_ai.request.model`
pub const REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.request.temperature`
pub const REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// `gen_ai.request.max_tokens`
pub const REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// `gen_ai.response.model`
pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.response.id`
pub const RESPONSE_ID: &str = "gen_ai.response.id";
/// `gen_ai.response.finish_reasons`: an array of strings.
pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// `gen_ai.usage.input_tokens`: all input tokens, cache reads included.
pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens`
pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.usage.cache_read.input_tokens`: the input tokens served from the provider's
/// cache (a part of `gen_ai.usage.input_tokens`).
pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// `gen_ai.usage.cost`: the cost the provider reported, in USD (a logbook extension;
/// kept apart from the cost logbook computes).
pub const USAGE_COST: &str = "gen_ai.usage.cost";
/// `gen_ai.input.messages`: the prompt, a JSON array of messages.
pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// `gen_ai.output.messages`: the response, a JSON array of messages.
pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// `gen_ai.system_instructions`
pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
/// `gen_ai.tool.name`
pub const TOOL_NAME: &str = "gen_ai.tool.name";
/// `gen_ai.tool.call.id`
pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
/// `gen_ai.tool.call.arguments`
pub const TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
/// `gen_ai.tool.call.result`
pub const TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";
/// `gen_ai.tool.type`: function, extension, datastore.
pub const TOOL_TYPE: &str = "gen_ai.tool.type";
/// `gen_ai.agent.name`
pub const AGENT_NAME: &str = "gen_ai.agent.name";
/// `gen_ai.agent.id`
pub const AGENT_ID: &str = "gen_ai.agent.id";
/// `gen_ai.conversation.id`
pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// `error.type`
pub const ERROR_TYPE: &str = "error.type";

/// Values of `gen_ai.operation.name`.
pub mod operation {
    /// A chat completion.
    pub const CHAT: &str = "chat";
    /// A plain completion.
    pub const TEXT_COMPLETION: &str = "text_completion";
    /// Gemini's content generation.
    pub const GENERATE_CONTENT: &str = "generate_content";
    /// Embeddings.
    pub const EMBEDDINGS: &str = "embeddings";
    /// A tool call.
    pub const EXECUTE_TOOL: &str = "execute_tool";
    /// An agent invocation.
    pub const INVOKE_AGENT: &str = "invoke_agent";
    /// An agent's creation.
    pub const CREATE_AGENT: &str = "create_agent";
}

/// logbook's conventions for the parts of a run the GenAI conventions do not name.
pub mod logbook {
    /// A run's name (on a span named `run`, which sets `run_id`).
    pub const RUN_NAME: &str = "run.name";
    /// A step's name (on a span named `step`).
    pub const STEP_NAME: &str = "step.name";
    /// A decision's one-line summary (on an event named `decision`).
    pub const DECISION_SUMMARY: &str = "decision.summary";
    /// A snippet of the reasoning behind a decision.
    pub const DECISION_REASONING: &str = "decision.reasoning";
    /// An artifact's type: file, report, patch, image, … (on an event named `artifact`).
    pub const ARTIFACT_TYPE: &str = "artifact.type";
    /// Where an artifact is: a path or a URI.
    pub const ARTIFACT_PATH: &str = "artifact.path";
    /// The hash of a state snapshot (on an event named `state`).
    pub const STATE_HASH: &str = "state.hash";
    /// The top-level keys that changed since the previous snapshot.
    pub const STATE_CHANGED_KEYS: &str = "state.changed_keys";
    /// Feedback on a run or an LLM call (an event named `feedback`): a label (`good`,
    /// `wrong answer`, …).
    pub const FEEDBACK_LABEL: &str = "feedback.label";
    /// Feedback's score (a number: 1/0, 1 to 5, …).
    pub const FEEDBACK_SCORE: &str = "feedback.score";
    /// Feedback's note.
    pub const FEEDBACK_NOTE: &str = "feedback.note";
    /// Who gave the feedback (a token's name, a user).
    pub const FEEDBACK_BY: &str = "feedback.by";
    /// The category an emitter may set explicitly, overriding the collector's.
    pub const CATEGORY: &str = "category";
}

/// What every GenAI field name starts with.
pub const PREFIX: &str = "gen_ai.";

/// OpenInference names (Arize Phoenix), accepted and normalised to GenAI names.
pub mod openinference {
    /// What OpenInference's model-call attributes start with.
    pub const LLM_PREFIX: &str = "llm.";
    /// Flattened input messages: `llm.input_messages.<i>.message.role`, `….content`.
    pub const LLM_INPUT_MESSAGES_FLAT: &str = "llm.input_messages.";
    /// Flattened output messages, as [`LLM_INPUT_MESSAGES_FLAT`].
    pub const LLM_OUTPUT_MESSAGES_FLAT: &str = "llm.output_messages.";
    /// `openinference.span.kind`: LLM, TOOL, AGENT, CHAIN, RETRIEVER, EMBEDDING, …
    pub const SPAN_KIND: &str = "openinference.span.kind";
    /// `llm.model_name`
    pub const LLM_MODEL_NAME: &str = "llm.model_name";
    /// `llm.provider`
    pub const LLM_PROVIDER: &str = "llm.provider";
    /// `llm.system`
    pub const LLM_SYSTEM: &str = "llm.system";
    /// `llm.token_count.prompt`
    pub const LLM_TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
    /// `llm.token_count.completion`
    pub const LLM_TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
    /// `llm.token_count.prompt_details.cache_read`
    pub const LLM_TOKEN_COUNT_CACHE_READ: &str = "llm.token_count.prompt_details.cache_read";
    /// `llm.input_messages`
    pub const LLM_INPUT_MESSAGES: &str = "llm.input_messages";
    /// `llm.output_messages`
    pub const LLM_OUTPUT_MESSAGES: &str = "llm.output_messages";
    /// `input.value`
    pub const INPUT_VALUE: &str = "input.value";
    /// `output.value`
    pub const OUTPUT_VALUE: &str = "output.value";
    /// `tool.name`
    pub const TOOL_NAME: &str = "tool.name";
    /// `tool.parameters`
    pub const TOOL_PARAMETERS: &str = "tool.parameters";
    /// `tool_call.id`
    pub const TOOL_CALL_ID: &str = "tool_call.id";
    /// `agent.name`
    pub const AGENT_NAME: &str = "agent.name";
    /// `session.id`
    pub const SESSION_ID: &str = "session.id";
    /// `user.id`
    pub const USER_ID: &str = "user.id";
}

/// Legacy OpenLLMetry (Traceloop) names, accepted and normalised to GenAI names.
pub mod openllmetry {
    /// `gen_ai.usage.prompt_tokens`
    pub const USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
    /// `gen_ai.usage.completion_tokens`
    pub const USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
    /// `gen_ai.usage.cache_read_input_tokens`
    pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read_input_tokens";
    /// `llm.request.type`: chat, completion, embedding.
    pub const LLM_REQUEST_TYPE: &str = "llm.request.type";
    /// `llm.usage.total_tokens`
    pub const LLM_USAGE_TOTAL_TOKENS: &str = "llm.usage.total_tokens";
    /// `traceloop.span.kind`: workflow, task, agent, tool.
    pub const TRACELOOP_SPAN_KIND: &str = "traceloop.span.kind";
    /// `traceloop.entity.name`
    pub const TRACELOOP_ENTITY_NAME: &str = "traceloop.entity.name";
    /// `traceloop.entity.input`
    pub const TRACELOOP_ENTITY_INPUT: &str = "traceloop.entity.input";
    /// `traceloop.entity.output`
    pub const TRACELOOP_ENTITY_OUTPUT: &str = "traceloop.entity.output";
    /// What Traceloop's own attributes start with.
    pub const TRACELOOP_PREFIX: &str = "traceloop.";
    /// Flattened prompt messages: `gen_ai.prompt.0.role`, `gen_ai.prompt.0.content`, …
    pub const PROMPT_FLAT: &str = "gen_ai.prompt.";
    /// Flattened response messages: `gen_ai.completion.0.role`, …
    pub const COMPLETION_FLAT: &str = "gen_ai.completion.";
}

/// Exception and error names (OpenTelemetry's `exception.*` and `error.type`, and the
/// layer's `error` field): what failed, on a failed span or an ERROR event.
pub mod exception {
    /// `exception.type`: the exception's or error's type.
    pub const TYPE: &str = "exception.type";
    /// `exception.message`
    pub const MESSAGE: &str = "exception.message";
    /// `exception.stacktrace`
    pub const STACKTRACE: &str = "exception.stacktrace";
    /// `error`: an error value recorded on a span or event (`error = %e`).
    pub const ERROR: &str = "error";
}

/// W3C trace context headers, and the `baggage` entries logbook propagates.
pub mod propagation {
    /// `traceparent`: `00-<trace id>-<parent span id>-<flags>`.
    pub const TRACEPARENT: &str = "traceparent";
    /// `tracestate`
    pub const TRACESTATE: &str = "tracestate";
    /// `baggage`: `key=value,…`; logbook carries the run's scope in it: `run_id`,
    /// `tenant`, `user_id` and `session_id` (the process that serves the call keeps its
    /// own `app`, `env`, `project`, `surface` and `request_id`).
    pub const BAGGAGE: &str = "baggage";
    /// `X-Trace-Id`: a bare 32-hex-digit trace id, accepted when no `traceparent` came.
    pub const X_TRACE_ID: &str = "x-trace-id";
}
