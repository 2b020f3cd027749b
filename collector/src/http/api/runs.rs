//! `runs`, `runs/{id}`, `calls` and `cost`: the views `logbook runs`, `run`, `calls`
//! and `cost` print, as JSON, from the same store reads and the same tree
//! (`crate::views::tree`).

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse as _, Response};
use logbook_proto::{Record, Timestamp};
use serde::Serialize;

use super::params::{CallQuery, PageQuery, RunQuery};
use super::{blocking, json, Access, ApiError, Params};
use crate::query::{Cursor, RunCursor, RunFilter, TimeSpec};
use crate::store::{
    find_run, CallFilter, CostBy, CostGroup, FoundRun, LlmCall, RunKind, RunSummary, ToolCall,
};
use crate::views::{RunTree, TreeItem};

/// A page of runs, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RunPage {
    /// The runs.
    #[schema(value_type = Vec<Object>)]
    pub(super) runs: Vec<RunSummary>,
    /// Pass as `after` for the next page; absent on the last page.
    pub(super) next: Option<String>,
}

fn time(params: &mut Params, key: &str, now: Timestamp) -> Result<Option<Timestamp>, ApiError> {
    Ok(params.parse_value::<TimeSpec>(key)?.map(|t| t.resolve(now)))
}

fn one_of(params: &mut Params, key: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match params.take(key)? {
        Some(v) if !allowed.contains(&v.as_str()) => Err(ApiError::bad_request(format!(
            "{key}: {v:?} is not one of {}",
            allowed.join(", ")
        ))),
        v => Ok(v),
    }
}

/// The parameters of a runs list: `logbook runs`'s filters.
pub(crate) const RUN_KEYS: &[&str] = &[
    "since", "until", "tenant", "user", "service", "status", "agent", "kind", "session", "model",
    "text", "meta", "limit", "after",
];

/// The runs filters of a query string (the rest of `p` is left in it): `since`,
/// `until`, `tenant`, `user`, `service`, `status`, `agent`, `kind`, `session`, `model`,
/// `text`, `meta=KEY=VALUE` (a field of the root span; repeat for more), `after`,
/// `limit`.
pub(crate) fn run_filter(p: &mut Params) -> Result<RunFilter, ApiError> {
    let now = Timestamp::now();
    let mut root_fields = Vec::new();
    while let Some(m) = p.take_one("meta") {
        let (k, v) = m
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("meta: {m:?} is not KEY=VALUE")))?;
        root_fields.push((k.to_owned(), v.to_owned()));
    }
    Ok(RunFilter {
        since: time(p, "since", now)?,
        until: time(p, "until", now)?,
        tenant: p.take("tenant")?,
        user_id: p.take("user")?,
        service: p.take("service")?,
        status: one_of(p, "status", &["running", "ok", "error"])?,
        agent: p.take("agent")?,
        kind: one_of(p, "kind", &["run", "trace"])?.map(|k| {
            if k == "trace" {
                RunKind::Trace
            } else {
                RunKind::Run
            }
        }),
        session_id: p.take("session")?,
        model: p.take("model")?,
        text: p.take("text")?,
        root_fields,
        after: p.parse_value::<RunCursor>("after")?,
        unshared: false,
        limit: p.limit()?,
    })
}

/// The cursor of the page after `runs`, if it was full.
pub(crate) fn next_runs(runs: &[RunSummary], limit: usize) -> Option<String> {
    (runs.len() == limit)
        .then(|| {
            runs.last().map(|r| {
                RunCursor {
                    started: r.started,
                    run_id: r.run_id.clone(),
                }
                .to_string()
            })
        })
        .flatten()
}

/// Runs, newest first: the filters of `logbook runs`.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs",
    params(RunQuery),
    responses((status = 200, body = RunPage), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list(access: Access, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(query.as_deref());
    let filter = run_filter(&mut p)?;
    p.finish(RUN_KEYS)?;
    let limit = filter.limit;
    let reader = access.reader;
    let runs = blocking(move || reader.runs(&filter)).await?;
    let next = next_runs(&runs, limit);
    Ok(json(&RunPage { runs, next }))
}

/// One run with its records and span tree.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct RunDetail {
    /// The run's summary, as in the list.
    #[schema(value_type = Object)]
    pub(super) run: RunSummary,
    /// The other runs of its trace (a request that started an agent run).
    #[schema(value_type = Vec<Object>)]
    pub(super) related: Vec<RunSummary>,
    /// Its records in time order (record contract JSON), at most `limit`.
    #[schema(value_type = Vec<Object>)]
    pub(super) records: Vec<Record>,
    /// More records exist than were returned.
    pub(super) truncated: bool,
    /// The span tree over `records`.
    pub(super) tree: Tree,
}

