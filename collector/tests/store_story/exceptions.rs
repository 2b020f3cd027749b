//! Exception groups through the monitor (`logbook_collector::monitor`): records are
//! grouped by fingerprint and counted once, however often the monitor runs; a page
//! applied from a cursor the store no longer keeps is refused; people's changes
//! (resolve in a version, ignore for N more, reopen, notes) and the regressions they
//! lead to; the list's filters; a DSAR deletion takes the user out.

use std::sync::Arc;

use logbook_collector::monitor;
use logbook_collector::pipeline::Pipeline;
use logbook_collector::store::{
    ExceptionChange, ExceptionFilter, ExceptionGroup, ExceptionSort, ExceptionState, MonitorUpdate,
    StoreReader, StreamCursor, Subject,
};
use logbook_proto::{Level, Record, Scope, ScopeKey, Value};

use crate::backend::Backend;
use crate::{event, resource};

/// 2026-11-21T00:00:00Z.
const T0: i64 = 1_795_219_200_000_000_000;

/// An ERROR event with an error field, as the layer records a `dyn Error`.
fn failure(i: u64, service: &str, user: &str, version: &str, message: &str, types: &str) -> Record {
    let mut r = event(i, T0 + i as i64 * 1_000_000_000, Level::Error, "run-x");
    r.target = "shop::orders".into();
    r.message = Some("lookup failed".into());
    r.resource = resource(service);
    r.scope = Arc::new(
        Scope::new()
            .with(ScopeKey::RunId, "run-x")
            .with(ScopeKey::Tenant, "acme")
            .with(ScopeKey::UserId, user),
    );
    r.fields.set("error", Value::Str(message.into()));
    r.fields.set("error.types", Value::Str(types.into()));
    r.fields.set("service.version", Value::Str(version.into()));
    r
}

fn all(reader: &dyn StoreReader) -> Vec<ExceptionGroup> {
    reader
        .exception_groups(&ExceptionFilter {
            sort: ExceptionSort::Count,
            limit: 100,
            ..ExceptionFilter::default()
        })
        .unwrap()
}

