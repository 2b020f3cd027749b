//! The collector's background jobs: the one-second tick (checkpoints that are due), the
//! scheduled retention purge, and the audit record of the configuration it started
//! with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use logbook_proto::{Record, Timestamp, Value};
use tracing::{info, warn};

use crate::admission::Admission;
use crate::config::Config;
use crate::retention::{purge, PurgeOptions, ORIGIN_SCHEDULE};
use crate::store::open_writer;

/// The audit record of a configuration load: which file, its SHA-256, and the settings
/// that decide what is kept and how.
pub(super) fn config_load_record(config: &Config) -> Record {
    use sha2::{Digest, Sha256};
    let file_hash = config
        .file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .map(|b| crate::audit::to_hex(&Sha256::digest(&b)));
    let mut fields = vec![
        ("db", Value::Str(config.db.to_string())),
        ("socket", Value::Str(config.socket.display().to_string())),
        ("durability", Value::Str(config.durability.as_str().into())),
        (
            "required_scope",
            Value::Str(config.required_scope.join(",")),
        ),
        ("token_set", Value::Bool(config.token.is_some())),
    ];
    if let Some(f) = &config.file {
        fields.push(("config.file", Value::Str(f.display().to_string())));
    }
    if let Some(h) = file_hash {
        fields.push(("config.sha256", Value::Str(h)));
    }
    crate::audit::admin_record(
        "config_load",
        format!(
            "Collector started with configuration {}.",
            config
                .file
                .as_ref()
                .map_or_else(|| "defaults".to_owned(), |f| f.display().to_string())
        ),
        fields,
    )
}

/// Asks the writer for its upkeep once a second, until aborted.
pub(super) fn spawn_ticker(admission: Admission) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            if admission.tick().await.is_err() {
                break;
            }
        }
    })
}

/// The scheduled retention job: a thread with its own store connection that applies
/// the policies at start and then every `retention.interval`, in short transactions
/// beside the writer.
pub(super) struct Retention {
    wake: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Retention {
    /// Starts the job, unless no policy or no interval is set.
    pub(super) fn spawn(config: &Config) -> anyhow::Result<Option<Self>> {
        let specs = config.retention.specs();
        let Some(interval) = config.retention.interval.0 else {
            return Ok(None);
        };
        if specs.is_empty() {
            return Ok(None);
        }
        let mut store = open_writer(&config.db, &config.store_options())
            .context("opening the database for the retention job")?;
        let archive_dir = config.retention.archive_dir.clone();
        let (wake, sleep) = std::sync::mpsc::channel::<()>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("logbook-retention".into())
            .spawn(move || loop {
                let opts = PurgeOptions {
                    dry_run: false,
                    archive_dir: archive_dir.clone(),
                    origin: ORIGIN_SCHEDULE.into(),
                    stop: Some(Arc::clone(&stopping)),
                };
                match purge(store.as_mut(), &specs, Timestamp::now(), &opts) {
                    Ok(r) if r.ops + r.audit > 0 => {
                        info!(
                            ops = r.ops,
                            audit = r.audit,
                            runs = r.runs,
                            "Retention purge."
                        );
                    }
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "Retention purge failed; will retry."),
                }
                match sleep.recv_timeout(interval) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            })?;
        Ok(Some(Self { wake, stop, thread }))
    }

    /// Stops the job: a purge under way stops after its current transaction.
    pub(super) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.wake);
        let _ = self.thread.join();
    }
}
