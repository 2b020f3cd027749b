//! The run page of a run of 10,000 spans whose LLM calls carry 100 KB prompts (1 GB
//! of payload), in a real browser: headless Chromium through chromedriver, a fresh
//! profile (an empty cache) for each load. Measured: the time from navigation until
//! the page marks its waterfall drawn (`performance.mark("waterfall-drawn")`, read in
//! the browser), the bytes of the first load (transferred and decoded, the page and
//! everything it loads), and the server's time for the page's HTML.

use std::time::Instant;

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::browser::Browser;
use crate::http::{serve_http, stop, Client};
use crate::stats::percentile;

/// What one measurement found.
pub(crate) struct Report {
    pub(crate) spans: usize,
    pub(crate) prompt_bytes: usize,
    pub(crate) drawn_ms: Vec<f64>,
    pub(crate) transferred: f64,
    pub(crate) decoded: f64,
    pub(crate) html_ms: Vec<f64>,
}

/// Sends a run of 10,000 spans (99 steps of 100 LLM calls with `prompt_bytes`-byte
/// prompts) and opens its page `loads` times.
pub(crate) fn run(prompt_bytes: usize, loads: usize) -> anyhow::Result<Report> {
    let dir = crate::hot_path::scratch_dir().join("waterfall");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("logbook.db");
    let (child, addr) = serve_http(&dir, &db)?;
    let result = (|| -> anyhow::Result<Report> {
        let mut client = Client::connect(addr)?;
        let start = logbook_proto::Timestamp::now().as_nanos() - 120_000_000_000;
        let (trace, spans) = crate::wide_run::spans(start, prompt_bytes, None);
        let spans_n = spans.len();
        eprintln!("sending {spans_n} spans with {prompt_bytes}-byte prompts…");
        // About 2 MB of prompts a request: within the HTTP decode budget (JSON takes
        // several times its size in memory once decoded).
        let per_request = (2_000_000 / prompt_bytes.max(1)).clamp(1, 1000);
        for chunk in spans.chunks(per_request) {
            let body = serde_json::to_vec(&crate::wide_run::request(chunk))?;
            let (status, answer) = client.request(
                "POST",
                "/v1/traces",
                &[("Content-Type", "application/json")],
                &body,
            )?;
            if status != 200 {
                bail!("OTLP: {status} {}", String::from_utf8_lossy(&answer));
            }
        }
        let path = format!("/runs/{trace}");
        let mut html_ms = Vec::new();
        for _ in 0..loads.max(5) {
            let began = Instant::now();
            let (status, _) = client.request("GET", &path, &[("Accept-Encoding", "gzip")], b"")?;
            html_ms.push(began.elapsed().as_secs_f64() * 1e3);
            if status != 200 {
                bail!("{path}: {status}");
            }
        }
        let mut drawn_ms = Vec::new();
        let (mut transferred, mut decoded) = (0.0, 0.0);
        for _ in 0..loads {
            let profile = tempfile::tempdir()?;
            let b = Browser::start(profile.path(), 1400, 900);
            b.go(&format!("http://{addr}{path}"));
            b.wait_until(
                "the waterfall",
                "return performance.getEntriesByName('waterfall-drawn').length === 1",
                std::time::Duration::from_secs(60),
            );
            let v = b.run(
                "const n = performance.getEntriesByType('navigation')[0];
                 const r = performance.getEntriesByType('resource');
                 return {t: performance.getEntriesByName('waterfall-drawn')[0].startTime,
                   transferred: n.transferSize + r.reduce((s, e) => s + e.transferSize, 0),
                   decoded: n.decodedBodySize + r.reduce((s, e) => s + e.decodedBodySize, 0)}",
                json!([]),
            );
            drawn_ms.push(v["t"].as_f64().context("the mark")?);
            transferred = v["transferred"].as_f64().unwrap_or(0.0);
            decoded = v["decoded"].as_f64().unwrap_or(0.0);
        }
        drawn_ms.sort_by(f64::total_cmp);
        html_ms.sort_by(f64::total_cmp);
        Ok(Report {
            spans: spans_n,
            prompt_bytes,
            drawn_ms,
            transferred,
            decoded,
            html_ms,
        })
    })();
    stop(child)?;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The table.
pub(crate) fn markdown(r: &Report) -> String {
    format!(
        "The run page of a run of {} spans (its LLM calls carrying {} KB prompts), in headless \
         Chromium with an empty cache, {} loads:\n\n\
         | measure | value | target |\n|---|---|---|\n\
         | navigation → waterfall drawn (`performance.mark`), median | {:.0} ms | |\n\
         | navigation → waterfall drawn, slowest | {:.0} ms | ≤ 1 s |\n\
         | first load, transferred (page + assets, gzip) | {:.0} KB | |\n\
         | first load, decoded | {:.0} KB | < 2 MB |\n\
         | the page's HTML on the server, p50 / p99 | {:.1} / {:.1} ms | |\n",
        r.spans,
        r.prompt_bytes / 1000,
        r.drawn_ms.len(),
        percentile(&r.drawn_ms, 50.0),
        r.drawn_ms.last().copied().unwrap_or(0.0),
        r.transferred / 1e3,
        r.decoded / 1e3,
        percentile(&r.html_ms, 50.0),
        percentile(&r.html_ms, 99.0),
    )
}
