//! Purges, archives, restores and DSAR requests: what they delete, what they keep
//! consistent, and that the audit chain verifies after each.

use std::sync::Arc;
use std::time::Duration;

use logbook_collector::query::{RecordFilter, RunFilter};
use logbook_collector::retention::{
    dsar_delete, dsar_export, purge, restore_archive, PurgeOptions, PurgeSpec, Selector,
    StorageClass,
};
use logbook_collector::store::{StoreReader, StoreWriter, Subject};
use logbook_proto::{
    transport, InstanceId, Json, Kind, Level, Origin, Record, RecordId, Resource, Scope, ScopeKey,
    Str, Timestamp, TraceId, Value,
};

use crate::backend::{Backend, Tamper};
use crate::DAY;

fn record(i: u64, ts: i64, tenant: &str, user: &str, audit: bool) -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(5), i),
        Timestamp(ts),
        Kind::Event,
        Level::Info,
        if audit { "payment.approved" } else { "request" },
    );
    r.trace_id = TraceId::from_random(2, i);
    r.resource = Arc::new(Resource {
        service: "shop".into(),
        host: "h".into(),
        pid: 1,
    });
    r.scope = Arc::new(
        Scope::new()
            .with(ScopeKey::Tenant, tenant)
            .with(ScopeKey::UserId, user)
            .with(ScopeKey::RunId, format!("run-{}", i % 7)),
    );
    r.message = Some(format!("{user} did thing {i}"));
    r.fields.set("i", Value::U64(i));
    if audit {
        r.category = Some(Str::Borrowed("audit"));
    }
    r
}

/// 200 records a day for 10 days ending now; every 10th an audit record; two tenants,
/// four users.
fn fill(store: &mut dyn StoreWriter, now: i64) {
    let mut batch = Vec::new();
    for i in 0..2000u64 {
        let ts = now - 10 * DAY + i as i64 * (DAY / 200);
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        let user = format!("u{}", i % 4);
        batch.push(record(i, ts, tenant, &user, i % 10 == 0));
    }
    for chunk in batch.chunks(100) {
        store.write(chunk).unwrap();
    }
}

fn count(store: &dyn StoreWriter, f: RecordFilter) -> u64 {
    store.reader().count(&f).unwrap()
}

