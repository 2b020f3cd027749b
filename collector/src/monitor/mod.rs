//! Monitoring derived from what is stored, off the writer's path: a task follows the
//! record stream from a cursor kept in the store and turns each page into exception
//! group deltas (`exception`), span metrics with latency sketches (`sketch`), log
//! volume by level, and the loop detector's tool-call counts, applied with the
//! cursor's move in one transaction of its own connection. So every stored record
//! counts once, across restarts, and with several collectors on one PostgreSQL the
//! page goes to whichever applies it first (the others find the cursor moved and read
//! on from there). Every two seconds the same task evaluates the alert rules
//! (`crate::alerts`) on what it keeps.
//!
//! A new store's monitor starts at the beginning of the stream: an existing store is
//! read through once.

pub mod exception;
pub mod sketch;

use std::collections::HashMap;
use std::sync::Mutex;

use logbook_proto::Record;

use crate::store::exceptions::{ExceptionDelta, TagDelta, TagKind};
use crate::store::{MonitorUpdate, StoreError, StreamCursor, StreamItem};
use exception::Occurrence;

/// Records read per page.
pub const PAGE: usize = 2_000;
/// Minute rows of span metrics and log volume are kept this long; hour rows as long
/// as ops records.
pub const MINUTES_KEPT: std::time::Duration = std::time::Duration::from_secs(2 * 86_400);
const HOUR_NS: i64 = 3_600_000_000_000;

/// The exception deltas of a page of the stream, one per fingerprint, in the order
/// first seen.
pub fn exception_deltas(items: &[StreamItem]) -> Vec<ExceptionDelta> {
    let mut out: Vec<ExceptionDelta> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for item in items {
        let r = &item.record;
        if is_own(r) {
            continue;
        }
        let Some(o) = Occurrence::of(r) else { continue };
        let i = *at.entry(o.fingerprint.clone()).or_insert_with(|| {
            out.push(ExceptionDelta {
                fingerprint: o.fingerprint.clone(),
                basis: o.basis.as_str().to_owned(),
                kind: o.kind.clone(),
                message: o.message.clone(),
                culprit: o.culprit.clone(),
                first_ts: r.ts,
                first_id: r.id.to_string(),
                last_ts: r.ts,
                last_id: r.id.to_string(),
                ..ExceptionDelta::default()
            });
            out.len() - 1
        });
        add(&mut out[i], r);
    }
    out
}

/// When a span is slow: over the first matching rule's threshold (rules by span name
/// pattern, `*` matching any run of characters), else over the default for its kind:
/// 1 s for requests (server spans, HTTP), 500 ms for database queries.
#[derive(Clone, Debug, PartialEq)]
pub struct SlowRules {
    /// `(name pattern, threshold in ns)`, first match wins.
    pub rules: Vec<(String, u64)>,
    pub request_ns: u64,
    pub query_ns: u64,
}

impl Default for SlowRules {
    fn default() -> Self {
        Self {
            rules: Vec::new(),
            request_ns: 1_000_000_000,
            query_ns: 500_000_000,
        }
    }
}

