//! Trust, end to end with the real binary: required scope and quarantine, audited
//! admin actions (purge, export, DSAR, restore), `logbook verify` passing after each
//! and failing, with the sequence number, after the file is edited.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use common::{run_app, Collector};

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("logbook.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn records_without_required_scope_are_quarantined_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "required_scope = [\"tenant\"]\n");
    let collector = Collector::start_with(dir.path(), &["--config", &config]);
    let ep = collector.endpoint();
    // `stream` sets no tenant: every record is refused, and kept.
    let refused = run_app(&["stream", "run-q", "5", "0"], &[("LOGBOOK_ENDPOINT", &ep)]);
    assert_eq!((refused.rejected, refused.delivered), (7, 0), "{refused:?}");
    // `roundtrip` sets one on its root span.
    let kept = run_app(&["roundtrip", "run-ok"], &[("LOGBOOK_ENDPOINT", &ep)]);
    assert_eq!((kept.rejected, kept.delivered), (0, 12), "{kept:?}");

    let out = ok(&collector.cli(&["query", "--quarantine", "--format", "jsonl"]));
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 7);
    for r in &rows {
        assert_eq!(r["reason"], "missing required scope field `tenant`");
        assert_eq!(r["record"]["run_id"], "run-q");
    }
    let table = ok(&collector.cli(&["query", "--quarantine"]));
    assert!(
        table.contains("missing required scope field `tenant`"),
        "{table}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&collector.cli(&["stats", "--json"]))).unwrap();
    assert_eq!(stats["quarantined"], 7);
    // Bad configuration is one clear line.
    let bad = write_config(dir.path(), "required_scope = [\"tennant\"]\n");
    let out = common::cli(&["--config", &bad, "serve", "--print-config"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`tennant` is not a scope field"), "{err}");
}

#[test]
fn admin_actions_are_audited_and_verify_passes_after_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut collector = Collector::start(dir.path());
    let ep = collector.endpoint();
    run_app(&["roundtrip", "run-1"], &[("LOGBOOK_ENDPOINT", &ep)]);
    run_app(&["roundtrip", "run-2"], &[("LOGBOOK_ENDPOINT", &ep)]);
    let verified = ok(&collector.cli(&["verify"]));
    assert!(verified.starts_with("audit chain OK"), "{verified}");

    // Export, then DSAR export and delete of the user of run-2's inner span.
    let export = dir.path().join("all.jsonl");
    ok(&collector.cli(&[
        "export",
        "--format",
        "jsonl",
        "-o",
        export.to_str().unwrap(),
    ]));
    let dsar = dir.path().join("u.jsonl");
    let out = ok(&collector.cli(&[
        "dsar",
        "export",
        "--user",
        "u-1",
        "-o",
        dsar.to_str().unwrap(),
    ]));
    assert!(out.contains("exported 18 records"), "{out}");
    let out = collector.cli(&["dsar", "delete", "--user", "u-1"]);
    assert!(!out.status.success(), "refuses without --yes");
    let out = ok(&collector.cli(&["dsar", "delete", "--user", "u-1", "--yes"]));
    assert!(out.contains("deleted 18 ops records"), "{out}");
    assert!(collector.query(&["--user", "u-1"]).is_empty());
    ok(&collector.cli(&["verify"]));

    // Purge everything older than a second, archiving it; then restore the archive.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let archive = dir.path().join("archive");
    let out = collector.cli(&["purge", "--older-than", "1s"]);
    assert!(!out.status.success(), "refuses without --yes");
    assert!(String::from_utf8_lossy(&out.stdout).contains("would delete 6 ops records"));
    let out = ok(&collector.cli(&[
        "purge",
        "--older-than",
        "1s",
        "--archive",
        archive.to_str().unwrap(),
        "--yes",
    ]));
    assert!(out.contains("deleted 6 ops records"), "{out}");
    ok(&collector.cli(&["verify"]));
    let manifest = std::fs::read_dir(&archive)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join("manifest.json");
    let out = ok(&collector.cli(&["archive", "restore", manifest.to_str().unwrap()]));
    assert!(out.contains("restored 6 records"), "{out}");

    // Every admin action left an audit record.
    let names: Vec<String> = collector
        .query(&["--category", "audit", "--limit", "100"])
        .into_iter()
        .map(|r| r.name.into_owned())
        .collect();
    for action in [
        "logbook.config_load",
        "logbook.export",
        "logbook.dsar_export",
        "logbook.dsar.delete",
        "logbook.purge",
        "logbook.archive_restore",
    ] {
        assert!(names.iter().any(|n| n == action), "{action} in {names:?}");
    }
    ok(&collector.cli(&["verify"]));

    // Someone edits an audit record in the file: verify names it and exits non-zero.
    collector.stop();
    let conn = rusqlite::Connection::open(dir.path().join("logbook.db")).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT c.n FROM audit_chain c JOIN records r ON r.seq = c.record_seq
             WHERE r.name = 'logbook.export'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute_batch(
        "DROP TRIGGER records_audit_no_update;
         UPDATE records SET message = 'Exported 0 records.' WHERE name = 'logbook.export';",
    )
    .unwrap();
    drop(conn);
    let out = collector.cli(&["verify"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("FAILED at audit sequence {n} ")) && err.contains("modified"),
        "{err}"
    );
}

/// The values `logbook-e2e-app secrets` plants (see its source).
const SECRETS: &[&str] = &[
    "hunter2-Secret!",
    "4111 1111 1111 1111",
    "123-45-6789",
    "alice.smith@example.com",
    "GB82 WEST 1234 5698 7654 32",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
    "AKIAIOSFODNN7EXAMPLE",
    "ghp_1234567890abcdefghijklmnopqrstuvwxyz",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    "sk-ant-api03-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAAAA",
    "dXNlcjpodW50ZXIy",
    "Tr0ub4dor-and-3",
    "k-9f8e7d6c5b4a3",
    "7fakekeymaterialXYZ",
];

fn assert_absent(what: &str, bytes: &[u8]) {
    for s in SECRETS {
        let found = bytes.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(!found, "{s:?} found in {what}");
    }
}

#[test]
fn secrets_sent_through_the_layer_never_reach_the_disk_or_the_output() {
    for layer_redaction in ["off", "builtin"] {
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::start_with(dir.path(), &["--log", "debug"]);
        let ep = collector.endpoint();
        let r = run_app(
            &["secrets"],
            &[
                ("LOGBOOK_ENDPOINT", &ep),
                ("LOGBOOK_REDACTION", layer_redaction),
            ],
        );
        assert_eq!(r.delivered, 4, "{r:?}");
        let db = dir.path().join("logbook.db");
        // While the collector runs, the newest pages are in the write-ahead log.
        let wal = std::fs::read(dir.path().join("logbook.db-wal")).unwrap();
        assert!(!wal.is_empty());
        assert_absent("the WAL", &wal);
        assert_absent("the database file", &std::fs::read(&db).unwrap());
        let out = ok(&collector.cli(&["export", "--format", "jsonl"]));
        assert_absent("an export", out.as_bytes());
        assert!(out.contains("[REDACTED:password]"), "{out}");
        assert!(out.contains("[REDACTED:private_key]"), "{out}");
        let stats: serde_json::Value =
            serde_json::from_str(&ok(&collector.cli(&["stats", "--json"]))).unwrap();
        let rules: Vec<&str> = stats["redactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_str().unwrap())
            .collect();
        if layer_redaction == "off" {
            for rule in ["password", "credit_card", "email", "iban", "openai_key"] {
                assert!(rules.contains(&rule), "{rule} counted in {rules:?}");
            }
        }
        collector.stop();
        assert_absent("the database file", &std::fs::read(&db).unwrap());
        assert_absent("the collector's output", collector.log_text().as_bytes());
    }
}
