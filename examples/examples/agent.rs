//! An async agent, instrumented with logbook, running several runs at once against a
//! fake model.
//!
//! Each run is a root span carrying `run_id`, `tenant` and `user_id`; every step, LLM
//! call and tool call below it inherits them, including across `tokio::spawn`. LLM
//! calls use the OpenTelemetry GenAI field names and record their token counts late,
//! when the response arrives; one call fails (rate limited) and is retried.
//!
//! ```text
//! cargo run --release -p logbook-collector -- serve        # in one terminal
//! cargo run --release -p logbook-examples --example agent  # in another
//! cargo run --release -p logbook-collector -- runs
//! cargo run --release -p logbook-collector -- run <RUN_ID>
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use serde::Serialize;
use tracing::field::Empty;
use tracing::{error, info, info_span, warn, Instrument};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// A chat message in the GenAI convention's shape.
#[derive(Clone, Serialize)]
struct Message {
    role: &'static str,
    content: String,
}

/// What the fake model answers.
struct Completion {
    id: String,
    text: String,
    tool_call: Option<(&'static str, serde_json::Value)>,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
}

#[derive(Debug)]
struct RateLimited {
    retry_after_ms: u64,
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "429 rate limited: retry after {} ms",
            self.retry_after_ms
        )
    }
}

impl std::error::Error for RateLimited {}

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

