//! `/errors`: exception groups (unresolved and regressed first, filterable by state,
//! service, text and time), and `/errors/{fingerprint}`: one group with its trend,
//! services, versions, affected users, sample records, its run and trace, notes, and
//! the forms that resolve (optionally in a version), ignore (for a while or for N more
//! occurrences), reopen or annotate it (admins; audited as from the API).

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::view::{self, choices, link, query, Choice};
use super::{render, Form, Nav, UiError, Viewer};
use crate::http::api::{apply_change, blocking, error_filter, ErrorChange, Params, ERROR_KEYS};
use crate::http::HttpContext;
use crate::monitor::short;
use crate::store::{ExceptionDetail, ExceptionGroup};

/// A group as listed.
pub(super) struct GroupRow {
    pub(super) href: String,
    pub(super) short: String,
    pub(super) state: &'static str,
    pub(super) kind: String,
    pub(super) message: String,
    pub(super) culprit: String,
    pub(super) count: u64,
    pub(super) users: u64,
    pub(super) services: String,
    pub(super) first_seen: String,
    pub(super) last_seen: String,
}

fn group_href(fingerprint: &str) -> String {
    format!("/errors/{}", view::segment(fingerprint))
}

fn row(g: &ExceptionGroup) -> GroupRow {
    GroupRow {
        href: group_href(&g.fingerprint),
        short: short(&g.fingerprint).to_owned(),
        state: g.status.state.as_str(),
        kind: g.kind.clone(),
        message: super::detail::cut(&g.message, 300).0,
        culprit: g.culprit.clone(),
        count: g.count,
        users: g.users,
        services: g.services.join(", "),
        first_seen: view::time(g.first_seen),
        last_seen: view::time(g.last_seen),
    }
}

#[derive(Template)]
#[template(path = "ui/exceptions.html")]
struct ErrorsPage {
    nav: Nav,
    states: Vec<Choice>,
    ranges: Vec<Choice>,
    sorts: Vec<Choice>,
    service: String,
    search: String,
    rows: Vec<GroupRow>,
    error: String,
}

/// The groups page.
pub(super) async fn list(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let viewer = viewer.nav("errors");
    let mut p = Params::parse(q.as_deref());
    let get = |k: &str| p.shown(k);
    let (state, since, sort, service, search) = (
        get("state"),
        get("since"),
        get("sort"),
        get("service"),
        get("search"),
    );
    let mut page = ErrorsPage {
        nav: viewer.nav,
        states: choices(
            &[
                ("", "unresolved and regressed"),
                ("unresolved", "unresolved"),
                ("regressed", "regressed"),
                ("resolved", "resolved"),
                ("ignored", "ignored"),
                ("all", "all"),
            ],
            &state,
        ),
        ranges: choices(view::RANGES, &since),
        sorts: choices(
            &[
                ("", "last seen"),
                ("count", "most frequent"),
                ("new", "newest"),
            ],
            &sort,
        ),
        service,
        search,
        rows: Vec::new(),
        error: String::new(),
    };
    let parsed = error_filter(&mut p).and_then(|f| {
        std::mem::take(&mut p).finish(ERROR_KEYS)?;
        Ok(f)
    });
    match parsed {
        Ok(mut filter) => {
            filter.limit = 200;
            let reader = viewer.reader;
            let groups = blocking(move || reader.exception_groups(&filter)).await?;
            page.rows = groups.iter().map(row).collect();
        }
        Err(e) => page.error = e.parts().1,
    }
    Ok(render(&page))
}

/// A tag row of a group's page.
pub(super) struct TagRow {
    pub(super) value: String,
    pub(super) count: u64,
    pub(super) last_seen: String,
}

/// An hour of the trend.
pub(super) struct Bar {
    pub(super) label: String,
    pub(super) count: u64,
    /// Height in percent of the busiest hour.
    pub(super) height: u64,
}

