//! Many applications at once into one collector; and a panicking application whose
//! last words still arrive.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{app_command, parse_report, wait_timeout, Collector};
use logbook_proto::{Kind, Level};

#[test]
fn many_concurrent_clients_all_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let ep = collector.endpoint();
    let apps: Vec<_> = (0..16)
        .map(|i| {
            app_command(
                &["stream", &format!("run-c{i}"), "500", "100"],
                &[("LOGBOOK_ENDPOINT", &ep)],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    for mut app in apps {
        assert!(wait_timeout(&mut app, Duration::from_secs(120)).success());
        let mut out = Vec::new();
        std::io::Read::read_to_end(app.stdout.as_mut().unwrap(), &mut out).unwrap();
        let report = parse_report(&out);
        assert_eq!((report.delivered, report.dropped), (502, 0), "{report:?}");
    }
    let out = collector.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // And the collector's own audit record of its configuration load.
    assert_eq!(stats["records"], 16 * 502 + 1);
    assert_eq!(stats["audit_records"], 1);
    assert_eq!(stats["runs"], 16);
}

#[test]
fn a_panic_is_recorded_and_flushed_before_the_process_dies() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let out = app_command(
        &["panic", "run-panic"],
        &[("LOGBOOK_ENDPOINT", &collector.endpoint())],
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "the process still panics");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("index out of range"),
        "the previous hook still runs"
    );
    let records = collector.query(&["--run", "run-panic", "--limit", "100"]);
    let panic = records
        .iter()
        .find(|r| r.kind == Kind::Event && r.level == Level::Error)
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(panic.target, "panic");
    assert_eq!(
        panic
            .fields
            .get("exception.message")
            .and_then(|v| v.as_str()),
        Some("index out of range: 0 items")
    );
    assert!(panic
        .fields
        .get("code.location")
        .and_then(|v| v.as_str())
        .unwrap()
        .contains("e2e_app.rs"));
    assert!(records
        .iter()
        .any(|r| r.message.as_deref() == Some("about to fail")));
}
