//! One storage story, written against the `Store` trait so that every backend runs
//! it: idempotent writes, filters, keyset pages, streaming scans, tailing, the runs
//! view and the counters. Plus a property test of pagination.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use logbook_collector::query::{Cursor, Page, RecordFilter, RunFilter};
use logbook_collector::store::{ClientDrops, ClientInfo, Durability, SqliteStore, Store};
use logbook_proto::{
    InstanceId, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status,
    Timestamp, TraceId, Value,
};
use proptest::prelude::*;

const T0: i64 = 1_795_291_200_000_000_000;

fn resource() -> Arc<Resource> {
    Arc::new(Resource {
        service: "story".into(),
        host: "h".into(),
        pid: 7,
    })
}

fn event(i: u64, ts: i64, level: Level, run: &str) -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(1), i),
        Timestamp(ts),
        Kind::Event,
        level,
        "e",
    );
    r.trace_id = TraceId::from_random(1, 1);
    r.scope = Arc::new(
        Scope::new()
            .with(ScopeKey::RunId, run)
            .with(ScopeKey::Tenant, "acme"),
    );
    r.resource = resource();
    r.message = Some(format!("message {i}"));
    r.fields.set("i", Value::U64(i));
    r
}

fn span(i: u64, kind: Kind, ts: i64, run: &str, status: Option<Status>) -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(1), i),
        Timestamp(ts),
        kind,
        Level::Info,
        "root",
    );
    r.trace_id = TraceId::from_random(1, 1);
    r.span_id = Some(SpanId::from_random(9));
    r.scope = Arc::new(
        Scope::new()
            .with(ScopeKey::RunId, run)
            .with(ScopeKey::UserId, "u-1"),
    );
    r.resource = resource();
    r.category = Some("run".into());
    r.status = status;
    if kind == Kind::SpanEnd {
        r.duration_ns = Some(5_000);
    }
    r
}

