//! The README's OTLP quick start, as written: its Python and TypeScript/JavaScript
//! programs are `examples/otlp/agent.py` and `agent.mjs`, included in the README word
//! for word (checked here), and run here with the real SDKs (the Python venv and the
//! Node.js packages `scripts/test` installs under `target/`) against a collector; their
//! runs, calls and logs show in the CLI.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Collector;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn readme_holds(file: &str) -> String {
    let text = std::fs::read_to_string(root().join(file)).unwrap();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&text),
        "README.md does not hold {file} as it is: copy it in again"
    );
    text
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_readme_python_agent_shows_in_runs_calls_and_logs() {
    readme_holds("examples/otlp/agent.py");
    let python = std::env::var_os("LOGBOOK_TEST_PYTHON")
        .map_or_else(|| root().join("target/py/bin/python"), PathBuf::from);
    assert!(python.exists(), "no {}: run scripts/test", python.display());
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let out = Command::new(python)
        .arg(root().join("examples/otlp/agent.py"))
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", c.http_addr()),
        )
        .output()
        .unwrap();
    let printed = stdout(&out);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("Failed to export"),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = stdout(&c.cli(&["run", "run-py-1"]));
    for want in [
        "run run-py-1  ok",
        "tenant=acme",
        "user=u-42",
        "session=conv-7",
        "agent researcher",
        "prompt: [user] Where is my order?",
        "response: [assistant] It ships today.",
        "INFO asked the model",
    ] {
        assert!(run.contains(want), "{want:?} missing from:\n{run}");
    }
    assert!(stdout(&c.cli(&["calls"])).contains("gpt-4o-mini"));
}

#[test]
fn the_readme_typescript_agent_shows_in_runs_and_calls() {
    let text = readme_holds("examples/otlp/agent.mjs");
    // ES modules find their packages beside them: the program runs from the
    // directory the packages are installed in.
    let js = std::env::var_os("LOGBOOK_TEST_NODE_MODULES")
        .map_or_else(|| root().join("target/js"), PathBuf::from);
    assert!(
        js.join("node_modules/@opentelemetry/sdk-trace-node")
            .exists(),
        "no OpenTelemetry JS SDK under {}: run scripts/test",
        js.display()
    );
    let script = js.join(format!("agent-{}.mjs", std::process::id()));
    std::fs::write(&script, text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let c = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let out = Command::new("node")
        .arg(&script)
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", c.http_addr()),
        )
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&script);
    stdout(&out);
    let run = stdout(&c.cli(&["run", "run-ts-1"]));
    for want in [
        "run run-ts-1  ok",
        "tenant=acme",
        "user=u-7",
        "session=conv-9",
        "agent support-bot",
        "prompt: [user] Reset my password",
        "response: [assistant] Done.",
    ] {
        assert!(run.contains(want), "{want:?} missing from:\n{run}");
    }
    let runs = stdout(&c.cli(&["runs"]));
    assert!(
        runs.contains("run-ts-1") && runs.contains("900/60"),
        "{runs}"
    );
}
