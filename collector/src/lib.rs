//! The logbook collector: admits records from logbook layers (over a Unix socket, or
//! in-process in embedded mode), validates, redacts and chains them, stores them behind
//! one store contract (SQLite today) and serves them to the `logbook` CLI.
//!
//! The library without its default `server` feature is admission, the pipeline, the
//! views and the stores: what `logbook-layer`'s `embedded` feature runs in-process.

pub mod admission;
pub mod audit;
pub mod cost;
pub mod embedded;
pub mod log_limit;
pub mod monitor;
pub mod pipeline;
pub mod query;
pub mod retention;
pub mod store;
pub mod views;

#[cfg(feature = "server")]
pub mod alerts;
#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod forward;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod ingest;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod serve;
