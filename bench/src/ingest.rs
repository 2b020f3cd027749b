//! The ingest ceiling: the same records inserted into the same SQLite schema by a plain
//! prepared-statement loop in large transactions, with the collector's pragmas.

use std::path::Path;
use std::time::Instant;

use logbook_collector::audit::StorageClass;
use logbook_collector::store::sqlite::raw;
use logbook_collector::store::{open_writer, Durability, StoreAddress, StoreOptions};
use logbook_proto::{InstanceId, Record, Timestamp};
use rusqlite::{params, Connection};

use crate::records;
use crate::stats::{summarize, Summary};

/// Records per transaction in the plain loop.
const TX_RECORDS: usize = 50_000;

/// Records per second for the plain loop into `records` only, the plain loop also
/// filling the text index, and logbook's store (the collector's write path without
/// transport).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Ceiling {
    pub(crate) records: u64,
    pub(crate) plain_rps: f64,
    pub(crate) plain_with_text_rps: f64,
    pub(crate) store_rps: f64,
    /// Per round, the plain loop with text index and the store as shares of the plain
    /// loop in that round.
    pub(crate) text_share: Summary,
    pub(crate) store_share: Summary,
    pub(crate) rounds: usize,
}

fn sample(n: u64) -> Vec<Record> {
    let instance = InstanceId::from_random(77);
    let scope = records::run_scope("ceiling");
    let resource = records::resource();
    let t0 = Timestamp::now().as_nanos();
    // As admission stamps them: one origin shared by a connection's records.
    let origin = std::sync::Arc::new(logbook_proto::Origin {
        uid: Some(1000),
        pid: Some(4242),
        ..logbook_proto::Origin::new(logbook_proto::transport::SOCKET)
    });
    (0..n)
        .map(|i| {
            let mut r = records::record(
                instance,
                i,
                Timestamp(t0 + i as i64 * 1000),
                &scope,
                &resource,
            );
            r.origin = Some(std::sync::Arc::clone(&origin));
            r
        })
        .collect()
}

/// A fresh database with the collector's schema and pragmas.
fn fresh(path: &Path) -> anyhow::Result<Connection> {
    drop(open_writer(
        &StoreAddress::sqlite(path),
        &StoreOptions::with_durability(Durability::Full),
    )?);
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -65_536)?;
    Ok(conn)
}

fn plain_loop(path: &Path, rs: &[Record], with_text: bool) -> anyhow::Result<f64> {
    let mut conn = fresh(path)?;
    // Values prepared ahead: the loop measures storage alone.
    let fields: Vec<String> = rs
        .iter()
        .map(|r| serde_json::to_string(&r.fields).unwrap_or_default())
        .collect();
    let t = Instant::now();
    let mut seq = 0i64;
    for (chunk, fields) in rs.chunks(TX_RECORDS).zip(fields.chunks(TX_RECORDS)) {
        let tx = conn.transaction()?;
        {
            // The store's own statement and binding: the same columns, no drift.
            let mut insert = tx.prepare_cached(raw::insert_sql())?;
            let mut text = tx.prepare_cached(
                "INSERT INTO records_fts (rowid, message, fields) VALUES (?1, ?2, ?3)",
            )?;
            for (r, f) in chunk.iter().zip(fields) {
                seq += 1;
                raw::insert(&mut insert, seq, r, f, StorageClass::Ops, Some(1))?;
                if with_text {
                    text.execute(params![seq, r.message.as_deref(), "ok gpt-4o-mini"])?;
                }
            }
        }
        tx.commit()?;
    }
    Ok(rs.len() as f64 / t.elapsed().as_secs_f64())
}

fn store_loop(path: &Path, rs: &[Record]) -> anyhow::Result<f64> {
    let mut store = open_writer(
        &StoreAddress::sqlite(path),
        &StoreOptions::with_durability(Durability::Full),
    )?;
    let t = Instant::now();
    for chunk in rs.chunks(20_000) {
        store.write(chunk)?;
    }
    Ok(rs.len() as f64 / t.elapsed().as_secs_f64())
}

/// Each writer `rounds` times, interleaved, into fresh files; the medians. (This
/// machine's speed drifts from minute to minute: one pass each would compare moments.)
pub(crate) fn run(dir: &Path, n: u64, rounds: usize) -> anyhow::Result<Ceiling> {
    std::fs::create_dir_all(dir)?;
    let rs = sample(n);
    let (mut plain, mut text, mut store) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let file = |name: &str| dir.join(format!("{name}-{round}.db"));
        plain.push(plain_loop(&file("plain"), &rs, false)?);
        text.push(plain_loop(&file("plain-text"), &rs, true)?);
        store.push(store_loop(&file("store"), &rs)?);
        for name in ["plain", "plain-text", "store"] {
            for ext in ["db", "db-wal", "db-shm"] {
                let _ = std::fs::remove_file(file(name).with_extension(ext));
            }
        }
    }
    let share = |of: &[f64]| {
        let ratios: Vec<f64> = of.iter().zip(&plain).map(|(x, p)| x / p).collect();
        summarize(&ratios)
    };
    Ok(Ceiling {
        records: n,
        plain_rps: summarize(&plain).median,
        plain_with_text_rps: summarize(&text).median,
        store_rps: summarize(&store).median,
        text_share: share(&text),
        store_share: share(&store),
        rounds,
    })
}
