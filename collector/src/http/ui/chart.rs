//! Charts: a series the store aggregates per time bucket (`record_series`,
//! `run_series`, `call_series`), sent as JSON beside the page's table and drawn by
//! uPlot. Each follows its page's filters: the handler asks the store with the same
//! filter that fills the table.

use logbook_proto::Timestamp;

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

/// A chart, ready for the page.
pub(super) struct Chart {
    /// Its element id.
    pub(super) id: &'static str,
    /// Its title.
    pub(super) title: String,
    /// `{"labels": [...], "t": [unix seconds], "series": [[...], ...], "unit": "..."}`,
    /// safe inside `<script type="application/json">`.
    pub(super) json: String,
    /// Whether it has any data.
    pub(super) empty: bool,
}

/// A chart of `points`' values at `pick` (with their `labels`), every bucket from
/// `since` to `until` present (empty ones as zero).
#[allow(clippy::too_many_arguments)]
pub(super) fn chart(
    id: &'static str,
    title: String,
    labels: &[&str],
    pick: &[usize],
    unit: &str,
    points: &[SeriesPoint],
    (since, until, bucket): (Timestamp, Timestamp, i64),
) -> Chart {
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
    let empty = points.is_empty();
    let json = serde_json::json!({"labels": labels, "t": t, "series": series, "unit": unit});
    Chart {
        id,
        title,
        json: super::runs::script_json(&json),
        empty,
    }
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
        let since = Timestamp(0);
        let points = vec![SeriesPoint {
            t: Timestamp(120_000_000_000),
            values: vec![3.0, 1.0],
        }];
        let c = chart(
            "c",
            "t".into(),
            &["a"],
            &[0],
            "",
            &points,
            (since, Timestamp(240_000_000_000), 60_000_000_000),
        );
        let v: serde_json::Value = serde_json::from_str(&c.json).unwrap();
        assert_eq!(v["series"][0], serde_json::json!([0.0, 0.0, 3.0, 0.0]));
        assert_eq!(v["t"], serde_json::json!([0, 60, 120, 180]));
    }
}