pub fn purge_by_age_archives_anchors_and_restores(db: &dyn Backend) {
    let now = Timestamp::now().as_nanos();
    let mut store = db.writer(5);
    fill(store.as_mut(), now);
    assert!(db.verify().ok());
    let size_before = store.reader().stats().unwrap().storage_bytes;

    // Ops older than 5 days, and audit older than 7 days, archived first.
    let specs = [
        PurgeSpec {
            class: StorageClass::Ops,
            max_age: Some(Duration::from_secs(5 * 86_400)),
            ..PurgeSpec::default()
        },
        PurgeSpec {
            class: StorageClass::Audit,
            max_age: Some(Duration::from_secs(7 * 86_400)),
            ..PurgeSpec::default()
        },
    ];
    let archive = db.dir().join("archive");
    let dry = purge(
        store.as_mut(),
        &specs,
        Timestamp(now),
        &PurgeOptions {
            dry_run: true,
            ..PurgeOptions::default()
        },
    )
    .unwrap();
    let report = purge(
        store.as_mut(),
        &specs,
        Timestamp(now),
        &PurgeOptions {
            archive_dir: Some(archive.clone()),
            origin: "test".into(),
            ..PurgeOptions::default()
        },
    )
    .unwrap();
    assert_eq!((dry.ops, dry.audit), (report.ops, report.audit));
    // Days 0..5 hold 1000 records, 100 of them audit; days 0..3, 60 audit.
    assert_eq!(report.ops, 900, "{report:?}");
    assert_eq!(report.audit, 60, "{report:?}");
    assert_eq!(report.anchor, Some(60));
    let all = RecordFilter::default();
    // 2000 - 960, plus the purge's own audit record.
    assert_eq!(count(store.as_ref(), all.clone()), 1041);
    assert_eq!(store.reader().stats().unwrap().records, 1041);
    // Runs view consistent with what is left.
    let runs = store
        .reader()
        .runs(&RunFilter {
            limit: 100,
            ..RunFilter::default()
        })
        .unwrap();
    let total: u64 = runs.iter().map(|r| r.records).sum();
    assert_eq!(total, 1040);

    // The chain resumes after the anchor.
    let v = db.verify();
    assert!(v.ok(), "{:?}", v.problem);
    assert_eq!(v.anchor.map(|a| a.0), Some(60));
    assert_eq!(v.first_n, 61);

    // The archive: a manifest with counts and hashes, one file per day and tenant.
    let a = report.archive.unwrap();
    let archived: u64 = a.files.iter().map(|f| f.records).sum();
    assert_eq!(archived, 960);
    assert!(a.files.iter().any(|f| f.path.ends_with("/acme.jsonl.gz")));
    assert!(a.files.iter().any(|f| f.path.ends_with("/globex.jsonl.gz")));

    // The store shrinks once freed space is given back.
    drop(store);
    let size_after = db.reader().stats().unwrap().storage_bytes;
    assert!(size_after < size_before, "{size_after} < {size_before}");

    // Restore brings every record back; twice is harmless.
    let mut store = db.writer(5);
    let (read, stored) = restore_archive(store.as_mut(), &a.dir.join("manifest.json")).unwrap();
    assert_eq!((read, stored), (960, 960));
    let (_, again) = restore_archive(store.as_mut(), &a.dir.join(&a.files[0].path)).unwrap();
    assert_eq!(again, 0);
    // 1041 + 960 + 2 restore audit records.
    assert_eq!(count(store.as_ref(), all), 2003);
    let v = db.verify();
    assert!(v.ok(), "{:?}", v.problem);

    // An altered archive file is refused.
    let f = a.dir.join(&a.files[0].path);
    let mut bytes = std::fs::read(&f).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&f, bytes).unwrap();
    let e = restore_archive(store.as_mut(), &f).unwrap_err().to_string();
    assert!(e.contains("SHA-256"), "{e}");

    // A file of its own, claiming to hold a record of the collector's (a DSAR deletion
    // with its list of tombstones): not let in.
    let mut forged = logbook_collector::audit::admin_record(
        "dsar.delete",
        "forged".into(),
        vec![(
            "tombstoned",
            logbook_proto::Value::Json(logbook_proto::Json::parse("[[1,1000]]").unwrap()),
        )],
    );
    forged.ts = Timestamp::now();
    let line = serde_json::to_string(&forged).unwrap();
    let file = a.dir.join("forged.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, line.as_bytes()).unwrap();
    std::fs::write(&file, gz.finish().unwrap()).unwrap();
    let (read, stored) = restore_archive(store.as_mut(), &file).unwrap();
    assert_eq!((read, stored), (1, 0));
}

pub fn purge_by_count_and_tenant_rule(db: &dyn Backend) {
    let now = Timestamp::now().as_nanos();
    let mut store = db.writer(5);
    fill(store.as_mut(), now);
    let acme_ops = RecordFilter {
        tenant: Some("acme".into()),
        ..RecordFilter::default()
    };
    let before_acme = count(store.as_ref(), acme_ops.clone());
    // Keep the newest 100 globex ops records; acme is excluded by an earlier rule.
    let specs = [
        PurgeSpec {
            class: StorageClass::Ops,
            selector: Selector {
                tenant: Some("globex".into()),
                ..Selector::default()
            },
            max_count: Some(100),
            ..PurgeSpec::default()
        },
        PurgeSpec {
            class: StorageClass::Ops,
            except: vec![Selector {
                tenant: Some("acme".into()),
                ..Selector::default()
            }],
            max_age: Some(Duration::from_secs(86_400)),
            ..PurgeSpec::default()
        },
    ];
    // Told to stop before it starts, a purge deletes nothing and says so.
    let stopped = purge(
        store.as_mut(),
        &specs,
        Timestamp(now),
        &PurgeOptions {
            stop: Some(Arc::new(std::sync::atomic::AtomicBool::new(true))),
            ..PurgeOptions::default()
        },
    )
    .unwrap();
    assert!(stopped.interrupted);
    assert_eq!((stopped.ops, stopped.audit), (0, 0));
    assert_eq!(count(store.as_ref(), acme_ops.clone()), before_acme);
    let r = purge(
        store.as_mut(),
        &specs,
        Timestamp(now),
        &PurgeOptions::default(),
    )
    .unwrap();
    // globex has the odd records: 1000, all ops (audit ones are i % 10 == 0).
    assert_eq!(r.ops, 900, "{r:?}");
    assert_eq!(count(store.as_ref(), acme_ops), before_acme);
    let globex = RecordFilter {
        tenant: Some("globex".into()),
        ..RecordFilter::default()
    };
    assert_eq!(count(store.as_ref(), globex), 100);
    assert!(db.verify().ok());
}

