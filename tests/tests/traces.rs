//! Every trace is a unit of work: a plain tokio service that sets no run id (an
//! `#[instrument]`ed key-value server driven through its own client) lists one run per
//! connection handler's root span, and `logbook run` draws each tree, by trace id.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{parse_report, program, wait_timeout, Collector};

const KV: &str = env!("CARGO_BIN_EXE_logbook-e2e-kv");

#[test]
fn a_service_without_run_ids_lists_one_run_per_root_span() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let mut kv = program(KV, &["4"], &[("LOGBOOK_ENDPOINT", &collector.endpoint())])
        .spawn()
        .unwrap();
    let status = wait_timeout(&mut kv, Duration::from_secs(60));
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(kv.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&stdout));
    let report = parse_report(&stdout);
    assert_eq!((report.dropped, report.undelivered), (0, 0), "{report:?}");

    let out = collector.cli(&["runs", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.len(), 4, "one run per connection: {runs:#?}");
    for (i, r) in runs.iter().enumerate() {
        assert_eq!(r["kind"], "trace", "{r}");
        assert_eq!(r["root_name"], "handle", "{r}");
        // The handler logged the refused command's error: its span, and its run, failed.
        assert_eq!(r["status"], if i == 0 { "error" } else { "ok" }, "{r}");
        assert_eq!(r["service"], "logbook-e2e-kv", "{r}");
        assert_eq!(r["run_id"], r["trace_id"], "keyed by its trace: {r}");
    }
    let spans: Vec<u64> = runs.iter().map(|r| r["spans"].as_u64().unwrap()).collect();
    let errors: Vec<u64> = runs.iter().map(|r| r["errors"].as_u64().unwrap()).collect();
    // Newest first: the last connection applied three commands, one refused.
    assert_eq!(spans, [4, 3, 3, 3], "handle + one apply per command");
    assert!(
        errors[0] >= 1 && errors[1..].iter().all(|e| *e == 0),
        "{errors:?}"
    );

    // `logbook run TRACE_ID` draws each tree: the handler, its commands, their events.
    for r in &runs {
        let trace = r["trace_id"].as_str().unwrap();
        let out = collector.cli(&["run", trace]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let status = r["status"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("trace {trace}  {status}")),
            "{text}"
        );
        let tree: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("handle"))
            .collect();
        assert!(tree[0].starts_with(&format!("handle  {status}")), "{text}");
        assert!(tree.iter().any(|l| l.contains("├─ apply  ok")), "{text}");
        assert!(tree.iter().any(|l| l.contains("INFO stored")), "{text}");
    }
    let failing = collector.cli(&["run", runs[0]["trace_id"].as_str().unwrap()]);
    let text = String::from_utf8(failing.stdout).unwrap();
    assert!(text.contains("├─ apply  error"), "{text}");
    assert!(text.contains("WARN refused a command"), "{text}");

    // A trace id that no run has, and a word that is neither.
    let out = collector.cli(&["run", &"ab".repeat(16)]);
    assert_eq!(out.status.code(), Some(1));
    let out = collector.cli(&["runs", "--kind", "run"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().lines().count(),
        1,
        "the header only"
    );
}
