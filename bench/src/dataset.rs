//! A realistic store for the query benchmarks: a week of agent runs (steps, LLM and tool
//! calls), ordinary request traffic with database spans, and log events at every level,
//! across many tenants, projects, apps and users. Deterministic for a given size.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use logbook_collector::pipeline::Pipeline;
use logbook_collector::store::{open_writer, Durability, StoreAddress, StoreOptions, StoreWriter};
use logbook_proto::{
    InstanceId, Kind, Level, Record, RecordId, Resource, Scope, ScopeKey, SpanId, Status, Str,
    Timestamp, TraceId, Value,
};

/// Bump when the generated data changes, so cached stores are rebuilt.
const VERSION: u32 = 4;
/// Records per write, as the collector's group commit makes them.
const BATCH: usize = 20_000;
/// The week the records span, ending an hour before generation time so that no span's
/// end lies in the future.
const SPAN_NS: i64 = 7 * 24 * 3_600 * 1_000_000_000;
const END_BEFORE_NOW_NS: i64 = 3_600 * 1_000_000_000;
/// Spans in each of the large runs.
pub(crate) const BIG_RUN_SPANS: usize = 1_000;

/// splitmix64: small, fast and good enough to pick parameters.
#[derive(Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Skewed towards small values (a few tenants, models, … carry most traffic).
    pub(crate) fn skewed(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * n as f64) as usize).min(n - 1)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

pub(crate) const MODELS: &[&str] = &[
    "gpt-4o-mini",
    "claude-sonnet-4",
    "gpt-4o",
    "gemini-2.5-flash",
    "llama-3.1-70b",
];
pub(crate) const TOOLS: &[&str] = &[
    "web_search",
    "fetch_url",
    "read_file",
    "write_file",
    "run_sql",
    "send_email",
    "calendar_lookup",
    "vector_search",
    "python",
    "shell",
    "create_ticket",
    "get_weather",
    "translate",
    "summarize_pdf",
    "crm_lookup",
];
pub(crate) const ROUTES: &[&str] = &[
    "/api/chat",
    "/api/runs",
    "/api/runs/{id}",
    "/api/files",
    "/api/users/{id}",
    "/api/search",
    "/healthz",
    "/api/billing",
];
pub(crate) const APPS: &[&str] = &["assistant", "support-bot", "research", "ops-agent", "web"];
pub(crate) const SERVICES: &[&str] = &["agent-api", "agent-worker", "gateway", "indexer"];
pub(crate) const TARGETS: &[&str] = &[
    "app::agent",
    "app::agent::planner",
    "app::agent::memory",
    "app::llm",
    "app::tools",
    "app::tools::web",
    "app::tools::sql",
    "app::http",
    "app::db",
    "app::auth",
    "app::billing",
    "tower_http::trace",
    "sqlx::query",
    "hyper::proto::h1",
];
pub(crate) const NAMES: &[&str] = &[
    "run",
    "step",
    "llm.chat",
    "tool.call",
    "http.request",
    "db.query",
    "plan",
    "memory.recall",
];

/// Words of the messages: a few very common, most rare, as in real logs.
pub(crate) fn vocabulary() -> Vec<String> {
    let common = [
        "request",
        "handled",
        "user",
        "model",
        "tool",
        "call",
        "failed",
        "retry",
        "cache",
        "miss",
        "hit",
        "timeout",
        "connection",
        "token",
        "budget",
        "plan",
        "step",
        "done",
        "started",
        "loaded",
        "document",
        "query",
        "rows",
        "latency",
        "slow",
        "rate",
        "limit",
        "exceeded",
        "context",
        "window",
        "truncated",
        "memory",
        "recall",
        "embedding",
        "index",
        "updated",
        "invalid",
        "schema",
        "response",
        "parsed",
    ];
    let mut v: Vec<String> = common.iter().map(|w| (*w).to_owned()).collect();
    let syllables = [
        "ka", "lo", "mi", "ra", "ten", "vo", "zu", "pel", "dor", "qui", "sa", "ne",
    ];
    let mut rng = Rng::new(7);
    while v.len() < 3_000 {
        let n = 2 + rng.below(3);
        let w: String = (0..n).map(|_| *rng.pick(&syllables)).collect();
        if !v.contains(&w) {
            v.push(w);
        }
    }
    v
}