/// The story every backend must tell.
fn story(store: &mut dyn Store) {
    let records = vec![
        span(1, Kind::SpanStart, T0, "r1", None),
        event(2, T0 + 10, Level::Info, "r1"),
        event(3, T0 + 10, Level::Error, "r1"),
        event(4, T0 + 20, Level::Warn, "r2"),
        span(5, Kind::SpanEnd, T0 + 30, "r1", Some(Status::Error)),
    ];
    assert_eq!(store.write(&records, &[]).unwrap(), [true; 5]);
    assert_eq!(
        store.write(&records[1..3], &[]).unwrap(),
        [false, false],
        "stored once"
    );

    let all = store
        .query(&RecordFilter::default(), &Page::default())
        .unwrap();
    assert_eq!(all.len(), 5);
    assert_eq!(all[0].id, records[4].id, "newest first");
    assert!(all
        .windows(2)
        .all(|w| (w[0].ts, w[0].seq) > (w[1].ts, w[1].seq)));
    assert_eq!(
        all[4],
        Record {
            seq: all[4].seq,
            ..records[0].clone()
        },
        "read back equal"
    );

    let f = |f: RecordFilter| store.count(&f).unwrap();
    // Counts by level and kind alone come from the kept totals: they agree with a scan.
    for min_level in [
        None,
        Some(Level::Debug),
        Some(Level::Warn),
        Some(Level::Error),
    ] {
        for kind in [
            None,
            Some(Kind::Event),
            Some(Kind::SpanStart),
            Some(Kind::SpanEnd),
        ] {
            let kept = RecordFilter {
                min_level,
                kind,
                ..Default::default()
            };
            let scanned = RecordFilter {
                since: Some(Timestamp(i64::MIN)),
                ..kept.clone()
            };
            assert_eq!(f(kept.clone()), f(scanned), "{kept:?}");
        }
    }
    assert_eq!(
        f(RecordFilter {
            run_id: Some("r1".into()),
            ..Default::default()
        }),
        4
    );
    assert_eq!(
        f(RecordFilter {
            min_level: Some(Level::Warn),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        f(RecordFilter {
            kind: Some(Kind::Event),
            ..Default::default()
        }),
        3
    );
    assert_eq!(
        f(RecordFilter {
            since: Some(Timestamp(T0 + 10)),
            until: Some(Timestamp(T0 + 20)),
            ..Default::default()
        }),
        2
    );
    assert_eq!(
        f(RecordFilter {
            text: Some("message 3".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        f(RecordFilter {
            fields: vec![("i".into(), "4".into())],
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        f(RecordFilter {
            user_id: Some("u-1".into()),
            ..Default::default()
        }),
        2
    );

    let page = store
        .query(
            &RecordFilter::default(),
            &Page {
                limit: 2,
                before: None,
            },
        )
        .unwrap();
    let rest = store
        .query(
            &RecordFilter::default(),
            &Page {
                limit: 10,
                before: Some(Cursor {
                    ts: page[1].ts,
                    seq: page[1].seq,
                }),
            },
        )
        .unwrap();
    assert_eq!(page.len() + rest.len(), 5);

    let mut scanned = Vec::new();
    assert_eq!(
        store
            .scan(&RecordFilter::default(), &mut |r| {
                scanned.push(r.id);
                Ok(())
            })
            .unwrap(),
        5
    );
    assert_eq!(scanned.first(), Some(&records[0].id), "oldest first");

    let last = store.last_seq().unwrap();
    store
        .write(&[event(6, T0 + 40, Level::Info, "r2")], &[])
        .unwrap();
    let after = store.after(last, &RecordFilter::default(), 10).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, RecordId::new(InstanceId::from_random(1), 6));
    assert_eq!(store.get(after[0].id).unwrap().unwrap().seq, after[0].seq);

    let r1 = store.run("r1").unwrap().unwrap();
    assert_eq!(
        (r1.status.as_str(), r1.records, r1.errors, r1.spans),
        ("error", 4, 2, 1)
    );
    assert_eq!(
        (r1.started, r1.last_seen, r1.duration_ns),
        (Timestamp(T0), Timestamp(T0 + 30), Some(5_000))
    );
    assert_eq!(
        (
            r1.root_name.as_deref(),
            r1.user_id.as_deref(),
            r1.tenant.as_deref()
        ),
        (Some("root"), Some("u-1"), Some("acme"))
    );
    let r2 = store.run("r2").unwrap().unwrap();
    assert_eq!((r2.status.as_str(), r2.records), ("running", 2));
    let runs = store
        .runs(&RunFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        ["r2", "r1"]
    );
    assert_eq!(
        store
            .runs(&RunFilter {
                status: Some("error".into()),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.run_records("r1", 100).unwrap().len(), 4);

    let client = ClientInfo {
        instance: InstanceId::from_random(5),
        resource: resource(),
    };
    store
        .write(
            &[],
            &[ClientDrops {
                client: client.clone(),
                dropped: [0, 0, 5, 1, 0],
            }],
        )
        .unwrap();
    store
        .write(
            &[],
            &[ClientDrops {
                client,
                dropped: [0, 0, 3, 2, 0],
            }],
        )
        .unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.records, 6);
    assert_eq!(stats.by_level, [0, 0, 4, 1, 1]);
    assert_eq!(stats.by_kind, [4, 1, 1]);
    assert_eq!(stats.runs, 2);
    assert_eq!(
        stats.client_drops[0].dropped,
        [0, 0, 5, 2, 0],
        "running totals: the largest wins"
    );
    assert_eq!(stats.oldest, Some(Timestamp(T0)));
}

#[test]
fn sqlite_tells_the_story() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("s.db"), Durability::Normal).unwrap();
    story(&mut store);
}

#[test]
fn sqlite_reopens_idempotently_and_keeps_sequence_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
    store.write(&[event(1, T0, Level::Info, "r")], &[]).unwrap();
    let first = store.last_seq().unwrap();
    drop(store);
    let mut store = SqliteStore::open(&path, Durability::Full).unwrap();
    store.write(&[event(2, T0, Level::Info, "r")], &[]).unwrap();
    assert!(store.last_seq().unwrap() > first);
    let ro = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(ro.count(&RecordFilter::default()).unwrap(), 2);
}

#[test]
fn emit_to_commit_latency_is_kept_including_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let now = Timestamp::now().as_nanos();
    {
        let mut store = SqliteStore::open(&path, Durability::Normal).unwrap();
        // Emitted 50 ms before they are stored.
        let batch: Vec<Record> = (1..=20)
            .map(|i| event(i, now - 50_000_000, Level::Info, "r"))
            .collect();
        store.write(&batch[..10], &[]).unwrap();
        store.write(&batch[10..], &[]).unwrap();
        // The second commit's latencies are written when the store closes.
    }
    let ro = SqliteStore::open_read_only(&path).unwrap();
    let h = ro.latency(Timestamp(now - 60_000_000_000)).unwrap();
    assert_eq!(h.count(), 20);
    let p50 = h.percentile_ms(50.0).unwrap();
    assert!((50.0..200.0).contains(&p50), "{p50}");
    let stats = ro.stats().unwrap();
    assert_eq!(stats.latency_count, 20);
}

#[test]
fn new_databases_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new/sub/s.db");
    let mut store = SqliteStore::open(&path, Durability::Normal).unwrap();
    store.write(&[event(1, T0, Level::Info, "r")], &[]).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&path.with_extension("db-wal")), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any records, any page size: walking pages with the cursor of each page's last
    /// record visits every record exactly once, newest first.
    #[test]
    fn keyset_pages_partition_the_records(ts in prop::collection::vec(0i64..6, 1..300), limit in 1usize..40, tenant_filter in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SqliteStore::open(&dir.path().join("p.db"), Durability::Normal).unwrap();
        let records: Vec<Record> = ts.iter().enumerate().map(|(i, t)| {
            let mut r = event(i as u64 + 1, T0 + t, Level::Info, "r");
            if i % 3 == 0 {
                r.scope = Arc::new(Scope::new().with(ScopeKey::Tenant, "other"));
            }
            r
        }).collect();
        store.write(&records, &[]).unwrap();
        let filter = RecordFilter { tenant: tenant_filter.then(|| "acme".into()), ..Default::default() };
        let want = store.count(&filter).unwrap() as usize;
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store.query(&filter, &Page { limit, before }).unwrap();
            seen.extend(page.iter().map(|r| (r.ts, r.seq, r.id)));
            if page.len() < limit {
                break;
            }
            let last = page.last().unwrap();
            before = Some(Cursor { ts: last.ts, seq: last.seq });
        }
        prop_assert_eq!(seen.len(), want);
        prop_assert_eq!(seen.iter().map(|s| s.2).collect::<HashSet<_>>().len(), want);
        prop_assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) > (w[1].0, w[1].1)));
    }
}

