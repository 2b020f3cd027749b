//! `/runs` (the runs list: filters, keyset pages) and `/runs/{id}` (one run: its
//! summary, and its span tree as a waterfall).
//!
//! The run page sends the tree as outlines only (`run_outline`: names, times,
//! status; no fields, no payloads), as JSON in a `<script type="application/json">`
//! block that the page's script draws, a screenful of rows at a time. A span's fields,
//! prompts and events load when it is opened (`/records/{id}`). So a run of 10,000
//! spans carrying 100 KB prompts costs a few hundred kilobytes, not a gigabyte.

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse as _, Response};
use logbook_proto::{Level, Record, Status};
use serde::Serialize;

use super::view::{self, choices, link, query, Choice, RunRow};
use super::{render, Nav, UiError, Viewer};
use crate::http::api::{blocking, run_filter, Params, RUN_KEYS};
use crate::store::{find_run, FoundRun, RunKind, RunSummary};
use crate::views::{RunTree, TreeItem};

/// The filters of the runs page, as given (for the form and the links).
#[derive(Default)]
pub(super) struct RunForm {
    pub(super) since: String,
    pub(super) until: String,
    pub(super) status: String,
    pub(super) service: String,
    pub(super) agent: String,
    pub(super) tenant: String,
    pub(super) user: String,
    pub(super) model: String,
    pub(super) text: String,
    pub(super) session: String,
    pub(super) meta: String,
    /// Every filter as given (`meta` may be repeated), for the links.
    pub(super) pairs: Vec<(String, String)>,
}