impl SlowRules {
    /// The threshold of span end `r`, if it has one.
    pub fn threshold(&self, r: &Record) -> Option<u64> {
        if let Some((_, t)) = self.rules.iter().find(|(p, _)| glob(p, &r.name)) {
            return Some(*t);
        }
        let has = |k: &str| r.fields.get(k).is_some();
        if has("db.system") || has("db.system.name") || has("db.query.text") || has("db.statement")
        {
            return Some(self.query_ns);
        }
        let server = r
            .fields
            .get("otel.kind")
            .and_then(|v| v.as_str())
            .is_some_and(|k| k.eq_ignore_ascii_case("server"));
        if server || has("http.request.method") || has("http.method") {
            return Some(self.request_ns);
        }
        None
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// The span metrics and log volume of a page: every span end with a duration, by
/// minute and by hour; every record by level.
pub fn metric_deltas(
    items: &[StreamItem],
    slow: &SlowRules,
) -> (
    crate::store::metrics::SpanDeltas,
    crate::store::metrics::VolumeDeltas,
) {
    use crate::store::metrics::{SpanKey, HOUR_NS as H, MINUTE_NS as M};
    let (mut spans, mut volume) = (
        crate::store::metrics::SpanDeltas::new(),
        crate::store::metrics::VolumeDeltas::new(),
    );
    for item in items {
        let r = &item.record;
        if is_own(r) {
            continue;
        }
        let ts = r.ts.as_nanos();
        for width in [M, H] {
            let period = ts.div_euclid(width) * width;
            *volume
                .entry((width, period, r.resource.service.clone(), r.level.code()))
                .or_default() += 1;
        }
        let (logbook_proto::Kind::SpanEnd, Some(d)) = (r.kind, r.duration_ns) else {
            continue;
        };
        let error = r.status == Some(logbook_proto::Status::Error);
        let is_slow = slow.threshold(r).is_some_and(|t| d >= t);
        let model = [
            logbook_proto::genai::RESPONSE_MODEL,
            logbook_proto::genai::REQUEST_MODEL,
        ]
        .iter()
        .find_map(|k| r.fields.get(k).and_then(|v| v.as_str()))
        .unwrap_or_default();
        let key = SpanKey {
            service: r.resource.service.clone(),
            name: r.name.chars().take(200).collect(),
            model: model.chars().take(100).collect(),
        };
        for width in [M, H] {
            let period = r.ts.as_nanos().div_euclid(width) * width;
            spans
                .entry((width, period, key.clone()))
                .or_default()
                .add(d, error, is_slow);
        }
    }
    (spans, volume)
}

/// A page's completed tool calls, per run, tool and canonical arguments: what the
/// loop detector counts.
pub fn tool_repeat_deltas(items: &[StreamItem]) -> crate::store::alerts::ToolRepeatDeltas {
    use sha2::Digest as _;
    let mut out = crate::store::alerts::ToolRepeatDeltas::new();
    for item in items {
        let r = &item.record;
        if r.kind != logbook_proto::Kind::SpanEnd
            || r.category.as_deref() != Some(crate::pipeline::CATEGORY_TOOL_CALL)
        {
            continue;
        }
        let Some(run) = crate::views::run::run_key(r) else {
            continue;
        };
        let tool = r
            .fields
            .get(logbook_proto::genai::TOOL_NAME)
            .and_then(|v| v.as_str())
            .map_or_else(|| r.name.to_string(), str::to_owned);
        let arguments =
            canonical_arguments(r.fields.get(logbook_proto::genai::TOOL_CALL_ARGUMENTS));
        let hash = sha2::Sha256::digest(arguments.as_bytes());
        let hash: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
        let d = out
            .entry((run.text().into_owned(), tool, hash))
            .or_insert_with(|| crate::store::alerts::ToolRepeatDelta {
                first_ts: r.ts,
                last_ts: r.ts,
                arguments: cut(&arguments, 1000),
                service: r.resource.service.clone(),
                count: 0,
            });
        d.count += 1;
        d.first_ts = d.first_ts.min(r.ts);
        d.last_ts = d.last_ts.max(r.ts);
    }
    out
}

/// Tool arguments as canonical JSON (object keys sorted at every level, no spaces), so
/// the same arguments written in another order or spacing compare equal; text that is
/// not JSON as it is.
pub fn canonical_arguments(v: Option<&logbook_proto::Value>) -> String {
    fn sorted(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut pairs: Vec<(String, serde_json::Value)> =
                    m.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(pairs.into_iter().collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sorted).collect())
            }
            other => other,
        }
    }
    let text = match v {
        None => return String::new(),
        Some(logbook_proto::Value::Json(j)) => j.as_str().to_owned(),
        Some(logbook_proto::Value::Str(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => sorted(v).to_string(),
        Err(_) => text,
    }
}

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// One occurrence in `r` added to its group's delta.
fn add(d: &mut ExceptionDelta, r: &Record) {
    d.count += 1;
    if r.ts < d.first_ts {
        (d.first_ts, d.first_id) = (r.ts, r.id.to_string());
    }
    if r.ts >= d.last_ts {
        (d.last_ts, d.last_id) = (r.ts, r.id.to_string());
        d.last_run = crate::views::run::run_key(r).map(|k| k.text().into_owned());
        d.last_trace = Some(r.trace_id.to_string());
    }
    *d.hours
        .entry(r.ts.as_nanos().div_euclid(HOUR_NS))
        .or_default() += 1;
    let mut tag = |kind: TagKind, value: &str| {
        if value.is_empty() {
            return;
        }
        let t = d
            .tags
            .entry((kind, value.chars().take(200).collect()))
            .or_insert(TagDelta {
                count: 0,
                first_ts: r.ts,
                last_ts: r.ts,
            });
        t.count += 1;
        t.first_ts = t.first_ts.min(r.ts);
        t.last_ts = t.last_ts.max(r.ts);
    };
    tag(TagKind::Service, &r.resource.service);
    if let Some(v) = r.fields.get("service.version").and_then(|v| v.as_str()) {
        tag(TagKind::Version, v);
    }
    if let Some(u) = r.scope.get(logbook_proto::ScopeKey::UserId) {
        tag(TagKind::User, u);
    }
}

/// The collector's own records (configuration loads, failed sign-ins): not the
/// application's exceptions.
fn is_own(r: &Record) -> bool {
    r.origin
        .as_ref()
        .is_some_and(|o| o.transport == logbook_proto::transport::COLLECTOR)
}

/// What one step of the monitor did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// It read and applied this many records.
    Read(usize),
    /// Nothing new.
    Idle,
    /// Another collector had moved the cursor: it reads on from there.
    Moved,
}

