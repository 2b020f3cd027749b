//! `POST /api/v1/feedback`: a label, a score and a note on a run or one of its LLM
//! calls (`crate::http::feedback`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::{json, Access, ApiError};
use crate::http::feedback::{give, Feedback};
use crate::http::HttpContext;

/// The stored feedback.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct FeedbackGiven {
    /// The id of the feedback's record (32 hex digits).
    id: String,
}

/// Gives feedback on a run, or on a span of it (an LLM call): stored as a record of
/// the run (category `feedback`), audited. Any token that may read the run.
#[utoipa::path(post, path = "/api/v1/feedback", tag = "runs",
    request_body = Feedback,
    responses((status = 200, body = FeedbackGiven),
        (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
        (status = 401, body = super::ErrorBody), (status = 403, body = super::ErrorBody),
        (status = 415, body = super::ErrorBody), (status = 503, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn post(
    State(cx): State<Arc<HttpContext>>,
    access: Access,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    super::require_json(&headers, "feedback")?;
    let f: Feedback = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid feedback: {e}")))?;
    let id = give(&cx, &access.caller, access.reader, f).await?;
    Ok(json(&FeedbackGiven { id: id.to_string() }))
}
