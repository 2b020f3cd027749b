//! `logbook backup`: a consistent copy of a database a collector is writing, which a
//! collector then serves.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{app_command, cli, wait_timeout, Collector};

#[test]
fn a_backup_taken_under_ingest_is_consistent_and_restores() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let mut app = app_command(
        &["stream", "run-backup", "4000", "300"],
        &[("LOGBOOK_ENDPOINT", &collector.endpoint())],
    )
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let copy = dir.path().join("copy.db");
    let out = collector.cli(&["backup", copy.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.contains("Keep the key directory"), "{said}");
    let backed_up: u64 = said
        .split_whitespace()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(backed_up > 0, "{said}");
    assert!(wait_timeout(&mut app, Duration::from_secs(120)).success());
    assert!(collector.stop().success());

    // The copy is one snapshot: its counters match its records, every record in it is
    // in the original, and the original has more.
    let db = copy.to_str().unwrap();
    let in_copy = common::parse_jsonl(
        &cli(&[
            "--db", db, "query", "--limit", "100000", "--format", "jsonl",
        ])
        .stdout,
    );
    assert_eq!(in_copy.len() as u64, backed_up);
    let original: BTreeSet<String> = collector
        .query(&["--limit", "100000"])
        .into_iter()
        .map(|r| r.id.to_string())
        .collect();
    assert!(in_copy.iter().all(|r| original.contains(&r.id.to_string())));
    assert!(original.len() > in_copy.len());
    // Owner-only, like the database.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Restored in a new place with its keys, a collector serves it and adds to it.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join("logbook.db")).unwrap();
    let keys = restored.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for f in std::fs::read_dir(dir.path().join("keys")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), keys.join(f.file_name())).unwrap();
    }
    let mut again = Collector::start(restored.path());
    common::run_app(&["burst", "10"], &[("LOGBOOK_ENDPOINT", &again.endpoint())]);
    assert!(again.stop().success());
    let n = again.query(&["--limit", "100000"]).len() as u64;
    assert!(n >= backed_up + 10, "{n}");
    let verify = again.cli(&["verify"]);
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );

    // An existing file is not overwritten.
    let out = collector.cli(&["backup", copy.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not overwriting"));
}
