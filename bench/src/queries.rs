//! Queries against a generated store: the first page of each single filter with a time
//! range, a large run's tree, text search and filtered counts, each over random
//! parameter choices; and `logbook export` as a user runs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context as _};
use logbook_collector::query::{Page, RecordFilter};
use logbook_collector::store::{open_reader, StoreAddress};
use logbook_proto::{Kind, Level, Timestamp};

use crate::dataset::{self, Dataset, Rng};
use crate::stats::percentile;

const HOUR: i64 = 3_600 * 1_000_000_000;

/// Latencies of one kind of query over random parameters, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Timing {
    pub(crate) query: String,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    /// Mean rows returned (or counted), to show the queries find something.
    pub(crate) mean_rows: f64,
    pub(crate) target_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Export {
    pub(crate) rows: u64,
    pub(crate) seconds: f64,
    pub(crate) rows_per_sec: f64,
    pub(crate) peak_rss_mib: f64,
    pub(crate) baseline_rss_mib: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct QueryRun {
    pub(crate) dataset: Dataset,
    pub(crate) db_mib: f64,
    pub(crate) timings: Vec<Timing>,
    pub(crate) export: Export,
}

/// The single filters of the CLI, each paired with a time range.
const FILTERS: &[&str] = &[
    "time range only",
    "--level",
    "--run",
    "--trace",
    "--tenant",
    "--project",
    "--app",
    "--user",
    "--kind",
    "--category",
    "--name",
    "--target",
    "--field",
];

/// A window of 1, 6 or 24 hours somewhere in the data, or around `at`.
fn window(rng: &mut Rng, d: &Dataset, at: Option<i64>, f: &mut RecordFilter) {
    let len = *rng.pick(&[HOUR, 6 * HOUR, 24 * HOUR]);
    let start = match at {
        Some(t) => t - rng.below(len as usize / 2) as i64,
        None => d.first_ts + rng.below((d.last_ts - d.first_ts - len).max(1) as usize) as i64,
    };
    f.since = Some(Timestamp(start));
    f.until = Some(Timestamp(start + len));
}

/// One random filter of kind `which`.
fn filter(which: &str, rng: &mut Rng, d: &Dataset, vocab: &[String]) -> RecordFilter {
    let mut f = RecordFilter::default();
    let mut at = None;
    match which {
        "--level" => {
            f.min_level = Some(*rng.pick(&[Level::Debug, Level::Info, Level::Warn, Level::Error]))
        }
        "--run" => {
            let (run, ts) = rng.pick(&d.runs).clone();
            f.run_id = Some(run);
            at = Some(ts);
        }
        "--trace" => {
            let (trace, ts) = rng.pick(&d.traces).clone();
            f.trace_id = trace.parse().ok();
            at = Some(ts);
        }
        "--tenant" => f.tenant = Some(format!("tenant-{:03}", rng.below(d.tenants))),
        "--project" => f.project = Some(format!("project-{:03}", rng.below(d.projects))),
        "--app" => f.app = Some((*rng.pick(dataset::APPS)).to_owned()),
        "--user" => f.user_id = Some(format!("user-{:05}", rng.below(d.users))),
        "--kind" => f.kind = Some(*rng.pick(&[Kind::Event, Kind::SpanStart, Kind::SpanEnd])),
        "--category" => {
            f.category = Some(
                (*rng.pick(&[
                    "run",
                    "step",
                    "llm_call",
                    "tool_call",
                    "log",
                    "error",
                    "span",
                ]))
                .to_owned(),
            )
        }
        "--name" => f.name = Some((*rng.pick(dataset::NAMES)).to_owned()),
        "--target" => {
            f.target = Some(
                (*rng.pick(&[
                    "app",
                    "app::tools",
                    "app::llm",
                    "sqlx",
                    "tower_http",
                    "app::billing",
                ]))
                .to_owned(),
            )
        }
        "--text" => {
            let words = 1 + rng.below(2);
            let text: Vec<&str> = (0..words)
                .map(|_| vocab[rng.skewed(vocab.len())].as_str())
                .collect();
            f.text = Some(text.join(" "));
        }
        "--field" => {
            let (k, v) = match rng.below(4) {
                0 => (
                    "gen_ai.request.model",
                    (*rng.pick(dataset::MODELS)).to_owned(),
                ),
                1 => ("gen_ai.tool.name", (*rng.pick(dataset::TOOLS)).to_owned()),
                2 => ("http.route", (*rng.pick(dataset::ROUTES)).to_owned()),
                _ => (
                    "http.response.status_code",
                    (*rng.pick(&["200", "404", "500"])).to_owned(),
                ),
            };
            f.fields.push((k.to_owned(), v));
        }
        _ => {}
    }
    window(rng, d, at, &mut f);
    f
}

fn timing(query: &str, target_ms: f64, mut samples: Vec<(f64, usize)>) -> Timing {
    let rows = samples.iter().map(|s| s.1 as f64).sum::<f64>() / samples.len().max(1) as f64;
    samples.sort_by(|a, b| a.0.total_cmp(&b.0));
    let ms: Vec<f64> = samples.iter().map(|s| s.0).collect();
    Timing {
        query: query.to_owned(),
        p50_ms: percentile(&ms, 50.0),
        p99_ms: percentile(&ms, 99.0),
        max_ms: ms.last().copied().unwrap_or(0.0),
        mean_rows: rows,
        target_ms,
    }
}

fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(f64, T)> {
    let t = Instant::now();
    let v = f()?;
    Ok((t.elapsed().as_secs_f64() * 1e3, v))
}

/// Generates (or reuses) a store of `records` and measures every query on it.
pub(crate) fn run(cache: &Path, records: u64, choices: usize) -> anyhow::Result<QueryRun> {
    let (db, d) = dataset::ensure(cache, records)?;
    let store = open_reader(&StoreAddress::sqlite(&db))?;
    let timings = timings(store.as_ref(), &d, choices)?;
    let db_mib = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0) as f64 / (1024.0 * 1024.0);
    drop(store);
    let export = export(&db, d.records)?;
    Ok(QueryRun {
        dataset: d,
        db_mib,
        timings,
        export,
    })
}