/// What the queries need to know about the generated store.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Dataset {
    pub(crate) records: u64,
    pub(crate) first_ts: i64,
    pub(crate) last_ts: i64,
    /// Some runs, with the time of their first record.
    pub(crate) runs: Vec<(String, i64)>,
    /// The runs of [`BIG_RUN_SPANS`] spans.
    pub(crate) big_runs: Vec<String>,
    /// Some traces, with the time of their first record.
    pub(crate) traces: Vec<(String, i64)>,
    pub(crate) tenants: usize,
    pub(crate) projects: usize,
    pub(crate) users: usize,
    pub(crate) seconds_to_generate: f64,
    /// Time in the redaction rules alone (on copies of the batches).
    #[serde(default)]
    pub(crate) redact_seconds: f64,
    /// Time in the collector's pipeline (redaction, validation, category).
    #[serde(default)]
    pub(crate) pipeline_seconds: f64,
    /// Time in `StoreWriter::write`.
    #[serde(default)]
    pub(crate) store_seconds: f64,
}

/// The store of `n` records under `dir`, generated unless a previous run left it there.
pub(crate) fn ensure(dir: &Path, n: u64) -> anyhow::Result<(PathBuf, Dataset)> {
    std::fs::create_dir_all(dir)?;
    let db = dir.join(format!("queries-v{VERSION}-{n}.db"));
    let meta = db.with_extension("json");
    if let Ok(text) = std::fs::read_to_string(&meta) {
        if db.exists() {
            if let Ok(d) = serde_json::from_str::<Dataset>(&text) {
                // Kept from an older build: brought up to this build's schema, as
                // `logbook serve` would.
                drop(open_writer(
                    &StoreAddress::sqlite(&db),
                    &StoreOptions::with_durability(Durability::Normal),
                )?);
                return Ok((db, d));
            }
        }
    }
    for ext in ["db", "db-wal", "db-shm", "json"] {
        let _ = std::fs::remove_file(db.with_extension(ext));
    }
    eprintln!("generating {n} records into {} …", db.display());
    let d = generate(&db, n)?;
    std::fs::write(&meta, serde_json::to_string(&d)?)?;
    Ok((db, d))
}

struct Generator {
    rng: Rng,
    vocab: Vec<String>,
    pipeline: Pipeline,
    redactor: logbook_redact::Redactor,
    store: Box<dyn StoreWriter>,
    batch: Vec<Record>,
    instance: InstanceId,
    counter: u64,
    total: u64,
    t0: i64,
    resources: Vec<Arc<Resource>>,
    d: Dataset,
}

pub(crate) fn generate(db: &Path, total: u64) -> anyhow::Result<Dataset> {
    generate_into(
        &StoreAddress::sqlite(db),
        &StoreOptions::with_durability(Durability::Normal),
        total,
    )
}

/// [`generate`] into any store.
pub(crate) fn generate_into(
    address: &StoreAddress,
    options: &StoreOptions,
    total: u64,
) -> anyhow::Result<Dataset> {
    let started = Instant::now();
    let t0 = Timestamp::now().as_nanos() - SPAN_NS - END_BEFORE_NOW_NS;
    let scale = total.max(100_000);
    let mut g = Generator {
        rng: Rng::new(0x10_6b00c),
        vocab: vocabulary(),
        pipeline: Pipeline::default(),
        redactor: logbook_redact::Redactor::builtin(),
        store: open_writer(address, options).context("creating the query store")?,
        batch: Vec::with_capacity(BATCH),
        instance: InstanceId::from_random(0xbe0c),
        counter: 0,
        total,
        t0,
        resources: SERVICES
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Arc::new(Resource {
                    service: (*s).into(),
                    host: format!("node-{}", i % 3),
                    pid: 1000 + i as u32,
                })
            })
            .collect(),
        d: Dataset {
            records: 0,
            first_ts: t0,
            last_ts: t0,
            runs: Vec::new(),
            big_runs: Vec::new(),
            traces: Vec::new(),
            tenants: (scale / 25_000).clamp(8, 400) as usize,
            projects: (scale / 50_000).clamp(4, 200) as usize,
            users: (scale / 500).clamp(200, 20_000) as usize,
            seconds_to_generate: 0.0,
            redact_seconds: 0.0,
            pipeline_seconds: 0.0,
            store_seconds: 0.0,
        },
    };
    // One in ten records belongs to a large run, up to 100 of them.
    let big_runs = (total / (BIG_RUN_SPANS as u64 * 20)).clamp(1, 100);
    let big_every = total / big_runs;
    let mut next_big = big_every / 2;
    let mut unit = 0u64;
    while g.counter < total {
        if g.counter >= next_big {
            g.agent_run(unit, Some(BIG_RUN_SPANS))?;
            next_big += big_every;
        } else if g.rng.chance(0.35) {
            g.agent_run(unit, None)?;
        } else {
            g.request(unit)?;
        }
        unit += 1;
    }
    g.flush()?;
    g.d.records = g.counter;
    g.d.seconds_to_generate = started.elapsed().as_secs_f64();
    Ok(g.d)
}

