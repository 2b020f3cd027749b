//! `logbook verify`.

use std::io::{self, Write};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::Args;

use crate::audit::{verify, Keys, PublicKey, VerifyOptions};
use crate::config::Config;
use crate::store::open_reader;

/// Arguments of `logbook verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Checkpoint file to check against, e.g. a copy kept off the host [default: the
    /// configured checkpoint_file].
    #[arg(long, value_name = "PATH")]
    checkpoints: Option<PathBuf>,
    /// Public key (signing.pub, or its hex in a file) to check signatures with, e.g.
    /// one kept off the host [default: the key directory's].
    #[arg(long, value_name = "PATH")]
    public_key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl VerifyArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        let store = open_reader(&config.db)?;
        let key_dir = config
            .key_dir()
            .context("no key_dir configured and no database file to find keys/ beside")?;
        let keys = Keys::load(&key_dir)
            .with_context(|| format!("loading the audit keys from {}", key_dir.display()))?;
        let public = match &self.public_key {
            Some(p) => PublicKey::read(p)?,
            None => keys.public(),
        };
        let checkpoint_file = self
            .checkpoints
            .clone()
            .or_else(|| config.checkpoint_file())
            .context("no checkpoint_file configured: give --checkpoints")?;
        let report = verify(
            store.as_ref(),
            &VerifyOptions {
                chain_key: *keys.chain_key(),
                public,
                checkpoint_file: checkpoint_file.clone(),
            },
        )?;
        let mut out = io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, &report)?;
            writeln!(out)?;
        } else if report.ok() {
            writeln!(
                out,
                "audit chain OK: {} records checked (sequence {}..{}), {} tombstoned by DSAR deletions",
                report.checked, report.first_n, report.last_n, report.tombstoned
            )?;
            if let Some((n, ts)) = report.anchor {
                writeln!(
                    out,
                    "  resumed after the signed anchor at {n} ({ts}) left by a prune"
                )?;
            }
            writeln!(
                out,
                "  {} signed checkpoints checked ({})",
                report.checkpoints,
                checkpoint_file.display()
            )?;
            match report.last_checkpoint {
                Some((n, ts)) => writeln!(
                    out,
                    "  newest checkpoint covers {n} ({ts}); {} records after it are protected by the chain key alone until the next checkpoint is copied off the host",
                    report.after_last_checkpoint
                )?,
                None => writeln!(
                    out,
                    "  no checkpoint yet: truncation of the chain cannot be detected until one is written"
                )?,
            }
        }
        out.flush()?;
        if let Some(p) = &report.problem {
            bail!("audit chain FAILED at {p}");
        }
        Ok(())
    }
}
