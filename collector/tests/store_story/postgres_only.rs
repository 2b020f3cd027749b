//! What only PostgreSQL promises: several collectors writing to one database at once.
//! Each writer here is its own connection and thread, as each collector's writer is.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use logbook_collector::audit::Keys;
use logbook_collector::query::{RecordFilter, RunFilter};
use logbook_collector::store::{open_writer, StreamCursor};
use logbook_proto::{Kind, Level, Record, Scope, ScopeKey, TraceId};

use crate::backend::postgres::{url_of, Postgres};
use crate::backend::Backend;
use crate::{event, span, T0};

/// `n` writers of `b`'s store sharing its keys, each on a thread of its own, all
/// starting `work` at the same moment; their results in order.
fn at_once<T: Send + 'static>(
    b: &Postgres,
    n: usize,
    work: impl Fn(usize, &mut dyn logbook_collector::store::StoreWriter) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let work = Arc::new(work);
    let barrier = Arc::new(Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let mut w = b.writer(1000);
            let (work, barrier) = (Arc::clone(&work), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                work(i, w.as_mut())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn one_batch_sent_to_two_collectors_at_once_is_stored_once() {
    let b = Postgres::new();
    let batch: Vec<Record> = (1..=2000)
        .map(|i| event(i, T0 + i as i64, Level::Info, "twice"))
        .collect();
    let batch = Arc::new(batch);
    let results = {
        let batch = Arc::clone(&batch);
        at_once(&b, 2, move |_, w| w.write(&batch).unwrap())
    };
    // Each record is new for exactly one of them.
    for i in 0..batch.len() {
        assert_eq!(
            results.iter().filter(|r| r[i]).count(),
            1,
            "record {i} stored by {:?}",
            results.iter().map(|r| r[i]).collect::<Vec<_>>()
        );
    }
    let reader = b.reader();
    assert_eq!(reader.count(&RecordFilter::default()).unwrap(), 2000);
    assert_eq!(
        reader
            .count(&RecordFilter {
                run_id: Some("twice".into()),
                ..RecordFilter::default()
            })
            .unwrap(),
        2000
    );
    let run = reader.run("twice").unwrap().unwrap();
    assert_eq!(run.records, 2000, "each record counted once in its run");
}

/// A run of `spans` spans, each with a start, an end and an event, some failing.
fn agent_run(spans: u64) -> Vec<Record> {
    let trace = TraceId::from_random(9, 9);
    let scope = || {
        Scope::new()
            .with(ScopeKey::RunId, "fleet-run")
            .with(ScopeKey::Tenant, "acme")
            .with(ScopeKey::UserId, "u-1")
    };
    let mut out = Vec::new();
    let mut i = 0;
    let mut next = || {
        i += 1;
        i
    };
    let root = 1;
    out.push(span(
        next(),
        Kind::SpanStart,
        T0,
        "agent",
        trace,
        root,
        None,
        scope(),
    ));
    for s in 2..=spans {
        let t = T0 + s as i64 * 1000;
        out.push(span(
            next(),
            Kind::SpanStart,
            t,
            "step",
            trace,
            s,
            Some(root),
            scope(),
        ));
        let mut e = span(
            next(),
            Kind::Event,
            t + 1,
            "note",
            trace,
            s,
            Some(root),
            scope(),
        );
        e.parent_span_id = None;
        e.duration_ns = None;
        e.status = None;
        out.push(e);
        let mut end = span(
            next(),
            Kind::SpanEnd,
            t + 500,
            "step",
            trace,
            s,
            Some(root),
            scope(),
        );
        if s % 7 == 0 {
            end.status = Some(logbook_proto::Status::Error);
            end.level = Level::Error;
        }
        out.push(end);
    }
    out.push(span(
        next(),
        Kind::SpanEnd,
        T0 + spans as i64 * 1000 + 1000,
        "agent",
        trace,
        root,
        None,
        scope(),
    ));
    out
}

#[test]
fn a_run_through_three_collectors_is_the_run_through_one() {
    let records = agent_run(60);
    // Through one, in order.
    let one = Postgres::new();
    one.writer(1000).write(&records).unwrap();
    let expected = one.reader().run("fleet-run").unwrap().unwrap();

    // Through three at once, each a third (interleaved), in small batches, and some
    // records sent to two of them.
    let three = Postgres::new();
    let records = Arc::new(records);
    {
        let records = Arc::clone(&records);
        at_once(&three, 3, move |i, w| {
            let mine: Vec<Record> = records
                .iter()
                .enumerate()
                .filter(|(j, _)| j % 3 == i || j % 11 == 0)
                .map(|(_, r)| r.clone())
                .collect();
            for chunk in mine.chunks(7) {
                w.write(chunk).unwrap();
            }
        });
    }
    let got = three.reader().run("fleet-run").unwrap().unwrap();
    assert_eq!(got, expected);
    assert_eq!(
        three.reader().count(&RecordFilter::default()).unwrap(),
        records.len() as u64
    );
}

#[test]
fn the_audit_chain_of_several_writers_verifies() {
    let b = Postgres::new();
    at_once(&b, 3, |i, w| {
        for k in 0..20u64 {
            let mut r = event(i as u64 * 1000 + k, T0 + k as i64, Level::Info, "audited");
            r.category = Some("audit".into());
            w.write(&[r]).unwrap();
        }
    });
    let report = b.verify();
    assert!(report.ok(), "{report:?}");
    let keys = Keys::load(&b.dir().join("keys")).unwrap();
    assert_eq!(
        keys.public(),
        Keys::load(&b.dir().join("keys")).unwrap().public()
    );
    assert_eq!(b.reader().stats().unwrap().audit_records, 60);
}

#[test]
fn a_follower_misses_nothing_while_three_collectors_commit() {
    let b = Postgres::new();
    drop(b.writer(1000));
    let reader = b.reader();
    let start = reader.stream_end().unwrap();
    let per = 1500u64;
    let follower = {
        let reader = Arc::clone(&reader);
        std::thread::spawn(move || {
            let mut cursor: StreamCursor = start;
            let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while (seen.len() as u64) < 3 * per && std::time::Instant::now() < deadline {
                let page = reader
                    .stream_after(cursor, &RecordFilter::default(), 97)
                    .unwrap();
                for item in page.items {
                    if let Some(i) = item.record.fields.get("i").and_then(|v| v.as_u64()) {
                        *seen.entry(i).or_default() += 1;
                    }
                }
                cursor = page.cursor;
            }
            seen
        })
    };
    at_once(&b, 3, move |w_i, w| {
        let base = w_i as u64 * 100_000;
        let records: Vec<Record> = (0..per)
            .map(|k| event(base + k, T0 + k as i64, Level::Info, "follow"))
            .collect();
        for chunk in records.chunks(50) {
            w.write(chunk).unwrap();
        }
    });
    let seen = follower.join().unwrap();
    assert_eq!(seen.len() as u64, 3 * per, "every record seen");
    assert!(seen.values().all(|n| *n == 1), "none seen twice");
}

#[test]
fn a_schema_newer_than_this_collector_is_refused_unless_it_stays_compatible() {
    let b = Postgres::new();
    drop(b.writer(1000));
    let mut admin = ::postgres::Client::connect(&url_of(b.db_name()), ::postgres::NoTls).unwrap();
    // A later release added something this one can write beside.
    admin
        .batch_execute("UPDATE logbook_schema SET version = version + 1")
        .unwrap();
    let mut w = open_writer(&b.address(), &b.options(1000)).unwrap();
    w.write(&[event(1, T0, Level::Info, "old")]).unwrap();
    drop(w);
    assert!(b.reader().runs(&RunFilter::default()).is_ok());
    // And then something this one cannot.
    admin
        .batch_execute("UPDATE logbook_schema SET compatible = version")
        .unwrap();
    let err = open_writer(&b.address(), &b.options(1000))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("newer than this logbook"), "{err}");
    let err = logbook_collector::store::open_reader(&b.address())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("newer than this logbook"), "{err}");
}

