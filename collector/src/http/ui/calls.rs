//! `/calls`: LLM calls (or tool calls) newest first, filtered by model or tool, time,
//! tenant, user, status; what they cost by model, user and tenant; tokens, cost and
//! latency percentiles over time. The filters of `logbook calls` and `logbook cost`.

use askama::Template;
use axum::extract::RawQuery;
use axum::response::Response;
use logbook_proto::Timestamp;

use super::view::{self, choices, link, query, Choice};
use super::{render, Nav, UiError, Viewer};
use crate::http::api::{blocking, Params};
use crate::query::{Cursor, TimeSpec};
use crate::store::{CallCommon, CallFilter, CostBy, CostGroup};

/// Calls a page lists.
const PAGE: usize = 100;
/// Groups of each cost table.
const GROUPS: usize = 10;

pub(super) struct CallRow {
    pub(super) time: String,
    pub(super) name: String,
    pub(super) status: String,
    pub(super) duration: String,
    pub(super) tokens: String,
    pub(super) cost: String,
    pub(super) run: String,
    pub(super) run_href: String,
    pub(super) href: String,
}

fn row(c: &CallCommon, name: Option<&str>, tokens: String, cost: String) -> CallRow {
    let run = c.run_id.clone().unwrap_or_default();
    CallRow {
        time: super::records::short_time(&c.started.to_rfc3339()),
        name: name.unwrap_or("-").to_owned(),
        status: c.status.clone(),
        duration: view::duration(c.duration_ns),
        tokens,
        cost,
        run_href: if run.is_empty() {
            String::new()
        } else {
            view::run_href(&run)
        },
        run,
        href: link(
            "/records",
            &query([("trace", c.trace_id.as_str()), ("kind", "span_end")]),
        ),
    }
}

pub(super) struct CostTable {
    pub(super) title: &'static str,
    pub(super) rows: Vec<CostGroup>,
}

impl CostTable {
    pub(super) fn usd(v: &Option<f64>) -> String {
        view::usd(*v)
    }
}

#[derive(Template)]
#[template(path = "ui/calls.html")]
struct CallsPage {
    nav: Nav,
    tool: bool,
    ranges: Vec<Choice>,
    statuses: Vec<Choice>,
    name: String,
    tenant: String,
    user: String,
    rows: Vec<CallRow>,
    costs_src: String,
    charts_src: String,
    error: String,
    next: String,
}

/// The filters of the calls page (and its charts): `type`, `since`, `until`,
/// `tenant`, `user`, `status`, `model` or `tool`, `before`; every parameter used.
pub(super) fn call_filter(p: &mut Params) -> Result<CallFilter, crate::http::api::ApiError> {
    let now = Timestamp::now();
    let ty = p.take("type")?;
    let filter = CallFilter {
        since: p.parse_value::<TimeSpec>("since")?.map(|t| t.resolve(now)),
        until: p.parse_value::<TimeSpec>("until")?.map(|t| t.resolve(now)),
        tenant: p.take("tenant")?,
        user_id: p.take("user")?,
        status: p.take("status")?,
        name: if ty.as_deref() == Some("tool") {
            p.take("tool")?
        } else {
            p.take("model")?
        },
        before: p.parse_value::<Cursor>("before")?,
        limit: PAGE,
        ..CallFilter::default()
    };
    std::mem::take(p).finish(&[
        "type", "since", "until", "tenant", "user", "status", "model", "tool", "before",
    ])?;
    Ok(filter)
}

