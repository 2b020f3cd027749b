//! A reader scoped to a tenant: it sees its records and runs, counts and sums them
//! alone, and sees nothing of another tenant's, nor a run shared with one.

use std::sync::Arc;

use logbook_collector::query::{Page, RecordFilter, RunFilter};
use logbook_collector::store::{scoped, CallFilter, StreamCursor, Visibility};
use logbook_proto::{Level, Record, Scope, ScopeKey};

use crate::backend::Backend;
use crate::{event, T0};

fn of(mut r: Record, tenant: &str) -> Record {
    let run = r.scope.get(ScopeKey::RunId).unwrap_or("").to_owned();
    r.scope = Arc::new(
        Scope::new()
            .with(ScopeKey::RunId, run)
            .with(ScopeKey::Tenant, tenant),
    );
    r
}

pub fn a_scoped_reader_sees_only_its_tenant_and_no_shared_run(b: &dyn Backend) {
    let mut store = b.writer(1000);
    let records = vec![
        of(event(1, T0, Level::Info, "acme-run"), "acme"),
        of(event(2, T0 + 1, Level::Error, "acme-run"), "acme"),
        of(event(3, T0 + 2, Level::Info, "globex-run"), "globex"),
        // A run both tenants wrote to.
        of(event(4, T0 + 3, Level::Info, "both-run"), "acme"),
        of(event(5, T0 + 4, Level::Warn, "both-run"), "globex"),
    ];
    store.write(&records).unwrap();
    let all = store.reader();
    let acme = scoped(
        Arc::clone(&all),
        Visibility {
            tenant: Some("acme".into()),
            user_id: None,
        },
    );
    let page = Page {
        limit: 100,
        before: None,
    };
    let ids = |rs: Vec<Record>| rs.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(acme.query(&RecordFilter::default(), &page).unwrap()),
        ids(vec![
            records[3].clone(),
            records[1].clone(),
            records[0].clone()
        ])
    );
    let globex = RecordFilter {
        tenant: Some("globex".into()),
        ..RecordFilter::default()
    };
    assert!(acme.query(&globex, &page).unwrap().is_empty());
    assert_eq!(acme.count(&globex).unwrap(), 0);
    assert_eq!(acme.count(&RecordFilter::default()).unwrap(), 3);
    assert!(acme.get(records[2].id).unwrap().is_none());
    assert!(acme.get(records[0].id).unwrap().is_some());
    let mut scanned = 0;
    acme.scan(&RecordFilter::default(), &mut |_| {
        scanned += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(scanned, 3);
    let streamed = acme
        .stream_after(StreamCursor::START, &RecordFilter::default(), 100)
        .unwrap();
    assert_eq!(streamed.items.len(), 3);

    // Runs: its own; not globex's, not the shared one (its totals are both tenants').
    let all_runs = all
        .runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(all_runs.len(), 3);
    assert!(all_runs.iter().any(|r| r.run_id == "both-run" && r.shared));
    let runs = acme
        .runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.run_id.as_str()).collect::<Vec<_>>(),
        ["acme-run"]
    );
    assert_eq!(acme.count_runs(&RunFilter::default()).unwrap(), 1);
    assert!(acme.run("globex-run").unwrap().is_none());
    assert!(acme.run("both-run").unwrap().is_none());
    assert!(acme.run_records("both-run", 100).unwrap().is_empty());
    assert_eq!(acme.run_records("acme-run", 100).unwrap().len(), 2);

    // Stats count its records alone; the store's own numbers are not its.
    let stats = acme.stats().unwrap();
    assert_eq!(stats.records, 3);
    assert_eq!(stats.by_level, [0, 0, 2, 0, 1]);
    assert_eq!(stats.runs, 1);
    assert_eq!(stats.oldest.map(|t| t.as_nanos()), Some(T0));
    assert_eq!(stats.newest.map(|t| t.as_nanos()), Some(T0 + 3));
    assert_eq!(stats.audit_records, 0);
    assert!(acme.quarantined(10).is_err());
    assert!(acme.tokens().is_err());
    assert!(acme
        .llm_calls(&CallFilter {
            tenant: Some("globex".into()),
            limit: 10,
            ..CallFilter::default()
        })
        .unwrap()
        .is_empty());
}