#[derive(Template)]
#[template(path = "ui/exception.html")]
struct GroupPage {
    nav: Nav,
    g: GroupRow,
    fingerprint: String,
    basis: String,
    state_line: String,
    message: String,
    versions: String,
    bars: Vec<Bar>,
    tag_tables: Vec<(&'static str, Vec<TagRow>)>,
    notes: Vec<(String, String, String)>,
    samples: Vec<(&'static str, String)>,
    run_href: String,
    run: String,
    trace_href: String,
    trace: String,
    action: String,
    ignore_for: Vec<Choice>,
    error: String,
}

fn group_page(nav: Nav, d: ExceptionDetail, error: String) -> GroupPage {
    let g = &d.group;
    let tags = |kind: crate::store::exceptions::TagKind| -> Vec<TagRow> {
        d.tags
            .iter()
            .filter(|t| t.kind == kind)
            .map(|t| TagRow {
                value: t.value.clone(),
                count: t.count,
                last_seen: view::time(t.last_seen),
            })
            .collect()
    };
    let max = d.trend.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    use crate::store::exceptions::TagKind;
    let run = g.last_run.clone().unwrap_or_default();
    let trace = g.last_trace.clone().unwrap_or_default();
    let mut samples = vec![("first", g.first_id.clone())];
    if g.last_id != g.first_id {
        samples.push(("last", g.last_id.clone()));
    }
    GroupPage {
        g: row(g),
        fingerprint: g.fingerprint.clone(),
        basis: g.basis.clone(),
        state_line: crate::monitor::state_line(g),
        message: g.message.clone(),
        versions: g.versions.join(", "),
        bars: d
            .trend
            .iter()
            .map(|(hour, n)| Bar {
                label: view::time(*hour),
                count: *n,
                height: (n * 100).div_ceil(max),
            })
            .collect(),
        tag_tables: vec![
            ("Services", tags(TagKind::Service)),
            ("Versions", tags(TagKind::Version)),
            ("Users", tags(TagKind::User)),
        ],
        notes: d
            .notes
            .iter()
            .map(|n| (view::time(n.ts), n.author.clone(), n.text.clone()))
            .collect(),
        samples: samples
            .into_iter()
            .map(|(w, id)| (w, link(&format!("/records/{}", view::segment(&id)), "")))
            .collect(),
        run_href: if run.is_empty() {
            String::new()
        } else {
            view::run_href(&run)
        },
        run,
        trace_href: if trace.is_empty() {
            String::new()
        } else {
            link("/records", &query([("trace", trace.as_str())]))
        },
        trace,
        action: group_href(&g.fingerprint),
        ignore_for: choices(
            &[
                ("", "until I reopen it"),
                ("1h", "for an hour"),
                ("24h", "for a day"),
                ("7d", "for a week"),
            ],
            "",
        ),
        nav,
        error,
    }
}

async fn show_group(viewer: Viewer, given: String, error: String) -> Result<Response, UiError> {
    let reader = Arc::clone(&viewer.reader);
    let detail = blocking(move || {
        Ok(match crate::monitor::find_group(reader.as_ref(), &given) {
            Ok(fp) => reader.exception_group(&fp)?,
            Err(crate::monitor::FindError::Store(e)) => return Err(e),
            Err(_) => None,
        })
    })
    .await?;
    let Some(d) = detail else {
        return Err(UiError::page(
            StatusCode::NOT_FOUND,
            "No such exception group",
            "No exception group has this fingerprint.",
        ));
    };
    Ok(render(&group_page(viewer.nav, d, error)))
}

/// One group's page.
pub(super) async fn one(viewer: Viewer, Path(given): Path<String>) -> Result<Response, UiError> {
    show_group(viewer.nav("errors"), given, String::new()).await
}

/// `POST /errors/{fingerprint}`: `action` (resolve, ignore, reopen, note) with
/// `in_version`, `for`, `more` or `text`; admins only.
pub(super) async fn change(
    State(cx): State<Arc<HttpContext>>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(given): Path<String>,
    body: Bytes,
) -> Result<Response, UiError> {
    let viewer = viewer.nav("errors");
    let fields = Form::checked(&cx, &headers, &body)?;
    if !viewer.caller.is_admin() {
        return Err(UiError::page(
            StatusCode::FORBIDDEN,
            "Admins only",
            format!(
                "Changing an exception group needs an admin's token; {:?} is a {} token.",
                viewer.caller.name,
                viewer.caller.role.as_str()
            ),
        ));
    }
    let request = ErrorChange {
        action: fields.get("action").unwrap_or_default(),
        in_version: fields.get("in_version"),
        for_: fields.get("for"),
        more: match fields.get("more") {
            Some(m) => match m.parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return show_group(
                        viewer,
                        given,
                        format!("More: {m:?} is not a positive whole number."),
                    )
                    .await;
                }
            },
            None => None,
        },
        text: fields.get("text"),
    };
    let change = match request.to_change(&viewer.caller.name) {
        Ok(c) => c,
        Err(e) => return show_group(viewer, given, e.parts().1).await,
    };
    let who = format!("ui: {}", viewer.caller.name);
    let group = apply_change(&cx, Arc::clone(&viewer.reader), given, change, who).await?;
    Ok(Redirect::to(&group_href(&group.fingerprint)).into_response())
}