/// The calls page.
pub(super) async fn list(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let viewer = viewer.nav("calls");
    let mut p = Params::parse(q.as_deref());
    let get = |k: &str| p.shown(k);
    let tool = get("type") == "tool";
    let (since_text, status_text, tenant, user) =
        (get("since"), get("status"), get("tenant"), get("user"));
    let until_text = get("until");
    let name = get(if tool { "tool" } else { "model" });
    let parsed = call_filter(&mut p);
    let mut page = CallsPage {
        nav: viewer.nav,
        tool,
        ranges: choices(view::RANGES, &since_text),
        statuses: choices(
            &[("", "any status"), ("ok", "ok"), ("error", "error")],
            &status_text,
        ),
        name: name.clone(),
        tenant: tenant.clone(),
        user: user.clone(),
        rows: Vec::new(),
        costs_src: String::new(),
        charts_src: String::new(),
        error: String::new(),
        next: String::new(),
    };
    let filter = match parsed {
        Ok(f) => f,
        Err(e) => {
            page.error = e.parts().1;
            return Ok(render(&page));
        }
    };
    let reader = viewer.reader;
    let (rows, cursor) = blocking(move || {
        let (rows, cursor) = if tool {
            let calls = reader.tool_calls(&filter)?;
            let cursor = (calls.len() == PAGE)
                .then(|| calls.last().map(|c| c.call.cursor()))
                .flatten();
            let rows = calls
                .iter()
                .map(|c| row(&c.call, c.tool_name.as_deref(), "-".into(), "-".into()))
                .collect::<Vec<_>>();
            (rows, cursor)
        } else {
            let calls = reader.llm_calls(&filter)?;
            let cursor = (calls.len() == PAGE)
                .then(|| calls.last().map(|c| c.call.cursor()))
                .flatten();
            let rows = calls
                .iter()
                .map(|c| {
                    row(
                        &c.call,
                        c.model.as_deref(),
                        format!(
                            "{}/{}",
                            c.input_tokens.unwrap_or(0),
                            c.output_tokens.unwrap_or(0)
                        ),
                        view::usd(c.cost),
                    )
                })
                .collect::<Vec<_>>();
            (rows, cursor)
        };
        Ok((rows, cursor))
    })
    .await?;
    page.rows = rows;
    let filters = query([
        ("since", since_text.as_str()),
        ("until", until_text.as_str()),
        ("status", status_text.as_str()),
        ("model", if tool { "" } else { name.as_str() }),
        ("tenant", tenant.as_str()),
        ("user", user.as_str()),
    ]);
    if !tool {
        page.charts_src = link("/charts/calls", &filters);
        page.costs_src = link("/calls/costs", &filters);
    }
    if let Some(c) = cursor {
        let c = c.to_string();
        let q = query([
            ("type", if tool { "tool" } else { "" }),
            ("since", since_text.as_str()),
            ("until", until_text.as_str()),
            ("status", status_text.as_str()),
            (if tool { "tool" } else { "model" }, name.as_str()),
            ("tenant", tenant.as_str()),
            ("user", user.as_str()),
            ("before", c.as_str()),
        ]);
        page.next = link("/calls", &q);
    }
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "ui/calls_costs.html")]
struct CostsFragment {
    costs: Vec<CostTable>,
    cost_range: String,
}

/// `/calls/costs`: what the LLM calls cost by model, user and tenant, with the calls
/// page's filters, over its time range, else the last 24 hours (a sum over every call
/// ever made is not a page's work); loaded by the page after it is shown.
pub(super) async fn costs(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let mut p = Params::parse(q.as_deref());
    let mut filter = call_filter(&mut p)?;
    let cost_range = if filter.since.is_none() && filter.until.is_none() {
        "the last 24 hours"
    } else {
        "the time range"
    };
    let range = super::chart::range(filter.since, filter.until);
    filter.since = Some(range.0);
    filter.until = Some(range.1);
    filter.before = None;
    filter.limit = GROUPS;
    let reader = viewer.reader;
    let bys = [CostBy::Model, CostBy::User, CostBy::Tenant];
    let groups = blocking(move || reader.costs(&bys, &filter)).await?;
    let costs = ["By model", "By user", "By tenant"]
        .into_iter()
        .zip(groups)
        .map(|(title, rows)| CostTable { title, rows })
        .collect();
    Ok(render(&CostsFragment {
        costs,
        cost_range: cost_range.into(),
    }))
}
