//! The collector's background jobs: the one-second tick (checkpoints that are due), the
//! scheduled retention purge, and the audit record of the configuration it started
//! with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use logbook_proto::{Json, Record, Timestamp, Value};
use tracing::{info, warn};

use crate::admission::auth::Authenticator;
use crate::admission::Admission;
use crate::config::Config;
use crate::retention::{budget, purge, PurgeOptions, ORIGIN_SCHEDULE};
use crate::store::open_writer;

/// The name of the configuration-load audit record, `logbook.config_load`.
const CONFIG_LOAD: &str = "config_load";

/// The audit record of a configuration load: which file, every setting in effect
/// (secrets only as `set`), which of them changed since the last load, and the file's
/// HMAC-SHA256 under `key` (a key of the server's, so that no one without it can test
/// guesses of a secret in the file against the record). `previous` is the last such
/// record.
pub(super) fn config_load_record(config: &Config, key: &[u8], previous: Option<&Record>) -> Record {
    use hmac::{Hmac, Mac};
    let settings = config.settings(Some(key));
    let file_mac = config
        .file
        .as_ref()
        .and_then(|f| std::fs::read(f).ok())
        .and_then(|bytes| {
            let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).ok()?;
            mac.update(b"logbook config file v1\0");
            mac.update(&bytes);
            Some(crate::audit::to_hex(&mac.finalize().into_bytes()))
        });
    let before: Option<serde_json::Map<String, serde_json::Value>> = previous
        .and_then(|r| r.fields.get("settings"))
        .and_then(|v| match v {
            Value::Json(j) => serde_json::from_str(j.as_str()).ok(),
            _ => None,
        });
    let changed: Vec<&str> = match &before {
        Some(before) => {
            let mut keys: Vec<&str> = settings
                .iter()
                .filter(|(k, v)| before.get(*k) != Some(v))
                .map(|(k, _)| k.as_str())
                .chain(
                    before
                        .keys()
                        .filter(|k| !settings.contains_key(*k))
                        .map(String::as_str),
                )
                .collect();
            keys.sort_unstable();
            keys
        }
        None => Vec::new(),
    };
    let mut fields = vec![
        (
            "settings",
            Json::from_serialize(&settings).map_or(Value::Bool(false), Value::Json),
        ),
        (
            "changed",
            match &before {
                Some(_) => Json::from_serialize(&changed).map_or(Value::Bool(false), Value::Json),
                None if previous.is_some() => {
                    Value::Str("unknown: the previous load's record lists no settings".into())
                }
                None => Value::Str("first load".into()),
            },
        ),
    ];
    if let Some(f) = &config.file {
        fields.push(("config.file", Value::Str(f.display().to_string())));
    }
    if let Some(mac) = file_mac {
        fields.push(("config.hmac_sha256", Value::Str(mac)));
    }
    crate::audit::admin_record(
        CONFIG_LOAD,
        format!(
            "Collector started with configuration {}{}.",
            config
                .file
                .as_ref()
                .map_or_else(|| "defaults".to_owned(), |f| f.display().to_string()),
            match (&before, changed.is_empty()) {
                (None, _) => String::new(),
                (Some(_), true) => ", unchanged".to_owned(),
                (Some(_), false) => format!("; changed: {}", changed.join(", ")),
            }
        ),
        fields,
    )
}

/// The last configuration-load record the collector wrote in `store`, if any.
pub(super) fn last_config_load(store: &dyn crate::store::StoreReader) -> Option<Record> {
    let filter = crate::query::RecordFilter {
        name: Some(format!("logbook.{CONFIG_LOAD}")),
        target: Some(crate::audit::ADMIN_TARGET.to_owned()),
        ..Default::default()
    };
    let page = crate::query::Page {
        limit: 1,
        before: None,
    };
    store.query(&filter, &page).ok()?.into_iter().find(|r| {
        r.origin
            .as_ref()
            .is_some_and(|o| o.transport == logbook_proto::transport::COLLECTOR)
    })
}

/// Asks the writer for its upkeep once a second, and has a window of failed
/// authentications that has ended audited, until aborted.
pub(super) fn spawn_ticker(
    admission: Admission,
    auth: Arc<Authenticator>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            if admission.tick().await.is_err() {
                break;
            }
            auth.flush(false).await;
        }
    })
}

/// The scheduled retention job: a thread with its own store connection that applies
/// the policies at start and then every `retention.interval`, and keeps the store
/// within its disk budget (`max_db_size`, checked every [`BUDGET_EVERY`]), in short
/// transactions beside the writer.
pub(super) struct Retention {
    wake: std::sync::mpsc::Sender<()>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

/// How often the disk budget is checked.
const BUDGET_EVERY: Duration = Duration::from_secs(2);

impl Retention {
    /// Starts the job, unless there is neither a policy with an interval nor a budget.
    pub(super) fn spawn(config: &Config) -> anyhow::Result<Option<Self>> {
        let specs = config.retention.specs();
        let interval = config.retention.interval.0.filter(|_| !specs.is_empty());
        let budget = config.max_db_size;
        if interval.is_none() && budget.is_none() {
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
            .spawn(move || {
                let mut next_policy = std::time::Instant::now();
                loop {
                    if let Some(max) = budget {
                        match budget::enforce(
                            store.as_mut(),
                            max,
                            archive_dir.clone(),
                            Some(Arc::clone(&stopping)),
                        ) {
                            Ok(Some(r)) => info!(
                                ops = r.ops,
                                max_db_size = max,
                                "Disk budget: purged the oldest ops records."
                            ),
                            Ok(None) => {}
                            Err(e) => warn!(error = %e, "Disk budget purge failed; will retry."),
                        }
                    }
                    if let Some(every) =
                        interval.filter(|_| std::time::Instant::now() >= next_policy)
                    {
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
                        next_policy = std::time::Instant::now() + every;
                    }
                    let until_policy = interval
                        .map(|_| next_policy.saturating_duration_since(std::time::Instant::now()));
                    let wait = match (until_policy, budget) {
                        (Some(p), Some(_)) => p.min(BUDGET_EVERY),
                        (Some(p), None) => p,
                        (None, _) => BUDGET_EVERY,
                    };
                    match sleep.recv_timeout(wait) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        _ => break,
                    }
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
