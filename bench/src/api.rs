//! The read API over HTTP on the generated stores of `queries` (10M records): the first
//! page of runs and of records, end to end (a kept-alive connection, the JSON
//! answer read whole), for an admin and for a viewer scoped to one tenant; beside the
//! same reads made in process through the store, so the HTTP part shows.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};
use logbook_collector::query::{Page, RecordFilter, RunFilter};
use logbook_collector::store::{open_reader, StoreAddress};

use crate::dataset;
use crate::http::{serve_http, stop, Client};
use crate::stats::percentile;

/// One measured read.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Timing {
    pub(crate) what: String,
    pub(crate) items: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
}

fn summarize(what: &str, items: usize, mut ms: Vec<f64>) -> Timing {
    ms.sort_by(f64::total_cmp);
    Timing {
        what: what.to_owned(),
        items,
        p50_ms: percentile(&ms, 50.0),
        p99_ms: percentile(&ms, 99.0),
    }
}

/// Runs the API reads `n` times each against a copy of the `records` store.
pub(crate) fn run(cache: &Path, records: u64, n: usize) -> anyhow::Result<(u64, Vec<Timing>)> {
    let (source, d) = dataset::ensure(cache, records)?;
    let dir = crate::hot_path::scratch_dir().join("api");
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("logbook.db");
    eprintln!("copying the {records}-record store…");
    std::fs::copy(&source, &db).context("copying the generated store")?;
    let tenant = "tenant-000";
    let token = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(std::env::current_exe()?)
            .args(["collector", "--db"])
            .arg(&db)
            .args(["token", "create"])
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("token: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    let admin = token(&["--role", "admin"])?;
    let viewer = token(&["--role", "viewer", "--tenant", tenant])?;
    let (child, addr) = serve_http(&dir, &db)?;
    let result = (|| -> anyhow::Result<Vec<Timing>> {
        let mut client = Client::connect(addr)?;
        let mut timings = Vec::new();
        for (what, path, token) in [
            (
                "HTTP: first page of runs (50), admin",
                "/api/v1/runs?limit=50",
                &admin,
            ),
            (
                "HTTP: first page of records (100), admin",
                "/api/v1/records?limit=100",
                &admin,
            ),
            (
                "HTTP: first page of runs (50), viewer of one tenant",
                "/api/v1/runs?limit=50",
                &viewer,
            ),
            (
                "HTTP: first page of records (100), viewer of one tenant",
                "/api/v1/records?limit=100",
                &viewer,
            ),
        ] {
            let auth = format!("Bearer {token}");
            let mut ms = Vec::with_capacity(n);
            let mut items = 0;
            for _ in 0..n {
                let began = Instant::now();
                let (status, body) =
                    client.request("GET", path, &[("Authorization", &auth)], b"")?;
                ms.push(began.elapsed().as_secs_f64() * 1e3);
                if status != 200 {
                    bail!("{path}: {status} {}", String::from_utf8_lossy(&body));
                }
                let v: serde_json::Value = serde_json::from_slice(&body)?;
                items = v["runs"]
                    .as_array()
                    .or(v["records"].as_array())
                    .map_or(0, Vec::len);
            }
            timings.push(summarize(what, items, ms));
        }
        Ok(timings)
    })();
    stop(child)?;
    let mut timings = result?;
    // The same reads in process, through the store.
    let store = open_reader(&StoreAddress::sqlite(&db))?;
    let time = |what: &str, f: &dyn Fn() -> anyhow::Result<usize>| -> anyhow::Result<Timing> {
        let mut ms = Vec::with_capacity(n);
        let mut items = 0;
        for _ in 0..n {
            let began = Instant::now();
            items = f()?;
            ms.push(began.elapsed().as_secs_f64() * 1e3);
        }
        Ok(summarize(what, items, ms))
    };
    timings.push(time("in process: first page of runs (50)", &|| {
        Ok(store
            .runs(&RunFilter {
                limit: 50,
                ..RunFilter::default()
            })?
            .len())
    })?);
    timings.push(time("in process: first page of records (100)", &|| {
        Ok(store
            .query(&RecordFilter::default(), &Page::default())?
            .len())
    })?);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok((d.records, timings))
}

/// The table.
pub(crate) fn markdown(records: u64, timings: &[Timing]) -> String {
    let mut s = format!(
        "The read API on the generated store of {records} records (`queries`' data), each \
         read repeated on one kept-alive connection, the answer read and parsed whole:\n\n\
         | read | items | p50 ms | p99 ms | target p99 |\n|---|---|---|---|---|\n"
    );
    for t in timings {
        s.push_str(&format!(
            "| {} | {} | {:.2} | {:.2} | {} |\n",
            t.what,
            t.items,
            t.p50_ms,
            t.p99_ms,
            if t.what.starts_with("HTTP") {
                "≤ 50 ms"
            } else {
                ""
            }
        ));
    }
    s
}
