//! The read API and the web UI over HTTP on the generated stores of `queries` (10M
//! records): the first page of runs and of records, end to end (a kept-alive
//! connection, the answer read whole), for an admin and for a viewer scoped to one
//! tenant; the UI's pages (runs, records, a run of 1,000 spans, sessions, calls) and
//! its charts over a day; beside the same reads made in process through the store, so
//! the HTTP part shows.

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
        // A day's range ending at the store's last record, for the charts.
        let day = |t: i64| logbook_proto::Timestamp(t).to_rfc3339();
        let (from, to) = (day(d.last_ts - 86_400_000_000_000), day(d.last_ts + 1));
        let range = format!(
            "since={}&until={}",
            form_urlencoded_min(&from),
            form_urlencoded_min(&to)
        );
        let big_run = d.big_runs.first().cloned().unwrap_or_default();
        let pages: Vec<(String, String, &String)> = vec![
            (
                "HTTP: first page of runs (50), admin".into(),
                "/api/v1/runs?limit=50".into(),
                &admin,
            ),
            (
                "HTTP: first page of records (100), admin".into(),
                "/api/v1/records?limit=100".into(),
                &admin,
            ),
            (
                "HTTP: first page of runs (50), viewer of one tenant".into(),
                "/api/v1/runs?limit=50".into(),
                &viewer,
            ),
            (
                "HTTP: first page of records (100), viewer of one tenant".into(),
                "/api/v1/records?limit=100".into(),
                &viewer,
            ),
            (
                "page: runs (HTML, 100 runs), admin".into(),
                "/runs".into(),
                &admin,
            ),
            (
                "page: records (HTML, 100 records), admin".into(),
                "/records".into(),
                &admin,
            ),
            (
                "page: records (HTML), viewer of one tenant".into(),
                "/records".into(),
                &viewer,
            ),
            (
                format!(
                    "page: a run of {} spans (HTML with its outline)",
                    dataset::BIG_RUN_SPANS
                ),
                format!("/runs/{big_run}"),
                &admin,
            ),
            ("page: sessions (HTML)".into(), "/sessions".into(), &admin),
            (
                "page: LLM calls and cost (HTML)".into(),
                "/calls".into(),
                &admin,
            ),
            (
                "chart: records by level, a day".into(),
                format!("/charts/records?{range}"),
                &admin,
            ),
            (
                "chart: runs and errors, a day".into(),
                format!("/charts/runs?{range}"),
                &admin,
            ),
            (
                "chart: tokens, cost, latency of LLM calls, a day".into(),
                format!("/charts/calls?{range}"),
                &admin,
            ),
            (
                "chart: cost by model, user and tenant, a day".into(),
                format!("/calls/costs?{range}"),
                &admin,
            ),
        ];
        for (what, path, token) in &pages {
            let (what, path) = (what.as_str(), path.as_str());
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
                items = if what.starts_with("page") || path.starts_with("/calls/costs") {
                    // Rows of the page's table, else its kilobytes.
                    let html = String::from_utf8_lossy(&body);
                    if path.starts_with("/runs/") {
                        html.matches("],[").count() + 1
                    } else {
                        html.matches("<tr").count().saturating_sub(1)
                    }
                } else {
                    let v: serde_json::Value = serde_json::from_slice(&body)?;
                    v["runs"]
                        .as_array()
                        .or(v["records"].as_array())
                        .map(Vec::len)
                        .or(v.as_array().map(|charts| {
                            charts
                                .first()
                                .and_then(|c| c["t"].as_array())
                                .map_or(0, Vec::len)
                        }))
                        .unwrap_or(0)
                };
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

/// A query value percent-encoded (RFC 3339 times: `:` and `+`).
fn form_urlencoded_min(v: &str) -> String {
    v.replace(':', "%3A").replace('+', "%2B")
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
            } else if t.what.starts_with("page: a run") {
                "≤ 150 ms"
            } else if t.what.starts_with("page: runs") || t.what.starts_with("page: records") {
                "≤ 100 ms"
            } else if t.what.starts_with("chart") {
                "≤ 300 ms"
            } else {
                ""
            }
        ));
    }
    s
}
