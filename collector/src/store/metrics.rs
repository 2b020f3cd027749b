//! What the store keeps of span metrics and log volume (see `crate::monitor`): per
//! service, span name and model, by minute and by hour, a count, errors, slow spans,
//! the total duration and a latency sketch (`crate::monitor::sketch`); records by
//! level per service, by minute and by hour. Written by the monitor with its cursor;
//! read as rows and merged here, whatever the backend.

use std::collections::BTreeMap;

use logbook_proto::Timestamp;
use serde::Serialize;

use crate::monitor::sketch::Sketch;

/// A minute and an hour, in nanoseconds: the widths rows are kept at.
pub const MINUTE_NS: i64 = 60_000_000_000;
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// Ranges up to this long are read from minute rows, longer ones from hour rows.
pub const MINUTES_UP_TO_NS: i64 = 6 * HOUR_NS;

/// What span metrics are kept by.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct SpanKey {
    pub service: String,
    /// The span's name.
    pub name: String,
    /// An LLM call's model, else empty.
    pub model: String,
}

/// Spans of one key in one period.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SpanStats {
    pub count: u64,
    /// Spans that ended in error.
    pub errors: u64,
    /// Spans over their name's slow threshold.
    pub slow: u64,
    /// Their durations, summed (saturating).
    pub sum_ns: u64,
    /// Their durations.
    pub sketch: Sketch,
}

impl SpanStats {
    /// Counts one span.
    pub fn add(&mut self, duration_ns: u64, error: bool, slow: bool) {
        self.count += 1;
        self.errors += u64::from(error);
        self.slow += u64::from(slow);
        self.sum_ns = self.sum_ns.saturating_add(duration_ns);
        self.sketch.add(duration_ns);
    }

    /// Adds `other`'s spans (exactly: sketches merge without loss).
    pub fn merge(&mut self, other: &Self) {
        self.count += other.count;
        self.errors += other.errors;
        self.slow += other.slow;
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.sketch.merge(&other.sketch);
    }
}

/// A page's span metrics by `(width, period start, key)`.
pub type SpanDeltas = BTreeMap<(i64, i64, SpanKey), SpanStats>;

/// A page's records by `(width, period start, service, level code)`.
pub type VolumeDeltas = BTreeMap<(i64, i64, String, u8), u64>;

/// Which metrics to read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsFilter {
    pub since: Timestamp,
    pub until: Timestamp,
    pub service: Option<String>,
    /// Span names starting with this.
    pub name: Option<String>,
}

impl MetricsFilter {
    /// The width of the rows that answer this range.
    pub fn width(&self) -> i64 {
        if self.until.as_nanos() - self.since.as_nanos() <= MINUTES_UP_TO_NS {
            MINUTE_NS
        } else {
            HOUR_NS
        }
    }

    /// The first period start read: the period holding `since`.
    pub fn first_period(&self) -> i64 {
        self.since.as_nanos().div_euclid(self.width()) * self.width()
    }
}

/// One stored row.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRow {
    pub period: i64,
    pub key: SpanKey,
    pub stats: SpanStats,
}

/// A key's totals over a range, as reports show them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SpanSummary {
    #[serde(flatten)]
    pub key: SpanKey,
    pub count: u64,
    pub errors: u64,
    /// errors / count.
    pub error_rate: f64,
    pub slow: u64,
    /// Spans per second over the range.
    pub rate: f64,
    pub mean_ns: u64,
    pub p50_ns: Option<u64>,
    pub p95_ns: Option<u64>,
    pub p99_ns: Option<u64>,
}

impl SpanSummary {
    /// The summary of `stats` over `seconds`.
    pub fn of(key: SpanKey, stats: &SpanStats, seconds: f64) -> Self {
        Self {
            key,
            count: stats.count,
            errors: stats.errors,
            error_rate: if stats.count == 0 {
                0.0
            } else {
                stats.errors as f64 / stats.count as f64
            },
            slow: stats.slow,
            rate: stats.count as f64 / seconds.max(1.0),
            mean_ns: stats.sum_ns.checked_div(stats.count).unwrap_or(0),
            p50_ns: stats.sketch.quantile(0.5),
            p95_ns: stats.sketch.quantile(0.95),
            p99_ns: stats.sketch.quantile(0.99),
        }
    }
}

/// Each key's totals over the rows, the busiest first, models folded into their
/// span name unless `by_model`.
pub fn summaries(rows: &[SpanRow], f: &MetricsFilter, by_model: bool) -> Vec<SpanSummary> {
    let mut by: BTreeMap<SpanKey, SpanStats> = BTreeMap::new();
    for r in rows {
        let mut key = r.key.clone();
        if !by_model {
            key.model.clear();
        }
        by.entry(key).or_default().merge(&r.stats);
    }
    let seconds = (f.until.as_nanos() - f.since.as_nanos()) as f64 / 1e9;
    let mut out: Vec<SpanSummary> = by
        .iter()
        .map(|(k, s)| SpanSummary::of(k.clone(), s, seconds))
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    out
}

/// One point of a series: a period's totals over every selected key.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub t: Timestamp,
    pub count: u64,
    pub errors: u64,
    pub p50_ns: Option<u64>,
    pub p95_ns: Option<u64>,
    pub p99_ns: Option<u64>,
}

/// The rows merged period by period, oldest first.
pub fn series(rows: &[SpanRow]) -> Vec<SeriesPoint> {
    let mut by: BTreeMap<i64, SpanStats> = BTreeMap::new();
    for r in rows {
        by.entry(r.period).or_default().merge(&r.stats);
    }
    by.iter()
        .map(|(t, s)| SeriesPoint {
            t: Timestamp(*t),
            count: s.count,
            errors: s.errors,
            p50_ns: s.sketch.quantile(0.5),
            p95_ns: s.sketch.quantile(0.95),
            p99_ns: s.sketch.quantile(0.99),
        })
        .collect()
}
