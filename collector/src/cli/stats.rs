//! `logbook stats`.

use std::io::{self, Write};

use clap::Args;
use logbook_proto::{Kind, Level};

use crate::store::StoreReader;

/// Arguments of `logbook stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

impl StatsArgs {
    pub(crate) fn run(&self, store: &dyn StoreReader) -> anyhow::Result<()> {
        let s = store.stats()?;
        let mut out = io::stdout().lock();
        if self.json {
            serde_json::to_writer_pretty(&mut out, &s)?;
            writeln!(out)?;
            return Ok(());
        }
        writeln!(out, "records       {}", s.records)?;
        let levels: Vec<String> = Level::ALL
            .iter()
            .map(|l| format!("{} {}", l, s.by_level[l.index()]))
            .collect();
        writeln!(out, "  by level    {}", levels.join("  "))?;
        let kinds: Vec<String> = Kind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| format!("{} {}", k, s.by_kind[i]))
            .collect();
        writeln!(out, "  by kind     {}", kinds.join("  "))?;
        if let (Some(o), Some(n)) = (s.oldest, s.newest) {
            writeln!(out, "  time range  {o} .. {n}")?;
        }
        writeln!(out, "runs          {}", s.runs)?;
        writeln!(out, "storage       {}: {}", mib(s.storage_bytes), s.storage)?;
        writeln!(
            out,
            "ingest rate   {:.1} records/s over the last minute, {:.1}/s over 10 minutes",
            s.rate_1m, s.rate_10m
        )?;
        if let (Some(p50), Some(p99)) = (s.latency_p50_ms, s.latency_p99_ms) {
            writeln!(
                out,
                "commit delay  p50 {p50:.1} ms, p99 {p99:.1} ms from emit to commit, {} records over 10 minutes",
                s.latency_count
            )?;
        }
        writeln!(
            out,
            "client drops  {} from {} clients",
            s.dropped_total(),
            s.client_drops
                .iter()
                .filter(|c| c.dropped.iter().any(|d| *d > 0))
                .count()
        )?;
        for c in s
            .client_drops
            .iter()
            .filter(|c| c.dropped.iter().any(|d| *d > 0))
        {
            let by_level: Vec<String> = Level::ALL
                .iter()
                .filter(|l| c.dropped[l.index()] > 0)
                .map(|l| format!("{} {}", l, c.dropped[l.index()]))
                .collect();
            writeln!(
                out,
                "  {} on {} (pid {}, instance {}): {}, last reported {}",
                c.service,
                c.host,
                c.pid,
                c.instance,
                by_level.join(", "),
                c.updated
            )?;
        }
        writeln!(out, "audit records {} in the chain", s.audit_records)?;
        writeln!(
            out,
            "quarantined   {} (logbook query --quarantine)",
            s.quarantined
        )?;
        let redacted: u64 = s.redactions.iter().map(|(_, n)| n).sum();
        writeln!(out, "redactions    {redacted}")?;
        for (rule, n) in &s.redactions {
            writeln!(out, "  {rule:<20} {n}")?;
        }
        let limited: u64 = s.limits.values().sum();
        writeln!(out, "limits        {limited} (values cut, clients refused)")?;
        for (what, n) in &s.limits {
            writeln!(out, "  {what:<20} {n}")?;
        }
        if !s.forwards.is_empty() {
            writeln!(out, "forwarding")?;
        }
        for f in &s.forwards {
            writeln!(
                out,
                "  {:<20} {} sent, {} behind, {} refused, {} failed requests, as of {}",
                f.name, f.sent, f.behind, f.refused, f.failures, f.updated
            )?;
            if let Some(e) = &f.last_error {
                writeln!(out, "  {:<20} last error: {e}", "")?;
            }
        }
        Ok(())
    }
}
