//! The audit chain against someone editing the SQLite file directly: every case named
//! in the trust issue is detected, at the right sequence number, and an untouched
//! database verifies.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use logbook_collector::audit::{chain_hash, verify, Keys, VerifyOptions, VerifyReport};
use logbook_collector::store::{SqliteStore, Store, StoreOptions};
use logbook_proto::{
    InstanceId, Kind, Level, Record, RecordId, Resource, Str, Timestamp, TraceId, Value,
};
use rusqlite::{params, Connection};

const T0: i64 = 1_795_291_200_000_000_000;

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
    keys: PathBuf,
    checkpoints: PathBuf,
}

fn record(i: u64, audit: bool) -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(3), i),
        Timestamp(T0 + i as i64 * 1_000_000),
        Kind::Event,
        Level::Info,
        if audit { "user.login" } else { "request" },
    );
    r.trace_id = TraceId::from_random(1, i);
    r.resource = Arc::new(Resource {
        service: "bank".into(),
        host: "h".into(),
        pid: 1,
    });
    r.message = Some(format!("event-{i:04} payload"));
    r.fields.set("i", Value::U64(i));
    if audit {
        r.category = Some(Str::Borrowed("audit"));
    }
    r
}

fn options(f: &Fixture) -> StoreOptions {
    StoreOptions {
        key_dir: Some(f.keys.clone()),
        checkpoint_file: Some(f.checkpoints.clone()),
        checkpoint_records: 10,
        checkpoint_interval: Duration::from_secs(3600),
        ..StoreOptions::default()
    }
}

/// Paths in a new directory; no database yet.
fn empty_fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        db: dir.path().join("t.db"),
        keys: dir.path().join("keys"),
        checkpoints: dir.path().join("t.checkpoints"),
        _dir: dir,
    }
}

/// 35 audit records among 70 ops records; checkpoints at 10, 20, 30 and, on close, 35.
fn fixture() -> Fixture {
    let f = empty_fixture();
    write_audit(&f, 1..=35);
    f
}

fn write_audit(f: &Fixture, range: std::ops::RangeInclusive<u64>) {
    let mut store = SqliteStore::open_with(&f.db, &options(f)).unwrap();
    for i in range {
        store
            .write(
                &[
                    record(1000 + 2 * i, false),
                    record(i, true),
                    record(1001 + 2 * i, false),
                ],
                &[],
            )
            .unwrap();
    }
}

fn check(f: &Fixture) -> VerifyReport {
    let conn = Connection::open(&f.db).unwrap();
    let keys = Keys::load(&f.keys).unwrap();
    verify(
        &conn,
        &VerifyOptions {
            chain_key: *keys.chain_key(),
            public: keys.public(),
            checkpoint_file: f.checkpoints.clone(),
        },
    )
    .unwrap()
}

/// A connection as an attacker would use it: triggers dropped first.
fn tamper(f: &Fixture, sql: &str) {
    let conn = Connection::open(&f.db).unwrap();
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS records_audit_no_update;
         DROP TRIGGER IF EXISTS records_audit_no_delete;
         DROP TRIGGER IF EXISTS audit_chain_no_update;
         DROP TRIGGER IF EXISTS audit_chain_no_delete;
         DROP TRIGGER IF EXISTS audit_checkpoints_no_update;
         DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;",
    )
    .unwrap();
    conn.execute_batch(sql).unwrap();
}

fn record_seq(f: &Fixture, n: u64) -> i64 {
    Connection::open(&f.db)
        .unwrap()
        .query_row(
            "SELECT record_seq FROM audit_chain WHERE n = ?1",
            [n as i64],
            |r| r.get(0),
        )
        .unwrap()
}

fn assert_fails_at(report: &VerifyReport, n: u64, what: &str) {
    let p = report
        .problem
        .as_ref()
        .unwrap_or_else(|| panic!("tampering not detected: {report:?}"));
    assert_eq!(p.n, Some(n), "{p}");
    assert!(p.what.contains(what), "expected {what:?} in: {p}");
}