/// A span tree, flat: spans by index, items naming a span by index or an event by
/// record id, each level in time order.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Tree {
    /// Top-level items: spans whose parent is not in the run, and events outside any
    /// span.
    pub(super) roots: Vec<TreeNode>,
    /// Every span.
    pub(super) spans: Vec<TreeSpan>,
}

/// A span of the tree.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TreeSpan {
    /// Its id (hex).
    pub(super) span_id: String,
    /// Its name.
    pub(super) name: String,
    /// Id of its start record, if stored.
    pub(super) start: Option<String>,
    /// Id of its end record, if stored (absent while it runs).
    pub(super) end: Option<String>,
    /// When it started (RFC 3339).
    pub(super) started: String,
    /// How long it took.
    pub(super) duration_ns: Option<u64>,
    /// `running`, `ok` or `error`.
    pub(super) status: String,
    /// Its children in time order.
    pub(super) children: Vec<TreeNode>,
}

/// A span (by index into `spans`) or an event (by record id).
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum TreeNode {
    /// An index into `spans`.
    Span(usize),
    /// A record id.
    Event(String),
}

fn node(item: &TreeItem<'_>) -> TreeNode {
    match item {
        TreeItem::Span(i) => TreeNode::Span(*i),
        TreeItem::Event(r) => TreeNode::Event(r.id.to_string()),
    }
}

fn tree(records: &[Record]) -> Tree {
    let t = RunTree::build(records);
    Tree {
        roots: t.roots.iter().map(node).collect(),
        spans: t
            .spans
            .iter()
            .map(|s| TreeSpan {
                span_id: s.span_id.to_string(),
                name: s.record().map(|r| r.name.to_string()).unwrap_or_default(),
                start: s.start.map(|r| r.id.to_string()),
                end: s.end.map(|r| r.id.to_string()),
                started: s.started().to_string(),
                duration_ns: s.end.and_then(|r| r.duration_ns),
                status: s.status_word().to_owned(),
                children: s.children.iter().map(node).collect(),
            })
            .collect(),
    }
}

/// Records of a run returned by default, and at most.
const RUN_RECORDS: usize = 10_000;
const MAX_RUN_RECORDS: usize = 20_000;

/// One run by its run id, or by the trace id of a trace that holds one run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "run id, or trace id"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "records at most: default 10000, at most 20000")),
    responses((status = 200, body = RunDetail), (status = 404, body = super::ErrorBody),
        (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn one(
    access: Access,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut p = Params::parse(query.as_deref());
    let limit = p.parse_value::<usize>("limit")?.unwrap_or(RUN_RECORDS);
    if !(1..=super::params::MAX_LIMIT_ASKED).contains(&limit) {
        return Err(ApiError::bad_request("limit: must be 1 to 1000000"));
    }
    let limit = limit.min(MAX_RUN_RECORDS);
    p.finish(&["limit"])?;
    let reader = access.reader;
    let found = blocking(move || {
        let run = match find_run(reader.as_ref(), &id)? {
            FoundRun::One(run) => *run,
            FoundRun::Several(keys) => {
                return Ok(Err(format!(
                    "trace {id} holds {} runs; name one: {}",
                    keys.len(),
                    keys.join(", ")
                )))
            }
            FoundRun::None => return Ok(Err(String::new())),
        };
        let mut records = reader.run_records(&run.run_id, limit + 1)?;
        let truncated = records.len() > limit;
        records.truncate(limit);
        let related = crate::store::related_runs(reader.as_ref(), &run)?;
        // The tree and the JSON of thousands of records are CPU work: here, off the
        // async workers.
        let tree = tree(&records);
        let body = serde_json::to_vec(&RunDetail {
            run,
            related,
            records,
            truncated,
            tree,
        })
        .map_err(|e| crate::store::StoreError::invalid_data(e.to_string()))?;
        Ok(Ok(body))
    })
    .await?;
    match found {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            );
            Ok(response)
        }
        Err(m) if m.is_empty() => Err(ApiError::not_found("no run with this run id or trace id")),
        Err(m) => Err(ApiError::bad_request(m)),
    }
}

/// LLM or tool calls, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CallPage {
    /// `llm` or `tool`.
    pub(super) r#type: String,
    /// The calls (LLM calls: model, tokens, cost, prompt and response; tool calls:
    /// tool, arguments, result).
    #[schema(value_type = Vec<Object>)]
    pub(super) calls: serde_json::Value,
    /// Pass as `before` for the next page; absent on the last page.
    pub(super) next: Option<String>,
}

