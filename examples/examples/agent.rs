//! An async agent, instrumented with logbook's GenAI helpers, running several runs at
//! once against a fake model that answers as `gpt-4o-mini`.
//!
//! Each run is `genai::run(..)`: a root span with a fresh `run_id`, the agent's name,
//! `tenant` and `user_id`; every step, LLM call and tool call below it inherits them,
//! including across `tokio::spawn`. LLM calls record their usage, response and finish
//! reasons when the response arrives; one call fails (rate limited) and is retried.
//! Steps record a decision, an artifact and a state pulse. At the end it prints each
//! run's id and what it recorded (calls and tokens), which `logbook runs`, `logbook
//! calls` and `logbook cost` show too, with the cost.
//!
//! ```text
//! cargo run --release -p logbook-collector -- serve        # in one terminal
//! cargo run --release -p logbook-examples --example agent  # in another
//! cargo run --release -p logbook-collector -- runs
//! cargo run --release -p logbook-collector -- run <RUN_ID>
//! cargo run --release -p logbook-collector -- calls --kind llm
//! cargo run --release -p logbook-collector -- cost --by user
//! ```

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use logbook_layer::genai::{self, StatePulse};
use serde::Serialize;
use tracing::{error, info, warn, Instrument};
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

/// Tokens of the system prompt and tool definitions sent with every request.
const SYSTEM_PROMPT_TOKENS: u64 = 1_450;
/// The part of them the provider's prompt cache serves after the first call.
const CACHED_PREFIX_TOKENS: u64 = 1_280;

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
    // A system prompt and tool definitions come first in every request; from the second
    // call on, the provider serves them from its prompt cache.
    let input_tokens = SYSTEM_PROMPT_TOKENS
        + messages
            .iter()
            .map(|m| m.content.split_whitespace().count() as u64 * 4 / 3 + 4)
            .sum::<u64>();
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
        // Reasoning tokens are billed as output too.
        output_tokens: text.split_whitespace().count() as u64 * 4 / 3 + 1 + 150,
        text,
        tool_call,
        input_tokens,
        cache_read_tokens: if step > 1 { CACHED_PREFIX_TOKENS } else { 0 },
    })
}

/// The model the fake answers as: its calls are priced by logbook's built-in table.
const MODEL: &str = "gpt-4o-mini";

/// What a run recorded, printed at the end so its figures can be checked against
/// `logbook runs`, `logbook calls` and `logbook cost`.
#[derive(Default, Serialize)]
struct Totals {
    llm_calls: u64,
    tool_calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
}

/// One LLM call: the request known up front, the usage and response recorded when
/// they arrive, or the error.
async fn chat(
    messages: &[Message],
    step: usize,
    fail: bool,
    totals: &mut Totals,
) -> Result<Completion, RateLimited> {
    let call = genai::llm_call("openai", MODEL);
    call.input_messages(messages).temperature(0.2);
    totals.llm_calls += 1;
    let result = fake_model(messages, step, fail)
        .instrument(call.span().clone())
        .await;
    match &result {
        Ok(c) => {
            call.response(&c.id, "gpt-4o-mini-2024-07-18")
                .usage(c.input_tokens, c.output_tokens)
                .cache_read_tokens(c.cache_read_tokens)
                .finish_reasons(&[if c.tool_call.is_some() {
                    "tool_calls"
                } else {
                    "stop"
                }])
                .output_messages(&[Message {
                    role: "assistant",
                    content: c.text.clone(),
                }]);
            totals.input_tokens += c.input_tokens;
            totals.output_tokens += c.output_tokens;
            totals.cache_read_tokens += c.cache_read_tokens;
        }
        Err(e) => {
            call.error(e);
            call.span()
                .in_scope(|| error!(retry_after_ms = e.retry_after_ms, "LLM call failed"));
        }
    }
    result
}

/// One tool call, with its arguments up front and its result recorded late.
async fn run_tool(name: &'static str, arguments: serde_json::Value, totals: &mut Totals) -> String {
    let call_id = format!("call_{:x}", random_u64() & 0xffff_ffff);
    let call = genai::tool_call(name, Some(&call_id), &arguments);
    totals.tool_calls += 1;
    async {
        tokio::time::sleep(Duration::from_millis(5 + random_u64() % 10)).await;
        let result = serde_json::json!([
            { "title": "Q3 report", "revenue_growth": 0.12 },
            { "title": "Board deck", "pages": 14 }
        ]);
        call.result(&result);
        info!(results = 2, "tool returned");
        result.to_string()
    }
    .instrument(call.span().clone())
    .await
}

/// One agent run: three steps, each an LLM call; the first step calls a tool, the
/// second decides, the last writes a report; then, for one user, feedback.
async fn agent_run(question: String, fail_first_call: bool, thumbs_up: bool) -> Totals {
    let mut totals = Totals::default();
    let mut state = StatePulse::new();
    let mut messages = vec![Message {
        role: "user",
        content: question,
    }];
    for (step, name) in [(1, "research"), (2, "analyse"), (3, "report")] {
        async {
            let mut fail = fail_first_call && step == 1;
            let completion = loop {
                match chat(&messages, step, fail, &mut totals).await {
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
                let result = run_tool(tool, args, &mut totals).await;
                messages.push(Message {
                    role: "tool",
                    content: result,
                });
            }
            match step {
                2 => genai::decision(
                    "answer from the Q3 report",
                    "the search returned the Q3 report with the growth figure; the board deck adds nothing",
                ),
                3 => genai::artifact("report", "out/revenue-summary.md"),
                _ => {}
            }
            state.pulse(&serde_json::json!({ "step": name, "messages": messages.len() }));
        }
        .instrument(genai::step(name))
        .await;
    }
    if thumbs_up {
        // The user liked the answer: feedback on the run, shown with it in the web UI.
        genai::feedback(
            Some("helpful"),
            Some(1.0),
            Some("the user accepted the report"),
        );
    }
    totals
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
    for (i, (tenant, user)) in users.into_iter().enumerate() {
        let run = genai::run("revenue question")
            .agent("research-assistant")
            .tenant(tenant)
            .user(user)
            // A user's conversation: running the example again adds a turn to it.
            .session(format!("conv-{}", user.trim_start_matches("u-")))
            .start();
        // The address is redacted by the collector before anything is stored.
        let question = format!(
            "How did revenue change last quarter? Send the answer to {}@example.com",
            user.trim_start_matches("u-")
        );
        let run_id = run.run_id().to_owned();
        // Runs proceed concurrently; each task carries its run's span, and with it the scope.
        let task = tokio::spawn(agent_run(question, i == 1, i == 0).instrument(run.span().clone()));
        tasks.push((run_id, tenant, user, task));
    }
    let mut runs = Vec::new();
    for (run_id, tenant, user, task) in tasks {
        let totals = task.await.expect("run task panicked");
        runs.push((run_id, tenant, user, totals));
    }
    let report = guard.flush();
    for (run_id, tenant, user, totals) in &runs {
        println!(
            "{run_id}  tenant={tenant} user={user}  {}",
            serde_json::to_string(totals).unwrap_or_default()
        );
    }
    if report.undelivered > 0 || report.dropped > 0 {
        eprintln!(
            "{} records delivered, {} not delivered, {} dropped: is `logbook serve` running?",
            report.delivered, report.undelivered, report.dropped
        );
    }
}
