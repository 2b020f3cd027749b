//! logbook's benchmarks. `cargo run --release -p logbook-bench -- all` runs every one
//! and prints the tables of BENCHMARKS.md; `--quick` runs each in seconds.

mod api;
// The web UI tests' WebDriver client, shared.
#[path = "../../tests/tests/browser/mod.rs"]
mod browser;
mod dataset;
mod hot_path;
mod http;
mod ingest;
mod instructions;
mod monitor;
mod otlp;
mod postgres;
mod purge;
mod queries;
mod records;
mod stats;
mod sustained;
mod waterfall;
#[path = "../../tests/tests/fixtures/wide_run.rs"]
mod wide_run;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "logbook-bench",
    about = "logbook's benchmarks, side by side with the alternatives"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Nanoseconds per event on the emitting thread, against fmt-JSON, OpenTelemetry and a no-op layer.
    HotPath {
        /// A few seconds instead of minutes.
        #[arg(long)]
        quick: bool,
        /// Rounds (each runs every configuration once, interleaved).
        #[arg(long)]
        rounds: Option<usize>,
        /// Repetitions per child process.
        #[arg(long)]
        reps: Option<usize>,
        /// Records per repetition.
        #[arg(long)]
        iters: Option<u64>,
    },
    /// Instructions per iteration on the emitting thread (callgrind; repeatable on a
    /// shared machine), for logbook's sinks, the no-op floor and fmt JSON.
    Instructions {
        /// Fewer iterations (a run of seconds).
        #[arg(long)]
        quick: bool,
    },
    /// Internal: one measured child of `hot-path`.
    #[command(hide = true)]
    HotPathChild {
        #[arg(long, value_enum)]
        config: hot_path::Config,
        #[arg(long, value_enum)]
        scenario: hot_path::Scenario,
        #[arg(long)]
        iters: u64,
        #[arg(long)]
        reps: usize,
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long)]
        dir: PathBuf,
    },
    /// Records/s stored by a collector from an application logging flat out and at fixed
    /// loads, with emit-to-commit latency and memory; and the ingest ceiling.
    Sustained {
        /// A few seconds instead of minutes.
        #[arg(long)]
        quick: bool,
    },
    /// Ingest with the monitor (exception groups, span metrics, log volume) off and on,
    /// alternating: the monitor's cost, and whether it keeps up.
    Monitor {
        /// One round of a few seconds.
        #[arg(long)]
        quick: bool,
    },
    /// Queries on generated stores of 1M and 10M records (100k with --quick), kept under
    /// target/logbook-bench for later runs; and export.
    Queries {
        /// One small store and fewer parameter choices.
        #[arg(long)]
        quick: bool,
        /// Store sizes, in records [default: 1000000,10000000].
        #[arg(long, value_delimiter = ',')]
        records: Vec<u64>,
        /// Random parameter choices per query [default: 100].
        #[arg(long)]
        choices: Option<usize>,
    },
    /// What redaction costs the collector: the generated agent and service records of
    /// `queries`, written through the pipeline and the store, each part timed.
    Redaction {
        /// Records [default: 500000; 50000 with --quick].
        #[arg(long)]
        records: Option<u64>,
        /// A run of seconds.
        #[arg(long)]
        quick: bool,
    },
    /// Ingest latency at half the ceiling while `logbook purge` deletes 1M records
    /// (100k with --quick) beside the collector, against the same load without a purge.
    Purge {
        /// A run of seconds.
        #[arg(long)]
        quick: bool,
        /// Records to purge [default: 1000000; 100000 with --quick].
        #[arg(long)]
        records: Option<u64>,
        /// Seconds the application logs in each run [default: 120; 15 with --quick].
        #[arg(long)]
        seconds: Option<f64>,
        /// Records per second the application offers [default: half the plain-loop
        /// ceiling, measured first].
        #[arg(long)]
        rate: Option<f64>,
    },
    /// PostgreSQL: ingest against a plain binary COPY loop, three writers at once
    /// against one, a day's retention against DELETE.
    Postgres {
        /// A run of seconds (CI).
        #[arg(long)]
        quick: bool,
        /// Records [default: 500,000; 30,000 with --quick].
        #[arg(long)]
        records: Option<u64>,
        /// Instead: the query table on a generated store of this many records, in
        /// PostgreSQL and in SQLite.
        #[arg(long)]
        queries: Option<u64>,
    },
    /// The ingest ceiling alone.
    Ceiling {
        /// Records to insert.
        #[arg(long, default_value_t = 500_000)]
        records: u64,
    },
    /// OTLP/HTTP ingest of LLM-like spans against the socket path carrying the same
    /// spans through the layer (and Arize Phoenix, with `--peer phoenix`).
    Otlp {
        /// Fewer spans (a run of seconds).
        #[arg(long)]
        quick: bool,
        /// Requests of 500 spans [default: 200; 20 with --quick].
        #[arg(long)]
        requests: Option<usize>,
        /// Also measure this peer with the identical requests: `phoenix` (installed in
        /// target/phoenix).
        #[arg(long)]
        peer: Option<String>,
    },
    /// The read API over HTTP on the generated stores of `queries`: first pages of runs
    /// and records, admin and scoped viewer, beside the same reads in process.
    Api {
        /// The 100k-record store and fewer repetitions.
        #[arg(long)]
        quick: bool,
        /// Store size, in records [default: 10000000].
        #[arg(long)]
        records: Option<u64>,
        /// Repetitions of each read [default: 200].
        #[arg(long)]
        repeat: Option<usize>,
    },
    /// The run page of a 10,000-span run with 100 KB prompts in headless Chromium:
    /// time until the waterfall is drawn, bytes of the first load.
    Waterfall {
        /// 1 KB prompts and two loads.
        #[arg(long)]
        quick: bool,
        /// Loads, each with an empty cache [default: 10; 2 with --quick].
        #[arg(long)]
        loads: Option<usize>,
    },
    /// Internal: the application of `otlp`'s socket side.
    #[command(hide = true)]
    SpanChild {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        spans: u64,
    },
    /// Internal: the application of `sustained`.
    #[command(hide = true)]
    EmitChild {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        rate: f64,
        #[arg(long)]
        seconds: f64,
    },
    /// Internal: the collector (`logbook ARGS…`), run from this binary.
    #[command(hide = true)]
    Collector {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// Set for `collector`: report the process's peak memory on stderr when done.
pub(crate) const REPORT_PEAK_RSS: &str = "LOGBOOK_BENCH_REPORT_PEAK_RSS";

/// A collector process for the benchmarks, stopped on drop.
pub(crate) struct CollectorProcess {
    child: Child,
    pub(crate) socket: PathBuf,
    pub(crate) db: PathBuf,
}

impl CollectorProcess {
    pub(crate) fn start(dir: &std::path::Path, extra: &[&str]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let socket = dir.join("logbook.sock");
        let db = dir.join("logbook.db");
        let child = Command::new(std::env::current_exe()?)
            .args([
                "collector",
                "serve",
                "--no-http",
                "--log",
                "warn",
                "--socket",
            ])
            .arg(&socket)
            .arg("--db")
            .arg(&db)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .context("starting the collector")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline {
                bail!("collector did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { child, socket, db })
    }
}

impl CollectorProcess {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for CollectorProcess {
    fn drop(&mut self) {
        // SIGTERM: commit what was received and exit.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::HotPathChild {
            config,
            scenario,
            iters,
            reps,
            socket,
            dir,
        } => hot_path::child(config, scenario, iters, reps, socket.as_deref(), &dir),
        Cmd::EmitChild {
            socket,
            rate,
            seconds,
        } => sustained::emit_child(&socket, rate, seconds),
        Cmd::SpanChild { socket, spans } => otlp::span_child(&socket, spans),
        Cmd::Api {
            quick,
            records,
            repeat,
        } => {
            let records = records.unwrap_or(if quick { 100_000 } else { 10_000_000 });
            let n = repeat.unwrap_or(if quick { 30 } else { 200 });
            let (records, timings) = api::run(&bench_cache()?, records, n)?;
            println!("{}", api::markdown(records, &timings));
            Ok(())
        }
        Cmd::Waterfall { quick, loads } => {
            let report = waterfall::run(
                if quick { 1_000 } else { 100_000 },
                loads.unwrap_or(if quick { 2 } else { 10 }),
            )?;
            println!("{}", waterfall::markdown(&report));
            Ok(())
        }
        Cmd::Otlp {
            quick,
            requests,
            peer,
        } => {
            let n = requests.unwrap_or(if quick { 20 } else { 200 });
            let bodies = otlp::requests(n);
            let dir = hot_path::scratch_dir();
            let mut sides = vec![
                otlp::otlp_side(&dir.join("otlp"), &bodies)?,
                otlp::socket_side(&dir.join("socket"), (n * otlp::BATCH) as u64)?,
            ];
            match peer.as_deref() {
                Some("phoenix") => {
                    let venv = bench_cache()?
                        .parent()
                        .map_or_else(|| PathBuf::from("target/phoenix"), |t| t.join("phoenix"));
                    sides.push(otlp::phoenix_side(&dir.join("phoenix"), &bodies, &venv)?);
                }
                Some(other) => bail!("--peer {other}: the peer measured is phoenix"),
                None => {}
            }
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", otlp::markdown(&sides));
            Ok(())
        }
        Cmd::Instructions { quick } => {
            let dir = hot_path::scratch_dir();
            let counts = instructions::run(&dir, if quick { 2_000 } else { 20_000 })?;
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", instructions::markdown(&counts));
            Ok(())
        }
        Cmd::Redaction { records, quick } => {
            redaction(records.unwrap_or(if quick { 50_000 } else { 500_000 }))
        }
        Cmd::Purge {
            quick,
            records,
            seconds,
            rate,
        } => {
            let records = records.unwrap_or(if quick { 100_000 } else { 1_000_000 });
            let seconds = seconds.unwrap_or(if quick { 15.0 } else { 120.0 });
            let dir = hot_path::scratch_dir();
            let ceiling = match rate {
                Some(_) => None,
                None => {
                    let n = if quick { 100_000 } else { 500_000 };
                    Some(ingest::run(&dir.join("ceiling"), n, 1)?.plain_rps)
                }
            };
            let rate = rate.unwrap_or_else(|| (ceiling.unwrap_or(0.0) * 0.5).round());
            let (base, d) = if quick {
                let db = dir.join("purge-base.db");
                (db.clone(), dataset::generate(&db, records)?)
            } else {
                dataset::ensure(&bench_cache()?, records)?
            };
            let runs = [false, true]
                .into_iter()
                .map(|with| purge::run(&dir, &base, &d, rate, seconds, with))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", purge::markdown(&d, rate, ceiling, &runs));
            Ok(())
        }
        Cmd::Postgres {
            queries: Some(n),
            quick,
            ..
        } => {
            let table = postgres::queries(&bench_cache()?, n, if quick { 10 } else { 100 })?;
            println!("{table}");
            Ok(())
        }
        Cmd::Postgres { quick, records, .. } => {
            let n = records.unwrap_or(if quick { 30_000 } else { 500_000 });
            let r = postgres::run(n, if quick { 1 } else { 3 })?;
            println!("{}", postgres::markdown(&r));
            eprintln!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Cmd::Ceiling { records } => {
            let dir = hot_path::scratch_dir();
            let c = ingest::run(&dir, records, 1)?;
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", serde_json::to_string_pretty(&c)?);
            Ok(())
        }
        Cmd::Sustained { quick } => {
            let dir = hot_path::scratch_dir();
            let ceiling = ingest::run(
                &dir.join("ceiling"),
                if quick { 100_000 } else { 1_000_000 },
                if quick { 1 } else { 3 },
            )?;
            eprintln!("ingest ceiling: {ceiling:?}");
            let mut runs = vec![sustained::run(
                &dir,
                "flat out",
                0.0,
                if quick { 2.0 } else { 10.0 },
            )?];
            for (share, secs) in [(0.25, 10.0), (0.5, 60.0), (0.75, 10.0)] {
                let rate = (ceiling.plain_rps * share).round();
                let label = format!("{}% of ceiling", (share * 100.0) as u32);
                runs.push(sustained::run(
                    &dir,
                    &label,
                    rate,
                    if quick { 3.0 } else { secs },
                )?);
            }
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", sustained_markdown(&ceiling, &runs));
            Ok(())
        }
        Cmd::Monitor { quick } => {
            let dir = hot_path::scratch_dir();
            let r = monitor::run(
                &dir,
                if quick { 2.0 } else { 10.0 },
                if quick { 1 } else { 5 },
            )?;
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", monitor::markdown(&r));
            Ok(())
        }
        Cmd::Queries {
            quick,
            records,
            choices,
        } => {
            let sizes = match (records.is_empty(), quick) {
                (false, _) => records,
                (true, true) => vec![100_000],
                (true, false) => vec![1_000_000, 10_000_000],
            };
            let choices = choices.unwrap_or(if quick { 20 } else { 100 });
            let cache = bench_cache()?;
            let mut runs = Vec::new();
            for n in sizes {
                runs.push(queries::run(&cache, n, choices)?);
                eprintln!("{}", queries::markdown(&runs[runs.len() - 1..]));
            }
            println!("{}", queries::markdown(&runs));
            Ok(())
        }
        Cmd::Collector { args } => {
            use clap::Parser as _;
            let cli = logbook_collector::cli::Cli::parse_from(
                std::iter::once("logbook".to_owned()).chain(args),
            );
            let result = cli.run();
            if std::env::var_os(REPORT_PEAK_RSS).is_some() {
                eprintln!("peak_rss_kib={}", sustained::peak_rss_kib("self"));
            }
            result
        }
        Cmd::HotPath {
            quick,
            rounds,
            reps,
            iters,
        } => {
            let plan = hot_path::Plan {
                rounds: rounds.unwrap_or(if quick { 1 } else { 5 }),
                reps: reps.unwrap_or(if quick { 3 } else { 7 }),
                iters: iters.unwrap_or(if quick { 10_000 } else { 50_000 }),
            };
            let dir = hot_path::scratch_dir();
            let collector = CollectorProcess::start(&dir.join("collector"), &[])?;
            let results = hot_path::run(&plan, &collector.socket, &dir)?;
            drop(collector);
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", hot_path::markdown(&results));
            Ok(())
        }
    }
}

/// Where generated stores are kept between runs: `target/logbook-bench`.
fn bench_cache() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map_or_else(hot_path::scratch_dir, |t| t.join("logbook-bench")))
}

fn redaction(records: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dataset::generate(&dir.path().join("redaction.db"), records)?;
    let share = |part: f64| part / (part + d.store_seconds);
    println!(
        "Redaction on {} generated records (agent runs with LLM and tool calls, HTTP \
         requests; the `queries` data), built-in rules:\n\n\
         | part | seconds | µs per record | share of ingest time (part / (part + store write)) |\n\
         |---|---|---|---|\n\
         | `StoreWriter::write` (SQLite) | {:.2} | {:.2} | |\n\
         | redaction rules alone | {:.2} | {:.2} | {:.3} |\n\
         | whole pipeline (redact, validate, category) | {:.2} | {:.2} | {:.3} |\n",
        d.records,
        d.store_seconds,
        d.store_seconds * 1e6 / d.records as f64,
        d.redact_seconds,
        d.redact_seconds * 1e6 / d.records as f64,
        share(d.redact_seconds),
        d.pipeline_seconds,
        d.pipeline_seconds * 1e6 / d.records as f64,
        share(d.pipeline_seconds),
    );
    Ok(())
}

fn sustained_markdown(c: &ingest::Ceiling, runs: &[sustained::SustainedRun]) -> String {
    let mut s = format!(
        "Ingest ceiling ({} records into a fresh file, large transactions, same schema and \
         pragmas; median of {} interleaved rounds, shares taken within each round):\n\n\
         | writer | records/s | share of plain loop, median (min–max) |\n|---|---|---|\n\
         | plain prepared-statement loop, `records` table | {:.0} | 1.000 |\n\
         | plain loop, `records` and its text index | {:.0} | {} |\n\
         | logbook's store (`StoreWriter::write`, SQLite, no transport) | {:.0} | {} |\n\n",
        c.records,
        c.rounds,
        c.plain_rps,
        c.plain_with_text_rps,
        c.text_share.show(3),
        c.store_rps,
        c.store_share.show(3),
    );
    s.push_str(
        "| load | offered rec/s | seconds | emitted | stored | stored rec/s | share of ceiling | dropped | p50 ms | p99 ms | collector peak RSS MiB | layer max buffer MiB | app peak RSS MiB |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        s.push_str(&format!(
            "| {} | {} | {:.0} | {} | {} | {:.0} | {:.3} | {} | {} | {} | {:.1} | {:.2} | {:.1} |\n",
            r.label,
            if r.offered_rps > 0.0 { format!("{:.0}", r.offered_rps) } else { "max".to_owned() },
            r.seconds,
            r.app.emitted,
            r.stored,
            r.stored_rps,
            r.stored_rps / c.plain_rps,
            r.app.dropped,
            ms(r.latency_p50_ms),
            ms(r.latency_p99_ms),
            r.collector_peak_rss_kib as f64 / 1024.0,
            r.app.max_buffered as f64 / (1024.0 * 1024.0),
            r.app.peak_rss_kib as f64 / 1024.0,
        ));
    }
    s
}
