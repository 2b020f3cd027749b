//! The read API under `/api/v1`: JSON, every list keyset-paged with a cursor and a
//! capped `limit`, errors as `{"error": {"code": …, "message": …}}` with the right
//! status. Every handler reads through [`Access::reader`], the store as the caller's
//! token may see it (`crate::store::scoped`): a viewer scoped to a tenant cannot reach
//! another tenant's record by any route, and its counts and sums are its own.
//!
//! `records` (records, one record, export, the live stream), `runs` (runs, one run and
//! its tree, calls, cost), `admin` (stats, verify, purge), `openapi` (the document,
//! generated from the handlers' types).

mod admin;
mod errors;
mod feedback;
mod metrics;
mod openapi;
mod params;
mod records;
mod runs;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;

use super::{HttpContext, Refused};
use crate::admission::auth::Caller;
use crate::store::{scoped, StoreError, StoreReader};

pub(crate) use admin::{execute_purge, verify_report, PurgeRequest};
pub(crate) use errors::{apply_change, error_filter, ErrorChange, ERROR_KEYS};
pub(crate) use metrics::{metrics_filter, report as metrics_report, METRICS_KEYS};
pub use params::Params;
pub(crate) use records::record_filter;
pub(crate) use runs::{next_runs, run_filter, RUN_KEYS};

/// Most items a list returns at once, whatever `limit` asks.
pub const MAX_LIMIT: usize = 1000;
/// Items a list returns when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 100;

/// The `/api/v1` routes.
pub fn routes() -> Router<Arc<HttpContext>> {
    Router::new()
        .route("/api/v1/records", get(records::list))
        .route("/api/v1/records/{id}", get(records::one))
        .route("/api/v1/export", get(records::export))
        .route("/api/v1/stream", get(stream::stream))
        .route("/api/v1/runs", get(runs::list))
        .route("/api/v1/runs/{id}", get(runs::one))
        .route("/api/v1/calls", get(runs::calls))
        .route("/api/v1/cost", get(runs::cost))
        .route("/api/v1/feedback", post(feedback::post))
        .route("/api/v1/errors", get(errors::list))
        .route("/api/v1/metrics", get(metrics::get))
        .route(
            "/api/v1/errors/{fingerprint}",
            get(errors::one).post(errors::change),
        )
        .route("/api/v1/stats", get(admin::stats))
        .route("/api/v1/audit/verify", get(admin::verify))
        .route("/api/v1/openapi.json", get(openapi::document))
}

/// The answer to a path under `/api/` that names no route.
pub fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route (the API is described at /api/v1/openapi.json)",
    )
}

/// The routes that may take longer than a request may: a purge of millions of
/// records (it stops when the collector does).
pub fn long_routes() -> Router<Arc<HttpContext>> {
    Router::new().route("/api/v1/purge", post(admin::purge))
}

/// An error answered as `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// `bad_request`, `unauthenticated`, `forbidden`, `not_found`, `unavailable` or
    /// `internal`.
    code: String,
    /// One line for people.
    message: String,
}

impl ApiError {
    /// An error of this status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400: the request cannot be answered as asked.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// Its status and message.
    pub fn parts(self) -> (StatusCode, String) {
        (self.status, self.message)
    }

    /// 403: the token may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(_) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is busy; try again",
            ),
            StoreError::NotPermitted(m) => Self::forbidden(m),
            e => {
                tracing::error!(error = %e, "An API request failed.");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "reading the store failed (the collector's log says why)",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message,
            },
        };
        let mut response = json(&body);
        *response.status_mut() = self.status;
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"logbook\""),
            );
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// The caller of a request and the store as it may read it. Extracting it
/// authenticates the request (`Authorization: Bearer …`): 401 without a valid token
/// when tokens are required, 403 for a token that may not read.
pub struct Access {
    /// Who asked.
    pub caller: Caller,
    /// The store, as far as the caller may see it.
    pub reader: Arc<dyn StoreReader>,
}

impl FromRequestParts<Arc<HttpContext>> for Access {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        cx: &Arc<HttpContext>,
    ) -> Result<Self, Self::Rejection> {
        let caller = authenticate(parts, cx).await?;
        // A browser session changes nothing without its CSRF token.
        let by_cookie = bearer(&parts.headers).is_none()
            && crate::http::ui::session::cookie(&parts.headers).is_some()
            && !caller.is_anonymous();
        if by_cookie
            && !matches!(
                parts.method,
                axum::http::Method::GET | axum::http::Method::HEAD
            )
        {
            let presented = parts
                .headers
                .get(crate::http::ui::session::CSRF_HEADER)
                .and_then(|v| v.to_str().ok());
            if !cx.sessions.csrf_ok(&parts.headers, presented) {
                return Err(ApiError::forbidden(
                    "a request made with a session cookie needs its CSRF token (X-CSRF-Token)",
                ));
            }
        }
        if !caller.may_read() {
            return Err(ApiError::forbidden(format!(
                "the token {:?} may only send records (role {})",
                caller.name,
                caller.role.as_str()
            )));
        }
        let reader = scoped(Arc::clone(&cx.reader), caller.visibility.clone());
        Ok(Self { caller, reader })
    }
}

/// The caller a request's bearer token names; 401, counted and audited as a failure,
/// when it names none and one is required; 403 for a tokenless request that is not
/// a local client's.
pub async fn authenticate(parts: &Parts, cx: &HttpContext) -> Result<Caller, ApiError> {
    match cx.reader_caller(&parts.headers) {
        Ok(caller) => Ok(caller),
        Err(Refused::NotLocal) => Err(ApiError::forbidden(
            "without a token only local clients are served, and this request names another host or comes from a web page",
        )),
        Err(Refused::Unauthenticated) => {
            let peer = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string());
            cx.auth.failed(&peer).await;
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "missing or wrong token (Authorization: Bearer …)",
            ))
        }
    }
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Store reads running at once, at most: a read outlives a request that timed out,
/// so the request limit alone would not bound them.
const MAX_READS: usize = 16;
static READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_READS);

/// Runs a store read on the blocking pool, at most [`MAX_READS`] at once (a request
/// waits its turn; one that gives up waiting starts nothing).
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = READS.acquire().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the collector is stopping",
        )
    })?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the read failed: {e}"),
        )
    })?
    .map_err(ApiError::from)
}

/// 415 unless the request says its body is JSON (`Content-Type: application/json`):
/// a web page cannot send that to another origin without the browser asking first,
/// and nothing here answers that question. `what` names the body in the message.
pub fn require_json(headers: &HeaderMap, what: &str) -> Result<(), ApiError> {
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if json_type {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("{what} is JSON: Content-Type: application/json"),
        ))
    }
}

/// A JSON answer.
pub fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "An API answer did not serialize.");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