#[test]
fn an_untouched_chain_verifies() {
    let f = fixture();
    let r = check(&f);
    assert!(r.ok(), "{:?}", r.problem);
    assert_eq!((r.checked, r.first_n, r.last_n), (35, 1, 35));
    assert_eq!(r.last_checkpoint.map(|c| c.0), Some(35));
    assert_eq!(r.checkpoints, 4);
    assert_eq!(r.after_last_checkpoint, 0);
    // The store refuses edits of audit rows itself.
    let conn = Connection::open(&f.db).unwrap();
    let seq = record_seq(&f, 3);
    let e = conn
        .execute("UPDATE records SET message = 'x' WHERE seq = ?1", [seq])
        .unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(conn
        .execute("DELETE FROM audit_chain WHERE n = 3", [])
        .is_err());
    // Ops rows are not protected.
    conn.execute("DELETE FROM records WHERE class = 0 AND seq = 1", [])
        .unwrap();
    assert!(check(&f).ok());
}

#[test]
fn a_flipped_byte_in_a_payload_is_detected() {
    let f = fixture();
    // Into the main file, then flip one byte of record 7's message in place.
    tamper(&f, "PRAGMA wal_checkpoint(TRUNCATE);");
    let mut bytes = std::fs::read(&f.db).unwrap();
    let needle = b"event-0007 payload";
    // Every copy (freed pages may hold stale ones), so the live row is among them.
    let found: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(!found.is_empty());
    for at in found {
        bytes[at + 6] ^= 0x01;
    }
    std::fs::write(&f.db, bytes).unwrap();
    assert_fails_at(&check(&f), 7, "record was modified");
}

#[test]
fn a_deleted_middle_row_is_detected() {
    let f = fixture();
    let seq = record_seq(&f, 12);
    tamper(
        &f,
        &format!("DELETE FROM records WHERE seq = {seq}; DELETE FROM audit_chain WHERE n = 12;"),
    );
    assert_fails_at(&check(&f), 12, "rows deleted");

    let f = fixture();
    let seq = record_seq(&f, 12);
    tamper(&f, &format!("DELETE FROM records WHERE seq = {seq};"));
    assert_fails_at(&check(&f), 12, "record was deleted");
}

#[test]
fn two_swapped_rows_are_detected() {
    let f = fixture();
    let (a, b) = (record_seq(&f, 4), record_seq(&f, 5));
    tamper(
        &f,
        &format!(
            "UPDATE records SET message = (SELECT message FROM records WHERE seq = {b}),
                                fields = (SELECT fields FROM records WHERE seq = {b}),
                                ts = (SELECT ts FROM records WHERE seq = {b})
              WHERE seq = {a};
             UPDATE records SET message = 'event-0004 payload', fields = '{{\"i\":4}}'
              WHERE seq = {b};"
        ),
    );
    assert_fails_at(&check(&f), 4, "record was modified");

    // Swapping the chain rows themselves.
    let f = fixture();
    let (a, b) = (record_seq(&f, 8), record_seq(&f, 9));
    tamper(
        &f,
        &format!(
            "UPDATE audit_chain SET record_seq = -1 WHERE n = 8;
             UPDATE audit_chain SET record_seq = {a} WHERE n = 9;
             UPDATE audit_chain SET record_seq = {b} WHERE n = 8;"
        ),
    );
    assert_fails_at(&check(&f), 8, "record was modified");
}

/// SQL inserting a copy of record `seq` as record 100000 with a new id and message.
fn forged_copy(seq: i64) -> String {
    format!(
        "INSERT INTO records SELECT 100000, x'00112233445566778899aabbccddeeff', ts, kind, level,
                name, target, 'forged', trace_id, span_id, parent_span_id, run_id, step_id,
                tenant, env, project, app, surface, user_id, session_id, request_id, service,
                host, pid, file, line, category, status, duration_ns, busy_ns, idle_ns, fields,
                class FROM records WHERE seq = {seq};"
    )
}

