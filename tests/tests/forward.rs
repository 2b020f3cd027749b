//! Forwarding: one logbook sends what it stores to another as OTLP/HTTP, and every
//! record arrives there once, also across restarts of either side.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{run_app, run_example, Collector};
use logbook_proto::{Kind, Value};

const AGENT: &str = env!("CARGO_BIN_EXE_logbook-e2e-example-agent");

/// A free TCP port on 127.0.0.1, so that a restarted receiver listens where it did.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sender's records that are forwarded (all but span starts and the collector's
/// own), by id.
fn forwarded(sender: &Collector) -> BTreeSet<String> {
    sender
        .query(&["--limit", "100000"])
        .into_iter()
        .filter(|r| {
            r.kind != Kind::SpanStart
                && r.origin.as_ref().is_none_or(|o| o.transport != "collector")
        })
        .map(|r| r.id.to_string())
        .collect()
}

/// The receiver's records that came from the sender, counted by the sender's id.
fn received(receiver: &Collector) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for r in receiver.query(&["--limit", "100000"]) {
        if let Some(Value::Str(id)) = r.fields.get("logbook.id") {
            *seen.entry(id.clone()).or_insert(0) += 1;
        }
    }
    seen
}

/// Waits until the receiver holds every forwarded record of the sender; then checks
/// each is there exactly once.
fn wait_for_all(sender: &Collector, receiver: &Collector) -> usize {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let want = forwarded(sender);
        let got = received(receiver);
        let have: BTreeSet<String> = got.keys().cloned().collect();
        if want.is_subset(&have) {
            assert_eq!(have, want, "nothing arrives that the sender does not hold");
            let twice: Vec<_> = got.iter().filter(|(_, n)| **n > 1).collect();
            assert!(twice.is_empty(), "stored more than once: {twice:?}");
            return want.len();
        }
        if Instant::now() >= deadline {
            let missing: Vec<_> = want.difference(&have).take(5).collect();
            let shown: Vec<String> = sender
                .query(&["--limit", "100000"])
                .into_iter()
                .filter(|r| missing.contains(&&r.id.to_string()))
                .map(|r| format!("{r:?}"))
                .collect();
            panic!(
                "{} of {} forwarded records arrived; missing {shown:?}; sender log: {}",
                want.intersection(&have).count(),
                want.len(),
                sender.log_text()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn sender(dir: &Path, receiver_port: u16) -> Collector {
    Collector::start_with_config(
        dir,
        &format!(
            "[[forward]]\nname = \"central\"\nendpoint = \"http://127.0.0.1:{receiver_port}\"\nheaders = {{ \"x-api-key\" = \"forward-secret-91\" }}\nbatch = 200\n"
        ),
    )
}

fn stats(c: &Collector) -> serde_json::Value {
    let out = c.cli(&["stats", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn forwarding_to_another_logbook_loses_nothing_across_restarts() {
    let rdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut receiver =
        Collector::start_with(rdir.path(), &["--http", &format!("127.0.0.1:{port}")]);
    let mut sender = sender(sdir.path(), port);

    // The example agent's runs, and a burst of events.
    run_example(AGENT, &sender);
    let report = run_app(
        &["burst", "500"],
        &[("LOGBOOK_ENDPOINT", &sender.endpoint())],
    );
    assert_eq!(report.delivered, report.emitted);
    let first = wait_for_all(&sender, &receiver);
    assert!(first > 500, "{first}");

    // Spans arrive as spans: the agent's runs are runs at the receiver, with their
    // calls.
    let runs = receiver.cli(&["runs", "--format", "json"]);
    assert!(runs.status.success());
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    let sent_runs: serde_json::Value =
        serde_json::from_slice(&sender.cli(&["runs", "--format", "json"]).stdout).unwrap();
    let agent_runs = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|r| r["kind"] == "run")
            .map(|r| format!("{} {} {}", r["run_id"], r["status"], r["llm_calls"]))
            .collect()
    };
    assert!(!agent_runs(&sent_runs).is_empty());
    assert_eq!(agent_runs(&runs), agent_runs(&sent_runs));

    // The receiver goes away; the sender keeps storing and falls behind.
    assert!(receiver.stop().success());
    run_app(
        &["burst", "300"],
        &[("LOGBOOK_ENDPOINT", &sender.endpoint())],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = stats(&sender);
        let f = &s["forwards"][0];
        if f["failures"].as_u64().unwrap() > 0 && f["behind"].as_u64().unwrap() > 0 {
            assert!(
                f["last_error"].as_str().unwrap().contains("127.0.0.1"),
                "{f}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failure counted: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // It comes back: what the sender stored meanwhile arrives.
    receiver.restart();
    wait_for_all(&sender, &receiver);

    // The sender stops and starts again: it resumes where it was, sending nothing
    // twice that it had kept as sent …
    assert!(sender.stop().success());
    sender.restart();
    run_app(
        &["burst", "200"],
        &[("LOGBOOK_ENDPOINT", &sender.endpoint())],
    );
    wait_for_all(&sender, &receiver);
    // … and after a crash, what it sends again is stored once.
    sender.kill();
    sender.restart();
    run_app(
        &["burst", "100"],
        &[("LOGBOOK_ENDPOINT", &sender.endpoint())],
    );
    let total = wait_for_all(&sender, &receiver);

    // Its progress and lag, in stats and /metrics.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = stats(&sender);
        let f = &s["forwards"][0];
        if f["behind"] == 0 && f["last_error"].is_null() {
            assert_eq!(f["name"], "central");
            assert!(f["sent"].as_u64().unwrap() >= total as u64, "{f}");
            break;
        }
        assert!(Instant::now() < deadline, "still behind: {s}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The header's value never reaches the trail or the log.
    let trail = sender.cli(&["query", "--category", "audit", "--format", "jsonl"]);
    let trail = String::from_utf8_lossy(&trail.stdout);
    assert!(trail.contains("x-api-key"), "the header's name is recorded");
    assert!(!trail.contains("forward-secret-91"));
    assert!(!sender.log_text().contains("forward-secret-91"));
}

#[test]
fn forwarding_filters_and_is_seen_in_metrics() {
    let rdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let port = free_port();
    let receiver = Collector::start_with(rdir.path(), &["--http", &format!("127.0.0.1:{port}")]);
    let sender = Collector::start_with_config(
        sdir.path(),
        &format!(
            "[[forward]]\nname = \"spans\"\nendpoint = \"http://127.0.0.1:{port}\"\nfilter = \"kind=span_end\"\n"
        ),
    );
    let sender_http = {
        // The metrics of a sender with HTTP on.
        drop(sender);
        Collector::start_with(
            sdir.path(),
            &[
                "--config",
                sdir.path().join("logbook.toml").to_str().unwrap(),
                "--http",
                "127.0.0.1:0",
            ],
        )
    };
    run_example(AGENT, &sender_http);
    let want: BTreeSet<String> = sender_http
        .query(&["--kind", "span_end", "--limit", "100000"])
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert!(!want.is_empty());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = received(&receiver).into_keys().collect();
        if got == want {
            break;
        }
        assert!(got.is_subset(&want), "only spans are forwarded");
        assert!(Instant::now() < deadline, "{} of {}", got.len(), want.len());
        std::thread::sleep(Duration::from_millis(300));
    }
    let metrics = common::http_get(sender_http.http_addr(), "/metrics", None).text();
    let sent = metrics
        .lines()
        .find(|l| l.starts_with("logbook_forward_sent_records{destination=\"spans\"}"))
        .unwrap_or_else(|| panic!("{metrics}"));
    let n: u64 = sent.split_whitespace().last().unwrap().parse().unwrap();
    assert_eq!(n as usize, want.len());
}

#[test]
fn bad_forward_configuration_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, says) in [
        ("[[forward]]\nname = \"x\"\nendpoint = \"otel:4318\"\n", "invalid endpoint"),
        (
            "[[forward]]\nname = \"x\"\nendpoint = \"http://h:4318\"\nfilter = \"level=loud\"\n",
            "filter",
        ),
        (
            "[[forward]]\nname = \"x\"\nendpoint = \"http://h:1\"\n[[forward]]\nname = \"x\"\nendpoint = \"http://h:2\"\n",
            "two [[forward]] destinations",
        ),
        ("[[forward]]\nname = \"x\"\nendpoint = \"http://h:1\"\nbatch = 0\n", "batch"),
        ("[[forward]]\nendpoint = \"http://h:1\"\n", "name"),
    ] {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, toml).unwrap();
        let out = common::cli(&[
            "--config",
            config.to_str().unwrap(),
            "serve",
            "--socket",
            dir.path().join("s.sock").to_str().unwrap(),
            "--db",
            dir.path().join("x.db").to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{toml}: {err}");
    }
}
