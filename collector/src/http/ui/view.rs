//! What the templates show: values formatted as the CLI prints them (times to the
//! second, durations in their best unit, dollars), rows of the lists, and links that
//! carry a page's filters.

use logbook_proto::Timestamp;

use crate::cli::calls::usd as usd_text;
use crate::cli::output::{duration as duration_text, to_seconds};
use crate::store::RunSummary;

/// A time to the second.
pub(super) fn time(t: Timestamp) -> String {
    to_seconds(t)
}

/// A duration, or `-`.
pub(super) fn duration(ns: Option<u64>) -> String {
    ns.map(duration_text).unwrap_or_else(|| "-".into())
}

/// Dollars, or `-`.
pub(super) fn usd(v: Option<f64>) -> String {
    usd_text(v)
}

/// A query string (without `?`) of the non-empty pairs.
pub(super) fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if !v.is_empty() {
            s.append_pair(k, v);
        }
    }
    s.finish()
}

/// `path?query`, or `path` alone when the query is empty.
pub(super) fn link(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// `text` as one segment of a path: percent-encoded (a space as `%20`: `+` means a
/// space in a query only).
pub(super) fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The path of a run's page.
pub(super) fn run_href(run_id: &str) -> String {
    format!("/runs/{}", segment(run_id))
}

/// A run as a row of the runs list: the columns of `logbook runs`.
pub(super) struct RunRow {
    pub(super) href: String,
    pub(super) run_id: String,
    pub(super) started: String,
    pub(super) duration: String,
    pub(super) status: String,
    pub(super) service: String,
    pub(super) name: String,
    pub(super) user: String,
    pub(super) llm_calls: u64,
    pub(super) tool_calls: u64,
    pub(super) tokens: String,
    pub(super) cost: String,
    pub(super) errors: u64,
}

impl RunRow {
    /// The row of `r`.
    pub(super) fn of(r: &RunSummary) -> Self {
        Self {
            href: run_href(&r.run_id),
            run_id: r.run_id.clone(),
            started: time(r.started),
            duration: duration(r.duration_ns),
            status: r.status.clone(),
            service: r.service.clone().unwrap_or_default(),
            name: r
                .agent
                .as_deref()
                .or(r.root_name.as_deref())
                .unwrap_or("-")
                .to_owned(),
            user: r.user_id.clone().unwrap_or_default(),
            llm_calls: r.llm_calls,
            tool_calls: r.tool_calls,
            tokens: format!("{}/{}", r.input_tokens, r.output_tokens),
            cost: usd(r.cost),
            errors: r.errors,
        }
    }
}

/// A choice of a `<select>`.
pub(super) struct Choice {
    pub(super) value: String,
    pub(super) label: String,
    pub(super) selected: bool,
}

/// The choices of `options` (value, label), the one equal to `current` selected; a
/// `current` not among them is added, so a bookmarked value shows as it is.
pub(super) fn choices(options: &[(&str, &str)], current: &str) -> Vec<Choice> {
    let mut out: Vec<Choice> = options
        .iter()
        .map(|(v, l)| Choice {
            value: (*v).to_owned(),
            label: (*l).to_owned(),
            selected: *v == current,
        })
        .collect();
    if !current.is_empty() && !options.iter().any(|(v, _)| *v == current) {
        out.push(Choice {
            value: current.to_owned(),
            label: current.to_owned(),
            selected: true,
        });
    }
    out
}

/// The run statuses offered.
pub(super) const RUN_STATUSES: &[(&str, &str)] = &[
    ("", "any status"),
    ("ok", "ok"),
    ("error", "error"),
    ("running", "running"),
];

/// The time ranges offered.
pub(super) const RANGES: &[(&str, &str)] = &[
    ("", "any time"),
    ("15m", "last 15 minutes"),
    ("1h", "last hour"),
    ("6h", "last 6 hours"),
    ("24h", "last 24 hours"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
];