impl Generator {
    /// The time of the next record: evenly through the week, in emission order.
    fn ts(&mut self) -> Timestamp {
        let jitter = self.rng.below(1_000) as i64;
        Timestamp(self.t0 + (SPAN_NS / self.total as i64) * self.counter as i64 + jitter)
    }

    fn record(
        &mut self,
        kind: Kind,
        level: Level,
        name: &'static str,
        target: &'static str,
    ) -> Record {
        let ts = self.ts();
        self.counter += 1;
        let mut r = Record::new(
            RecordId::new(self.instance, self.counter),
            ts,
            kind,
            level,
            name,
        );
        r.target = Str::Borrowed(target);
        r
    }

    fn push(&mut self, r: Record) -> anyhow::Result<()> {
        self.d.last_ts = r.ts.as_nanos();
        self.batch.push(r);
        if self.batch.len() >= BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        // The rules alone, on a copy (the pipeline below redacts the batch itself).
        let mut copy = self.batch.clone();
        let mut counts = logbook_redact::Counts::new();
        let t = Instant::now();
        for r in &mut copy {
            self.redactor.redact_record(r, &mut counts);
        }
        self.d.redact_seconds += t.elapsed().as_secs_f64();
        drop(copy);
        let t = Instant::now();
        let (ok, rejected) = self.pipeline.process(std::mem::take(&mut self.batch));
        self.d.pipeline_seconds += t.elapsed().as_secs_f64();
        anyhow::ensure!(
            rejected.is_empty(),
            "generated records rejected: {:?}",
            rejected[0].reason
        );
        let t = Instant::now();
        self.store.write(&ok)?;
        self.d.store_seconds += t.elapsed().as_secs_f64();
        Ok(())
    }

    fn message(&mut self) -> String {
        let n = 4 + self.rng.below(8);
        let words: Vec<&str> = (0..n)
            .map(|_| self.vocab[self.rng.skewed(self.vocab.len())].as_str())
            .collect();
        words.join(" ")
    }

    fn event_level(&mut self) -> Level {
        match self.rng.below(1000) {
            0..=39 => Level::Trace,
            40..=239 => Level::Debug,
            240..=939 => Level::Info,
            940..=984 => Level::Warn,
            _ => Level::Error,
        }
    }

    /// A log event under `span`.
    fn event(&mut self, ctx: &Ctx, target: &'static str) -> anyhow::Result<()> {
        let level = self.event_level();
        let line = 10 + self.rng.below(400) as u32;
        let mut r = self.record(Kind::Event, level, "event", target);
        r.name = Str::Owned(format!("event src/{}.rs:{line}", target.replace("::", "/")));
        r.message = Some(self.message());
        r.file = Some(Str::Owned(format!("src/{}.rs", target.replace("::", "/"))));
        r.line = Some(line);
        ctx.apply(&mut r, Some(ctx.span));
        r.fields
            .set("attempt", Value::U64(self.rng.below(3) as u64));
        if level >= Level::Warn {
            r.fields.set(
                "error.kind",
                Value::Str(
                    self.rng
                        .pick(&["timeout", "rate_limited", "invalid_input", "unavailable"])
                        .to_string(),
                ),
            );
        }
        self.push(r)
    }

