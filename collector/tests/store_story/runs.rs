//! Runs: kept at ingest, by run id and by trace; the same span tree for every reader;
//! and a merge of run deltas that any order, any split into batches and any repetition
//! of records leaves unchanged (several collectors will feed one run).

use std::collections::BTreeMap;

use logbook_collector::cost::PriceTable;
use logbook_collector::query::{RecordFilter, RunFilter};
use logbook_collector::store::{CallFilter, RunKind, RunSummary, StoreReader};
use logbook_collector::views::{derive, CallRow, RunTree, TreeItem};
use logbook_proto::genai;
use logbook_proto::{Kind, Level, Record, Scope, ScopeKey, Status, TraceId, Value};
use proptest::prelude::*;

use crate::backend::Backend;
use crate::{resource, span, T0};

fn all_runs(reader: &dyn StoreReader) -> Vec<RunSummary> {
    reader
        .runs(&RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .unwrap()
}

fn names(tree: &RunTree<'_>, items: &[TreeItem<'_>]) -> Vec<String> {
    items
        .iter()
        .map(|i| match i {
            TreeItem::Span(s) => tree.span(*s).record().unwrap().name.to_string(),
            TreeItem::Event(r) => format!("event {}", r.message.as_deref().unwrap_or("")),
        })
        .collect()
}

