//! A [`tracing_subscriber::Layer`] that turns every span and event into a logbook
//! record and ships it, off the hot path, to a logbook collector.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//!
//! let layer = logbook_layer::layer();
//! let _guard = layer.flush_guard(); // delivers what is queued when main returns
//! tracing_subscriber::registry()
//!     .with(tracing_subscriber::fmt::layer())
//!     .with(layer)
//!     .init();
//!
//! let run = tracing::info_span!("agent.run", run_id = "r-42", tenant = "acme", user_id = "u-7");
//! run.in_scope(|| {
//!     let step = tracing::info_span!("step", n = 1);
//!     step.in_scope(|| tracing::info!(items = 3, "planned")); // inherits run_id, tenant, user_id
//! });
//! ```
//!
//! # What it does on the emitting thread
//!
//! It reads the fields, resolves the span's scope and trace context once per span
//! (events share it by reference), stamps a timestamp and puts the record on a queue.
//! No formatting, no I/O, no lock shared with the worker beyond the queue, no
//! blocking. A worker thread (`logbook-shipper`, which is never traced itself)
//! encodes, batches and sends. The queue is bounded in bytes ([`Builder::with_buffer_bytes`]);
//! past the bound records are dropped and counted by level, and the counts reach the
//! collector.
//!
//! # Configuration
//!
//! [`layer`] reads the environment: `LOGBOOK_ENDPOINT` (`unix:/path/logbook.sock`, the
//! default being `LOGBOOK_SOCKET` or else the collector's default socket; or
//! `sqlite:/path.db` with the `embedded` feature), `LOGBOOK_SERVICE`, `LOGBOOK_TENANT`, `LOGBOOK_ENV`,
//! `LOGBOOK_PROJECT`, `LOGBOOK_APP`, `LOGBOOK_SURFACE` (default scope),
//! `LOGBOOK_BUFFER` (`64MiB`), `LOGBOOK_FLUSH_TIMEOUT` (`5s`), `LOGBOOK_TOKEN`.
//! [`builder`] takes the same settings in code.
//!
//! # Scope and trace context
//!
//! Spans carrying `run_id`, `step_id`, `tenant`, `env`, `project`, `app`, `surface`,
//! `user_id`, `session_id` or `request_id` set that scope for themselves and every
//! span and event below them, including across `tokio::spawn(fut.instrument(span))`.
//! A child may override. A root span takes its trace id from a `trace_id` field (32
//! hex digits) or a `traceparent` field (W3C), else a new one. A `baggage` field (W3C)
//! carries a remote caller's `run_id`, `tenant`, `user_id` and `session_id`: the span
//! inherits them as from a parent (it joins the caller's run rather than starting one),
//! and its own scope fields still win.
//!
//! # Agents
//!
//! [`genai`] has one-line helpers for the spans and events of an agent: LLM calls and
//! tool calls under the OpenTelemetry GenAI field names (with usage, response, finish
//! reasons and errors recorded later), agent invocations, runs (a root span with a
//! fresh `run_id` and scope), steps, decisions, artifacts and state pulses; the field
//! name constants (GenAI, OpenInference, OpenLLMetry); and W3C `traceparent`/`baggage`
//! propagation ([`genai::inject`], [`genai::extract`]) so that a call to another
//! instrumented process joins the same trace and run.
//!
//! # Not losing records at exit
//!
//! Hold the [`FlushGuard`] in `main`. Before `std::process::exit`, which runs no
//! destructors, call [`flush`]. For panics, [`install_panic_hook`] records the panic as
//! an ERROR event and flushes before the previous hook runs.
#![warn(missing_docs)]

mod baggage;
mod capture;
mod clock;
mod config;
pub mod fields;
pub mod genai;
mod guard;
mod json;
mod layer;
mod rng;
mod shipper;
mod span_state;
mod visitor;

use std::time::Duration;

pub use config::{
    BuildError, Builder, Endpoint, EnvError, ENV_BUFFER, ENV_ENDPOINT, ENV_FLUSH_TIMEOUT,
    ENV_REDACTION, ENV_SCOPE_PREFIX, ENV_SERVICE, ENV_SOCKET, ENV_TLS_CA, ENV_TOKEN,
};
pub use guard::{flush, FlushGuard, FlushReport, Handle, Stats};
pub use json::{json, Json};
pub use layer::LogbookLayer;
pub use logbook_proto::{ScopeKey, SpanId, TraceId};
/// The redaction engine, for [`Builder::with_redaction`].
pub use logbook_redact as redact;
pub use span_state::parse_traceparent;

/// The layer, configured from `LOGBOOK_*` environment variables. If the environment is
/// invalid it says so on stderr and drops records rather than stopping the program;
/// use [`builder`]`().try_build()` to handle that yourself.
pub fn layer() -> LogbookLayer {
    Builder::from_env().build()
}

/// A builder starting from the defaults and the `LOGBOOK_*` environment variables.
pub fn builder() -> Builder {
    Builder::from_env()
}

/// Installs a panic hook that records the panic as an ERROR event (target `panic`,
/// with the message and location) in the current span, flushes every logbook layer
/// for up to `timeout`, then runs the previously installed hook.
pub fn install_panic_hook(timeout: Duration) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "Box<dyn Any>".to_owned());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::event!(target: "panic", tracing::Level::ERROR, exception.message = %message, code.location = %location, "panicked");
        // The worker cannot wait for itself.
        if std::thread::current().name() != Some(shipper::WORKER_THREAD) {
            flush(timeout);
        }
        previous(info);
    }));
}