    /// A span: its start, whatever `inside` emits, then its end.
    fn span(
        &mut self,
        ctx: &Ctx,
        name: &'static str,
        target: &'static str,
        level: Level,
        fields: &[(&'static str, Value)],
        inside: &mut dyn FnMut(&mut Self, &Ctx) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let id = SpanId::from_random(self.rng.next());
        let mut start = self.record(Kind::SpanStart, level, name, target);
        ctx.apply(&mut start, Some(id));
        start.parent_span_id = ctx.parent;
        for (k, v) in fields {
            start.fields.set(*k, v.clone());
        }
        let begin = start.ts.as_nanos();
        let mut end = start.clone();
        self.push(start)?;
        let child = Ctx {
            span: id,
            parent: Some(id),
            ..ctx.clone()
        };
        inside(self, &child)?;
        let ts = self.ts();
        self.counter += 1;
        end.id = RecordId::new(self.instance, self.counter);
        end.kind = Kind::SpanEnd;
        end.ts = ts;
        let failed = self.rng.chance(0.02);
        end.status = Some(if failed { Status::Error } else { Status::Ok });
        let duration = (ts.as_nanos() - begin).max(1_000) as u64;
        end.duration_ns = Some(duration);
        end.busy_ns = Some(duration / 3);
        end.idle_ns = Some(duration - duration / 3);
        self.push(end)
    }

    fn scope(&mut self, run: Option<&str>) -> Arc<Scope> {
        let tenant = self.rng.skewed(self.d.tenants);
        let mut s = Scope::new()
            .with(ScopeKey::Tenant, format!("tenant-{tenant:03}"))
            .with(
                ScopeKey::Project,
                format!("project-{:03}", self.rng.skewed(self.d.projects)),
            )
            .with(ScopeKey::App, *self.rng.pick(APPS))
            .with(
                ScopeKey::Env,
                if self.rng.chance(0.9) {
                    "prod"
                } else {
                    "staging"
                },
            )
            .with(
                ScopeKey::UserId,
                format!("user-{:05}", self.rng.skewed(self.d.users)),
            );
        if let Some(run) = run {
            s.set(ScopeKey::RunId, Some(run.to_owned()));
        } else {
            s.set(
                ScopeKey::RequestId,
                Some(format!("req-{:016x}", self.rng.next())),
            );
        }
        Arc::new(s)
    }

    fn new_ctx(&mut self, unit: u64, run: Option<&str>) -> Ctx {
        let trace = TraceId::from_random(self.rng.next(), self.rng.next());
        let resource = Arc::clone(self.rng.pick(&self.resources));
        let ctx = Ctx {
            trace,
            span: SpanId::from_random(0),
            parent: None,
            scope: self.scope(run),
            resource,
        };
        if unit.is_multiple_of(97) && self.d.traces.len() < 2_000 {
            let ts = self.ts().as_nanos();
            self.d.traces.push((trace.to_string(), ts));
        }
        ctx
    }

    /// An agent run: steps of LLM and tool calls with log events, or `big` spans of them.
    fn agent_run(&mut self, unit: u64, big: Option<usize>) -> anyhow::Result<()> {
        let run = format!("run-{unit:08x}-{:04x}", self.rng.below(0x10000));
        let ctx = self.new_ctx(unit, Some(&run));
        if big.is_some() {
            self.d.big_runs.push(run.clone());
        } else if unit.is_multiple_of(13) && self.d.runs.len() < 2_000 {
            let ts = self.ts().as_nanos();
            self.d.runs.push((run.clone(), ts));
        }
        let agent = Value::Str((*self.rng.pick(APPS)).to_owned());
        // Spans under the root: a big run has exactly `big - 1` of them.
        let mut budget = big.map_or(usize::MAX, |b| b - 1);
        let steps = if big.is_some() {
            usize::MAX
        } else {
            2 + self.rng.below(5)
        };
        self.span(
            &ctx,
            "run",
            "app::agent",
            Level::Info,
            &[("gen_ai.agent.name", agent)],
            &mut |g, ctx| {
                let mut step = 0;
                while step < steps && budget > 0 {
                    step += 1;
                    budget -= 1;
                    let calls = 1 + g.rng.below(4);
                    let mut within = budget.min(calls);
                    budget -= within;
                    let step_n = Value::U64(step as u64);
                    g.span(
                        ctx,
                        "step",
                        "app::agent::planner",
                        Level::Info,
                        &[("step", step_n)],
                        &mut |g, ctx| {
                            while within > 0 {
                                within -= 1;
                                if g.rng.chance(0.55) {
                                    g.llm_call(ctx)?;
                                } else {
                                    g.tool_call(ctx)?;
                                }
                            }
                            if g.rng.chance(0.6) {
                                g.event(ctx, "app::agent")?;
                            }
                            Ok(())
                        },
                    )?;
                }
                Ok(())
            },
        )
    }

    fn llm_call(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        let model = MODELS[self.rng.skewed(MODELS.len())];
        let fields = [
            ("gen_ai.operation.name", Value::Str("chat".into())),
            (
                "gen_ai.system",
                Value::Str(
                    if model.starts_with("gpt") {
                        "openai"
                    } else {
                        "other"
                    }
                    .into(),
                ),
            ),
            ("gen_ai.request.model", Value::Str(model.into())),
            (
                "gen_ai.usage.input_tokens",
                Value::U64(200 + self.rng.below(6_000) as u64),
            ),
            (
                "gen_ai.usage.output_tokens",
                Value::U64(20 + self.rng.below(900) as u64),
            ),
        ];
        self.span(
            ctx,
            "llm.chat",
            "app::llm",
            Level::Info,
            &fields,
            &mut |g, ctx| {
                if g.rng.chance(0.3) {
                    g.event(ctx, "app::llm")?;
                }
                Ok(())
            },
        )
    }

    fn tool_call(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        let tool = TOOLS[self.rng.skewed(TOOLS.len())];
        let fields = [
            ("gen_ai.operation.name", Value::Str("execute_tool".into())),
            ("gen_ai.tool.name", Value::Str(tool.into())),
        ];
        self.span(
            ctx,
            "tool.call",
            "app::tools",
            Level::Info,
            &fields,
            &mut |g, ctx| {
                if g.rng.chance(0.4) {
                    let target = *g
                        .rng
                        .pick(&["app::tools::web", "app::tools::sql", "app::tools"]);
                    g.event(ctx, target)?;
                }
                Ok(())
            },
        )
    }

    /// An ordinary HTTP request: a database span and some log events.
    fn request(&mut self, unit: u64) -> anyhow::Result<()> {
        let ctx = self.new_ctx(unit, None);
        let status = *self
            .rng
            .pick(&[200u64, 200, 200, 200, 200, 201, 204, 400, 404, 500]);
        let fields = [
            (
                "http.request.method",
                Value::Str((*self.rng.pick(&["GET", "GET", "POST", "PUT", "DELETE"])).into()),
            ),
            ("http.route", Value::Str((*self.rng.pick(ROUTES)).into())),
            ("http.response.status_code", Value::U64(status)),
        ];
        self.span(
            &ctx,
            "http.request",
            "tower_http::trace",
            Level::Info,
            &fields,
            &mut |g, ctx| {
                let queries = g.rng.below(3);
                for _ in 0..queries {
                    let table =
                        *g.rng
                            .pick(&["users", "runs", "documents", "invoices", "sessions"]);
                    g.span(
                        ctx,
                        "db.query",
                        "sqlx::query",
                        Level::Debug,
                        &[("db.collection.name", Value::Str(table.into()))],
                        &mut |_, _| Ok(()),
                    )?;
                }
                for _ in 0..1 + g.rng.below(3) {
                    let target = *g.rng.pick(&TARGETS[7..]);
                    g.event(ctx, target)?;
                }
                Ok(())
            },
        )
    }
}

/// Where the next record goes in the tree.
#[derive(Clone)]
struct Ctx {
    trace: TraceId,
    /// The enclosing span (for events), or a placeholder at the root.
    span: SpanId,
    /// The parent of a new span.
    parent: Option<SpanId>,
    scope: Arc<Scope>,
    resource: Arc<Resource>,
}

impl Ctx {
    fn apply(&self, r: &mut Record, span: Option<SpanId>) {
        r.trace_id = self.trace;
        r.span_id = span;
        r.scope = Arc::clone(&self.scope);
        r.resource = Arc::clone(&self.resource);
    }
}