fn child(items: &[TreeItem<'_>], i: usize) -> usize {
    match items[i] {
        TreeItem::Span(s) => s,
        TreeItem::Event(_) => panic!("item {i} is an event"),
    }
}

fn scope_run(run: &str) -> Scope {
    Scope::new()
        .with(ScopeKey::RunId, run)
        .with(ScopeKey::Tenant, "acme")
}

fn in_span(mut r: Record, message: &str) -> Record {
    r.kind = Kind::Event;
    r.message = Some(message.into());
    r.duration_ns = None;
    r.status = None;
    r.parent_span_id = None;
    r
}

pub fn runs_and_their_trees(b: &dyn Backend) {
    let mut store = b.writer(1000);
    let t = TraceId::from_random(7, 7);
    let mut root_start = span(
        1,
        Kind::SpanStart,
        T0,
        "triage",
        t,
        1,
        None,
        scope_run("r-1"),
    );
    root_start.category = Some("run".into());
    let mut root_end = span(
        9,
        Kind::SpanEnd,
        T0 + 90,
        "triage",
        t,
        1,
        None,
        scope_run("r-1"),
    );
    root_end.category = Some("run".into());
    root_end.status = Some(Status::Error);
    root_end.duration_ns = Some(90);
    let mut failing = span(
        5,
        Kind::SpanEnd,
        T0 + 50,
        "fetch",
        t,
        5,
        Some(1),
        scope_run("r-1"),
    );
    failing.status = Some(Status::Error);
    let records = vec![
        root_end,
        span(
            3,
            Kind::SpanStart,
            T0 + 30,
            "fetch",
            t,
            5,
            Some(1),
            scope_run("r-1"),
        ),
        in_span(
            span(4, Kind::Event, T0 + 40, "e", t, 5, None, scope_run("r-1")),
            "retrying",
        ),
        failing,
        span(
            2,
            Kind::SpanStart,
            T0 + 10,
            "plan",
            t,
            3,
            Some(1),
            scope_run("r-1"),
        ),
        span(
            6,
            Kind::SpanEnd,
            T0 + 20,
            "plan",
            t,
            3,
            Some(1),
            scope_run("r-1"),
        ),
        root_start,
    ];
    store.write(&records).unwrap();
    let reader = store.reader();
    let run = reader.run("r-1").unwrap().unwrap();
    assert_eq!(run.kind, RunKind::Run);
    assert_eq!(
        (run.status.as_str(), run.records, run.spans, run.errors),
        ("error", 7, 3, 2)
    );
    assert_eq!(
        (run.root_name.as_deref(), run.duration_ns),
        (Some("triage"), Some(90))
    );
    assert_eq!(run.trace_id, Some(t));
    assert_eq!(reader.runs_of_trace(t).unwrap()[0].run_id, "r-1");

    // The tree, as every reader draws it.
    let recs = reader.run_records("r-1", 100).unwrap();
    assert_eq!(recs.len(), 7);
    let tree = RunTree::build(&recs);
    assert_eq!(names(&tree, &tree.roots), ["triage"]);
    let top = tree.span(child(&tree.roots, 0));
    assert_eq!(top.status_word(), "error");
    assert_eq!(names(&tree, &top.children), ["plan", "fetch"]);
    let fetch = tree.span(child(&top.children, 1));
    assert_eq!(names(&tree, &fetch.children), ["event retrying"]);
    assert_eq!(fetch.status_word(), "error");

    // Filters.
    let count = |f: RunFilter| reader.runs(&RunFilter { limit: 10, ..f }).unwrap().len();
    assert_eq!(
        count(RunFilter {
            status: Some("error".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(RunFilter {
            status: Some("ok".into()),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        count(RunFilter {
            service: Some("story".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(RunFilter {
            tenant: Some("acme".into()),
            ..Default::default()
        }),
        1
    );
    assert_eq!(
        count(RunFilter {
            kind: Some(RunKind::Trace),
            ..Default::default()
        }),
        0
    );
    assert_eq!(
        count(RunFilter {
            since: Some(logbook_proto::Timestamp(T0 + 1)),
            ..Default::default()
        }),
        0
    );
}

pub fn traces_without_run_ids_are_runs(b: &dyn Backend) {
    let mut store = b.writer(1000);
    let none = Scope::new;
    // 1. A request served by a plain service: a trace with no run id.
    let t1 = TraceId::from_random(1, 11);
    let request = [
        span(1, Kind::SpanStart, T0, "GET /users", t1, 1, None, none()),
        span(
            2,
            Kind::SpanStart,
            T0 + 10,
            "db.query",
            t1,
            3,
            Some(1),
            none(),
        ),
        in_span(
            span(3, Kind::Event, T0 + 15, "e", t1, 3, None, none()),
            "slow",
        ),
        span(
            4,
            Kind::SpanEnd,
            T0 + 20,
            "db.query",
            t1,
            3,
            Some(1),
            none(),
        ),
        span(5, Kind::SpanEnd, T0 + 30, "GET /users", t1, 1, None, none()),
    ];
    // 2. An event outside every span: no run.
    let mut loose = in_span(
        span(
            6,
            Kind::Event,
            T0 + 40,
            "e",
            TraceId::from_random(9, 9),
            1,
            None,
            none(),
        ),
        "started",
    );
    loose.span_id = None;
    // 3. A request whose handler starts an agent run: two runs, one trace.
    let t2 = TraceId::from_random(2, 22);
    let mut agent_start = span(
        8,
        Kind::SpanStart,
        T0 + 60,
        "agent",
        t2,
        3,
        Some(1),
        scope_run("agent-1"),
    );
    agent_start.category = Some("run".into());
    let mut agent_end = span(
        9,
        Kind::SpanEnd,
        T0 + 70,
        "agent",
        t2,
        3,
        Some(1),
        scope_run("agent-1"),
    );
    agent_end.category = Some("run".into());
    let nested = [
        span(
            7,
            Kind::SpanStart,
            T0 + 50,
            "POST /chat",
            t2,
            1,
            None,
            none(),
        ),
        agent_start,
        in_span(
            span(
                10,
                Kind::Event,
                T0 + 65,
                "e",
                t2,
                3,
                None,
                scope_run("agent-1"),
            ),
            "thinking",
        ),
        agent_end,
        span(
            11,
            Kind::SpanEnd,
            T0 + 80,
            "POST /chat",
            t2,
            1,
            None,
            none(),
        ),
    ];
    // 4. Spans whose root never arrives (it lives elsewhere, or was lost).
    let t3 = TraceId::from_random(3, 33);
    let orphans = [
        span(
            12,
            Kind::SpanStart,
            T0 + 100,
            "handle",
            t3,
            5,
            Some(99),
            none(),
        ),
        span(
            13,
            Kind::SpanEnd,
            T0 + 110,
            "handle",
            t3,
            5,
            Some(99),
            none(),
        ),
        span(
            14,
            Kind::SpanEnd,
            T0 + 120,
            "handle",
            t3,
            7,
            Some(99),
            none(),
        ),
    ];
    // 5. A root as long as the process (`#[instrument] async fn main`): requests under
    // it for as long as it runs.
    let t4 = TraceId::from_random(4, 44);
    let mut main = vec![span(
        15,
        Kind::SpanStart,
        T0 + 200,
        "main",
        t4,
        1,
        None,
        none(),
    )];
    for i in 0..10u64 {
        main.push(span(
            16 + i,
            Kind::SpanEnd,
            T0 + 210 + i as i64,
            "connection",
            t4,
            3 + 2 * i,
            Some(1),
            none(),
        ));
    }
    for batch in [&request[..], &[loose], &nested[..], &orphans[..], &main[..]] {
        store.write(batch).unwrap();
    }
    let reader = store.reader();

    let r1 = reader
        .run(&t1.to_hex())
        .unwrap()
        .expect("the trace is a run");
    assert_eq!(r1.kind, RunKind::Trace);
    assert_eq!(
        (r1.root_name.as_deref(), r1.status.as_str(), r1.duration_ns),
        (Some("GET /users"), "ok", Some(5_000))
    );
    assert_eq!((r1.records, r1.spans, r1.trace_id), (5, 2, Some(t1)));
    let recs = reader.run_records(&t1.to_hex(), 100).unwrap();
    let tree = RunTree::build(&recs);
    assert_eq!(names(&tree, &tree.roots), ["GET /users"]);
    let top = tree.span(child(&tree.roots, 0));
    assert_eq!(names(&tree, &top.children), ["db.query"]);
    let db = tree.span(child(&top.children, 0));
    assert_eq!(names(&tree, &db.children), ["event slow"]);

    // The event outside every span made no run: five runs in all.
    let runs = all_runs(reader.as_ref());
    assert_eq!(runs.len(), 5, "{runs:#?}");

    // The nested run keeps its records; the trace's run keeps the rest.
    let of_t2 = reader.runs_of_trace(t2).unwrap();
    let keys: Vec<&str> = of_t2.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(keys, [t2.to_hex().as_str(), "agent-1"]);
    let agent = reader.run("agent-1").unwrap().unwrap();
    assert_eq!(
        (
            agent.records,
            agent.root_name.as_deref(),
            agent.status.as_str()
        ),
        (3, Some("agent"), "ok")
    );
    let request = reader.run(&t2.to_hex()).unwrap().unwrap();
    assert_eq!(
        (request.records, request.root_name.as_deref()),
        (2, Some("POST /chat"))
    );
    // Its tree shows its own records; the agent's spans are the agent run's.
    assert_eq!(reader.run_records(&t2.to_hex(), 100).unwrap().len(), 2);

    // No root: still a run, listed, drawn, running until its root arrives.
    let r3 = reader.run(&t3.to_hex()).unwrap().unwrap();
    assert_eq!(
        (r3.root_name, r3.status.as_str(), r3.records, r3.spans),
        (None, "running", 3, 2)
    );
    let recs = reader.run_records(&t3.to_hex(), 100).unwrap();
    let tree = RunTree::build(&recs);
    assert_eq!(
        names(&tree, &tree.roots),
        ["handle", "handle"],
        "each a root of the tree"
    );

    // The process-long root: one run, running, growing with every request.
    let r4 = reader.run(&t4.to_hex()).unwrap().unwrap();
    assert_eq!(
        (
            r4.root_name.as_deref(),
            r4.status.as_str(),
            r4.spans,
            r4.records
        ),
        (Some("main"), "running", 10, 11)
    );
    store
        .write(&[span(
            40,
            Kind::SpanEnd,
            T0 + 400,
            "main",
            t4,
            1,
            None,
            none(),
        )])
        .unwrap();
    let r4 = reader.run(&t4.to_hex()).unwrap().unwrap();
    assert_eq!((r4.status.as_str(), r4.spans), ("ok", 11));
    // Filters see trace runs like any other.
    assert_eq!(
        reader
            .runs(&RunFilter {
                kind: Some(RunKind::Trace),
                limit: 10,
                ..Default::default()
            })
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        reader
            .count(&RecordFilter {
                trace_id: Some(t2),
                ..Default::default()
            })
            .unwrap(),
        5
    );
}

/// The records of three runs, exercising every merge rule: two roots of one run
/// (ranks and span ids), scope and services that differ between records, LLM calls
/// with tokens and costs, tool calls, a trace's run without its root's start.
fn merge_fixture() -> Vec<Record> {
    let mut out = Vec::new();
    let mut n = 0u64;
    let mut next = |kind: Kind,
                    name: &'static str,
                    trace: TraceId,
                    span_id: u64,
                    parent: Option<u64>,
                    scope: Scope| {
        n += 1;
        span(
            n,
            kind,
            T0 + (n as i64 % 7) * 10,
            name,
            trace,
            span_id,
            parent,
            scope,
        )
    };
    let t = TraceId::from_random(5, 55);
    for (run, user, service) in [("m-1", "u-2", "api"), ("m-2", "u-1", "worker")] {
        let scope = || {
            Scope::new()
                .with(ScopeKey::RunId, run)
                .with(ScopeKey::UserId, user)
        };
        // A nested root (rank 1) and the top root (rank 2), in both orders of span id.
        for (sid, parent) in [(3, Some(1)), (1, None), (11, Some(1))] {
            for kind in [Kind::SpanStart, Kind::SpanEnd] {
                let mut r = next(kind, "root", t, sid, parent, scope());
                r.category = Some("run".into());
                r.resource = resource(service);
                // The start and the end of one root name different agents (a
                // `span.record` over the first): either order, the same run.
                let agent = match kind {
                    Kind::SpanStart => format!("agent-{sid}-starting"),
                    _ => format!("agent-{sid}"),
                };
                r.fields.set(genai::AGENT_NAME, Value::Str(agent));
                out.push(r);
            }
        }
        // A second end of the top root (another record of the same span): the error
        // and the longer duration stand, in either order.
        let mut again = next(Kind::SpanEnd, "root", t, 1, None, scope());
        again.category = Some("run".into());
        again.resource = resource(service);
        again.status = Some(Status::Error);
        again.duration_ns = Some(9_000);
        out.push(again);
        for (i, model) in ["gpt-4o", "gpt-4o-mini", "gpt-4o"].iter().enumerate() {
            // Scope that differs between records of one run.
            let tenant = ["x", "a", "m"][i];
            let mut r = next(
                Kind::SpanEnd,
                "chat",
                t,
                21 + 2 * i as u64,
                Some(1),
                scope()
                    .with(ScopeKey::Tenant, tenant)
                    .with(ScopeKey::SessionId, tenant),
            );
            r.category = Some("llm_call".into());
            r.resource = resource(if i == 1 { "api" } else { "worker" });
            r.fields
                .set(genai::PROVIDER_NAME, Value::Str("openai".into()));
            r.fields
                .set(genai::REQUEST_MODEL, Value::Str((*model).into()));
            r.fields
                .set(genai::USAGE_INPUT_TOKENS, Value::U64(1000 + i as u64 * 7));
            r.fields.set(genai::USAGE_OUTPUT_TOKENS, Value::U64(33));
            r.fields
                .set(genai::USAGE_COST, Value::F64(0.1 + i as f64 * 0.2));
            r.fields
                .set(genai::AGENT_NAME, Value::Str(format!("caller-{}", 2 - i)));
            out.push(r);
        }
        let mut tool = next(Kind::SpanEnd, "lookup", t, 41, Some(1), scope());
        tool.category = Some("tool_call".into());
        tool.status = Some(Status::Error);
        tool.fields
            .set(genai::TOOL_NAME, Value::Str("lookup".into()));
        out.push(tool);
        let mut e = next(
            Kind::Event,
            "e",
            t,
            41,
            None,
            scope().with(ScopeKey::Tenant, user),
        );
        e.level = Level::Error;
        out.push(e);
    }
    // Two top roots of one run (started twice): the lower span id wins.
    for (sid, name) in [(7, "second"), (5, "first")] {
        let mut r = next(
            Kind::SpanEnd,
            name,
            t,
            sid,
            None,
            Scope::new().with(ScopeKey::RunId, "m-3"),
        );
        r.category = Some("run".into());
        r.status = Some(if sid == 5 { Status::Ok } else { Status::Error });
        if sid == 7 {
            r.fields.set(genai::AGENT_NAME, Value::Str("zeta".into()));
        }
        out.push(r);
    }
    // The winning root names no agent: the least of its records' names stands.
    let mut e = next(
        Kind::Event,
        "e",
        t,
        5,
        None,
        Scope::new().with(ScopeKey::RunId, "m-3"),
    );
    e.fields.set(genai::AGENT_NAME, Value::Str("alpha".into()));
    out.push(e);
    let t2 = TraceId::from_random(6, 66);
    out.push(next(
        Kind::SpanEnd,
        "GET /",
        t2,
        1,
        None,
        Scope::new().with(ScopeKey::Env, "b"),
    ));
    out.push(next(
        Kind::SpanEnd,
        "query",
        t2,
        3,
        Some(1),
        Scope::new().with(ScopeKey::Env, "a"),
    ));
    out
}

/// The run a delta describes, as a reader returns it.
fn summary_of(d: &logbook_collector::views::RunDelta<'_>) -> RunSummary {
    use logbook_collector::views::call::usd;
    let root = d.root.as_ref();
    RunSummary {
        run_id: d.key.text().into_owned(),
        kind: d.key.kind(),
        started: logbook_proto::Timestamp(d.first_ts),
        last_seen: logbook_proto::Timestamp(d.last_ts),
        status: root.map_or("running", |r| r.status_word()).to_owned(),
        duration_ns: root.and_then(|r| r.duration_ns),
        root_name: root.map(|r| r.name.to_owned()),
        trace_id: Some(d.effective_trace()),
        service: Some(root.map_or(d.service, |r| r.service).to_owned()),
        tenant: d.scope[0].map(str::to_owned),
        env: d.scope[1].map(str::to_owned),
        project: d.scope[2].map(str::to_owned),
        app: d.scope[3].map(str::to_owned),
        user_id: d.scope[4].map(str::to_owned),
        session_id: d.scope[5].map(str::to_owned),
        records: d.records,
        errors: d.errors,
        spans: d.spans,
        agent: root.and_then(|r| r.agent).or(d.agent).map(str::to_owned),
        llm_calls: d.calls.llm_calls,
        tool_calls: d.calls.tool_calls,
        input_tokens: d.calls.input_tokens,
        output_tokens: d.calls.output_tokens,
        cache_read_tokens: d.calls.cache_read_tokens,
        cost: d.calls.cost_nusd.map(usd),
        provider_cost: d.calls.provider_cost_nusd.map(usd),
        models: d.calls.models.iter().cloned().collect(),
        shared: d.scope_max != [d.scope[0], d.scope[4]],
    }
}

/// Runs and call rows, as comparable values (call rows without their seq, which is
/// the order of arrival).
fn views_of(reader: &dyn StoreReader) -> (Vec<RunSummary>, Vec<String>) {
    let mut runs = all_runs(reader);
    runs.sort_by(|a, b| a.run_id.cmp(&b.run_id));
    let f = CallFilter {
        limit: 1000,
        ..CallFilter::default()
    };
    let mut calls: Vec<String> = reader
        .llm_calls(&f)
        .unwrap()
        .into_iter()
        .map(|mut c| {
            c.call.seq = 0;
            format!("{c:?}")
        })
        .chain(reader.tool_calls(&f).unwrap().into_iter().map(|mut c| {
            c.call.seq = 0;
            format!("{c:?}")
        }))
        .collect();
    calls.sort();
    (runs, calls)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Any order, any split into batches, any repetition of the records: the same run
    /// and call rows, in the store and in the pure merge.
    #[test]
    fn run_deltas_merge_in_any_order_split_and_repetition(
        order in Just(merge_fixture()).prop_shuffle(),
        cuts in prop::collection::vec(0usize..40, 0..6),
        repeats in prop::collection::vec(0usize..40, 0..10),
    ) {
        let records = merge_fixture();
        let prices = PriceTable::builtin();
        // The pure merge: deltas of any split, merged in any order, equal the deltas of
        // all records at once.
        let calls: Vec<Option<CallRow<'_>>> = records.iter().map(|r| CallRow::of(r, &prices)).collect();
        let whole = derive(records.iter().zip(calls.iter().map(Option::as_ref)));
        let shuffled_calls: Vec<Option<CallRow<'_>>> = order.iter().map(|r| CallRow::of(r, &prices)).collect();
        let mut merged = BTreeMap::new();
        let mut at = 0;
        let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (order.len() + 1)).collect();
        bounds.sort_unstable();
        bounds.push(order.len());
        for end in bounds {
            let part = derive(order[at..end].iter().zip(shuffled_calls[at..end].iter().map(Option::as_ref)));
            for (k, d) in part {
                match merged.entry(format!("{k:?}")) {
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let m: &mut logbook_collector::views::RunDelta<'_> = e.get_mut();
                        m.merge(d);
                    }
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(d);
                    }
                }
            }
            at = end;
        }
        let whole: BTreeMap<String, _> = whole.into_iter().map(|(k, d)| (format!("{k:?}"), d)).collect();
        prop_assert_eq!(&merged, &whole);
        // And what the store keeps is what the pure merge says.
        let reference = crate::backend::sqlite::Sqlite::new();
        reference.writer(1000).write(&records).unwrap();
        for d in whole.values() {
            let run = reference.reader().run(&d.key.text()).unwrap().unwrap();
            prop_assert_eq!(&run, &summary_of(d));
        }

        // The store: one batch in order, against the shuffled split with repeats.
        for b in crate::backends() {
            let mut store = b.writer(1000);
            let mut at = 0;
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (order.len() + 1)).collect();
            bounds.sort_unstable();
            bounds.push(order.len());
            for (i, end) in bounds.into_iter().enumerate() {
                let mut batch = order[at..end].to_vec();
                // Resends: within the batch, and of earlier batches.
                for r in &repeats {
                    if (r + i) % 3 == 0 {
                        batch.push(order[r % order.len()].clone());
                    }
                }
                store.write(&batch).unwrap();
                at = end;
            }
            let got = views_of(b.reader().as_ref());
            let want = views_of(reference.reader().as_ref());
            prop_assert_eq!(got, want, "{}", b.name());
        }
    }
}
