//! Monitoring end to end. Exceptions grouped: a real `logbook serve`, the test application's Rust
//! errors (a `dyn Error` field, a source chain) and panics over the Unix socket, the
//! Python OpenTelemetry SDK's recorded exceptions (stack traces) and `log.exception`
//! lines over OTLP/HTTP; `logbook errors` lists them grouped; resolve in a version,
//! an old version failing again, the new one regressing; ignore and notes through the
//! API; every change in the audit trail; counts unchanged across a restart. Span
//! metrics: the example agent's spans in `logbook metrics`, the API, `/metrics` and
//! the Performance page.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{app_command, http_get, run_app, run_example, Collector};
use serde_json::Value;

const AGENT: &str = env!("CARGO_BIN_EXE_logbook-e2e-example-agent");

/// `logbook errors --all --json` of `collector`'s store.
fn groups(collector: &Collector) -> Vec<Value> {
    let out = collector.cli(&["errors", "--all", "--json", "--sort", "count"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

/// The groups once `done` holds of them (the monitor runs beside ingest).
fn groups_when(collector: &Collector, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let g = groups(collector);
        if done(&g) {
            return g;
        }
        assert!(Instant::now() < deadline, "groups never settled: {g:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn of_type<'a>(groups: &'a [Value], kind: &str) -> Option<&'a Value> {
    groups.iter().find(|g| g["type"] == kind)
}

fn count(groups: &[Value], kind: &str) -> u64 {
    of_type(groups, kind).map_or(0, |g| g["count"].as_u64().unwrap())
}

fn python_errors(collector: &Collector, version: &str, n: u32) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/otel_errors.py");
    let out = Command::new(common::python())
        .arg(script)
        .args([version, &n.to_string()])
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{}", collector.http_addr()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cli_ok(collector: &Collector, args: &[&str]) -> String {
    let out = collector.cli(args);
    assert!(
        out.status.success(),
        "logbook {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn errors_from_rust_and_python_are_grouped_resolved_and_regress() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    let endpoint = collector.endpoint();

    // Rust: 5 lookups of different orders failing, 5 profile fetches failing with an
    // I/O time-out as their cause; two panics in two runs.
    let report = run_app(
        &["errors", "run-errors", "5"],
        &[("LOGBOOK_ENDPOINT", &endpoint)],
    );
    assert_eq!(report.delivered, report.emitted);
    for run in ["run-panic-1", "run-panic-2"] {
        let out = app_command(&["panic", run], &[("LOGBOOK_ENDPOINT", &endpoint)])
            .output()
            .unwrap();
        assert!(!out.status.success());
    }
    // Python: 4 declined cards (one stack, four messages), 4 logged KeyErrors.
    python_errors(&collector, "2.0.0", 4);

    let g = groups_when(&collector, |g| {
        count(g, "NotFound") == 5
            && count(g, "Fetch") == 5
            && count(g, "panic") == 2
            && count(g, "ValueError") == 4
            && count(g, "KeyError") == 4
    });
    assert_eq!(
        g.len(),
        5,
        "one group each, the ids and numbers aside: {g:#?}"
    );
    let not_found = of_type(&g, "NotFound").unwrap();
    assert_eq!(not_found["basis"], "callsite");
    assert_eq!(not_found["message"], "order 1000 not found");
    assert_eq!(not_found["services"][0], "logbook-e2e-app");
    assert_eq!(not_found["users"], 1);
    assert_eq!(not_found["last_run"], "run-errors");
    let value_error = of_type(&g, "ValueError").unwrap();
    assert_eq!(value_error["basis"], "stack", "{value_error:#?}");
    assert_eq!(value_error["culprit"], "otel_errors::charge");
    assert_eq!(value_error["versions"][0], "2.0.0");
    assert_eq!(value_error["users"], 3);
    assert!(of_type(&g, "panic").unwrap()["culprit"]
        .as_str()
        .unwrap()
        .ends_with("e2e_app.rs"));

    // The list a person reads: unresolved first, one line a group.
    let table = cli_ok(&collector, &["errors"]);
    assert!(table.contains("NotFound: order 1000 not found"), "{table}");
    assert!(table.contains("ValueError: card 4000 declined"), "{table}");
    let show = cli_ok(
        &collector,
        &[
            "errors",
            "show",
            value_error["fingerprint"].as_str().unwrap(),
        ],
    );
    assert!(show.contains("otel_errors::charge"), "{show}");
    assert!(show.contains("py-shop"), "{show}");

    // Resolved in 2.1.0: 2.0.0 failing again keeps it resolved; 2.1.0 regresses it.
    let fp = value_error["fingerprint"].as_str().unwrap().to_owned();
    let short = &fp[2..12];
    let said = cli_ok(
        &collector,
        &["errors", "resolve", short, "--in-version", "2.1.0"],
    );
    assert!(said.contains("resolved in version 2.1.0"), "{said}");
    python_errors(&collector, "2.0.0", 1);
    let g = groups_when(&collector, |g| count(g, "ValueError") == 5);
    assert_eq!(of_type(&g, "ValueError").unwrap()["state"], "resolved");
    python_errors(&collector, "2.1.0", 1);
    let g = groups_when(&collector, |g| count(g, "ValueError") == 6);
    assert_eq!(of_type(&g, "ValueError").unwrap()["state"], "regressed");
    let listed = cli_ok(&collector, &["errors", "--state", "regressed"]);
    assert!(listed.contains("ValueError"), "{listed}");
    assert!(!listed.contains("NotFound"), "{listed}");

    // Through the API with an admin token: ignore for 2 more, a note; a viewer may
    // read but not change; bad input is a 400.
    let token = |role: &str| {
        let out = cli_ok(
            &collector,
            &["token", "create", "--role", role, "--name", role],
        );
        out.split_whitespace()
            .find(|w| w.starts_with("lbk_"))
            .unwrap()
            .to_owned()
    };
    let (admin, viewer) = (token("admin"), token("viewer"));
    // The collector reads the token table again after a second.
    std::thread::sleep(Duration::from_millis(1200));
    let nf = not_found["fingerprint"].as_str().unwrap().to_owned();
    let api = |token: &str, body: &str| {
        let out = Command::new("curl")
            .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .args(["-H", "content-type: application/json", "-d", body])
            .arg(format!(
                "http://{}/api/v1/errors/{nf}",
                collector.http_addr()
            ))
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, status) = text.rsplit_once('\n').unwrap();
        (status.to_owned(), body.to_owned())
    };
    let (status, body) = api(&admin, r#"{"action": "ignore", "more": 2}"#);
    assert_eq!(status, "200", "{body}");
    assert!(body.contains("\"state\":\"ignored\""), "{body}");
    let (status, _) = api(
        &admin,
        r#"{"action": "note", "text": "cache warms slowly"}"#,
    );
    assert_eq!(status, "200");
    let (status, body) = api(&viewer, r#"{"action": "reopen"}"#);
    assert_eq!(status, "403", "{body}");
    let (status, body) = api(&admin, r#"{"action": "resolve", "more": 3}"#);
    assert_eq!(status, "400", "{body}");
    assert!(body.contains("more does not go with action"), "{body}");
    // Two more lookups failing: back to unresolved.
    run_app(
        &["errors", "run-errors-2", "1"],
        &[("LOGBOOK_ENDPOINT", &endpoint)],
    );
    let g = groups_when(&collector, |g| count(g, "NotFound") == 6);
    assert_eq!(of_type(&g, "NotFound").unwrap()["state"], "ignored");
    run_app(
        &["errors", "run-errors-3", "1"],
        &[("LOGBOOK_ENDPOINT", &endpoint)],
    );
    let g = groups_when(&collector, |g| count(g, "NotFound") == 7);
    assert_eq!(of_type(&g, "NotFound").unwrap()["state"], "unresolved");
    let show = cli_ok(&collector, &["errors", "show", &nf]);
    assert!(show.contains("cache warms slowly"), "{show}");

    // Each change is audited, and the chain verifies.
    let audit = cli_ok(
        &collector,
        &[
            "query",
            "--category",
            "audit",
            "--text",
            "exception",
            "--format",
            "jsonl",
            "--limit",
            "100",
        ],
    );
    assert!(audit.lines().count() >= 3, "{audit}");
    assert!(audit.contains("resolve in version 2.1.0 by cli"), "{audit}");
    cli_ok(&collector, &["verify"]);

    // A restart counts nothing twice.
    let before = groups(&collector);
    collector.stop();
    collector.restart();
    std::thread::sleep(Duration::from_secs(2));
    let after = groups(&collector);
    let counts = |g: &[Value]| {
        g.iter()
            .map(|g| (g["fingerprint"].clone(), g["count"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&before), counts(&after));
}

#[test]
fn groups_catch_up_without_a_running_collector() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    run_app(
        &["errors", "run-offline", "3"],
        &[("LOGBOOK_ENDPOINT", &collector.endpoint())],
    );
    collector.stop();
    // Whatever the collector's monitor had done, the CLI brings the groups up to date.
    let g = groups(&collector);
    assert_eq!(count(&g, "NotFound"), 3, "{g:#?}");
    assert_eq!(count(&g, "Fetch"), 3, "{g:#?}");
    let out = collector.cli(&["errors", "show", "ffffffffff"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no exception group"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn the_example_agents_spans_are_measured() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start_with(dir.path(), &["--http", "127.0.0.1:0"]);
    run_example(AGENT, &collector);
    run_example(AGENT, &collector);
    let metrics = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["metrics", "--json", "--since", "1h"];
        all.extend_from_slice(args);
        serde_json::from_str(&cli_ok(&collector, &all)).unwrap()
    };
    // The monitor runs beside ingest: wait for the agent's LLM calls.
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans = loop {
        let spans = metrics(&[]);
        if spans
            .iter()
            .any(|s| s["name"] == "chat" && s["count"].as_u64() >= Some(10))
        {
            break spans;
        }
        assert!(Instant::now() < deadline, "{spans:#?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let chat = spans.iter().find(|s| s["name"] == "chat").unwrap();
    assert_eq!(chat["service"], "example-agent");
    let (p50, p99) = (
        chat["p50_ns"].as_u64().unwrap(),
        chat["p99_ns"].as_u64().unwrap(),
    );
    assert!(p50 > 1_000_000 && p50 <= p99, "{chat}");
    assert!(
        chat["errors"].as_u64().unwrap() >= 1,
        "the agent's rate-limited call: {chat}"
    );
    let by_model = metrics(&["--by-model", "--name", "chat"]);
    assert!(by_model.iter().all(|s| s["name"] == "chat"));
    assert!(
        by_model
            .iter()
            .any(|s| s["model"].as_str().is_some_and(|m| m.starts_with("gpt-4o"))),
        "{by_model:#?}"
    );
    // The table a person reads.
    let table = cli_ok(&collector, &["metrics", "--since", "1h"]);
    assert!(table.lines().next().unwrap().contains("P95"), "{table}");
    assert!(table.contains("execute_tool"), "{table}");
    let volume = cli_ok(&collector, &["metrics", "--volume", "--since", "1h"]);
    assert!(volume.contains("INFO"), "{volume}");

    // The API, /metrics and the Performance page.
    let addr = collector.http_addr();
    let api = http_get(addr, "/api/v1/metrics?since=1h&by_model=true", None);
    assert_eq!(api.status, 200);
    let report = api.json();
    assert!(report["spans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "chat"));
    assert!(!report["series"].as_array().unwrap().is_empty());
    assert!(!report["volume"].as_array().unwrap().is_empty());
    let bad = http_get(addr, "/api/v1/metrics?since=soon", None);
    assert_eq!(bad.status, 400, "{}", bad.text());
    let prom = http_get(addr, "/metrics", None).text();
    assert!(
        prom.contains("logbook_span_count_5m{service=\"example-agent\",span=\"chat\"}"),
        "{prom}"
    );
    assert!(prom.contains("logbook_span_duration_seconds_5m{"), "{prom}");
    let page = http_get(addr, "/performance?since=1h", None);
    assert_eq!(page.status, 200);
    assert!(page.text().contains("execute_tool"));
    let charts = http_get(addr, "/charts/spans?since=1h", None);
    assert_eq!(charts.status, 200, "{}", charts.text());
    assert_eq!(charts.json().as_array().unwrap().len(), 3);
}
