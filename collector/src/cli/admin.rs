//! `logbook purge`, `logbook archive restore` and `logbook dsar`: the commands that
//! change stored data. Each opens the database for writing (beside a running
//! collector, which is safe: SQLite orders the writes) and leaves an audit record.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use logbook_proto::Timestamp;

use super::write_store;
use crate::config::Config;
use crate::query::parse_age;
use crate::retention::{
    dsar_delete, dsar_export, purge, restore_archive, PurgeOptions, PurgeReport, PurgeSpec,
    Selector, StorageClass,
};
use crate::store::Subject;

/// Arguments of `logbook purge`.
#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Delete records older than this (`30d`, `12h`, …) instead of applying the
    /// configured retention policies.
    #[arg(long, value_name = "AGE", value_parser = age)]
    older_than: Option<std::time::Duration>,
    /// Only this tenant's records (with --older-than).
    #[arg(long, value_name = "TENANT", requires = "older_than")]
    tenant: Option<String>,
    /// Only this app's records (with --older-than).
    #[arg(long, value_name = "APP", requires = "older_than")]
    app: Option<String>,
    /// Only records of this category (with --older-than).
    #[arg(long, value_name = "CATEGORY", requires = "older_than")]
    category: Option<String>,
    /// Storage class to purge (with --older-than): ops or audit. Audit records go only
    /// as a prefix of the chain, leaving a signed anchor.
    #[arg(long, value_enum, default_value = "ops", requires = "older_than")]
    class: ClassArg,
    /// Archive the records (compressed JSON Lines per day and tenant, with a manifest)
    /// to this directory before deleting them [default: retention.archive_dir].
    #[arg(long, value_name = "DIR")]
    archive: Option<PathBuf>,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Really delete (required unless --dry-run).
    #[arg(long)]
    yes: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ClassArg {
    Ops,
    Audit,
}

fn age(s: &str) -> Result<std::time::Duration, String> {
    parse_age(s).ok_or_else(|| format!("invalid age {s:?}: expected e.g. 30d, 12h, 90m"))
}

impl PurgeArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        let specs = match self.older_than {
            Some(age) => vec![PurgeSpec {
                class: match self.class {
                    ClassArg::Ops => StorageClass::Ops,
                    ClassArg::Audit => StorageClass::Audit,
                },
                selector: Selector {
                    tenant: self.tenant.clone(),
                    app: self.app.clone(),
                    category: self.category.clone(),
                },
                except: Vec::new(),
                max_age: Some(age),
                max_count: None,
            }],
            None => config.retention.specs(),
        };
        let dry_run = self.dry_run || !self.yes;
        let mut store = write_store(config)?;
        let report = purge(
            store.as_mut(),
            &specs,
            Timestamp::now(),
            &PurgeOptions {
                dry_run,
                archive_dir: self
                    .archive
                    .clone()
                    .or_else(|| config.retention.archive_dir.clone()),
                origin: "cli".into(),
                stop: None,
            },
        )?;
        print_report(&report, self.json)?;
        if !self.dry_run && !self.yes {
            bail!("nothing deleted: add --yes to delete these records (or --dry-run to only look)");
        }
        Ok(())
    }
}

/// Prints a purge report for people, or as JSON.
pub(crate) fn print_report(report: &PurgeReport, json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        return writeln!(out);
    }
    let verb = if report.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    for (step, n) in &report.steps {
        writeln!(out, "{step}: {n}")?;
    }
    writeln!(
        out,
        "{verb} {} ops records and {} audit records; {} runs emptied",
        report.ops, report.audit, report.runs
    )?;
    if let Some(n) = report.anchor {
        writeln!(
            out,
            "the audit chain now starts after the signed anchor at {n}"
        )?;
    }
    if let Some(a) = &report.archive {
        let records: u64 = a.files.iter().map(|f| f.records).sum();
        writeln!(
            out,
            "archived {records} records in {} files to {} (manifest.json)",
            a.files.len(),
            a.dir.display()
        )?;
    }
    Ok(())
}