/// A UUID-shaped random id.
fn new_id() -> String {
    let (a, b) = (random_u64(), random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// The fake model: answers after a short delay; the first call of the run that is told
/// to fail is rate limited.
async fn fake_model(
    messages: &[Message],
    step: usize,
    fail: bool,
) -> Result<Completion, RateLimited> {
    tokio::time::sleep(Duration::from_millis(15 + (random_u64() % 25))).await;
    if fail {
        return Err(RateLimited { retry_after_ms: 20 });
    }
    let input_tokens = messages
        .iter()
        .map(|m| m.content.split_whitespace().count() as u64 * 4 / 3 + 4)
        .sum();
    let tool_call = (step == 1).then(|| {
        (
            "search",
            serde_json::json!({ "query": "quarterly revenue", "limit": 3 }),
        )
    });
    let text = match step {
        1 => "I'll look that up.".to_owned(),
        2 => "Revenue grew 12% quarter on quarter, driven by the enterprise plan.".to_owned(),
        _ => "Summary sent. Anything else?".to_owned(),
    };
    Ok(Completion {
        id: format!("chatcmpl-{:x}", random_u64() & 0xffff_ffff),
        output_tokens: text.split_whitespace().count() as u64 * 4 / 3 + 1,
        text,
        tool_call,
        input_tokens,
        cache_read_tokens: if step > 1 { input_tokens / 2 } else { 0 },
    })
}

/// One LLM call: a span named after the operation and model, with the request known up
/// front and the usage and response recorded when they arrive.
async fn chat(messages: &[Message], step: usize, fail: bool) -> Result<Completion, RateLimited> {
    let model = "fake-gpt-1";
    let span = info_span!(
        "chat fake-gpt-1",
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = "fake",
        gen_ai.request.model = model,
        gen_ai.input.messages = logbook_layer::json(messages),
        gen_ai.response.model = Empty,
        gen_ai.response.id = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        gen_ai.usage.cache_read.input_tokens = Empty,
        gen_ai.output.messages = Empty,
        error.type = Empty,
    );
    let result = fake_model(messages, step, fail)
        .instrument(span.clone())
        .await;
    match &result {
        Ok(c) => {
            span.record("gen_ai.response.model", model);
            span.record("gen_ai.response.id", c.id.as_str());
            let finish = if c.tool_call.is_some() {
                "tool_calls"
            } else {
                "stop"
            };
            span.record(
                "gen_ai.response.finish_reasons",
                tracing::field::debug(logbook_layer::Json([finish])),
            );
            span.record("gen_ai.usage.input_tokens", c.input_tokens);
            span.record("gen_ai.usage.output_tokens", c.output_tokens);
            span.record("gen_ai.usage.cache_read.input_tokens", c.cache_read_tokens);
            let out = [Message {
                role: "assistant",
                content: c.text.clone(),
            }];
            span.record(
                "gen_ai.output.messages",
                tracing::field::debug(logbook_layer::Json(out)),
            );
        }
        Err(e) => {
            span.record("error.type", "rate_limit");
            span.in_scope(
                || error!(error = %e, retry_after_ms = e.retry_after_ms, "LLM call failed"),
            );
        }
    }
    result
}

/// One tool call, with its arguments up front and its result recorded late.
async fn run_tool(name: &'static str, arguments: serde_json::Value) -> String {
    let span = info_span!(
        "execute_tool search",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = name,
        gen_ai.tool.call.id = %format!("call_{:x}", random_u64() & 0xffff_ffff),
        gen_ai.tool.call.arguments = logbook_layer::json(&arguments),
        gen_ai.tool.call.result = Empty,
    );
    async {
        tokio::time::sleep(Duration::from_millis(5 + random_u64() % 10)).await;
        let result = serde_json::json!([
            { "title": "Q3 report", "revenue_growth": 0.12 },
            { "title": "Board deck", "pages": 14 }
        ]);
        tracing::Span::current().record(
            "gen_ai.tool.call.result",
            tracing::field::debug(logbook_layer::Json(&result)),
        );
        info!(results = 2, "tool returned");
        result.to_string()
    }
    .instrument(span)
    .await
}

/// One agent run: three steps, each an LLM call; the first step calls a tool.
async fn agent_run(question: String, fail_first_call: bool) {
    let mut messages = vec![Message {
        role: "user",
        content: question,
    }];
    for step in 1..=3 {
        let step_span = info_span!("step", step_id = %format!("step-{step}"), step.index = step);
        async {
            let mut fail = fail_first_call && step == 1;
            let completion = loop {
                match chat(&messages, step, fail).await {
                    Ok(c) => break c,
                    Err(e) => {
                        warn!(
                            retry_after_ms = e.retry_after_ms,
                            "retrying after rate limit"
                        );
                        tokio::time::sleep(Duration::from_millis(e.retry_after_ms)).await;
                        fail = false;
                    }
                }
            };
            messages.push(Message {
                role: "assistant",
                content: completion.text.clone(),
            });
            if let Some((tool, args)) = completion.tool_call {
                let result = run_tool(tool, args).await;
                messages.push(Message {
                    role: "tool",
                    content: result,
                });
            }
            info!(messages = messages.len(), "step done");
        }
        .instrument(step_span)
        .await;
    }
}

#[tokio::main]
async fn main() {
    let logbook = logbook_layer::builder()
        .with_service("example-agent")
        .build();
    let guard = logbook.flush_guard();
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .compact()
                .with_writer(std::io::stderr)
                .with_filter(LevelFilter::WARN),
        )
        .with(logbook)
        .init();

    let users = [
        ("acme", "u-alice"),
        ("acme", "u-bob"),
        ("globex", "u-carol"),
        ("initech", "u-dave"),
    ];
    let mut tasks = Vec::new();
    let mut runs = Vec::new();
    for (i, (tenant, user)) in users.into_iter().enumerate() {
        let run_id = new_id();
        let span = info_span!(
            "agent.run",
            run_id = %run_id,
            tenant,
            user_id = user,
            gen_ai.agent.name = "research-assistant",
            gen_ai.operation.name = "invoke_agent",
        );
        let question = format!("How did revenue change last quarter? (asked by {user})");
        // Runs proceed concurrently; each task carries its run's span, and with it the scope.
        tasks.push(tokio::spawn(agent_run(question, i == 1).instrument(span)));
        runs.push((run_id, tenant, user));
    }
    for t in tasks {
        t.await.expect("run task panicked");
    }
    let report = guard.flush();
    for (run_id, tenant, user) in &runs {
        println!("{run_id}  tenant={tenant} user={user}");
    }
    if report.undelivered > 0 || report.dropped > 0 {
        eprintln!(
            "{} records delivered, {} not delivered, {} dropped: is `logbook serve` running?",
            report.delivered, report.undelivered, report.dropped
        );
    }
}