#[test]
fn a_collector_with_other_keys_is_refused() {
    let b = Postgres::new();
    drop(b.writer(1000));
    let other = tempfile::tempdir().unwrap();
    let err = open_writer(
        &b.address(),
        &logbook_collector::store::StoreOptions {
            key_dir: Some(other.path().join("keys")),
            checkpoint_file: Some(other.path().join("c.checkpoints")),
            ..logbook_collector::store::StoreOptions::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("not the ones this database's audit chain"),
        "{err}"
    );
    // The fleet's keys still open it.
    drop(b.writer(1000));
}

#[test]
fn three_monitors_on_one_database_count_each_exception_once() {
    let b = Postgres::new();
    // 6,000 errors of three kinds, in batches as collectors commit them.
    let mut w = b.writer(1000);
    for chunk in 0..6 {
        let batch: Vec<Record> = (1..=1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let mut r = event(n, T0 + n as i64, Level::Error, "errs");
                r.fields.set(
                    "error",
                    logbook_proto::Value::Str(format!("kind {} failed at step {n}", n % 3)),
                );
                r.fields.set(
                    "error.types",
                    logbook_proto::Value::Str(format!("Kind{}", n % 3)),
                );
                r
            })
            .collect();
        w.write(&batch).unwrap();
    }
    let reader = b.reader();
    // Three monitors (three collectors' tasks) read and apply the same stream at once.
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (reader, writer) = (b.reader(), b.writer(1000));
            std::thread::spawn(move || {
                logbook_collector::monitor::catch_up(reader.as_ref(), writer, &Default::default())
                    .unwrap()
            })
        })
        .collect();
    let read: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(read >= 6000, "together they read the stream ({read})");
    let groups = reader
        .exception_groups(&logbook_collector::store::ExceptionFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(groups.len(), 3, "{groups:#?}");
    assert_eq!(
        groups.iter().map(|g| g.count).sum::<u64>(),
        6000,
        "each error once"
    );
    assert!(groups.iter().all(|g| g.count == 2000));
}

#[test]
fn one_collector_of_a_fleet_evaluates_alerts() {
    let b = Postgres::new();
    let (mut first, mut second) = (b.writer(1000), b.writer(1000));
    assert!(first.alert_lease().unwrap());
    assert!(!second.alert_lease().unwrap(), "the lease is held");
    assert!(first.alert_lease().unwrap(), "and stays with its holder");
    drop(first);
    // The holder's connection gone, another takes over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !second.alert_lease().unwrap() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
