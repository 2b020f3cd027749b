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

/// A request received: its headers (lower-cased names) and body.
type Received = (Vec<(String, String)>, Vec<u8>);

/// A local webhook receiver: answers 200 to every request, keeps each one.
struct Receiver {
    addr: std::net::SocketAddr,
    got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start() -> Self {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&got);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let keep = std::sync::Arc::clone(&keep);
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    loop {
                        let mut headers = Vec::new();
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                            }
                        }
                        let len = headers
                            .iter()
                            .find(|(k, _)| k == "content-length")
                            .map_or(0, |(_, v)| v.parse().unwrap_or(0));
                        let mut body = vec![0; len];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        keep.lock().unwrap().push((headers, body));
                        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                    }
                });
            }
        });
        Self { addr, got }
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// HMAC-SHA256 of `body` under `key`, by Python's standard library (not ours).
fn python_hmac(key: &str, body: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import hmac, hashlib, sys; print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())",
            key,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn an_agent_stuck_in_a_loop_fires_an_alert_by_webhook_while_its_run_is_open() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[[alerts]]
name = "agent loop"
kind = "loop"
threshold = 3
webhook = "http://{}/hook"
secret = "s3cret-key"

[[alerts]]
name = "new exceptions"
kind = "exception"
"#,
        receiver.addr
    );
    let collector = Collector::start_with_config(dir.path(), &toml);
    // The secret is never in the log nor in the audited configuration.
    let app = std::thread::spawn({
        let endpoint = collector.endpoint();
        move || {
            run_app(
                &["loop", "run-stuck", "4", "8000"],
                &[("LOGBOOK_ENDPOINT", &endpoint)],
            )
        }
    });
    // While the run is still running, the alert arrives.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (headers, body) = loop {
        if let Some(r) = receiver.requests().into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "no alert arrived");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!app.is_finished(), "the alert came after the run ended");
    let payload: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(payload["version"], "4");
    assert_eq!(payload["status"], "firing");
    let alert = &payload["alerts"][0];
    assert_eq!(alert["labels"]["alertname"], "agent loop");
    assert_eq!(alert["labels"]["run_id"], "run-stuck");
    assert_eq!(alert["labels"]["tool"], "search");
    assert_eq!(
        alert["labels"]["arguments"], r#"{"page":1,"query":"refund policy"}"#,
        "the arguments compared as canonical JSON"
    );
    let signature = headers
        .iter()
        .find(|(k, _)| k == "x-logbook-signature")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(
        signature,
        format!("sha256={}", python_hmac("s3cret-key", &body))
    );
    let report = app.join().unwrap();
    assert_eq!(report.delivered, report.emitted);
    // Once the run ends the loop is over: resolved, and said so.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resolved = receiver.requests().iter().any(|(_, b)| {
            serde_json::from_slice::<Value>(b).is_ok_and(|p| p["status"] == "resolved")
        });
        if resolved {
            break;
        }
        assert!(Instant::now() < deadline, "never resolved");
        std::thread::sleep(Duration::from_millis(100));
    }
    // The history: firing and resolved, each sent once; the rules listed.
    let config = dir.path().join("logbook.toml");
    let config = config.to_str().unwrap();
    let out = cli_ok(&collector, &["alerts", "--json", "--config", config]);
    let alerts: Value = serde_json::from_str(&out).unwrap();
    let history = alerts["history"].as_array().unwrap();
    let of = |state: &str| {
        history
            .iter()
            .filter(|e| e["rule"] == "agent loop" && e["state"] == state)
            .count()
    };
    assert_eq!((of("firing"), of("resolved")), (1, 1), "{history:#?}");
    assert!(history
        .iter()
        .all(|e| e["delivery"] == "sent" || e["rule"] != "agent loop"));
    assert_eq!(alerts["rules"].as_array().unwrap().len(), 2);
    // A test alert goes the same way.
    let said = cli_ok(
        &collector,
        &["alerts", "test", "agent loop", "--config", config],
    );
    assert!(said.contains("sent"), "{said}");
    assert!(receiver
        .requests()
        .iter()
        .any(|(_, b)| String::from_utf8_lossy(b).contains("\"test\":\"true\"")));
    // A rule with no channel: a test says so and fails.
    let out = collector.cli(&["alerts", "test", "new exceptions", "--config", config]);
    assert!(!out.status.success());
    let log = collector.log_text();
    assert!(!log.contains("s3cret-key"), "{log}");
}
