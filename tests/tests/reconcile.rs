//! A stopped collector never makes the application block or hold more than its
//! buffer, and every record ends up delivered or counted as dropped, exactly.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{app_command, parse_report, signal, wait_timeout, Collector};

#[test]
fn a_stopped_collector_costs_drops_not_blocking_or_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let count = 60_000u64;
    // Bursts of 1,000 events every 100 ms, for about 6 s: the 3 s the collector is
    // frozen bring ~30,000 records, far more than a 1 MiB buffer holds.
    let mut app = app_command(
        &["pressure", &count.to_string(), "100000"],
        &[
            ("LOGBOOK_ENDPOINT", &collector.endpoint()),
            ("LOGBOOK_BUFFER", "1MiB"),
            ("LOGBOOK_FLUSH_TIMEOUT", "60s"),
        ],
    )
    .spawn()
    .unwrap();

    std::thread::sleep(Duration::from_millis(300));
    signal(collector.pid(), libc::SIGSTOP);
    let stopped = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    signal(collector.pid(), libc::SIGCONT);
    let frozen_for = stopped.elapsed();

    let status = wait_timeout(&mut app, Duration::from_secs(180));
    let mut out = Vec::new();
    std::io::Read::read_to_end(app.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(status.success());
    let r = parse_report(&out);
    eprintln!("{r:?}");

    assert_eq!(r.emitted, count);
    assert_eq!(
        r.undelivered, 0,
        "everything was settled after the collector resumed: {r:?}"
    );
    assert_eq!(
        r.delivered + r.dropped + r.rejected,
        r.emitted,
        "every record accounted for: {r:?}"
    );
    assert!(
        r.dropped > 0,
        "a 1 MiB buffer cannot hold 3 s of this: {r:?}"
    );
    assert!(
        r.max_buffered <= r.capacity,
        "held {} bytes with a {}-byte buffer",
        r.max_buffered,
        r.capacity
    );
    // Not a speed measurement: a blocked call would take the whole freeze.
    assert!(
        Duration::from_micros(r.max_emit_us) < frozen_for / 4,
        "an emit took {} µs while the collector was frozen for {frozen_for:?}",
        r.max_emit_us
    );

    // What the app says it delivered is exactly what the collector stored, and the
    // collector heard about every drop.
    let out = collector.cli(&["stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Less the collector's own audit record of its start.
    assert_eq!(
        stats["records"].as_u64().unwrap() - stats["audit_records"].as_u64().unwrap(),
        r.delivered
    );
    let reported: u64 = stats["client_drops"][0]["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(reported, r.dropped);
    collector.stop();
}
