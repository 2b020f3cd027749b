//! The logbook collector: receives records from logbook layers over a Unix socket,
//! validates them, stores them in SQLite and serves them to the `logbook` CLI.
//!
//! The library without its default `server` feature is the pipeline and the stores,
//! which `logbook-layer`'s `embedded` feature runs in-process.

pub mod audit;
pub mod cost;
pub mod embedded;
pub mod pipeline;
pub mod query;
pub mod retention;
pub mod store;

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod ingest;
