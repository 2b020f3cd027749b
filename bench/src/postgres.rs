//! PostgreSQL, each figure beside its plain alternative in the same run:
//! - ingest: the store's write path (binary `COPY` into a staging table, idempotent
//!   insert, runs, counters, chain; group commits of 20,000) as a share of a plain
//!   binary `COPY` loop into the same `records` table (the store's own binding,
//!   `store::postgres::raw`, so the columns cannot drift);
//! - three writers at once (three collectors' writers, each its own connection and
//!   thread) against one, and that nothing is lost;
//! - retention of a day: logbook's purge through the store contract (which drops the
//!   day's partition) against `DELETE` of the same rows.
//!
//! Databases `logbook_bench_*` on `LOGBOOK_BENCH_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), made fresh and dropped.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use anyhow::Context as _;
use logbook_collector::audit::StorageClass;
use logbook_collector::store::{open_writer, Selection, StoreAddress, StoreOptions};
use logbook_proto::{InstanceId, Record, Timestamp};
use postgres::{Client, NoTls};

use crate::records;
use crate::stats::{summarize, Summary};

/// Records per transaction in both loops (the collector's group commit at most).
const TX_RECORDS: usize = 20_000;
const DAY: i64 = 86_400_000_000_000;

fn admin_url() -> String {
    std::env::var("LOGBOOK_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh database, dropped with it.
struct Db {
    name: String,
}

impl Db {
    fn fresh(name: &str) -> anyhow::Result<Self> {
        let mut c = Client::connect(&admin_url(), NoTls).context("connecting to PostgreSQL")?;
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&name],
        )?;
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))?;
        c.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(Self { name: name.into() })
    }

    fn url(&self) -> String {
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }

    fn address(&self) -> StoreAddress {
        StoreAddress::Postgres(self.url())
    }

    fn client(&self) -> anyhow::Result<Client> {
        Ok(Client::connect(&self.url(), NoTls)?)
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        // Kept for a look at its plans and sizes when asked.
        if std::env::var_os("LOGBOOK_BENCH_KEEP_DB").is_some() {
            eprintln!("kept database {}", self.name);
            return;
        }
        if let Ok(mut c) = Client::connect(&admin_url(), NoTls) {
            let _ = c.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                &[&self.name],
            );
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
        }
    }
}

fn options(dir: &std::path::Path) -> StoreOptions {
    StoreOptions {
        key_dir: Some(dir.join("keys")),
        checkpoint_file: Some(dir.join("bench.checkpoints")),
        ..StoreOptions::default()
    }
}

/// `n` records of instance `k`, a day before `at` on, a microsecond apart.
fn sample(n: u64, k: u64, at: i64) -> Vec<Record> {
    // Distinct in more than the lowest bit, which an instance id always sets.
    let instance = InstanceId::from_random(0x9a00_0000 + (k << 8));
    let scope = records::run_scope(&format!("pg-{k}"));
    let resource = records::resource();
    (0..n)
        .map(|i| {
            records::record(
                instance,
                i,
                Timestamp(at + i as i64 * 1000),
                &scope,
                &resource,
            )
        })
        .collect()
}

fn store_loop(db: &Db, dir: &std::path::Path, rs: &[Record]) -> anyhow::Result<f64> {
    let mut w = open_writer(&db.address(), &options(dir))?;
    let t = Instant::now();
    let mut new = 0;
    for chunk in rs.chunks(TX_RECORDS) {
        new += w.write(chunk)?.iter().filter(|n| **n).count();
    }
    let rate = rs.len() as f64 / t.elapsed().as_secs_f64();
    anyhow::ensure!(
        new == rs.len(),
        "the store took {new} of {} as new",
        rs.len()
    );
    Ok(rate)
}

