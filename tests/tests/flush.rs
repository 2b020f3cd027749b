//! The flush guard: reports what it could not deliver, and the layer's drop counts
//! reach the collector exactly.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{app_command, parse_report, Collector};

#[test]
fn guard_reports_undelivered_records_when_no_collector_listens() {
    let dir = tempfile::tempdir().unwrap();
    let ep = format!("unix:{}", dir.path().join("nobody.sock").display());
    let started = Instant::now();
    let out = app_command(
        &["stream", "run-lost", "20", "0"],
        &[
            ("LOGBOOK_ENDPOINT", &ep),
            ("LOGBOOK_FLUSH_TIMEOUT", "300ms"),
        ],
    )
    .output()
    .unwrap();
    assert!(out.status.success());
    let report = parse_report(&out.stdout);
    assert_eq!(
        (report.delivered, report.undelivered),
        (0, 22),
        "{report:?}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("cannot reach collector"), "{stderr}");
    assert!(
        stderr.contains("22 records could not be delivered"),
        "{stderr}"
    );
    // Twice the deadline: the explicit flush, then the guard's own at drop.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn drops_are_counted_exactly_and_reach_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let collector = Collector::start(dir.path());
    let ep = collector.endpoint();
    let out = app_command(
        &["burst", "200000"],
        &[
            ("LOGBOOK_ENDPOINT", &ep),
            ("LOGBOOK_BUFFER", "64KiB"),
            ("LOGBOOK_SERVICE", "bursty"),
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = parse_report(&out.stdout);
    assert!(
        report.dropped > 0,
        "a 64 KiB buffer cannot hold a burst of 200,000: {report:?}"
    );
    assert_eq!(
        report.delivered + report.dropped + report.undelivered + report.rejected,
        report.emitted,
        "{report:?}"
    );
    assert_eq!(report.undelivered, 0);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = collector.cli(&["stats", "--json"]);
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let drops = &stats["client_drops"];
        let total: u64 = drops
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| {
                c["dropped"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap())
            })
            .sum();
        if total == report.dropped {
            assert_eq!(drops[0]["service"], "bursty");
            assert_eq!(
                drops[0]["dropped"][2].as_u64().unwrap(),
                report.dropped,
                "all INFO"
            );
            // Less the collector's own audit record of its start.
            assert_eq!(
                stats["records"].as_u64().unwrap() - stats["audit_records"].as_u64().unwrap(),
                report.delivered
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "collector saw {total} drops, app reported {}",
            report.dropped
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
