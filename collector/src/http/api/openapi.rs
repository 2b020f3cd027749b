//! `GET /api/v1/openapi.json`: the API described by the handlers' own annotations and
//! types (utoipa), so the document cannot drift from what is served. Served without a
//! token: it describes the API, it holds no data.

use std::sync::LazyLock;

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

use super::{admin, errors, feedback, metrics, records, runs, stream, ErrorBody, ErrorDetail};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "logbook",
        description = "The read API of the logbook collector. Lists are keyset-paged: pass a page's `next` back as `before` (records, calls) or `after` (runs). Tokens: `Authorization: Bearer <token>` (`logbook token create`); a viewer token scoped to a tenant or user sees only its records, on every route."
    ),
    paths(
        records::list,
        records::one,
        records::export,
        stream::stream,
        runs::list,
        runs::one,
        runs::calls,
        runs::cost,
        feedback::post,
        errors::list,
        errors::one,
        errors::change,
        metrics::get,
        admin::stats,
        admin::verify,
        admin::purge,
        document,
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        records::RecordPage,
        runs::RunPage,
        runs::RunDetail,
        runs::Tree,
        runs::TreeSpan,
        runs::TreeNode,
        runs::CallPage,
        runs::CostReport,
        admin::PurgeRequest,
        crate::http::feedback::Feedback,
        feedback::FeedbackGiven,
        errors::ErrorList,
        errors::ErrorChange,
        metrics::MetricsReport,
        stream::SseEvent,
    )),
    modifiers(&Bearer),
    tags(
        (name = "records", description = "Records: filtered pages, one record, export, live stream"),
        (name = "runs", description = "Runs, their span trees, LLM and tool calls, cost, feedback"),
        (name = "errors", description = "Exception groups: list, one group, resolve, ignore, reopen, note"),
        (name = "metrics", description = "Span metrics (throughput, errors, latency percentiles) and log volume"),
        (name = "admin", description = "Stats, audit verification, purge"),
    )
)]
pub(super) struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    serde_json::to_string_pretty(&doc).unwrap_or_default()
});

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "admin",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub(super) async fn document() -> Response {
    let mut response = DOCUMENT.as_str().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
