//! `/audit` (admins only): the audit trail as an explorer (time, action, actor,
//! target, what happened), filtered by action, time and text, keyset-paged; and the
//! chain's state as `logbook verify` reports it: intact or the first problem, the
//! rows checked, the last signed checkpoint and how many rows follow it.

use std::sync::Arc;

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use logbook_proto::{Record, Timestamp};

use super::view::{self, choices, link, query, Choice};
use super::{render, Nav, UiError, Viewer};
use crate::audit::CATEGORY_AUDIT;
use crate::http::api::{blocking, verify_report, Params};
use crate::http::HttpContext;
use crate::query::{Cursor, Page, RecordFilter, TimeSpec};

/// Rows a page shows.
const PAGE: usize = 100;

/// Fields that name who acted, in order of preference.
const ACTORS: &[&str] = &["by", "origin", "destination", "token", "actor", "peers"];
/// Fields that name what was acted on.
const TARGETS: &[&str] = &[
    "run",
    "subject.kind",
    "token.name",
    "token.id",
    "filter",
    "config.path",
    "records",
];

pub(super) struct AuditRow {
    pub(super) time: String,
    pub(super) action: String,
    pub(super) actor: String,
    pub(super) target: String,
    pub(super) message: String,
    pub(super) href: String,
}

fn first_field(r: &Record, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| {
            r.fields
                .get(k)
                .map(|v| format!("{k}: {}", super::detail::value_text(v)))
        })
        .map(|s| super::detail::cut(&s, 120).0)
        .unwrap_or_default()
}

impl AuditRow {
    fn of(r: &Record) -> Self {
        let token = r
            .origin
            .as_ref()
            .and_then(|o| o.token.clone())
            .map(|t| format!("token: {t}"));
        Self {
            time: view::time(r.ts),
            action: r.name.trim_start_matches("logbook.").to_owned(),
            actor: token.unwrap_or_else(|| first_field(r, ACTORS)),
            target: first_field(r, TARGETS),
            message: super::detail::cut(r.message.as_deref().unwrap_or(""), 400).0,
            href: format!("/records/{}", r.id),
        }
    }
}

/// The chain's state.
pub(super) struct Chain {
    pub(super) ok: bool,
    pub(super) problem: String,
    pub(super) checked: u64,
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) tombstoned: u64,
    pub(super) checkpoint: String,
    pub(super) after_checkpoint: u64,
    pub(super) error: String,
}

#[derive(Template)]
#[template(path = "ui/audit.html")]
struct AuditPage {
    nav: Nav,
    chain: Chain,
    ranges: Vec<Choice>,
    action: String,
    text: String,
    rows: Vec<AuditRow>,
    next: String,
    error: String,
}

/// The audit page.
pub(super) async fn show(
    State(cx): State<Arc<HttpContext>>,
    viewer: Viewer,
    RawQuery(q): RawQuery,
) -> Result<Response, UiError> {
    let viewer = viewer.nav("audit");
    if !viewer.caller.is_admin() {
        return Err(UiError::page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "The audit trail needs an admin's token.",
        ));
    }
    let mut p = Params::parse(q.as_deref());
    let since_text =
        p.0.iter()
            .find(|(k, _)| k == "since")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
    let action =
        p.0.iter()
            .find(|(k, _)| k == "action")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
    let text =
        p.0.iter()
            .find(|(k, _)| k == "text")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
    let parsed = (|| {
        let now = Timestamp::now();
        let filter = RecordFilter {
            since: p.parse_value::<TimeSpec>("since")?.map(|t| t.resolve(now)),
            category: Some(CATEGORY_AUDIT.to_owned()),
            name: p.take("action")?.map(|a| format!("logbook.{a}")),
            text: p.take("text")?,
            ..RecordFilter::default()
        };
        let before: Option<Cursor> = p.parse_value("before")?;
        p.finish(&["since", "action", "text", "before"])?;
        Ok::<_, crate::http::api::ApiError>((filter, before))
    })();
    let chain = match verify_report(&cx, Arc::clone(&viewer.reader)).await {
        Ok(r) => Chain {
            ok: r.ok(),
            problem: r
                .problem
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            checked: r.checked,
            first: r.first_n,
            last: r.last_n,
            tombstoned: r.tombstoned,
            checkpoint: r
                .last_checkpoint
                .map(|(n, t)| format!("row {n}, signed {}", view::time(t)))
                .unwrap_or_default(),
            after_checkpoint: r.after_last_checkpoint,
            error: String::new(),
        },
        Err(e) => Chain {
            ok: false,
            problem: String::new(),
            checked: 0,
            first: 0,
            last: 0,
            tombstoned: 0,
            checkpoint: String::new(),
            after_checkpoint: 0,
            error: e.parts().1,
        },
    };
    let mut page = AuditPage {
        nav: viewer.nav,
        chain,
        ranges: choices(view::RANGES, &since_text),
        action: action.clone(),
        text: text.clone(),
        rows: Vec::new(),
        next: String::new(),
        error: String::new(),
    };
    let (filter, before) = match parsed {
        Ok(f) => f,
        Err(e) => {
            page.error = e.parts().1;
            return Ok(render(&page));
        }
    };
    let reader = viewer.reader;
    let records = blocking(move || {
        reader.query(
            &filter,
            &Page {
                limit: PAGE,
                before,
            },
        )
    })
    .await?;
    if records.len() == PAGE {
        if let Some(r) = records.last() {
            let c = Cursor {
                ts: r.ts,
                seq: r.seq,
            }
            .to_string();
            page.next = link(
                "/audit",
                &query([
                    ("since", since_text.as_str()),
                    ("action", action.as_str()),
                    ("text", text.as_str()),
                    ("before", c.as_str()),
                ]),
            );
        }
    }
    page.rows = records.iter().map(AuditRow::of).collect();
    Ok(render(&page))
}
