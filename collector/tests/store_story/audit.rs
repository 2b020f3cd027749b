//! The audit chain: an untouched store verifies with its checkpoints; every way of
//! changing it outside logbook is detected, at the right audit sequence number.

use std::sync::Arc;

use logbook_proto::{
    InstanceId, Kind, Level, Record, RecordId, Resource, Str, Timestamp, TraceId, Value,
};

use crate::backend::{Backend, Tamper};
use crate::T0;

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
    r.fields.set("amount", Value::F64(12.5));
    if audit {
        r.category = Some(Str::Borrowed("audit"));
    }
    r
}

/// Audit records `range` among twice as many ops records, one commit each;
/// checkpoints every 10 audit records and when the store closes.
fn write_audit(b: &dyn Backend, range: std::ops::RangeInclusive<u64>) {
    let mut store = b.writer(10);
    for i in range {
        store
            .write(&[
                record(1000 + 2 * i, false),
                record(i, true),
                record(1001 + 2 * i, false),
            ])
            .unwrap();
    }
}

fn assert_fails_at(b: &dyn Backend, n: u64, what: &str) {
    let report = b.verify();
    let p = report
        .problem
        .as_ref()
        .unwrap_or_else(|| panic!("tampering not detected: {report:?}"));
    assert_eq!(p.n, Some(n), "{p}");
    assert!(p.what.contains(what), "expected {what:?} in: {p}");
}

pub fn an_untouched_chain_verifies_with_its_checkpoints(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let r = b.verify();
    assert!(r.ok(), "{:?}", r.problem);
    assert_eq!((r.checked, r.first_n, r.last_n), (35, 1, 35));
    assert_eq!(r.last_checkpoint.map(|c| c.0), Some(35));
    assert_eq!(r.checkpoints, 4, "at 10, 20, 30 and 35 on close");
    assert_eq!(r.after_last_checkpoint, 0);
    // A checkpoint on demand covers the head.
    let mut store = b.writer(10);
    store.write(&[record(36, true)]).unwrap();
    let c = store.checkpoint().unwrap();
    assert_eq!(c.n, 36);
    drop(store);
    let r = b.verify();
    assert!(r.ok(), "{:?}", r.problem);
    assert_eq!(r.checkpoints, 5);
    // Ops records are not chained: deleting one breaks nothing.
    let first_ops = b.record_seq(1) - 1;
    b.tamper(Tamper::DeleteRecord { seq: first_ops });
    assert!(b.verify().ok());
}

pub fn a_changed_payload_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    b.tamper(Tamper::FlipBytes {
        needle: "event-0007 payload".into(),
    });
    assert_fails_at(b, 7, "record was modified");
}

pub fn an_edited_payload_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let seq = b.record_seq(12);
    b.tamper(Tamper::EditMessage {
        seq,
        message: "nothing happened".into(),
    });
    assert_fails_at(b, 12, "record was modified");
}

pub fn deleted_rows_are_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let seq = b.record_seq(12);
    b.tamper(Tamper::DeleteRecord { seq });
    assert_fails_at(b, 12, "record was deleted");
    b.tamper(Tamper::DeleteChainRow { n: 12 });
    assert_fails_at(b, 12, "rows deleted");
}

pub fn swapped_payloads_are_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let (a, c) = (b.record_seq(4), b.record_seq(5));
    b.tamper(Tamper::SwapPayloads { a, b: c });
    assert_fails_at(b, 4, "record was modified");
}

pub fn swapped_chain_rows_are_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    b.tamper(Tamper::SwapChainRecords { a: 8, b: 9 });
    assert_fails_at(b, 8, "record was modified");
}

pub fn a_forged_chain_row_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let seq = b.record_seq(20);
    b.tamper(Tamper::ForgeChainRow { seq, after: 20 });
    assert_fails_at(b, 21, "chain hash does not match");
}

pub fn a_forged_unchained_audit_record_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let seq = b.record_seq(20);
    b.tamper(Tamper::ForgeUnchained { seq });
    let p = b.verify().problem.unwrap();
    assert_eq!(p.record_seq, Some(100000), "{p}");
    assert!(p.what.contains("not in the chain"), "{p}");
}

pub fn a_chain_recomputed_without_the_key_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let seq = b.record_seq(12);
    b.tamper(Tamper::EditMessage {
        seq,
        message: "nothing happened".into(),
    });
    // Every content and chain hash from 12 on, recomputed with a key of their own.
    b.tamper(Tamper::Rechain {
        from: 12,
        key: [7; 32],
    });
    assert_fails_at(b, 12, "chain hash does not match");
}

pub fn a_truncated_tail_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    b.tamper(Tamper::TruncateFrom { from: 25 });
    assert_fails_at(b, 25, "truncated");
}

pub fn an_older_copy_of_the_store_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=20);
    let old = b.snapshot();
    write_audit(b, 21..=35);
    assert!(b.verify().ok());
    b.restore(&old);
    assert_fails_at(b, 21, "older copy");
}

pub fn an_edited_checkpoint_file_is_detected(b: &dyn Backend) {
    write_audit(b, 1..=35);
    let file = b.checkpoint_file();
    let text = std::fs::read_to_string(&file).unwrap();
    // Claim the chain was shorter at the second checkpoint.
    let edited = text.replacen("\"n\":20,", "\"n\":19,", 1);
    assert_ne!(edited, text);
    std::fs::write(&file, &edited).unwrap();
    assert_fails_at(b, 19, "bad signature");
    // A line removed (to hide how long the chain was).
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("\"n\":35,")).collect();
    std::fs::write(&file, kept.join("\n") + "\n").unwrap();
    assert_fails_at(b, 35, "lacks");
}
