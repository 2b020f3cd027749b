//! Span metrics and log volume through the monitor: per service, span name and model,
//! by minute and by hour; hours equal their minutes merged (sketches merge exactly);
//! percentiles within 1 %; old rows pruned.

use logbook_collector::monitor::{self, SlowRules};
use logbook_collector::pipeline::Pipeline;
use logbook_collector::store::metrics::{summaries, MetricsFilter, HOUR_NS, MINUTE_NS};
use logbook_proto::{genai, Kind, Level, Record, Status, Timestamp, Value};

use crate::backend::Backend;
use crate::{event, resource};

/// 2026-11-21T00:00:00Z.
const T0: i64 = 1_795_219_200_000_000_000;

fn span_end(i: u64, ts: i64, name: &str, ms: u64, error: bool, model: Option<&str>) -> Record {
    let mut r = event(i, ts, Level::Info, "run-m");
    r.kind = Kind::SpanEnd;
    r.name = name.to_owned().into();
    r.span_id = Some(logbook_proto::SpanId::from_random(i * 2 + 1));
    r.duration_ns = Some(ms * 1_000_000);
    r.status = Some(if error { Status::Error } else { Status::Ok });
    r.resource = resource("api");
    if let Some(m) = model {
        r.fields
            .set(genai::OPERATION_NAME, Value::Str("chat".into()));
        r.fields.set(genai::REQUEST_MODEL, Value::Str(m.into()));
    }
    if name.starts_with("GET") {
        r.fields
            .set("http.request.method", Value::Str("GET".into()));
    }
    r
}

pub fn span_metrics_roll_up_by_minute_and_hour(backend: &dyn Backend) {
    let mut store = backend.writer(1000);
    let reader = store.reader();
    let slow = SlowRules {
        rules: vec![("chat*".into(), 150_000_000)],
        ..SlowRules::default()
    };
    // Three minutes of `GET /orders` (1..=300 ms; every tenth fails; over 1 s: none)
    // and 20 LLM calls of two models, one slow; and some log lines.
    let mut records = Vec::new();
    let mut i = 0u64;
    for minute in 0..3i64 {
        for k in 1..=100u64 {
            i += 1;
            let ts = T0 + minute * MINUTE_NS + k as i64 * 100_000_000;
            records.push(span_end(i, ts, "GET /orders", k * 3, k % 10 == 0, None));
        }
    }
    for k in 0..20u64 {
        i += 1;
        let model = if k % 2 == 0 {
            "gpt-4o"
        } else {
            "claude-sonnet-4"
        };
        records.push(span_end(
            i,
            T0 + k as i64 * 1_000_000_000,
            "chat",
            if k == 7 { 200 } else { 80 },
            false,
            Some(model),
        ));
    }
    for (k, level) in [Level::Warn, Level::Error, Level::Info]
        .into_iter()
        .enumerate()
    {
        i += 1;
        records.push(event(i, T0 + k as i64, level, "run-m"));
    }
    store
        .write(&Pipeline::default().process(records).0)
        .unwrap();
    let read = monitor::catch_up(reader.as_ref(), backend.writer(1000), &slow).unwrap();
    assert_eq!(read, 323);

    let minutes = MetricsFilter {
        since: Timestamp(T0),
        until: Timestamp(T0 + 3 * MINUTE_NS),
        ..MetricsFilter::default()
    };
    let rows = reader.span_rows(&minutes).unwrap();
    assert!(rows.iter().all(|r| r.period % MINUTE_NS == 0));
    let all = summaries(&rows, &minutes, false);
    let get = &all[0];
    assert_eq!(
        (get.key.name.as_str(), get.count, get.errors, get.slow),
        ("GET /orders", 300, 30, 0)
    );
    // 300 values 3..300 ms, thrice: the exact p50 is 150 ms, p99 297 ms.
    let near = |got: Option<u64>, want_ms: f64| {
        let got = got.unwrap() as f64 / 1e6;
        assert!(
            (got - want_ms).abs() <= want_ms * 0.01 + 0.001,
            "{got} vs {want_ms}"
        );
    };
    near(get.p50_ns, 150.0);
    near(get.p99_ns, 297.0);
    assert_eq!(get.mean_ns, 151_500_000);
    let chat = all.iter().find(|s| s.key.name == "chat").unwrap();
    assert_eq!(
        (chat.count, chat.slow),
        (20, 1),
        "the configured rule made one slow"
    );
    let by_model = summaries(&rows, &minutes, true);
    assert_eq!(by_model.iter().filter(|s| s.key.name == "chat").count(), 2);
    assert!(by_model
        .iter()
        .any(|s| s.key.model == "gpt-4o" && s.count == 10));

    // The hour's row is the three minutes merged.
    let hours = MetricsFilter {
        since: Timestamp(T0),
        until: Timestamp(T0 + 7 * HOUR_NS),
        ..MetricsFilter::default()
    };
    let hour_rows = reader.span_rows(&hours).unwrap();
    assert!(hour_rows.iter().all(|r| r.period == T0));
    let hour = summaries(&hour_rows, &hours, false);
    let from_hour = hour.iter().find(|s| s.key.name == "GET /orders").unwrap();
    assert_eq!(
        (
            from_hour.count,
            from_hour.errors,
            from_hour.p50_ns,
            from_hour.p99_ns
        ),
        (get.count, get.errors, get.p50_ns, get.p99_ns)
    );

    // Filters: service, a name prefix.
    let only_chat = MetricsFilter {
        name: Some("ch".into()),
        ..minutes.clone()
    };
    assert!(reader
        .span_rows(&only_chat)
        .unwrap()
        .iter()
        .all(|r| r.key.name == "chat"));
    let other = MetricsFilter {
        service: Some("nope".into()),
        ..minutes.clone()
    };
    assert!(reader.span_rows(&other).unwrap().is_empty());

    // Log volume: every record by level.
    let volume = reader.log_volume(&minutes).unwrap();
    let of = |level: Level| {
        volume
            .iter()
            .filter(|(_, l, _)| *l == level.code())
            .map(|(_, _, n)| n)
            .sum::<u64>()
    };
    assert_eq!(of(Level::Warn), 1);
    assert_eq!(of(Level::Error), 1);
    assert_eq!(of(Level::Info), 321);

    // Read again, nothing changes; pruning the minutes leaves the hours.
    assert_eq!(
        monitor::catch_up(reader.as_ref(), backend.writer(1000), &slow).unwrap(),
        0
    );
    assert_eq!(reader.span_rows(&minutes).unwrap().len(), rows.len());
    let pruned = store
        .prune_metrics(Timestamp(T0 + HOUR_NS), Timestamp(T0))
        .unwrap();
    assert!(pruned > 0);
    assert!(reader.span_rows(&minutes).unwrap().is_empty());
    assert_eq!(reader.span_rows(&hours).unwrap().len(), hour_rows.len());
}