fn plain_loop(db: &Db, dir: &std::path::Path, rs: &[Record]) -> anyhow::Result<f64> {
    // The schema and the day's partitions, made by the store.
    {
        let mut w = open_writer(&db.address(), &options(dir))?;
        w.write(&rs[..1])?;
    }
    let mut c = db.client()?;
    c.batch_execute("TRUNCATE records")?;
    let classes = vec![StorageClass::Ops; TX_RECORDS];
    let t = Instant::now();
    let mut seq = 1i64;
    for chunk in rs.chunks(TX_RECORDS) {
        let mut tx = c.transaction()?;
        logbook_collector::store::postgres::raw::copy(
            &mut tx,
            "records",
            chunk,
            seq,
            &classes[..chunk.len()],
        )?;
        tx.commit()?;
        seq += chunk.len() as i64;
    }
    Ok(rs.len() as f64 / t.elapsed().as_secs_f64())
}

/// What the run measured.
#[derive(Debug, serde::Serialize)]
pub(crate) struct PgRun {
    pub(crate) records: u64,
    pub(crate) rounds: usize,
    pub(crate) plain_rps: Summary,
    pub(crate) store_rps: Summary,
    pub(crate) store_share: Summary,
    pub(crate) one_writer_rps: f64,
    pub(crate) three_writers_rps: f64,
    pub(crate) three_writers_stored: u64,
    pub(crate) day_records: u64,
    pub(crate) purge_ms: f64,
    pub(crate) delete_ms: f64,
}

pub(crate) fn run(records: u64, rounds: usize) -> anyhow::Result<PgRun> {
    let dir = tempfile::tempdir()?;
    // Two days ago: a whole day that retention may drop.
    let day_start = (Timestamp::now().as_nanos() / DAY - 2) * DAY;
    let rs = sample(records, 0, day_start);
    let (mut plain, mut store, mut share) = (Vec::new(), Vec::new(), Vec::new());
    let mut kept = None;
    for round in 0..rounds {
        let p = {
            let db = Db::fresh("logbook_bench_plain")?;
            let r = plain_loop(&db, dir.path(), &rs)?;
            if round + 1 == rounds {
                kept = Some(("plain", db));
            }
            r
        };
        let db = Db::fresh("logbook_bench_store")?;
        let s = store_loop(&db, dir.path(), &rs)?;
        eprintln!("round {round}: plain COPY {p:.0}/s, store {s:.0}/s");
        plain.push(p);
        store.push(s);
        share.push(s / p);
        if round + 1 == rounds {
            // Retention of the day: logbook's purge (a partition dropped) on the
            // store's database, DELETE on the plain loop's.
            let selection = Selection {
                class: StorageClass::Ops,
                older_than: Some(Timestamp(day_start + DAY)),
                ..Selection::default()
            };
            let mut w = open_writer(&db.address(), &options(dir.path()))?;
            let t = Instant::now();
            let mut gone = 0;
            loop {
                let d = w.delete_selected(&selection, 10_000)?;
                if d.records == 0 {
                    break;
                }
                gone += d.records;
            }
            let purge_ms = t.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(gone == records, "purged {gone} of {records}");
            let (_, plain_db) = kept.take().context("the plain loop's database")?;
            let mut c = plain_db.client()?;
            let t = Instant::now();
            let n = c.execute(
                "DELETE FROM records WHERE ts >= $1 AND ts < $2",
                &[&day_start, &(day_start + DAY)],
            )?;
            let delete_ms = t.elapsed().as_secs_f64() * 1e3;
            anyhow::ensure!(n == records, "deleted {n} of {records}");
            drop(w);
            let (one, three, stored) = writers(records, dir.path())?;
            return Ok(PgRun {
                records,
                rounds,
                plain_rps: summarize(&plain),
                store_rps: summarize(&store),
                store_share: summarize(&share),
                one_writer_rps: one,
                three_writers_rps: three,
                three_writers_stored: stored,
                day_records: records,
                purge_ms,
                delete_ms,
            });
        }
    }
    anyhow::bail!("no rounds")
}

