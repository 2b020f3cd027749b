//! Nanoseconds per event on the emitting thread, logbook against the alternatives.
//!
//! Every (configuration, scenario) pair is measured in a fresh child process with its
//! subscriber installed as the global default, as an application would. Rounds
//! interleave the configurations; ratios are taken within a round.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::ValueEnum;
use tracing::{info, info_span};
use tracing_subscriber::prelude::*;

use crate::stats::{summarize, Summary};

/// What handles the events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub(crate) enum Config {
    /// No subscriber at all.
    None,
    /// A `Layer` that does nothing, on `Registry`: the floor.
    Noop,
    /// `tracing-subscriber`'s JSON formatter writing through `tracing-appender::non_blocking` to a file.
    FmtJson,
    /// `tracing-opentelemetry` with an SDK tracer provider, batch processor, discarding exporter.
    Otel,
    /// logbook, socket sink to a running collector.
    LogbookSocket,
    /// logbook, embedded SQLite.
    LogbookEmbedded,
}

impl Config {
    pub(crate) const ALL: [Config; 6] = [
        Config::None,
        Config::Noop,
        Config::FmtJson,
        Config::Otel,
        Config::LogbookSocket,
        Config::LogbookEmbedded,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Config::None => "no subscriber",
            Config::Noop => "no-op layer (floor)",
            Config::FmtJson => "fmt JSON + non_blocking",
            Config::Otel => "tracing-opentelemetry",
            Config::LogbookSocket => "logbook (socket)",
            Config::LogbookEmbedded => "logbook (embedded)",
        }
    }
}

/// What the emitting thread does per iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
pub(crate) enum Scenario {
    /// (a) an event with 3 fields and a message, outside any span.
    Event,
    /// (b) the same event inside 2 nested entered spans with 3 fields each.
    Nested,
    /// (c) create and enter 2 spans, emit the event, exit and close both.
    Lifecycle,
}

impl Scenario {
    pub(crate) const ALL: [Scenario; 3] = [Scenario::Event, Scenario::Nested, Scenario::Lifecycle];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Scenario::Event => "(a) event, no span",
            Scenario::Nested => "(b) event in 2 spans",
            Scenario::Lifecycle => "(c) 2-span lifecycle",
        }
    }

    /// Records one iteration produces, for sizing the buffers.
    fn records(self) -> u64 {
        match self {
            Scenario::Event | Scenario::Nested => 1,
            Scenario::Lifecycle => 5,
        }
    }
}

#[inline(never)]
fn event(i: u64) {
    info!(bytes = i, status = "ok", ratio = 0.5, "request handled");
}

#[inline(never)]
fn lifecycle(i: u64) {
    let outer = info_span!("outer", tenant = "acme", attempt = 1u64, path = "/v1/chat");
    let _o = outer.enter();
    let inner = info_span!("inner", step = 2u64, tool = "search", cached = false);
    let _i = inner.enter();
    event(i);
}

/// CPU time this thread has used: what the emitting thread itself spends, apart from
/// time it waits while other threads (a worker, a collector) use the cores.
#[allow(unsafe_code)]
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we pass; this clock always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall time and the thread's CPU time for one run.
fn measured(scenario: Scenario, iters: u64) -> (Duration, Duration) {
    let cpu = thread_cpu();
    let wall = run_scenario(scenario, iters);
    (wall, thread_cpu().saturating_sub(cpu))
}

fn run_scenario(scenario: Scenario, iters: u64) -> Duration {
    match scenario {
        Scenario::Event => {
            let t = Instant::now();
            for i in 0..iters {
                event(i);
            }
            t.elapsed()
        }
        Scenario::Nested => {
            let outer = info_span!("outer", tenant = "acme", attempt = 1u64, path = "/v1/chat");
            let _o = outer.enter();
            let inner = info_span!("inner", step = 2u64, tool = "search", cached = false);
            let _i = inner.enter();
            let t = Instant::now();
            for i in 0..iters {
                event(i);
            }
            t.elapsed()
        }
        Scenario::Lifecycle => {
            let t = Instant::now();
            for i in 0..iters {
                lifecycle(i);
            }
            t.elapsed()
        }
    }
}

/// A layer that does nothing: the cost of the registry alone.
struct Noop;
impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Noop {}

