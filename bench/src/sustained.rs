//! Sustained end to end: an application process emitting as fast as it can, and at
//! fixed offered loads, into a collector on this machine.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use logbook_collector::store::{open_reader, StoreAddress};
use logbook_proto::Timestamp;
use tracing_subscriber::prelude::*;

use crate::{records, CollectorProcess};

/// What the emitting process reports.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct EmitReport {
    pub(crate) emitted: u64,
    pub(crate) delivered: u64,
    pub(crate) dropped: u64,
    pub(crate) undelivered: u64,
    /// Seconds spent emitting.
    pub(crate) emit_secs: f64,
    /// Seconds from the first record to everything acknowledged.
    pub(crate) total_secs: f64,
    /// The most buffer bytes the layer held.
    pub(crate) max_buffered: usize,
    pub(crate) buffer_capacity: usize,
    /// The process's peak resident memory, KiB.
    pub(crate) peak_rss_kib: u64,
}

/// One sustained run's results.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SustainedRun {
    pub(crate) label: String,
    /// Records per second asked for (0: as fast as possible).
    pub(crate) offered_rps: f64,
    pub(crate) seconds: f64,
    pub(crate) app: EmitReport,
    pub(crate) stored: u64,
    pub(crate) stored_rps: f64,
    pub(crate) latency_p50_ms: Option<f64>,
    pub(crate) latency_p99_ms: Option<f64>,
    pub(crate) collector_peak_rss_kib: u64,
}

/// Peak resident memory of a process, KiB (`VmHWM`).
pub(crate) fn peak_rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Set for the emitting child: emit [`records::emit_mixed`]'s mix.
pub(crate) const MIX_ENV: &str = "LOGBOOK_BENCH_MIX";

/// The emitting child: logs for `seconds` at `rate` records/s (0: as fast as it can).
pub(crate) fn emit_child(socket: &Path, rate: f64, seconds: f64) -> anyhow::Result<()> {
    let layer = logbook_layer::builder()
        .with_socket(socket)
        .with_service("bench-emit")
        .try_build()?;
    let handle = layer.handle();
    tracing_subscriber::registry().with(layer).init();
    let span = records::run_span("sustained");
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let (mut emitted, mut max_buffered) = (0u64, 0usize);
    let tick = Duration::from_millis(1);
    let mut next = start;
    while Instant::now() < deadline {
        let n = if rate > 0.0 {
            // Whatever is due by now, so the rate holds over any stretch of time.
            let due = (start.elapsed().as_secs_f64() * rate) as u64;
            due.saturating_sub(emitted)
        } else {
            1000
        };
        if std::env::var_os(MIX_ENV).is_some() {
            emitted += records::emit_mixed(&span, emitted, n);
        } else {
            records::emit_events(&span, emitted, n);
            emitted += n;
        }
        max_buffered = max_buffered.max(handle.stats().buffered_bytes);
        if rate > 0.0 {
            next += tick;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    let emit_secs = start.elapsed().as_secs_f64();
    drop(span);
    let flush = handle.flush(Duration::from_secs(120));
    let total_secs = start.elapsed().as_secs_f64();
    let stats = handle.stats();
    // The span's start and end are records too.
    let report = EmitReport {
        emitted: emitted + 2,
        delivered: flush.delivered,
        dropped: flush.dropped,
        undelivered: flush.undelivered,
        emit_secs,
        total_secs,
        max_buffered: max_buffered.max(stats.buffered_bytes),
        buffer_capacity: stats.buffer_capacity,
        peak_rss_kib: peak_rss_kib("self"),
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Runs the emitting child against a fresh collector and measures both sides.
pub(crate) fn run(
    dir: &Path,
    label: &str,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<SustainedRun> {
    let cdir = dir.join(format!("sustained-{}", label.replace([' ', '%', '/'], "_")));
    let _ = std::fs::remove_dir_all(&cdir);
    let collector = CollectorProcess::start(&cdir, &[])?;
    let emitter = Emitter::start(&collector, rate, seconds)?;
    emitter.finish(label, collector, 0)
}

/// The emitting child, running against a collector.
pub(crate) struct Emitter {
    child: Child,
    started: Timestamp,
    rate: f64,
    seconds: f64,
}

impl Emitter {
    /// Starts emitting `rate` records/s (0: flat out) for `seconds` into `collector`.
    pub(crate) fn start(
        collector: &CollectorProcess,
        rate: f64,
        seconds: f64,
    ) -> anyhow::Result<Self> {
        Self::start_with(collector, rate, seconds, &[])
    }

    /// [`Emitter::start`] with `env` set for the child.
    pub(crate) fn start_with(
        collector: &CollectorProcess,
        rate: f64,
        seconds: f64,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let started = Timestamp::now();
        let child = Command::new(std::env::current_exe()?)
            .envs(env.iter().copied())
            .args(["emit-child", "--socket"])
            .arg(&collector.socket)
            .args([
                "--rate",
                &rate.to_string(),
                "--seconds",
                &seconds.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running the emitter")?;
        Ok(Self {
            child,
            started,
            rate,
            seconds,
        })
    }

    /// Waits for the emitter, stops the collector and checks that every record is
    /// accounted for. `others` is how many of the database's ops records the
    /// application did not emit (records that were there before, less those deleted).
    pub(crate) fn finish(
        self,
        label: &str,
        collector: CollectorProcess,
        others: u64,
    ) -> anyhow::Result<SustainedRun> {
        self.finish_then(label, collector, others, |_| Ok(()))
    }

    /// [`Emitter::finish`], calling `before_stop` with the database once the emitter
    /// is done and before the collector stops.
    pub(crate) fn finish_then(
        self,
        label: &str,
        collector: CollectorProcess,
        others: u64,
        before_stop: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<SustainedRun> {
        let out = self.child.wait_with_output()?;
        if !out.status.success() {
            bail!("emitter failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let app: EmitReport = serde_json::from_slice(out.stdout.trim_ascii())
            .with_context(|| format!("emitter output: {}", String::from_utf8_lossy(&out.stdout)))?;
        let collector_peak_rss_kib = peak_rss_kib(&collector.pid().to_string());
        let db = collector.db.clone();
        before_stop(&db)?;
        // A graceful stop writes the last commit's latencies.
        drop(collector);
        let store = open_reader(&StoreAddress::sqlite(&db))?;
        // The application's records: less the collector's own audit records (its start,
        // a purge) and whatever else the database held.
        let stats = store.stats()?;
        let stored = stats.records - stats.audit_records - others;
        // Not timings but correctness: every record is accounted for, and what the layer
        // counts as delivered is what the database holds.
        if app.max_buffered > app.buffer_capacity {
            bail!(
                "{label}: the layer held {} bytes, over its {}-byte buffer",
                app.max_buffered,
                app.buffer_capacity
            );
        }
        let app_total = app.delivered + app.dropped + app.undelivered;
        if app_total != app.emitted || stored != app.delivered {
            bail!(
                "{label}: records unaccounted for: emitted {}, delivered {}, dropped {}, undelivered {}, stored {stored}",
                app.emitted,
                app.delivered,
                app.dropped,
                app.undelivered
            );
        }
        let h = store.latency(self.started)?;
        Ok(SustainedRun {
            label: label.to_owned(),
            offered_rps: self.rate,
            seconds: self.seconds,
            stored,
            stored_rps: stored as f64 / app.total_secs,
            latency_p50_ms: h.percentile_ms(50.0),
            latency_p99_ms: h.percentile_ms(99.0),
            collector_peak_rss_kib,
            app,
        })
    }
}
