//! `logbook serve`: the Unix socket listener, one task per connection, and the single
//! writer thread with group commit.

mod connection;
mod socket;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::Config;
use crate::pipeline::Pipeline;
use crate::store::{SqliteStore, Store};

/// Batches waiting for the writer before connections stop reading (backpressure).
const WRITE_QUEUE: usize = 256;

/// The audit record of a configuration load: which file, its SHA-256, and the settings
/// that decide what is kept and how.
fn config_load_record(config: &Config) -> logbook_proto::Record {
    use logbook_proto::Value;
    use sha2::{Digest, Sha256};
    let file_hash = config
        .file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .map(|b| crate::audit::to_hex(&Sha256::digest(&b)));
    let mut fields = vec![
        ("db", Value::Str(config.db.display().to_string())),
        ("socket", Value::Str(config.socket.display().to_string())),
        (
            "durability",
            Value::Str(format!("{:?}", config.durability).to_lowercase()),
        ),
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

/// The scheduled retention job: a thread with its own connection that applies the
/// policies at start and then every `retention.interval`, in short transactions beside
/// the writer. Dropping the returned sender stops it.
fn spawn_retention(
    config: &Config,
) -> anyhow::Result<Option<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>> {
    let specs = config.retention.specs();
    let Some(interval) = config.retention.interval.0 else {
        return Ok(None);
    };
    if specs.is_empty() {
        return Ok(None);
    }
    let mut store = SqliteStore::open_with(&config.db, &config.store_options())
        .context("opening the database for the retention job")?;
    let archive_dir = config.retention.archive_dir.clone();
    let (wake, sleep) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("logbook-retention".into())
        .spawn(move || loop {
            let opts = crate::store::PurgeOptions {
                dry_run: false,
                archive_dir: archive_dir.clone(),
                origin: "schedule".into(),
            };
            match store.purge(&specs, logbook_proto::Timestamp::now(), &opts) {
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
    Ok(Some((wake, thread)))
}

/// Runs the collector until SIGINT or SIGTERM; then stops accepting, commits and
/// acknowledges everything already received, and returns.
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("logbook-io")
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let mut store = SqliteStore::open_with(&config.db, &config.store_options())
        .with_context(|| format!("opening database {}", config.db.display()))?;
    store
        .write(&[config_load_record(&config)], &[])
        .context("writing the config-load audit record")?;
    let redactor = config.redactor(
        store
            .keys()
            .context("the store has no keys")?
            .pseudonym_key(),
    )?;
    let (listener, inode) = socket::bind(&config.socket, config.socket_mode)?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    info!(socket = %config.socket.display(), db = %config.db.display(), "Collector listening.");

    let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
    let limits = writer::GroupCommit {
        max_records: config.commit_max_records,
        max_wait: Duration::from_millis(config.commit_interval_ms),
    };
    let writer = writer::spawn(
        Box::new(store),
        write_rx,
        limits,
        tokio::runtime::Handle::current(),
    )?;
    let ticker = {
        let write_tx = write_tx.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                if write_tx.send(writer::WriteRequest::Tick).await.is_err() {
                    break;
                }
            }
        })
    };
    let shared = Arc::new(connection::Shared {
        pipeline: Pipeline::default()
            .require_scope(config.required_scope_keys()?)
            .with_redactor(Arc::new(redactor)),
        writer: write_tx,
        queue: Arc::new(Semaphore::new(config.queue_records)),
        queue_records: config.queue_records,
        max_frame_bytes: config.max_frame_bytes,
        token: config.token.clone(),
    });
    let retention = spawn_retention(&config)?;
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection::handle(stream, Arc::clone(&shared), stopped.clone()));
                }
                Err(error) => {
                    // E.g. out of file descriptors: keep serving the connections we have.
                    warn!(%error, "Failed to accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    info!(
        connections = connections.len(),
        "Shutting down: committing and acknowledging what was received."
    );
    tokio::spawn(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
        warn!("Second signal: exiting without waiting for connections to finish.");
        std::process::exit(130);
    });
    drop(listener);
    socket::remove_if_ours(&config.socket, inode);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    ticker.abort();
    let _ = ticker.await;
    if let Some((wake, thread)) = retention {
        drop(wake);
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    drop(shared);
    let stored = tokio::task::spawn_blocking(move || writer.join())
        .await
        .context("joining the writer")?
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
    info!(records = stored, "Collector stopped.");
    Ok(())
}
