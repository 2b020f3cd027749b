//! `/performance`: span metrics per service and span name (throughput, error rate,
//! slow spans, p50/p95/p99 within 1 %), with charts of throughput, errors, latency
//! and log volume by level over the range, from the monitor's rollups
//! (`crate::store::metrics`), so a week costs what an hour does. The filters of
//! `logbook metrics`.

use askama::Template;
use axum::extract::RawQuery;
use axum::response::Response;

use super::view::{self, choices, Choice};
use super::{render, Nav, UiError, Viewer};
use crate::http::api::{blocking, metrics_filter, metrics_report, Params, METRICS_KEYS};
use crate::store::metrics::SpanSummary;

/// A row of the table.
pub(super) struct SpanRowView {
    pub(super) service: String,
    pub(super) name: String,
    pub(super) model: String,
    pub(super) count: u64,
    pub(super) rate: String,
    pub(super) errors: String,
    pub(super) error_class: &'static str,
    pub(super) slow: u64,
    pub(super) p50: String,
    pub(super) p95: String,
    pub(super) p99: String,
    pub(super) href: String,
}

fn row(s: &SpanSummary) -> SpanRowView {
    let d = |ns: Option<u64>| view::duration(ns);
    SpanRowView {
        service: s.key.service.clone(),
        name: s.key.name.clone(),
        model: s.key.model.clone(),
        count: s.count,
        rate: format!("{:.2}", s.rate),
        errors: format!("{:.1} %", s.error_rate * 100.0),
        error_class: if s.errors > 0 { "status-error" } else { "" },
        slow: s.slow,
        p50: d(s.p50_ns),
        p95: d(s.p95_ns),
        p99: d(s.p99_ns),
        href: view::link(
            "/records",
            &view::query([
                ("name", s.key.name.as_str()),
                ("kind", "span_end"),
                ("min_duration", &format!("{}ns", s.p95_ns.unwrap_or(0))),
            ]),
        ),
    }
}

#[derive(Template)]
#[template(path = "ui/performance.html")]
struct PerformancePage {
    nav: Nav,
    ranges: Vec<Choice>,
    service: String,
    name: String,
    by_model: bool,
    rows: Vec<SpanRowView>,
    charts_src: String,
    error: String,
}

/// The performance page.
pub(super) async fn show(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let viewer = viewer.nav("performance");
    let mut p = Params::parse(q.as_deref());
    let get = |k: &str| p.shown(k);
    let (since, service, name, by_model) = (
        get("since"),
        get("service"),
        get("name"),
        get("by_model") == "true",
    );
    let mut page = PerformancePage {
        nav: viewer.nav,
        ranges: choices(view::RANGES, &since),
        service,
        name,
        by_model,
        rows: Vec::new(),
        charts_src: format!(
            "/charts/spans{}",
            q.as_deref().map(|q| format!("?{q}")).unwrap_or_default()
        ),
        error: String::new(),
    };
    let parsed = metrics_filter(&mut p).and_then(|f| {
        let by_model = p.parse_value::<bool>("by_model")?.unwrap_or(false);
        std::mem::take(&mut p).finish(METRICS_KEYS)?;
        Ok((f, by_model))
    });
    match parsed {
        Ok((f, by_model)) => {
            let reader = viewer.reader;
            let r = blocking(move || metrics_report(reader.as_ref(), &f, by_model, 200)).await?;
            page.rows = r.spans.iter().map(row).collect();
        }
        Err(e) => {
            page.error = e.parts().1;
            page.charts_src.clear();
        }
    }
    Ok(render(&page))
}