/// Every query of the table on `store`, which holds `d`.
pub(crate) fn timings(
    store: &dyn logbook_collector::store::StoreReader,
    d: &dataset::Dataset,
    choices: usize,
) -> anyhow::Result<Vec<Timing>> {
    let d = d.clone();
    let vocab = dataset::vocabulary();
    let mut rng = Rng::new(0x9e7);
    let mut timings = Vec::new();
    for which in FILTERS.iter().chain(&["--text"]) {
        let target = if *which == "--text" { 1_000.0 } else { 50.0 };
        let mut samples = Vec::with_capacity(choices);
        for _ in 0..choices {
            let f = filter(which, &mut rng, &d, &vocab);
            let (ms, rows) = timed(|| Ok(store.query(&f, &Page::default())?.len()))?;
            samples.push((ms, rows));
        }
        timings.push(timing(&format!("first page: {which}"), target, samples));
    }
    let mut samples = Vec::with_capacity(choices);
    for _ in 0..choices {
        let run = rng.pick(&d.big_runs).clone();
        let (ms, rows) = timed(|| {
            store.run(&run)?.context("a generated run is missing")?;
            Ok(store.run_records(&run, 10_000)?.len())
        })?;
        samples.push((ms, rows));
    }
    timings.push(timing(
        &format!(
            "run tree of {} spans (summary and records)",
            dataset::BIG_RUN_SPANS
        ),
        50.0,
        samples,
    ));
    for which in ["--tenant", "--category", "--level", "--field", "--text"] {
        let mut samples = Vec::with_capacity(choices);
        for _ in 0..choices {
            let f = filter(which, &mut rng, &d, &vocab);
            let (ms, n) = timed(|| Ok(store.count(&f)? as usize))?;
            samples.push((ms, n));
        }
        timings.push(timing(
            &format!("count: {which} with a time range"),
            1_000.0,
            samples,
        ));
    }
    for which in ["--tenant", "--category", "--level"] {
        let mut samples = Vec::with_capacity(choices);
        for _ in 0..choices {
            let mut f = filter(which, &mut rng, &d, &vocab);
            (f.since, f.until) = (None, None);
            let (ms, n) = timed(|| Ok(store.count(&f)? as usize))?;
            samples.push((ms, n));
        }
        timings.push(timing(
            &format!("count: {which}, all time"),
            1_000.0,
            samples,
        ));
    }
    Ok(timings)
}

