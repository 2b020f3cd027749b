//! The admission path and the post-commit feed, on a real SQLite store: outcomes exact
//! per batch whatever shares a commit; every commit published; a subscriber that
//! falls behind is told so and loses nothing by reading the rest from the store; an
//! HTTP-style submission never waits for queue space.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use logbook_collector::admission::commit::{commit, Entry};
use logbook_collector::admission::feed::Feed;
use logbook_collector::admission::{
    Admission, AdmitError, Client, GroupCommit, Intake, QueueLimits, Refusal,
};
use logbook_collector::audit::admin_record;
use logbook_collector::pipeline::Pipeline;
use logbook_collector::query::RecordFilter;
use logbook_collector::store::{
    open_writer, ClientDrops, ClientInfo, StoreAddress, StoreOptions, StoreWriter,
};
use logbook_proto::{
    transport, InstanceId, Kind, Level, Origin, Record, RecordId, Resource, Scope, ScopeKey,
    Timestamp, TraceId, Value,
};
use tokio::sync::broadcast::error::RecvError;

fn client() -> Client {
    ClientInfo {
        instance: InstanceId::from_random(8),
        resource: Arc::new(Resource {
            service: "admitted".into(),
            host: "h".into(),
            pid: 1,
        }),
        origin: Arc::new(Origin {
            uid: Some(1000),
            pid: Some(1),
            ..Origin::new(transport::SOCKET)
        }),
    }
}

fn record(i: u64, tenant: Option<&str>) -> Record {
    let mut r = Record::new(
        RecordId::new(InstanceId::from_random(8), i),
        Timestamp::now(),
        Kind::Event,
        Level::Info,
        "e",
    );
    r.trace_id = TraceId::from_random(1, i);
    r.resource = client().resource;
    let mut scope = Scope::new();
    if let Some(t) = tenant {
        scope = scope.with(ScopeKey::Tenant, t);
    }
    r.scope = Arc::new(scope);
    r.fields.set("i", Value::U64(i));
    r
}

fn store(dir: &std::path::Path) -> Box<dyn StoreWriter> {
    open_writer(
        &StoreAddress::sqlite(dir.join("a.db")),
        &StoreOptions {
            key_dir: Some(dir.join("keys")),
            ..StoreOptions::default()
        },
    )
    .unwrap()
}

/// Regression: the collector's own audit records used to shift the per-batch counts
/// of a shared commit, reporting resent records as stored.
#[test]
fn outcomes_are_exact_whatever_shares_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = store(dir.path());
    let intake = Intake::new(Pipeline::default().require_scope(vec![ScopeKey::Tenant]));
    let c = client();
    let first = intake.admit(
        &c,
        vec![record(1, Some("a")), record(2, None), record(3, Some("a"))],
    );
    let group = vec![
        Entry::Audit(admin_record("test", "before".into(), vec![])),
        Entry::Admitted(first),
        Entry::Drops(ClientDrops {
            client: c.clone(),
            dropped: [0, 0, 1, 0, 0],
        }),
        Entry::Audit(admin_record("test", "between".into(), vec![])),
        // A resend of the first batch's stored records, and one new record.
        Entry::Admitted(intake.admit(
            &c,
            vec![
                record(1, Some("a")),
                record(4, Some("a")),
                record(3, Some("a")),
            ],
        )),
        Entry::Audit(admin_record("test", "after".into(), vec![])),
    ];
    let done = commit(store.as_mut(), group).unwrap();
    let outcomes: Vec<_> = done.outcomes.into_iter().flatten().collect();
    assert_eq!(outcomes.len(), 2);
    assert_eq!((outcomes[0].stored, outcomes[0].duplicates), (2, 0));
    assert_eq!(outcomes[0].refused.len(), 1);
    assert_eq!(outcomes[0].refused[0].index, 1);
    assert_eq!(
        outcomes[0].refused[0].reason,
        Refusal::MissingScope(ScopeKey::Tenant)
    );
    assert_eq!((outcomes[1].stored, outcomes[1].duplicates), (1, 2));
    // Three audit records and three new records committed, in stream order.
    assert_eq!(done.committed.records.len(), 6);
    let to = done.committed.to;
    let items = done.committed.into_items();
    assert!(items
        .windows(2)
        .all(|w| w[0].cursor < w[1].cursor && w[0].record.seq < w[1].record.seq));
    assert_eq!(items.last().unwrap().cursor, to);
    let reader = store.reader();
    assert_eq!(reader.count(&RecordFilter::default()).unwrap(), 6);
    assert_eq!(
        reader.stats().unwrap().quarantined,
        1,
        "the refused record is kept"
    );
}