/// Reads one page after `*kept` and applies what it derives with the cursor's move;
/// `*kept` is where the store's cursor is after it. Blocking.
pub fn step(
    reader: &dyn crate::store::StoreReader,
    writer: &Mutex<Box<dyn crate::store::StoreWriter>>,
    slow: &SlowRules,
    kept: &mut StreamCursor,
) -> Result<Step, StoreError> {
    let page = reader.stream_after(*kept, &crate::query::RecordFilter::default(), PAGE)?;
    if page.cursor == *kept {
        return Ok(Step::Idle);
    }
    let (spans, volume) = metric_deltas(&page.items, slow);
    let update = MonitorUpdate {
        from: *kept,
        to: page.cursor,
        exceptions: exception_deltas(&page.items),
        spans,
        volume,
        tool_repeats: tool_repeat_deltas(&page.items),
    };
    let applied = writer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .apply_monitor(&update)?;
    if !applied {
        *kept = reader.monitor_cursor()?.unwrap_or(StreamCursor::START);
        return Ok(Step::Moved);
    }
    *kept = page.cursor;
    Ok(Step::Read(page.items.len()))
}

/// Runs the monitor until it reads nothing new: what the CLI and tests use to bring
/// the groups up to date without a running collector. Returns the records read.
pub fn catch_up(
    reader: &dyn crate::store::StoreReader,
    writer: Box<dyn crate::store::StoreWriter>,
    slow: &SlowRules,
) -> Result<u64, StoreError> {
    let writer = Mutex::new(writer);
    let mut kept = reader.monitor_cursor()?.unwrap_or(StreamCursor::START);
    let mut total = 0u64;
    loop {
        match step(reader, &writer, slow, &mut kept)? {
            Step::Read(n) => total += n as u64,
            Step::Moved => {}
            Step::Idle => return Ok(total),
        }
    }
}

/// Why a group could not be found by what a person gave.
#[derive(Debug)]
pub enum FindError {
    /// No group.
    None,
    /// Several groups start so.
    Several,
    /// The store failed.
    Store(StoreError),
}

/// The fingerprint a person's argument names: whole, or a unique beginning (with or
/// without the version prefix).
pub fn find_group(
    reader: &dyn crate::store::StoreReader,
    given: &str,
) -> Result<String, FindError> {
    let given = given.trim();
    if given.is_empty() {
        return Err(FindError::None);
    }
    let prefix = if given.contains(':') {
        given.to_owned()
    } else {
        format!("{}:{given}", exception::FINGERPRINT_VERSION)
    };
    let found = reader
        .exception_groups(&crate::store::ExceptionFilter {
            fingerprint_prefix: Some(prefix),
            limit: 2,
            ..crate::store::ExceptionFilter::default()
        })
        .map_err(FindError::Store)?;
    match found.as_slice() {
        [one] => Ok(one.fingerprint.clone()),
        [] => Err(FindError::None),
        _ => Err(FindError::Several),
    }
}