/// Runs `logbook ARGS…` (this binary's copy of it) with its output discarded; returns
/// its wall time and peak resident memory in KiB, as the child reports it on exit.
fn logbook(args: &[&str]) -> anyhow::Result<(f64, u64)> {
    let t = Instant::now();
    let out = Command::new(std::env::current_exe()?)
        .arg("collector")
        .args(args)
        .env(crate::REPORT_PEAK_RSS, "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("starting logbook")?;
    let secs = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "logbook {} failed: {}: {stderr}",
            args.join(" "),
            out.status
        );
    }
    let peak = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib="))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no peak memory in logbook's stderr: {stderr}"))?;
    Ok((secs, peak))
}

/// `logbook export --format jsonl` of the whole store, and of nothing for the baseline.
fn export(db: &Path, rows: u64) -> anyhow::Result<Export> {
    let db = db.to_str().context("database path is not UTF-8")?;
    let (_, baseline) = logbook(&[
        "export",
        "--db",
        db,
        "--format",
        "jsonl",
        "--run",
        "no-such-run",
    ])?;
    // The median of three runs: this machine's speed varies from minute to minute.
    let mut runs = (0..3)
        .map(|_| logbook(&["export", "--db", db, "--format", "jsonl"]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (seconds, peak) = runs[1];
    Ok(Export {
        rows,
        seconds,
        rows_per_sec: rows as f64 / seconds,
        peak_rss_mib: peak as f64 / 1024.0,
        baseline_rss_mib: baseline as f64 / 1024.0,
    })
}

pub(crate) fn markdown(runs: &[QueryRun]) -> String {
    let mut s = String::new();
    for r in runs {
        let d = &r.dataset;
        s.push_str(&format!(
            "Store of {} records ({:.0} MiB; {} tenants, {} projects, {} users, {} runs of {} spans; generated in {:.0} s):\n\n\
             | query | p50 ms | p99 ms | max ms | mean rows | target p99 ms | met |\n|---|---|---|---|---|---|---|\n",
            d.records, r.db_mib, d.tenants, d.projects, d.users, d.big_runs.len(), dataset::BIG_RUN_SPANS, d.seconds_to_generate
        ));
        for t in &r.timings {
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {} |\n",
                t.query,
                t.p50_ms,
                t.p99_ms,
                t.max_ms,
                t.mean_rows,
                t.target_ms,
                if t.p99_ms <= t.target_ms {
                    "yes"
                } else {
                    "**no**"
                }
            ));
        }
        let e = &r.export;
        s.push_str(&format!(
            "\n`logbook export --format jsonl` of all {} rows (median of 3 runs): {:.1} s, {:.0} rows/s (target 200000: {}); \
             peak RSS {:.1} MiB against {:.1} MiB exporting nothing: growth {:.1} MiB (target 64: {}).\n\n",
            e.rows,
            e.seconds,
            e.rows_per_sec,
            if e.rows_per_sec >= 200_000.0 { "met" } else { "**missed**" },
            e.peak_rss_mib,
            e.baseline_rss_mib,
            e.peak_rss_mib - e.baseline_rss_mib,
            if e.peak_rss_mib - e.baseline_rss_mib <= 64.0 { "met" } else { "**missed**" },
        ));
    }
    s
}
