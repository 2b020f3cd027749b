//! Records: idempotent writes, every filter, counts kept and scanned, keyset pages,
//! streaming scans, the record stream and its cursors, drop totals, stats, latency.

use std::collections::HashSet;
use std::sync::Arc;

use logbook_collector::query::{Cursor, Page, RecordFilter, RunFilter};
use logbook_collector::store::{ClientDrops, ClientInfo, StreamCursor};
use logbook_proto::{
    InstanceId, Json, Kind, Level, Record, RecordId, Scope, ScopeKey, Status, Timestamp, TraceId,
    Value,
};
use proptest::prelude::*;

use crate::backend::Backend;
use crate::{event, resource, span, T0};

fn root(i: u64, kind: Kind, ts: i64, run: &str, status: Option<Status>) -> Record {
    let mut r = span(
        i,
        kind,
        ts,
        "root",
        TraceId::from_random(1, 1),
        9,
        None,
        Scope::new()
            .with(ScopeKey::RunId, run)
            .with(ScopeKey::UserId, "u-1"),
    );
    r.category = Some("run".into());
    r.status = status;
    r
}

pub fn writes_filters_pages_and_counters(b: &dyn Backend) {
    let mut store = b.writer(1000);
    let records = vec![
        root(1, Kind::SpanStart, T0, "r1", None),
        event(2, T0 + 10, Level::Info, "r1"),
        event(3, T0 + 10, Level::Error, "r1"),
        event(4, T0 + 20, Level::Warn, "r2"),
        root(5, Kind::SpanEnd, T0 + 30, "r1", Some(Status::Error)),
    ];
    assert_eq!(store.write(&records).unwrap(), [true; 5]);
    assert_eq!(
        store.write(&records[1..3]).unwrap(),
        [false, false],
        "stored once"
    );
    let reader = store.reader();
    let all = reader
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

    let f = |f: RecordFilter| reader.count(&f).unwrap();
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
    let by = |f: fn(&mut RecordFilter)| {
        let mut filter = RecordFilter::default();
        f(&mut filter);
        reader.count(&filter).unwrap()
    };
    assert_eq!(by(|f| f.run_id = Some("r1".into())), 4);
    assert_eq!(by(|f| f.min_level = Some(Level::Warn)), 2);
    assert_eq!(by(|f| f.kind = Some(Kind::Event)), 3);
    assert_eq!(
        by(|f| {
            f.since = Some(Timestamp(T0 + 10));
            f.until = Some(Timestamp(T0 + 20));
        }),
        2
    );
    assert_eq!(by(|f| f.text = Some("message 3".into())), 1);
    assert_eq!(by(|f| f.fields = vec![("i".into(), "4".into())]), 1);
    assert_eq!(by(|f| f.user_id = Some("u-1".into())), 2);
    assert_eq!(by(|f| f.tenant = Some("acme".into())), 3);
    assert_eq!(by(|f| f.trace_id = Some(TraceId::from_random(1, 1))), 5);
    assert_eq!(by(|f| f.name = Some("root".into())), 2);
    assert_eq!(by(|f| f.category = Some("run".into())), 2);
    assert_eq!(by(|f| f.target = Some("nowhere".into())), 0);

    let page = reader
        .query(
            &RecordFilter::default(),
            &Page {
                limit: 2,
                before: None,
            },
        )
        .unwrap();
    let rest = reader
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
        reader
            .scan(&RecordFilter::default(), &mut |r| {
                scanned.push(r.id);
                Ok(())
            })
            .unwrap(),
        5
    );
    assert_eq!(scanned.first(), Some(&records[0].id), "oldest first");

    let client = ClientInfo {
        instance: InstanceId::from_random(5),
        resource: resource("story"),
        origin: Arc::new(logbook_proto::Origin::new(logbook_proto::transport::SOCKET)),
    };
    for dropped in [[0, 0, 5, 1, 0], [0, 0, 3, 2, 0]] {
        store
            .write_batch(&logbook_collector::store::Batch {
                drops: &[ClientDrops {
                    client: client.clone(),
                    dropped,
                }],
                ..Default::default()
            })
            .unwrap();
    }
    store
        .write(&[event(6, T0 + 40, Level::Info, "r2")])
        .unwrap();
    let stats = reader.stats().unwrap();
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
    assert!(stats.storage_bytes > 0);
    assert!(!stats.storage.is_empty());
    let id = RecordId::new(InstanceId::from_random(1), 6);
    assert_eq!(reader.get(id).unwrap().unwrap().id, id);
    assert_eq!(
        reader
            .runs(&RunFilter {
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .len(),
        2
    );
}

pub fn reopening_keeps_the_sequence_growing(b: &dyn Backend) {
    let mut store = b.writer(1000);
    store.write(&[event(1, T0, Level::Info, "r")]).unwrap();
    let first = store.reader().stream_end().unwrap();
    drop(store);
    let mut store = b.writer(1000);
    store.write(&[event(2, T0, Level::Info, "r")]).unwrap();
    assert!(store.reader().stream_end().unwrap() > first);
    assert_eq!(b.reader().count(&RecordFilter::default()).unwrap(), 2);
}

pub fn latency_is_kept_including_the_last_commit(b: &dyn Backend) {
    let now = Timestamp::now().as_nanos();
    {
        let mut store = b.writer(1000);
        // Emitted 50 ms before they are stored.
        let batch: Vec<Record> = (1..=20)
            .map(|i| event(i, now - 50_000_000, Level::Info, "r"))
            .collect();
        store.write(&batch[..10]).unwrap();
        store.write(&batch[10..]).unwrap();
        // The second commit's latencies are written when the store closes.
    }
    let reader = b.reader();
    let h = reader.latency(Timestamp(now - 60_000_000_000)).unwrap();
    assert_eq!(h.count(), 20);
    // At least the 50 ms they waited; the upper bound only catches a wrong unit (a
    // loaded machine may take long to commit).
    let p50 = h.percentile_ms(50.0).unwrap();
    assert!((50.0..60_000.0).contains(&p50), "{p50}");
    assert_eq!(reader.stats().unwrap().latency_count, 20);
}

pub fn field_filters_match_every_value_type_exactly(b: &dyn Backend) {
    let mut store = b.writer(1000);
    let values = [
        ("model", Value::Str("gpt-4o".into())),
        ("model", Value::Str("gpt-4o-mini".into())),
        ("status", Value::U64(500)),
        ("status", Value::Str("500".into())),
        ("delta", Value::I64(-3)),
        ("ratio", Value::F64(12.5)),
        ("cached", Value::Bool(true)),
        ("quote", Value::Str("say \"hi\"\\now".into())),
        ("tags", Value::Json(Json::parse("[1,2]").unwrap())),
        ("naïve key", Value::Str("ünïcode".into())),
        (
            "nested",
            Value::Json(Json::parse(r#"{"model":"gpt-4o"}"#).unwrap()),
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
    store.write(&records).unwrap();
    let reader = store.reader();
    let matching = |k: &str, v: &str| {
        let f = RecordFilter {
            fields: vec![(k.into(), v.into())],
            ..Default::default()
        };
        let mut got: Vec<u64> = reader
            .query(&f, &Page::default())
            .unwrap()
            .iter()
            .map(|r| r.ts.as_nanos() as u64 - T0 as u64)
            .collect();
        got.sort_unstable();
        assert_eq!(reader.count(&f).unwrap(), got.len() as u64);
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

/// Reads the whole stream after `cursor` matching `filter`, `limit` at a time.
fn drain(
    b: &dyn Backend,
    mut cursor: StreamCursor,
    filter: &RecordFilter,
    limit: usize,
) -> (Vec<u64>, StreamCursor) {
    let reader = b.reader();
    let mut seen = Vec::new();
    loop {
        let page = reader.stream_after(cursor, filter, limit).unwrap();
        assert!(page.cursor >= cursor, "cursors only move forward");
        for item in &page.items {
            assert_eq!(
                item.cursor,
                reader.stream_after(cursor, filter, 1).unwrap().items[0].cursor
            );
            cursor = item.cursor;
            seen.push(item.record.fields.get("i").and_then(Value::as_u64).unwrap());
        }
        cursor = page.cursor;
        if page.items.len() < limit {
            return (seen, cursor);
        }
    }
}

pub fn the_stream_resumes_with_no_gap_and_no_duplicate(b: &dyn Backend) {
    let mut store = b.writer(1000);
    let start = store.reader().stream_end().unwrap();
    assert_eq!(start, StreamCursor::START);
    let first: Vec<Record> = (1..=25)
        .map(|i| {
            event(
                i,
                T0 + i as i64,
                Level::Info,
                if i % 2 == 0 { "even" } else { "odd" },
            )
        })
        .collect();
    let written = store.write_batch(&logbook_collector::store::Batch {
        records: &first,
        ..Default::default()
    });
    let written = written.unwrap();
    assert_eq!(written.from, start);
    assert_eq!(written.to, store.reader().stream_end().unwrap());
    let cursors: Vec<StreamCursor> = written.stored.iter().map(|s| s.unwrap().cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(cursors.last(), Some(&written.to));

    // Any page size: every record once, in order.
    for limit in [1, 4, 25, 100] {
        let (seen, end) = drain(b, start, &RecordFilter::default(), limit);
        assert_eq!(seen, (1..=25).collect::<Vec<_>>(), "limit {limit}");
        assert_eq!(end, written.to);
    }
    // Filtered: the cursor passes the records that do not match, to the end.
    let even = RecordFilter {
        run_id: Some("even".into()),
        ..Default::default()
    };
    let (seen, end) = drain(b, start, &even, 3);
    assert_eq!(seen, (2..=24).step_by(2).collect::<Vec<_>>());
    assert_eq!(end, written.to);

    // Resuming from the middle, and after other writers' commits (an admin process
    // beside the writer): nothing missed, nothing repeated.
    let middle = cursors[9];
    let mut other = b.writer(1000);
    other
        .write(&[event(26, T0 + 26, Level::Info, "odd")])
        .unwrap();
    drop(other);
    let again = store
        .write_batch(&logbook_collector::store::Batch {
            records: &[event(27, T0 + 27, Level::Info, "odd"), first[0].clone()],
            ..Default::default()
        })
        .unwrap();
    assert!(
        again.from > written.to,
        "the other writer's commit lies between: a follower sees the gap"
    );
    assert_eq!(again.stored[1], None, "a resend is no new record");
    let (seen, end) = drain(b, middle, &RecordFilter::default(), 7);
    assert_eq!(seen, (11..=27).collect::<Vec<_>>());
    assert_eq!(end, again.to);
    // The text form round-trips.
    assert_eq!(end.to_string().parse::<StreamCursor>().unwrap(), end);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any records, any page size: walking pages with the cursor of each page's last
    /// record visits every record exactly once, newest first.
    #[test]
    fn keyset_pages_partition_the_records(ts in prop::collection::vec(0i64..6, 1..300), limit in 1usize..40, tenant_filter in any::<bool>()) {
        for b in crate::backends() {
            let mut store = b.writer(1000);
            let records: Vec<Record> = ts.iter().enumerate().map(|(i, t)| {
                let mut r = event(i as u64 + 1, T0 + t, Level::Info, "r");
                if i % 3 == 0 {
                    r.scope = Arc::new(Scope::new().with(ScopeKey::Tenant, "other"));
                }
                r
            }).collect();
            store.write(&records).unwrap();
            let reader = store.reader();
            let filter = RecordFilter { tenant: tenant_filter.then(|| "acme".into()), ..Default::default() };
            let want = reader.count(&filter).unwrap() as usize;
            let mut seen = Vec::new();
            let mut before = None;
            loop {
                let page = reader.query(&filter, &Page { limit, before }).unwrap();
                seen.extend(page.iter().map(|r| (r.ts, r.seq, r.id)));
                if page.len() < limit {
                    break;
                }
                let last = page.last().unwrap();
                before = Some(Cursor { ts: last.ts, seq: last.seq });
            }
            prop_assert_eq!(seen.len(), want, "{}", b.name());
            prop_assert_eq!(seen.iter().map(|s| s.2).collect::<HashSet<_>>().len(), want);
            prop_assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) > (w[1].0, w[1].1)));
        }
    }
}
