//! Field names the layer treats specially. Scope fields (`run_id`, `tenant`, `user_id`,
//! …) are [`logbook_proto::ScopeKey`]'s names.

/// The event message (`tracing`'s implicit field).
pub const MESSAGE: &str = "message";
/// Sets the trace id of a root span (32 hex digits), e.g. taken from an `X-Trace-Id`.
pub const TRACE_ID: &str = "trace_id";
/// A W3C `traceparent` on a span: joins the caller's trace under the caller's span.
pub const TRACEPARENT: &str = "traceparent";
/// A W3C `baggage` on a span: its `run_id`, `tenant`, `user_id` and `session_id`
/// entries are the remote parent's scope, inherited as a local parent's would be (they
/// do not start a run, and the span's own scope fields win); other entries stay in the
/// field.
pub const BAGGAGE: &str = "baggage";
/// `ERROR` or `OK`: sets a span's status explicitly.
pub const OTEL_STATUS_CODE: &str = "otel.status_code";
/// Any value (except `false` or empty) marks the span as failed.
pub const ERROR: &str = logbook_proto::genai::exception::ERROR;
/// The error's type or class (OpenTelemetry); marks the span as failed.
pub const ERROR_TYPE: &str = logbook_proto::genai::ERROR_TYPE;
/// An exception's message (OpenTelemetry); marks the span as failed.
pub const EXCEPTION_MESSAGE: &str = logbook_proto::genai::exception::MESSAGE;
/// An exception's type (OpenTelemetry); marks the span as failed.
pub const EXCEPTION_TYPE: &str = logbook_proto::genai::exception::TYPE;

/// The category the layer gives a span that sets `run_id` itself: the root of a run.
pub const CATEGORY_RUN: &str = "run";
