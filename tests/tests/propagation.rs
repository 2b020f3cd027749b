//! Correlation across processes: an agent process calls a tool server process over
//! HTTP on a Unix socket, passing `traceparent` and `baggage`. Both log to one real
//! collector; the records show one trace, one run, and the server's span under the
//! agent's tool call span.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{app_command, parse_report, services, wait_timeout, Collector};
use logbook_proto::Kind;

#[test]
fn a_tool_call_to_another_process_joins_the_trace_and_run_under_the_right_span() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let endpoint = collector.endpoint();
    let tool_socket = dir.path().join("tools.sock");
    let tool_socket = tool_socket.to_str().unwrap();

    let mut server = app_command(
        &["tool-server", tool_socket],
        &[
            ("LOGBOOK_ENDPOINT", &endpoint),
            ("LOGBOOK_SERVICE", "tool-server"),
        ],
    )
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::path::Path::new(tool_socket).exists() {
        assert!(Instant::now() < deadline, "the tool server did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let agent = app_command(
        &["agent", tool_socket],
        &[
            ("LOGBOOK_ENDPOINT", &endpoint),
            ("LOGBOOK_SERVICE", "agent"),
        ],
    )
    .output()
    .unwrap();
    assert!(
        agent.status.success(),
        "agent failed: {}",
        String::from_utf8_lossy(&agent.stderr)
    );
    let status = wait_timeout(&mut server, Duration::from_secs(30));
    assert!(status.success());
    let mut server_out = Vec::new();
    std::io::Read::read_to_end(server.stdout.as_mut().unwrap(), &mut server_out).unwrap();
    for (who, out) in [("agent", &agent.stdout), ("server", &server_out)] {
        let report = parse_report(out);
        assert_eq!(
            (report.delivered, report.dropped, report.undelivered),
            (report.emitted, 0, 0),
            "{who}: {report:?}"
        );
    }
    let text = String::from_utf8_lossy(&agent.stdout);
    let ids: serde_json::Value = serde_json::from_str(
        text.lines()
            .find_map(|l| l.strip_prefix("agent "))
            .expect("the agent's ids"),
    )
    .unwrap();
    let (run_id, trace_id, tool_span) = (
        ids["run_id"].as_str().unwrap(),
        ids["trace_id"].as_str().unwrap(),
        ids["tool_span_id"].as_str().unwrap(),
    );

    // Every record of both processes: one trace, one run.
    let records = collector.query(&["--trace", trace_id, "--limit", "100"]);
    assert_eq!(
        services(&records),
        BTreeSet::from(["agent", "tool-server"]),
        "{records:#?}"
    );
    assert_eq!(records.len(), 4 + 5);
    for r in &records {
        assert_eq!(r.scope.run_id(), Some(run_id), "{r:?}");
        assert_eq!(r.trace_id.to_hex(), trace_id);
    }
    // The server's request span hangs under the agent's tool call span, and does not
    // start a run of its own; its child and event hang under it.
    let request = records
        .iter()
        .find(|r| r.name.as_ref() == "POST /tools/search" && r.kind == Kind::SpanStart)
        .unwrap();
    assert_eq!(
        request.parent_span_id.map(|p| p.to_hex()).as_deref(),
        Some(tool_span)
    );
    assert_ne!(request.category.as_deref(), Some("run"));
    // Tenant and user came along in the baggage.
    assert_eq!(
        request.scope.get(logbook_proto::ScopeKey::Tenant),
        Some("acme")
    );
    assert_eq!(
        request.scope.get(logbook_proto::ScopeKey::UserId),
        Some("u-9")
    );
    let index = records
        .iter()
        .find(|r| r.name.as_ref() == "search.index" && r.kind == Kind::SpanEnd)
        .unwrap();
    assert_eq!(index.parent_span_id, request.span_id);

    // One run in the runs view, rooted in the agent, with its tool call.
    let out = collector.cli(&["runs", "--format", "json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["run_id"], run_id);
    assert_eq!(runs[0]["root_name"], "run");
    assert_eq!(runs[0]["service"], "agent");
    assert_eq!(runs[0]["agent"], "e2e-agent");
    assert_eq!(runs[0]["tool_calls"], 1);
    assert_eq!(runs[0]["trace_id"], trace_id);

    // And `logbook run` draws the server's spans inside the tool call.
    let out = collector.cli(&["run", run_id]);
    let tree = String::from_utf8(out.stdout).unwrap();
    let line = |needle: &str| {
        tree.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{tree}"))
            .to_owned()
    };
    let depth = |l: &str| l.find(|c: char| c.is_alphanumeric()).unwrap();
    let (tool, request, index) = (
        line("execute_tool"),
        line("POST /tools/search"),
        line("search.index"),
    );
    assert!(depth(&tool) < depth(&request), "{tree}");
    assert!(depth(&request) < depth(&index), "{tree}");
    assert!(tree.contains(r#"arguments: {"q":"refunds"}"#), "{tree}");
    assert!(tree.contains("refund-policy.md"), "{tree}");
}
