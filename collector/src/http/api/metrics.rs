//! `metrics`: span metrics (throughput, errors, slow spans, latency percentiles within
//! 1 %) per service and span name, and log volume by level, from the monitor's minute
//! and hour rows, as `logbook metrics` prints them.

use axum::extract::RawQuery;
use axum::response::Response;
use logbook_proto::{Level, Timestamp};
use serde::Serialize;

use super::{blocking, json, Access, ApiError, Params};
use crate::query::TimeSpec;
use crate::store::metrics::{series, summaries, MetricsFilter, SeriesPoint, SpanSummary};

/// The parameters of the metrics routes.
pub(crate) const METRICS_KEYS: &[&str] =
    &["since", "until", "service", "name", "by_model", "limit"];

/// The range and selection of a query string: `since` (default 1h ago), `until`
/// (default now), `service`, `name` (a prefix).
pub(crate) fn metrics_filter(p: &mut Params) -> Result<MetricsFilter, ApiError> {
    let now = Timestamp::now();
    let since = p.parse_value::<TimeSpec>("since")?.map_or(
        now.saturating_sub(std::time::Duration::from_secs(3600)),
        |t| t.resolve(now),
    );
    let until = p
        .parse_value::<TimeSpec>("until")?
        .map_or(now, |t| t.resolve(now));
    if until <= since {
        return Err(ApiError::bad_request("until must be after since"));
    }
    Ok(MetricsFilter {
        since,
        until,
        service: p.take("service")?,
        name: p.take("name")?,
    })
}

/// Span metrics over a range.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MetricsReport {
    /// Per service and span name (and model, with `by_model=true`), the busiest first.
    #[schema(value_type = Vec<Object>)]
    pub(crate) spans: Vec<SpanSummary>,
    /// The selected spans period by period (minutes for ranges up to 6 hours, else
    /// hours).
    #[schema(value_type = Vec<Object>)]
    pub(crate) series: Vec<SeriesPoint>,
    /// Records by level, period by period.
    #[schema(value_type = Vec<Object>)]
    pub(crate) volume: Vec<VolumePoint>,
}

/// A period's records of one level.
#[derive(Serialize)]
pub(crate) struct VolumePoint {
    pub(crate) t: Timestamp,
    pub(crate) level: &'static str,
    pub(crate) count: u64,
}

/// The report for a filter: what the API, the CLI's JSON and the UI show.
pub(crate) fn report(
    reader: &dyn crate::store::StoreReader,
    f: &MetricsFilter,
    by_model: bool,
    limit: usize,
) -> Result<MetricsReport, crate::store::StoreError> {
    let rows = reader.span_rows(f)?;
    let mut spans = summaries(&rows, f, by_model);
    spans.truncate(limit);
    let volume = reader
        .log_volume(f)?
        .into_iter()
        .map(|(t, l, count)| VolumePoint {
            t: Timestamp(t),
            level: Level::from_code(l).map_or("?", Level::as_str),
            count,
        })
        .collect();
    Ok(MetricsReport {
        spans,
        series: series(&rows),
        volume,
    })
}

/// Throughput, error rate, slow spans and latency percentiles (p50/p95/p99 within
/// 1 %) per service and span name over a range, the spans period by period, and
/// records by level.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "metrics",
    params(("since" = Option<String>, Query, description = "an age (1h) or a time; default 1h ago"),
        ("until" = Option<String>, Query), ("service" = Option<String>, Query),
        ("name" = Option<String>, Query, description = "span names starting with this"),
        ("by_model" = Option<bool>, Query, description = "a row per model of LLM calls"),
        ("limit" = Option<usize>, Query)),
    responses((status = 200, body = MetricsReport),
        (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get(access: Access, RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(query.as_deref());
    let f = metrics_filter(&mut p)?;
    let by_model = p.parse_value::<bool>("by_model")?.unwrap_or(false);
    let limit = p.limit()?;
    p.finish(METRICS_KEYS)?;
    let reader = access.reader;
    let r = blocking(move || report(reader.as_ref(), &f, by_model, limit)).await?;
    Ok(json(&r))
}