/// A fingerprint as lists show it: 10 hex digits, without the version.
pub fn short(fingerprint: &str) -> &str {
    let hex = fingerprint.split_once(':').map_or(fingerprint, |(_, h)| h);
    &hex[..hex.len().min(10)]
}

/// The audit record of a change to a group by `actor`.
pub fn change_record(
    group: &crate::store::ExceptionGroup,
    change: &crate::store::ExceptionChange,
    actor: &str,
) -> logbook_proto::Record {
    let (action, detail) = match change {
        crate::store::ExceptionChange::Resolve { in_version } => (
            "resolve",
            in_version
                .as_ref()
                .map(|v| format!(" in version {v}"))
                .unwrap_or_default(),
        ),
        crate::store::ExceptionChange::Ignore { .. } => ("ignore", String::new()),
        crate::store::ExceptionChange::Reopen => ("reopen", String::new()),
        crate::store::ExceptionChange::Note { .. } => ("note", String::new()),
    };
    let mut fields = vec![
        (
            "fingerprint",
            logbook_proto::Value::Str(group.fingerprint.clone()),
        ),
        ("action", logbook_proto::Value::Str(action.into())),
        (
            "state",
            logbook_proto::Value::Str(group.status.state.as_str().into()),
        ),
        ("actor", logbook_proto::Value::Str(actor.into())),
    ];
    if let crate::store::ExceptionChange::Note { text, .. } = change {
        fields.push(("note", logbook_proto::Value::Str(text.clone())));
    }
    crate::audit::admin_record(
        "exception_group_change",
        format!(
            "Exception group {} ({}): {action}{detail} by {actor}.",
            short(&group.fingerprint),
            group.kind
        ),
        fields,
    )
}

/// The state with what qualifies it.
pub fn state_line(g: &crate::store::ExceptionGroup) -> String {
    let s = &g.status;
    let mut line = s.state.as_str().to_owned();
    if let Some(v) = &s.resolved_in {
        line.push_str(&format!(" in version {v}"));
    }
    if let Some(t) = s.ignore_until {
        line.push_str(&format!(" until {}", seconds(t)));
    }
    if let Some(n) = s.ignore_until_count {
        line.push_str(&format!(" until its count reaches {n}"));
    }
    if let Some(t) = s.changed {
        line.push_str(&format!(" (since {})", seconds(t)));
    }
    line
}

/// A time to the second, UTC.
fn seconds(t: logbook_proto::Timestamp) -> String {
    let s = t.to_rfc3339();
    match s.find('.') {
        Some(dot) => format!("{}Z", &s[..dot]),
        None => s,
    }
}

#[cfg(feature = "server")]
pub use task::{spawn, MonitorSetup};

#[cfg(feature = "server")]
mod task {
    use super::*;
    use crate::admission::feed::Feed;
    use crate::store::{open_writer, StoreAddress, StoreOptions, StoreReader};
    use std::sync::Arc;
    use std::time::Duration;
    use tokio::sync::watch;
    use tokio::task::JoinHandle;
    use tracing::{info, warn};

    const IDLE_POLL: Duration = Duration::from_secs(1);

    /// The monitor's own connection, moved to the blocking pool for each page.
    type SharedWriter = Arc<Mutex<Box<dyn crate::store::StoreWriter>>>;
    const BACKOFF_MAX: Duration = Duration::from_secs(60);
    /// How often the alert rules are evaluated, at most.
    const ALERT_EVERY: Duration = Duration::from_secs(2);