/// `records` through one writer, then through three at once (a third each, distinct
/// records); the rates and what the three stored.
fn writers(records: u64, dir: &std::path::Path) -> anyhow::Result<(f64, f64, u64)> {
    let now = Timestamp::now().as_nanos();
    let one = {
        let db = Db::fresh("logbook_bench_one")?;
        store_loop(&db, dir, &sample(records, 1, now))?
    };
    let db = Db::fresh("logbook_bench_three")?;
    drop(open_writer(&db.address(), &options(dir))?);
    let barrier = Arc::new(Barrier::new(3));
    let per = records / 3;
    let t = Instant::now();
    let handles: Vec<_> = (0..3u64)
        .map(|k| {
            let rs = sample(per, 10 + k, now);
            let mut w = open_writer(&db.address(), &options(dir))?;
            let barrier = Arc::clone(&barrier);
            Ok(std::thread::spawn(move || -> anyhow::Result<()> {
                barrier.wait();
                for chunk in rs.chunks(TX_RECORDS) {
                    let new = w.write(chunk)?.iter().filter(|n| **n).count();
                    anyhow::ensure!(
                        new == chunk.len(),
                        "writer {k}: {new} of {} new",
                        chunk.len()
                    );
                }
                Ok(())
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    for h in handles {
        h.join()
            .map_err(|_| anyhow::anyhow!("a writer panicked"))??;
    }
    let three = (per * 3) as f64 / t.elapsed().as_secs_f64();
    let stored: i64 = db
        .client()?
        .query_one("SELECT count(*) FROM records", &[])?
        .get(0);
    let stored = u64::try_from(stored).unwrap_or(0);
    anyhow::ensure!(
        stored == per * 3,
        "three writers stored {stored} of {}",
        per * 3
    );
    Ok((one, three, stored))
}

pub(crate) fn markdown(r: &PgRun) -> String {
    format!(
        "| measure | logbook | plain alternative | ratio |\n|---|---|---|---|\n\
         | ingest, records/s (median of {rounds}) | {:.0} | {:.0} (binary COPY loop, same table) | {:.0} % |\n\
         | three writers at once vs one, records/s | {:.0} | {:.0} (one writer) | {:.2}x, {} of {} stored |\n\
         | retention of a day of {} records, ms | {:.0} (purge: the day's partition dropped) | {:.0} (DELETE) | {:.1}x faster |\n",
        r.store_rps.median,
        r.plain_rps.median,
        r.store_share.median * 100.0,
        r.three_writers_rps,
        r.one_writer_rps,
        r.three_writers_rps / r.one_writer_rps,
        r.three_writers_stored,
        r.three_writers_stored,
        r.day_records,
        r.purge_ms,
        r.delete_ms,
        r.delete_ms / r.purge_ms.max(0.001),
        rounds = r.rounds,
    )
}

/// The query table on the same generated data in PostgreSQL and in SQLite, side by side.
pub(crate) fn queries(
    cache: &std::path::Path,
    records: u64,
    choices: usize,
) -> anyhow::Result<String> {
    use logbook_collector::store::open_reader;
    let dir = tempfile::tempdir()?;
    let db = Db::fresh("logbook_bench_queries")?;
    let t = Instant::now();
    let d = crate::dataset::generate_into(&db.address(), &options(dir.path()), records)?;
    let pg_generate = t.elapsed().as_secs_f64();
    // What autovacuum gives an insert-only table soon after: fresh statistics for the
    // planner, and the visibility map set (index-only scans need no heap visits).
    db.client()?.batch_execute("VACUUM (ANALYZE)")?;
    let pg = crate::queries::timings(open_reader(&db.address())?.as_ref(), &d, choices)?;
    let (file, sd) = crate::dataset::ensure(cache, records)?;
    let sqlite = crate::queries::timings(
        open_reader(&StoreAddress::sqlite(&file))?.as_ref(),
        &sd,
        choices,
    )?;
    let mut s = format!(
        "{records} records (PostgreSQL generated through the store in {pg_generate:.0} s); p50 / p99 ms, {choices} choices each:\n\n\
         | query | PostgreSQL p50 | PostgreSQL p99 | SQLite p50 | SQLite p99 | target p99 | PostgreSQL met |\n|---|---|---|---|---|---|---|\n"
    );
    for (p, q) in pg.iter().zip(&sqlite) {
        s.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {} |\n",
            p.query,
            p.p50_ms,
            p.p99_ms,
            q.p50_ms,
            q.p99_ms,
            p.target_ms,
            if p.p99_ms <= p.target_ms {
                "yes"
            } else {
                "**no**"
            }
        ));
    }
    Ok(s)
}
