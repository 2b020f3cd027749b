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

/// A rule of `kind` with `threshold`, on spans named like `span`.
fn rule(kind: &str, threshold: u64, span: &str) -> logbook_collector::alerts::AlertRule {
    logbook_collector::alerts::AlertRule {
        name: kind.into(),
        kind: kind.into(),
        threshold: Some(threshold),
        span: Some(span.into()),
        quantile: None,
        min_count: None,
        budget: None,
        by: None,
        window: Some("1h".into()),
        service: None,
        for_: None,
        repeat: None,
        send_resolved: None,
        webhook: None,
        secret: None,
    }
}

pub fn alert_rules_read_the_rollups(backend: &dyn Backend) {
    use logbook_collector::alerts::observe;
    let mut store = backend.writer(1000);
    let reader = store.reader();
    let now = Timestamp::now().as_nanos();
    // 100 `GET /slow` spans of 10..=1000 ms (p95 950 ms), every fifth failing; 100
    // `GET /fast` of 5 ms, none failing.
    let mut records = Vec::new();
    for i in 0..100u64 {
        for (k, name, ms, error) in [
            (2 * i, "GET /slow", (i + 1) * 10, i % 5 == 0),
            (2 * i + 1, "GET /fast", 5, false),
        ] {
            // Failed spans at ERROR, as OTLP ingest records them.
            let level = if error { Level::Error } else { Level::Info };
            let mut r = event(k + 1, now - 60_000_000_000 + k as i64, level, "run-r");
            r.kind = Kind::SpanEnd;
            r.name = name.to_owned().into();
            r.span_id = Some(logbook_proto::SpanId::from_random(k * 2 + 1));
            r.duration_ns = Some(ms * 1_000_000);
            r.status = Some(if error {
                logbook_proto::Status::Error
            } else {
                logbook_proto::Status::Ok
            });
            records.push(r);
        }
    }
    store
        .write(&Pipeline::default().process(records).0)
        .unwrap();
    monitor::catch_up(reader.as_ref(), backend.writer(1000), &SlowRules::default()).unwrap();
    let at = Timestamp::now();
    let slow = observe(reader.as_ref(), &rule("latency", 500, "GET *"), at).unwrap();
    assert_eq!(slow.len(), 1, "{slow:#?}");
    assert_eq!(slow[0].labels["span"], "GET /slow");
    assert!(
        (slow[0].value - 950.0).abs() <= 950.0 * 0.01 + 1.0,
        "{}",
        slow[0].value
    );
    assert!(
        observe(reader.as_ref(), &rule("latency", 2000, "GET *"), at)
            .unwrap()
            .is_empty()
    );
    let failing = observe(reader.as_ref(), &rule("error_rate", 10, "*"), at).unwrap();
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert_eq!(failing[0].labels["span"], "GET /slow");
    assert!((failing[0].value - 20.0).abs() < 1e-9);
    assert!(observe(reader.as_ref(), &rule("error_rate", 25, "*"), at)
        .unwrap()
        .is_empty());
    let errors = observe(reader.as_ref(), &rule("error_count", 20, "*"), at).unwrap();
    assert_eq!(
        errors.len(),
        1,
        "the 20 failed spans are ERROR records: {errors:#?}"
    );
    assert_eq!(errors[0].value, 20.0);
    // Cost: ten gpt-4o calls of 100,000 input tokens for tenant acme ($0.25 each).
    let calls: Vec<Record> = (0..10u64)
        .map(|i| {
            let mut r = event(
                1000 + i,
                now - 30_000_000_000 + i as i64,
                Level::Info,
                "run-r",
            );
            r.kind = Kind::SpanEnd;
            r.name = "chat gpt-4o".into();
            r.span_id = Some(logbook_proto::SpanId::from_random(5001 + 2 * i));
            r.duration_ns = Some(1_000_000);
            r.status = Some(logbook_proto::Status::Ok);
            r.fields
                .set(genai::OPERATION_NAME, Value::Str("chat".into()));
            r.fields
                .set(genai::PROVIDER_NAME, Value::Str("openai".into()));
            r.fields
                .set(genai::REQUEST_MODEL, Value::Str("gpt-4o".into()));
            r.fields.set(genai::USAGE_INPUT_TOKENS, Value::U64(100_000));
            r.fields.set(genai::USAGE_OUTPUT_TOKENS, Value::U64(0));
            r
        })
        .collect();
    store.write(&Pipeline::default().process(calls).0).unwrap();
    let budget = |usd: f64, by: &str| logbook_collector::alerts::AlertRule {
        budget: Some(usd),
        by: Some(by.into()),
        ..rule("cost", 0, "*")
    };
    let over = observe(reader.as_ref(), &budget(1.0, "tenant"), at).unwrap();
    assert_eq!(over.len(), 1, "{over:#?}");
    assert_eq!(over[0].labels["tenant"], "acme");
    assert!((over[0].value - 2.5).abs() < 1e-9, "{}", over[0].value);
    assert!(observe(reader.as_ref(), &budget(5.0, "total"), at)
        .unwrap()
        .is_empty());
    assert_eq!(
        observe(reader.as_ref(), &budget(2.0, "total"), at)
            .unwrap()
            .len(),
        1
    );
    // Client drops: a client that reported 7 records dropped.
    let client = logbook_collector::store::ClientInfo {
        instance: logbook_proto::InstanceId::from_random(77),
        resource: crate::resource("story"),
        origin: std::sync::Arc::new(logbook_proto::Origin::new(logbook_proto::transport::SOCKET)),
    };
    store
        .write_batch(&logbook_collector::store::Batch {
            drops: &[logbook_collector::store::ClientDrops {
                client,
                dropped: [0, 0, 5, 2, 0],
            }],
            ..Default::default()
        })
        .unwrap();
    let drops =
        |threshold| observe(reader.as_ref(), &rule("client_drops", threshold, "*"), at).unwrap();
    assert_eq!(drops(7).len(), 1);
    assert_eq!(drops(7)[0].value, 7.0);
    assert!(drops(8).is_empty());
    // No data: the story's service sent; another did not.
    let quiet = |service: &str| logbook_collector::alerts::AlertRule {
        service: Some(service.into()),
        ..rule("no_data", 0, "*")
    };
    assert!(observe(reader.as_ref(), &quiet("story"), at)
        .unwrap()
        .is_empty());
    let silent = observe(reader.as_ref(), &quiet("billing"), at).unwrap();
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0].labels["service"], "billing");
}