#[test]
fn field_filters_match_every_value_type_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("f.db"), Durability::Normal).unwrap();
    let values = [
        ("model", Value::Str("gpt-4o".into())),
        ("model", Value::Str("gpt-4o-mini".into())),
        ("status", Value::U64(500)),
        ("status", Value::Str("500".into())),
        ("delta", Value::I64(-3)),
        ("ratio", Value::F64(12.5)),
        ("cached", Value::Bool(true)),
        ("quote", Value::Str("say \"hi\"\\now".into())),
        (
            "tags",
            Value::Json(logbook_proto::Json::parse("[1,2]").unwrap()),
        ),
        ("naïve key", Value::Str("ünïcode".into())),
        (
            "nested",
            Value::Json(logbook_proto::Json::parse(r#"{"model":"gpt-4o"}"#).unwrap()),
        ),
    ];
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            let mut r = event(i as u64 + 1, T0 + i as i64, Level::Info, "f");
            r.fields.set(*k, v.clone());
            r
        })
        .collect();
    store.write(&records, &[]).unwrap();
    let matching = |k: &str, v: &str| {
        let f = RecordFilter {
            fields: vec![(k.into(), v.into())],
            ..Default::default()
        };
        let mut got: Vec<u64> = store
            .query(&f, &Page::default())
            .unwrap()
            .iter()
            .map(|r| r.ts.as_nanos() as u64 - T0 as u64)
            .collect();
        got.sort_unstable();
        assert_eq!(store.count(&f).unwrap(), got.len() as u64);
        got
    };
    assert_eq!(matching("model", "gpt-4o"), [0]);
    assert_eq!(matching("model", "gpt-4o-mini"), [1]);
    assert_eq!(matching("model", "gpt"), Vec::<u64>::new());
    assert_eq!(matching("status", "500"), [2, 3]);
    assert_eq!(matching("delta", "-3"), [4]);
    assert_eq!(matching("ratio", "12.5"), [5]);
    assert_eq!(matching("cached", "true"), [6]);
    assert_eq!(matching("cached", "1"), Vec::<u64>::new());
    assert_eq!(matching("quote", "say \"hi\"\\now"), [7]);
    assert_eq!(matching("tags", "[1,2]"), [8]);
    assert_eq!(matching("naïve key", "ünïcode"), [9]);
    assert_eq!(matching("nested", r#"{"model":"gpt-4o"}"#), [10]);
    assert_eq!(matching("i", "1"), [0]);
}
