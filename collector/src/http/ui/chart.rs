//! Charts: series the store aggregates per time bucket (`record_series`,
//! `run_series`, `call_series`), fetched by the page's script from `/charts/…` with
//! the page's own query string (so each follows the page's filters) and drawn by
//! uPlot. Fetched after the page, so a page's table never waits for its charts.

use axum::extract::RawQuery;
use axum::response::Response;
use logbook_proto::Timestamp;

use super::Viewer;
use crate::http::api::{blocking, json, record_filter, run_filter, ApiError, Params, RUN_KEYS};
use crate::store::SeriesPoint;

/// Buckets a chart aims at, at most.
const BUCKETS: i64 = 120;
/// Bucket sizes, in seconds: the smallest that keeps a range within [`BUCKETS`].
const SIZES: &[i64] = &[
    60,
    300,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    7 * 86_400,
];

/// The range a chart covers: the filter's, else the last 24 hours; and its bucket,
/// in nanoseconds.
pub(super) fn range(
    since: Option<Timestamp>,
    until: Option<Timestamp>,
) -> (Timestamp, Timestamp, i64) {
    let now = Timestamp::now();
    let until = until.unwrap_or(now);
    let since = since.unwrap_or(Timestamp(until.as_nanos() - 86_400_000_000_000));
    let span = (until.as_nanos() - since.as_nanos()).max(1) / 1_000_000_000;
    let size = SIZES
        .iter()
        .copied()
        .find(|s| span / s <= BUCKETS)
        .unwrap_or(30 * 86_400);
    // Buckets start on whole multiples of their size (a 5-minute bucket at :05).
    let since = Timestamp(since.as_nanos() - since.as_nanos().rem_euclid(size * 1_000_000_000));
    (since, until, size * 1_000_000_000)
}

/// A chart of `points`' values at `pick` (with their `labels`), every bucket from
/// `since` to `until` present (empty ones as zero), as the page's script draws it:
/// `{"id", "title", "labels", "t": [unix seconds], "series": [[...]], "unit", "empty"}`.
pub(super) fn chart(
    id: &str,
    title: &str,
    labels: &[&str],
    pick: &[usize],
    unit: &str,
    points: &[SeriesPoint],
    (since, until, bucket): (Timestamp, Timestamp, i64),
) -> serde_json::Value {
    let mut t = Vec::new();
    let mut series: Vec<Vec<f64>> = vec![Vec::new(); pick.len()];
    let mut i = 0;
    let mut at = since.as_nanos();
    while at < until.as_nanos() && t.len() < 2 * BUCKETS as usize {
        while i < points.len() && points[i].t.as_nanos() < at {
            i += 1;
        }
        let p = points.get(i).filter(|p| p.t.as_nanos() == at);
        t.push(at / 1_000_000_000);
        for (s, &k) in series.iter_mut().zip(pick) {
            s.push(p.and_then(|p| p.values.get(k)).copied().unwrap_or(0.0));
        }
        at += bucket;
    }
    serde_json::json!({"id": id, "title": title, "labels": labels, "t": t, "series": series,
        "unit": unit, "empty": points.is_empty()})
}

/// `/charts/runs`: runs and errors over time, with the runs page's filters.
pub(super) async fn runs(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let mut filter = run_filter(&mut p)?;
    p.finish(RUN_KEYS)?;
    let range = range(filter.since, filter.until);
    filter.since = Some(range.0);
    filter.until = Some(range.1);
    filter.after = None;
    let reader = viewer.reader;
    let series = blocking(move || reader.run_series(&filter, range.2)).await?;
    Ok(json(&[chart(
        "runs-chart",
        "Runs and errors over time",
        &["runs", "errors"],
        &[0, 1],
        "runs",
        &series,
        range,
    )]))
}

/// `/charts/records`: records by level over time, with the records page's filters.
pub(super) async fn records(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let mut filter = record_filter(&mut p)?;
    p.finish(&["…the filters of logbook query"])?;
    let range = range(filter.since, filter.until);
    filter.since = Some(range.0);
    filter.until = Some(range.1);
    let reader = viewer.reader;
    let series = blocking(move || reader.record_series(&filter, range.2)).await?;
    Ok(json(&[chart(
        "records-chart",
        "Records by level over time",
        &["all", "warn", "error"],
        &[0, 1, 2],
        "records",
        &series,
        range,
    )]))
}