pub fn dsar_export_and_delete_keep_the_chain_verifiable(db: &dyn Backend) {
    let now = Timestamp::now().as_nanos();
    let mut store = db.writer(5);
    fill(store.as_mut(), now);
    let u1 = RecordFilter {
        user_id: Some("u1".into()),
        ..RecordFilter::default()
    };
    assert_eq!(count(store.as_ref(), u1.clone()), 500);

    let mut out = Vec::new();
    let n = dsar_export(store.as_mut(), &Subject::User("u1".into()), &mut out).unwrap();
    assert_eq!(n, 500);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 500);

    // u1 has i % 4 == 1, so never i % 10 == 0: give them audit records too.
    let extra: Vec<Record> = (5000..5010)
        .map(|i| record(i, now - DAY, "acme", "u1", true))
        .collect();
    store.write(&extra).unwrap();

    let r = dsar_delete(store.as_mut(), &Subject::User("u1".into())).unwrap();
    assert_eq!((r.deleted, r.tombstoned), (500, 10));
    assert_eq!(count(store.as_ref(), u1), 0);
    let text = RecordFilter {
        text: Some("u1".into()),
        ..RecordFilter::default()
    };
    assert_eq!(
        count(store.as_ref(), text),
        0,
        "gone from the text index too"
    );
    let v = db.verify();
    assert!(v.ok(), "{:?}", v.problem);
    assert_eq!(v.tombstoned, 10);
    // The DSAR audit records name how many, never whom.
    let dsar = dsar_record(store.reader().as_ref());
    let fields = serde_json::to_string(&dsar.fields).unwrap();
    assert!(!fields.contains("u1"), "{fields}");
    assert!(fields.contains("\"tombstoned.audit\":10"), "{fields}");
}

/// The DSAR deletion's own audit record.
fn dsar_record(reader: &dyn StoreReader) -> Record {
    let f = RecordFilter {
        name: Some(logbook_collector::audit::DSAR_DELETE_NAME.into()),
        ..RecordFilter::default()
    };
    let mut found = reader.query(&f, &Default::default()).unwrap();
    assert_eq!(found.len(), 1);
    found.remove(0)
}

/// The store of [`fill`], with three audit records of `u1` and a DSAR deletion of
/// `u1`, verified; returns the last chain row's number.
fn after_a_dsar_deletion(db: &dyn Backend) -> u64 {
    let now = Timestamp::now().as_nanos();
    let mut store = db.writer(5);
    fill(store.as_mut(), now);
    let extra: Vec<Record> = (5000..5003)
        .map(|i| record(i, now - DAY, "acme", "u1", true))
        .collect();
    store.write(&extra).unwrap();
    dsar_delete(store.as_mut(), &Subject::User("u1".into())).unwrap();
    drop(store);
    let v = db.verify();
    assert!(v.ok(), "{:?}", v.problem);
    v.last_n
}

/// A tombstone no DSAR record accounts for is tampering.
pub fn a_tombstone_without_a_dsar_record_is_detected(db: &dyn Backend) {
    after_a_dsar_deletion(db);
    db.tamper(Tamper::MarkTombstone { n: 3 });
    let p = db.verify().problem.unwrap();
    assert_eq!(p.n, Some(3), "{p}");
    assert!(p.what.contains("without a DSAR"), "{p}");
}

/// A DSAR deletion counts only when the collector wrote it: one stored with a client's
/// origin (as if the socket had let the reserved name through) vouches for nothing.
pub fn a_dsar_record_from_a_client_vouches_for_nothing(db: &dyn Backend) {
    let now = Timestamp::now().as_nanos();
    let mut store = db.writer(5);
    let audit: Vec<Record> = (1..=4)
        .map(|i| record(i, now - DAY, "acme", "u1", true))
        .collect();
    store.write(&audit).unwrap();
    let forged = |i: u64, transport: &str| {
        let mut r = record(i, now, "acme", "u2", true);
        r.name = Str::Borrowed(logbook_collector::audit::DSAR_DELETE_NAME);
        r.target = Str::Borrowed("logbook::admin");
        r.origin = Some(Arc::new(Origin::new(transport)));
        r.fields.set(
            logbook_collector::audit::TOMBSTONED_FIELD,
            Value::Json(Json::parse("[[1,2]]").unwrap()),
        );
        r
    };
    store.write(&[forged(5, transport::SOCKET)]).unwrap();
    drop(store);
    db.tamper(Tamper::MarkTombstone { n: 2 });
    let p = db.verify().problem.unwrap();
    assert_eq!(p.n, Some(2), "{p}");
    assert!(p.what.contains("without a DSAR"), "{p}");

    // The same record from the collector is what a real deletion looks like.
    let mut store = db.writer(5);
    store.write(&[forged(6, transport::COLLECTOR)]).unwrap();
    drop(store);
    let v = db.verify();
    assert!(v.ok(), "{:?}", v.problem);
    assert_eq!(v.tombstoned, 1);
}