pub fn exception_groups_count_once_and_follow_their_state(backend: &dyn Backend) {
    let mut store = backend.writer(1000);
    let reader = store.reader();
    let catch_up =
        || monitor::catch_up(reader.as_ref(), backend.writer(1000), &Default::default()).unwrap();
    let mut batch = vec![
        failure(
            1,
            "orders",
            "u-1",
            "1.9.0",
            "order 17 not found",
            "NotFound",
        ),
        failure(
            2,
            "orders",
            "u-2",
            "1.9.0",
            "order 99 not found",
            "NotFound",
        ),
        failure(
            3,
            "billing",
            "u-1",
            "1.9.0",
            "order 5 not found",
            "NotFound",
        ),
        failure(
            4,
            "orders",
            "u-1",
            "1.9.0",
            "card 4242 declined",
            "Declined",
        ),
    ];
    // Not exceptions: an info line, a warning with an error field.
    batch.push(event(5, T0 + 5_000_000_000, Level::Info, "run-x"));
    let mut warn = event(6, T0 + 6_000_000_000, Level::Warn, "run-x");
    warn.fields.set("error", Value::Str("retrying".into()));
    batch.push(warn);
    store.write(&Pipeline::default().process(batch).0).unwrap();
    assert_eq!(catch_up(), 6, "the monitor read every record");
    assert_eq!(catch_up(), 0, "and has nothing left to read");

    let groups = all(reader.as_ref());
    assert_eq!(groups.len(), 2, "{groups:#?}");
    let not_found = &groups[0];
    assert_eq!(not_found.kind, "NotFound");
    assert_eq!(not_found.basis, "callsite");
    assert_eq!(not_found.count, 3);
    assert_eq!(not_found.users, 2);
    assert_eq!(not_found.services, ["orders", "billing"]);
    assert_eq!(not_found.versions, ["1.9.0"]);
    assert_eq!(not_found.message, "order 17 not found");
    assert_eq!(not_found.status.state, ExceptionState::Unresolved);
    assert_eq!(not_found.last_run.as_deref(), Some("run-x"));
    let fp = not_found.fingerprint.clone();
    assert_eq!(groups[1].count, 1);

    // A page from a cursor the store no longer keeps (another collector took it):
    // nothing applied.
    let stale = MonitorUpdate {
        from: StreamCursor::START,
        to: StreamCursor::from_backend(1),
        exceptions: monitor::exception_deltas(&[]),
        ..MonitorUpdate::default()
    };
    assert!(!store.apply_monitor(&stale).unwrap());
    assert_eq!(all(reader.as_ref())[0].count, 3);

    // Resolved in 2.0.0: an old deploy failing again keeps it resolved; 2.0.0 regresses.
    let g = store
        .change_exception(
            &fp,
            &ExceptionChange::Resolve {
                in_version: Some("2.0.0".into()),
            },
        )
        .unwrap()
        .unwrap();
    assert_eq!(g.status.state, ExceptionState::Resolved);
    store
        .write(
            &Pipeline::default()
                .process(vec![failure(
                    7,
                    "orders",
                    "u-3",
                    "1.9.0",
                    "order 1 not found",
                    "NotFound",
                )])
                .0,
        )
        .unwrap();
    catch_up();
    let g = &all(reader.as_ref())[0];
    assert_eq!((g.count, g.status.state), (4, ExceptionState::Resolved));
    store
        .write(
            &Pipeline::default()
                .process(vec![failure(
                    8,
                    "orders",
                    "u-3",
                    "2.0.0",
                    "order 2 not found",
                    "NotFound",
                )])
                .0,
        )
        .unwrap();
    catch_up();
    let g = &all(reader.as_ref())[0];
    assert_eq!((g.count, g.status.state), (5, ExceptionState::Regressed));
    assert_eq!(g.users, 3);
    assert_eq!(g.versions.len(), 2);

    // Ignored until two more: one keeps it ignored, the second brings it back.
    store
        .change_exception(
            &fp,
            &ExceptionChange::Ignore {
                until: None,
                more: Some(2),
            },
        )
        .unwrap();
    for i in [9, 10] {
        store
            .write(
                &Pipeline::default()
                    .process(vec![failure(
                        i,
                        "orders",
                        "u-1",
                        "2.0.0",
                        "order 3 not found",
                        "NotFound",
                    )])
                    .0,
            )
            .unwrap();
        catch_up();
        let expected = if i == 9 {
            ExceptionState::Ignored
        } else {
            ExceptionState::Unresolved
        };
        assert_eq!(
            all(reader.as_ref())[0].status.state,
            expected,
            "after record {i}"
        );
    }

    // Notes, the trend and the tags.
    store
        .change_exception(
            &fp,
            &ExceptionChange::Note {
                author: "ana".into(),
                text: "a stale cache".into(),
            },
        )
        .unwrap();
    let d = reader.exception_group(&fp).unwrap().unwrap();
    assert_eq!(d.notes.len(), 1);
    assert_eq!(d.notes[0].author, "ana");
    assert_eq!(d.trend.iter().map(|(_, n)| n).sum::<u64>(), 7);
    assert!(d.tags.iter().any(|t| t.value == "u-3"));
    assert!(reader.exception_group("1:nope").unwrap().is_none());
    assert!(store
        .change_exception("1:nope", &ExceptionChange::Reopen)
        .unwrap()
        .is_none());

    // Filters: state, service, text, fingerprint prefix.
    let only = |f: ExceptionFilter| -> Vec<String> {
        reader
            .exception_groups(&ExceptionFilter { limit: 10, ..f })
            .unwrap()
            .into_iter()
            .map(|g| g.kind)
            .collect()
    };
    assert_eq!(
        only(ExceptionFilter {
            service: Some("billing".into()),
            ..ExceptionFilter::default()
        }),
        ["NotFound"]
    );
    assert_eq!(
        only(ExceptionFilter {
            text: Some("DECLINED".into()),
            ..ExceptionFilter::default()
        }),
        ["Declined"]
    );
    assert_eq!(
        only(ExceptionFilter {
            states: vec![ExceptionState::Resolved],
            ..ExceptionFilter::default()
        }),
        Vec::<String>::new()
    );
    assert_eq!(
        only(ExceptionFilter {
            fingerprint_prefix: Some(fp[..8].to_owned()),
            ..ExceptionFilter::default()
        }),
        ["NotFound"]
    );
    assert_eq!(
        monitor::find_group(reader.as_ref(), &fp[2..10]).unwrap(),
        fp,
        "a beginning without the version names the group"
    );

    // A DSAR deletion of u-3 takes them out of the affected users.
    assert!(
        store
            .forget_in_exceptions(&Subject::User("u-3".into()))
            .unwrap()
            >= 1
    );
    let g = reader.exception_group(&fp).unwrap().unwrap();
    assert_eq!(g.group.users, 2);
    assert!(!g.tags.iter().any(|t| t.value == "u-3"));
}