/// Discards every span (the OpenTelemetry configuration's exporter).
#[derive(Debug)]
struct Discard;
impl opentelemetry_sdk::trace::SpanExporter for Discard {
    async fn export(
        &self,
        _batch: Vec<opentelemetry_sdk::trace::SpanData>,
    ) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// Waits until a file stops growing (the non_blocking writer has drained).
fn wait_until_stable(path: &Path) {
    let mut last = u64::MAX;
    loop {
        std::thread::sleep(Duration::from_millis(30));
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if len == last {
            return;
        }
        last = len;
    }
}

/// What a child reports.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct ChildReport {
    /// Wall-clock nanoseconds per iteration, one value per repetition.
    pub(crate) ns: Vec<f64>,
    /// The emitting thread's CPU nanoseconds per iteration, one value per repetition.
    pub(crate) cpu_ns: Vec<f64>,
    /// Records the configuration dropped during the measurement, if it can say.
    pub(crate) dropped: Option<u64>,
}

/// Runs inside the child process: installs the configuration, warms up, measures.
pub(crate) fn child(
    config: Config,
    scenario: Scenario,
    iters: u64,
    reps: usize,
    socket: Option<&Path>,
    dir: &Path,
) -> anyhow::Result<()> {
    let mut drain: Box<dyn FnMut()> = Box::new(|| {});
    let mut dropped: Box<dyn Fn() -> Option<u64>> = Box::new(|| None);
    let mut _keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    match config {
        Config::None => {}
        Config::Noop => tracing_subscriber::registry().with(Noop).init(),
        Config::FmtJson => {
            let path = dir.join("fmt.json");
            let (writer, guard) = tracing_appender::non_blocking(File::create(&path)?);
            let errors = writer.error_counter();
            tracing_subscriber::registry()
                .with(tracing_subscriber::fmt::layer().json().with_writer(writer))
                .init();
            _keep.push(Box::new(guard));
            drain = Box::new(move || wait_until_stable(&path));
            dropped = Box::new(move || Some(errors.dropped_lines() as u64));
        }
        Config::Otel => {
            use opentelemetry::trace::TracerProvider as _;
            let processor = opentelemetry_sdk::trace::BatchSpanProcessor::builder(Discard)
                .with_batch_config(
                    opentelemetry_sdk::trace::BatchConfigBuilder::default()
                        .with_max_queue_size((iters * scenario.records()) as usize * 2)
                        .build(),
                )
                .build();
            let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
                .with_span_processor(processor)
                .build();
            let tracer = provider.tracer("bench");
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(tracer))
                .init();
            drain = Box::new(move || {
                let _ = provider.force_flush();
            });
        }
        Config::LogbookSocket | Config::LogbookEmbedded => {
            let builder = logbook_layer::builder().with_service("bench");
            let builder = match (config, socket) {
                (Config::LogbookSocket, Some(s)) => builder.with_socket(s),
                (Config::LogbookSocket, None) => bail!("--socket is required"),
                _ => builder.with_sqlite(dir.join("embedded.db")),
            };
            let layer = builder.try_build()?;
            let handle = layer.handle();
            let h2 = handle.clone();
            tracing_subscriber::registry().with(layer).init();
            drain = Box::new(move || {
                let r = handle.flush(Duration::from_secs(60));
                assert!(r.complete, "flush did not complete: {r:?}");
            });
            dropped = Box::new(move || Some(h2.stats().dropped));
        }
    }
    run_scenario(scenario, iters);
    drain();
    let before = dropped();
    let mut ns = Vec::with_capacity(reps);
    let mut cpu_ns = Vec::with_capacity(reps);
    for _ in 0..reps {
        let (wall, cpu) = measured(scenario, iters);
        ns.push(wall.as_nanos() as f64 / iters as f64);
        cpu_ns.push(cpu.as_nanos() as f64 / iters as f64);
        drain();
    }
    let dropped = match (before, dropped()) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };
    println!(
        "{}",
        serde_json::to_string(&ChildReport {
            ns,
            cpu_ns,
            dropped
        })?
    );
    Ok(())
}

/// Results of the whole hot-path benchmark.
#[derive(Debug, serde::Serialize)]
pub(crate) struct HotPathResults {
    /// Per scenario, per configuration: wall ns/iteration and the emitting thread's CPU
    /// ns/iteration over all repetitions of all rounds, and records dropped.
    pub(crate) cells: Vec<(Scenario, Config, Summary, Summary, u64)>,
    /// Per scenario: logbook / other, wall and CPU, ratios of medians taken round by round.
    pub(crate) ratios: Vec<(Scenario, Config, Config, Summary, Summary)>,
    pub(crate) rounds: usize,
    pub(crate) iters: Vec<(Scenario, u64)>,
    pub(crate) reps: usize,
}

pub(crate) struct Plan {
    pub(crate) rounds: usize,
    pub(crate) reps: usize,
    /// Iterations per repetition for the single-record scenarios; lifecycles run a fifth.
    pub(crate) iters: u64,
}