/// Arguments of `logbook archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    command: ArchiveCommand,
}

#[derive(Debug, Subcommand)]
enum ArchiveCommand {
    /// Bring back archived records: a `*.jsonl.gz` file of an archive, or its
    /// `manifest.json` for all of them. Counts and SHA-256 are checked against the
    /// manifest; records already stored are skipped.
    Restore {
        /// The archive file or manifest.
        file: PathBuf,
    },
}

impl ArchiveArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        match &self.command {
            ArchiveCommand::Restore { file } => {
                let mut store = write_store(config)?;
                let (read, stored) = restore_archive(store.as_mut(), file)?;
                println!(
                    "restored {stored} records ({} already stored) from {}",
                    read - stored,
                    file.display()
                );
                Ok(())
            }
        }
    }
}

/// Arguments of `logbook dsar`.
#[derive(Debug, Args)]
pub struct DsarArgs {
    #[command(subcommand)]
    command: DsarCommand,
}

/// Whose data.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct SubjectArgs {
    /// A user id.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    /// A tenant.
    #[arg(long, value_name = "TENANT")]
    tenant: Option<String>,
}

impl SubjectArgs {
    fn subject(&self) -> Subject {
        match (&self.user, &self.tenant) {
            (Some(u), _) => Subject::User(u.clone()),
            (None, Some(t)) => Subject::Tenant(t.clone()),
            (None, None) => unreachable!("clap requires one"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum DsarCommand {
    /// Write every record of a user or tenant as JSON Lines (file created 0600).
    Export {
        #[command(flatten)]
        subject: SubjectArgs,
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Delete a user's or tenant's records: ops records are deleted, audit records
    /// keep their place in the chain with the payload replaced by a tombstone.
    Delete {
        #[command(flatten)]
        subject: SubjectArgs,
        /// Really delete.
        #[arg(long)]
        yes: bool,
    },
}

impl DsarArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        match &self.command {
            DsarCommand::Export { subject, output } => {
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(output)
                    .with_context(|| format!("creating {}", output.display()))?;
                let mut store = write_store(config)?;
                let n = dsar_export(
                    store.as_mut(),
                    &subject.subject(),
                    &mut BufWriter::new(file),
                )?;
                println!("exported {n} records to {}", output.display());
                Ok(())
            }
            DsarCommand::Delete { subject, yes } => {
                if !yes {
                    bail!("nothing deleted: add --yes to delete this subject's records");
                }
                let mut store = write_store(config)?;
                let r = dsar_delete(store.as_mut(), &subject.subject())?;
                println!(
                    "deleted {} ops records and {} quarantined records; tombstoned {} audit records (the chain stays verifiable)",
                    r.deleted, r.quarantined, r.tombstoned
                );
                Ok(())
            }
        }
    }
}

/// Arguments of `logbook backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (a new file; an existing one is not overwritten).
    dest: PathBuf,
}

impl BackupArgs {
    pub(crate) fn run(&self, config: &Config) -> anyhow::Result<()> {
        let db = match &config.db {
            crate::store::StoreAddress::Sqlite(db) => db,
            crate::store::StoreAddress::Postgres(_) => bail!(
                "logbook backup copies SQLite databases; for PostgreSQL use pg_dump (docs/fleet.md, Backup and restore)"
            ),
        };
        let report = crate::store::sqlite::backup(db, &self.dest)
            .with_context(|| format!("backing up {} to {}", db.display(), self.dest.display()))?;
        println!(
            "Backed up {} records ({:.1} MiB) from {} to {}.",
            report.records,
            report.bytes as f64 / (1 << 20) as f64,
            db.display(),
            self.dest.display()
        );
        if let (Some(keys), Some(checkpoints)) = (config.key_dir(), config.checkpoint_file()) {
            println!(
                "Keep the key directory {} with it (without its keys the audit chain cannot be verified), and the checkpoint file {} off this host.",
                keys.display(),
                checkpoints.display()
            );
        }
        Ok(())
    }
}
