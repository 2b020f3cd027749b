//! An orchestrator and two agents in three processes, one run across all of them.
//!
//! The orchestrator opens a run (`genai::run`), plans with one LLM call, then invokes
//! two agents, each a child process started inside an `invoke_agent` span. It hands
//! the trace context to each child in the `TRACEPARENT` and `BAGGAGE` environment
//! variables (OpenTelemetry's carrier for processes; an HTTP call would send the same
//! values as headers). Each agent joins the caller's trace under its `invoke_agent`
//! span and the caller's run (run id, tenant and user travel in the baggage), makes
//! its own LLM and tool calls, and reports back on stdout; the orchestrator
//! summarises with a last LLM call. Every process logs to the same collector.
//!
//! ```text
//! cargo run --release -p logbook-collector -- serve                # in one terminal
//! cargo run --release -p logbook-examples --example orchestrator   # in another
//! cargo run --release -p logbook-collector -- run <RUN_ID>         # one tree, three services
//! cargo run --release -p logbook-collector -- cost --by model --run <RUN_ID>
//! ```

use std::process::{Command, Stdio};
use std::time::Duration;

use logbook_layer::genai::{self, TraceContext};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::info;
use tracing_subscriber::prelude::*;

/// What an agent reports back to the orchestrator.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Report {
    agent: String,
    answer: String,
    llm_calls: u64,
    tool_calls: u64,
    input_tokens: u64,
    output_tokens: u64,
}

/// A fake model call: sleeps, then records the usage and the answer it was given.
fn fake_llm(
    provider: &str,
    model: &str,
    prompt: &str,
    answer: &str,
    usage: (u64, u64),
    report: &mut Report,
) {
    let call = genai::llm_call(provider, model);
    call.input_messages(&json!([{ "role": "user", "content": prompt }]));
    call.span()
        .in_scope(|| std::thread::sleep(Duration::from_millis(15)));
    call.response(&format!("resp-{}", report.llm_calls + 1), model)
        .usage(usage.0, usage.1)
        .finish_reasons(&["stop"])
        .output_messages(&json!([{ "role": "assistant", "content": answer }]));
    report.llm_calls += 1;
    report.input_tokens += usage.0;
    report.output_tokens += usage.1;
}

/// An agent process: joins the caller's trace and run, searches and answers.
fn agent(name: &str, task: &str) -> Report {
    // TRACEPARENT and BAGGAGE, as the orchestrator set them.
    let remote =
        genai::extract(|key| std::env::var(key.to_ascii_uppercase().replace('-', "_")).ok());
    let span = tracing::info_span!(
        "agent",
        traceparent = remote.traceparent(),
        baggage = remote.baggage(),
        gen_ai.agent.name = name,
    );
    let _entered = span.enter();
    let mut report = Report {
        agent: name.to_owned(),
        ..Report::default()
    };
    info!(task, "agent started");
    fake_llm(
        "openai",
        "gpt-4.1-mini",
        task,
        "Search first.",
        (2_300, 90),
        &mut report,
    );
    let (tool, args, result) = match name {
        "flights" => (
            "search_flights",
            json!({ "from": "LIS", "to": "BER", "date": "2026-12-04" }),
            json!([{ "flight": "TP542", "departs": "07:05", "price_eur": 142 }]),
        ),
        _ => (
            "search_hotels",
            json!({ "city": "Berlin", "nights": 3 }),
            json!([{ "hotel": "Hotel Adlon", "price_eur": 310 }]),
        ),
    };
    let call = genai::tool_call(tool, Some(&format!("call-{name}")), &args);
    call.span()
        .in_scope(|| std::thread::sleep(Duration::from_millis(10)));
    call.result(&result);
    drop(call);
    report.tool_calls += 1;
    let answer = format!("{name}: {result}");
    fake_llm(
        "openai",
        "gpt-4.1-mini",
        &format!("{task}; found {result}"),
        &answer,
        (2_900, 160),
        &mut report,
    );
    report.answer = answer;
    report
}

/// The orchestrator: plans, runs both agents at once, summarises.
fn orchestrator() -> (String, Vec<Report>) {
    let run = genai::run("trip planning")
        .agent("orchestrator")
        .tenant("acme")
        .user("u-erin")
        .start();
    let _entered = run.span().enter();
    let mut own = Report {
        agent: "orchestrator".into(),
        ..Report::default()
    };
    fake_llm(
        "anthropic",
        "claude-sonnet-4-5",
        "Plan a trip from Lisbon to Berlin on 4 December",
        "Ask the flights agent and the hotels agent.",
        (1_800, 120),
        &mut own,
    );
    let tasks = [
        ("flights", "find a flight Lisbon → Berlin on 4 December"),
        ("hotels", "find a hotel in Berlin for 3 nights"),
    ];
    let exe = std::env::current_exe().expect("own path");
    let children: Vec<_> = tasks
        .iter()
        .map(|(name, task)| {
            let span = genai::agent(name);
            let mut cmd = Command::new(&exe);
            cmd.args(["agent", name, task]).stdout(Stdio::piped());
            // TRACEPARENT and BAGGAGE: the child continues under this span.
            if let Some(ctx) = TraceContext::of(&span) {
                ctx.inject(|key, value| {
                    cmd.env(key.to_ascii_uppercase(), value);
                });
            }
            let child = cmd.spawn().expect("starting an agent");
            (span, child)
        })
        .collect();
    let mut reports = Vec::new();
    for (span, child) in children {
        let out = span.in_scope(|| child.wait_with_output().expect("agent output"));
        let report: Report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("agent said {:?}: {e}", String::from_utf8_lossy(&out.stdout))
        });
        reports.push(report);
    }
    let answers: Vec<&str> = reports.iter().map(|r| r.answer.as_str()).collect();
    fake_llm(
        "anthropic",
        "claude-sonnet-4-5",
        &format!("Summarise: {}", answers.join(" | ")),
        "TP542 on 4 December at 07:05, three nights at the Adlon.",
        (2_600, 210),
        &mut own,
    );
    genai::artifact("itinerary", "out/itinerary.md");
    reports.push(own);
    (run.run_id().to_owned(), reports)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let service = match args.first().map(String::as_str) {
        Some("agent") => format!("example-agent-{}", args.get(1).map_or("?", |s| s)),
        _ => "example-orchestrator".to_owned(),
    };
    let logbook = logbook_layer::builder().with_service(service).build();
    let guard = logbook.flush_guard();
    tracing_subscriber::registry().with(logbook).init();
    if args.first().map(String::as_str) == Some("agent") {
        let name = args.get(1).expect("agent NAME TASK");
        let task = args.get(2).expect("agent NAME TASK");
        let report = agent(name, task);
        drop(guard);
        println!("{}", serde_json::to_string(&report).expect("report"));
        return;
    }
    let (run_id, reports) = orchestrator();
    let report = guard.flush();
    println!("{run_id}");
    for r in &reports {
        println!(
            "  {:<13} {} LLM calls, {} tool calls, {} input and {} output tokens",
            r.agent, r.llm_calls, r.tool_calls, r.input_tokens, r.output_tokens
        );
    }
    if report.undelivered > 0 || report.dropped > 0 {
        eprintln!(
            "{} records not delivered, {} dropped: is `logbook serve` running?",
            report.undelivered, report.dropped
        );
    }
}