pub(crate) fn run(plan: &Plan, socket: &Path, dir: &Path) -> anyhow::Result<HotPathResults> {
    let exe = std::env::current_exe()?;
    let mut samples: Vec<(Scenario, Config, usize, ChildReport)> = Vec::new();
    for round in 0..plan.rounds {
        for scenario in Scenario::ALL {
            let iters = plan.iters / scenario.records();
            for config in Config::ALL {
                let child_dir = dir.join(format!("hp-{round}-{config:?}-{scenario:?}"));
                std::fs::create_dir_all(&child_dir)?;
                let out = Command::new(&exe)
                    .args(["hot-path-child", "--config"])
                    .arg(config.to_possible_value().expect("value").get_name())
                    .arg("--scenario")
                    .arg(scenario.to_possible_value().expect("value").get_name())
                    .args([
                        "--iters",
                        &iters.to_string(),
                        "--reps",
                        &plan.reps.to_string(),
                        "--socket",
                    ])
                    .arg(socket)
                    .arg("--dir")
                    .arg(&child_dir)
                    .env_remove("RUST_LOG")
                    .output()
                    .context("running a hot-path child")?;
                if !out.status.success() {
                    bail!(
                        "{config:?}/{scenario:?} failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
                let report: ChildReport = serde_json::from_slice(out.stdout.trim_ascii())
                    .with_context(|| {
                        format!("child output: {}", String::from_utf8_lossy(&out.stdout))
                    })?;
                let _ = std::fs::remove_dir_all(&child_dir);
                eprintln!(
                    "  round {round} {:<24} {:<24} {:>9.1} ns wall {:>9.1} ns cpu",
                    scenario.label(),
                    config.label(),
                    summarize(&report.ns).median,
                    summarize(&report.cpu_ns).median
                );
                samples.push((scenario, config, round, report));
            }
        }
    }
    let mut cells = Vec::new();
    let mut ratios = Vec::new();
    for scenario in Scenario::ALL {
        let of = |config: Config| {
            samples
                .iter()
                .filter(move |s| s.0 == scenario && s.1 == config)
        };
        for config in Config::ALL {
            let wall: Vec<f64> = of(config).flat_map(|s| s.3.ns.iter().copied()).collect();
            let cpu: Vec<f64> = of(config)
                .flat_map(|s| s.3.cpu_ns.iter().copied())
                .collect();
            let dropped = of(config).map(|s| s.3.dropped.unwrap_or(0)).sum();
            cells.push((scenario, config, summarize(&wall), summarize(&cpu), dropped));
        }
        let round_median = |config: Config, round: usize, cpu: bool| {
            of(config)
                .find(|s| s.2 == round)
                .map(|s| summarize(if cpu { &s.3.cpu_ns } else { &s.3.ns }).median)
                .unwrap_or(f64::NAN)
        };
        for ours in [Config::LogbookSocket, Config::LogbookEmbedded] {
            for other in [Config::FmtJson, Config::Otel, Config::Noop] {
                let ratio = |cpu: bool| -> Vec<f64> {
                    (0..plan.rounds)
                        .map(|r| round_median(ours, r, cpu) / round_median(other, r, cpu))
                        .collect()
                };
                ratios.push((
                    scenario,
                    ours,
                    other,
                    summarize(&ratio(false)),
                    summarize(&ratio(true)),
                ));
            }
        }
    }
    Ok(HotPathResults {
        cells,
        ratios,
        rounds: plan.rounds,
        iters: Scenario::ALL
            .iter()
            .map(|s| (*s, plan.iters / s.records()))
            .collect(),
        reps: plan.reps,
    })
}

/// The markdown tables for BENCHMARKS.md.
pub(crate) fn markdown(r: &HotPathResults) -> String {
    let mut s = String::new();
    s.push_str(
        "| scenario | configuration | wall ns, median (min–max) | emitting-thread CPU ns, median (min–max) | dropped |\n|---|---|---|---|---|\n",
    );
    for (scenario, config, wall, cpu, dropped) in &r.cells {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            scenario.label(),
            config.label(),
            wall.show(1),
            cpu.show(1),
            dropped
        ));
    }
    s.push_str("\n| scenario | ratio | wall, median (min–max) over rounds | CPU, median (min–max) over rounds |\n|---|---|---|---|\n");
    for (scenario, ours, other, wall, cpu) in &r.ratios {
        s.push_str(&format!(
            "| {} | {} / {} | {} | {} |\n",
            scenario.label(),
            ours.label(),
            other.label(),
            wall.show(3),
            cpu.show(3)
        ));
    }
    s
}

/// Where the child processes put their files.
pub(crate) fn scratch_dir() -> PathBuf {
    std::env::temp_dir().join(format!("logbook-bench-{}", std::process::id()))
}