/// A DSAR record vouches only for rows before its own, and only while its own row is
/// intact: given a list that covers everything and tombstoned itself (so that its
/// content goes unchecked), it vouches for nothing, and the rows it tried to cover
/// fail.
pub fn a_dsar_record_cannot_vouch_for_itself(db: &dyn Backend) {
    // The deletion's record is the last chain row.
    let own = after_a_dsar_deletion(db);
    db.tamper(Tamper::EditNameAndFields {
        seq: db.record_seq(own),
        name: logbook_collector::audit::DSAR_DELETE_NAME.into(),
        fields: format!(
            "{{\"{}\":[[1,1000000]]}}",
            logbook_collector::audit::TOMBSTONED_FIELD
        ),
    });
    db.tamper(Tamper::MarkTombstone { n: own });
    db.tamper(Tamper::MarkTombstone { n: 3 });
    let p = db.verify().problem.unwrap();
    assert_eq!(p.n, Some(3), "{p}");
    assert!(p.what.contains("without a DSAR"), "{p}");
}

/// The disk budget purges the oldest ops records, but only when that makes room: when
/// audit records alone fill most of it, nothing is purged (so that ops records are not
/// acknowledged and purged at once, over and over, each purge adding an audit record).
pub fn the_disk_budget_purges_ops_only_when_that_makes_room(db: &dyn Backend) {
    use logbook_collector::retention::budget;
    let now = Timestamp::now().as_nanos();
    let mut store = db.writer(1000);
    let big = |i: u64, audit: bool| {
        let mut r = record(i, now - DAY + i as i64, "acme", "u1", audit);
        r.fields
            .set("payload", Value::Str(format!("{i:08}").repeat(512)));
        r
    };
    let audit: Vec<Record> = (0..300).map(|i| big(i, true)).collect();
    let ops: Vec<Record> = (1000..1030).map(|i| big(i, false)).collect();
    store.write(&audit).unwrap();
    store.write(&ops).unwrap();
    let ops_count = |store: &dyn StoreWriter| {
        store
            .reader()
            .count(&RecordFilter {
                name: Some("request".into()),
                ..RecordFilter::default()
            })
            .unwrap()
    };
    let used = store.used_bytes().unwrap();
    let over = |used: u64| used * 100 / 95;
    assert_eq!(
        budget::enforce(store.as_mut(), over(used), None, None).unwrap(),
        None
    );
    assert_eq!(ops_count(store.as_ref()), 30);

    // Enough ops records to make room: the oldest go, down to about 80 %.
    let ops: Vec<Record> = (2000..3000).map(|i| big(i, false)).collect();
    store.write(&ops).unwrap();
    let used = store.used_bytes().unwrap();
    let max = over(used);
    let report = budget::enforce(store.as_mut(), max, None, None)
        .unwrap()
        .unwrap();
    assert!(report.ops > 0, "{report:?}");
    assert_eq!(ops_count(store.as_ref()), 1030 - report.ops);
    let after = store.used_bytes().unwrap();
    assert!(after <= max * 85 / 100, "{after} of {max}");
    // The oldest went first.
    let oldest = RecordFilter {
        name: Some("request".into()),
        ..RecordFilter::default()
    };
    let page = logbook_collector::query::Page {
        limit: 5000,
        before: None,
    };
    let kept = store.reader().query(&oldest, &page).unwrap();
    assert_eq!(kept.len() as u64, 1030 - report.ops);
    assert!(kept
        .iter()
        .all(|r| r.fields.get("i").and_then(Value::as_i64) >= Some(1030)));
}
