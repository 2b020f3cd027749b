//! The agent views through the real pipeline and a real SQLite file: LLM and tool call
//! rows, what they add to their run, cost from the price table (cache reads billed
//! once), OpenInference spans normalised, `cost` groups, a price change followed by a
//! recompute, and a purge that leaves the views consistent.

use std::sync::Arc;

use logbook_collector::cost::Price;
use logbook_collector::pipeline::Pipeline;
use logbook_collector::query::RunFilter;
use logbook_collector::retention::{purge, PurgeOptions, PurgeSpec, Selector, StorageClass};
use logbook_collector::store::{CallFilter, CostBy, StoreOptions, StoreWriter};
use logbook_collector::views::recompute_cost;

use crate::backend::Backend;
use logbook_proto::genai::{self, openinference as oi};
use logbook_proto::{
    InstanceId, Json, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status,
    Timestamp, TraceId, Value,
};

/// 2026-11-21T00:00:00Z.
const T0: i64 = 1_795_219_200_000_000_000;

struct Builder {
    n: u64,
    trace: TraceId,
}

impl Builder {
    fn span_end(
        &mut self,
        name: &'static str,
        run: &str,
        user: &str,
        fields: &[(&'static str, Value)],
    ) -> Record {
        self.n += 1;
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(3), self.n),
            Timestamp(T0 + self.n as i64 * 1_000_000),
            Kind::SpanEnd,
            Level::Info,
            name,
        );
        r.trace_id = self.trace;
        r.span_id = Some(SpanId::from_random(self.n));
        r.duration_ns = Some(500_000);
        r.scope = Arc::new(
            Scope::new()
                .with(ScopeKey::RunId, run)
                .with(ScopeKey::Tenant, "acme")
                .with(ScopeKey::UserId, user),
        );
        r.resource = Arc::new(Resource {
            service: "agent-api".into(),
            host: "h".into(),
            pid: 1,
        });
        for (k, v) in fields {
            r.fields.set(*k, v.clone());
        }
        r
    }
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

fn json(v: &str) -> Value {
    Value::Json(Json::parse(v).unwrap())
}

fn chat(model: &str, input: u64, output: u64, cached: u64) -> Vec<(&'static str, Value)> {
    vec![
        (genai::OPERATION_NAME, s("chat")),
        (genai::PROVIDER_NAME, s("openai")),
        (genai::REQUEST_MODEL, s(model)),
        (genai::USAGE_INPUT_TOKENS, Value::U64(input)),
        (genai::USAGE_OUTPUT_TOKENS, Value::U64(output)),
        (genai::USAGE_CACHE_READ_INPUT_TOKENS, Value::U64(cached)),
        (
            genai::INPUT_MESSAGES,
            json(r#"[{"role":"user","content":"Summarise the ticket"}]"#),
        ),
        (
            genai::OUTPUT_MESSAGES,
            json(r#"[{"role":"assistant","content":"The customer wants a refund."}]"#),
        ),
        (genai::RESPONSE_FINISH_REASONS, json(r#"["stop"]"#)),
    ]
}

fn store(b: &dyn Backend, prices: Vec<Price>) -> Box<dyn StoreWriter> {
    b.writer_with(&StoreOptions {
        prices: Arc::new(logbook_collector::cost::PriceTable::with_overrides(&prices)),
        ..b.options(1000)
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

pub fn calls_runs_and_cost_are_kept_at_ingest(backend: &dyn Backend) {
    let mut store = store(backend, Vec::new());
    let reader = store.reader();
    let mut b = Builder {
        n: 0,
        trace: TraceId::from_random(4, 4),
    };
    let mut provider_reported = chat("gpt-4o-2024-08-06", 1_000, 200, 400);
    provider_reported.push((genai::USAGE_COST, Value::F64(0.0031)));
    provider_reported.push((genai::AGENT_NAME, s("support-bot")));
    let mut failed = chat("gpt-4o-mini", 50, 0, 0);
    failed.push((genai::ERROR_TYPE, s("RateLimitError")));
    let mut failed_end = b.span_end("chat", "run-1", "u-1", &failed);
    failed_end.status = Some(Status::Error);
    let records = vec![
        b.span_end("chat", "run-1", "u-1", &provider_reported),
        failed_end,
        b.span_end(
            "execute_tool",
            "run-1",
            "u-1",
            &[
                (genai::OPERATION_NAME, s("execute_tool")),
                (genai::TOOL_NAME, s("lookup_order")),
                (genai::TOOL_CALL_ID, s("call_1")),
                (genai::TOOL_CALL_ARGUMENTS, json(r#"{"order":"A-17"}"#)),
                (genai::TOOL_CALL_RESULT, json(r#"{"status":"shipped"}"#)),
            ],
        ),
        // OpenInference, as an OTLP exporter would send it.
        b.span_end(
            "ChatCompletion",
            "run-2",
            "u-2",
            &[
                (oi::SPAN_KIND, s("LLM")),
                (oi::LLM_MODEL_NAME, s("claude-sonnet-4-5-20250929")),
                (oi::LLM_PROVIDER, s("anthropic")),
                (oi::LLM_TOKEN_COUNT_PROMPT, Value::I64(2_000)),
                (oi::LLM_TOKEN_COUNT_COMPLETION, Value::I64(100)),
                ("llm.input_messages.0.message.role", s("user")),
                ("llm.input_messages.0.message.content", s("hello")),
            ],
        ),
        // A model without a price.
        b.span_end("chat", "run-2", "u-2", &chat("house-model-7b", 10, 10, 0)),
    ];
    let (ok, rejected) = Pipeline::default().process(records);
    assert!(rejected.is_empty());
    store.write(&ok).unwrap();

    // gpt-4o: 600 uncached at $2.50/M, 400 cached at $1.25/M, 200 out at $10/M.
    let gpt4o = 600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 200.0 * 10e-6;
    let mini = 50.0 * 0.15e-6;
    let sonnet = 2_000.0 * 3e-6 + 100.0 * 15e-6;

    let llm = reader
        .llm_calls(&CallFilter {
            run_id: Some("run-1".into()),
            limit: 10,
            ..CallFilter::default()
        })
        .unwrap();
    assert_eq!(llm.len(), 2);
    let first = llm.iter().find(|c| c.call.status == "ok").unwrap();
    assert_eq!(first.model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert!(close(first.cost.unwrap(), gpt4o), "{:?}", first.cost);
    assert_eq!(first.provider_cost, Some(0.0031));
    assert_eq!(
        first.input_messages.as_ref().unwrap()[0]["content"],
        "Summarise the ticket"
    );
    assert_eq!(first.finish_reasons.as_ref().unwrap()[0], "stop");
    assert_eq!(first.call.duration_ns, Some(500_000));
    let failed = llm.iter().find(|c| c.call.status == "error").unwrap();
    assert_eq!(failed.call.error.as_deref(), Some("RateLimitError"));

    let tools = reader
        .tool_calls(&CallFilter {
            limit: 10,
            ..CallFilter::default()
        })
        .unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0].tool_name.as_deref(), Some("lookup_order"));
    assert_eq!(tools[0].arguments.as_ref().unwrap()["order"], "A-17");
    assert_eq!(tools[0].result.as_ref().unwrap()["status"], "shipped");

    let run1 = reader.run("run-1").unwrap().unwrap();
    assert_eq!((run1.llm_calls, run1.tool_calls), (2, 1));
    assert_eq!(
        (
            run1.input_tokens,
            run1.output_tokens,
            run1.cache_read_tokens
        ),
        (1_050, 200, 400)
    );
    assert!(close(run1.cost.unwrap(), gpt4o + mini));
    assert_eq!(run1.provider_cost, Some(0.0031));
    assert_eq!(run1.models, ["gpt-4o-2024-08-06", "gpt-4o-mini"]);
    assert_eq!(run1.agent.as_deref(), Some("support-bot"));

    // The OpenInference span became an LLM call with GenAI names.
    let run2 = reader.run("run-2").unwrap().unwrap();
    assert_eq!(run2.llm_calls, 2);
    assert!(close(run2.cost.unwrap(), sonnet), "{:?}", run2.cost);
    let oi_call = &reader
        .llm_calls(&CallFilter {
            name: Some("claude-sonnet-4-5-20250929".into()),
            limit: 10,
            ..CallFilter::default()
        })
        .unwrap()[0];
    assert_eq!(oi_call.provider.as_deref(), Some("anthropic"));
    assert_eq!(oi_call.input_tokens, Some(2_000));
    assert_eq!(
        oi_call.input_messages.as_ref().unwrap()[0]["content"],
        "hello"
    );

    // Cost by model and by user.
    let by_model = reader
        .cost(
            CostBy::Model,
            &CallFilter {
                limit: 10,
                ..CallFilter::default()
            },
        )
        .unwrap();
    let house = by_model.iter().find(|g| g.key == "house-model-7b").unwrap();
    assert_eq!(
        (house.calls, house.cost, house.unpriced_calls),
        (1, None, 1)
    );
    let by_user = reader
        .cost(
            CostBy::User,
            &CallFilter {
                limit: 10,
                ..CallFilter::default()
            },
        )
        .unwrap();
    let u1 = by_user.iter().find(|g| g.key == "u-1").unwrap();
    assert!(close(u1.cost.unwrap(), gpt4o + mini));
    assert_eq!(u1.input_tokens, 1_050);
    // Several groupings at once give what each gives alone.
    let all = CallFilter {
        limit: 10,
        ..CallFilter::default()
    };
    let bys = [
        CostBy::Model,
        CostBy::User,
        CostBy::Tenant,
        CostBy::Provider,
    ];
    let together = reader.costs(&bys, &all).unwrap();
    for (by, groups) in bys.iter().zip(&together) {
        let alone = reader.cost(*by, &all).unwrap();
        assert_eq!(groups.len(), alone.len(), "{by:?}");
        for (g, a) in groups.iter().zip(&alone) {
            assert_eq!(
                (
                    &g.key,
                    g.calls,
                    g.input_tokens,
                    g.output_tokens,
                    g.cache_read_tokens,
                    g.unpriced_calls
                ),
                (
                    &a.key,
                    a.calls,
                    a.input_tokens,
                    a.output_tokens,
                    a.cache_read_tokens,
                    a.unpriced_calls
                ),
                "{by:?}"
            );
            assert_eq!(g.cost.is_some(), a.cost.is_some(), "{by:?}");
            assert!(
                close(g.cost.unwrap_or(0.0), a.cost.unwrap_or(0.0)),
                "{by:?}"
            );
        }
    }
    drop(store);

    // A price for the house model, and a new gpt-4o price from before these calls:
    // recompute changes both calls and the runs' totals.
    let overrides = vec![
        Price {
            model: "house-model*".into(),
            provider: None,
            effective: "2026-01-01".parse().unwrap(),
            input: 1.0,
            output: 2.0,
            cache_read: None,
        },
        Price {
            model: "gpt-4o*".into(),
            provider: Some("openai".into()),
            effective: "2026-06-01".parse().unwrap(),
            input: 2.0,
            output: 8.0,
            cache_read: Some(1.0),
        },
    ];
    let mut store = self::store(backend, overrides.clone());
    let prices = logbook_collector::cost::PriceTable::with_overrides(&overrides);
    assert_eq!(recompute_cost(store.as_mut(), &prices).unwrap(), 2);
    let new_gpt4o = 600.0 * 2e-6 + 400.0 * 1e-6 + 200.0 * 8e-6;
    let run1 = reader.run("run-1").unwrap().unwrap();
    assert!(
        close(run1.cost.unwrap(), new_gpt4o + mini),
        "{:?}",
        run1.cost
    );
    let run2 = reader.run("run-2").unwrap().unwrap();
    assert!(close(
        run2.cost.unwrap(),
        sonnet + 10.0 * 1e-6 + 10.0 * 2e-6
    ));
    // Provider-reported cost is never touched.
    assert_eq!(run1.provider_cost, Some(0.0031));

    // Purging run-1's LLM calls (by category) leaves its tool call and refreshes it.
    let report = purge(
        store.as_mut(),
        &[PurgeSpec {
            class: StorageClass::Ops,
            selector: Selector {
                category: Some("llm_call".into()),
                ..Selector::default()
            },
            except: Vec::new(),
            max_age: Some(std::time::Duration::from_secs(0)),
            max_count: None,
        }],
        Timestamp::now(),
        &PurgeOptions::default(),
    )
    .unwrap();
    assert_eq!(report.ops, 4);
    let run1 = reader.run("run-1").unwrap().unwrap();
    assert_eq!((run1.llm_calls, run1.tool_calls), (0, 1));
    assert_eq!((run1.input_tokens, run1.cost), (0, None));
    assert!(run1.models.is_empty());
    assert_eq!(
        reader
            .llm_calls(&CallFilter {
                limit: 10,
                ..CallFilter::default()
            })
            .unwrap()
            .len(),
        0
    );
    // run-2 had only LLM calls: gone with them.
    assert!(reader.run("run-2").unwrap().is_none());
    let runs = reader
        .runs(&RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 1);
}

pub fn a_run_is_its_roots_even_when_other_processes_records_come_first(backend: &dyn Backend) {
    let mut store = store(backend, Vec::new());
    let mut b = Builder {
        n: 0,
        trace: TraceId::from_random(5, 5),
    };
    // A sub-agent in another process, joined through baggage, commits first.
    let mut child = b.span_end(
        "agent",
        "run-x",
        "u-1",
        &[(genai::AGENT_NAME, s("flights"))],
    );
    child.resource = Arc::new(Resource {
        service: "agent-flights".into(),
        host: "h".into(),
        pid: 2,
    });
    store
        .write(&Pipeline::default().process(vec![child]).0)
        .unwrap();
    let mut root = b.span_end(
        "run",
        "run-x",
        "u-1",
        &[(genai::AGENT_NAME, s("orchestrator"))],
    );
    root.category = Some("run".into());
    store
        .write(&Pipeline::default().process(vec![root]).0)
        .unwrap();
    let run = store.reader().run("run-x").unwrap().unwrap();
    assert_eq!(run.service.as_deref(), Some("agent-api"));
    assert_eq!(run.agent.as_deref(), Some("orchestrator"));
    assert_eq!(run.root_name.as_deref(), Some("run"));
}

/// GenAI events fold into their LLM call's prompt and response, whichever arrives first
/// and whether they share a batch: per-message events before the call, a choice after
/// it, both in one batch with it; a prompt the call's attributes gave stays.
pub fn genai_events_fold_into_their_calls(backend: &dyn Backend) {
    let mut store = store(backend, Vec::new());
    let reader = store.reader();
    let mut b = Builder {
        n: 0,
        trace: TraceId::from_random(9, 9),
    };
    let event = |b: &mut Builder, of: &Record, name: &'static str, content: &str| {
        b.n += 1;
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(3), b.n),
            Timestamp(of.ts.as_nanos() - 100_000),
            Kind::Event,
            Level::Info,
            name,
        );
        r.trace_id = of.trace_id;
        r.span_id = of.span_id;
        r.scope = of.scope.clone();
        r.resource = of.resource.clone();
        r.fields.set("content", s(content));
        r
    };
    // Calls whose attributes carry no messages.
    let mut bare = chat("gpt-4o", 10, 5, 0);
    bare.retain(|(k, _)| ![genai::INPUT_MESSAGES, genai::OUTPUT_MESSAGES].contains(k));
    let mut given = bare.clone();
    given.push((
        genai::INPUT_MESSAGES,
        json(r#"[{"role":"user","content":"given"}]"#),
    ));
    let before = b.span_end("chat", "run-fold", "u-1", &bare);
    let after = b.span_end("chat", "run-fold", "u-1", &bare);
    let together = b.span_end("chat", "run-fold", "u-1", &bare);
    let kept = b.span_end("chat", "run-fold", "u-1", &given);
    // Span ids of their own (the builder's repeat every other number).
    let mut own = 101;
    let [before, after, together, kept] = [before, after, together, kept].map(|mut r| {
        own += 2;
        r.span_id = Some(SpanId::from_random(own));
        r
    });
    let first = vec![
        event(&mut b, &before, "gen_ai.system.message", "be brief"),
        event(&mut b, &before, "gen_ai.user.message", "hello"),
        after.clone(),
    ];
    store.write(&Pipeline::default().process(first).0).unwrap();
    let second = vec![
        before.clone(),
        event(&mut b, &after, "gen_ai.choice", "bye"),
        event(&mut b, &together, "gen_ai.user.message", "one batch"),
        together.clone(),
        event(&mut b, &kept, "gen_ai.user.message", "not this"),
        kept.clone(),
    ];
    store.write(&Pipeline::default().process(second).0).unwrap();
    let calls = reader
        .llm_calls(&CallFilter {
            run_id: Some("run-fold".into()),
            limit: 10,
            ..CallFilter::default()
        })
        .unwrap();
    assert_eq!(calls.len(), 4);
    let of = |r: &Record| {
        calls
            .iter()
            .find(|c| c.call.span_id == r.span_id.map(|s| s.to_string()))
            .unwrap_or_else(|| panic!("no call for {:?}", r.span_id))
    };
    assert_eq!(
        of(&before).input_messages,
        Some(serde_json::json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"}
        ]))
    );
    assert_eq!(of(&before).output_messages, None);
    assert_eq!(of(&after).input_messages, None);
    assert_eq!(
        of(&after).output_messages,
        Some(serde_json::json!([{"role": "assistant", "content": "bye"}]))
    );
    assert_eq!(
        of(&together).input_messages,
        Some(serde_json::json!([{"role": "user", "content": "one batch"}]))
    );
    assert_eq!(
        of(&kept).input_messages,
        Some(serde_json::json!([{"role": "user", "content": "given"}]))
    );
}
