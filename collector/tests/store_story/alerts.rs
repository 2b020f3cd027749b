//! What alerts keep: the loop detector's counts (a tool with the same canonical
//! arguments in a run still running), the alerts' states and their history.

use std::collections::BTreeMap;

use logbook_collector::monitor::{self, SlowRules};
use logbook_collector::pipeline::Pipeline;
use logbook_collector::store::alerts::{AlertEvent, AlertState};
use logbook_proto::{genai, Kind, Level, Record, Timestamp, Value};

use crate::backend::Backend;
use crate::event;

/// 2026-11-21T00:00:00Z.
const T0: i64 = 1_795_219_200_000_000_000;

fn tool_call(i: u64, run: &str, args: &str) -> Record {
    let mut r = event(i, T0 + i as i64 * 1_000_000, Level::Info, run);
    r.kind = Kind::SpanEnd;
    r.name = "execute_tool search".into();
    r.span_id = Some(logbook_proto::SpanId::from_random(i * 2 + 1));
    // Inside the run's root span.
    r.parent_span_id = Some(logbook_proto::SpanId::from_random(999));
    r.duration_ns = Some(1_000_000);
    r.status = Some(logbook_proto::Status::Ok);
    r.fields
        .set(genai::OPERATION_NAME, Value::Str("execute_tool".into()));
    r.fields.set(genai::TOOL_NAME, Value::Str("search".into()));
    r.fields
        .set(genai::TOOL_CALL_ARGUMENTS, Value::Str(args.into()));
    r
}

pub fn loops_states_and_history_are_kept(backend: &dyn Backend) {
    let mut store = backend.writer(1000);
    let reader = store.reader();
    // run-a: the same arguments three times (keys in another order, other spacing),
    // other arguments once; run-b: twice; run-c: three times but finished.
    let mut records = vec![
        tool_call(1, "run-a", r#"{"q": "refunds", "page": 1}"#),
        tool_call(2, "run-a", r#"{"page":1,"q":"refunds"}"#),
        tool_call(3, "run-a", r#"{ "q":"refunds","page":1 }"#),
        tool_call(4, "run-a", r#"{"q": "other"}"#),
        tool_call(5, "run-b", r#"{"q": "refunds"}"#),
        tool_call(6, "run-b", r#"{"q": "refunds"}"#),
    ];
    for i in 7..10 {
        records.push(tool_call(i, "run-c", r#"{"q": "x"}"#));
    }
    // run-c's root ends: the run is no longer running.
    let mut root = event(10, T0 + 20_000_000, Level::Info, "run-c");
    root.kind = Kind::SpanEnd;
    root.name = "run".into();
    root.span_id = Some(logbook_proto::SpanId::from_random(999));
    root.duration_ns = Some(10_000_000);
    root.status = Some(logbook_proto::Status::Ok);
    // As the layer marks the span that introduces a run id.
    root.category = Some(logbook_collector::pipeline::CATEGORY_RUN.into());
    records.push(root);
    store
        .write(&Pipeline::default().process(records).0)
        .unwrap();
    monitor::catch_up(reader.as_ref(), backend.writer(1000), &SlowRules::default()).unwrap();
    let loops = reader.open_loops(3).unwrap();
    assert_eq!(loops.len(), 1, "{loops:#?}");
    assert_eq!(loops[0].run_id, "run-a");
    assert_eq!(loops[0].count, 3);
    assert_eq!(loops[0].arguments, r#"{"page":1,"q":"refunds"}"#);
    assert_eq!(reader.open_loops(2).unwrap().len(), 2, "run-b at two");

    // States are replaced as a whole; events only ever added.
    let state = AlertState {
        rule: "loop".into(),
        key: "run_id=run-a".into(),
        state: "firing".into(),
        since: Timestamp(T0),
        last_sent: Some(Timestamp(T0)),
        labels: BTreeMap::from([("run_id".into(), "run-a".into())]),
        value: 3.0,
        summary: "stuck".into(),
    };
    let fired = AlertEvent {
        ts: Timestamp(T0),
        started: Timestamp(T0),
        rule: "loop".into(),
        key: state.key.clone(),
        state: "firing".into(),
        labels: state.labels.clone(),
        value: 3.0,
        summary: "stuck".into(),
        delivery: "sent".into(),
        attempts: 1,
    };
    assert!(store.alert_lease().unwrap());
    store
        .save_alerts(std::slice::from_ref(&state), std::slice::from_ref(&fired))
        .unwrap();
    assert_eq!(reader.alert_states().unwrap(), [state]);
    let resolved = AlertEvent {
        ts: Timestamp(T0 + 1),
        started: Timestamp(T0 + 1),
        state: "resolved".into(),
        delivery: "failed: connection refused".into(),
        attempts: 3,
        ..fired.clone()
    };
    store
        .save_alerts(&[], std::slice::from_ref(&resolved))
        .unwrap();
    assert!(reader.alert_states().unwrap().is_empty());
    assert_eq!(reader.alert_events(10).unwrap(), [resolved, fired]);
}
