//! `/maintenance` (admins only): the retention policies in force, "purge older than N
//! days" in two steps (a dry run that counts, then a confirmation that deletes and
//! says how many), the quarantined records with their reasons, and a DSAR export.
//! Every change is a POST carrying the page's CSRF token; the purge and the export
//! are audited by the same code as the CLI's and the API's.

use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{render, view, Form, Nav, UiError, Viewer};
use crate::http::api::{blocking, execute_purge, PurgeRequest};
use crate::http::HttpContext;
use crate::retention::describe;
use crate::store::{open_writer, Subject};

fn admin_only(viewer: &Viewer) -> Result<(), UiError> {
    if viewer.caller.is_admin() {
        Ok(())
    } else {
        Err(UiError::page(
            StatusCode::FORBIDDEN,
            "Admins only",
            format!(
                "Maintenance needs an admin's token; {:?} is a {} token.",
                viewer.caller.name,
                viewer.caller.role.as_str()
            ),
        ))
    }
}

/// A quarantined record as listed.
pub(super) struct Quarantined {
    pub(super) received: String,
    pub(super) reason: String,
    pub(super) record: String,
}

/// What a purge did, or would do.
pub(super) struct PurgeOutcome {
    pub(super) days: u32,
    pub(super) dry_run: bool,
    pub(super) ops: u64,
    pub(super) runs: u64,
    pub(super) archive: String,
    pub(super) interrupted: bool,
}

#[derive(Template)]
#[template(path = "ui/maintenance.html")]
struct MaintenancePage {
    nav: Nav,
    policies: Vec<String>,
    archive_dir: String,
    quarantined: Vec<Quarantined>,
    outcome: Option<PurgeOutcome>,
    error: String,
}

async fn page(
    cx: &Arc<HttpContext>,
    viewer: Viewer,
    outcome: Option<PurgeOutcome>,
    error: String,
) -> Result<Response, UiError> {
    let reader = Arc::clone(&viewer.reader);
    let rows = blocking(move || reader.quarantined(50)).await?;
    let quarantined = rows
        .into_iter()
        .map(|q| Quarantined {
            received: view::time(q.received),
            reason: q.reason,
            record: super::detail::cut(&q.record.to_string(), 600).0,
        })
        .collect();
    Ok(render(&MaintenancePage {
        nav: viewer.nav,
        policies: cx.config.retention.specs().iter().map(describe).collect(),
        archive_dir: cx
            .config
            .retention
            .archive_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        quarantined,
        outcome,
        error,
    }))
}

/// The maintenance page.
pub(super) async fn show(
    State(cx): State<Arc<HttpContext>>,
    viewer: Viewer,
) -> Result<Response, UiError> {
    let viewer = viewer.nav("maintenance");
    admin_only(&viewer)?;
    page(&cx, viewer, None, String::new()).await
}

/// `POST /maintenance/purge`: `days`, and `confirm=yes` to delete (else a dry run).
pub(super) async fn purge(
    State(cx): State<Arc<HttpContext>>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let viewer = viewer.nav("maintenance");
    admin_only(&viewer)?;
    let fields = Form::checked(&cx, &headers, &body)?;
    let days = match fields.get("days").map(|d| d.parse::<u32>()) {
        Some(Ok(d)) if d >= 1 => d,
        _ => {
            return page(
                &cx,
                viewer,
                None,
                "Days: a whole number of days, 1 or more.".into(),
            )
            .await
        }
    };
    let confirm = fields.get("confirm").as_deref() == Some("yes");
    let request = PurgeRequest {
        older_than: Some(format!("{days}d")),
        tenant: None,
        app: None,
        category: None,
        class: None,
        dry_run: Some(!confirm),
    };
    let who = format!("web: {}", viewer.caller.name);
    match execute_purge(&cx, &who, &request).await {
        Ok(report) => {
            let outcome = PurgeOutcome {
                days,
                dry_run: report.dry_run,
                ops: report.ops,
                runs: report.runs,
                archive: report
                    .archive
                    .as_ref()
                    .map(|a| format!("{a:?}"))
                    .unwrap_or_default(),
                interrupted: report.interrupted,
            };
            page(&cx, viewer, Some(outcome), String::new()).await
        }
        Err(e) => page(&cx, viewer, None, e.parts().1).await,
    }
}

/// `POST /maintenance/dsar` (`user` or `tenant`, `csrf`): every record of a data
/// subject as JSON Lines, downloaded; audited as `logbook dsar export` is.
pub(super) async fn dsar(
    State(cx): State<Arc<HttpContext>>,
    viewer: Viewer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    admin_only(&viewer)?;
    let fields = Form::checked(&cx, &headers, &body)?;
    let subject = match (fields.get("user"), fields.get("tenant")) {
        (Some(u), None) => Subject::User(u),
        (None, Some(t)) => Subject::Tenant(t),
        _ => {
            return Err(UiError::bad_request(
                "Give a user or a tenant (one of them).",
            ))
        }
    };
    let config = Arc::clone(&cx.config);
    let body = blocking(move || {
        let mut store = open_writer(&config.db, &config.store_options())?;
        let mut out = Vec::new();
        crate::retention::dsar_export(store.as_mut(), &subject, &mut out)?;
        Ok(out)
    })
    .await?;
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"logbook-dsar-export.jsonl\""),
    );
    Ok(r)
}