    /// Evaluates the rules, sends what fires and keeps the states and the history.
    async fn alerts(
        reader: &Arc<dyn StoreReader>,
        writer: &SharedWriter,
        rules: &Arc<Vec<crate::alerts::AlertRule>>,
    ) {
        let (r, w, rs) = (Arc::clone(reader), Arc::clone(writer), Arc::clone(rules));
        let now = logbook_proto::Timestamp::now();
        let evaluated =
            tokio::task::spawn_blocking(move || crate::alerts::evaluate(r.as_ref(), &w, &rs, now))
                .await;
        let (states, mut events) = match evaluated {
            Ok(Ok(Some(done))) => done,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                warn!(error = %e, "Could not evaluate the alert rules.");
                return;
            }
        };
        for e in &mut events {
            if let Some(rule) = rules.iter().find(|r| r.name == e.rule) {
                info!(alert = %e.rule, state = %e.state, summary = %e.summary, "Alert.");
                crate::alerts::deliver(rule, e).await;
            }
        }
        let w = Arc::clone(writer);
        let saved = tokio::task::spawn_blocking(move || {
            w.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .save_alerts(&states, &events)
        })
        .await;
        if let Ok(Err(e)) = saved {
            warn!(error = %e, "Could not keep the alerts' states.");
        }
    }

    /// How often old metric rows are pruned.
    const PRUNE_EVERY: Duration = Duration::from_secs(3600);

    /// What the monitor's task is given.
    pub struct MonitorSetup {
        /// The store, opened for writing on a connection of the monitor's own.
        pub address: StoreAddress,
        pub options: StoreOptions,
        pub slow: SlowRules,
        /// How long hour rows are kept (minute rows: [`MINUTES_KEPT`]).
        pub hours_kept: Option<Duration>,
        /// The alert rules it evaluates.
        pub rules: Vec<crate::alerts::AlertRule>,
    }

    /// Starts the monitor's task; it stops when `shutdown` turns true.
    pub fn spawn(
        setup: MonitorSetup,
        reader: Arc<dyn StoreReader>,
        feed: Feed,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let MonitorSetup {
            address,
            options,
            slow,
            hours_kept,
            rules,
        } = setup;
        let slow = Arc::new(slow);
        tokio::spawn(async move {
            let mut commits = feed.subscribe();
            let mut pruned: Option<std::time::Instant> = None;
            let mut evaluated: Option<std::time::Instant> = None;
            let rules = Arc::new(rules);
            let mut backoff = Duration::from_secs(1);
            let mut state: Option<(SharedWriter, StreamCursor)> = None;
            loop {
                if *shutdown.borrow() {
                    return;
                }
                let r = Arc::clone(&reader);
                let (address, options, slow) =
                    (address.clone(), options.clone(), Arc::clone(&slow));
                let taken = state.take();
                let due = pruned.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
                if due {
                    pruned = Some(std::time::Instant::now());
                }
                let result = tokio::task::spawn_blocking(move || {
                    let (writer, mut p) = match taken {
                        Some(s) => s,
                        None => {
                            let w = Arc::new(Mutex::new(open_writer(&address, &options)?));
                            let kept = r.monitor_cursor()?.unwrap_or(StreamCursor::START);
                            info!(cursor = %kept, "Monitoring the stream: exceptions, span metrics, log volume.");
                            (w, kept)
                        }
                    };
                    let step = step(r.as_ref(), &writer, &slow, &mut p);
                    if step.is_ok() && due {
                        let now = logbook_proto::Timestamp::now().as_nanos();
                        let ns = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
                        let minutes = now.saturating_sub(ns(MINUTES_KEPT));
                        let hours = hours_kept.map_or(i64::MIN, |d| now.saturating_sub(ns(d)));
                        let w = &mut *writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                        match w.prune_metrics(logbook_proto::Timestamp(minutes), logbook_proto::Timestamp(hours)) {
                            Ok(n) if n > 0 => info!(rows = n, "Pruned old span metrics and log volume."),
                            Ok(_) => {}
                            Err(e) => warn!(error = %e, "Could not prune old span metrics."),
                        }
                    }
                    Ok::<_, StoreError>((step, writer, p))
                })
                .await;
                let Ok(result) = result else { return };
                match result {
                    Ok((Ok(step), writer, p)) => {
                        backoff = Duration::from_secs(1);
                        if !rules.is_empty() && evaluated.is_none_or(|t| t.elapsed() >= ALERT_EVERY)
                        {
                            evaluated = Some(std::time::Instant::now());
                            alerts(&reader, &writer, &rules).await;
                        }
                        state = Some((writer, p));
                        if step == Step::Idle {
                            tokio::select! {
                                _ = shutdown.changed() => return,
                                _ = commits.recv() => {}
                                () = tokio::time::sleep(IDLE_POLL) => {}
                            }
                        }
                    }
                    Ok((Err(e), _, _)) | Err(e) => {
                        // Read again from what the store keeps.
                        warn!(error = %e, retry_in_s = backoff.as_secs(), "Monitoring could not read or apply a page; retrying.");
                        tokio::select! {
                            _ = shutdown.changed() => return,
                            () = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        })
    }
}
