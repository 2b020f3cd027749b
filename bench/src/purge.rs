//! Ingest during a purge: the application of `sustained` logging at a fixed load into a
//! collector whose database already holds a generated week of records, once alone and
//! once while `logbook purge` deletes all of those records beside it.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use logbook_collector::store::{open_reader, StoreAddress};
use logbook_proto::Timestamp;
use rusqlite::Connection;

use crate::dataset::Dataset;
use crate::sustained::{Emitter, SustainedRun};
use crate::CollectorProcess;

/// The purge's `--older-than`.
const PURGE_AGE: Duration = Duration::from_secs(5);

/// One run: the application's figures and, with a purge, what it did.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PurgeRun {
    pub(crate) ingest: SustainedRun,
    pub(crate) purge: Option<PurgeFigures>,
    /// The database file's size before and after, MiB.
    pub(crate) size_before_mib: f64,
    pub(crate) size_after_mib: f64,
}

/// What `logbook purge` did during a run.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct PurgeFigures {
    pub(crate) deleted: u64,
    pub(crate) seconds: f64,
    /// Seconds after the application started emitting that the purge started.
    pub(crate) started_after: f64,
}

/// Copies the generated database to a fresh collector directory, without the latencies
/// its generation recorded (they would land in the minute the run starts in).
/// Returns the newest record's time.
fn prepare(base: &Path, cdir: &Path) -> anyhow::Result<Timestamp> {
    let _ = std::fs::remove_dir_all(cdir);
    std::fs::create_dir_all(cdir)?;
    let db = cdir.join("logbook.db");
    {
        // Through SQLite, so a WAL the generator left is folded in.
        let src = Connection::open(base)?;
        src.execute("VACUUM INTO ?1", [db.to_str().context("path not UTF-8")?])?;
    }
    let conn = Connection::open(&db)?;
    conn.execute("DELETE FROM ingest_latency", [])?;
    Ok(Timestamp(conn.query_row(
        "SELECT max(ts) FROM records",
        [],
        |r| r.get(0),
    )?))
}

fn size_mib(db: &Path) -> f64 {
    ["", "-wal"]
        .iter()
        .filter_map(|ext| std::fs::metadata(format!("{}{ext}", db.display())).ok())
        .map(|m| m.len() as f64)
        .sum::<f64>()
        / (1024.0 * 1024.0)
}

/// Runs the application at `rate` for `seconds` against a copy of `base` (holding the
/// records of `d`); with `purge`, `logbook purge --older-than 5s --yes` starts a second
/// in and deletes every generated record while the application logs.
pub(crate) fn run(
    dir: &Path,
    base: &Path,
    d: &Dataset,
    rate: f64,
    seconds: f64,
    purge: bool,
) -> anyhow::Result<PurgeRun> {
    let label = if purge { "during a purge" } else { "alone" };
    let cdir = dir.join(if purge { "purge-with" } else { "purge-without" });
    let newest = prepare(base, &cdir)?;
    let before = open_reader(&StoreAddress::sqlite(cdir.join("logbook.db")))?.stats()?;
    let existing = before.records - before.audit_records;
    if existing != d.records {
        bail!(
            "the copy holds {existing} ops records, the dataset {}",
            d.records
        );
    }
    // The purge deletes what is older than PURGE_AGE: every generated record, none of
    // the application's, which starts a second before it.
    let due = newest.as_nanos() + (PURGE_AGE + Duration::from_secs(1)).as_nanos() as i64;
    let wait = due - Timestamp::now().as_nanos();
    if wait > 0 {
        std::thread::sleep(Duration::from_nanos(wait as u64));
    }
    let collector = CollectorProcess::start(&cdir, &[])?;
    let db = collector.db.clone();
    let size_before_mib = size_mib(&db);
    let t0 = Instant::now();
    let emitter = Emitter::start(&collector, rate, seconds)?;
    let mut figures = None;
    if purge {
        std::thread::sleep(Duration::from_secs(1));
        let started_after = t0.elapsed().as_secs_f64();
        let p0 = Instant::now();
        let out = Command::new(std::env::current_exe()?)
            .args(["collector", "--db"])
            .arg(&db)
            .args(["purge", "--older-than"])
            .arg(format!("{}s", PURGE_AGE.as_secs()))
            .args(["--yes", "--json"])
            .output()
            .context("running logbook purge")?;
        let secs = p0.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!("purge failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("purge output: {}", String::from_utf8_lossy(&out.stdout)))?;
        let deleted = report["ops"].as_u64().context("purge report without ops")?;
        if deleted != existing {
            bail!("purge deleted {deleted} of {existing} generated records");
        }
        if started_after + secs > seconds {
            eprintln!(
                "note: the purge outlasted the application ({secs:.0} s from {started_after:.0} s of {seconds:.0} s)"
            );
        }
        figures = Some(PurgeFigures {
            deleted,
            seconds: secs,
            started_after,
        });
    }
    let deleted = figures.as_ref().map_or(0, |f| f.deleted);
    let ingest = emitter.finish(label, collector, existing - deleted)?;
    Ok(PurgeRun {
        ingest,
        purge: figures,
        size_before_mib,
        size_after_mib: size_mib(&db),
    })
}

/// The BENCHMARKS.md table.
pub(crate) fn markdown(d: &Dataset, rate: f64, ceiling: Option<f64>, runs: &[PurgeRun]) -> String {
    let offered = ceiling.map_or_else(
        || "(--rate)".to_owned(),
        |c| format!("(half the plain-loop ceiling of {c:.0} measured in the same run)"),
    );
    let mut s = format!(
        "Ingest at {rate:.0} records/s {offered} into a collector whose database holds {} generated records \
         (a week of agent runs and requests), alone and while `logbook purge --older-than 5s \
         --yes` deletes all of them beside it:\n\n\
         | run | seconds | stored | dropped | p50 ms | p99 ms | purge deleted | purge seconds | purge records/s | file MiB before → after |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
        d.records
    );
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for r in runs {
        let i = &r.ingest;
        let (deleted, secs, rps) = match &r.purge {
            Some(p) => (
                p.deleted.to_string(),
                format!("{:.1}", p.seconds),
                format!("{:.0}", p.deleted as f64 / p.seconds),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let size = format!("{:.0} → {:.0}", r.size_before_mib, r.size_after_mib);
        s.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} | {deleted} | {secs} | {rps} | {size} |\n",
            i.label,
            i.seconds,
            i.stored,
            i.app.dropped,
            ms(i.latency_p50_ms),
            ms(i.latency_p99_ms),
        ));
    }
    s
}