/// `/charts/calls`: LLM calls' tokens, cost and latency over time, with the calls
/// page's filters.
pub(super) async fn calls(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let mut filter = super::calls::call_filter(&mut p)?;
    let range = range(filter.since, filter.until);
    filter.since = Some(range.0);
    filter.until = Some(range.1);
    filter.before = None;
    let reader = viewer.reader;
    let series = blocking(move || reader.call_series(&filter, range.2)).await?;
    Ok(json(&[
        chart(
            "tokens-chart",
            "Tokens over time",
            &["input tokens", "output tokens"],
            &[1, 2],
            "tokens",
            &series,
            range,
        ),
        chart(
            "cost-chart",
            "Cost over time (USD)",
            &["cost"],
            &[3],
            "USD",
            &series,
            range,
        ),
        chart(
            "latency-chart",
            "LLM call latency (ms)",
            &["p50", "p95"],
            &[4, 5],
            "ms",
            &series,
            range,
        ),
    ]))
}

/// `/charts/spans`: the performance page's spans (throughput, errors, latency) and
/// records by level over time, from the monitor's rollups, with its filters.
pub(super) async fn spans(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let mut p = Params::parse(q.as_deref());
    let f = crate::http::api::metrics_filter(&mut p)?;
    let _ = p.take("by_model")?;
    p.finish(crate::http::api::METRICS_KEYS)?;
    let reader = viewer.reader;
    let width = f.width();
    let range = (Timestamp(f.first_period()), f.until, width);
    let r =
        blocking(move || crate::http::api::metrics_report(reader.as_ref(), &f, false, 1)).await?;
    let ms = |ns: Option<u64>| ns.map_or(0.0, |n| n as f64 / 1e6);
    let spans: Vec<SeriesPoint> = r
        .series
        .iter()
        .map(|p| SeriesPoint {
            t: p.t,
            values: vec![
                p.count as f64,
                p.errors as f64,
                ms(p.p50_ns),
                ms(p.p95_ns),
                ms(p.p99_ns),
            ],
        })
        .collect();
    let mut volume: Vec<SeriesPoint> = Vec::new();
    for v in &r.volume {
        if volume.last().is_none_or(|l| l.t != v.t) {
            volume.push(SeriesPoint {
                t: v.t,
                values: vec![0.0; 3],
            });
        }
        let last = volume.len() - 1;
        let at = match v.level {
            "ERROR" => 2,
            "WARN" => 1,
            _ => 0,
        };
        volume[last].values[0] += v.count as f64;
        if at > 0 {
            volume[last].values[at] += v.count as f64;
        }
    }
    Ok(json(&[
        chart(
            "spans-chart",
            "Spans and errors",
            &["spans", "errors"],
            &[0, 1],
            "spans",
            &spans,
            range,
        ),
        chart(
            "latency-chart",
            "Span latency (ms)",
            &["p50", "p95", "p99"],
            &[2, 3, 4],
            "ms",
            &spans,
            range,
        ),
        chart(
            "volume-chart",
            "Records by level",
            &["all", "warn", "error"],
            &[0, 1, 2],
            "records",
            &volume,
            range,
        ),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_keep_a_range_within_bounds() {
        let day = Timestamp(86_400_000_000_000 * 20_000);
        let (since, until, bucket) = range(
            Some(Timestamp(day.as_nanos() - 86_400_000_000_000)),
            Some(day),
        );
        assert_eq!(bucket, 900 * 1_000_000_000);
        assert!((until.as_nanos() - since.as_nanos()) / bucket <= BUCKETS + 1);
        let (_, _, hour) = range(
            Some(Timestamp(day.as_nanos() - 3_600_000_000_000)),
            Some(day),
        );
        assert_eq!(hour, 60 * 1_000_000_000);
    }

    #[test]
    fn empty_buckets_are_zero() {
        let points = vec![SeriesPoint {
            t: Timestamp(120_000_000_000),
            values: vec![3.0, 1.0],
        }];
        let range = (Timestamp(0), Timestamp(240_000_000_000), 60_000_000_000);
        let v = chart("c", "t", &["a"], &[0], "", &points, range);
        assert_eq!(v["series"][0], serde_json::json!([0.0, 0.0, 3.0, 0.0]));
        assert_eq!(v["t"], serde_json::json!([0, 60, 120, 180]));
        assert_eq!(v["empty"], serde_json::json!(false));
    }
}