#[test]
fn a_forged_inserted_row_is_detected() {
    let f = fixture();
    let seq = record_seq(&f, 20);
    let forged = forged_copy(seq);
    // A copy of a genuine row, inserted into the chain at 21 with made-up hashes.
    tamper(
        &f,
        &format!(
            "{forged}
             UPDATE audit_chain SET n = n + 1000 WHERE n > 20;
             UPDATE audit_chain SET n = n - 999 WHERE n > 1000;
             INSERT INTO audit_chain (n, record_seq, content_hash, chain_hash)
             VALUES (21, 100000, zeroblob(32), zeroblob(32));"
        ),
    );
    assert_fails_at(&check(&f), 21, "chain hash does not match");

    // A record marked audit but never chained.
    let f = fixture();
    let seq = record_seq(&f, 20);
    tamper(&f, &forged_copy(seq));
    let r = check(&f);
    let p = r.problem.unwrap();
    assert_eq!(p.record_seq, Some(100000), "{p}");
    assert!(p.what.contains("not in the chain"), "{p}");
}

#[test]
fn a_chain_recomputed_without_the_key_is_detected() {
    let f = fixture();
    let seq = record_seq(&f, 12);
    tamper(
        &f,
        &format!("UPDATE records SET message = 'nothing happened' WHERE seq = {seq};"),
    );
    // The attacker recomputes every content hash and chain hash from 12 on, with a key
    // of their own.
    let conn = Connection::open(&f.db).unwrap();
    let wrong_key = [7u8; 32];
    let mut prev: Vec<u8> = conn
        .query_row("SELECT chain_hash FROM audit_chain WHERE n = 11", [], |r| {
            r.get(0)
        })
        .unwrap();
    let rows: Vec<(i64, i64)> = conn
        .prepare("SELECT n, record_seq FROM audit_chain WHERE n >= 12 ORDER BY n")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (n, s) in rows {
        let content = conn
            .query_row(
                &format!(
                    "SELECT {} FROM records WHERE seq = ?1",
                    logbook_collector::audit::AUDIT_ROW_COLUMNS
                ),
                [s],
                logbook_collector::audit::row_digest,
            )
            .unwrap();
        let chain = chain_hash(
            &wrong_key,
            &prev.clone().try_into().unwrap(),
            n as u64,
            &content,
        );
        conn.execute(
            "UPDATE audit_chain SET content_hash = ?1, chain_hash = ?2 WHERE n = ?3",
            params![&content[..], &chain[..], n],
        )
        .unwrap();
        prev = chain.to_vec();
    }
    assert_fails_at(&check(&f), 12, "chain hash does not match");
}

#[test]
fn a_tail_truncated_before_the_last_checkpoint_is_detected() {
    let f = fixture();
    tamper(
        &f,
        "DELETE FROM records WHERE seq IN (SELECT record_seq FROM audit_chain WHERE n >= 25);
         DELETE FROM audit_chain WHERE n >= 25;
         DELETE FROM audit_checkpoints WHERE n >= 25;",
    );
    assert_fails_at(&check(&f), 25, "truncated");
}

#[test]
fn a_table_replaced_by_an_older_copy_is_detected() {
    let f = empty_fixture();
    write_audit(&f, 1..=20);
    let old = copy_db(&f.db);
    write_audit(&f, 21..=35);
    assert!(check(&f).ok());
    restore_db(&old, &f.db);
    assert_fails_at(&check(&f), 21, "older copy");
}

fn copy_db(db: &Path) -> Vec<u8> {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    std::fs::read(db).unwrap()
}

fn restore_db(bytes: &[u8], db: &Path) {
    let _ = std::fs::remove_file(db.with_extension("db-wal"));
    let _ = std::fs::remove_file(db.with_extension("db-shm"));
    std::fs::write(db, bytes).unwrap();
}

#[test]
fn an_edited_checkpoint_file_is_detected() {
    let f = fixture();
    let text = std::fs::read_to_string(&f.checkpoints).unwrap();
    // Claim the chain was shorter at the second checkpoint.
    let edited = text.replacen("\"n\":20,", "\"n\":19,", 1);
    assert_ne!(edited, text);
    std::fs::write(&f.checkpoints, &edited).unwrap();
    assert_fails_at(&check(&f), 19, "bad signature");

    // A line removed (to hide how long the chain was).
    let f = fixture();
    let text = std::fs::read_to_string(&f.checkpoints).unwrap();
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"n\":35,")).collect();
    std::fs::write(&f.checkpoints, kept.join("\n") + "\n").unwrap();
    assert_fails_at(&check(&f), 35, "lacks");
}
