//! `/records` (the explorer: every filter of `logbook query`, keyset pages, export
//! links, the live tail), `/records/{id}` (one record: a page, or the detail panel's
//! fragment when htmx asks) and `/records/{id}/value` (the whole of a value the detail
//! cut).

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::http::HeaderMap;
use axum::response::Response;
use logbook_proto::{Record, RecordId};

use super::detail::{self, RecordDetail};
use super::view::{self, choices, link, query, Choice};
use super::{render, Nav, UiError, Viewer};
use crate::cli::output::clip;
use crate::http::api::{blocking, record_filter, Params};
use crate::query::{Cursor, Page};

/// Records a page shows.
const PAGE: usize = 100;

/// The explorer's filters, as given.
pub(super) struct RecordForm {
    pub(super) pairs: Vec<(String, String)>,
}

impl RecordForm {
    fn get(&self, key: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The filters as a query string.
    pub(super) fn query(&self) -> String {
        query(self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

/// A record as a row of the explorer.
pub(super) struct RecordRow {
    pub(super) href: String,
    pub(super) time: String,
    pub(super) full_time: String,
    pub(super) level: String,
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) target: String,
    pub(super) message: String,
    pub(super) duration: String,
    pub(super) run: String,
    pub(super) run_href: String,
}

impl RecordRow {
    fn of(r: &Record) -> Self {
        let run = r
            .scope
            .get(logbook_proto::ScopeKey::RunId)
            .unwrap_or("")
            .to_owned();
        Self {
            href: format!("/records/{}", r.id),
            time: short_time(&r.ts.to_rfc3339()),
            full_time: r.ts.to_rfc3339(),
            level: r.level.as_str().to_owned(),
            kind: match r.kind {
                logbook_proto::Kind::Event => "event",
                logbook_proto::Kind::SpanStart => "start",
                logbook_proto::Kind::SpanEnd => "end",
            }
            .to_owned(),
            name: r.name.to_string(),
            target: r.target.to_string(),
            message: detail::hide_base64(&clip(r.message.as_deref().unwrap_or(""), 300))
                .into_owned(),
            duration: r
                .duration_ns
                .map(|d| view::duration(Some(d)))
                .unwrap_or_default(),
            run_href: if run.is_empty() {
                String::new()
            } else {
                view::run_href(&run)
            },
            run,
        }
    }
}

/// `2026-12-02T09:05:57.637938Z` as `12-02 09:05:57.637`: the list's time column.
pub(super) fn short_time(rfc3339: &str) -> String {
    match (rfc3339.get(5..10), rfc3339.get(11..19), rfc3339.get(19..23)) {
        (Some(day), Some(time), Some(ms)) if ms.starts_with('.') => format!("{day} {time}{ms}"),
        (Some(day), Some(time), _) => format!("{day} {time}"),
        _ => rfc3339.to_owned(),
    }
}

/// Records the top values are counted over: the newest that match.
const TOP_SAMPLE: usize = 10_000;
/// Values shown.
const TOP_VALUES: usize = 10;

/// A value and how often it occurs, with the link that filters by it.
pub(super) struct TopValue {
    pub(super) value: String,
    pub(super) count: u64,
    pub(super) share: String,
    pub(super) href: String,
}

/// The top values of a key.
pub(super) struct Top {
    pub(super) key: String,
    pub(super) looked: u64,
    pub(super) values: Vec<TopValue>,
}

impl Top {
    fn of(key: &str, values: Vec<(String, u64)>, looked: u64, form: &RecordForm) -> Self {
        // The filter a value of this key becomes, if there is one.
        let param = match key {
            "name" | "target" | "category" | "tenant" | "project" | "app" | "kind" => Some(key),
            "run_id" => Some("run"),
            "user_id" | "user" => Some("user"),
            "service" | "host" | "env" | "session_id" | "status" | "level" => None,
            _ => Some("field"),
        };
        let values = values
            .into_iter()
            .map(|(value, count)| {
                let href = match param {
                    Some(p) if value != "(none)" => {
                        let v = if p == "field" {
                            format!("{key}={value}")
                        } else {
                            value.clone()
                        };
                        // The value replaces the filter of its parameter, if any.
                        let kept = RecordForm {
                            pairs: form
                                .pairs
                                .iter()
                                .filter(|(k, _)| p == "field" || k != p)
                                .cloned()
                                .collect(),
                        };
                        let mut q = kept.query();
                        if !q.is_empty() {
                            q.push('&');
                        }
                        q.push_str(&query([(p, v.as_str())]));
                        link("/records", &q)
                    }
                    _ => String::new(),
                };
                TopValue {
                    share: format!("{:.1}%", count as f64 * 100.0 / looked.max(1) as f64),
                    value: detail::cut(&value, 120).0,
                    count,
                    href,
                }
            })
            .collect();
        Self {
            key: key.to_owned(),
            looked,
            values,
        }
    }
}

/// A text filter of the form.
pub(super) struct Input {
    pub(super) name: &'static str,
    pub(super) label: &'static str,
    pub(super) value: String,
    pub(super) hint: &'static str,
}

#[derive(Template)]
#[template(path = "ui/records.html")]
struct RecordsPage {
    nav: Nav,
    ranges: Vec<Choice>,
    levels: Vec<Choice>,
    kinds: Vec<Choice>,
    inputs: Vec<Input>,
    fields: Vec<String>,
    rows: Vec<RecordRow>,
    error: String,
    next: String,
    first: String,
    export_csv: String,
    export_jsonl: String,
    export_text: String,
    stream: String,
    charts_src: String,
    top: Option<Top>,
    top_key: String,
}

const TEXT_FILTERS: &[(&str, &str, &str)] = &[
    ("until", "Until", "RFC 3339 or 2h"),
    ("run", "Run", ""),
    ("trace", "Trace", "32 hex digits"),
    ("tenant", "Tenant", ""),
    ("project", "Project", ""),
    ("app", "App", ""),
    ("user", "User", ""),
    ("category", "Category", "llm_call, tool_call, …"),
    ("name", "Name", ""),
    ("target", "Target", "app::db"),
    ("min_duration", "Min duration", "250ms"),
    ("max_duration", "Max duration", "2s"),
    ("text", "Text", "all these words"),
];

/// The records explorer.
pub(super) async fn list(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let viewer = viewer.nav("records");
    let mut p = Params::parse(q.as_deref());
    let top = p
        .take("top")?
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    let form = RecordForm {
        pairs: p.0.iter().filter(|(k, _)| k != "before").cloned().collect(),
    };
    let parsed = record_filter(&mut p).and_then(|f| {
        let before: Option<Cursor> = p.parse_value("before")?;
        p.finish(&["before", "top", "…the filters of logbook query"])?;
        Ok((f, before))
    });
    let mut tops: Option<Top> = None;
    let (rows, next, error) = match parsed {
        Ok((filter, before)) => {
            let reader = viewer.reader;
            let top_key = top.clone();
            let (records, top_values) = blocking(move || {
                let records = reader.query(
                    &filter,
                    &Page {
                        limit: PAGE,
                        before,
                    },
                )?;
                let top_values = match &top_key {
                    Some(k) => Some(reader.top_values(&filter, k, TOP_SAMPLE, TOP_VALUES)?),
                    None => None,
                };
                Ok((records, top_values))
            })
            .await?;
            if let (Some(key), Some((values, looked))) = (&top, top_values) {
                tops = Some(Top::of(key, values, looked, &form));
            }
            let next = (records.len() == PAGE)
                .then(|| records.last())
                .flatten()
                .map(|r| {
                    let cursor = Cursor {
                        ts: r.ts,
                        seq: r.seq,
                    }
                    .to_string();
                    let mut q = form.query();
                    if !q.is_empty() {
                        q.push('&');
                    }
                    q.push_str(&query([
                        ("top", top.as_deref().unwrap_or("")),
                        ("before", cursor.as_str()),
                    ]));
                    link("/records", &q)
                })
                .unwrap_or_default();
            (
                records.iter().map(RecordRow::of).collect(),
                next,
                String::new(),
            )
        }
        Err(e) => (Vec::new(), String::new(), e.parts().1),
    };
    let filters = form.query();
    let export = |format: &str| {
        let mut q = query([("format", format)]);
        if !filters.is_empty() {
            q.push('&');
            q.push_str(&filters);
        }
        link("/api/v1/export", &q)
    };
    Ok(render(&RecordsPage {
        top: tops,
        top_key: top.unwrap_or_default(),
        charts_src: link("/charts/records", &filters),
        nav: viewer.nav,
        ranges: choices(view::RANGES, form.get("since")),
        levels: choices(
            &[
                ("", "any level"),
                ("trace", "trace+"),
                ("debug", "debug+"),
                ("info", "info+"),
                ("warn", "warn+"),
                ("error", "error"),
            ],
            form.get("level"),
        ),
        kinds: choices(
            &[
                ("", "any kind"),
                ("event", "events"),
                ("span_start", "span starts"),
                ("span_end", "span ends"),
            ],
            form.get("kind"),
        ),
        inputs: TEXT_FILTERS
            .iter()
            .map(|(name, label, hint)| Input {
                name,
                label,
                value: form.get(name).to_owned(),
                hint,
            })
            .collect(),
        fields: {
            let mut f: Vec<String> = form
                .pairs
                .iter()
                .filter(|(k, _)| k == "field")
                .map(|(_, v)| v.clone())
                .collect();
            f.push(String::new());
            f
        },
        rows,
        error,
        next,
        first: link("/records", &filters),
        export_csv: export("csv"),
        export_jsonl: export("jsonl"),
        export_text: export("text"),
        stream: link(
            "/api/v1/stream",
            &query(
                form.pairs
                    .iter()
                    .filter(|(k, _)| k != "since" && k != "until")
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ),
        ),
    }))
}

#[derive(Template)]
#[template(path = "ui/record.html")]
struct RecordPage {
    nav: Nav,
    d: RecordDetail,
}

#[derive(Template)]
#[template(path = "ui/record_detail.html")]
struct RecordFragment {
    d: RecordDetail,
}

async fn fetch(viewer: &Viewer, id: &str) -> Result<Record, UiError> {
    let id: RecordId = id
        .parse()
        .map_err(|_| UiError::bad_request(format!("{id:?} is not a record id (32 hex digits)")))?;
    let reader = std::sync::Arc::clone(&viewer.reader);
    blocking(move || reader.get(id))
        .await?
        .ok_or_else(|| UiError::not_found(format!("No record {id}.")))
}

/// One record: its page, or (asked by htmx) the detail panel's fragment.
pub(super) async fn one(
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, UiError> {
    let viewer = viewer.nav("records");
    let record = fetch(&viewer, &id).await?;
    let mut d = RecordDetail::of(&record);
    d.csrf = viewer.nav.csrf.clone();
    if headers.contains_key("hx-request") {
        Ok(render(&RecordFragment { d }))
    } else {
        Ok(render(&RecordPage { nav: viewer.nav, d }))
    }
}

#[derive(Template)]
#[template(path = "ui/value.html")]
struct ValueFragment {
    text: String,
}

/// The whole of one value of a record (`key`, and for a chat message's part `msg`
/// and `part`), escaped, base64 payloads still hidden.
pub(super) async fn value(
    viewer: Viewer,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, UiError> {
    let mut p = Params::parse(q.as_deref());
    let key = p
        .take("key")?
        .ok_or_else(|| UiError::bad_request("key: which value (a field's key)"))?;
    let msg: Option<usize> = p.parse_value("msg")?;
    let part: Option<usize> = p.parse_value("part")?;
    p.finish(&["key", "msg", "part"])?;
    let record = fetch(&viewer, &id).await?;
    let text = detail::whole_value(&record, &key, msg, part)
        .ok_or_else(|| UiError::not_found(format!("Record {id} has no value {key:?} there.")))?;
    Ok(render(&ValueFragment { text }))
}
