//! A Python agent using only the OpenTelemetry SDK from PyPI (`tests/python/
//! otel_agent.py`, in the venv `scripts/test` makes under `target/py`), pointed at the
//! collector with the standard exporter settings: its traces are runs, its LLM and
//! tool calls are calls with tokens and cost, its `logging` lines are records inside
//! the spans they were logged in.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Collector;

/// Runs the agent for `runs` runs against `endpoint` with `env`; returns its trace ids.
fn run_agent(endpoint: &str, runs: u32, env: &[(&str, &str)]) -> Vec<String> {
    run_agent_with(endpoint, &[&runs.to_string()], env)
}

/// Runs the agent with `args`.
fn run_agent_with(endpoint: &str, args: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/otel_agent.py");
    let out = Command::new(common::python())
        .arg(script)
        .args(args)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("Failed to export"),
        "the exporter reported a failure: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_python_agent_with_the_opentelemetry_sdk_reads_like_a_rust_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("logbook.toml");
    std::fs::write(&config, "token = \"py-token\"\n").unwrap();
    let collector = Collector::start_with(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--http",
            "127.0.0.1:0",
        ],
    );
    let endpoint = format!("http://{}", collector.http_addr());
    // Protobuf (the Python exporter's only encoding), gzip, a token in the header.
    let traces = run_agent(
        &endpoint,
        2,
        &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20py-token",
            ),
        ],
    );
    assert_eq!(traces.len(), 2, "{traces:?}");

    // Runs: one per trace, named by the agent, with its calls, tokens and cost.
    let runs = stdout(&collector.cli(&["runs"]));
    for t in &traces {
        let line = runs
            .lines()
            .find(|l| l.starts_with(t.as_str()))
            .unwrap_or_else(|| panic!("no run {t}: {runs}"));
        assert!(line.contains("py-agent"), "{line}");
        assert!(line.contains("py-researcher"), "{line}");
        assert!(line.contains("1200/80"), "{line}");
        assert!(line.contains("$0.00023"), "{line}");
    }
    // The run: scope from attributes, the tree, prompt and response from the GenAI
    // messages, the tool's exception and the `logging` lines inside their spans.
    let run = stdout(&collector.cli(&["run", &traces[1]]));
    for want in [
        "tenant=acme",
        "env=test",
        "user=user-1",
        "session=conv-1",
        "LLM calls 1  tool calls 1",
        "├─ chat gpt-4o-mini  ok",
        "prompt: [user] question 1",
        "response: [assistant] an answer",
        "INFO asked the model",
        "└─ execute_tool search  error",
        "ERROR search backend timed out",
        "WARN tool failed, answering without it",
    ] {
        assert!(run.contains(want), "{want:?} missing from:\n{run}");
    }
    assert!(
        !run.contains("service.instance.id"),
        "the SDK's instance id is not a field:\n{run}"
    );
    // Calls and cost, as for the layer's records.
    let calls = stdout(&collector.cli(&["calls"]));
    assert_eq!(
        calls
            .lines()
            .filter(|l| l.contains("gpt-4o-mini-2024-07-18"))
            .count(),
        2,
        "{calls}"
    );
    let cost = stdout(&collector.cli(&["cost", "--by", "user"]));
    assert!(cost.contains("user-0") && cost.contains("user-1"), "{cost}");
    assert!(cost.contains("$0.00046"), "{cost}");
    // Source locations of the `logging` lines.
    let logs = collector.query(&["--name", "log", "--level", "warn"]);
    assert_eq!(logs.len(), 1);
    assert!(logs[0]
        .file
        .as_deref()
        .is_some_and(|f| f.ends_with("otel_agent.py")));

    // Without the token, the exporter is refused and says so.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/otel_agent.py");
    let out = Command::new(common::python())
        .arg(script)
        .arg("1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
}

#[test]
fn prompts_and_responses_land_on_the_call_in_every_form_instrumentors_send() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let endpoint = format!("http://{}", collector.http_addr());
    run_agent_with(&endpoint, &["0", "forms"], &[]);
    let out = stdout(&collector.cli(&["calls", "--format", "json"]));
    let calls: serde_json::Value = serde_json::from_str(&out).unwrap();
    let calls = calls.as_array().unwrap();
    for (model, question, answer) in [
        ("claude-3-5-sonnet", "oi question", "oi answer"),
        ("mistral-large", "plain question", "plain answer"),
        ("gpt-3.5-turbo", "legacy question", "legacy answer"),
        ("gpt-4o", "event question", "event answer"),
    ] {
        let call = calls
            .iter()
            .find(|c| c["model"] == model)
            .unwrap_or_else(|| panic!("no call of {model}: {out}"));
        assert!(
            call["input_messages"].to_string().contains(question),
            "{call}"
        );
        assert!(
            call["output_messages"].to_string().contains(answer),
            "{call}"
        );
    }
    let legacy = calls
        .iter()
        .find(|c| c["model"] == "gpt-3.5-turbo")
        .unwrap();
    assert_eq!(
        (
            legacy["input_tokens"].as_u64(),
            legacy["output_tokens"].as_u64()
        ),
        (Some(7), Some(3))
    );
}
