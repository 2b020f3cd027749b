//! The examples, run as a user runs them against a real collector: what each says it
//! recorded is what `logbook runs`, `logbook calls` and `logbook cost` show, with the
//! cost from the built-in prices; `logbook run` shows prompts, responses, tool
//! arguments and results, redacted; the orchestrator's three processes make one run.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use common::{run_example, services, Collector};

const AGENT: &str = env!("CARGO_BIN_EXE_logbook-e2e-example-agent");
const ORCHESTRATOR: &str = env!("CARGO_BIN_EXE_logbook-e2e-example-orchestrator");

fn json(collector: &Collector, args: &[&str]) -> serde_json::Value {
    let out = collector.cli(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_agent_examples_runs_show_their_calls_tokens_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let stdout = run_example(AGENT, &collector);
    // `RUN_ID  tenant=T user=U  {"llm_calls":…,…}` per run.
    let mut expected = Vec::new();
    for line in stdout.lines() {
        let (head, totals) = line.split_once("  {").unwrap();
        let totals: serde_json::Value = serde_json::from_str(&format!("{{{totals}")).unwrap();
        let mut words = head.split_whitespace();
        let run_id = words.next().unwrap().to_owned();
        let user = words
            .nth(1)
            .unwrap()
            .strip_prefix("user=")
            .unwrap()
            .to_owned();
        expected.push((run_id, user, totals));
    }
    assert_eq!(expected.len(), 4, "{stdout}");

    let runs = json(&collector, &["runs", "--format", "json"]);
    let mut total_cost = 0.0;
    for (run_id, user, totals) in &expected {
        let run = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["run_id"] == run_id.as_str())
            .unwrap_or_else(|| panic!("no run {run_id} in {runs:#}"));
        for key in [
            "llm_calls",
            "tool_calls",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
        ] {
            assert_eq!(run[key], totals[key], "{run_id} {key}");
        }
        assert_eq!(run["agent"], "research-assistant");
        assert_eq!(run["user_id"], user.as_str());
        assert_eq!(run["status"], "ok");
        // gpt-4o-mini: $0.15 per million uncached input tokens, $0.075 cached, $0.60 out.
        let n = |k: &str| totals[k].as_u64().unwrap() as f64;
        let cost = (n("input_tokens") - n("cache_read_tokens")) * 0.15e-6
            + n("cache_read_tokens") * 0.075e-6
            + n("output_tokens") * 0.6e-6;
        assert!(
            close(run["cost"].as_f64().unwrap(), cost),
            "{run_id}: {} != {cost}",
            run["cost"]
        );
        total_cost += cost;

        let llm = json(
            &collector,
            &[
                "calls", "--kind", "llm", "--run", run_id, "--format", "json",
            ],
        );
        let llm = llm.as_array().unwrap();
        assert_eq!(llm.len() as f64, n("llm_calls"));
        for call in llm {
            assert_eq!(call["provider"], "openai");
            assert!(call["input_messages"].is_array(), "{call:#}");
        }
        let tools = json(
            &collector,
            &[
                "calls", "--kind", "tool", "--run", run_id, "--format", "json",
            ],
        );
        assert_eq!(tools.as_array().unwrap().len() as f64, n("tool_calls"));
        assert_eq!(tools[0]["tool_name"], "search");
        assert_eq!(tools[0]["arguments"]["query"], "quarterly revenue");

        let out = collector.cli(&["run", run_id]);
        let tree = String::from_utf8(out.stdout).unwrap();
        for needle in [
            "prompt: [user] How did revenue change last quarter?",
            "response: [assistant] Revenue grew 12%",
            r#"arguments: {"limit":3,"query":"quarterly revenue"}"#,
            "result: [{",
            "[REDACTED:email]",
            "decision: answer from the Q3 report",
            "artifact: report out/revenue-summary.md",
        ] {
            assert!(tree.contains(needle), "no {needle:?} in\n{tree}");
        }
        assert!(!tree.contains("@example.com"), "{tree}");
    }
    // Pages of 5 calls, by the cursor printed after each full page, cover every call
    // once.
    let mut seen = BTreeSet::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["calls", "--limit", "5", "--format", "jsonl"];
        if let Some(c) = &before {
            args.extend(["--before", c.as_str()]);
        }
        let out = collector.cli(&args);
        let page: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for call in &page {
            assert!(seen.insert(call["seq"].as_i64().unwrap()), "{call:#}");
        }
        let stderr = String::from_utf8(out.stderr).unwrap();
        match stderr.trim().strip_prefix("next page: --before ") {
            Some(c) => before = Some(c.to_owned()),
            None => break,
        }
    }
    let total: u64 = expected
        .iter()
        .map(|(_, _, t)| t["llm_calls"].as_u64().unwrap())
        .sum();
    assert_eq!(seen.len() as u64, total);

    // The rate-limited run shows its failed call.
    let errors = json(
        &collector,
        &[
            "calls", "--kind", "llm", "--status", "error", "--format", "json",
        ],
    );
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert!(errors[0]["error"].as_str().unwrap().contains("RateLimited"));

    // Cost by user: the same figures, one row per user.
    let by_user = json(&collector, &["cost", "--by", "user", "--format", "json"]);
    let by_user = by_user.as_array().unwrap();
    assert_eq!(by_user.len(), 4);
    let sum: f64 = by_user.iter().map(|g| g["cost"].as_f64().unwrap()).sum();
    assert!(close(sum, total_cost), "{sum} != {total_cost}");
    let text = String::from_utf8(collector.cli(&["cost", "--by", "model"]).stdout).unwrap();
    assert!(text.contains("gpt-4o-mini-2024-07-18"), "{text}");
    assert!(text.contains("TOTAL"), "{text}");
}

