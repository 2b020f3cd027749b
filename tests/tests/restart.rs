//! The collector crashes and restarts (and later stops gracefully and restarts) while
//! an application keeps logging: every record that fit in the layer's buffer is
//! stored exactly once.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{app_command, parse_report, wait_timeout, Collector};
use logbook_proto::Value;

#[test]
fn collector_restart_loses_nothing_that_fits_in_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let ep = collector.endpoint();
    let count = 3000u64;
    let mut app = app_command(
        &["stream", "run-restart", &count.to_string(), "1000"],
        &[("LOGBOOK_ENDPOINT", &ep), ("LOGBOOK_FLUSH_TIMEOUT", "60s")],
    )
    .spawn()
    .unwrap();

    std::thread::sleep(Duration::from_millis(700));
    // Stopped, the collector reads and acknowledges nothing while the app goes on
    // sending: those batches are unacknowledged when it dies, and must be resent.
    common::signal(collector.pid(), libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(300));
    collector.kill();
    std::thread::sleep(Duration::from_millis(800));
    collector.restart();
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        collector.stop().success(),
        "graceful stop exits 0: {}",
        collector.log_text()
    );
    std::thread::sleep(Duration::from_millis(400));
    collector.restart();

    let status = wait_timeout(&mut app, Duration::from_secs(120));
    let mut stdout = Vec::new();
    std::io::Read::read_to_end(app.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(status.success());
    let report = parse_report(&stdout);
    assert_eq!(report.emitted, count + 2);
    assert_eq!(
        (report.delivered, report.dropped, report.undelivered),
        (count + 2, 0, 0),
        "{report:?}"
    );
    assert!(report.resent > 0, "batches were resent: {report:?}");

    let records = collector.query(&["--run", "run-restart", "--limit", "100000"]);
    assert_eq!(records.len() as u64, count + 2, "each record exactly once");
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.message.as_deref() == Some("tick"))
    {
        match r.fields.get("n") {
            Some(Value::U64(n)) => *seen.entry(*n as i64).or_default() += 1,
            Some(Value::I64(n)) => *seen.entry(*n).or_default() += 1,
            other => panic!("n = {other:?}"),
        }
    }
    assert_eq!(seen.len() as u64, count);
    assert!(seen.values().all(|c| *c == 1));
    assert_eq!(seen.keys().next(), Some(&0));
    assert_eq!(seen.keys().last(), Some(&(count as i64 - 1)));
}