const CALL_KEYS: &[&str] = &[
    "type", "since", "until", "run", "tenant", "user", "app", "service", "status", "model", "tool",
    "limit", "before",
];

fn call_filter(p: &mut Params, name: Option<String>) -> Result<CallFilter, ApiError> {
    let now = Timestamp::now();
    Ok(CallFilter {
        since: time(p, "since", now)?,
        until: time(p, "until", now)?,
        run_id: p.take("run")?,
        tenant: p.take("tenant")?,
        user_id: p.take("user")?,
        app: p.take("app")?,
        service: p.take("service")?,
        status: one_of(p, "status", &["ok", "error"])?,
        name,
        before: p.parse_value::<Cursor>("before")?,
        limit: p.limit()?,
    })
}

/// LLM calls (`type=llm`, the default; `model` filters) or tool calls (`type=tool`;
/// `tool` filters), newest first.
#[utoipa::path(get, path = "/api/v1/calls", tag = "runs",
    params(("type" = Option<String>, Query, pattern = "^(|(llm|tool))$", description = "llm (default) or tool"), ("tool" = Option<String>, Query, description = "tool name (type=tool)"), CallQuery, PageQuery),
    responses((status = 200, body = CallPage), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn calls(access: Access, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(query.as_deref());
    let (model, tool) = (p.take("model")?, p.take("tool")?);
    // `tool=` alone asks for tool calls.
    let implied = if tool.is_some() { "tool" } else { "llm" };
    let kind = one_of(&mut p, "type", &["llm", "tool"])?.unwrap_or_else(|| implied.into());
    let name = if kind == "llm" {
        if tool.is_some() {
            return Err(ApiError::bad_request("tool filters tool calls: type=tool"));
        }
        model
    } else {
        if model.is_some() {
            return Err(ApiError::bad_request("model filters LLM calls: type=llm"));
        }
        tool
    };
    let filter = call_filter(&mut p, name)?;
    p.finish(CALL_KEYS)?;
    let limit = filter.limit;
    let reader = access.reader;
    let r#type = kind.clone();
    let (calls, next) = blocking(move || {
        let next = |c: Option<Cursor>, n: usize| {
            (n == limit).then_some(c).flatten().map(|c| c.to_string())
        };
        if kind == "llm" {
            let calls: Vec<LlmCall> = reader.llm_calls(&filter)?;
            let n = next(calls.last().map(|c| c.call.cursor()), calls.len());
            Ok((to_value(&calls), n))
        } else {
            let calls: Vec<ToolCall> = reader.tool_calls(&filter)?;
            let n = next(calls.last().map(|c| c.call.cursor()), calls.len());
            Ok((to_value(&calls), n))
        }
    })
    .await?;
    Ok(json(&CallPage {
        r#type,
        calls,
        next,
    }))
}

fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

/// LLM calls summed per group.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct CostReport {
    /// What the groups are: model, provider, user, tenant, app, run or day.
    pub(super) by: String,
    /// The groups, costliest first (days in order).
    #[schema(value_type = Vec<Object>)]
    pub(super) groups: Vec<CostGroup>,
}

/// What LLM calls cost, grouped as `logbook cost` groups them.
#[utoipa::path(get, path = "/api/v1/cost", tag = "runs",
    params(("by" = Option<String>, Query, pattern = "^(|(model|provider|user|tenant|app|run|day))$", description = "model (default), provider, user, tenant, app, run, day"), ("limit" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "groups at most"), CallQuery),
    responses((status = 200, body = CostReport), (status = 400, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn cost(access: Access, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(query.as_deref());
    let by_text = one_of(
        &mut p,
        "by",
        &["model", "provider", "user", "tenant", "app", "run", "day"],
    )?
    .unwrap_or_else(|| "model".into());
    let by = <CostBy as clap::ValueEnum>::from_str(&by_text, false)
        .map_err(|e| ApiError::bad_request(format!("by: {e}")))?;
    let model = p.take("model")?;
    let filter = call_filter(&mut p, model)?;
    if filter.before.is_some() {
        return Err(ApiError::bad_request("before: cost groups are not paged"));
    }
    p.finish(&[
        "by", "model", "since", "until", "run", "tenant", "user", "app", "service", "status",
        "limit",
    ])?;
    let reader = access.reader;
    let groups = blocking(move || reader.cost(by, &filter)).await?;
    Ok(json(&CostReport {
        by: by_text,
        groups,
    }))
}