#[test]
fn the_orchestrators_three_processes_make_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let stdout = run_example(ORCHESTRATOR, &collector);
    let run_id = stdout.lines().next().unwrap().trim();

    let runs = json(&collector, &["runs", "--format", "json"]);
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run["run_id"], run_id);
    assert_eq!(run["agent"], "orchestrator");
    assert_eq!(run["service"], "example-orchestrator");
    assert_eq!(
        (run["llm_calls"].as_u64(), run["tool_calls"].as_u64()),
        (Some(6), Some(2))
    );
    assert_eq!(
        (run["input_tokens"].as_u64(), run["output_tokens"].as_u64()),
        (Some(14_800), Some(830))
    );
    // claude-sonnet-4-5 ($3 / $15 per million) and gpt-4.1-mini ($0.40 / $1.60).
    let cost = 4_400.0 * 3e-6 + 330.0 * 15e-6 + 10_400.0 * 0.4e-6 + 500.0 * 1.6e-6;
    assert!(
        close(run["cost"].as_f64().unwrap(), cost),
        "{}",
        run["cost"]
    );

    // One trace across three services; each agent's root hangs under an invoke_agent span.
    let trace = run["trace_id"].as_str().unwrap();
    let records = collector.query(&["--trace", trace, "--limit", "1000"]);
    assert_eq!(
        services(&records),
        BTreeSet::from([
            "example-agent-flights",
            "example-agent-hotels",
            "example-orchestrator"
        ])
    );
    assert!(records.iter().all(|r| r.scope.run_id() == Some(run_id)));
    for agent in ["flights", "hotels"] {
        let root = records
            .iter()
            .find(|r| {
                r.name.as_ref() == "agent" && r.resource.service == format!("example-agent-{agent}")
            })
            .unwrap();
        let parent = records
            .iter()
            .find(|r| r.span_id == root.parent_span_id)
            .unwrap();
        assert_eq!(parent.name.as_ref(), "invoke_agent");
        assert_eq!(parent.resource.service, "example-orchestrator");
    }
    let by_model = json(
        &collector,
        &["cost", "--by", "model", "--run", run_id, "--format", "json"],
    );
    let models: BTreeSet<&str> = by_model
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        BTreeSet::from(["claude-sonnet-4-5", "gpt-4.1-mini"])
    );
}