fn start(
    dir: &std::path::Path,
    feed: &Feed,
    queue_records: usize,
    max_wait: Duration,
) -> (Admission, logbook_collector::admission::WriterThread) {
    Admission::start(
        Intake::default(),
        store(dir),
        QueueLimits {
            records: queue_records,
            bytes: 64 << 20,
            requests: 64,
        },
        GroupCommit {
            max_records: 10_000,
            max_wait,
            max_db_size: None,
        },
        feed.clone(),
        tokio::runtime::Handle::current(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_told_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::new(64);
    let (admission, writer) = start(dir.path(), &feed, 100_000, Duration::from_millis(1));
    let reader =
        logbook_collector::store::open_reader(&StoreAddress::sqlite(dir.path().join("a.db")))
            .unwrap();
    let mut lagging = feed.subscribe();
    let mut follower = feed.follow(Arc::clone(&reader), reader.stream_end().unwrap());
    let mut keeping_up = feed.subscribe();
    let watcher = tokio::spawn(async move {
        // Reads every message as it comes: consecutive commits leave no gap between
        // them but the one another writer made.
        let mut commits = Vec::new();
        while let Ok(c) = keeping_up.recv().await {
            commits.push((c.from, c.to, c.items.as_ref().map(Vec::len)));
            if commits.len() == 101 {
                break;
            }
        }
        commits
    });

    // A hundred commits, awaited one by one, while `lagging` reads nothing: the writer
    // is never held up by it.
    let c = client();
    for b in 0..100u64 {
        let batch = (0..10).map(|i| record(b * 10 + i, None)).collect();
        let outcome = admission.submit(&c, batch).await.unwrap().await.unwrap();
        assert_eq!(outcome.stored, 10);
        if b == 49 {
            // An admin command writes beside the collector.
            let mut other = store(dir.path());
            other.write(&[record(5000, None)]).unwrap();
        }
    }
    match lagging.recv().await {
        Err(RecvError::Lagged(n)) => assert!(n > 0, "lagged by {n}"),
        other => panic!("expected a lag, got {other:?}"),
    }

    // The follower reads from the store: every record once, in order, the admin
    // command's included.
    let mut seen = Vec::new();
    while seen.len() < 1001 {
        let page = tokio::time::timeout(
            Duration::from_secs(10),
            follower.next(&RecordFilter::default(), 64),
        )
        .await
        .expect("records keep coming")
        .unwrap()
        .unwrap();
        seen.extend(page.items.iter().map(|i| i.record.seq));
    }
    assert_eq!(seen.len(), 1001);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, once each");
    let ids: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(ids.len(), 1001);

    let commits = tokio::time::timeout(Duration::from_secs(10), async {
        // One more commit so the watcher has its 101st message.
        admission
            .submit(&c, vec![record(9999, None)])
            .await
            .unwrap()
            .await
            .unwrap();
        watcher.await.unwrap()
    })
    .await
    .unwrap();
    let gaps = commits.windows(2).filter(|w| w[1].0 != w[0].1).count();
    assert_eq!(gaps, 1, "only the admin command's write: {commits:?}");
    assert!(
        commits.iter().all(|c| c.2 == Some(10) || c.2 == Some(1)),
        "small commits carry their records"
    );

    drop(admission);
    drop(feed);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    // The last record, then, with the feed closed and everything read, the end.
    let last = follower
        .next(&RecordFilter::default(), 64)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.items.len(), 1);
    assert!(follower
        .next(&RecordFilter::default(), 64)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_submit_never_waits_for_queue_space() {
    let dir = tempfile::tempdir().unwrap();
    let feed = Feed::default();
    // A queue of 10 records, and a writer that waits up to 2 s to group commits.
    let (admission, writer) = start(dir.path(), &feed, 10, Duration::from_secs(2));
    let c = client();
    let first = admission
        .try_submit(&c, (0..5).map(|i| record(i, None)).collect())
        .unwrap();
    // The queue holds 5 of 10: a batch of 6 does not fit, and is refused at once.
    let started = std::time::Instant::now();
    let busy = admission.try_submit(&c, (10..16).map(|i| record(i, None)).collect());
    assert!(matches!(busy, Err(AdmitError::Busy)));
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(first.await.unwrap().stored, 5);
    // Once committed, the space is back.
    let again = admission
        .try_submit(&c, (10..16).map(|i| record(i, None)).collect())
        .unwrap();
    assert_eq!(again.await.unwrap().stored, 6);
    drop(admission);
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
}
