//! Forwarding: `[[forward]]` destinations receive what the store holds, as OTLP/HTTP
//! (`otlp` maps records, `client` posts them). The store is the queue: each
//! destination reads the record stream from a cursor kept in the store (written by
//! the writer with its next commit, `StoreWriter::write_batch`), so it resumes after a
//! restart where it was, and a destination that is down only falls behind. Requests
//! that fail are retried with backoff (1 s doubling to a minute); a page the
//! destination refuses as malformed is halved until the one record it refuses is
//! found, skipped and counted. Progress, failures and how far behind each destination
//! is show in `logbook stats` and `/metrics`.
//!
//! Span starts are not sent (an OTLP span carries its start), nor the collector's own
//! records (they belong to this store's audit chain).
//!
//! Delivery is at least once: a page sent but not yet kept when the collector stops is
//! sent again. Another logbook stores it once (the ids of OTLP records derive from
//! what identifies them); most OpenTelemetry backends do the same for spans.

pub(crate) mod client;
pub mod otlp;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use prost::Message as _;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use client::Endpoint;
use client::{Client, PostError};

use crate::admission::feed::Feed;
use crate::admission::Admission;
use crate::config::SensitiveString;
use crate::query::RecordFilter;
use crate::store::{ForwardState, StoreReader, StreamCursor, StreamItem};

/// Records per request, by default.
pub const DEFAULT_BATCH: usize = 1000;
/// Retries wait from this long …
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// … doubling up to this.
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// With nothing to send, the store is looked at again after this long even if no
/// commit was announced.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// One `[[forward]]` table of the configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// The destination's name: where its progress is kept, how stats and metrics name
    /// it. Renaming a destination starts it again from `start`.
    pub name: String,
    /// Its OTLP/HTTP base address: `http://otel-collector:4318`; requests go to
    /// `/v1/traces` and `/v1/logs` under it.
    pub endpoint: String,
    /// Headers sent with every request (API keys: never logged or audited).
    #[serde(default)]
    pub headers: BTreeMap<String, SensitiveString>,
    /// Which records: the records API's filter syntax, e.g. `kind=span_end` (spans
    /// only) or `tenant=acme&level=warn` [default: every span and event].
    #[serde(default)]
    pub filter: String,
    /// Records per request.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Where a destination with no progress kept starts: `beginning` (everything
    /// stored) or `now` (what is stored from now on).
    #[serde(default)]
    pub start: Start,
    /// CA certificates (PEM) for an https endpoint [default: the system's roots].
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

fn default_batch() -> usize {
    DEFAULT_BATCH
}

/// Where a new destination starts.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    /// Everything stored.
    #[default]
    Beginning,
    /// What is stored from the first start with it on.
    Now,
}

impl ForwardConfig {
    /// The record filter of `filter`.
    pub fn record_filter(&self) -> anyhow::Result<RecordFilter> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(self.filter.as_bytes())
            .into_owned()
            .collect();
        RecordFilter::parse(
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            logbook_proto::Timestamp::now(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Checks what can be checked before starting.
    pub fn check(&self) -> anyhow::Result<()> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("forward.name {name:?}: 1 to 64 letters, digits, '-', '_' or '.'");
        }
        self.endpoint
            .parse::<Endpoint>()
            .map_err(|e| anyhow::anyhow!("forward {name:?}: {e}"))?;
        self.record_filter()
            .with_context(|| format!("forward {name:?}: filter {:?}", self.filter))?;
        if !(1..=10_000).contains(&self.batch) {
            bail!(
                "forward {name:?}: batch = {} is out of range: allowed 1 to 10000",
                self.batch
            );
        }
        for k in self.headers.keys() {
            if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                bail!("forward {name:?}: {k:?} is not a header name");
            }
        }
        for (k, v) in &self.headers {
            if hyper::header::HeaderValue::from_str(v.expose()).is_err() {
                bail!("forward {name:?}: the value of header {k:?} is not valid in a header");
            }
        }
        Ok(())
    }
}

/// What every destination's task shares.
pub struct Parts {
    /// Where records are read.
    pub reader: Arc<dyn StoreReader>,
    /// Where progress is kept.
    pub admission: Admission,
    /// Commits announced, to wake idle destinations.
    pub feed: Feed,
}

/// Starts one task per destination; each stops when `shutdown` turns true.
pub fn spawn(
    configs: &[ForwardConfig],
    parts: &Parts,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<()>>> {
    let mut tasks = Vec::with_capacity(configs.len());
    for config in configs {
        let endpoint: Endpoint = config
            .endpoint
            .parse()
            .map_err(|e: String| anyhow::anyhow!("forward {:?}: {e}", config.name))?;
        let headers = config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_owned()))
            .collect();
        let client = Client::new(endpoint.clone(), headers, config.ca.as_deref())
            .map_err(|e| anyhow::anyhow!("forward {:?}: {e}", config.name))?;
        let destination = Destination {
            name: config.name.clone(),
            filter: config.record_filter()?,
            batch: config.batch,
            start: config.start,
            client,
            reader: Arc::clone(&parts.reader),
            admission: parts.admission.clone(),
            feed: parts.feed.clone(),
        };
        info!(forward = %config.name, endpoint = %endpoint, "Forwarding.");
        tasks.push(tokio::spawn(destination.run(shutdown.clone())));
    }
    Ok(tasks)
}

/// One destination's task.
struct Destination {
    name: String,
    filter: RecordFilter,
    batch: usize,
    start: Start,
    client: Client,
    reader: Arc<dyn StoreReader>,
    admission: Admission,
    feed: Feed,
}

