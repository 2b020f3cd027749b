//! The `logbook` command line: one module per command, each a clap `Args` struct with
//! a `run` method.

mod admin;
mod alerts;
pub(crate) mod args;
mod audit;
pub(crate) mod calls;
mod errors;
mod metrics;
pub(crate) mod output;
mod records;
mod runs;
mod serve;
mod stats;
mod token;

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::config::{Config, Sources};
use crate::store::{open_reader, open_writer, StoreReader, StoreWriter};

/// logbook: a flight recorder for async Rust services and AI agents.
///
/// `logbook serve` runs the collector; the other commands read its database.
#[derive(Debug, Parser)]
#[command(name = "logbook", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Configuration file [default: ./logbook.toml if present; env LOGBOOK_CONFIG].
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Where records are stored: a SQLite database file (sqlite:PATH or a path)
    /// [default: $XDG_DATA_HOME/logbook/logbook.db; env LOGBOOK_DB].
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<String>,

    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collector: listen on the Unix socket and store records.
    #[command(after_long_help = crate::config::keys_help())]
    Serve(serve::ServeArgs),
    /// List runs, newest first.
    Runs(runs::RunsArgs),
    /// Show one run (by run id, or by trace id) as a span tree with durations, status and
    /// errors, prompts and responses, tool arguments and results.
    Run(runs::RunArgs),
    /// List LLM calls (model, tokens, cost, response) or tool calls (arguments,
    /// result), newest first.
    Calls(calls::CallsArgs),
    /// What LLM calls cost, by model, provider, user, tenant, app, run or day; `cost
    /// recompute` after a price change; `cost prices` shows the price table.
    Cost(calls::CostArgs),
    /// Search records (newest first, keyset pages).
    Query(records::QueryArgs),
    /// Print the newest records, then follow new ones as they are stored.
    Tail(records::TailArgs),
    /// Write every matching record, oldest first, as CSV, JSON Lines or text.
    Export(records::ExportArgs),
    /// Counts by level and kind, database size, ingest rate, client drops, audit,
    /// quarantine and redaction counts.
    Stats(stats::StatsArgs),
    /// Check the audit chain: every hash, every signed checkpoint; name the first bad
    /// sequence number (exit 1).
    Verify(audit::VerifyArgs),
    /// Delete records by the retention policies, or older than an age; optionally
    /// archive them first. Audited.
    Purge(admin::PurgeArgs),
    /// Restore archived records.
    Archive(admin::ArchiveArgs),
    /// Data subject requests: export or delete a user's or tenant's records. Audited.
    Dsar(admin::DsarArgs),
    /// Create, list and revoke API tokens (roles admin, viewer, ingest).
    Token(token::TokenArgs),
    /// Copy the database, consistent, while the collector keeps writing (SQLite's
    /// online backup). Restore by stopping the collector and putting the copy in place.
    Backup(admin::BackupArgs),
    /// Exceptions grouped by fingerprint: list them (unresolved and regressed first),
    /// `show` one, `resolve`, `ignore`, `reopen`, `note`. Changes are audited.
    Errors(errors::ErrorsArgs),
    /// Throughput, error rate and latency percentiles (p50/p95/p99, within 1 %) per
    /// service and span name (`--by-model` for LLM calls), slow spans, `--series`
    /// period by period, `--volume` records by level.
    Metrics(metrics::MetricsArgs),
    /// Alert rules, the alerts pending or firing, the history of firings and
    /// deliveries; `alerts test RULE` sends a test alert.
    Alerts(alerts::AlertsArgs),
}

impl Cli {
    fn sources(&self, flags: Vec<(&'static str, String)>) -> Sources {
        let mut flags = flags;
        if let Some(db) = &self.db {
            flags.push(("db", db.clone()));
        }
        Sources {
            file: self.config.clone(),
            flags,
        }
    }

    fn config(&self) -> anyhow::Result<Config> {
        Config::load(&self.sources(Vec::new()))
    }

    /// Opens the configured store for reading.
    fn read_store(&self) -> anyhow::Result<Arc<dyn StoreReader>> {
        let config = self.config()?;
        Ok(open_reader(&config.db)?)
    }

    /// Runs the command.
    pub fn run(self) -> anyhow::Result<()> {
        match &self.command {
            Command::Serve(a) => a.run(&self),
            Command::Runs(a) => a.run(self.read_store()?.as_ref()),
            Command::Run(a) => a.run(self.read_store()?.as_ref()),
            Command::Calls(a) => a.run(self.read_store()?.as_ref()),
            Command::Cost(a) => a.run(&self.config()?),
            Command::Query(a) => a.run(self.read_store()?.as_ref()),
            Command::Tail(a) => a.run(self.read_store()?.as_ref()),
            Command::Export(a) => a.run(self.read_store()?.as_ref(), &self.config()?),
            Command::Stats(a) => a.run(self.read_store()?.as_ref()),
            Command::Verify(a) => a.run(&self.config()?),
            Command::Purge(a) => a.run(&self.config()?),
            Command::Archive(a) => a.run(&self.config()?),
            Command::Dsar(a) => a.run(&self.config()?),
            Command::Token(a) => a.run(&self.config()?),
            Command::Backup(a) => a.run(&self.config()?),
            Command::Errors(a) => a.run(&self.config()?),
            Command::Metrics(a) => a.run(&self.config()?),
            Command::Alerts(a) => a.run(&self.config()?),
        }
    }
}

/// Opens the configured store for writing, with the configured keys: an admin command
/// beside a running collector (the store orders their writes).
pub(crate) fn write_store(config: &Config) -> anyhow::Result<Box<dyn StoreWriter>> {
    open_writer(&config.db, &config.store_options())
        .with_context(|| format!("opening database {} for writing", config.db))
}

/// The `logbook` binary's entry point: parses arguments, runs the command, and turns
/// an error into one line on stderr and exit status 1. A closed output pipe (as with
/// `logbook export | head`) is not an error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("logbook: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}
