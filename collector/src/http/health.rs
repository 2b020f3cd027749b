//! `/readyz` (the store answers and takes writes, the writer keeps up) and `/metrics`
//! (`crate::metrics`, OpenMetrics text), and the count of every request by route and
//! status. `/healthz` (the process is up) needs nothing and lives in the router.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::api::{blocking, json, Access, ApiError};
use super::HttpContext;

/// The share of the writer's queue past which the collector is not ready: it is not
/// keeping up, and new requests would be refused.
const QUEUE_READY_SHARE: f64 = 0.9;

/// 200 `{"ready": true}` when the store can be read, its last commit succeeded, and
/// the writer's queue is not nearly full; else 503 with the reasons. No token needed.
pub(super) async fn ready(State(cx): State<Arc<HttpContext>>) -> Response {
    let mut problems: Vec<String> = Vec::new();
    if !cx.admission.is_open() {
        problems.push("the writer has stopped".into());
    }
    if cx.admission.metrics().failing() {
        problems.push("the last commit failed (see the collector's log)".into());
    }
    let (queued, capacity) = cx.admission.queue_depth();
    if queued as f64 > capacity as f64 * QUEUE_READY_SHARE {
        problems.push(format!(
            "the writer is behind: {queued} of {capacity} queued records"
        ));
    }
    let reader = Arc::clone(&cx.reader);
    if blocking(move || reader.stream_end()).await.is_err() {
        problems.push("the store cannot be read (see the collector's log)".into());
    }
    let body = serde_json::json!({
        "ready": problems.is_empty(),
        "queued_records": queued,
        "queue_capacity": capacity,
        "problems": problems,
    });
    let mut response = json(&body);
    if !problems.is_empty() {
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    }
    response
}

/// The metrics, for a token that may read everything (when tokens are required).
pub(super) async fn metrics(
    State(cx): State<Arc<HttpContext>>,
    access: Access,
) -> Result<Response, ApiError> {
    if !access.caller.visibility.is_all() {
        return Err(ApiError::forbidden(
            "the metrics are the whole collector's: a scoped token may not read them",
        ));
    }
    let reader = Arc::clone(&cx.reader);
    let stats = blocking(move || reader.stats()).await.ok();
    let reader = Arc::clone(&cx.reader);
    let spans = blocking(move || {
        let now = logbook_proto::Timestamp::now();
        let f = crate::store::metrics::MetricsFilter {
            since: now.saturating_sub(std::time::Duration::from_secs(300)),
            until: now,
            ..Default::default()
        };
        Ok(crate::store::metrics::summaries(
            &reader.span_rows(&f)?,
            &f,
            false,
        ))
    })
    .await
    .ok();
    let text =
        cx.admission
            .metrics()
            .render(stats.as_ref(), cx.admission.queue_depth(), spans.as_deref());
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(response)
}

/// Counts each request by its route (the pattern, not the path: ids do not multiply
/// the series) and status.
pub(super) async fn count_request(
    State(cx): State<Arc<HttpContext>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    cx.admission
        .metrics()
        .request(&route, response.status().as_u16(), started.elapsed());
    response
}