/// What one attempt at a page came to.
enum Sent {
    /// The destination took the first `n` records.
    Taken(usize),
    /// It refused the one record sent: skipped.
    Refused,
}

impl Destination {
    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        // Subscribed before the first read, so no commit after it goes unnoticed.
        let mut commits = self.feed.subscribe();
        let Some(mut state) = self.load(&mut shutdown).await else {
            return;
        };
        let mut backoff = BACKOFF_MIN;
        let mut limit = self.batch;
        loop {
            if *shutdown.borrow() {
                return;
            }
            let page = {
                let (reader, filter, cursor) =
                    (Arc::clone(&self.reader), self.filter.clone(), state.cursor);
                let want = limit;
                tokio::task::spawn_blocking(move || reader.stream_after(cursor, &filter, want))
                    .await
            };
            let page = match page {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    warn!(forward = %self.name, error = %e, "Could not read records to forward; retrying.");
                    if !pause(&mut shutdown, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
                Err(_) => return,
            };
            // Nothing to send (span starts, the collector's own records, or nothing
            // matching): move on, quietly.
            let items: Vec<StreamItem> = page.items.into_iter().filter(is_forwarded).collect();
            if items.is_empty() {
                if page.cursor != state.cursor {
                    state.cursor = page.cursor;
                    self.keep(&state).await;
                    continue;
                }
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = commits.recv() => {}
                    () = tokio::time::sleep(IDLE_POLL) => {}
                }
                continue;
            }
            let sent = tokio::select! {
                _ = shutdown.changed() => return,
                s = self.send(&items) => s,
            };
            match sent {
                Ok(Sent::Taken(n)) => {
                    state.sent += n as u64;
                    // Past every record the page examined: those it left out did not
                    // match, or were span starts.
                    state.cursor = page.cursor;
                    state.last_error = None;
                    backoff = BACKOFF_MIN;
                    limit = (limit * 2).min(self.batch);
                }
                Ok(Sent::Refused) => {
                    let r = &items[0].record;
                    warn!(forward = %self.name, id = %r.id, "The destination refused a record as malformed; skipped.");
                    state.refused += 1;
                    state.cursor = items[0].cursor;
                    limit = (limit * 2).min(self.batch);
                }
                Err(PostError::Refused(why)) => {
                    // Halve until the record it refuses is alone.
                    limit = (items.len() / 2).max(1);
                    state.last_error = Some(why);
                    continue;
                }
                Err(PostError::Failed(why)) => {
                    state.failures += 1;
                    warn!(forward = %self.name, error = %why, retry_in_s = backoff.as_secs(), "Forwarding failed; retrying.");
                    state.last_error = Some(why);
                    self.keep(&state).await;
                    if !pause(&mut shutdown, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
            self.keep(&state).await;
        }
    }

    /// The progress kept, or a new destination's start; `None` when shutting down.
    async fn load(&self, shutdown: &mut watch::Receiver<bool>) -> Option<ForwardState> {
        let mut backoff = BACKOFF_MIN;
        loop {
            let (reader, name, start) = (Arc::clone(&self.reader), self.name.clone(), self.start);
            let loaded = tokio::task::spawn_blocking(move || {
                let kept = reader.forward_state(&name)?;
                Ok::<_, crate::store::StoreError>(match kept {
                    Some(s) => s,
                    None => ForwardState {
                        name,
                        cursor: match start {
                            Start::Beginning => StreamCursor::START,
                            Start::Now => reader.stream_end()?,
                        },
                        ..ForwardState::default()
                    },
                })
            })
            .await
            .ok()?;
            match loaded {
                Ok(s) => return Some(s),
                Err(e) => {
                    warn!(forward = %self.name, error = %e, "Could not read where forwarding was; retrying.");
                    if !pause(shutdown, backoff).await {
                        return None;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Sends `items` (span starts left out): spans, then log records.
    async fn send(&mut self, items: &[StreamItem]) -> Result<Sent, PostError> {
        let records: Vec<_> = items.iter().map(|i| i.record.clone()).collect();
        let export = otlp::export(&records);
        let result = async {
            if export.spans > 0 {
                self.client
                    .post("/v1/traces", export.traces.encode_to_vec())
                    .await?;
            }
            if export.log_records > 0 {
                self.client
                    .post("/v1/logs", export.logs.encode_to_vec())
                    .await?;
            }
            Ok(Sent::Taken(items.len()))
        }
        .await;
        match result {
            Err(PostError::Refused(_)) if items.len() == 1 => Ok(Sent::Refused),
            other => other,
        }
    }

    /// Keeps `state` with the writer's next commit.
    async fn keep(&self, state: &ForwardState) {
        let state = ForwardState {
            updated: logbook_proto::Timestamp::now(),
            ..state.clone()
        };
        if let Err(e) = self.admission.keep_forward_state(state).await {
            warn!(forward = %self.name, error = %e, "Could not keep forwarding progress.");
        }
    }
}

/// Whether a record is sent at all: span starts are not (their span's start time
/// carries them), nor the collector's own records (configuration loads, failed
/// authentications, purges): they belong to this store's audit chain, and another
/// logbook refuses its reserved names from clients.
fn is_forwarded(item: &StreamItem) -> bool {
    let r = &item.record;
    r.kind != logbook_proto::Kind::SpanStart
        && r.origin
            .as_ref()
            .is_none_or(|o| o.transport != logbook_proto::transport::COLLECTOR)
}

/// Waits `delay`, or until shutdown; whether to go on.
async fn pause(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = shutdown.changed() => false,
        () = tokio::time::sleep(delay) => !*shutdown.borrow(),
    }
}