impl RunForm {
    pub(super) fn read(p: &Params) -> Self {
        let get = |k: &str| {
            p.0.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        Self {
            since: get("since"),
            until: get("until"),
            status: get("status"),
            service: get("service"),
            agent: get("agent"),
            tenant: get("tenant"),
            user: get("user"),
            model: get("model"),
            text: get("text"),
            session: get("session"),
            meta: get("meta"),
            pairs: p
                .0
                .iter()
                .filter(|(k, _)| k != "after" && k != "before")
                .cloned()
                .collect(),
        }
    }

    /// The filters as a query string.
    pub(super) fn query(&self) -> String {
        query(self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

#[derive(Template)]
#[template(path = "ui/runs.html")]
struct RunsPage {
    nav: Nav,
    form: RunForm,
    ranges: Vec<Choice>,
    statuses: Vec<Choice>,
    rows: Vec<RunRow>,
    error: String,
    next: String,
    first: String,
    charts_src: String,
}

/// The runs list.
pub(super) async fn list(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let viewer = viewer.nav("runs");
    let mut p = Params::parse(q.as_deref());
    let form = RunForm::read(&p);
    let parsed = run_filter(&mut p).and_then(|f| p.finish(RUN_KEYS).map(|()| f));
    let (rows, next, error) = match parsed {
        Ok(mut filter) => {
            filter.limit = filter.limit.min(crate::http::api::DEFAULT_LIMIT);
            let limit = filter.limit;
            let reader = viewer.reader;
            let runs: Vec<RunSummary> = blocking(move || reader.runs(&filter)).await?;
            let next = crate::http::api::next_runs(&runs, limit)
                .map(|after| {
                    let q = form.query();
                    let after = query([("after", after.as_str())]);
                    link(
                        "/runs",
                        &[q, after]
                            .iter()
                            .filter(|s| !s.is_empty())
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("&"),
                    )
                })
                .unwrap_or_default();
            (runs.iter().map(RunRow::of).collect(), next, String::new())
        }
        Err(e) => (Vec::new(), String::new(), e.parts().1),
    };
    Ok(render(&RunsPage {
        ranges: choices(view::RANGES, &form.since),
        statuses: choices(view::RUN_STATUSES, &form.status),
        first: link("/runs", &form.query()),
        charts_src: link("/charts/runs", &form.query()),
        nav: viewer.nav,
        form,
        rows,
        error,
        next,
    }))
}

/// The waterfall's data: one row per span or event, in tree order (a parent before
/// its children).
#[derive(Serialize)]
struct Outline {
    /// The run's first start, nanoseconds since the epoch.
    t0: i64,
    /// The rows: `[parent row or -1, kind (s or e), start µs after t0, duration µs
    /// (-1 while running, 0 for an event), status (0 ok, 1 error, 2 running), on the
    /// critical path (0/1), name, category, record id, level]`.
    rows: Vec<OutlineRow>,
    /// Records beyond the outline's limit were left out.
    truncated: bool,
}

#[derive(Serialize)]
struct OutlineRow(
    i64,
    &'static str,
    i64,
    i64,
    u8,
    u8,
    String,
    String,
    String,
    &'static str,
);

/// Records the outline holds at most.
const OUTLINE_RECORDS: usize = 50_000;

fn outline(records: &[Record]) -> Outline {
    let tree = RunTree::build(records);
    let n = tree.spans.len();
    // The earliest start: a span known only by its end (OTLP sends spans whole)
    // started its duration before that end.
    let t0 = tree
        .spans
        .iter()
        .map(|s| s.started().as_nanos())
        .chain(
            records
                .iter()
                .filter(|r| r.kind == logbook_proto::Kind::Event)
                .map(|r| r.ts.as_nanos()),
        )
        .min()
        .unwrap_or(0);
    // Each span's end, for the critical path.
    let start_of = |i: usize| tree.spans[i].started().as_nanos();
    let end_of = |i: usize| {
        let s = &tree.spans[i];
        match s.end {
            Some(e) => e.ts.as_nanos(),
            None => s.start.map_or(0, |r| r.ts.as_nanos()),
        }
    };
    let mut critical = vec![false; n];
    // The critical path: from the top span that ends last, the child that ends last,
    // then the one that ended before that one started, and so on (as Jaeger draws it).
    let top: Vec<usize> = tree
        .roots
        .iter()
        .filter_map(|t| match t {
            TreeItem::Span(i) => Some(*i),
            TreeItem::Event(_) => None,
        })
        .collect();
    if let Some(&last) = top.iter().max_by_key(|&&i| end_of(i)) {
        let mut stack = vec![(last, end_of(last))];
        while let Some((i, until)) = stack.pop() {
            critical[i] = true;
            let mut children: Vec<usize> = tree.spans[i]
                .children
                .iter()
                .filter_map(|t| match t {
                    TreeItem::Span(c) => Some(*c),
                    TreeItem::Event(_) => None,
                })
                .collect();
            children.sort_by_key(|&c| std::cmp::Reverse(end_of(c)));
            let mut t = until.min(end_of(i));
            for c in children {
                if end_of(c) <= t && end_of(c) > start_of(i) {
                    stack.push((c, end_of(c)));
                    t = start_of(c);
                }
            }
        }
    }
    let mut rows = Vec::with_capacity(records.len());
    let us = |ns: i64| ns / 1000;
    // Depth-first, in each level's time order.
    let mut stack: Vec<(TreeItem<'_>, i64)> = tree.roots.iter().rev().map(|t| (*t, -1)).collect();
    while let Some((item, parent)) = stack.pop() {
        let index = rows.len() as i64;
        match item {
            TreeItem::Span(i) => {
                let s = &tree.spans[i];
                let r = s.record();
                let status = match s.end {
                    None => 2,
                    Some(e) if e.status == Some(Status::Error) => 1,
                    Some(_) => 0,
                };
                let duration = match s.end {
                    Some(e) => e
                        .duration_ns
                        .map_or(us(end_of(i) - start_of(i)), |d| us(d as i64)),
                    None => -1,
                };
                rows.push(OutlineRow(
                    parent,
                    "s",
                    us(start_of(i) - t0),
                    duration,
                    status,
                    u8::from(critical[i]),
                    r.map(|r| r.name.to_string()).unwrap_or_default(),
                    r.and_then(|r| r.category.as_deref().map(str::to_owned))
                        .unwrap_or_default(),
                    r.map(|r| r.id.to_string()).unwrap_or_default(),
                    r.map_or("info", |r| r.level.as_str()),
                ));
                for child in s.children.iter().rev() {
                    stack.push((*child, index));
                }
            }
            TreeItem::Event(r) => rows.push(OutlineRow(
                parent,
                "e",
                us(r.ts.as_nanos() - t0),
                0,
                u8::from(r.level >= Level::Error),
                0,
                match &r.message {
                    Some(m) if !m.is_empty() => m.clone(),
                    _ => r.name.to_string(),
                },
                r.category.as_deref().map(str::to_owned).unwrap_or_default(),
                r.id.to_string(),
                r.level.as_str(),
            )),
        }
    }
    Outline {
        t0,
        rows,
        truncated: false,
    }
}

/// A JSON document safe inside `<script type="application/json">`: no `<`, `>` or
/// `&` left that could close the element or open a comment.
pub(super) fn script_json(v: &impl Serialize) -> String {
    serde_json::to_string(v)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A label and a value of the run's summary.
pub(super) struct Fact {
    pub(super) label: &'static str,
    pub(super) value: String,
    pub(super) href: String,
}

#[derive(Template)]
#[template(path = "ui/run.html")]
struct RunPage {
    nav: Nav,
    run: RunRow,
    title: String,
    facts: Vec<Fact>,
    related: Vec<RunRow>,
    outline_json: String,
    spans: usize,
    records_href: String,
    trace_href: String,
    export_href: String,
    truncated: bool,
    feedback: Vec<FeedbackRow>,
    feedback_action: String,
    compare_href: String,
}

/// One run: its summary and waterfall.
pub(super) async fn one(viewer: Viewer, Path(id): Path<String>) -> Result<Response, UiError> {
    let viewer = viewer.nav("runs");
    let reader = viewer.reader;
    let (run, related, records, feedback, previous) = blocking(move || {
        let run = match find_run(reader.as_ref(), &id)? {
            FoundRun::One(run) => *run,
            FoundRun::Several(keys) => return Ok(Err(keys)),
            FoundRun::None => return Ok(Err(Vec::new())),
        };
        let records = reader.run_outline(&run.run_id, OUTLINE_RECORDS + 1)?;
        let mut filter = crate::query::RecordFilter {
            category: Some(crate::pipeline::CATEGORY_FEEDBACK.to_owned()),
            ..Default::default()
        };
        match run.kind {
            RunKind::Run => filter.run_id = Some(run.run_id.clone()),
            RunKind::Trace => filter.trace_id = run.trace_id,
        }
        let feedback = reader.query(
            &filter,
            &crate::query::Page {
                limit: 100,
                before: None,
            },
        )?;
        let related = crate::store::related_runs(reader.as_ref(), &run)?;
        // The previous run of the same agent, to compare with.
        let previous = match &run.agent {
            Some(agent) => reader
                .runs(&crate::query::RunFilter {
                    agent: Some(agent.clone()),
                    until: Some(run.started),
                    limit: 1,
                    ..Default::default()
                })?
                .into_iter()
                .next()
                .map(|r| r.run_id),
            None => None,
        };
        Ok(Ok((run, related, records, feedback, previous)))
    })
    .await?
    .map_err(|keys| {
        if keys.is_empty() {
            UiError::not_found("No run has this run id or trace id.")
        } else {
            UiError::bad_request(format!(
                "This trace holds {} runs: {}.",
                keys.len(),
                keys.join(", ")
            ))
        }
    })?;
    let truncated = records.len() > OUTLINE_RECORDS;
    let records = &records[..records.len().min(OUTLINE_RECORDS)];
    let mut outline = outline(records);
    outline.truncated = truncated;
    let spans = outline.rows.iter().filter(|r| r.1 == "s").count();
    let mut page = page(viewer.nav, &run, &related, &outline, spans, truncated);
    page.feedback = feedback.iter().map(FeedbackRow::of).collect();
    if let Some(p) = previous {
        page.compare_href = link(
            "/compare",
            &query([("a", p.as_str()), ("b", run.run_id.as_str())]),
        );
    }
    Ok(render(&page))
}

fn page(
    nav: Nav,
    run: &RunSummary,
    related: &[RunSummary],
    outline: &Outline,
    spans: usize,
    truncated: bool,
) -> RunPage {
    let mut facts = Vec::new();
    let mut fact = |label: &'static str, value: String, href: String| {
        if !value.is_empty() {
            facts.push(Fact { label, value, href });
        }
    };
    let filter_link = |k: &str, v: &str| link("/runs", &query([(k, v)]));
    fact("status", run.status.clone(), String::new());
    fact("started", view::time(run.started), String::new());
    fact("duration", view::duration(run.duration_ns), String::new());
    for (label, key, v) in [
        ("service", "service", &run.service),
        ("agent", "agent", &run.agent),
        ("tenant", "tenant", &run.tenant),
        ("user", "user", &run.user_id),
        ("session", "session", &run.session_id),
    ] {
        if let Some(v) = v {
            fact(label, v.clone(), filter_link(key, v));
        }
    }
    for (label, v) in [
        ("env", &run.env),
        ("project", &run.project),
        ("app", &run.app),
    ] {
        if let Some(v) = v {
            fact(label, v.clone(), String::new());
        }
    }
    fact("records", run.records.to_string(), String::new());
    fact("spans", run.spans.to_string(), String::new());
    fact("errors", run.errors.to_string(), String::new());
    if run.llm_calls + run.tool_calls > 0 {
        fact("LLM calls", run.llm_calls.to_string(), String::new());
        fact("tool calls", run.tool_calls.to_string(), String::new());
        fact(
            "tokens in/out",
            format!(
                "{}/{} (cache read {})",
                run.input_tokens, run.output_tokens, run.cache_read_tokens
            ),
            String::new(),
        );
        fact("cost", view::usd(run.cost), String::new());
        if let Some(c) = run.provider_cost {
            fact("provider cost", view::usd(Some(c)), String::new());
        }
        fact("models", run.models.join(", "), String::new());
    }
    let trace = run.trace_id.map(|t| t.to_hex()).unwrap_or_default();
    // A trace's run has no run id: its records are the trace's.
    let run_query = match run.kind {
        RunKind::Trace => query([("trace", run.run_id.as_str())]),
        RunKind::Run => query([("run", run.run_id.as_str())]),
    };
    RunPage {
        nav,
        run: RunRow::of(run),
        title: run
            .agent
            .clone()
            .or_else(|| run.root_name.clone())
            .unwrap_or_else(|| run.run_id.clone()),
        facts,
        related: related.iter().map(RunRow::of).collect(),
        outline_json: script_json(outline),
        spans,
        records_href: link("/records", &run_query),
        trace_href: if trace.is_empty() {
            String::new()
        } else {
            link("/records", &query([("trace", trace.as_str())]))
        },
        export_href: link("/api/v1/export", &run_query),
        truncated,
        feedback: Vec::new(),
        feedback_action: format!("{}/feedback", view::run_href(&run.run_id)),
        compare_href: String::new(),
    }
}

/// Feedback of a run, as listed on its page.
pub(super) struct FeedbackRow {
    pub(super) time: String,
    pub(super) by: String,
    pub(super) label: String,
    pub(super) score: String,
    pub(super) note: String,
    pub(super) href: String,
}

impl FeedbackRow {
    fn of(r: &Record) -> Self {
        use logbook_proto::genai::logbook as keys;
        let text = |k: &str| {
            r.fields
                .get(k)
                .map(super::detail::value_text)
                .unwrap_or_default()
        };
        Self {
            time: view::time(r.ts),
            by: text(keys::FEEDBACK_BY),
            label: text(keys::FEEDBACK_LABEL),
            score: text(keys::FEEDBACK_SCORE),
            note: text(keys::FEEDBACK_NOTE),
            href: format!("/records/{}", r.id),
        }
    }
}

/// `POST /runs/{id}/feedback`: the form of the run page and of an LLM call's detail
/// (`span`, `label`, `score`, `note`, `csrf`); back to the run page.
pub(super) async fn feedback(
    axum::extract::State(cx): axum::extract::State<std::sync::Arc<crate::http::HttpContext>>,
    viewer: Viewer,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, UiError> {
    let fields = super::Form::checked(&cx, &headers, &body)?;
    let get = |k: &str| fields.get(k);
    let score = match get("score") {
        Some(s) => Some(
            s.parse::<f64>()
                .map_err(|_| UiError::bad_request(format!("Score: {s:?} is not a number.")))?,
        ),
        None => None,
    };
    let f = crate::http::feedback::Feedback {
        run: id.clone(),
        span_id: get("span"),
        label: get("label"),
        score,
        note: get("note"),
    };
    crate::http::feedback::give(&cx, &viewer.caller, viewer.reader, f).await?;
    Ok(axum::response::Redirect::to(&format!("{}#feedback", view::run_href(&id))).into_response())
}
